// Agents: create and edit them (model, temperature, prompt, voice, tools),
// their publishable keys with the embed snippet, and a test chat that talks
// to the agent through the public API exactly as a website's widget does.

import { api, ApiError, publicRequest } from "../api.js";
import { field, fill, formatDate, h, newId, pageTitle, sendOnEnter, statusLine, table } from "../dom.js";
import { live } from "../live.js";
import { choices, defaults } from "../schema.js";
import { session } from "../session.js";
import { createTranscript } from "../transcript.js";

const TOOL_LABELS = {
  capture_contact: "Capture contact details into the CRM",
  create_deal: "Create deals in the CRM",
  handoff_to_human: "Hand the conversation to a person",
  end_conversation: "End the conversation",
};
const TEST_KEY = (agentId) => `syntera:dashboard:test-key:${agentId}`;

function embedSnippet(agentId, key) {
  return `<script src="${location.origin}/widget.js" data-agent-id="${agentId}" data-key="${key}" async></script>`;
}

async function copy(text, textarea) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (_) {
    // No clipboard permission (plain http, old browser): select for Ctrl+C.
    textarea.select();
    if (!document.execCommand("copy")) throw new Error("select the text and copy it");
  }
}

function agentForm(agent, { tools, fresh }, onSaved, onDeleted) {
  const v = agent || { tools: [], voice_settings: {}, ...fresh };
  const status = statusLine();
  const inputs = {
    name: h("input", { type: "text", required: true, maxlength: "200", value: v.name || "" }),
    description: h("input", { type: "text", maxlength: "2000", value: v.description || "" }),
    enabled: h("input", { type: "checkbox", checked: v.enabled }),
    model: h("input", { type: "text", required: true, maxlength: "200", value: v.model }),
    temperature: h("input", { type: "number", min: "0", max: "2", step: "0.1", required: true, value: v.temperature }),
    max_tokens: h("input", { type: "number", min: "1", max: "32000", step: "1", required: true, value: v.max_tokens }),
    system_prompt: h("textarea", { rows: "8", maxlength: "50000", value: v.system_prompt || "" }),
    greeting: h("input", { type: "text", maxlength: "500", value: v.greeting || "" }),
    voice: h("input", { type: "text", maxlength: "100", value: v.voice_settings?.voice || "" }),
    language: h("input", { type: "text", maxlength: "20", value: v.voice_settings?.language || "" }),
  };
  const toolBoxes = tools.map((name) => h("input", { type: "checkbox", value: name, checked: v.tools.includes(name) }));
  const save = h("button", { type: "submit", class: "primary" }, agent ? "Save changes" : "Create agent");

  const form = h("form", { class: "agent-form", "aria-label": "Agent settings" },
    h("fieldset", {}, h("legend", {}, "Basics"),
      field("Name", inputs.name),
      field("Description", inputs.description),
      h("div", { class: "field check" }, inputs.enabled, h("label", { for: (inputs.enabled.id = "agent-enabled") }, "Enabled: answers visitors"))),
    h("fieldset", {}, h("legend", {}, "Model"),
      field("Model", inputs.model, "Any model of the configured OpenAI-compatible endpoint."),
      h("div", { class: "row" },
        field("Temperature", inputs.temperature, "0 is focused, 2 is inventive."),
        field("Max tokens per reply", inputs.max_tokens))),
    h("fieldset", {}, h("legend", {}, "Conversation"),
      field("System prompt", inputs.system_prompt),
      field("Greeting", inputs.greeting, "The widget's first message.")),
    h("fieldset", {}, h("legend", {}, "Voice"),
      h("div", { class: "row" },
        field("Voice", inputs.voice, "The voice name of the speech engine."),
        field("Language", inputs.language, "e.g. en, de-DE"))),
    h("fieldset", { class: "tools" }, h("legend", {}, "Tools"),
      toolBoxes.map((box) => h("div", { class: "field check" }, box,
        h("label", { for: (box.id = `tool-${box.value}`) }, TOOL_LABELS[box.value] || box.value)))),
    h("div", { class: "actions" }, save,
      agent ? h("button", { type: "button", class: "danger", onclick: remove }, "Delete agent") : null),
    status);

  async function remove() {
    if (!window.confirm(`Delete the agent “${agent.name}”? Its keys stop working.`)) return;
    try {
      await api.delete(`/api/agents/${agent.id}`);
      onDeleted();
    } catch (error) {
      status.error(error);
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = (input) => input.value.trim() || null;
    const voice = { ...v.voice_settings, voice: text(inputs.voice), language: text(inputs.language) };
    for (const key of ["voice", "language"]) if (voice[key] === null) delete voice[key];
    const body = {
      name: inputs.name.value.trim(),
      description: text(inputs.description),
      enabled: inputs.enabled.checked,
      model: inputs.model.value.trim(),
      temperature: Number(inputs.temperature.value),
      max_tokens: Number(inputs.max_tokens.value),
      system_prompt: text(inputs.system_prompt),
      greeting: text(inputs.greeting),
      voice_settings: voice,
      tools: toolBoxes.filter((box) => box.checked).map((box) => box.value),
    };
    save.disabled = true;
    try {
      const saved = agent ? await api.patch(`/api/agents/${agent.id}`, body) : await api.post("/api/agents", body);
      status.say(agent ? "Saved." : "Agent created.");
      onSaved(saved, !agent);
    } catch (error) {
      status.error(error);
    } finally {
      save.disabled = false;
    }
  });
  return form;
}

