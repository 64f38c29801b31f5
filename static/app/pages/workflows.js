// Workflows: the list with enable/disable switches; the editor (trigger,
// steps, connections); a test run against sample data with its per-step
// trace; and the workflow's executions, each with its trace, cancellable
// while running.

import { api } from "../api.js";
import { field, fill, formatDateTime, h, pageTitle, statusLine, table, time } from "../dom.js";
import { session } from "../session.js";
import { createEditor } from "../workflows/editor.js";
import { jsonBlock, statusBadge, traceTable } from "../workflows/trace.js";
import { exampleFor, loadTypes } from "../workflows/types.js";

const EXECUTIONS = 20;
// Executions have no live event: the list is fetched again after events that
// may have started one (a message, a conversation, a notification), at most
// once per REFRESH_MS so a busy inbox does not spend the API's rate limit.
const REFRESH_MS = 5000;
const HINTS = ["message:new", "conversation:new", "conversation:updated", "notification:new", "handoff:requested", "live:reconnected"];

async function removeWorkflow(workflow) {
  if (!window.confirm(`Delete the workflow “${workflow.name}” and its executions?`)) return false;
  await api.delete(`/api/workflows/${workflow.id}`);
  return true;
}

function listView(root, types) {
  const status = statusLine();
  status.setAttribute("tabindex", "-1");
  const body = h("div");

  async function load() {
    const { workflows } = await api.get("/api/workflows");
    if (!workflows.length) {
      fill(body, h("p", { class: "muted placeholder" }, "No workflows yet. A workflow does something when a trigger fires: “when a visitor writes urgent, notify the team and hand the conversation to a person”."));
      return;
    }
    const headers = ["Name", "Trigger", "Steps", "Enabled", "Changed", session.isAdmin ? "Actions" : null].filter(Boolean);
    fill(body, table("Workflows", headers, workflows.map((workflow) => {
      const toggle = h("input", {
        type: "checkbox", checked: workflow.enabled, "aria-label": `Enabled: ${workflow.name}`,
        onchange: async () => {
          toggle.disabled = true;
          try {
            const saved = await api.patch(`/api/workflows/${workflow.id}`, { enabled: toggle.checked });
            workflow.enabled = saved.enabled;
            status.say(`“${workflow.name}” is ${saved.enabled ? "enabled" : "disabled"}.`);
          } catch (error) {
            toggle.checked = workflow.enabled;
            status.error(error);
          } finally {
            toggle.disabled = false;
          }
        },
      });
      return [
        h("a", { href: `#/workflows/${workflow.id}` }, workflow.name),
        types.triggers[workflow.trigger_type]?.label || workflow.trigger_type,
        String(workflow.nodes.length - 1),
        toggle,
        formatDateTime(workflow.updated_at),
        session.isAdmin && h("button", {
          type: "button", class: "danger small", "aria-label": `Delete ${workflow.name}`,
          onclick: async () => {
            try {
              if (await removeWorkflow(workflow)) {
                await load();
                status.say(`“${workflow.name}” deleted.`);
                status.focus(); // its row, and the button, are gone
              }
            } catch (error) {
              status.error(error);
            }
          },
        }, "Delete"),
      ].filter((cell) => cell !== false);
    }), { quiet: true, class: "workflow-list" }));
  }

  fill(root, status, h("div", { class: "card" }, body));
  return load().catch((error) => status.error(error));
}

