"""A local stand-in for LiveKit's server API (Twirp over HTTP, protobuf
bodies), for the calls the hub makes: agent dispatch, SIP inbound trunks and
dispatch rules, room deletion.

No LiveKit server can run on this machine, so this is the edge of the world
for the tests. It validates what a real server would refuse: the token's
signature and grants for each call, the protobuf body, required fields, and
references between objects (a rule's trunk must exist; a number may be on one
trunk only). It keeps state, so listing shows what was created, and records
every request for assertions. `fail_next` scripts an error. Served as
fakes/__init__.py says.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from google.protobuf.message import DecodeError
from livekit import api
from livekit.api.access_token import Claims

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class Refused(Exception):
    def __init__(self, status: int, code: str, msg: str) -> None:
        super().__init__(msg)
        self.status, self.code, self.msg = status, code, msg


@dataclass
class Request:
    service: str
    method: str
    body: Any  # the decoded protobuf message
    claims: Claims


@dataclass
class FakeLiveKit:
    api_key: str = "APItestkey"
    api_secret: str = "test-secret-that-is-long-enough-for-hs256"
    requests: list[Request] = field(default_factory=list)
    dispatches: dict[str, api.AgentDispatch] = field(default_factory=dict)
    trunks: dict[str, api.SIPInboundTrunkInfo] = field(default_factory=dict)
    rules: dict[str, api.SIPDispatchRuleInfo] = field(default_factory=dict)
    deleted_rooms: list[str] = field(default_factory=list)
    failures: dict[str, Refused] = field(default_factory=dict)
    url: str | None = None  # where it is served

    def settings(self) -> dict[str, str]:
        assert self.url is not None, "serve app() first"
        return {
            "livekit_url": self.url,
            "livekit_api_key": self.api_key,
            "livekit_api_secret": self.api_secret,
        }

    def fail_next(self, method: str, status: int = 500, code: str = "internal") -> None:
        self.failures[method] = Refused(status, code, f"scripted failure of {method}")

    def calls(self, method: str) -> list[Request]:
        return [r for r in self.requests if r.method == method]

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/twirp/livekit.{service}/{method}", self._handle)
        return app

    # -- the protocol ---------------------------------------------------------

    _METHODS = {
        ("AgentDispatchService", "CreateDispatch"): api.CreateAgentDispatchRequest,
        ("AgentDispatchService", "ListDispatch"): api.ListAgentDispatchRequest,
        ("SIP", "CreateSIPInboundTrunk"): api.CreateSIPInboundTrunkRequest,
        ("SIP", "UpdateSIPInboundTrunk"): api.UpdateSIPInboundTrunkRequest,
        ("SIP", "DeleteSIPTrunk"): api.DeleteSIPTrunkRequest,
        ("SIP", "CreateSIPDispatchRule"): api.CreateSIPDispatchRuleRequest,
        ("SIP", "UpdateSIPDispatchRule"): api.UpdateSIPDispatchRuleRequest,
        ("SIP", "DeleteSIPDispatchRule"): api.DeleteSIPDispatchRuleRequest,
        ("RoomService", "DeleteRoom"): api.DeleteRoomRequest,
    }

    async def _handle(self, request: web.Request) -> web.Response:
        service, method = request.match_info["service"], request.match_info["method"]
        try:
            message_type = self._METHODS.get((service, method))
            if message_type is None:
                raise Refused(404, "bad_route", f"no handler for {service}/{method}")
            if request.content_type != "application/protobuf":
                raise Refused(400, "malformed", "the body must be application/protobuf")
            claims = self._authenticate(request)
            try:
                body = message_type.FromString(await request.read())
            except DecodeError as exc:
                raise Refused(400, "malformed", f"not a {message_type.__name__}: {exc}") from None
            self.requests.append(Request(service, method, body, claims))
            if method in self.failures:
                raise self.failures.pop(method)
            reply = getattr(self, f"_{method}")(body, claims)
        except Refused as exc:
            return web.json_response({"code": exc.code, "msg": exc.msg}, status=exc.status)
        return web.Response(body=reply.SerializeToString(), content_type="application/protobuf")

    def _authenticate(self, request: web.Request) -> Claims:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not token:
            raise Refused(401, "unauthenticated", "no token")
        try:
            return api.TokenVerifier(self.api_key, self.api_secret).verify(token)
        except Exception as exc:
            raise Refused(401, "unauthenticated", f"invalid token: {exc}") from None

    @staticmethod
    def _room_admin(claims: Claims, room: str) -> None:
        video = claims.video
        if video is None or not video.room_admin or video.room != room:
            raise Refused(403, "permission_denied", f"needs roomAdmin for {room!r}")

    @staticmethod
    def _sip_admin(claims: Claims) -> None:
        if claims.sip is None or not claims.sip.admin:
            raise Refused(403, "permission_denied", "needs the SIP admin grant")

    @staticmethod
    def _require(condition: bool, msg: str) -> None:
        if not condition:
            raise Refused(400, "invalid_argument", msg)

    def _CreateDispatch(self, req: api.CreateAgentDispatchRequest, claims: Claims):
        self._room_admin(claims, req.room)
        self._require(bool(req.agent_name), "agent_name is required")
        self._require(bool(req.room), "room is required")
        dispatch = api.AgentDispatch(
            id=f"AD_{uuid.uuid4().hex[:12]}",
            agent_name=req.agent_name,
            room=req.room,
            metadata=req.metadata,
        )
        self.dispatches[dispatch.id] = dispatch
        return dispatch

    def _ListDispatch(self, req: api.ListAgentDispatchRequest, claims: Claims):
        self._room_admin(claims, req.room)
        return api.ListAgentDispatchResponse(
            agent_dispatches=[d for d in self.dispatches.values() if d.room == req.room]
        )

    def _check_trunk(self, trunk: api.SIPInboundTrunkInfo, own_id: str | None) -> None:
        self._require(len(trunk.numbers) > 0, "an inbound trunk needs its numbers")
        for number in trunk.numbers:
            self._require(bool(E164.match(number)), f"{number!r} is not an E.164 number")
            for other_id, other in self.trunks.items():
                if other_id != own_id and number in other.numbers:
                    raise Refused(409, "already_exists", f"{number} is on trunk {other_id}")

    def _CreateSIPInboundTrunk(self, req: api.CreateSIPInboundTrunkRequest, claims: Claims):
        self._sip_admin(claims)
        self._check_trunk(req.trunk, None)
        trunk = api.SIPInboundTrunkInfo()
        trunk.CopyFrom(req.trunk)
        trunk.sip_trunk_id = f"ST_{uuid.uuid4().hex[:12]}"
        self.trunks[trunk.sip_trunk_id] = trunk
        return trunk

    def _UpdateSIPInboundTrunk(self, req: api.UpdateSIPInboundTrunkRequest, claims: Claims):
        self._sip_admin(claims)
        if req.sip_trunk_id not in self.trunks:
            raise Refused(404, "not_found", f"no trunk {req.sip_trunk_id}")
        self._require(req.HasField("replace"), "only replace is supported here")
        self._check_trunk(req.replace, req.sip_trunk_id)
        trunk = api.SIPInboundTrunkInfo()
        trunk.CopyFrom(req.replace)
        trunk.sip_trunk_id = req.sip_trunk_id
        self.trunks[trunk.sip_trunk_id] = trunk
        return trunk

    def _DeleteSIPTrunk(self, req: api.DeleteSIPTrunkRequest, claims: Claims):
        self._sip_admin(claims)
        trunk = self.trunks.pop(req.sip_trunk_id, None)
        if trunk is None:
            raise Refused(404, "not_found", f"no trunk {req.sip_trunk_id}")
        return api.SIPTrunkInfo(sip_trunk_id=req.sip_trunk_id)

    def _check_rule(self, rule: api.SIPDispatchRuleInfo) -> None:
        self._require(rule.HasField("rule"), "a dispatch rule needs its rule")
        for trunk_id in rule.trunk_ids:
            self._require(trunk_id in self.trunks, f"no trunk {trunk_id}")
        for agent in rule.room_config.agents:
            self._require(bool(agent.agent_name), "a room's agent needs its agent_name")

    def _CreateSIPDispatchRule(self, req: api.CreateSIPDispatchRuleRequest, claims: Claims):
        self._sip_admin(claims)
        self._check_rule(req.dispatch_rule)
        rule = api.SIPDispatchRuleInfo()
        rule.CopyFrom(req.dispatch_rule)
        rule.sip_dispatch_rule_id = f"SDR_{uuid.uuid4().hex[:12]}"
        self.rules[rule.sip_dispatch_rule_id] = rule
        return rule

    def _UpdateSIPDispatchRule(self, req: api.UpdateSIPDispatchRuleRequest, claims: Claims):
        self._sip_admin(claims)
        if req.sip_dispatch_rule_id not in self.rules:
            raise Refused(404, "not_found", f"no dispatch rule {req.sip_dispatch_rule_id}")
        self._require(req.HasField("replace"), "only replace is supported here")
        self._check_rule(req.replace)
        rule = api.SIPDispatchRuleInfo()
        rule.CopyFrom(req.replace)
        rule.sip_dispatch_rule_id = req.sip_dispatch_rule_id
        self.rules[rule.sip_dispatch_rule_id] = rule
        return rule

    def _DeleteSIPDispatchRule(self, req: api.DeleteSIPDispatchRuleRequest, claims: Claims):
        self._sip_admin(claims)
        if self.rules.pop(req.sip_dispatch_rule_id, None) is None:
            raise Refused(404, "not_found", f"no dispatch rule {req.sip_dispatch_rule_id}")
        return api.SIPDispatchRuleInfo(sip_dispatch_rule_id=req.sip_dispatch_rule_id)

    def _DeleteRoom(self, req: api.DeleteRoomRequest, claims: Claims):
        if claims.video is None or not claims.video.room_create:
            raise Refused(403, "permission_denied", "needs roomCreate")
        self.deleted_rooms.append(req.room)
        return api.DeleteRoomResponse()
