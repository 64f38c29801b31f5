"""Workflow pieces that need no server: templates, conditions, trigger
matching and graph validation."""

from __future__ import annotations

import pytest

from agents_runtime.workflows.conditions import evaluate
from agents_runtime.workflows.triggers import accepts
from agents_runtime.workflows.webhook import _public
from hub.errors import ApiError
from hub.templates import TemplateError, paths, render, render_value
from hub.workflow_graph import ConditionData, Graph, validate

SCOPE = {
    "trigger": {"amount": 42, "tags": ["vip", "new"]},
    "message": {"content": "This is URGENT, please call me"},
    "contact": {"email": "ada@example.com", "first_name": "Ada", "company_name": None},
    "vars": {"score": "7", "when": "2026-11-24T10:00:00+00:00"},
    "nodes": {"hook": {"output": {"status": 200, "body": {"id": "x-1"}}}},
}


def test_templates_render_paths_and_keep_types():
    assert render("Hi {{ contact.first_name }}!", SCOPE) == "Hi Ada!"
    assert render("{{trigger.amount}}", SCOPE) == 42  # alone: keeps its type
    assert render("{{trigger.amount}} EUR", SCOPE) == "42 EUR"
    assert render("{{contact.company_name}}|{{contact.missing}}", SCOPE) == "|"
    assert render("{{nodes.hook.output.body.id}}", SCOPE) == "x-1"
    assert render("{{trigger.tags.0}}", SCOPE) == "vip"
    assert render_value({"to": "{{contact.email}}", "n": ["{{vars.score}}"]}, SCOPE) == {
        "to": "ada@example.com",
        "n": ["7"],
    }
    assert paths("{{vars.a}} and {{ nodes.n-1.output.x }}") == ["vars.a", "nodes.n-1.output.x"]


@pytest.mark.parametrize(
    "text",
    [
        "{{ secrets.key }}",
        "{{contact.email",
        "contact.email}}",
        "{{ a b }}",
        "{{nodes.x.y}}",
        "{{}}",
    ],
)
def test_templates_that_do_not_parse(text):
    with pytest.raises(TemplateError):
        paths(text)


def cond(**data):
    return ConditionData.model_validate(data).condition()


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"field": "message.content", "operator": "contains", "value": "urgent"}, True),
        ({"field": "message.content", "operator": "not_contains", "value": "refund"}, True),
        ({"field": "trigger.tags", "operator": "contains", "value": "VIP"}, True),
        ({"field": "trigger.amount", "operator": "equals", "value": "42"}, True),
        ({"field": "trigger.amount", "operator": "not_equals", "value": 42}, False),
        ({"field": "vars.score", "operator": "gt", "value": 5}, True),
        ({"field": "vars.score", "operator": "gte", "value": "7"}, True),
        ({"field": "vars.score", "operator": "lt", "value": 7}, False),
        ({"field": "vars.score", "operator": "lte", "value": "{{trigger.amount}}"}, True),
        ({"field": "vars.when", "operator": "gt", "value": "2026-01-01T00:00:00+00:00"}, True),
        ({"field": "message.content", "operator": "gt", "value": 3}, False),
        ({"field": "contact.company_name", "operator": "is_empty"}, True),
        ({"field": "contact.email", "operator": "is_empty"}, False),
        ({"field": "contact.email", "operator": "exists"}, True),
        ({"field": "contact.phone", "operator": "exists"}, False),
        ({"field": "contact.email", "operator": "matches", "value": r"@example\.com$"}, True),
        (
            {
                "field": "{{contact.first_name}} {{vars.score}}",
                "operator": "equals",
                "value": "Ada 7",
            },
            True,
        ),
        (
            {
                "all": [
                    {"field": "vars.score", "operator": "gt", "value": 5},
                    {
                        "any": [
                            {"field": "contact.email", "operator": "contains", "value": "nope"},
                            {"field": "trigger.amount", "operator": "gte", "value": 40},
                        ]
                    },
                ]
            },
            True,
        ),
        ({"any": [{"field": "contact.phone", "operator": "exists"}]}, False),
    ],
)
def test_conditions(data, expected):
    assert evaluate(cond(**data), SCOPE) is expected


def message_workflow(**config):
    return {"trigger_type": "message_received", "trigger_config": config}


