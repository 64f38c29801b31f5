// The dashboard shell: signed out it shows the log-in; signed in, the
// navigation, the notifications bell and the current page. Routes are hashes
// (#/inbox/<conversation id>), so /app is the only URL the hub serves.
//
// A page module exports default {title, mount(root, context)}. mount returns
// an optional {update(params), unmount()}: `update` when only the route's
// parameters change (another conversation in the inbox), `unmount` on leaving.
// context = {params, on(event, fn), navigate(hash)}; `on` subscribes to the
// live events for as long as the page is shown.

import { fill, h } from "./dom.js";
import { live } from "./live.js";
import { createBell } from "./notifications.js";
import { PAGES } from "./pages/index.js";
import { mountAuth } from "./pages/auth.js";
import { session } from "./session.js";

const app = document.getElementById("app");
let current = null; // {path, page, handle, offs}
let shell = null;

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  return { path: parts[0] || "", params: parts.slice(1) };
}

export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function leave() {
  if (!current) return;
  current.offs.forEach((off) => off());
  current.handle?.unmount?.();
  current = null;
}

function buildShell() {
  const nav = h("nav", { id: "nav", "aria-label": "Main" },
    h("ul", {}, PAGES.map((page) => h("li", {}, h("a", { href: `#/${page.path}`, "data-page": page.path }, page.label)))));
  const menu = h("button", {
    type: "button", class: "menu-toggle", "aria-controls": "nav", "aria-expanded": "false",
    onclick: () => {
      const open = menu.getAttribute("aria-expanded") !== "true";
      menu.setAttribute("aria-expanded", String(open));
      nav.classList.toggle("open", open);
    },
  }, "Menu");
  nav.addEventListener("click", (event) => {
    if (event.target.closest("a")) {
      menu.setAttribute("aria-expanded", "false");
      nav.classList.remove("open");
    }
  });
  const connection = h("span", { class: "connection", role: "status", title: "Live updates" }, "Connecting…");
  live.on("live:status", (up) => {
    connection.textContent = up ? "Live" : "Reconnecting…";
    connection.classList.toggle("down", !up);
  });
  const bell = createBell(navigate);
  const main = h("main", { id: "main", tabindex: "-1" });
  const header = h("header", { class: "topbar" },
    menu,
    h("a", { class: "brand", href: "#/inbox" }, "Syntera"),
    h("span", { class: "company" }, session.company?.name || ""),
    h("div", { class: "topbar-end" },
      connection,
      bell.element,
      h("span", { class: "whoami" }, session.user?.email || ""),
      h("button", { type: "button", class: "link", onclick: () => session.end() }, "Log out")));
  // The skip link moves the focus without touching the hash, which is the route.
  const skip = h("a", {
    class: "skip", href: "#main",
    onclick: (event) => { event.preventDefault(); main.focus(); },
  }, "Skip to content");
  fill(app, skip, header,
    h("div", { class: "layout" }, nav, main));
  live.connect(session.token, () => session.end());
  return { main, nav, bell };
}

async function route() {
  const { path, params } = parseHash();
  if (!session.token) {
    const mode = path === "signup" ? "signup" : "login";
    if (path !== mode) history.replaceState(null, "", `#/${mode}`);
    mountAuth(app, mode);
    return;
  }
  const entry = PAGES.find((page) => page.path === path);
  if (!entry) {
    // Just signed in, or an unknown route: the first page.
    history.replaceState(null, "", `#/${PAGES[0].path}`);
    route();
    return;
  }
  if (!shell) shell = buildShell();

  for (const link of shell.nav.querySelectorAll("a")) {
    if (link.dataset.page === path) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  if (current?.path === path && current.handle?.update) {
    current.handle.update(params);
    return;
  }
  leave();
  const offs = [];
  const context = {
    params,
    navigate,
    on: (event, fn) => {
      const off = live.on(event, fn);
      offs.push(off);
      return off;
    },
  };
  const mine = { path, offs, handle: null };
  current = mine;
  const root = h("div", { class: `page page-${path}` });
  fill(shell.main, root);
  try {
    const { default: page } = await entry.load();
    if (current !== mine) return; // navigated away while loading
    document.title = `${page.title} · Syntera`;
    mine.handle = (await page.mount(root, context)) || null;
  } catch (error) {
    fill(root, h("p", { class: "status error", role: "alert" }, `This page could not be shown: ${error.message}`));
  }
  if (current !== mine) {
    // Navigated away while the page was still starting: it goes at once.
    offs.forEach((off) => off());
    mine.handle?.unmount?.();
    return;
  }
  root.querySelector("h1")?.focus({ preventScroll: true });
}

session.onChange((value) => {
  if (!value) {
    leave();
    live.reset();
    shell = null;
  }
  route();
});
window.addEventListener("hashchange", route);
route();
