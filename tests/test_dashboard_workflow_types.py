"""The dashboard's description of workflow triggers and nodes
(static/app/workflows/types.json) against what the hub accepts
(hub.workflow_graph): the same types, the same parameters, the same choices,
defaults and limits, so the editor cannot drift from the API. And the test
data the editor starts with is accepted by the trigger as configured."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from agents_runtime.workflows.triggers import accepts, load_context
from hub.workflow_graph import NODE_TYPES, TRIGGER_CONFIGS, Comparison, TriggerType, trigger_config

STATIC = Path(__file__).resolve().parent.parent / "static" / "app" / "workflows"
TYPES = json.loads((STATIC / "types.json").read_text())

# What each kind of form control may edit, as JSON Schema types.
KIND_TYPES = {
    "text": {"string"},
    "textarea": {"string"},
    "number": {"number"},
    "integer": {"integer"},
    "choice": {"string"},
    "choices": {"array"},
    "list": {"array"},
    "object": {"object"},
    "agent": {"string"},
    "user": {"string"},
    "json": None,  # any JSON
    "any": None,
}


def variants(schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The schema's alternatives, without `null` (optional is `required`'s job)."""
    options = schema.get("anyOf", [schema])
    return [o for o in options if o.get("type") != "null"]


def enum_of(schema: dict[str, Any]) -> list[str] | None:
    for option in variants(schema):
        for candidate in (option, option.get("items") or {}):
            if "enum" in candidate:
                return candidate["enum"]
    return None


def check_fields(where: str, described: list[dict], schema: dict[str, Any]) -> None:
    properties = schema.get("properties", {})
    required = set(schema.get("required", []))
    names = [f["name"] for f in described]
    assert len(names) == len(set(names)), f"{where}: a field is described twice"
    assert set(names) == set(properties), f"{where}: described {names}, the hub has {properties}"
    for field in described:
        name, kind = field["name"], field["kind"]
        prop = properties[name]
        assert field.get("label"), f"{where}.{name}: no label"
        assert kind in KIND_TYPES, f"{where}.{name}: unknown kind {kind}"
        assert field.get("required", False) == (name in required), f"{where}.{name}: required"
        types = {o.get("type") for o in variants(prop)}
        if KIND_TYPES[kind] is not None:
            assert types & KIND_TYPES[kind], f"{where}.{name}: {kind} cannot edit {types}"
        if kind in ("agent", "user"):
            assert any(o.get("format") == "uuid" for o in variants(prop)), f"{where}.{name}"
        if kind in ("choice", "choices"):
            assert field["options"] == enum_of(prop), f"{where}.{name}: options"
        elif kind != "any":
            assert enum_of(prop) is None, f"{where}.{name}: the hub has choices"
        if "default" in field or prop.get("default") not in (None, [], {}):
            assert field.get("default") == prop.get("default"), f"{where}.{name}: default"
        for limit, key in (("max", "maximum"), ("min", "minimum")):
            bound = next((o[key] for o in variants(prop) if key in o), None)
            if limit in field or (bound is not None and limit == "max"):
                assert field.get(limit) == bound, f"{where}.{name}: {limit}"
        if "labels" in field:
            assert set(field["labels"]) == set(field["options"]), f"{where}.{name}: labels"


def test_the_same_trigger_types():
    assert list(TYPES["triggers"]) == list(TriggerType.__args__) == list(TRIGGER_CONFIGS)


@pytest.mark.parametrize("trigger_type", list(TRIGGER_CONFIGS))
def test_trigger_settings_match_the_hub(trigger_type):
    model = TRIGGER_CONFIGS[trigger_type]
    described = TYPES["triggers"][trigger_type]
    assert described["label"]
    check_fields(trigger_type, described["fields"], model.model_json_schema(by_alias=True))


def test_the_same_node_types():
    assert set(TYPES["nodes"]) == set(NODE_TYPES)


@pytest.mark.parametrize("node_type", list(NODE_TYPES))
def test_node_parameters_match_the_hub(node_type):
    described = TYPES["nodes"][node_type]
    assert described["label"]
    schema = NODE_TYPES[node_type].model_json_schema(by_alias=True)
    if node_type == "condition":
        # The node's own model takes the operator as text to say which of a
        # comparison or a group was meant; the comparison has the choices.
        operator = Comparison.model_json_schema()["properties"]["operator"]
        schema["properties"]["operator"] = {**operator, "anyOf": [operator, {"type": "null"}]}
    own = {f["name"] for f in described["fields"]}
    common = [f for f in TYPES["common"] if f["name"] not in own]
    if described.get("plain"):
        # No settings worth showing (the options every node has mean nothing here).
        assert not own
        schema["properties"] = {
            k: v for k, v in schema["properties"].items() if k not in {f["name"] for f in common}
        }
        common = []
    check_fields(node_type, described["fields"] + common, schema)


AGENT = "6f1c3b9e-2a4d-4c61-9d3e-8b7a5f0e1c2d"
CONFIGS = [
    ("conversation_started", {}),
    ("conversation_started", {"agent_id": AGENT, "channel": "voice"}),
    ("message_received", {}),
    ("message_received", {"keywords": ["urgent", "emergency"]}),
    ("message_received", {"keywords": ["refund", "card"], "match": "all", "channel": "phone"}),
    ("message_received", {"agent_id": AGENT}),
    ("conversation_ended", {}),
    ("conversation_ended", {"min_duration_seconds": 3600, "channel": "chat"}),
    ("contact_created", {}),
    ("contact_updated", {}),
    ("contact_updated", {"fields": ["phone", "tags"]}),
    ("deal_created", {}),
    ("deal_stage_changed", {}),
    ("deal_stage_changed", {"from": "proposal", "to": "closed_won"}),
    ("deal_stage_changed", {"to": "closed_lost"}),
    ("webhook", {}),
    ("schedule", {"cron": "0 9 * * 1-5"}),
]
# exampleFor from the dashboard's own module, run by Node (a test dependency).
EXAMPLES_JS = """
import { readFileSync } from "node:fs";
const [module, types, workflows] = JSON.parse(readFileSync(0, "utf8"));
const { exampleFor } = await import("data:text/javascript," + encodeURIComponent(module));
console.log(JSON.stringify(workflows.map((workflow) => exampleFor(types, workflow))));
"""


def test_the_configs_cover_every_trigger():
    assert {trigger_type for trigger_type, _ in CONFIGS} == set(TRIGGER_CONFIGS)


async def test_the_prefilled_test_data_is_accepted_by_the_trigger_as_configured():
    node = shutil.which("node")
    assert node, "Node.js is missing: scripts/test installs the OS packages nodejs and npm"
    workflows = [{"trigger_type": t, "trigger_config": c} for t, c in CONFIGS]
    for workflow in workflows:  # valid configurations, as the API would store them
        trigger_config(workflow["trigger_type"], workflow["trigger_config"])
    source = (STATIC / "types.js").read_text()
    process = await asyncio.create_subprocess_exec(
        node,
        "--input-type=module",
        "-e",
        EXAMPLES_JS,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(
        process.communicate(json.dumps([source, TYPES, workflows]).encode()), 60
    )
    assert process.returncode == 0, err.decode()
    examples = json.loads(out)
    for workflow, example in zip(workflows, examples, strict=True):
        # The examples name no records by id: no database is read.
        context = await load_context(None, workflow["trigger_type"], example)
        assert accepts(workflow, context), (workflow, example)
