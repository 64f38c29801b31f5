// The inbox: the company's conversations as they happen, a transcript with
// replies streaming in, and the staff actions — take over, reply, hand back.

import { api } from "../api.js";
import { fill, formatDateTime, h, newId, pageTitle, select, sendOnEnter, statusLine, time } from "../dom.js";
import { live } from "../live.js";
import { createTranscript } from "../transcript.js";

const FILTERS = {
  active: { label: "Active", query: { status: "active" } },
  waiting: { label: "Waiting for a person", query: { waiting: "true" } },
  ended: { label: "Ended", query: { status: "ended" } },
  archived: { label: "Archived", query: { status: "archived" } },
  all: { label: "All", query: {} },
};
const PAGE_SIZE = 50;
const HISTORY = 200;
const VOICE = new Set(["voice", "phone"]);

/** Active, handed off by the AI, and nobody has taken over yet. */
const waiting = (conversation) => conversation.status === "active" && Boolean(conversation.handoff_requested_at);

function matches(filter, conversation) {
  const query = FILTERS[filter].query;
  if (query.status && conversation.status !== query.status) return false;
  if (query.waiting && !waiting(conversation)) return false;
  return true;
}

function badges(conversation, { fresh, unread }) {
  const list = [];
  if (fresh) list.push(["new", "New"]);
  if (unread) list.push(["unread", "New messages"]);
  if (waiting(conversation)) list.push(["waiting", "Waiting for a person"]);
  else if (conversation.ai_paused && conversation.status === "active") list.push(["staff", "Staff in charge"]);
  if (conversation.status !== "active") list.push(["ended", conversation.status]);
  return list.map(([kind, text]) => h("span", { class: `badge-pill ${kind}` }, text));
}

