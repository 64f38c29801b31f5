// CRM: contacts (search, detail with their conversations and deals) and deals by stage.

import { api } from "../api.js";
import { debounce, field, fill, formatDate, formatDateTime, h, pageTitle, select, statusLine, table } from "../dom.js";
import { choices } from "../schema.js";

const PAGE_SIZE = 25;
const money = (value, currency) => {
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(value);
  } catch (_) {
    return `${value} ${currency}`;
  }
};
const stageName = (stage) => stage.replace("_", " ");

export function contactName(contact) {
  const name = [contact.first_name, contact.last_name].filter(Boolean).join(" ");
  return name || contact.email || contact.phone || "Unnamed contact";
}

function tabs(currentTab) {
  return h("nav", { class: "tabs", "aria-label": "CRM" },
    [["contacts", "Contacts"], ["deals", "Deals"]].map(([tab, label]) =>
      h("a", { href: `#/crm/${tab}`, "aria-current": tab === currentTab ? "page" : null }, label)));
}

function contactForm(onCreated) {
  const status = statusLine();
  const inputs = {
    first_name: h("input", { type: "text", maxlength: "200", autocomplete: "off" }),
    last_name: h("input", { type: "text", maxlength: "200", autocomplete: "off" }),
    email: h("input", { type: "email", autocomplete: "off" }),
    phone: h("input", { type: "tel", autocomplete: "off" }),
    company_name: h("input", { type: "text", maxlength: "200", autocomplete: "off" }),
  };
  const form = h("form", { class: "inline-form" },
    h("div", { class: "row" },
      field("First name", inputs.first_name), field("Last name", inputs.last_name),
      field("Email", inputs.email), field("Phone", inputs.phone), field("Company", inputs.company_name)),
    h("button", { type: "submit", class: "primary" }, "Add contact"), status);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = Object.fromEntries(Object.entries(inputs).map(([k, i]) => [k, i.value.trim()]).filter(([, v]) => v));
    try {
      const contact = await api.post("/api/crm/contacts", body);
      form.reset();
      status.say(`Added ${contactName(contact)}.`);
      onCreated(contact);
    } catch (error) {
      status.error(error);
    }
  });
  return h("details", { class: "card" }, h("summary", {}, "Add a contact"), form);
}

async function contactsView(root, navigate) {
  const search = h("input", { type: "search", maxlength: "200", placeholder: "Name, email or company" });
  const status = statusLine();
  const results = h("div");
  const pager = h("div", { class: "pager" });
  let offset = 0;

  async function load() {
    try {
      const term = search.value.trim();
      const page = await api.get("/api/crm/contacts", { search: term || undefined, limit: PAGE_SIZE, offset });
      status.say(`${page.total} contact${page.total === 1 ? "" : "s"}${term ? ` matching “${term}”` : ""}`);
      fill(results, table("Contacts", ["Name", "Email", "Phone", "Company", "Tags", "Added"],
        page.contacts.map((c) => [
          h("a", { href: `#/crm/contacts/${c.id}` }, contactName(c)),
          c.email || "–", c.phone || "–", c.company_name || "–", c.tags.join(", ") || "–", formatDate(c.created_at),
        ])));
      fill(pager,
        offset > 0 ? h("button", { type: "button", onclick: () => { offset -= PAGE_SIZE; load(); } }, "Previous") : null,
        offset + PAGE_SIZE < page.total ? h("button", { type: "button", onclick: () => { offset += PAGE_SIZE; load(); } }, "Next") : null);
    } catch (error) {
      status.error(error);
    }
  }
  search.addEventListener("input", debounce(() => { offset = 0; load(); }));
  fill(root,
    contactForm((contact) => navigate(`#/crm/contacts/${contact.id}`)),
    h("div", { class: "card" }, field("Search contacts", search), status, results, pager));
  await load();
}

