// The dashboard's pages, in the order of the navigation. A page is a module
// whose default export is {title, mount(root, context)}; adding a page is
// adding a module and a line here.

export const PAGES = [
  { path: "inbox", label: "Inbox", load: () => import("./inbox.js") },
  { path: "agents", label: "Agents", load: () => import("./agents.js") },
  { path: "knowledge", label: "Knowledge base", load: () => import("./knowledge.js") },
  { path: "workflows", label: "Workflows", load: () => import("./workflows.js") },
  { path: "analytics", label: "Analytics", load: () => import("./analytics.js") },
  { path: "crm", label: "CRM", load: () => import("./crm.js") },
  { path: "settings", label: "Settings", load: () => import("./settings.js") },
];