function keysSection(agent) {
  const status = statusLine();
  const listBox = h("div");
  const origins = h("textarea", { rows: "3", required: true, placeholder: "https://www.example.com" });
  const created = h("div", { class: "new-key", hidden: true, tabindex: "-1" });

  async function load() {
    try {
      const { keys } = await api.get(`/api/agents/${agent.id}/keys`);
      fill(listBox, keys.length
        ? table("Active keys", ["Key", "Allowed origins", "Created", ""], keys.map((key) => [
          h("code", {}, `${key.key_prefix}…`),
          key.allowed_origins.join(", "),
          formatDate(key.created_at),
          h("button", { type: "button", class: "danger small", onclick: () => revoke(key) }, "Revoke"),
        ]))
        : h("p", { class: "muted" }, "No keys yet: create one to put the agent on a website."));
    } catch (error) {
      status.error(error);
    }
  }

  async function revoke(key) {
    if (!window.confirm(`Revoke ${key.key_prefix}…? Websites using it stop working at once.`)) return;
    try {
      await api.delete(`/api/agents/${agent.id}/keys/${key.id}`);
      status.say("Key revoked.");
      load();
    } catch (error) {
      status.error(error);
    }
  }

  const form = h("form", { class: "key-form" },
    field("Allowed origins, one per line", origins, "The websites that may use the key, e.g. https://shop.example.com, or * for any."),
    h("button", { type: "submit" }, "Create key"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const allowed = origins.value.split(/[\s,]+/).map((o) => o.trim()).filter(Boolean);
    try {
      const key = await api.post(`/api/agents/${agent.id}/keys`, { allowed_origins: allowed });
      const snippet = embedSnippet(agent.id, key.key);
      const code = h("textarea", { class: "snippet", readonly: true, rows: "3", "aria-label": "Embed snippet", value: snippet });
      const copied = statusLine();
      fill(created,
        h("h3", {}, "Your new key"),
        h("p", {}, "It is shown only now. Put this snippet into the pages of ", allowed.join(", "), ":"),
        code,
        h("button", {
          type: "button",
          onclick: () => copy(snippet, code).then(() => copied.say("Copied to the clipboard."), (e) => copied.error(e)),
        }, "Copy snippet"),
        copied);
      created.hidden = false;
      created.focus();
      origins.value = "";
      load();
    } catch (error) {
      status.error(error);
    }
  });
  load();
  return h("section", { class: "card", "aria-labelledby": "keys-title" },
    h("h2", { id: "keys-title" }, "Publishable keys"),
    h("p", { class: "muted" }, "A key lets websites on its allowed origins chat with this agent through the widget. The snippet looks like: ",
      h("code", {}, embedSnippet(agent.id, "pk_…"))),
    listBox, form, created, status);
}