async function contactDetail(root, id) {
  let contact;
  try {
    contact = await api.get(`/api/crm/contacts/${id}`);
  } catch (error) {
    fill(root, h("p", { class: "status error" }, error.message));
    return;
  }
  const details = [
    ["Email", contact.email], ["Phone", contact.phone], ["Company", contact.company_name],
    ["Tags", contact.tags.join(", ")], ["Added", formatDateTime(contact.created_at)],
  ];
  fill(root,
    h("a", { href: "#/crm/contacts", class: "back" }, "← All contacts"),
    h("section", { class: "card", "aria-labelledby": "contact-name" },
      h("h2", { id: "contact-name" }, contactName(contact)),
      h("dl", { class: "details" }, details.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v || "–")]))),
    h("section", { class: "card", "aria-labelledby": "contact-conversations" },
      h("h2", { id: "contact-conversations" }, "Conversations"),
      contact.conversations.length
        ? table("Conversations", ["Started", "Channel", "Status"], contact.conversations.map((c) => [
          h("a", { href: `#/inbox/${c.id}` }, formatDateTime(c.started_at)), c.channel, c.status]), { quiet: true })
        : h("p", { class: "muted" }, "None.")),
    h("section", { class: "card", "aria-labelledby": "contact-deals" },
      h("h2", { id: "contact-deals" }, "Deals"),
      contact.deals.length
        ? table("Deals", ["Title", "Stage", "Value", "Probability"], contact.deals.map((d) => [
          d.title, stageName(d.stage), money(d.value, d.currency), `${d.probability}%`]), { quiet: true })
        : h("p", { class: "muted" }, "None.")),
    h("p", {}, h("a", { href: `#/settings/gdpr/${contact.id}` }, "Export or erase this contact's data (GDPR)")));
}

async function dealsView(root) {
  const stages = await choices("DealCreate", "stage");
  const status = statusLine();
  const board = h("div", { class: "board" });

  async function load() {
    try {
      const pages = await Promise.all(stages.map((stage) => api.get("/api/crm/deals", { stage, limit: 100 })));
      fill(board, ...stages.map((stage, i) => {
        const { deals, total } = pages[i];
        const sum = deals.reduce((acc, d) => acc + d.value, 0);
        return h("section", { class: "column", "aria-labelledby": `stage-${stage}` },
          h("h2", { id: `stage-${stage}` }, stageName(stage), " ", h("span", { class: "muted" }, `(${total})`)),
          deals.length ? h("p", { class: "muted" }, `${money(sum, deals[0].currency)}${total > deals.length ? " in the first 100" : ""}`) : null,
          h("ul", {}, deals.map((deal) => h("li", { class: "deal" },
            h("strong", {}, deal.title),
            h("span", {}, `${money(deal.value, deal.currency)} · ${deal.probability}%`),
            deal.contact_id ? h("a", { href: `#/crm/contacts/${deal.contact_id}` }, "Contact") : null,
            (() => {
              const move = select(stages.map((s) => [s, stageName(s)]), {
                value: deal.stage, "aria-label": `Stage of ${deal.title}`,
                onchange: async () => {
                  try {
                    await api.patch(`/api/crm/deals/${deal.id}`, { stage: move.value });
                    status.say(`“${deal.title}” moved to ${stageName(move.value)}.`);
                    load();
                  } catch (error) {
                    status.error(error);
                  }
                },
              });
              return move;
            })()))));
      }));
    } catch (error) {
      status.error(error);
    }
  }

  const title = h("input", { type: "text", required: true, maxlength: "200" });
  const value = h("input", { type: "number", min: "0", step: "0.01", value: "0" });
  const currency = h("input", { type: "text", pattern: "[A-Z]{3}", maxlength: "3", value: "USD" });
  const stage = select(stages.map((s) => [s, stageName(s)]), { value: stages[0] });
  const probability = h("input", { type: "number", min: "0", max: "100", step: "1", value: "10" });
  const createStatus = statusLine();
  const form = h("form", { class: "inline-form" },
    h("div", { class: "row" }, field("Title", title), field("Value", value), field("Currency", currency),
      field("Stage", stage), field("Probability (%)", probability)),
    h("button", { type: "submit", class: "primary" }, "Add deal"), createStatus);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      await api.post("/api/crm/deals", {
        title: title.value.trim(), value: Number(value.value || 0), currency: currency.value,
        stage: stage.value, probability: Number(probability.value || 0),
      });
      form.reset();
      createStatus.say("Deal added.");
      load();
    } catch (error) {
      createStatus.error(error);
    }
  });
  fill(root, h("details", { class: "card" }, h("summary", {}, "Add a deal"), form), status, board);
  await load();
}

export default {
  title: "CRM",

  async mount(root, { params, navigate }) {
    const body = h("div");
    fill(root, pageTitle("CRM"), h("div", { class: "tab-host" }), body);

    async function show([tab = "contacts", id] = []) {
      fill(root.querySelector(".tab-host"), tabs(tab === "deals" ? "deals" : "contacts"));
      if (tab === "deals") await dealsView(body);
      else if (id) await contactDetail(body, id);
      else await contactsView(body, navigate);
    }
    await show(params);
    return { update: show };
  },
};
