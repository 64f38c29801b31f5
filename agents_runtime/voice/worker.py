"""The LiveKit voice worker, run by `python -m agents_runtime` when LiveKit is
configured. It registers under the explicit agent name (hub.voice.claims), so
LiveKit sends it only the calls the hub dispatched: a visitor's token, the
dispatch API, or a SIP dispatch rule. It takes a job only when the job's
metadata carries call claims the hub signed.

Jobs run in livekit-agents' job processes; each process loads the offline
speech models once when it starts (prewarm), before any call reaches it, and
opens its own connections to PostgreSQL and Redis for its call.
"""

from __future__ import annotations

import functools
import logging

from livekit import rtc
from livekit.agents import AgentServer, JobContext, JobProcess, JobRequest

from agents_runtime import runtime
from agents_runtime.voice import models
from agents_runtime.voice.call import VoiceCall
from hub.config import Settings
from hub.conversations import start_conversation
from hub.services import Services, close_services, open_services
from hub.store import agents, conversations, voice_numbers
from hub.voice.claims import AGENT_NAME, CallClaims, InvalidClaims, verify

log = logging.getLogger(__name__)


def build_server(settings: Settings) -> AgentServer:
    server = AgentServer(
        ws_url=settings.livekit_url,
        api_key=settings.livekit_api_key,
        api_secret=settings.livekit_api_secret,
        setup_fnc=prewarm,
        port=0,  # its health endpoint on a free port: several workers may share a machine
    )
    server.rtc_session(
        functools.partial(entrypoint, settings),
        agent_name=AGENT_NAME,
        on_request=functools.partial(on_request, settings),
    )
    return server


def prewarm(proc: JobProcess) -> None:
    models.load_speech()


async def on_request(settings: Settings, request: JobRequest) -> None:
    try:
        claims = verify(settings, request.job.metadata)
    except InvalidClaims as exc:
        log.warning('{"event":"voice_job_refused","job":"%s","reason":"%s"}', request.id, exc)
        await request.reject()
        return
    await request.accept(name="Assistant", identity=f"agent-{claims.agent_id}-{request.id}")


async def entrypoint(settings: Settings, ctx: JobContext) -> None:
    claims = verify(settings, ctx.job.metadata)  # on_request checked; checked again here
    services = await open_services(settings, runtime.parts, run_migrations=False)

    async def close() -> None:
        await close_services(services)

    ctx.add_shutdown_callback(close)
    await ctx.connect()
    caller = await ctx.wait_for_participant()
    prepared = await _prepare(services, claims, ctx.room.name, caller)
    if prepared is None:
        ctx.shutdown("the call's agent or conversation is gone")
        return
    agent, conversation = prepared

    async def hang_up() -> None:
        ctx.delete_room()  # ends the call for the caller too (SIP: hangs up)

    llm = runtime.build_llm(settings)
    ctx.add_shutdown_callback(llm.aclose)
    call = VoiceCall.speaking(services, llm, agent, conversation, on_end=hang_up)
    await call.start(room=ctx.room)


async def _prepare(
    services: Services, claims: CallClaims, room: str, caller: rtc.RemoteParticipant
) -> tuple[dict, dict] | None:
    """The agent and the conversation of the call: a web call's exists; a
    phone call's is created now, if the number still routes to that company."""
    db = services.db
    async with db.tenant(claims.company_id) as conn:
        agent = await agents.get_enabled(conn, claims.agent_id)
        if agent is None:
            return None
        if claims.conversation_id is not None:
            conversation = await conversations.get(conn, claims.conversation_id)
            if conversation is None or conversation["status"] != "active":
                return None
            return agent, conversation
        routed = await voice_numbers.find(conn, claims.phone_number or "")
        if routed is None or routed["agent_id"] != claims.agent_id:
            return None
        conversation = await start_conversation(
            db,
            conn,
            company_id=claims.company_id,
            agent_id=claims.agent_id,
            channel="phone",
            metadata={
                "source": "sip",
                "livekit_room": room,
                "called_number": claims.phone_number,
                "caller_number": caller.attributes.get("sip.phoneNumber"),
            },
        )
        return agent, conversation
