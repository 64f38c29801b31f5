// The parameters of triggers and steps as form controls, as types.json
// describes them (types.js). A control edits a "raw" value — what the person
// typed — which becomes the API's value only when saving, so half-typed JSON
// is never lost while the editor redraws.

import { h, uid } from "../dom.js";

const json = (value) => JSON.stringify(value, null, 2);

/** What a control shows for a stored value. */
export function rawOf(field, value) {
  if (field.kind === "choices") return Array.isArray(value) ? value.map(String) : [];
  if (value === undefined || value === null) return "";
  switch (field.kind) {
    case "list": return Array.isArray(value) ? value.join(", ") : String(value);
    case "object": case "json": return json(value);
    default: return typeof value === "string" || typeof value === "number" ? String(value) : json(value);
  }
}

/** The API's value of what a control holds: {value}, {error}, or {} (left out). */
export function valueOf(field, raw) {
  if (field.kind === "choices") return raw.length ? { value: raw } : {};
  const text = field.kind === "textarea" || field.kind === "any" ? raw : raw.trim();
  if (text.trim() === "") return {};
  switch (field.kind) {
    case "number": case "integer": {
      const number = Number(text);
      if (!Number.isFinite(number)) return { error: "must be a number" };
      if (field.kind === "integer" && !Number.isInteger(number)) return { error: "must be a whole number" };
      return { value: number };
    }
    case "list":
      return { value: text.split(",").map((item) => item.trim()).filter(Boolean) };
    case "object": case "json": {
      let value;
      try {
        value = JSON.parse(text);
      } catch (error) {
        return { error: `is not valid JSON (${error.message})` };
      }
      if (field.kind === "object" && (value === null || typeof value !== "object" || Array.isArray(value))) {
        return { error: "must be a JSON object: {\"name\": \"value\"}" };
      }
      return { value };
    }
    case "any":
      // JSON when it is JSON (5, true, [1, 2]), otherwise the text itself.
      try {
        return { value: JSON.parse(text) };
      } catch (_) {
        return { value: raw };
      }
    default:
      return { value: text };
  }
}

/**
 * Reads the fields' raw values into parameters. Keys no field describes (a
 * label another editor saved) are kept; a default the stored data never
 * named is left out, so saving changes nothing that was not touched.
 * Returns {data, errors: {name: message}}.
 */
export function readFields(fields, raws, original = {}) {
  const data = { ...original };
  const errors = {};
  for (const field of fields) {
    delete data[field.name];
    const { value, error } = valueOf(field, raws[field.name] ?? rawOf(field, undefined));
    if (error) errors[field.name] = error;
    else if (value !== undefined && !(value === field.default && !(field.name in original))) data[field.name] = value;
  }
  return { data, errors };
}

function optionLabel(field, option) {
  return field.labels?.[option] || option.replaceAll("_", " ");
}

function placeholderOf(field) {
  if (field.placeholder) return field.placeholder;
  if (field.default !== undefined && field.kind !== "choice") return `${field.default} (default)`;
  return null;
}

/**
 * A labelled control for `field` showing `raw`; `onInput(raw)` on every
 * change. `choices` = {agent: [[id, name]...], user: [...]} for those kinds.
 * Returns {element, focus(), setError(message | null)}.
 */
export function fieldControl(field, raw, onInput, choices = {}) {
  const errorId = uid("error");
  const error = h("small", { id: errorId, class: "field-error", hidden: true });
  const hintId = field.hint ? uid("hint") : null;
  const hint = field.hint ? h("small", { id: hintId, class: "hint" }, field.hint) : null;
  const label = `${field.label}${field.required ? " (required)" : ""}`;

  if (field.kind === "choices") {
    const boxes = field.options.map((option) => h("input", {
      type: "checkbox", value: option, checked: raw.includes(option), id: uid(),
      onchange: () => onInput(boxes.filter((b) => b.checked).map((b) => b.value)),
    }));
    const element = h("fieldset", { class: "field choices", "aria-describedby": errorId },
      h("legend", {}, label),
      boxes.map((box) => h("span", { class: "check" }, box, h("label", { for: box.id }, optionLabel(field, box.value)))),
      hint, error);
    return {
      element,
      focus: () => boxes[0]?.focus(),
      setError(message) {
        error.textContent = message || "";
        error.hidden = !message;
        element.classList.toggle("invalid", Boolean(message));
      },
    };
  }

  let control;
  if (field.kind === "choice" || field.kind === "agent" || field.kind === "user") {
    const options = field.kind === "choice"
      ? field.options.map((option) => [option, optionLabel(field, option)])
      : choices[field.kind] || [];
    const known = options.some(([value]) => value === raw);
    const empty = field.default === undefined ? [["", field.empty || "Choose…"]] : [];
    // A stored value the list does not have (a deleted agent) stays visible.
    const stray = raw && !known ? [[raw, `${raw} (not found)`]] : [];
    const selected = raw || (field.default !== undefined ? String(field.default) : "");
    control = h("select", {}, [...empty, ...stray, ...options].map(([value, text]) =>
      h("option", { value, selected: value === selected }, text)));
    control.addEventListener("change", () => onInput(control.value));
  } else if (["textarea", "object", "json"].includes(field.kind)) {
    const rows = field.kind === "textarea" ? 3 : Math.min(8, Math.max(2, raw.split("\n").length));
    control = h("textarea", { rows: String(rows), value: raw, placeholder: placeholderOf(field), spellcheck: field.kind === "textarea" ? null : "false" });
    control.addEventListener("input", () => onInput(control.value));
  } else {
    const numeric = field.kind === "number" || field.kind === "integer";
    control = h("input", {
      type: numeric ? "number" : "text", value: raw, placeholder: placeholderOf(field),
      min: field.min ?? null, max: field.max ?? null, step: field.kind === "integer" ? "1" : numeric ? "any" : null,
      autocomplete: "off",
    });
    control.addEventListener("input", () => onInput(control.value));
  }
  control.id = uid();
  control.setAttribute("aria-describedby", [hintId, errorId].filter(Boolean).join(" "));
  if (field.required) control.setAttribute("aria-required", "true");
  const element = h("div", { class: `field kind-${field.kind}` }, h("label", { for: control.id }, label), control, hint, error);
  return {
    element,
    focus: () => control.focus(),
    setError(message) {
      error.textContent = message || "";
      error.hidden = !message;
      if (message) control.setAttribute("aria-invalid", "true");
      else control.removeAttribute("aria-invalid");
    },
  };
}