export default {
  title: "Inbox",

  async mount(root, { params, on }) {
    const agents = new Map((await api.get("/api/agents")).agents.map((a) => [a.id, a]));
    const conversations = new Map(); // id -> conversation
    const fresh = new Set(); // started while the inbox was open
    const unread = new Set(); // messages arrived while not selected
    let filter = "active";
    let total = 0; // what the filter matches on the server
    let loaded = 0; // how many of them the list has fetched
    let selected = null; // {id, transcript}
    let unwatch = () => {}; // stops the selected conversation's live stream

    const listStatus = statusLine();
    const count = h("p", { class: "muted" });
    const announcer = h("p", { class: "sr", role: "status", "aria-live": "polite" });
    const list = h("ul", { class: "conversation-list" });
    const more = h("button", { type: "button", hidden: true, onclick: () => loadList(true) }, "Load more");
    const filterSelect = select(Object.entries(FILTERS).map(([value, f]) => [value, f.label]), {
      value: filter,
      onchange: () => { filter = filterSelect.value; loadList(false); },
    });
    filterSelect.id = "inbox-filter";
    const view = h("section", { class: "conversation-view", "aria-label": "Conversation" });
    const layout = h("div", { class: "inbox" },
      h("section", { class: "conversation-pane", "aria-label": "Conversations" },
        h("div", { class: "field inline" }, h("label", { for: "inbox-filter" }, "Show"), filterSelect),
        list, more, count, listStatus),
      view);
    fill(root, pageTitle("Inbox"), announcer, layout);

    const askedFor = new Set(); // agent ids looked up again, once each
    function title(conversation) {
      const id = conversation.agent_id;
      const agent = agents.get(id);
      if (!agent && id && !askedFor.has(id)) {
        // An agent created since the inbox opened.
        askedFor.add(id);
        api.get("/api/agents").then((answer) => {
          answer.agents.forEach((a) => agents.set(a.id, a));
          renderList();
          if (selected) renderHeader();
        }, () => {});
      }
      return `${agent ? agent.name : id ? "Agent" : "Deleted agent"} · ${conversation.channel}`;
    }

    // ---------- the list ----------

    function renderList() {
      const focused = document.activeElement?.closest?.(".conversation-list a")?.getAttribute("href");
      const shown = [...conversations.values()]
        .filter((c) => matches(filter, c))
        .sort((a, b) => (a.started_at < b.started_at ? 1 : -1));
      fill(list, ...shown.map((c) => h("li", {},
        h("a", {
          href: `#/inbox/${c.id}`, "aria-current": selected?.id === c.id ? "true" : null,
          "data-id": c.id,
        },
        h("span", { class: "conversation-title" }, title(c)),
        h("span", { class: "badges" }, badges(c, { fresh: fresh.has(c.id), unread: unread.has(c.id) })),
        h("span", { class: "muted" }, "Started ", time(c.started_at),
          c.last_message_at ? [" · last message ", time(c.last_message_at)] : null)))));
      if (!shown.length) list.append(h("li", { class: "muted empty" }, "No conversations here yet."));
      more.hidden = shown.length >= total;
      count.textContent = `${total} conversation${total === 1 ? "" : "s"}`;
      if (focused) list.querySelector(`a[href="${focused}"]`)?.focus();
    }

    async function loadList(append) {
      try {
        if (!append) {
          conversations.clear();
          loaded = 0;
        }
        const page = await api.get("/api/conversations", {
          ...FILTERS[filter].query, limit: PAGE_SIZE, offset: loaded,
        });
        page.conversations.forEach((c) => conversations.set(c.id, c));
        loaded += page.conversations.length;
        total = page.total;
        listStatus.clear();
        if (selected && !conversations.has(selected.id)) {
          conversations.set(selected.id, await api.get(`/api/conversations/${selected.id}`));
        }
        renderList();
      } catch (error) {
        listStatus.error(error);
      }
    }

    function upsert(conversation) {
      const known = conversations.get(conversation.id);
      const merged = { ...known, ...conversation };
      // Keep the count of the filter's conversations as they come and go.
      total += (matches(filter, merged) ? 1 : 0) - (known && matches(filter, known) ? 1 : 0);
      conversations.set(conversation.id, merged);
      renderList();
      if (selected?.id === conversation.id) renderHeader();
    }

    async function refetch(id) {
      try { upsert(await api.get(`/api/conversations/${id}`)); } catch (_) { /* gone */ }
    }

    // ---------- the selected conversation ----------

    const header = h("div", { class: "conversation-head" });
    const actions = h("div", { class: "actions" });
    const viewStatus = statusLine();
    const reply = h("textarea", { id: "reply", rows: "3", maxlength: "10000" });
    const replyHint = h("small", { id: "reply-hint", class: "hint" });
    reply.setAttribute("aria-describedby", "reply-hint");
    const send = h("button", { type: "submit", class: "primary" }, "Send");
    const composer = h("form", { class: "composer" },
      h("label", { for: "reply" }, "Reply as staff"), reply, replyHint, send);
    sendOnEnter(reply, composer);
    composer.addEventListener("submit", async (event) => {
      event.preventDefault();
      const content = reply.value.trim();
      if (!content || !selected) return;
      send.disabled = true;
      try {
        const { message } = await live.call("message:send", {
          conversation_id: selected.id, content, client_id: newId(),
        });
        selected.transcript.add(message);
        reply.value = "";
        viewStatus.clear();
      } catch (error) {
        viewStatus.error(error);
      } finally {
        send.disabled = false;
        reply.focus();
      }
    });

    async function act(event, label) {
      try {
        const answer = await live.call(event, { conversation_id: selected.id });
        upsert(answer.conversation);
        viewStatus.say(label);
      } catch (error) {
        viewStatus.error(error);
      }
    }

    async function end() {
      try {
        upsert(await api.patch(`/api/conversations/${selected.id}`, { status: "ended" }));
        viewStatus.say("The conversation is ended.");
      } catch (error) {
        viewStatus.error(error);
      }
    }

    function renderHeader() {
      const c = conversations.get(selected.id);
      if (!c) return;
      const active = c.status === "active";
      fill(header,
        h("a", { href: "#/inbox", class: "back" }, "← All conversations"),
        h("h2", { id: "conversation-title" }, VOICE.has(c.channel) ? `Call transcript: ${title(c)}` : title(c)),
        h("p", { class: "muted" },
          `Started ${formatDateTime(c.started_at)}`,
          c.ended_at ? ` · ended ${formatDateTime(c.ended_at)}` : "",
          c.tags?.length ? ` · tags: ${c.tags.join(", ")}` : "",
          c.contact_id ? [" · ", h("a", { href: `#/crm/contacts/${c.contact_id}` }, "Contact")] : null),
        h("div", { class: "badges" }, badges(c, {})));
      fill(actions,
        active && (!c.ai_paused || waiting(c))
          ? h("button", { type: "button", class: "primary", onclick: () => act("conversation:takeover", "You have taken over: the AI is silent.") }, "Take over")
          : null,
        active && c.ai_paused
          ? h("button", { type: "button", onclick: () => act("conversation:release", "Handed back to the AI.") }, "Hand back to AI")
          : null,
        active ? h("button", { type: "button", onclick: end }, "End conversation") : null);
      composer.hidden = !active;
      replyHint.textContent = c.ai_paused
        ? "The AI is silent; the visitor sees your replies at once."
        : "The AI is still answering; take over to talk to the visitor alone.";
    }

    async function open(id) {
      unread.delete(id);
      fresh.delete(id);
      unwatch();
      unwatch = () => {};
      if (!id) {
        selected = null;
        layout.removeAttribute("data-selected");
        fill(view, h("p", { class: "muted placeholder" }, "Choose a conversation to read it."));
        renderList();
        return;
      }
      layout.setAttribute("data-selected", "true");
      try {
        const conversation = conversations.get(id) || await api.get(`/api/conversations/${id}`);
        conversations.set(id, conversation);
        const transcript = createTranscript({ voice: VOICE.has(conversation.channel) });
        selected = { id, transcript };
        unwatch = live.watch(id);
        renderList();
        renderHeader();
        viewStatus.clear();
        view.setAttribute("aria-labelledby", "conversation-title");
        fill(view, header, actions, transcript.element, composer, viewStatus);
        await loadMessages();
      } catch (error) {
        selected = null;
        fill(view, h("p", { class: "status error" }, error.message));
      }
    }

    async function loadMessages() {
      const { id, transcript } = selected;
      const { messages } = await api.get(`/api/conversations/${id}/messages`, { limit: HISTORY });
      if (selected?.id !== id) return;
      transcript.show(messages);
      if (messages.length && messages[0].seq > 1) {
        transcript.element.prepend(h("button", {
          type: "button", class: "link earlier",
          onclick: async (event) => {
            const { messages: older } = await api.get(`/api/conversations/${id}/messages`,
              { limit: HISTORY, before_seq: Number(transcript.element.querySelector("[data-seq]")?.dataset.seq) });
            older.forEach((m) => transcript.add(m));
            if (!older.length || older[0].seq === 1) event.target.remove();
          },
        }, "Show earlier messages"));
      }
    }

    // ---------- live ----------

    on("conversation:new", (conversation) => {
      fresh.add(conversation.id);
      announcer.textContent = `New conversation with ${title(conversation)}`;
      upsert(conversation);
    });
    on("conversation:updated", upsert);
    on("handoff:requested", ({ conversation_id }) => {
      announcer.textContent = "A customer is waiting for a person";
      refetch(conversation_id);
    });
    on("message:new", (message) => {
      const id = message.conversation_id;
      if (selected?.id === id) selected.transcript.add(message);
      else unread.add(id);
      const known = conversations.get(id);
      if (known) upsert({ id, last_message_at: message.created_at });
      else refetch(id); // an older conversation came back to life
    });
    on("message:delta", (data) => { if (selected?.id === data.conversation_id) selected.transcript.delta(data); });
    on("agent:typing", (data) => { if (selected?.id === data.conversation_id) selected.transcript.typing("agent", data.typing); });
    on("visitor:typing", (data) => { if (selected?.id === data.conversation_id) selected.transcript.typing("user", data.typing); });
    on("live:reconnected", async () => {
      await loadList(false);
      if (!selected) return;
      const { id, transcript } = selected;
      const { messages } = await api.get(`/api/conversations/${id}/messages`, { after_seq: transcript.lastSeq, limit: HISTORY });
      messages.forEach((m) => transcript.add(m));
    });

    await loadList(false);
    await open(params[0]);
    return { update: (next) => open(next[0]), unmount: () => unwatch() };
  },
};