/** The dry run: test data in, the trace out. */
function testSection(types, workflow, editor, onRan) {
  const example = JSON.stringify(exampleFor(types, workflow), null, 2);
  const data = h("textarea", { rows: "6", spellcheck: "false", value: example, class: "code" });
  const status = statusLine();
  const result = h("div", { class: "test-result", tabindex: "-1" });
  const run = h("button", { type: "submit", class: "primary" }, "Run test");
  const form = h("form", { class: "test-form" },
    field("Test data (JSON)", data, "Stands for what the trigger sends: a message, a conversation, a contact or deal, or records named by id (conversation_id, contact_id, deal_id)."),
    h("div", { class: "actions" }, run,
      h("button", { type: "button", onclick: () => { data.value = example; data.focus(); } }, "Reset the example")),
    status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    let testData;
    try {
      testData = JSON.parse(data.value || "{}");
    } catch (error) {
      status.error({ message: `The test data is not valid JSON (${error.message})` });
      data.focus();
      return;
    }
    if (!testData || typeof testData !== "object" || Array.isArray(testData)) {
      status.error({ message: "The test data is a JSON object: {\"message\": \"…\"}" });
      return;
    }
    run.disabled = true;
    status.say(editor.dirty ? "Testing the saved version: your unsaved changes are not part of it…" : "Testing…");
    try {
      const outcome = await api.post(`/api/workflows/${workflow.id}/test`, { testData });
      status.say(editor.dirty ? "Tested the saved version, without your unsaved changes." : "");
      fill(result,
        h("p", { class: `matched ${outcome.trigger_matched ? "yes" : "no"}` }, outcome.trigger_matched
          ? "The trigger matched: the steps ran as below (actions simulated, nothing written or sent)."
          : "The trigger did not match this test data: no step ran."),
        h("p", {}, statusBadge(outcome.status), ` in ${outcome.execution_time_ms} ms`,
          outcome.error ? h("span", { class: "error" }, ` · ${outcome.error}`) : null),
        traceTable(outcome.trace, "Test trace"),
        Object.keys(outcome.variables || {}).length ? jsonBlock("Variables", outcome.variables) : null);
      result.focus();
      onRan(); // the test run is recorded as an execution
    } catch (error) {
      status.error(error);
    } finally {
      run.disabled = false;
    }
  });
  return h("section", { class: "card", "aria-labelledby": "test-title" },
    h("h2", { id: "test-title" }, "Test run"),
    h("p", { class: "muted" }, "Runs the saved workflow against the test data: conditions are evaluated, actions are only simulated. The run is listed below, marked test."),
    form, result);
}

/** The latest executions, each with its trace; running ones can be cancelled. */
function executionsSection(workflow, on) {
  const status = statusLine();
  const body = h("div");
  const open = new Set(); // executions whose trace is shown
  let timer = null;
  let last = 0;
  let gone = false;
  let shown = null; // the JSON last drawn: an unchanged list is not redrawn

  function soon(delay = 1500) {
    if (timer || gone) return;
    const wait = Math.max(delay, last + REFRESH_MS - Date.now());
    timer = setTimeout(() => {
      timer = null;
      if (document.hidden) return; // fetched again when the tab is visible
      load();
    }, wait);
  }

  /** A run still going is fetched again; one waiting on a delay when it is due. */
  function schedule(executions) {
    const busy = executions.filter((e) => e.status === "running");
    if (busy.some((e) => !e.resume_at)) soon(REFRESH_MS);
    else if (busy.length) {
      const due = Math.min(...busy.map((e) => Date.parse(e.resume_at) - Date.now()));
      if (due < 10 * 60 * 1000) soon(Math.max(due + 1000, REFRESH_MS));
    }
  }

  async function cancel(execution) {
    try {
      await api.post(`/api/workflows/${workflow.id}/executions/${execution.id}/cancel`);
      status.say("Execution cancelled.");
    } catch (error) {
      status.error(error);
    }
    load();
  }

  function rows(executions) {
    return executions.flatMap((execution) => {
      const traceId = `trace-${execution.id}`;
      const expanded = open.has(execution.id);
      const toggle = h("button", {
        type: "button", class: "small", "aria-expanded": String(expanded), "aria-controls": traceId,
        onclick: () => {
          if (open.has(execution.id)) open.delete(execution.id);
          else open.add(execution.id);
          const now = open.has(execution.id);
          toggle.setAttribute("aria-expanded", String(now));
          document.getElementById(traceId).hidden = !now;
        },
      }, `Trace (${execution.trace.length})`);
      const waiting = execution.status === "running" && execution.resume_at;
      return [
        h("tr", { "data-execution": execution.id, class: execution.test ? "test" : null },
          h("td", {}, time(execution.executed_at)),
          h("td", {}, statusBadge(execution.status), waiting ? h("span", { class: "muted" }, " waiting until ", time(execution.resume_at)) : null),
          h("td", {}, execution.triggered_by, execution.test ? [" ", h("span", { class: "badge-pill" }, "test")] : null),
          h("td", {}, String(execution.depth)),
          h("td", {}, `${execution.execution_time_ms} ms`),
          h("td", { class: "run-error" }, execution.error || "–"),
          h("td", { class: "actions" }, toggle,
            execution.status === "running" ? h("button", {
              type: "button", class: "danger small", onclick: () => cancel(execution),
            }, "Cancel") : null)),
        h("tr", { id: traceId, class: "trace-row", hidden: !expanded },
          h("td", { colspan: "7" },
            execution.finished_at ? h("p", { class: "muted" }, "Finished ", formatDateTime(execution.finished_at)) : null,
            traceTable(execution.trace, "Trace"),
            jsonBlock("Trigger data", execution.trigger_data))),
      ];
    });
  }

  async function load() {
    last = Date.now();
    try {
      const { executions } = await api.get(`/api/workflows/${workflow.id}/executions`, { limit: EXECUTIONS });
      if (gone) return;
      schedule(executions);
      const text = JSON.stringify(executions);
      if (text === shown) return;
      shown = text;
      // Keep the keyboard where it was: the same button of the same execution.
      const button = document.activeElement?.closest?.("tr[data-execution] button");
      const focused = button && { id: button.closest("tr").dataset.execution, text: button.textContent };
      fill(body, executions.length
        ? h("table", { class: "executions" },
          h("caption", { class: "sr" }, "Executions, newest first"),
          h("thead", {}, h("tr", {}, ["When", "Status", "Triggered by", "Depth", "Time", "Error", ""].map((name) => h("th", { scope: "col" }, name)))),
          h("tbody", {}, rows(executions)))
        : h("p", { class: "muted" }, "No executions yet."));
      if (focused) {
        const row = body.querySelector(`tr[data-execution="${CSS.escape(focused.id)}"]`);
        const buttons = [...(row?.querySelectorAll("button") || [])];
        (buttons.find((b) => b.textContent === focused.text) || buttons[0])?.focus(); // Cancel is gone once cancelled
      }
    } catch (error) {
      status.error(error);
    }
  }

  const offs = HINTS.map((event) => on(event, () => soon()));
  const visible = () => { if (!document.hidden) soon(0); };
  document.addEventListener("visibilitychange", visible);
  load();

  return {
    element: h("section", { class: "card", "aria-labelledby": "executions-title" },
      h("div", { class: "section-head" },
        h("h2", { id: "executions-title" }, "Executions"),
        h("button", { type: "button", onclick: () => load() }, "Refresh executions")),
      body, status),
    stop() {
      gone = true;
      clearTimeout(timer);
      offs.forEach((off) => off());
      document.removeEventListener("visibilitychange", visible);
    },
    refresh: () => load(),
  };
}

