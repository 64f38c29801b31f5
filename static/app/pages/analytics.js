// Analytics: totals and charts over a date range — conversations over time,
// channels, response time, satisfaction, and cost by model and by agent.

import { api } from "../api.js";
import { barChart, columnChart } from "../charts.js";
import { field, fill, h, pageTitle, select, statusLine } from "../dom.js";

const ZONE = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
const number = new Intl.NumberFormat();
const dollars = new Intl.NumberFormat(undefined, { style: "currency", currency: "USD" });
const cents = new Intl.NumberFormat(undefined, { style: "currency", currency: "USD", maximumSignificantDigits: 2 });
// A reply costs a fraction of a cent: show it rather than $0.00.
const money = (value) => (value > 0 && value < 0.01 ? cents : dollars).format(value);

/** YYYY-MM-DD of a local date, `days` before today. */
function isoDaysAgo(days) {
  const date = new Date();
  date.setDate(date.getDate() - days);
  return `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-${String(date.getDate()).padStart(2, "0")}`;
}

/** A bucket's label: its first day ("Nov 3"), or its month ("Nov 2026"). */
function period(iso, groupBy) {
  const [year, month, day] = iso.split("-").map(Number);
  const options = groupBy === "month" ? { month: "short", year: "numeric" } : { month: "short", day: "numeric" };
  return new Date(year, month - 1, day).toLocaleDateString(undefined, options);
}

const ms = (value) => (value >= 1000 ? `${(value / 1000).toFixed(1)} s` : `${Math.round(value)} ms`);
const seconds = (value) => (value >= 60 ? `${Math.round(value / 60)} min` : `${value} s`);

function kpi(label, value) {
  return h("div", { class: "kpi" }, h("dt", {}, label), h("dd", {}, value));
}

export default {
  title: "Analytics",

  async mount(root) {
    const start = h("input", { type: "date", required: true, value: isoDaysAgo(29) });
    const end = h("input", { type: "date", required: true, value: isoDaysAgo(0) });
    const groupBy = select([["day", "Day"], ["week", "Week"], ["month", "Month"]], { value: "day" });
    const status = statusLine();
    const output = h("div", { class: "analytics", "aria-live": "polite", "aria-busy": "false" });
    const presets = [7, 30, 90].map((days) => h("button", {
      type: "button", class: "small",
      onclick: () => {
        start.value = isoDaysAgo(days - 1);
        end.value = isoDaysAgo(0);
        groupBy.value = days > 31 ? "week" : "day";
        load();
      },
    }, `Last ${days} days`));
    const form = h("form", { class: "card range-form", "aria-label": "Date range" },
      h("div", { class: "row" }, field("From", start), field("To", end), field("Group by", groupBy),
        h("button", { type: "submit", class: "primary" }, "Show")),
      h("div", { class: "presets", role: "group", "aria-label": "Quick ranges" }, presets),
      h("p", { class: "muted" }, `Days are counted in your time zone, ${ZONE}.`),
      status);
    form.addEventListener("submit", (event) => { event.preventDefault(); load(); });

    async function load() {
      const range = { startDate: start.value, endDate: end.value, tz: ZONE };
      output.setAttribute("aria-busy", "true");
      status.say("Loading…");
      try {
        const [overview, conversations, costs, agents] = await Promise.all([
          api.get("/api/analytics/overview", range),
          api.get("/api/analytics/conversations", { ...range, groupBy: groupBy.value }),
          api.get("/api/analytics/costs", range),
          api.get("/api/analytics/agents", range),
        ]);
        status.say(`${start.value} to ${end.value}`);
        render(overview, conversations, costs, agents.agents, groupBy.value);
      } catch (error) {
        status.error(error);
      } finally {
        output.setAttribute("aria-busy", "false");
      }
    }

    function render(overview, conversations, costs, agents, grouping) {
      fill(output,
        h("dl", { class: "kpis" },
          kpi("Conversations", number.format(overview.totalConversations)),
          kpi("Active now", number.format(overview.activeConversations)),
          kpi("Agents in use", number.format(overview.activeAgents)),
          kpi("Average response", overview.avgResponseTime == null ? "–" : ms(overview.avgResponseTime)),
          kpi("Satisfaction", overview.userSatisfaction == null ? "no ratings" : `${overview.userSatisfaction} / 5`),
          kpi("Average duration", conversations.avgDuration == null ? "–" : seconds(conversations.avgDuration)),
          kpi("Tokens", number.format(costs.totalTokens)),
          kpi("Estimated cost", money(costs.estimatedCost))),
        h("div", { class: "charts" },
          columnChart("timeline", "Conversations over time",
            conversations.timeline.map((p) => ({ label: period(p.date, grouping), value: p.count })), number.format),
          barChart("channels", "Conversations by channel",
            conversations.byChannel.map((c) => ({ label: c.channel, value: c.count })), number.format),
          barChart("response-time", "Average response time by agent",
            agents.map((a) => ({ label: a.agentName, value: a.avgResponseTime, note: "no replies" })), ms),
          barChart("satisfaction", "Satisfaction by agent (1–5)",
            agents.map((a) => ({ label: a.agentName, value: a.satisfaction, note: "no ratings" })),
            (v) => v.toFixed(2), { max: 5 }),
          barChart("cost-model", "Cost by model",
            costs.byModel.map((m) => ({ label: m.model || "unknown", value: m.cost, note: `not priced (${number.format(m.totalTokens)} tokens)` })),
            money),
          barChart("cost-agent", "Cost by agent",
            costs.byAgent.map((a) => ({ label: a.agentName || "deleted agent", value: a.cost })), money)),
        costs.unpriced.length
          ? h("p", { class: "muted" }, `Not in the price table, so not in the estimate: ${costs.unpriced.map((m) => m || "unknown").join(", ")}.`)
          : null);
    }

    fill(root, pageTitle("Analytics"), form, output);
    await load();
  },
};
