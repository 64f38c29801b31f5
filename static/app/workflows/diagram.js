// A picture of a workflow's graph: steps in columns by how far they are from
// the trigger, arrows between them, a condition's branches labelled yes/no.
// The same layout gives new steps their React Flow `position`.

import { s } from "../dom.js";

const BOX = { width: 168, height: 46, gapX: 56, gapY: 18 };
const SPACING = { x: 240, y: 110 }; // React Flow positions, in its own units

/** Column (longest path from a start) and row of every node; cycles go last. */
export function layout(nodes, edges) {
  const ids = nodes.map((n) => n.id);
  const indegree = new Map(ids.map((id) => [id, 0]));
  for (const edge of edges) if (indegree.has(edge.target) && indegree.has(edge.source)) indegree.set(edge.target, indegree.get(edge.target) + 1);
  const column = new Map();
  const ready = ids.filter((id) => indegree.get(id) === 0);
  ready.forEach((id) => column.set(id, 0));
  while (ready.length) {
    const id = ready.shift();
    for (const edge of edges) {
      if (edge.source !== id || !indegree.has(edge.target)) continue;
      column.set(edge.target, Math.max(column.get(edge.target) ?? 0, column.get(id) + 1));
      indegree.set(edge.target, indegree.get(edge.target) - 1);
      if (indegree.get(edge.target) === 0) ready.push(edge.target);
    }
  }
  const last = Math.max(0, ...column.values()) + 1;
  const rows = new Map();
  const place = new Map();
  for (const id of ids) {
    const x = column.has(id) ? column.get(id) : last; // in a cycle
    const y = rows.get(x) || 0;
    rows.set(x, y + 1);
    place.set(id, { column: x, row: y });
  }
  return place;
}

/** A React Flow position for a node that has none. */
export function positionOf(place) {
  return { x: place.column * SPACING.x, y: place.row * SPACING.y };
}

function clip(text, length) {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

/** The SVG, as an image with a text description (the form below is the editor). */
export function diagram(nodes, edges, { labelOf, invalid = new Set() }) {
  const place = layout(nodes, edges);
  const columns = Math.max(1, ...[...place.values()].map((p) => p.column + 1));
  const rows = Math.max(1, ...[...place.values()].map((p) => p.row + 1));
  const width = columns * (BOX.width + BOX.gapX) - BOX.gapX + 8;
  const height = rows * (BOX.height + BOX.gapY) - BOX.gapY + 8;
  const at = (id) => {
    const p = place.get(id);
    return { x: 4 + p.column * (BOX.width + BOX.gapX), y: 4 + p.row * (BOX.height + BOX.gapY) };
  };
  const described = edges.map((e) => `${e.source}${e.sourceHandle ? ` (${e.sourceHandle})` : ""} to ${e.target}`);
  const summary = nodes.length === 1 ? "Only the trigger so far." : `Steps: ${nodes.map((n) => n.id).join(", ")}. Connections: ${described.join("; ") || "none"}.`;

  const arrows = edges.filter((e) => place.has(e.source) && place.has(e.target)).map((edge) => {
    const from = at(edge.source);
    const to = at(edge.target);
    const x1 = from.x + BOX.width;
    const y1 = from.y + BOX.height / 2;
    const x2 = to.x;
    const y2 = to.y + BOX.height / 2;
    const bend = Math.max(24, (x2 - x1) / 2);
    const path = x2 > x1
      ? `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`
      : `M${x1},${y1} C${x1 + 60},${y1 + 60} ${x2 - 60},${y2 + 60} ${x2},${y2}`; // backwards: a cycle
    return s("g", { class: `arrow ${edge.sourceHandle || ""}` },
      s("path", { d: path, "marker-end": "url(#workflow-arrow)" }),
      edge.sourceHandle ? s("text", { x: x1 + 6, y: y1 - 5, class: "handle" }, edge.sourceHandle) : null);
  });
  const boxes = nodes.map((node) => {
    const { x, y } = at(node.id);
    return s("g", { class: `box type-${node.type}${invalid.has(node.id) ? " invalid" : ""}`, "data-node": node.id },
      s("rect", { x, y, width: BOX.width, height: BOX.height, rx: 6 }),
      s("text", { x: x + 8, y: y + 19, class: "id" }, clip(node.id, 22)),
      s("text", { x: x + 8, y: y + 36, class: "kind" }, clip(labelOf(node.type), 24)));
  });
  return s("svg", {
    class: "workflow-diagram", viewBox: `0 0 ${width} ${height}`, width, height,
    role: "img", "aria-label": `The workflow as a diagram. ${summary}`,
  },
  s("defs", {}, s("marker", { id: "workflow-arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse" },
    s("path", { d: "M0,0 L10,5 L0,10 z" }))),
  arrows, boxes);
}
