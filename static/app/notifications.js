// The bell in the top bar: the live unread count, and the latest
// notifications in a panel that opens below it.

import { api } from "./api.js";
import { fill, h, s, time } from "./dom.js";
import { live } from "./live.js";

function bellIcon() {
  return s("svg", { viewBox: "0 0 24 24", width: "20", height: "20", "aria-hidden": "true", class: "bell-icon" },
    s("path", { d: "M6 16V11a6 6 0 0 1 12 0v5l2 2H4l2-2zM10 20a2 2 0 0 0 4 0" }));
}

/** Where a notification leads, from the ids in its data. */
function target(data = {}) {
  if (data.conversation_id) return `#/inbox/${data.conversation_id}`;
  if (data.document_id) return "#/knowledge";
  if (data.contact_id) return `#/crm/contacts/${data.contact_id}`;
  if (data.deal_id) return "#/crm/deals";
  return null;
}

export function createBell(navigate) {
  const badge = h("span", { class: "badge", hidden: true });
  const button = h("button", {
    type: "button", class: "bell", "aria-expanded": "false",
    "aria-controls": "notifications-panel",
  }, bellIcon(), badge);
  const list = h("ul", { class: "notification-list" });
  const announcer = h("p", { class: "sr", role: "status", "aria-live": "polite" });
  const panel = h("section", {
    id: "notifications-panel", class: "notifications-panel", hidden: true, "aria-label": "Notifications",
  },
  h("div", { class: "panel-head" },
    h("h2", {}, "Notifications"),
    h("button", {
      type: "button", class: "link",
      onclick: async () => { await api.post("/api/notifications/read-all"); await refresh(); },
    }, "Mark all read")),
  list);
  const element = h("div", { class: "bell-wrap" }, button, panel, announcer);

  function setCount(count) {
    badge.hidden = count === 0;
    badge.textContent = String(count);
    button.setAttribute("aria-label", `Notifications, ${count} unread`);
  }

  function item(note) {
    const link = target(note.data);
    return h("li", { class: note.read ? "read" : "unread" },
      h("button", {
        type: "button", class: "notification",
        onclick: async () => {
          if (!note.read) await api.post(`/api/notifications/${note.id}/read`);
          close();
          if (link) navigate(link);
        },
      },
      h("strong", {}, note.title),
      note.body ? h("span", {}, note.body) : null,
      time(note.created_at)));
  }

  async function refresh() {
    const [{ notifications }, { count }] = await Promise.all([
      api.get("/api/notifications", { limit: 20 }), api.get("/api/notifications/unread-count"),
    ]);
    fill(list, ...(notifications.length ? notifications.map(item) : [h("li", { class: "muted" }, "Nothing yet.")]));
    setCount(count);
  }

  function open() {
    panel.hidden = false;
    button.setAttribute("aria-expanded", "true");
    refresh().catch(() => {});
    panel.querySelector("button")?.focus();
  }
  function close() {
    panel.hidden = true;
    button.setAttribute("aria-expanded", "false");
  }
  button.addEventListener("click", () => (panel.hidden ? open() : close()));
  element.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !panel.hidden) { close(); button.focus(); }
  });
  document.addEventListener("click", (event) => { if (!element.contains(event.target)) close(); });

  live.on("notification:unread", ({ count }) => setCount(count));
  live.on("notification:new", (note) => {
    announcer.textContent = `New notification: ${note.title}`;
    if (!panel.hidden) list.prepend(item(note));
  });
  // The count now, and again after a reconnect (what happened meanwhile).
  const sync = () => api.get("/api/notifications/unread-count").then(({ count }) => setCount(count)).catch(() => {});
  live.on("live:connected", sync);
  live.on("live:reconnected", sync);
  setCount(0);
  return { element };
}
