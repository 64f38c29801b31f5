// Building the DOM safely. Text goes in as text nodes (Node.append with a
// string, or textContent) and attributes through setAttribute: nothing stored
// in the hub is ever parsed as HTML. There is no innerHTML in the dashboard.

const SVG_NS = "http://www.w3.org/2000/svg";
// Set as properties: they are state, not markup.
const PROPERTIES = new Set(["checked", "disabled", "hidden", "selected", "required", "multiple"]);

function build(node, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (PROPERTIES.has(name)) {
      node[name] = value;
    } else if (name === "value") {
      // An input's or textarea's starting value is also what form.reset() restores.
      if ("defaultValue" in node) node.defaultValue = String(value);
      node.value = value;
    } else {
      node.setAttribute(name, value === true ? "" : String(value));
    }
  }
  for (const child of children.flat(Infinity)) {
    if (child !== undefined && child !== null && child !== false) node.append(child);
  }
  return node;
}

/** h("p", {class: "x"}, "text", otherNode): an HTML element. */
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

/** Replaces a node's children; null, false and undefined children are skipped, as in h. */
export function fill(node, ...children) {
  node.replaceChildren();
  return build(node, {}, children);
}

/** The same for SVG elements (charts, icons). */
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

let counter = 0;
/** A unique id for label/input pairs. */
export function uid(prefix = "f") {
  counter += 1;
  return `${prefix}-${counter}`;
}

/** A labelled form control: <div class="field"><label for>…</label>control hint</div>. */
export function field(label, control, hint) {
  if (!control.id) control.id = uid();
  const parts = [h("label", { for: control.id }, label), control];
  if (hint) {
    const hintId = uid("hint");
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("small", { id: hintId, class: "hint" }, hint));
  }
  return h("div", { class: "field" }, parts);
}

/** A <select> from [value, label] pairs. */
export function select(options, attrs = {}) {
  return h("select", attrs, options.map(([value, label]) =>
    h("option", { value, selected: String(value) === String(attrs.value ?? "") }, label)));
}

/** A status line that screen readers announce; `.error(e)` shows an API error. */
export function statusLine() {
  const node = h("p", { class: "status", role: "status", "aria-live": "polite" });
  return Object.assign(node, {
    say(text) { node.classList.remove("error"); node.textContent = text; },
    error(error) {
      node.classList.add("error");
      node.textContent = errorText(error);
    },
    clear() { node.classList.remove("error"); node.textContent = ""; },
  });
}

/** An API error as a sentence, with the fields that were wrong. */
export function errorText(error) {
  const fields = error?.details?.fields;
  const message = error?.message || "Something went wrong";
  if (!fields) return message;
  return `${message}: ${Object.entries(fields).map(([name, problem]) => `${name}: ${problem}`).join("; ")}`;
}

const dateTime = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: "short" });
const dateOnly = new Intl.DateTimeFormat(undefined, { dateStyle: "medium" });

export function formatDateTime(value) {
  return value ? dateTime.format(new Date(value)) : "–";
}

export function formatDate(value) {
  return value ? dateOnly.format(new Date(value)) : "–";
}

/** "14:02" today, else the date and time. */
export function formatWhen(value) {
  if (!value) return "–";
  const date = new Date(value);
  return date.toDateString() === new Date().toDateString() ? timeOnly.format(date) : dateTime.format(date);
}

/** A <time> element for a timestamp. */
export function time(value) {
  return h("time", { datetime: value || "" }, formatWhen(value));
}

export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} kB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

export function newId() {
  return crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random().toString(16).slice(2)}`;
}

/** A table with a caption, header cells and rows of cells (strings or nodes).
 * `quiet`: the caption is for screen readers only (a heading already says it). */
export function table(caption, headers, rows, { quiet = false, ...attrs } = {}) {
  return h("table", attrs,
    h("caption", { class: quiet ? "sr" : null }, caption),
    h("thead", {}, h("tr", {}, headers.map((name) => h("th", { scope: "col" }, name)))),
    h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((cell) => h("td", {}, cell))))));
}

/** The h1 of a page; the router moves the focus to it after navigating. */
export function pageTitle(text, ...extra) {
  return h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, text), extra);
}

/** A message box: Enter sends the form, Shift+Enter breaks the line. */
export function sendOnEnter(textarea, form) {
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
}

/** Runs `fn` at most once per `ms` of quiet (search boxes). */
export function debounce(fn, ms = 250) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
