"""What a workflow is made of: its trigger, its node types and their
parameters, and the checks a graph passes before it is saved.

The graph is stored as React Flow stores it, so a visual editor can save it
directly: `nodes: [{"id", "type", "data": {...}}]` (other keys, such as
`position`, are kept as they are) and `edges: [{"id", "source", "target",
"sourceHandle"?}]`; a condition's branches leave through the handles "yes"
and "no". Node parameters are templates (hub.templates) wherever a value may
come from the run.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import re2
from croniter import croniter
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from hub.errors import ApiError
from hub.templates import TemplateError, all_paths, paths

TriggerType = Literal[
    "conversation_started",
    "message_received",
    "conversation_ended",
    "contact_created",
    "contact_updated",
    "deal_created",
    "deal_stage_changed",
    "webhook",
    "schedule",
]
Channel = Literal["chat", "voice", "phone"]
Stage = Literal["lead", "qualified", "proposal", "negotiation", "closed_won", "closed_lost"]
ContactField = Literal["email", "phone", "first_name", "last_name", "company_name", "tags"]

M = TypeVar("M", bound=BaseModel)

MAX_NODES = 100
MAX_EDGES = 200
MAX_DELAY_SECONDS = 30 * 24 * 3600
# A running execution's lease; every node's time limit is shorter (a webhook's
# with all its attempts), so a live runner never loses its lease mid-node.
LEASE_SECONDS = 300

Text = Annotated[str, StringConstraints(min_length=1, max_length=10_000)]
Short = Annotated[str, StringConstraints(min_length=1, max_length=500)]
Identifier = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- triggers ---------------------------------------------------------------


class ConversationStarted(_Strict):
    agent_id: UUID | None = None
    channel: Channel | None = None


class MessageReceived(_Strict):
    """Keywords match whole words, case-insensitively; `match` says whether any
    or all of them must appear. No keywords: every visitor message."""

    keywords: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=50
    )
    match: Literal["any", "all"] = "any"
    agent_id: UUID | None = None
    channel: Channel | None = None


class ConversationEnded(_Strict):
    min_duration_seconds: int = Field(0, ge=0)
    agent_id: UUID | None = None
    channel: Channel | None = None


class ContactUpdated(_Strict):
    """Fires when any of `fields` changed (no fields: any change)."""

    fields: list[ContactField] = Field(default_factory=list)


class DealStageChanged(_Strict):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: Stage | None = Field(None, alias="from")
    to: Stage | None = None


class Schedule(_Strict):
    cron: str = Field(min_length=1, max_length=100)
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError("must be a five-field cron expression, e.g. '0 9 * * 1-5'")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown time zone") from None
        return value

    def next_after(self, moment: datetime) -> datetime:
        local = moment.astimezone(ZoneInfo(self.timezone))
        return croniter(self.cron, local).get_next(datetime).astimezone(UTC)


class NoConfig(_Strict):
    pass


TRIGGER_CONFIGS: dict[str, type[BaseModel]] = {
    "conversation_started": ConversationStarted,
    "message_received": MessageReceived,
    "conversation_ended": ConversationEnded,
    "contact_created": NoConfig,
    "contact_updated": ContactUpdated,
    "deal_created": NoConfig,
    "deal_stage_changed": DealStageChanged,
    "webhook": NoConfig,
    "schedule": Schedule,
}


def trigger_config(trigger_type: str, config: dict[str, Any]) -> BaseModel:
    return TRIGGER_CONFIGS[trigger_type].model_validate(config)


# --- nodes ------------------------------------------------------------------


class NodeData(BaseModel):
    """Options every node has. Other keys (a label, editor state) are kept."""

    model_config = ConfigDict(extra="allow")
    on_error: Literal["stop", "continue"] = "stop"
    # Bounds one run of the node; a webhook's bounds each attempt.
    timeout_seconds: float = Field(10, gt=0, le=120)


class Comparison(_Strict):
    """`field` is a path (message.content) or a template; `value` may be a template."""

    field: Short
    operator: Literal[
        "equals",
        "not_equals",
        "contains",
        "not_contains",
        "gt",
        "gte",
        "lt",
        "lte",
        "is_empty",
        "exists",
        "matches",
    ]
    value: Any = None

    @field_validator("field")
    @classmethod
    def _path(cls, value: str) -> str:
        try:
            paths(value if "{{" in value else f"{{{{{value}}}}}")
        except TemplateError as exc:
            raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _value(self) -> Comparison:
        if self.operator in ("is_empty", "exists"):
            return self
        if self.value is None:
            raise ValueError(f"the operator {self.operator} needs a value")
        if self.operator == "matches":
            if not isinstance(self.value, str) or len(self.value) > 500:
                raise ValueError("matches needs a regular expression of at most 500 characters")
            if "{{" in self.value:
                raise ValueError("a regular expression cannot be a template")
            try:
                re2.compile(self.value)
            except re2.error as exc:
                raise ValueError(
                    f"not a regular expression RE2 accepts (no backreferences or "
                    f"lookarounds): {exc}"
                ) from None
        return self


class Group(_Strict):
    all: list[Condition] | None = Field(None, min_length=1, max_length=50)
    any: list[Condition] | None = Field(None, min_length=1, max_length=50)

    @model_validator(mode="after")
    def _one(self) -> Group:
        if (self.all is None) == (self.any is None):
            raise ValueError("a group has either all or any")
        return self


Condition = Comparison | Group
Group.model_rebuild()


class ConditionData(NodeData):
    """Either one comparison or an all/any group (groups nest)."""

    field: Short | None = None
    operator: str | None = None
    value: Any = None
    all: list[Condition] | None = None
    any: list[Condition] | None = None

    def condition(self) -> Comparison | Group:
        if self.field is not None or self.operator is not None:
            return Comparison.model_validate(
                {"field": self.field, "operator": self.operator, "value": self.value}
            )
        return Group.model_validate({"all": self.all, "any": self.any})

    @model_validator(mode="after")
    def _valid(self) -> ConditionData:
        self.condition()
        return self


class SendMessage(NodeData):
    content: Text
    sender: Literal["agent", "system"] = "agent"


class CreateContact(NodeData):
    email: Short | None = None
    phone: Short | None = None
    first_name: Short | None = None
    last_name: Short | None = None
    company_name: Short | None = None
    tags: list[Short] = Field(default_factory=list, max_length=20)

    @model_validator(mode="after")
    def _identifiable(self) -> CreateContact:
        if not (self.email or self.phone):
            raise ValueError("create_contact needs an email or a phone")
        return self


class UpdateContact(NodeData):
    contact_id: Short | None = None  # default: the contact of the run
    fields: dict[Literal["email", "phone", "first_name", "last_name", "company_name"], Short] = (
        Field(min_length=1)
    )


class Tagging(NodeData):
    tag: Annotated[str, StringConstraints(min_length=1, max_length=50)]
    target: Literal["conversation", "contact"] = "conversation"


class CreateDeal(NodeData):
    title: Short
    value: float | Short = 0
    stage: Stage = "lead"
    probability: int = Field(10, ge=0, le=100)


class UpdateDeal(NodeData):
    deal_id: Short | None = None  # default: the deal of the run
    title: Short | None = None
    value: float | Short | None = None
    stage: Stage | None = None
    probability: int | None = Field(None, ge=0, le=100)

    @model_validator(mode="after")
    def _changes(self) -> UpdateDeal:
        if all(getattr(self, f) is None for f in ("title", "value", "stage", "probability")):
            raise ValueError("update_deal needs a title, value, stage or probability")
        return self


class Notify(NodeData):
    title: Short
    body: Annotated[str, StringConstraints(max_length=2000)] | None = None
    user_id: UUID | None = None
    role: Literal["owner", "admin", "member"] | None = None


class Webhook(NodeData):
    url: Annotated[str, StringConstraints(min_length=1, max_length=2000)]
    method: Literal["POST", "PUT", "PATCH", "GET", "DELETE"] = "POST"
    headers: dict[str, Annotated[str, StringConstraints(max_length=2000)]] = Field(
        default_factory=dict, max_length=20
    )
    # Any JSON; strings in it are templates. Default: the trigger's data.
    body: Any = None
    retries: int = Field(2, ge=0, le=5)
    timeout_seconds: float = Field(10, gt=0, le=30)  # per attempt

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not re.match(r"^(https?://|\{\{)", value):
            raise ValueError("must be an http(s) URL")
        return value

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z0-9-]{1,100}", name):
                raise ValueError(f"{name!r} is not a header name")
            if name.lower().startswith("x-syntera-") or name.lower() in ("host", "content-length"):
                raise ValueError(f"the header {name} is set by the hub")
        return value


class Delay(NodeData):
    """Exactly one of seconds, minutes, hours, days."""

    seconds: float | None = Field(None, gt=0)
    minutes: float | None = Field(None, gt=0)
    hours: float | None = Field(None, gt=0)
    days: float | None = Field(None, gt=0)

    @property
    def duration(self) -> float:
        units = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
        return sum((getattr(self, u) or 0) * n for u, n in units.items())

    @model_validator(mode="after")
    def _one(self) -> Delay:
        given = [u for u in ("seconds", "minutes", "hours", "days") if getattr(self, u)]
        if len(given) != 1:
            raise ValueError("a delay has exactly one of seconds, minutes, hours, days")
        if self.duration > MAX_DELAY_SECONDS:
            raise ValueError("a delay is at most 30 days")
        return self


class Handoff(NodeData):
    reason: Short | None = None


class SetVariable(NodeData):
    name: Identifier
    value: Any  # a template, or any JSON value with templates inside

    @model_validator(mode="before")
    @classmethod
    def _value_given(cls, data: Any) -> Any:
        if isinstance(data, dict) and "value" not in data:
            raise ValueError("set_variable needs a value")
        return data


class Llm(NodeData):
    """Classify the input into one of `categories` (into vars.<variable>), or
    extract `fields` (name → what it is) from it (into vars.<name>)."""

    mode: Literal["classify", "extract"]
    input: Text = "{{message.content}}"
    instructions: Annotated[str, StringConstraints(max_length=4000)] | None = None
    categories: list[Short] | None = Field(None, min_length=2, max_length=20)
    fields: dict[Identifier, Short] | None = Field(None, min_length=1, max_length=20)
    variable: Identifier = "category"
    model: Short | None = None  # default: the conversation's agent's model
    timeout_seconds: float = Field(30, gt=0, le=120)

    @model_validator(mode="after")
    def _mode(self) -> Llm:
        if self.mode == "classify" and not self.categories:
            raise ValueError("classify needs categories")
        if self.mode == "extract" and not self.fields:
            raise ValueError("extract needs fields")
        return self


NODE_TYPES: dict[str, type[NodeData]] = {
    "trigger": NodeData,
    "condition": ConditionData,
    "send_message": SendMessage,
    "create_contact": CreateContact,
    "update_contact": UpdateContact,
    "add_tag": Tagging,
    "remove_tag": Tagging,
    "create_deal": CreateDeal,
    "update_deal": UpdateDeal,
    "notify": Notify,
    "webhook": Webhook,
    "delay": Delay,
    "handoff": Handoff,
    "set_variable": SetVariable,
    "llm": Llm,
    "end": NodeData,
}


def node_data(node: dict[str, Any]) -> NodeData:
    """A stored node's parameters, typed (the graph was validated when saved)."""
    return NODE_TYPES[node["type"]].model_validate(node.get("data") or {})