export default {
  title: "Workflows",

  async mount(root, { params, on, navigate }) {
    const [types, agentList, userList] = await Promise.all([
      loadTypes(), api.get("/api/agents"), api.get("/api/users"),
    ]);
    const choices = {
      agent: agentList.agents.map((a) => [a.id, a.name]),
      user: userList.users.map((u) => [u.id, u.name ? `${u.name} (${u.email})` : u.email]),
    };
    const newLink = h("a", { class: "button primary", href: "#/workflows/new" }, "New workflow");
    const body = h("div");
    fill(root, pageTitle("Workflows", newLink), body);
    let executions = null;
    let notice = null; // said once the next view is shown ("Saved.")

    async function show([id] = []) {
      executions?.stop();
      executions = null;
      if (!id) {
        newLink.hidden = false;
        await listView(body, types);
        return;
      }
      newLink.hidden = true;
      let workflow = null;
      if (id !== "new") {
        try {
          workflow = await api.get(`/api/workflows/${id}`);
        } catch (error) {
          fill(body, h("a", { href: "#/workflows", class: "back" }, "← All workflows"), h("p", { class: "status error" }, error.message));
          return;
        }
      }
      const onDelete = session.isAdmin ? async (target) => {
        try {
          if (await removeWorkflow(target)) navigate("#/workflows");
        } catch (error) {
          editor.status.error(error);
        }
      } : null;
      const editor = createEditor(workflow, {
        types, choices, onDelete,
        onSaved: (saved, created) => {
          notice = created ? "Workflow created. Test it below." : "Saved.";
          if (created) navigate(`#/workflows/${saved.id}`);
          else show([saved.id]);
        },
      });
      executions = workflow ? executionsSection(workflow, on) : null;
      fill(body,
        h("a", { href: "#/workflows", class: "back" }, "← All workflows"),
        h("h2", { class: "workflow-title" }, workflow ? workflow.name : "New workflow"),
        h("div", { class: "card" }, editor.element),
        workflow ? testSection(types, workflow, editor, executions.refresh) : null,
        executions?.element);
      if (notice) {
        editor.status.say(notice);
        editor.status.focus(); // the form was drawn again: the focus goes to what happened
        notice = null;
      }
    }

    await show(params);
    return {
      update: show,
      unmount: () => executions?.stop(),
    };
  },
};
