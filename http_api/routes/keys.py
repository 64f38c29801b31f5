"""Publishable keys: what a website embeds to talk to one agent."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, Field, field_validator

from http_api.routes import api
from http_api.routing import RESOURCE_ID, Call
from http_api.schemas import RequestModel
from hub.errors import found
from hub.events import Event
from hub.origins import normalise_origin
from hub.store import agents, keys
from hub.visitors import new_key


class KeyCreate(RequestModel):
    allowed_origins: list[str] = Field(min_length=1, max_length=50)

    @field_validator("allowed_origins")
    @classmethod
    def _origins(cls, values: list[str]) -> list[str]:
        normalised = []
        for value in values:
            origin = normalise_origin(value)
            if origin is None:
                raise ValueError(f"{value!r} is not an origin like https://shop.example.com or *")
            normalised.append(origin)
        return list(dict.fromkeys(normalised))


class KeyInfo(BaseModel):
    id: UUID
    key_prefix: str
    allowed_origins: list[str]
    created_at: datetime


class NewKey(KeyInfo):
    key: str  # shown once; only its hash is stored


class KeyList(BaseModel):
    keys: list[KeyInfo]


@api.post(
    "/api/agents/{id}/keys",
    roles=("owner", "admin"),
    body=KeyCreate,
    response=NewKey,
    status=201,
    tags=("agents",),
)
async def create_key(call: Call) -> dict:
    """Create a publishable key for the agent; the key is shown only in this answer."""
    key, digest, prefix = new_key()
    async with call.tenant() as conn:
        found(await agents.get(conn, call.params["id"]), "Agent")
        row = await keys.create(
            conn,
            company_id=call.user.company_id,
            agent_id=call.params["id"],
            key_hash=digest,
            key_prefix=prefix,
            allowed_origins=call.body.allowed_origins,
        )
    call.request[RESOURCE_ID] = str(row["id"])
    return {**row, "key": key}


@api.get("/api/agents/{id}/keys", response=KeyList, tags=("agents",))
async def list_keys(call: Call) -> dict:
    """The agent's active keys (without the keys themselves)."""
    async with call.tenant() as conn:
        found(await agents.get(conn, call.params["id"]), "Agent")
        return {"keys": await keys.list_for_agent(conn, call.params["id"])}


@api.delete("/api/agents/{id}/keys/{key_id}", roles=("owner", "admin"), tags=("agents",))
async def revoke_key(call: Call) -> dict:
    """Revoke a key: it stops working at once."""
    async with call.tenant() as conn:
        found(await keys.revoke(conn, call.params["id"], call.params["key_id"]), "Key")
        # Sockets already connected with it are cut too, in every web process.
        call.services.db.publish_after_commit(
            conn, Event("key.revoked", call.user.company_id, {"key_id": call.params["key_id"]})
        )
    return {"id": str(call.params["key_id"]), "revoked": True}
