"""The LiveKit voice worker's side of trust: it registers under the explicit
agent name and takes a job only with call claims the hub signed."""

from __future__ import annotations

import secrets
import uuid

from livekit.agents import JobRequest
from livekit.protocol import agent as agent_proto

from agents_runtime.voice import worker
from hub.config import Settings
from hub.voice import claims
from hub.voice.claims import AGENT_NAME


def settings() -> Settings:
    return Settings(
        jwt_secret=secrets.token_urlsafe(48),
        livekit_url="ws://127.0.0.1:7880",
        livekit_api_key="APIkey",
        livekit_api_secret="a-secret-long-enough-for-livekit-hs256",
    )


async def decide(config: Settings, metadata: str) -> str:
    answers: list[str] = []

    async def on_reject(terminate: bool) -> None:
        answers.append("rejected")

    async def on_accept(arguments) -> None:
        answers.append(f"accepted as {arguments.identity}")

    job = agent_proto.Job(id="AJ_1", agent_name=AGENT_NAME, metadata=metadata)
    await worker.on_request(config, JobRequest(job=job, on_reject=on_reject, on_accept=on_accept))
    (answer,) = answers
    return answer


async def test_the_worker_takes_only_jobs_the_hub_signed():
    config = settings()
    agent_id = uuid.uuid4()
    call = claims.CallClaims(uuid.uuid4(), agent_id, "voice", conversation_id=uuid.uuid4())
    assert await decide(config, claims.sign(config, call, ttl=60)) == (
        f"accepted as agent-{agent_id}-AJ_1"
    )
    # Unsigned, signed by someone else, expired, or none at all: refused.
    other = settings()
    for metadata in (
        '{"company_id": "x"}',
        claims.sign(other, call, ttl=60),
        claims.sign(config, call, ttl=-10),
        "",
    ):
        assert await decide(config, metadata) == "rejected"


def test_the_worker_registers_under_the_explicit_agent_name():
    server = worker.build_server(settings())
    assert server._agent_name == AGENT_NAME
    assert server._ws_url == "ws://127.0.0.1:7880" and server._api_key == "APIkey"
