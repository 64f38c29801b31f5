// The workflow editor: a structured form that saves the graph exactly as
// React Flow stores it (nodes with id, type, data and position; edges with
// id, source, target and a condition's sourceHandle "yes"/"no"). Steps are
// cards with their parameters and where the run goes next; a diagram above
// them shows the whole graph. The API checks everything on saving, and a 400
// is shown next to the step, parameter or connection it is about.

import { api, ApiError } from "../api.js";
import { field, fill, formatDateTime, h, select, statusLine, uid } from "../dom.js";
import { diagram, layout, positionOf } from "./diagram.js";
import { fieldControl, rawOf, readFields } from "./fields.js";
import { nodeFields } from "./types.js";

const NODE_ID = /^[\w-]{1,100}$/;
const START = [{ id: "trigger", type: "trigger", data: {} }];

/** Where a run may leave a step: a condition by yes or no, an end nowhere. */
function handlesOf(type) {
  if (type === "condition") return ["yes", "no"];
  return type === "end" ? [] : [null];
}

/** JSON with sorted keys, to tell whether two definitions differ. */
function canonical(value) {
  if (Array.isArray(value)) return `[${value.map(canonical).join(",")}]`;
  if (value && typeof value === "object") {
    return `{${Object.keys(value).sort().map((k) => `${JSON.stringify(k)}:${canonical(value[k])}`).join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

const clean = (message) => String(message).replace(/^Value error, /, "");

/** What a saved workflow's trigger gives: its webhook address, its secret, its next scheduled run. */
function savedTrigger(workflow) {
  const copyable = (value) => h("input", { type: "text", readonly: true, value, class: "code", spellcheck: "false" });
  return h("div", { class: "saved-trigger" },
    workflow.webhook_url
      ? field("Webhook URL", copyable(new URL(workflow.webhook_url, location.origin).href),
        "POST a JSON object, signed: X-Syntera-Signature: sha256=<HMAC-SHA256 of the body with the secret>.")
      : null,
    field("Signing secret", copyable(workflow.secret), "Signs this workflow's outbound webhooks and verifies its inbound one."),
    workflow.next_run_at ? h("p", {}, "Next run: ", h("time", { datetime: workflow.next_run_at }, formatDateTime(workflow.next_run_at))) : null);
}

/**
 * `workflow`: the saved workflow, or null for a new one. `choices`: the
 * agents and staff for the fields that pick one. `onSaved(workflow, created)`
 * after saving; `onDelete` (owners and admins) deletes it.
 */
export function createEditor(workflow, { types, choices, onSaved, onDelete }) {
  const labelOf = (type) => types.nodes[type]?.label || type;
  const rawsOf = (fields, values = {}) => Object.fromEntries(fields.map((f) => [f.name, rawOf(f, values[f.name])]));
  const fromNode = ({ id, type, data = {}, ...rest }) => ({ id, type, data, rest, raws: rawsOf(nodeFields(types, type), data) });

  const state = {
    triggerType: workflow?.trigger_type || "message_received",
    triggerRaws: {}, // per trigger type, so switching back keeps what was typed
    nodes: (workflow?.nodes || START).map(fromNode),
    edges: (workflow?.edges || []).map((edge) => ({ ...edge })),
    invalid: new Set(), // steps the last save refused
    lastAdded: null,
    dirty: false,
  };
  for (const [type, described] of Object.entries(types.triggers)) {
    state.triggerRaws[type] = rawsOf(described.fields, type === workflow?.trigger_type ? workflow.trigger_config : {});
  }

  const status = statusLine();
  const changed = () => { state.dirty = true; };

  // ---------- name, description, enabled ----------

  const name = h("input", { type: "text", required: true, maxlength: "200", value: workflow?.name || "", autocomplete: "off" });
  const description = h("input", { type: "text", maxlength: "2000", value: workflow?.description || "", autocomplete: "off" });
  const enabled = h("input", { type: "checkbox", checked: workflow ? workflow.enabled : true, id: uid() });
  for (const input of [name, description, enabled]) input.addEventListener("input", changed);

  // ---------- the trigger ----------

  const triggerType = select(Object.entries(types.triggers).map(([type, t]) => [type, t.label]), { value: state.triggerType });
  const triggerFields = h("div", { class: "row trigger-fields" });
  let triggerControls = {};
  function renderTrigger() {
    const described = types.triggers[state.triggerType];
    const raws = state.triggerRaws[state.triggerType];
    triggerControls = Object.fromEntries(described.fields.map((f) =>
      [f.name, fieldControl(f, raws[f.name], (raw) => { raws[f.name] = raw; changed(); }, choices)]));
    fill(triggerFields, Object.values(triggerControls).map((c) => c.element));
    if (!described.fields.length) {
      triggerFields.append(h("p", { class: "muted" }, state.triggerType === "webhook"
        ? "Called by POST /public/workflows/<id>/webhook, signed with the workflow's secret (docs/workflows.md)."
        : "Nothing to set: every such event starts a run."));
    }
  }
  triggerType.addEventListener("change", () => {
    state.triggerType = triggerType.value;
    renderTrigger();
    changed();
  });

  // ---------- the steps ----------

  // Focusable, so a diagram wider than the screen can be scrolled with the keyboard.
  const picture = h("div", { class: "diagram-box", tabindex: "0", role: "group", "aria-label": "Diagram" });
  const stepList = h("div", { class: "steps" });
  const cards = new Map(); // node id -> card

  function newEdgeId() {
    const taken = new Set(state.edges.map((e) => e.id));
    let n = state.edges.length + 1;
    while (taken.has(`e${n}`)) n += 1;
    return `e${n}`;
  }

  function connect(source, handle, target) {
    state.edges.push({ id: newEdgeId(), source, target, ...(handle ? { sourceHandle: handle } : {}) });
    changed();
  }

  function stepCard(node) {
    const described = types.nodes[node.type] || { label: node.type, fields: [] };
    const headingId = uid("step");
    const controls = {};
    const fields = nodeFields(types, node.type);
    const control = (f) => {
      controls[f.name] = fieldControl(f, node.raws[f.name], (raw) => { node.raws[f.name] = raw; changed(); }, choices);
      return controls[f.name].element;
    };
    const own = fields.filter((f) => !f.advanced).map(control);
    const advancedFields = fields.filter((f) => f.advanced).map(control);
    const advanced = advancedFields.length
      ? h("details", { class: "advanced" }, h("summary", {}, "If it fails, time limit"), h("div", { class: "step-fields" }, advancedFields))
      : null;
    const problems = h("ul", { class: "step-errors", hidden: true });
    const edgeProblems = new Map(); // edge id -> element
    const pickers = new Map(); // handle -> select

    const groups = handlesOf(node.type).map((handle) => {
      // Only a condition's handles mean something; another editor may have named others.
      const outgoing = state.edges.filter((e) => e.source === node.id && (handle === null || e.sourceHandle === handle));
      const targets = state.nodes.filter((n) => n.id !== node.id && n.type !== "trigger" && !outgoing.some((e) => e.target === n.id));
      const title = handle ? `If ${handle}` : node.type === "trigger" ? "Starts with" : "Then";
      const branch = handle ? ` (${handle})` : "";
      const list = outgoing.length
        ? h("ul", { class: "plain targets" }, outgoing.map((edge) => {
          const problem = h("small", { class: "field-error", hidden: true });
          edgeProblems.set(edge.id, problem);
          return h("li", { "data-edge": edge.id },
            "→ ", h("code", {}, edge.target), h("span", { class: "muted" }, ` · ${labelOf(state.nodes.find((n) => n.id === edge.target)?.type)}`), " ",
            h("button", {
              type: "button", class: "small",
              "aria-label": `Remove the connection from ${node.id}${branch} to ${edge.target}`,
              onclick: () => {
                state.edges = state.edges.filter((e) => e.id !== edge.id);
                changed();
                render({ node: node.id, handle });
              },
            }, "Remove"),
            problem);
        }))
        : h("p", { class: "muted" }, handle ? "Nothing: the run goes no further on this branch." : "Nothing yet: the run ends here.");
      let picker = null;
      if (targets.length) {
        picker = select([["", "Choose a step…"], ...targets.map((n) => [n.id, `${n.id} · ${labelOf(n.type)}`])], {});
        picker.id = uid();
        pickers.set(handle, picker);
      }
      return h("div", { class: `connection-group ${handle || "next"}` },
        h("h4", {}, title),
        list,
        picker ? h("div", { class: "connect" },
          h("label", { for: picker.id }, handle ? `If ${handle}, go to` : "Then go to"), picker,
          h("button", {
            type: "button",
            onclick: () => {
              if (!picker.value) {
                picker.focus();
                return;
              }
              connect(node.id, handle, picker.value);
              render({ node: node.id, handle });
            },
          }, "Connect")) : null);
    });

    const heading = h("h3", { id: headingId, tabindex: "-1" }, node.id, h("span", { class: "muted" }, ` · ${described.label}`));
    const element = h("section", {
      class: `step type-${node.type}${state.invalid.has(node.id) ? " invalid" : ""}`, "aria-labelledby": headingId, "data-node": node.id,
    },
    h("div", { class: "step-head" }, heading,
      node.type === "trigger" ? null : h("button", {
        type: "button", class: "danger small", "aria-label": `Remove step ${node.id}`,
        onclick: () => removeStep(node.id),
      }, "Remove step")),
    described.description ? h("p", { class: "muted step-about" }, described.description) : null,
    problems,
    own.length ? h("div", { class: "step-fields" }, own) : null,
    advanced,
    groups.length ? h("div", { class: "connections" }, groups) : null);

    return {
      element,
      focus: () => (own.length ? Object.values(controls)[0].focus() : heading.focus()),
      focusPicker: (handle) => (pickers.get(handle) || heading).focus(),
      /** A problem with one parameter (or, without one, the whole step); returns how to focus it. */
      problem(param, message) {
        element.classList.add("invalid");
        const target = controls[param];
        if (target) {
          target.setError(message);
          if (advanced && advanced.contains(target.element)) advanced.open = true;
          return target.focus;
        }
        problems.append(h("li", {}, param ? `${param}: ${message}` : message));
        problems.hidden = false;
        return () => heading.focus();
      },
      edgeProblem(edgeId, message) {
        element.classList.add("invalid");
        const target = edgeProblems.get(edgeId);
        if (!target) return this.problem(null, message);
        target.textContent = ` ${message}`;
        target.hidden = false;
        return () => heading.focus();
      },
    };
  }

  function removeStep(id) {
    state.nodes = state.nodes.filter((n) => n.id !== id);
    state.edges = state.edges.filter((e) => e.source !== id && e.target !== id);
    if (state.lastAdded === id) state.lastAdded = null;
    changed();
    render();
    status.say(`Step ${id} removed.`);
    addType.focus();
  }

  // ---------- adding a step ----------

  const addType = select(Object.entries(types.nodes).filter(([type]) => type !== "trigger").map(([type, t]) => [type, t.label]), { value: "send_message" });
  const addAfter = h("select");
  const addId = h("input", { type: "text", maxlength: "100", autocomplete: "off", spellcheck: "false" });
  const addProblem = statusLine();
  let idTyped = false;
  function suggestId(type) {
    const taken = new Set(state.nodes.map((n) => n.id));
    if (!taken.has(type)) return type;
    let n = 2;
    while (taken.has(`${type}_${n}`)) n += 1;
    return `${type}_${n}`;
  }
  addType.addEventListener("change", () => { if (!idTyped) addId.value = suggestId(addType.value); });
  addId.addEventListener("input", () => { idTyped = addId.value.trim() !== ""; });
  addId.addEventListener("keydown", (event) => {
    if (event.key === "Enter") {
      event.preventDefault(); // Enter adds the step; it does not save the form
      addStep();
    }
  });

  function afterOptions() {
    const options = [];
    for (const node of state.nodes) {
      for (const handle of handlesOf(node.type)) {
        options.push([JSON.stringify([node.id, handle]), handle ? `${node.id}, if ${handle}` : node.id]);
      }
    }
    // By default the new step follows the one added last, or the last in the list.
    const last = [...state.nodes].reverse().find((n) => n.id === state.lastAdded && handlesOf(n.type).length)
      || [...state.nodes].reverse().find((n) => handlesOf(n.type).length);
    const chosen = last ? JSON.stringify([last.id, handlesOf(last.type)[0]]) : "";
    fill(addAfter, [...options, ["", "Nothing (not connected yet)"]].map(([value, text]) =>
      h("option", { value, selected: value === chosen }, text)));
  }

  function addStep() {
    const id = addId.value.trim();
    if (!NODE_ID.test(id)) {
      addProblem.error({ message: "A step id is 1 to 100 letters, digits, _ or -" });
      addId.focus();
      return;
    }
    if (state.nodes.some((n) => n.id === id)) {
      addProblem.error({ message: `There is already a step ${id}` });
      addId.focus();
      return;
    }
    addProblem.clear();
    state.nodes.push(fromNode({ id, type: addType.value, data: {} }));
    if (addAfter.value) {
      const [source, handle] = JSON.parse(addAfter.value);
      connect(source, handle, id);
    }
    state.lastAdded = id;
    changed();
    idTyped = false;
    render();
    status.say(`Step ${id} added.`);
    cards.get(id).focus();
  }

  const adder = h("fieldset", { class: "add-step" }, h("legend", {}, "Add a step"),
    h("div", { class: "row" },
      field("Step type", addType),
      field("Comes after", addAfter),
      field("Step id", addId, "Letters, digits, _ and -. Later steps read its output as {{nodes.<id>.output}}."),
      h("button", { type: "button", onclick: addStep }, "Add step")),
    addProblem);

  /** Draws the diagram and the cards again; `focus` = {node, handle} to return to. */
  function render(focus) {
    state.invalid = new Set([...state.invalid].filter((id) => state.nodes.some((n) => n.id === id)));
    fill(picture, diagram(state.nodes, state.edges, { labelOf, invalid: state.invalid }));
    cards.clear();
    for (const node of state.nodes) cards.set(node.id, stepCard(node));
    fill(stepList, [...cards.values()].map((card) => card.element));
    afterOptions();
    if (!idTyped) addId.value = suggestId(addType.value);
    if (focus) cards.get(focus.node)?.focusPicker(focus.handle);
  }

  // ---------- saving ----------

  /** The request body, or the problems found before asking the API. */
  function build() {
    const problems = {};
    const savedConfig = state.triggerType === workflow?.trigger_type ? workflow.trigger_config : {};
    const trigger = readFields(types.triggers[state.triggerType].fields, state.triggerRaws[state.triggerType], savedConfig);
    for (const [param, message] of Object.entries(trigger.errors)) problems[`trigger_config.${param}`] = message;
    const place = layout(state.nodes, state.edges);
    const nodes = state.nodes.map((node) => {
      const { data, errors } = readFields(nodeFields(types, node.type), node.raws, node.data);
      for (const [param, message] of Object.entries(errors)) problems[`nodes.${node.id}.data.${param}`] = message;
      return { id: node.id, type: node.type, ...node.rest, position: node.rest.position || positionOf(place.get(node.id)), data };
    });
    const body = {
      name: name.value.trim(),
      description: description.value.trim() || null,
      enabled: enabled.checked,
      trigger_type: state.triggerType,
      trigger_config: trigger.data,
      nodes,
      edges: state.edges.map((edge) => ({ ...edge })),
    };
    if (workflow) {
      // Only a changed trigger or graph makes a new version.
      for (const key of ["trigger_type", "trigger_config", "nodes", "edges"]) {
        if (canonical(body[key]) === canonical(workflow[key])) delete body[key];
      }
    }
    return { body, problems };
  }

  function clearProblems() {
    state.invalid = new Set();
    render();
    Object.values(triggerControls).forEach((c) => c.setError(null));
    status.clear();
  }

  /** A 400's details.fields and details.node_ids, each next to what it is about. */
  function showProblems(details) {
    const general = {};
    const invalid = new Set(details.node_ids || []);
    const byKey = (list, key) => list.find((item) => item.id === key) || (/^\d+$/.test(key) ? list[Number(key)] : null);
    // The diagram marks the steps at fault; the cards then get the messages.
    for (const key of Object.keys(details.fields || {})) {
      const [where, id] = key.split(".");
      if (where === "nodes" && id && byKey(state.nodes, id)) invalid.add(byKey(state.nodes, id).id);
      if (where === "edges" && id && byKey(state.edges, id)) invalid.add(byKey(state.edges, id).source);
    }
    state.invalid = invalid;
    render();
    let first = null;
    for (const [key, raw] of Object.entries(details.fields || {})) {
      const message = clean(raw);
      const [where, id, part, param, ...deeper] = key.split(".");
      const node = where === "nodes" && id ? byKey(state.nodes, id) : null;
      const edge = where === "edges" && id ? byKey(state.edges, id) : null;
      let focus = null;
      if (node && cards.has(node.id)) {
        focus = part === "data"
          ? cards.get(node.id).problem(param, deeper.length ? `${deeper.join(".")}: ${message}` : message)
          : cards.get(node.id).problem(null, part ? `${part}: ${message}` : message);
      } else if (edge && cards.has(edge.source)) {
        focus = cards.get(edge.source).edgeProblem(edge.id, part ? `${part === "target" ? "the next step" : part}: ${message}` : message);
      } else if (where === "trigger_config" && triggerControls[id]) {
        triggerControls[id].setError(message);
        focus = triggerControls[id].focus;
      } else {
        general[key] = message;
      }
      first ||= focus;
    }
    for (const id of invalid) cards.get(id)?.element.classList.add("invalid");
    const count = Object.keys(details.fields || {}).length;
    status.error({
      message: Object.keys(general).length
        ? "The workflow was not saved"
        : `The workflow was not saved: ${count} problem${count === 1 ? "" : "s"}, marked below`,
      details: { fields: Object.keys(general).length ? general : undefined },
    });
    (first || (() => status.focus()))();
  }

  const save = h("button", { type: "submit", class: "primary" }, workflow ? "Save workflow" : "Create workflow");
  const form = h("form", { class: "workflow-form", "aria-label": "Workflow", novalidate: true },
    h("fieldset", {}, h("legend", {}, "Workflow"),
      h("div", { class: "row" }, field("Name", name), field("Description", description)),
      h("div", { class: "field check" }, enabled, h("label", { for: enabled.id }, "Enabled: runs when its trigger fires"))),
    h("fieldset", {}, h("legend", {}, "Trigger"),
      field("When", triggerType),
      triggerFields,
      workflow ? savedTrigger(workflow) : null),
    h("section", { class: "steps-section", "aria-labelledby": "steps-title" },
      h("h3", { id: "steps-title" }, "Steps"),
      picture, stepList, adder),
    h("div", { class: "actions" }, save,
      workflow && onDelete ? h("button", { type: "button", class: "danger", onclick: () => onDelete(workflow) }, "Delete workflow") : null),
    status);
  status.setAttribute("tabindex", "-1");

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearProblems();
    if (!name.value.trim()) {
      status.error({ message: "The workflow needs a name" });
      name.focus();
      return;
    }
    const { body, problems } = build();
    if (Object.keys(problems).length) {
      showProblems({ fields: problems });
      return;
    }
    save.disabled = true;
    try {
      const saved = workflow
        ? await api.patch(`/api/workflows/${workflow.id}`, body)
        : await api.post("/api/workflows", body);
      state.dirty = false;
      onSaved(saved, !workflow);
    } catch (error) {
      if (error instanceof ApiError && error.status === 400 && error.details?.fields) showProblems(error.details);
      else status.error(error);
    } finally {
      save.disabled = false;
    }
  });

  renderTrigger();
  render();
  return {
    element: form,
    status,
    get dirty() { return state.dirty; },
  };
}