/** The test chat: a conversation started with a key for this page's own origin. */
function testChat(agent, on, onLeave) {
  const status = statusLine();
  const transcript = createTranscript({ label: "Test chat" });
  const input = h("textarea", { id: "test-message", rows: "2", maxlength: "4000" });
  const send = h("button", { type: "submit", class: "primary" }, "Send");
  const composer = h("form", { class: "composer", hidden: true },
    h("label", { for: "test-message" }, "Message to the agent"), input, send);
  let chat = null; // {id, token, key}
  let unwatch = () => {};
  onLeave(() => unwatch());

  async function testKey(fresh) {
    const stored = localStorage.getItem(TEST_KEY(agent.id));
    if (stored && !fresh) return stored;
    if (!session.isAdmin) throw new Error("Only owners and admins can create the key a test chat needs.");
    const key = await api.post(`/api/agents/${agent.id}/keys`, { allowed_origins: [location.origin] });
    localStorage.setItem(TEST_KEY(agent.id), key.key);
    return key.key;
  }

  async function start(fresh = false) {
    const key = await testKey(fresh);
    try {
      const started = await publicRequest("POST", "/public/conversations", key, {
        body: { agent_id: agent.id, metadata: { source: "dashboard test chat" } },
      });
      chat = { id: started.id, token: started.token, key };
      // Its reply streams to this page's live connection while it is shown.
      unwatch();
      unwatch = live.watch(chat.id);
    } catch (error) {
      // A revoked test key: make a new one, once.
      if (!fresh && error instanceof ApiError && error.code === "INVALID_KEY") return start(true);
      throw error;
    }
    transcript.show([]);
    if (agent.greeting) transcript.add({ id: "greeting", sender_type: "agent", content: agent.greeting });
    composer.hidden = false;
    input.focus();
  }

  const startButton = h("button", {
    type: "button",
    onclick: async () => {
      startButton.disabled = true;
      status.say("Starting a test conversation…");
      try {
        await start();
        startButton.textContent = "Start over";
        status.say("Test conversation started. It appears in the inbox like any other.");
      } catch (error) {
        status.error(error);
      } finally {
        startButton.disabled = false;
      }
    },
  }, "Start a test chat");

  sendOnEnter(input, composer);
  composer.addEventListener("submit", async (event) => {
    event.preventDefault();
    const content = input.value.trim();
    if (!content || !chat) return;
    input.value = "";
    try {
      transcript.add(await publicRequest("POST", `/public/conversations/${chat.id}/messages`, chat.key, {
        body: { content, client_id: newId() }, conversationToken: chat.token,
      }));
      status.clear();
    } catch (error) {
      status.error(error);
    }
  });

  // The reply streams to the dashboard's own live connection.
  const mine = (data) => chat && data.conversation_id === chat.id;
  on("message:new", (m) => { if (mine(m)) transcript.add(m); });
  on("message:delta", (d) => { if (mine(d)) transcript.delta(d); });
  on("agent:typing", (d) => { if (mine(d)) transcript.typing("agent", d.typing); });

  return h("section", { class: "card", "aria-labelledby": "test-title" },
    h("h2", { id: "test-title" }, "Test chat"),
    h("p", { class: "muted" }, "Talk to the agent as a visitor would, with its saved settings and knowledge."),
    startButton, transcript.element, composer, status);
}

export default {
  title: "Agents",

  async mount(root, { params, on, navigate }) {
    // A new agent starts with the API's own defaults.
    const [tools, fresh] = await Promise.all([choices("AgentCreate", "tools"), defaults("AgentCreate")]);
    let agents = (await api.get("/api/agents")).agents;
    const list = h("ul", { class: "side-list" });
    const editor = h("div", { class: "editor" });
    let offs = [];
    const scopedOn = (event, fn) => offs.push(on(event, fn));

    function renderList(currentId) {
      fill(list, ...agents.map((agent) => h("li", {},
        h("a", { href: `#/agents/${agent.id}`, "aria-current": agent.id === currentId ? "page" : null },
          agent.name, agent.enabled ? null : h("span", { class: "badge-pill ended" }, "disabled")))));
      if (!agents.length) list.append(h("li", { class: "muted" }, "No agents yet."));
    }

    function show(id) {
      offs.forEach((off) => off()); // the previous agent's test chat
      offs = [];
      renderList(id);
      if (!id) {
        fill(editor, h("p", { class: "muted placeholder" },
          agents.length ? "Choose an agent to edit it, or create a new one." : "Create your first agent to get started."));
        return;
      }
      const agent = id === "new" ? null : agents.find((a) => a.id === id);
      if (id !== "new" && !agent) {
        fill(editor, h("p", { class: "status error" }, "No such agent."));
        return;
      }
      const onSaved = (saved, created) => {
        agents = agents.some((a) => a.id === saved.id) ? agents.map((a) => (a.id === saved.id ? saved : a)) : [...agents, saved];
        if (created) navigate(`#/agents/${saved.id}`);
        else {
          renderList(saved.id);
          heading.textContent = saved.name;
        }
      };
      const onDeleted = () => {
        agents = agents.filter((a) => a.id !== agent.id);
        navigate("#/agents");
      };
      const heading = h("h2", {}, agent ? agent.name : "New agent");
      fill(editor,
        heading,
        agentForm(agent, { tools, fresh }, onSaved, onDeleted),
        agent ? keysSection(agent) : null,
        agent ? testChat(agent, scopedOn, (off) => offs.push(off)) : null);
    }

    fill(root,
      pageTitle("Agents", h("a", { class: "button primary", href: "#/agents/new" }, "New agent")),
      h("div", { class: "split" }, h("nav", { "aria-label": "Agents" }, list), editor));
    show(params[0]);
    return { update: (next) => show(next[0]), unmount: () => offs.forEach((off) => off()) };
  },
};