@pytest.mark.parametrize(
    ("config", "content", "expected"),
    [
        ({"keywords": ["urgent", "emergency"]}, "This is URGENT!", True),
        ({"keywords": ["urgent"]}, "not urgently", False),  # whole words only
        ({"keywords": ["call me", "urgent"], "match": "all"}, "Urgent: call me", True),
        ({"keywords": ["call me", "urgent"], "match": "all"}, "Urgent!", False),
        ({}, "anything", True),
        ({"channel": "voice"}, "anything", False),
    ],
)
def test_message_received_matching(config, content, expected):
    context = {"message": {"content": content}, "conversation": {"channel": "chat"}}
    assert accepts(message_workflow(**config), context) is expected


def test_other_trigger_matching():
    ended = {"trigger_type": "conversation_ended", "trigger_config": {"min_duration_seconds": 60}}
    conversation = {
        "started_at": "2026-01-01T10:00:00+00:00",
        "ended_at": "2026-01-01T10:00:30+00:00",
    }
    assert not accepts(ended, {"conversation": conversation})
    conversation["ended_at"] = "2026-01-01T10:05:00+00:00"
    assert accepts(ended, {"conversation": conversation})

    stage = {
        "trigger_type": "deal_stage_changed",
        "trigger_config": {"from": "lead", "to": "closed_won"},
    }
    assert accepts(stage, {"trigger": {"stage_from": "lead", "stage_to": "closed_won"}})
    assert not accepts(stage, {"trigger": {"stage_from": "qualified", "stage_to": "closed_won"}})

    updated = {"trigger_type": "contact_updated", "trigger_config": {"fields": ["email"]}}
    assert accepts(updated, {"trigger": {"changed": ["email", "phone"]}})
    assert not accepts(updated, {"trigger": {"changed": ["phone"]}})


TRIGGER = {"id": "t", "type": "trigger", "data": {}}


def check(nodes, edges, trigger_type="message_received", config=None):
    return validate(trigger_type, config or {}, nodes, edges)


def refused(nodes, edges, **kw) -> dict:
    with pytest.raises(ApiError) as caught:
        check(nodes, edges, **kw)
    assert caught.value.status == 400 and caught.value.code == "VALIDATION_ERROR"
    return caught.value.details


def test_a_valid_graph_is_normalised_and_ordered():
    nodes = [
        {"id": "end", "type": "end", "data": {}, "position": {"x": 1, "y": 2}},
        {
            "id": "c",
            "type": "condition",
            "data": {"field": "message.content", "operator": "exists"},
        },
        TRIGGER,
        {
            "id": "m",
            "type": "send_message",
            "data": {"content": "Hi {{contact.first_name}}", "label": "x"},
        },
    ]
    edges = [
        {"id": "e1", "source": "t", "target": "c"},
        {"id": "e2", "source": "c", "target": "m", "sourceHandle": "yes"},
        {"id": "e3", "source": "m", "target": "end"},
        {"id": "e4", "source": "c", "target": "end", "sourceHandle": "no"},
    ]
    _, saved_nodes, _ = check(nodes, edges)
    assert saved_nodes[0]["position"] == {"x": 1, "y": 2}  # editor state is kept
    assert saved_nodes[3]["data"]["label"] == "x"
    assert Graph(saved_nodes, edges).order == ["t", "c", "m", "end"]