# --- the graph --------------------------------------------------------------

NodeId = Annotated[str, StringConstraints(pattern=r"^[\w-]{1,100}$")]


class Node(BaseModel):
    model_config = ConfigDict(extra="allow")  # position, width... as the editor saves them
    id: NodeId
    type: str = Field(min_length=1, max_length=50)
    data: dict[str, Any] = Field(default_factory=dict)


class Edge(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    source: NodeId
    target: NodeId
    sourceHandle: str | None = None


class Graph:
    """A validated graph, with what the engine needs to walk it."""

    def __init__(self, nodes: list[dict[str, Any]], edges: list[dict[str, Any]]) -> None:
        self.nodes = {n["id"]: n for n in nodes}
        self.edges = edges
        self.outgoing: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.incoming: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for edge in edges:
            self.outgoing[edge["source"]].append(edge)
            self.incoming[edge["target"]].append(edge)
        self.trigger = next(n["id"] for n in nodes if n["type"] == "trigger")
        self.order = _topological(list(self.nodes), edges)


def _topological(ids: list[str], edges: list[dict[str, Any]]) -> list[str]:
    """Kahn's algorithm; raises ValueError on a cycle. Ties keep the nodes' order."""
    indegree = dict.fromkeys(ids, 0)
    for edge in edges:
        indegree[edge["target"]] += 1
    ready = [i for i in ids if indegree[i] == 0]
    order = []
    while ready:
        current = ready.pop(0)
        order.append(current)
        for edge in edges:
            if edge["source"] == current:
                indegree[edge["target"]] -= 1
                if indegree[edge["target"]] == 0:
                    ready.append(edge["target"])
    if len(order) != len(ids):
        raise ValueError("the graph has a cycle")
    return order


def _parse_each(model: type[M], raws: list, prefix: str, fields: dict[str, str]) -> list[M]:
    """Each item parsed; the failures go into `fields` as `<prefix>.<index>...`."""
    parsed: list[M] = []
    for index, raw in enumerate(raws):
        try:
            parsed.append(model.model_validate(raw))
        except ValidationError as exc:
            fields.update(_field_errors(f"{prefix}.{index}", exc))
    return parsed


def _field_errors(prefix: str, exc: ValidationError) -> dict[str, str]:
    errors = {}
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"])
        errors[f"{prefix}.{where}".rstrip(".")] = error["msg"]
    return errors


def validate(
    trigger_type: str, config: dict[str, Any], nodes: Any, edges: Any
) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """Check a workflow before it is saved; returns the normalised trigger
    config, nodes and edges, or raises a 400 whose details point at the node
    (`fields` keyed by `nodes.<id>...` or `edges.<id>...`, and `node_ids`)."""
    fields: dict[str, str] = {}
    bad_nodes: list[str] = []

    def fail() -> ApiError:
        return ApiError(
            400,
            "VALIDATION_ERROR",
            "The workflow is not valid",
            {"fields": fields, "node_ids": list(dict.fromkeys(bad_nodes))},
        )

    try:
        normal_config = trigger_config(trigger_type, config).model_dump(
            mode="json", by_alias=True, exclude_none=True
        )
    except ValidationError as exc:
        fields.update(_field_errors("trigger_config", exc))
        normal_config = {}

    if not isinstance(nodes, list) or len(nodes) > MAX_NODES:
        fields["nodes"] = f"must be a list of at most {MAX_NODES} nodes"
        raise fail()
    if not isinstance(edges, list) or len(edges) > MAX_EDGES:
        fields["edges"] = f"must be a list of at most {MAX_EDGES} edges"
        raise fail()

    parsed_nodes = _parse_each(Node, nodes, "nodes", fields)
    parsed_edges = _parse_each(Edge, edges, "edges", fields)
    if fields:
        raise fail()

    ids = [n.id for n in parsed_nodes]
    for duplicate in {i for i in ids if ids.count(i) > 1}:
        fields[f"nodes.{duplicate}.id"] = "node ids must be unique"
        bad_nodes.append(duplicate)
    edge_ids = [e.id for e in parsed_edges]
    for duplicate in {i for i in edge_ids if edge_ids.count(i) > 1}:
        fields[f"edges.{duplicate}.id"] = "edge ids must be unique"
    triggers = [n.id for n in parsed_nodes if n.type == "trigger"]
    if len(triggers) != 1:
        fields["nodes"] = f"a workflow has exactly one trigger node, this one has {len(triggers)}"
        bad_nodes.extend(triggers)

    types = {n.id: n.type for n in parsed_nodes}
    for node in parsed_nodes:
        model = NODE_TYPES.get(node.type)
        if model is None:
            fields[f"nodes.{node.id}.type"] = f"unknown node type; known: {', '.join(NODE_TYPES)}"
            bad_nodes.append(node.id)
            continue
        try:
            model.model_validate(node.data)
        except ValidationError as exc:
            fields.update(_field_errors(f"nodes.{node.id}.data", exc))
            bad_nodes.append(node.id)
            continue
        try:
            for path in all_paths(node.data):
                parts = path.split(".")
                if parts[0] == "nodes" and parts[1] not in types:
                    raise TemplateError(f"{path!r} refers to no node of this workflow")
        except TemplateError as exc:
            fields[f"nodes.{node.id}.data"] = f"template: {exc}"
            bad_nodes.append(node.id)

    for edge in parsed_edges:
        for end in ("source", "target"):
            if getattr(edge, end) not in types:
                fields[f"edges.{edge.id}.{end}"] = f"no node {getattr(edge, end)!r}"
        if edge.target in types and types[edge.target] == "trigger":
            fields[f"edges.{edge.id}.target"] = "nothing leads into the trigger"
            bad_nodes.append(edge.target)
        source_type = types.get(edge.source)
        if source_type == "condition" and edge.sourceHandle not in ("yes", "no"):
            fields[f"edges.{edge.id}.sourceHandle"] = 'a condition leaves through "yes" or "no"'
            bad_nodes.append(edge.source)
        if source_type == "end":
            fields[f"edges.{edge.id}.source"] = "nothing follows an end node"
            bad_nodes.append(edge.source)
    if fields:
        raise fail()

    edge_dicts = [e.model_dump(exclude_none=True) for e in parsed_edges]
    try:
        _topological(ids, edge_dicts)
    except ValueError:
        fields["edges"] = "the graph has a cycle"
        raise fail() from None
    return normal_config, [n.model_dump() for n in parsed_nodes], edge_dicts
