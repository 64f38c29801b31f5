// A run's per-step trace: each step's status, time, error, and what went in
// and came out. Inputs and outputs come from visitors, webhooks and the AI:
// they are shown as JSON text, never as markup.

import { h, table } from "../dom.js";

export function statusBadge(status) {
  return h("span", { class: `badge-pill run-${status}` }, status);
}

/** JSON in a <pre> under its label; folded when long. */
export function jsonBlock(label, value) {
  const text = JSON.stringify(value, null, 2) ?? "null";
  const pre = h("pre", { class: "json" }, text);
  if (text.length > 600 || text.split("\n").length > 8) {
    return h("details", { class: "json-block" }, h("summary", {}, label), pre);
  }
  return h("div", { class: "json-block" }, h("span", { class: "json-label" }, label), pre);
}

const ms = (value) => (value === undefined || value === null ? "–" : `${Number(value).toFixed(value < 10 ? 1 : 0)} ms`);

/** The trace as a table: step, type, status, time, error, input and output. */
export function traceTable(trace, caption = "Trace") {
  if (!trace?.length) return h("p", { class: "muted" }, "No step ran.");
  return table(caption, ["Step", "Type", "Status", "Time", "Error", "Input and output"], trace.map((entry) => [
    h("code", {}, entry.node_id),
    entry.type,
    statusBadge(entry.status),
    ms(entry.duration_ms),
    entry.error ? h("span", { class: "error" }, entry.error) : "–",
    [
      "input" in entry ? jsonBlock("Input", entry.input) : null,
      "output" in entry ? jsonBlock("Output", entry.output) : null,
    ],
  ]), { class: "trace" });
}
