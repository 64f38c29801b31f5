// What the editor knows about triggers and steps: types.json, which
// tests/test_dashboard_workflow_types.py keeps equal to the hub's own models
// (hub/workflow_graph.py) — the same types, parameters, choices and limits.

let loading = null;

/** The description of every trigger and node type. */
export function loadTypes() {
  loading ||= fetch(new URL("./types.json", import.meta.url)).then((response) => {
    if (!response.ok) throw new Error(`types.json: ${response.status}`);
    return response.json();
  }).catch((error) => { loading = null; throw error; });
  return loading;
}

/** The fields a node of `type` shows: its own, then the options every node has. */
export function nodeFields(types, type) {
  const described = types.nodes[type];
  if (!described) return [];
  if (described.plain) return described.fields;
  const own = new Set(described.fields.map((f) => f.name));
  return [...described.fields, ...types.common.filter((f) => !own.has(f.name)).map((f) => ({ ...f, advanced: true }))];
}

/** Test data the trigger, as configured, accepts: its type's example, fitted to its settings. */
export function exampleFor(types, workflow) {
  const type = workflow.trigger_type;
  const config = workflow.trigger_config || {};
  const data = structuredClone(types.triggers[type].example);
  const conversation = {};
  if (config.agent_id) conversation.agent_id = config.agent_id;
  if (config.channel) conversation.channel = config.channel;
  if (type === "message_received") {
    if (config.keywords?.length) data.message = `Hello, this is ${config.keywords.join(" and ")}: please help!`;
    data.conversation = { ...data.conversation, ...conversation };
  } else if (type === "conversation_started" || type === "conversation_ended") {
    Object.assign(data, conversation);
    if (type === "conversation_ended" && config.min_duration_seconds) {
      data.ended_at = new Date(Date.parse(data.started_at) + (config.min_duration_seconds + 60) * 1000).toISOString();
    }
  } else if (type === "contact_updated" && config.fields?.length) {
    data.changed = [...config.fields];
  } else if (type === "deal_stage_changed") {
    if (config.from) data.stage_from = config.from;
    if (config.to) Object.assign(data, { stage_to: config.to, stage: config.to });
  }
  return data;
}
