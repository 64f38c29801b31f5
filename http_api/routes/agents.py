"""Agent management (seed: Agent Management APIs)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field, HttpUrl, StringConstraints

from http_api.routes import api
from http_api.routing import RESOURCE_ID, Call
from http_api.schemas import RequestModel, omittable
from hub.errors import found
from hub.inputs import Integer, JsonObject
from hub.store import agents

AgentName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"\S")]
Temperature = Annotated[float, Field(ge=0, le=2)]
MaxTokens = Annotated[Integer, Field(ge=1, le=32000)]
Description = Annotated[str, StringConstraints(max_length=2000)]
SystemPrompt = Annotated[str, StringConstraints(max_length=50_000)]
Greeting = Annotated[str, StringConstraints(max_length=500)]
# The tools an agent can be given (agents_runtime/tools.py implements them).
ToolName = Literal["capture_contact", "create_deal", "handoff_to_human", "end_conversation"]


class AgentCreate(RequestModel):
    name: AgentName
    description: Description | None = None
    system_prompt: SystemPrompt | None = None
    model: ModelName = "gpt-4o-mini"
    temperature: Temperature = 0.7
    max_tokens: MaxTokens = 1000
    enabled: bool = True
    voice_settings: JsonObject = Field(default_factory=dict)
    tools: list[ToolName] = Field(default_factory=list, max_length=10)
    avatar_url: HttpUrl | None = None
    greeting: Greeting | None = None
    theme: JsonObject = Field(default_factory=dict)


class AgentUpdate(RequestModel):
    """Partial: only the fields sent change. A field that cannot be empty
    cannot be set to null either."""

    name: AgentName = omittable()
    description: Description | None = None
    system_prompt: SystemPrompt | None = None
    model: ModelName = omittable()
    temperature: Temperature = omittable()
    max_tokens: MaxTokens = omittable()
    enabled: bool = omittable()
    voice_settings: JsonObject = omittable()
    tools: list[ToolName] = omittable(max_length=10)
    avatar_url: HttpUrl | None = None
    greeting: Greeting | None = None
    theme: JsonObject = omittable()


class Agent(BaseModel):
    id: UUID
    company_id: UUID
    name: str
    description: str | None
    system_prompt: str | None
    model: str
    temperature: float
    max_tokens: int
    enabled: bool
    voice_settings: dict[str, Any]
    tools: list[str]
    avatar_url: str | None
    greeting: str | None
    theme: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class AgentList(BaseModel):
    agents: list[Agent]


class Deleted(BaseModel):
    id: UUID
    deleted: bool = True


@api.post("/api/agents", body=AgentCreate, response=Agent, status=201, tags=("agents",))
async def create_agent(call: Call) -> dict:
    """Create an agent."""
    async with call.tenant() as conn:
        agent = await agents.create(conn, call.user.company_id, call.body.model_dump(mode="json"))
    call.request[RESOURCE_ID] = str(agent["id"])
    return agent


@api.get("/api/agents", response=AgentList, tags=("agents",))
async def list_agents(call: Call) -> dict:
    """List the company's agents."""
    async with call.read() as conn:
        return {"agents": await agents.list_all(conn, call.user.company_id)}


@api.get("/api/agents/{id}", response=Agent, tags=("agents",))
async def get_agent(call: Call) -> dict:
    """One agent."""
    async with call.read() as conn:
        return found(await agents.get(conn, call.params["id"]), "Agent")


@api.patch("/api/agents/{id}", body=AgentUpdate, response=Agent, tags=("agents",))
async def update_agent(call: Call) -> dict:
    """Change some of an agent's fields."""
    changes = call.body.model_dump(mode="json", exclude_unset=True)
    async with call.tenant() as conn:
        return found(await agents.update(conn, call.params["id"], changes), "Agent")


@api.delete("/api/agents/{id}", roles=("owner", "admin"), response=Deleted, tags=("agents",))
async def delete_agent(call: Call) -> dict:
    """Delete an agent (owners and admins)."""
    async with call.tenant() as conn:
        found(await agents.delete(conn, call.params["id"]), "Agent")
    return {"id": call.params["id"]}
