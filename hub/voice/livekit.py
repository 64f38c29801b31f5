"""LiveKit's server API through `livekit-api`: join tokens, agent dispatch,
SIP trunks and dispatch rules. Every failure to reach LiveKit becomes an
ApiError (502 LIVEKIT_ERROR) naming LiveKit's own code and message."""

from __future__ import annotations

import datetime
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from uuid import UUID

import aiohttp
from livekit import api

from hub.config import Settings
from hub.errors import ApiError
from hub.voice.claims import AGENT_NAME

JOIN_TOKEN_TTL = 600  # seconds to join with it; a call, once joined, outlives its token
ROOM_PREFIX = "syntera-"
CALL_ROOM_PREFIX = "syntera-call-"  # SIP: one room per incoming call


def configured(settings: Settings) -> bool:
    return bool(settings.livekit_url and settings.livekit_api_key and settings.livekit_api_secret)


def require(settings: Settings) -> None:
    if not configured(settings):
        raise ApiError(
            503,
            "VOICE_NOT_CONFIGURED",
            "Voice calls need a LiveKit server: set LIVEKIT_URL, LIVEKIT_API_KEY and "
            "LIVEKIT_API_SECRET",
        )


def room_for(conversation_id: UUID) -> str:
    return f"{ROOM_PREFIX}{conversation_id}"


def new_identity(kind: str, who: UUID) -> str:
    return f"{kind}-{who}-{secrets.token_hex(3)}"


@dataclass
class SipRoute:
    trunk_id: str
    dispatch_rule_id: str
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)


class LiveKit:
    def __init__(self, settings: Settings) -> None:
        require(settings)
        self.url = settings.livekit_url or ""
        self.api_key = settings.livekit_api_key or ""
        self.api_secret = settings.livekit_api_secret or ""

    def join_token(
        self,
        *,
        room: str,
        identity: str,
        name: str,
        can_publish: bool = True,
        hidden: bool = False,
        dispatch_metadata: str | None = None,
        ttl: int = JOIN_TOKEN_TTL,
    ) -> str:
        """A token for this one room: join it, nothing else (no room creation
        elsewhere, no listing, no admin). With `dispatch_metadata`, the room
        it creates dispatches our agent with those (signed) claims."""
        token = (
            api.AccessToken(self.api_key, self.api_secret)
            .with_identity(identity)
            .with_name(name)
            .with_ttl(datetime.timedelta(seconds=ttl))
            .with_grants(
                api.VideoGrants(
                    room_join=True,
                    room=room,
                    can_publish=can_publish,
                    can_subscribe=True,
                    can_publish_data=can_publish,
                    hidden=hidden or None,
                )
            )
        )
        if dispatch_metadata is not None:
            agent = api.RoomAgentDispatch(agent_name=AGENT_NAME, metadata=dispatch_metadata)
            token.with_room_config(
                api.RoomConfiguration(metadata=dispatch_metadata, agents=[agent])
            )
        return token.to_jwt()

    @asynccontextmanager
    async def _api(self) -> AsyncIterator[api.LiveKitAPI]:
        client = api.LiveKitAPI(
            self.url,
            self.api_key,
            self.api_secret,
            timeout=aiohttp.ClientTimeout(total=10),
            failover=False,
        )
        try:
            yield client
        except api.TwirpError as exc:
            raise ApiError(
                502,
                "LIVEKIT_ERROR",
                f"LiveKit refused the request: {exc.message}",
                {"livekit_code": exc.code, "status": exc.status},
            ) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise ApiError(
                502, "LIVEKIT_ERROR", "LiveKit could not be reached", {"reason": str(exc)}
            ) from None
        finally:
            await client.aclose()

    async def ensure_dispatch(self, room: str, metadata: str) -> tuple[api.AgentDispatch, bool]:
        """Our agent's explicit dispatch for the room: the existing one, or a new one."""
        async with self._api() as lk:
            for dispatch in await lk.agent_dispatch.list_dispatch(room):
                if dispatch.agent_name == AGENT_NAME:
                    return dispatch, False
            dispatch = await lk.agent_dispatch.create_dispatch(
                api.CreateAgentDispatchRequest(agent_name=AGENT_NAME, room=room, metadata=metadata)
            )
            return dispatch, True

    async def route_number(
        self,
        phone_number: str,
        metadata: str,
        *,
        trunk_id: str | None,
        dispatch_rule_id: str | None,
        label: str,
    ) -> SipRoute:
        """An inbound trunk for the number and a dispatch rule that puts each
        call in a room of its own with our agent, dispatched with `metadata`.
        Existing ones (ids from an earlier deploy) are replaced in place; on a
        failure, what this call created is removed again."""
        trunk = api.SIPInboundTrunkInfo(name=label, numbers=[phone_number], krisp_enabled=True)
        rule = api.SIPDispatchRuleInfo(
            name=label,
            rule=api.SIPDispatchRule(
                dispatch_rule_individual=api.SIPDispatchRuleIndividual(room_prefix=CALL_ROOM_PREFIX)
            ),
            room_config=api.RoomConfiguration(
                agents=[api.RoomAgentDispatch(agent_name=AGENT_NAME, metadata=metadata)]
            ),
        )
        route = SipRoute("", "")
        async with self._api() as lk:
            try:
                if trunk_id:
                    updated_trunk = await lk.sip.update_inbound_trunk(trunk_id, trunk)
                    route.trunk_id = updated_trunk.sip_trunk_id
                    route.updated.append("sip_inbound_trunk")
                else:
                    created = await lk.sip.create_inbound_trunk(
                        api.CreateSIPInboundTrunkRequest(trunk=trunk)
                    )
                    route.trunk_id = created.sip_trunk_id
                    route.created.append("sip_inbound_trunk")
                rule.trunk_ids.append(route.trunk_id)
                if dispatch_rule_id:
                    updated = await lk.sip.update_dispatch_rule(dispatch_rule_id, rule)
                    route.dispatch_rule_id = updated.sip_dispatch_rule_id
                    route.updated.append("sip_dispatch_rule")
                else:
                    created_rule = await lk.sip.create_dispatch_rule(
                        api.CreateSIPDispatchRuleRequest(dispatch_rule=rule)
                    )
                    route.dispatch_rule_id = created_rule.sip_dispatch_rule_id
                    route.created.append("sip_dispatch_rule")
            except BaseException:
                if "sip_inbound_trunk" in route.created:
                    await lk.sip.delete_trunk(
                        api.DeleteSIPTrunkRequest(sip_trunk_id=route.trunk_id)
                    )
                raise
        return route

    async def unroute_number(self, trunk_id: str | None, dispatch_rule_id: str | None) -> None:
        """Undo `route_number` (the hub could not record the route)."""
        async with self._api() as lk:
            if dispatch_rule_id:
                await lk.sip.delete_dispatch_rule(
                    api.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id=dispatch_rule_id)
                )
            if trunk_id:
                await lk.sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=trunk_id))

    async def delete_room(self, room: str) -> None:
        """Ends a call for everyone in it (the agent hangs up)."""
        async with self._api() as lk:
            await lk.room.delete_room(api.DeleteRoomRequest(room=room))
