// Charts drawn as SVG by hand: a column chart for time series and a bar chart
// for categories. Each is a <figure> with a caption, an SVG that screen
// readers get as one image with a summary, and the same numbers as a table
// for those who want them exactly. Labels are SVG text nodes, never markup.

import { h, s } from "./dom.js";

const WIDTH = 520;

/** 0, a round number above the maximum, and its half: the gridlines. */
function niceMax(max) {
  if (max <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(max));
  for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= max) return step * power;
  return 10 * power;
}

function shorten(text, length) {
  const value = String(text ?? "–");
  return value.length > length ? value.slice(0, length - 1) + "…" : value;
}

function figure(name, caption, svg, summary, rows, headers) {
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", summary);
  return h("figure", { class: "chart", "data-chart": name },
    h("figcaption", {}, caption),
    svg,
    h("details", { class: "chart-data" },
      h("summary", {}, "Show the numbers"),
      h("table", {},
        h("thead", {}, h("tr", {}, headers.map((text) => h("th", { scope: "col" }, text)))),
        h("tbody", {}, rows.map((cells) => h("tr", {}, cells.map((cell) => h("td", {}, cell))))))));
}

function empty(name, caption, message) {
  return h("figure", { class: "chart empty", "data-chart": name },
    h("figcaption", {}, caption), h("p", { class: "muted" }, message));
}

/**
 * Columns over time. points: [{label, value}]; format(value) → text.
 */
export function columnChart(name, caption, points, format = String) {
  if (!points.length) return empty(name, caption, "No data in this range.");
  const height = 220, left = 48, bottom = 28, top = 12;
  const plotWidth = WIDTH - left - 8, plotHeight = height - top - bottom;
  const max = niceMax(Math.max(...points.map((p) => p.value)));
  const slot = plotWidth / points.length;
  const barWidth = Math.max(1, slot * 0.7);
  const y = (value) => top + plotHeight - (value / max) * plotHeight;

  const svg = s("svg", { viewBox: `0 0 ${WIDTH} ${height}`, class: "chart-svg" });
  for (const tick of [0, max / 2, max]) {
    svg.append(
      s("line", { x1: left, x2: WIDTH - 8, y1: y(tick), y2: y(tick), class: "grid" }),
      s("text", { x: left - 6, y: y(tick) + 4, class: "axis", "text-anchor": "end" }, format(tick)));
  }
  // About eight labels along the bottom, whatever the number of columns.
  const every = Math.max(1, Math.ceil(points.length / 8));
  points.forEach((point, i) => {
    const x = left + i * slot + (slot - barWidth) / 2;
    svg.append(s("rect", {
      x, y: y(point.value), width: barWidth, height: Math.max(0, top + plotHeight - y(point.value)),
      class: "bar", "data-label": point.label, "data-value": point.value,
    }, s("title", {}, `${point.label}: ${format(point.value)}`)));
    if (i % every === 0) {
      svg.append(s("text", { x: x + barWidth / 2, y: height - 8, class: "axis", "text-anchor": "middle" },
        shorten(point.label, 10)));
    }
  });
  const total = points.reduce((sum, p) => sum + p.value, 0);
  const peak = points.reduce((best, p) => (p.value > best.value ? p : best), points[0]);
  const summary = `${caption}: ${points.length} periods from ${points[0].label} to ${points.at(-1).label}, ` +
    `total ${format(total)}, highest ${format(peak.value)} on ${peak.label}.`;
  return figure(name, caption, svg, summary,
    points.map((p) => [p.label, format(p.value)]), ["Period", "Value"]);
}

/**
 * Horizontal bars per category. items: [{label, value, note?}]; a null value
 * is drawn as no bar with its note (e.g. "no ratings", "not priced").
 */
export function barChart(name, caption, items, format = String, { max } = {}) {
  if (!items.length) return empty(name, caption, "No data in this range.");
  const row = 30, labelWidth = 150, valueWidth = 100;
  const height = items.length * row + 8;
  const plotWidth = WIDTH - labelWidth - valueWidth;
  const scale = max ?? niceMax(Math.max(0, ...items.map((item) => item.value ?? 0)));
  const svg = s("svg", { viewBox: `0 0 ${WIDTH} ${height}`, class: "chart-svg" });
  items.forEach((item, i) => {
    const y = 4 + i * row;
    const width = item.value == null ? 0 : Math.max(item.value > 0 ? 2 : 0, (item.value / scale) * plotWidth);
    const shown = item.value == null ? item.note || "–" : format(item.value);
    svg.append(
      s("text", { x: labelWidth - 8, y: y + row / 2 + 4, class: "axis", "text-anchor": "end" },
        shorten(item.label, 20)),
      s("rect", {
        x: labelWidth, y: y + 5, width, height: row - 10, rx: 3,
        class: "bar", "data-label": item.label, "data-value": item.value ?? "",
      }, s("title", {}, `${item.label}: ${shown}`)),
      s("text", { x: labelWidth + width + 6, y: y + row / 2 + 4, class: "value" }, shown));
  });
  const summary = `${caption}: ` + items.map((item) =>
    `${item.label} ${item.value == null ? item.note || "none" : format(item.value)}`).join(", ") + ".";
  return figure(name, caption, svg, summary,
    items.map((item) => [item.label, item.value == null ? item.note || "–" : format(item.value)]),
    ["Name", "Value"]);
}
