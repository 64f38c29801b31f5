// A conversation's messages, as staff see them: who said what, the sources
// and cost of each AI answer, the AI's tool calls, and replies streaming in.
// Shared by the inbox and the agent test chat. Message text is only ever a
// text node (CSS keeps its line breaks).

import { fill, h, time } from "./dom.js";

const WHO = { user: "Visitor", agent: "AI", human: "Staff", system: "System" };
const SAFE_LINK = /^https?:\/\//i;

function sources(message) {
  const list = message.ai_metadata?.sources || [];
  if (!list.length) return null;
  return h("div", { class: "sources" },
    h("span", { class: "label" }, "Sources: "),
    h("ul", {}, list.map((source) =>
      h("li", {}, source.source || "document", source.page ? ` (p. ${source.page})` : ""))));
}

function aiDetails(message) {
  const ai = message.ai_metadata;
  if (!ai || message.sender_type !== "agent") return null;
  const parts = [];
  if (ai.model) parts.push(ai.model);
  const tokens = (ai.prompt_tokens || 0) + (ai.completion_tokens || 0);
  if (tokens) parts.push(`${tokens} tokens`);
  if (typeof ai.cost === "number") parts.push(`$${ai.cost.toFixed(5)}`);
  if (ai.total_ms) parts.push(`${ai.total_ms} ms`);
  return parts.length ? h("span", { class: "ai-meta" }, parts.join(" · ")) : null;
}

// A turn given up on: the visitor sees the notice, staff also see why.
function failure(message) {
  const error = message.sender_type === "system" && message.metadata?.failed_turn && message.metadata.error;
  return error ? h("p", { class: "text error" }, `Why the AI did not answer: ${error}`) : null;
}

function attachments(message) {
  const files = (message.attachments || []).filter((file) => SAFE_LINK.test(file.url || ""));
  if (!files.length) return null;
  return h("ul", { class: "attachments" }, files.map((file) =>
    h("li", {}, h("a", { href: file.url, target: "_blank", rel: "noopener noreferrer" },
      `Attachment: ${file.name || "file"}`))));
}

/**
 * createTranscript({voice}) → {element, show(messages), add(message),
 * delta(data), typing(who, on), lastSeq}. `voice`: the conversation was a
 * call, so its messages are what was said.
 */
export function createTranscript({ label = "Transcript", voice = false } = {}) {
  const log = h("ol", { class: "transcript", role: "log", "aria-live": "polite", "aria-label": label });
  const typingLine = h("p", { class: "typing", hidden: true, "aria-live": "polite" });
  const element = h("div", { class: "transcript-box" }, log, typingLine);
  const nodes = new Map(); // message id -> <li>
  const streams = new Map(); // message id -> {text, index}
  const typists = new Set();
  let lastSeq = 0;

  function bubble(message, streaming) {
    const who = message.sender_type;
    const tool = who === "system" && message.metadata?.tool;
    const verb = voice && (who === "user" || who === "agent") ? " said" : "";
    return h("li", {
      class: `msg ${who}${streaming ? " streaming" : ""}${tool ? " tool" : ""}`,
      "data-id": message.id, "data-seq": message.seq || "",
    },
    h("div", { class: "meta" },
      h("span", { class: "who" }, (WHO[who] || who) + verb),
      message.created_at ? time(message.created_at) : null,
      streaming ? h("span", { class: "ai-meta" }, "writing…") : aiDetails(message)),
    h("p", { class: "text" }, tool ? `Tool ${message.metadata.tool}: ${message.content}` : message.content),
    failure(message),
    attachments(message),
    sources(message));
  }

  function place(node, seq) {
    // Keep seq order even if a message arrives out of turn.
    if (seq) {
      for (const other of log.children) {
        const otherSeq = Number(other.dataset.seq);
        if (otherSeq && otherSeq > seq) { log.insertBefore(node, other); return; }
      }
    }
    log.append(node);
  }

  function add(message) {
    const existing = nodes.get(message.id);
    const node = bubble(message, false);
    if (existing) existing.replaceWith(node);
    else place(node, message.seq);
    nodes.set(message.id, node);
    streams.delete(message.id);
    if (message.seq > lastSeq) lastSeq = message.seq;
    if (message.sender_type === "agent") typing("agent", false);
    log.scrollTop = log.scrollHeight;
  }

  function delta(data) {
    let stream = streams.get(data.message_id);
    // Another attempt at the same reply (its worker died mid-stream): from the start.
    if (!stream || stream.attempt !== data.attempt) stream = { attempt: data.attempt, text: "", index: -1 };
    if (data.index <= stream.index) return; // a repeat
    stream.text += data.delta;
    stream.index = data.index;
    streams.set(data.message_id, stream);
    const node = bubble({ id: data.message_id, sender_type: "agent", content: stream.text }, true);
    const existing = nodes.get(data.message_id);
    if (existing) {
      if (!existing.classList.contains("streaming")) return; // the stored reply came first
      existing.replaceWith(node);
    } else log.append(node);
    nodes.set(data.message_id, node);
    log.scrollTop = log.scrollHeight;
  }

  function typing(who, on) {
    if (on) typists.add(who); else typists.delete(who);
    typingLine.hidden = typists.size === 0;
    typingLine.textContent = [...typists].map((name) => `${WHO[name] || name} is typing…`).join(" ");
  }

  function show(messages) {
    fill(log);
    nodes.clear();
    streams.clear();
    lastSeq = 0;
    messages.forEach(add);
  }

  return { element, add, delta, typing, show, get lastSeq() { return lastSeq; } };
}
