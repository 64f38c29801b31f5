// Settings: data retention, GDPR export and erasure for a contact, the
// company export, the team, and the audit log of every change.

import { api } from "../api.js";
import { debounce, field, fill, formatDateTime, h, pageTitle, statusLine, table } from "../dom.js";
import { session } from "../session.js";
import { contactName } from "./crm.js";

const AUDIT_PAGE = 25;

function retentionSection() {
  const days = h("input", { type: "number", min: "1", max: "3650", step: "1" });
  const status = statusLine();
  const form = h("form", { class: "card", "aria-labelledby": "retention-title" },
    h("h2", { id: "retention-title" }, "Data retention"),
    field("Delete conversations after this many days without activity", days, "Leave empty to keep conversations."),
    h("button", { type: "submit", class: "primary" }, "Save"), status);
  api.get("/api/gdpr/retention").then(({ days: value }) => { days.value = value ?? ""; }, (e) => status.error(e));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const saved = await api.put("/api/gdpr/retention", { days: days.value === "" ? null : Number(days.value) });
      status.say(saved.days ? `Conversations are deleted after ${saved.days} days.` : "Conversations are kept.");
    } catch (error) {
      status.error(error);
    }
  });
  return form;
}

function gdprSection(preselected) {
  const search = h("input", { type: "search", maxlength: "200", placeholder: "Name, email or company" });
  const matches = h("ul", { class: "plain" });
  const chosen = h("div");
  const status = statusLine();

  function choose(contact) {
    status.clear();
    const erase = h("button", {
      type: "button", class: "danger",
      onclick: async () => {
        if (!window.confirm(`Erase ${contactName(contact)}? The contact is deleted and what their conversations said is emptied. This cannot be undone.`)) return;
        try {
          const result = await api.delete(`/api/gdpr/contacts/${contact.id}`);
          status.say(`Erased: ${result.conversations} conversations and ${result.messages} messages emptied.`);
          fill(chosen);
        } catch (error) {
          status.error(error);
        }
      },
    }, "Erase");
    fill(chosen, h("p", {}, "Selected: ", h("strong", {}, contactName(contact)), contact.email ? ` (${contact.email})` : ""),
      h("div", { class: "actions" },
        h("button", {
          type: "button",
          onclick: () => api.download(`/api/gdpr/contacts/${contact.id}/export`, `contact-${contact.id}.json`)
            .then(() => status.say("Export downloaded."), (e) => status.error(e)),
        }, "Export their data"),
        erase));
  }

  search.addEventListener("input", debounce(async () => {
    const term = search.value.trim();
    if (!term) { fill(matches); return; }
    try {
      const { contacts } = await api.get("/api/crm/contacts", { search: term, limit: 10 });
      fill(matches, ...contacts.map((c) => h("li", {},
        h("button", { type: "button", class: "link", onclick: () => choose(c) }, contactName(c), c.email ? ` · ${c.email}` : ""))));
      if (!contacts.length) matches.append(h("li", { class: "muted" }, "No contact matches."));
    } catch (error) {
      status.error(error);
    }
  }));
  if (preselected) api.get(`/api/crm/contacts/${preselected}`).then(choose, (e) => status.error(e));

  return h("section", { class: "card", "aria-labelledby": "gdpr-title" },
    h("h2", { id: "gdpr-title" }, "Personal data (GDPR)"),
    h("p", { class: "muted" }, "Export everything held about a contact, or erase it: the conversations stay for the statistics, without what was said."),
    field("Find a contact", search), matches, chosen, status,
    session.user?.role === "owner"
      ? h("p", {}, h("button", {
        type: "button",
        onclick: () => api.download("/api/gdpr/export", "company-export.json").then(() => status.say("Company export downloaded."), (e) => status.error(e)),
      }, "Export all of the company's data"))
      : null);
}

async function teamAndAudit() {
  const status = statusLine();
  const team = h("div");
  const audit = h("div");
  const pager = h("div", { class: "pager" });
  let users = [];
  let offset = 0;
  try {
    users = (await api.get("/api/users")).users;
    fill(team, table("Team", ["Email", "Name", "Role", "Since"],
      users.map((u) => [u.email || "–", u.name || "–", u.role, formatDateTime(u.created_at)]), { quiet: true }));
  } catch (error) {
    status.error(error);
  }
  const who = (id) => users.find((u) => u.id === id)?.email || id || "–";

  async function loadAudit() {
    try {
      const page = await api.get("/api/audit-log", { limit: AUDIT_PAGE, offset });
      fill(audit, table(`Audit log (${page.total} entries)`, ["When", "Who", "Call", "Status", "Resource", "IP"],
        page.entries.map((e) => [formatDateTime(e.created_at), who(e.user_id), h("code", {}, `${e.method} ${e.path}`),
          String(e.status), e.resource_id || "–", e.ip || "–"]), { class: "audit", quiet: true }));
      fill(pager,
        offset > 0 ? h("button", { type: "button", onclick: () => { offset -= AUDIT_PAGE; loadAudit(); } }, "Newer") : null,
        offset + AUDIT_PAGE < page.total ? h("button", { type: "button", onclick: () => { offset += AUDIT_PAGE; loadAudit(); } }, "Older") : null);
    } catch (error) {
      fill(audit, h("p", { class: "muted" }, error.status === 403 ? "Only owners and admins can read the audit log." : error.message));
    }
  }
  await loadAudit();
  return [
    h("section", { class: "card", "aria-labelledby": "team-title" }, h("h2", { id: "team-title" }, "Team"), team, status),
    h("section", { class: "card", "aria-labelledby": "audit-title" }, h("h2", { id: "audit-title" }, "Audit log"), audit, pager),
  ];
}

export default {
  title: "Settings",

  async mount(root, { params }) {
    // #/settings/gdpr/<contact id> comes from a contact's page.
    const preselected = params[0] === "gdpr" ? params[1] : null;
    fill(root, pageTitle("Settings"),
      h("div", { class: "grid-2" }, retentionSection(), gdprSection(preselected)),
      ...(await teamAndAudit()));
  },
};