@pytest.mark.parametrize(
    ("nodes", "edges", "field", "node_id"),
    [
        ([TRIGGER, {"id": "x", "type": "teleport"}], [], "nodes.x.type", "x"),
        ([TRIGGER, {**TRIGGER, "id": "t2"}], [], "nodes", "t"),
        ([{"id": "m", "type": "end"}], [], "nodes", None),
        ([TRIGGER], [{"id": "e", "source": "t", "target": "ghost"}], "edges.e.target", None),
        (
            [TRIGGER, {"id": "m", "type": "send_message", "data": {}}],
            [],
            "nodes.m.data.content",
            "m",
        ),
        (
            [TRIGGER, {"id": "m", "type": "send_message", "data": {"content": "{{ password }}"}}],
            [],
            "nodes.m.data",
            "m",
        ),
        (
            [
                TRIGGER,
                {
                    "id": "m",
                    "type": "send_message",
                    "data": {"content": "{{nodes.ghost.output.x}}"},
                },
            ],
            [],
            "nodes.m.data",
            "m",
        ),
        (
            [
                TRIGGER,
                {"id": "c", "type": "condition", "data": {"field": "x.y", "operator": "exists"}},
            ],
            [],
            "nodes.c.data",
            "c",
        ),
        (
            [
                TRIGGER,
                {
                    "id": "c",
                    "type": "condition",
                    "data": {"field": "vars.a", "operator": "matches", "value": "("},
                },
            ],
            [],
            "nodes.c.data",
            "c",
        ),
        (
            [
                TRIGGER,
                {"id": "c", "type": "condition", "data": {"field": "vars.a", "operator": "exists"}},
                {"id": "end", "type": "end"},
            ],
            [{"id": "e", "source": "c", "target": "end"}],
            "edges.e.sourceHandle",
            "c",
        ),
        (
            [TRIGGER, {"id": "w", "type": "webhook", "data": {"url": "ftp://x"}}],
            [],
            "nodes.w.data.url",
            "w",
        ),
        (
            [TRIGGER, {"id": "d", "type": "delay", "data": {"seconds": 5, "minutes": 1}}],
            [],
            "nodes.d.data",
            "d",
        ),
        (
            [
                TRIGGER,
                {"id": "a", "type": "set_variable", "data": {"name": "x"}},
                {"id": "b", "type": "set_variable", "data": {"name": "y", "value": 1}},
            ],
            [
                {"id": "e1", "source": "a", "target": "b"},
                {"id": "e2", "source": "b", "target": "a"},
            ],
            None,
            "a",
        ),
    ],
)
def test_invalid_graphs_point_at_the_node(nodes, edges, field, node_id):
    details = refused(nodes, edges)
    if field is not None:
        assert any(key.startswith(field) for key in details["fields"]), details
    if node_id is not None:
        assert node_id in details["node_ids"], details


def test_a_cycle_is_refused():
    nodes = [
        TRIGGER,
        {"id": "a", "type": "set_variable", "data": {"name": "x", "value": 1}},
        {"id": "b", "type": "set_variable", "data": {"name": "y", "value": 1}},
    ]
    edges = [
        {"id": "e0", "source": "t", "target": "a"},
        {"id": "e1", "source": "a", "target": "b"},
        {"id": "e2", "source": "b", "target": "a"},
    ]
    assert refused(nodes, edges)["fields"] == {"edges": "the graph has a cycle"}


@pytest.mark.parametrize(
    ("trigger_type", "config", "field"),
    [
        ("schedule", {"cron": "every day"}, "trigger_config.cron"),
        ("schedule", {"cron": "0 9 * * *", "timezone": "Mars/Olympus"}, "trigger_config.timezone"),
        ("schedule", {}, "trigger_config.cron"),
        ("message_received", {"keywords": "urgent"}, "trigger_config.keywords"),
        ("message_received", {"match": "some"}, "trigger_config.match"),
        ("deal_stage_changed", {"to": "won"}, "trigger_config.to"),
        ("contact_created", {"anything": 1}, "trigger_config.anything"),
    ],
)
def test_invalid_trigger_configs(trigger_type, config, field):
    details = refused([TRIGGER], [], trigger_type=trigger_type, config=config)
    assert field in details["fields"], details


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("93.184.216.34", True),
        ("2606:4700::1111", True),
        ("127.0.0.1", False),
        ("10.0.0.5", False),
        ("169.254.169.254", False),  # cloud metadata
        ("::1", False),
        ("fe80::1%eth0", False),
        ("::ffff:127.0.0.1", False),  # IPv4-mapped
        ("::127.0.0.1", False),  # IPv4-compatible
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::5db8:d822", True),  # NAT64 of a public address
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2001:0:4136:e378:8000:63bf:f5ff:fffe", False),  # Teredo of 10.0.0.1
    ],
)
def test_only_public_addresses_are_called(address, public):
    assert _public(address) is public


def test_regular_expressions_are_linear_time_and_fixed():
    # RE2 has no backtracking: the classic catastrophic pattern answers at once.
    slow = cond(field="message.content", operator="matches", value="^(a+)+$")
    assert evaluate(slow, {"message": {"content": "a" * 5000 + "!"}}) is False
    for pattern in [r"(a)\1", "(?=x)y", "{{trigger.pattern}}"]:
        nodes = [
            TRIGGER,
            {
                "id": "c",
                "type": "condition",
                "data": {"field": "message.content", "operator": "matches", "value": pattern},
            },
        ]
        assert "c" in refused(nodes, [])["node_ids"], pattern


def test_a_webhook_fits_in_the_lease():
    nodes = [
        TRIGGER,
        {"id": "w", "type": "webhook", "data": {"url": "https://x.test", "timeout_seconds": 60}},
    ]
    assert "nodes.w.data.timeout_seconds" in refused(nodes, [])["fields"]
