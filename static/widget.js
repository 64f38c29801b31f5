/*
 * Syntera chat widget.
 *
 *   <script src="https://HUB/widget.js" data-agent-id="..." data-key="pk_..."
 *           data-theme="light|dark" data-position="bottom-right|bottom-left" async></script>
 *
 * Everything lives in a shadow root, so the host page's CSS and ours never
 * meet. Message text is only ever put into the DOM as text nodes: nothing a
 * visitor, an agent or a model writes can inject markup. Protocol:
 * docs/realtime.md. This file (and widget.css) is ASCII only, other
 * characters written as \u escapes: whatever encoding the host page
 * declares, and even if a proxy drops our charset, it reads the same.
 */
(function () {
  "use strict";

  const script = document.currentScript;
  if (!script) return;
  const HUB = new URL(script.src).origin;
  const AGENT = script.dataset.agentId;
  const KEY = script.dataset.key;
  const THEME = script.dataset.theme === "dark" ? "dark" : "light";
  const LEFT = script.dataset.position === "bottom-left";
  if (!AGENT || !KEY) {
    console.error("Syntera widget: data-agent-id and data-key are required");
    return;
  }
  const STORE = "syntera:" + AGENT;

  // ---------- small helpers ----------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "class") node.className = value;
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, value);
    }
    for (const child of children) if (child != null) node.append(child);
    return node;
  }

  function load() {
    try { return JSON.parse(localStorage.getItem(STORE)) || {}; } catch (_) { return {}; }
  }
  function save(state) {
    try { localStorage.setItem(STORE, JSON.stringify(state)); } catch (_) { /* private mode */ }
  }

  async function api(path, options) {
    const headers = Object.assign({ Authorization: "Bearer " + KEY }, (options || {}).headers);
    const response = await fetch(HUB + path, Object.assign({}, options, { headers }));
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw Object.assign(new Error(body.error || response.statusText), body);
    return body;
  }

  function uuid() {
    if (crypto.randomUUID) return crypto.randomUUID();
    return Date.now().toString(36) + Math.random().toString(36).slice(2);
  }

  // ---------- safe Markdown: a small subset, rendered as DOM nodes ----------

  const INLINE = /(\*\*[^*]+\*\*|\*[^*\s][^*]*\*|`[^`]+`|\[[^\]]+\]\([^)\s]+\))/g;

  function inline(text) {
    const out = [];
    let last = 0;
    for (const match of text.matchAll(INLINE)) {
      if (match.index > last) out.push(text.slice(last, match.index));
      const token = match[0];
      if (token.startsWith("**")) out.push(el("strong", {}, token.slice(2, -2)));
      else if (token.startsWith("`")) out.push(el("code", {}, token.slice(1, -1)));
      else if (token.startsWith("[")) {
        const label = token.slice(1, token.indexOf("]("));
        const href = token.slice(token.indexOf("](") + 2, -1);
        // Only web links: a javascript: or data: URL stays plain text.
        if (/^https?:\/\//i.test(href)) {
          out.push(el("a", { href, target: "_blank", rel: "noopener noreferrer nofollow" }, label));
        } else out.push(token);
      } else out.push(el("em", {}, token.slice(1, -1)));
      last = match.index + token.length;
    }
    if (last < text.length) out.push(text.slice(last));
    return out;
  }

  // A paragraph's lines: a line ending in two spaces or a backslash breaks
  // the line there; any other line break is soft, a space (CommonMark).
  function paragraph(tag, lines) {
    const node = el(tag);
    let run = [];
    lines.forEach((line, i) => {
      const hard = i < lines.length - 1 && / {2,}$|\\$/.test(line);
      run.push(hard ? line.replace(/ +$|\\$/, "") : line);
      if (hard) { node.append(...inline(run.join("\n")), el("br")); run = []; }
    });
    node.append(...inline(run.join("\n")));
    return node;
  }

  // Blocks as CommonMark reads them: paragraphs end at a blank line, a list
  // item runs on over the lines that follow it, "> " lines are a quotation
  // (its own Markdown inside), ``` fences keep their lines as they are.
  function markdown(text) {
    const root = document.createDocumentFragment();
    const lines = String(text).split(/\r?\n/);
    let block = null; // { kind: "p" | "li", lines }
    let list = null;
    function flush() {
      if (block) {
        const node = paragraph(block.kind, block.lines);
        (block.kind === "li" ? list : root).append(node);
      }
      block = null;
    }
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      if (/^\s*```/.test(line)) {
        flush(); list = null;
        const code = [];
        while (++i < lines.length && !/^\s*```/.test(lines[i])) code.push(lines[i]);
        root.append(el("pre", {}, el("code", {}, code.join("\n"))));
        continue;
      }
      if (/^\s*>/.test(line)) {
        flush(); list = null;
        const quoted = [];
        for (; i < lines.length && /^\s*>/.test(lines[i]); i++) {
          quoted.push(lines[i].replace(/^\s*> ?/, ""));
        }
        i--;
        root.append(el("blockquote", {}, markdown(quoted.join("\n"))));
        continue;
      }
      const bullet = line.match(/^\s*([-*]|\d+\.)\s+(.*)$/);
      if (bullet) {
        flush();
        const kind = /\d/.test(bullet[1]) ? "ol" : "ul";
        if (!list || list.localName !== kind) { list = el(kind); root.append(list); }
        block = { kind: "li", lines: [bullet[2]] };
      } else if (!line.trim()) {
        flush();  // a list goes on if an item follows the blank line
      } else if (block) {
        block.lines.push(line.replace(/^\s+/, ""));  // trailing spaces may be a hard break
      } else {
        list = null;
        block = { kind: "p", lines: [line.replace(/^\s+/, "")] };
      }
    }
    flush();
    return root;
  }

  // ---------- the UI ----------

  // Icons as SVG: emoji fonts are not everywhere.
  function icon(path) {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("aria-hidden", "true");
    const shape = document.createElementNS("http://www.w3.org/2000/svg", "path");
    shape.setAttribute("d", path);
    svg.append(shape);
    return svg;
  }
  const CHAT = "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z";
  const MIC = "M12 2a3 3 0 0 1 3 3v6a3 3 0 0 1-6 0V5a3 3 0 0 1 3-3zM5 11a7 7 0 0 0 14 0M12 18v4";
  const CLIP = "M16.5 6.5l-7.8 7.8a2 2 0 0 0 2.8 2.8l7.8-7.8a4 4 0 0 0-5.7-5.7l-7.8 7.8a6 6 0 0 0 8.5 8.5l6.4-6.4";

  const host = el("div", { "data-syntera-widget": "" });
  const shadow = host.attachShadow({ mode: "open" });
  shadow.append(el("link", { rel: "stylesheet", href: HUB + "/static/widget.css" }));

  const launcher = el("button", {
    class: "launcher", type: "button", "aria-label": "Open chat", "aria-expanded": "false",
    "aria-controls": "syntera-panel",
  }, icon(CHAT));
  const title = el("h2", { id: "syntera-title" }, "Chat");
  const closeButton = el("button", { class: "close", type: "button", "aria-label": "Close chat" }, "\u00d7");
  const log = el("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": "Messages" });
  const typing = el("div", { class: "typing", hidden: "", "aria-live": "polite" }, "Typing\u2026");
  const notice = el("div", { class: "notice", role: "status" });
  const input = el("textarea", {
    id: "syntera-input", rows: "2", maxlength: "4000", placeholder: "Write a message\u2026",
  });
  const fileInput = el("input", { type: "file", id: "syntera-file", class: "file",
    accept: "image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain" });
  const attach = el("label", { for: "syntera-file", class: "attach", title: "Attach a file" },
    el("span", { class: "sr" }, "Attach a file"), icon(CLIP));
  const send = el("button", { class: "send", type: "submit" }, "Send");
  const mic = el("button", { class: "mic", type: "button", "aria-pressed": "false",
    title: "Talk to the assistant" }, el("span", { class: "sr" }, "Voice call"), icon(MIC));
  const form = el("form", { class: "composer" },
    el("label", { for: "syntera-input", class: "sr" }, "Message"), input, fileInput, attach, mic, send);
  const rating = el("div", { class: "rating", hidden: "" });
  const panel = el("section", {
    id: "syntera-panel", class: "panel", role: "dialog", "aria-modal": "false",
    "aria-labelledby": "syntera-title", hidden: "",
  }, el("header", {}, title, closeButton), log, typing, notice, rating, form);
  const root = el("div", { class: `root ${THEME} ${LEFT ? "left" : "right"}` }, panel, launcher);
  shadow.append(root);

  function open() {
    panel.hidden = false;
    launcher.setAttribute("aria-expanded", "true");
    launcher.setAttribute("aria-label", "Close chat");
    input.focus();
    start();
  }
  function close() {
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    launcher.setAttribute("aria-label", "Open chat");
    launcher.focus();
  }
  launcher.addEventListener("click", () => (panel.hidden ? open() : close()));
  closeButton.addEventListener("click", close);
  panel.addEventListener("keydown", (event) => { if (event.key === "Escape") close(); });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) { event.preventDefault(); form.requestSubmit(); }
  });

  // ---------- messages ----------

  const bubbles = new Map(); // message id (or client id while pending) -> element
  let state = load();
  // The highest seq shown on this page: a reconnect asks for what came after
  // it; a fresh page starts from 0 and so shows the whole history.
  let lastSeq = 0;

  function render(message, { streaming } = {}) {
    const id = message.id;
    let bubble = bubbles.get(id) || (message.client_id && bubbles.get(message.client_id));
    const who = message.sender_type || "agent";
    const body = el("div", { class: "text" });
    if (streaming) body.append(message.content);
    else body.append(markdown(message.content || ""));
    for (const file of message.attachments || []) {
      if (/^https?:\/\//i.test(file.url)) {
        body.append(el("a", { class: "file-link", href: file.url, target: "_blank",
          rel: "noopener noreferrer" }, "Attachment: " + file.name));
      }
    }
    const sources = ((message.ai_metadata || {}).sources || []).length;
    const node = el("div", { class: `msg ${who}${streaming ? " streaming" : ""}`, "data-id": id },
      el("span", { class: "sr" }, { user: "You", agent: "Assistant", human: "Team", system: "Notice" }[who] + ": "),
      body,
      sources ? el("div", { class: "sources" }, `${sources} source${sources > 1 ? "s" : ""}`) : null);
    if (bubble) bubble.replaceWith(node);
    else log.append(node);
    bubbles.set(id, node);
    if (message.client_id) bubbles.delete(message.client_id);
    if (message.seq && message.seq > lastSeq) lastSeq = message.seq;
    log.scrollTop = log.scrollHeight;
  }

  const streams = new Map(); // message id -> {attempt, index, text} so far
  function delta(data) {
    let stream = streams.get(data.message_id);
    // Another attempt at the same reply (a worker died mid-stream and another
    // took the turn over): it streams again from the start, in the same bubble.
    if (!stream || stream.attempt !== data.attempt) stream = { attempt: data.attempt, index: -1, text: "" };
    if (data.index <= stream.index) return; // a repeat
    const shown = bubbles.get(data.message_id);
    if (shown && !shown.classList.contains("streaming")) return; // the stored reply came first
    stream.text += data.delta;
    stream.index = data.index;
    streams.set(data.message_id, stream);
    render({ id: data.message_id, sender_type: "agent", content: stream.text }, { streaming: true });
  }

  // ---------- the connection ----------

  let socket = null;
  let starting = null;
  let ended = false;  // the conversation is over: the next message opens a new one

  function loadClient() {
    if (window.io) return Promise.resolve(window.io);
    return new Promise((resolve, reject) => {
      const tag = document.createElement("script");
      tag.src = HUB + "/static/vendor/socket.io.min.js";
      tag.onload = () => resolve(window.io);
      tag.onerror = reject;
      document.head.append(tag);
    });
  }

  async function conversation(fresh) {
    if (!fresh && state.token) return state;
    const started = await api("/public/conversations", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ agent_id: AGENT, metadata: { page: location.href.slice(0, 500) } }),
    });
    state = { conversationId: started.id, token: started.token };
    save(state);
    return state;
  }

  function start() {
    if (!starting) starting = connect(false).catch((error) => {
      starting = null;
      notice.textContent = "Chat is unavailable right now.";
      console.error("Syntera widget:", error);
    });
    return starting;
  }

  async function connect(fresh) {
    const [io] = await Promise.all([loadClient(), conversation(fresh)]);
    socket = io(HUB + "/widget", { auth: { token: state.token }, transports: ["websocket", "polling"] });
    socket.on("connect", resume);
    // The hub lost events on their way to us (its Redis restarted): catch up.
    socket.on("sync", () => { typing.hidden = true; resume(); });
    socket.on("connect_error", (error) => {
      // An expired or revoked conversation: start a new one, once.
      if (error.data && error.data.code === "INVALID_TOKEN" && !fresh) restart();
    });
    socket.on("message:new", (m) => render(m));
    socket.on("message:delta", delta);
    socket.on("message:done", (m) => { streams.delete(m.id); render(m); });
    socket.on("agent:typing", (d) => { typing.hidden = !d.typing; });
    socket.on("conversation:human_joined", () => { notice.textContent = "A person from our team has joined."; });
    socket.on("conversation:human_left", () => { notice.textContent = "You are talking with our assistant again."; });
    socket.on("conversation:ended", () => { ended = true; askRating(); });
    socket.on("error", (e) => { notice.textContent = e.error || "Something went wrong."; });
  }

  // A new conversation in place of the current one (ended, or its token no
  // longer valid): the page shows only what is said in the new one.
  function restart() {
    if (socket) socket.close();
    ended = false;
    log.replaceChildren();
    bubbles.clear();
    streams.clear();
    lastSeq = 0;
    rating.hidden = true;
    notice.textContent = "";
    starting = connect(true);
    return starting;
  }

  function resume() {
    socket.emit("conversation:resume", { after_seq: lastSeq }, (reply) => {
      if (reply && reply.ok) reply.messages.forEach((m) => render(m));
      if (reply && reply.ok && reply.status !== "active") {
        ended = true;  // history stays readable; writing again opens a new conversation
        notice.textContent = "This conversation has ended. Write to start a new one.";
      }
      if (!log.childElementCount && profile && profile.greeting) {
        render({ id: "greeting", sender_type: "agent", content: profile.greeting });
      }
    });
  }

  function pending(payload) {
    render({ id: payload.client_id, sender_type: "user", content: payload.content }, { streaming: true });
  }

  function emitMessage(payload) {
    // socket.io buffers while disconnected; the client_id makes a resend harmless.
    socket.timeout(15000).emit("message:send", payload, async (err, reply) => {
      if (err) return emitMessage(payload);
      if (reply.ok) render(Object.assign(reply.message, { client_id: payload.client_id }));
      else if (reply.code === "CONFLICT") {
        // The conversation ended meanwhile: a message is said again in a new
        // one; a file was uploaded to the old one and must be sent again.
        ended = true;
        if (payload.attachments) {
          notice.textContent = "This conversation has ended. Send the file again to start a new one.";
          return;
        }
        await restart();
        pending(payload);
        emitMessage(payload);
      } else notice.textContent = reply.error;
    });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const content = input.value.trim();
    if (!content) return;
    input.value = "";
    await start();
    if (ended) await restart();
    const payload = { content, client_id: uuid() };
    pending(payload);
    emitMessage(payload);
  });

  fileInput.addEventListener("change", async () => {
    const file = fileInput.files[0];
    fileInput.value = "";
    if (!file) return;
    await start();
    if (ended) await restart();
    const data = new FormData();
    data.append("file", file);
    try {
      const uploaded = await api(`/public/conversations/${state.conversationId}/attachments`, {
        method: "POST", headers: { "X-Conversation-Token": state.token }, body: data,
      });
      emitMessage({ content: file.name, client_id: uuid(), attachments: [uploaded] });
    } catch (error) {
      notice.textContent = error.error || "The file could not be sent.";
    }
  });

  function askRating() {
    notice.textContent = "This conversation has ended.";
    rating.hidden = false;
    rating.replaceChildren(el("p", { id: "syntera-rate" }, "How did we do?"));
    const group = el("div", { role: "group", "aria-labelledby": "syntera-rate" });
    for (let stars = 1; stars <= 5; stars++) {
      group.append(el("button", {
        type: "button", "aria-label": `${stars} out of 5`,
        onclick: async () => {
          await api(`/public/conversations/${state.conversationId}/rating`, {
            method: "POST",
            headers: { "Content-Type": "application/json", "X-Conversation-Token": state.token },
            body: JSON.stringify({ rating: stars }),
          });
          rating.replaceChildren(el("p", {}, "Thank you!"));
          localStorage.removeItem(STORE);  // the next visit starts afresh
        },
      }, "\u2605".repeat(stars)));
    }
    rating.append(group);
  }

  // ---------- voice ----------
  // The mic button calls the agent: through LiveKit when the hub has it
  // (GET /public/livekit/token answers), else over the hub's own WebSocket
  // (/public/voice/ws: 16-bit PCM mono 16 kHz both ways, JSON for the rest;
  // docs/voice.md). A voice call is a conversation of its own (channel voice).

  let call = null; // { hangUp() }

  mic.addEventListener("click", async () => {
    if (call) return call.hangUp();
    mic.disabled = true;
    try {
      call = await startCall();
      mic.setAttribute("aria-pressed", "true");
      notice.textContent = "Voice call: speak now.";
    } catch (error) {
      call = null;
      notice.textContent = error.error || "The voice call could not start.";
      console.error("Syntera widget:", error);
    } finally {
      mic.disabled = false;
    }
  });

  function callEnded(reason) {
    call = null;
    mic.setAttribute("aria-pressed", "false");
    notice.textContent = reason || "The voice call has ended.";
  }

  async function startCall() {
    let joined = null;
    try {
      joined = await api(`/public/livekit/token?agent_id=${encodeURIComponent(AGENT)}`);
    } catch (error) {
      if (error.code !== "VOICE_NOT_CONFIGURED") throw error;
    }
    return joined ? liveKitCall(joined) : socketCall();
  }

  async function liveKitCall(joined) {
    if (!window.LivekitClient) await loadScript(HUB + "/static/vendor/livekit-client.umd.js");
    const { Room, RoomEvent } = window.LivekitClient;
    const room = new Room();
    room.on(RoomEvent.TrackSubscribed, (track) => {
      if (track.kind === "audio") shadow.append(track.attach());
    });
    room.on(RoomEvent.Disconnected, () => callEnded());
    await room.connect(joined.url, joined.token);
    await room.localParticipant.setMicrophoneEnabled(true);
    return { hangUp: () => room.disconnect() };
  }

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      const tag = document.createElement("script");
      tag.src = src;
      tag.onload = resolve;
      tag.onerror = reject;
      document.head.append(tag);
    });
  }

  const RATE = 16000;

  async function socketCall() {
    // The microphone first: a visitor who says no starts no conversation.
    const media = await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, channelCount: 1 },
    });
    let started;
    try {
      started = await api("/public/conversations", {
        method: "POST", headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ agent_id: AGENT, channel: "voice",
          metadata: { page: location.href.slice(0, 500) } }),
      });
    } catch (error) {
      media.getTracks().forEach((track) => track.stop());
      throw error;
    }
    const context = new AudioContext();
    const url = HUB.replace(/^http/, "ws") + "/public/voice/ws?token=" + encodeURIComponent(started.token);
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";

    // The microphone, downsampled to 16 kHz 16-bit PCM, about every 100 ms.
    const source = context.createMediaStreamSource(media);
    const processor = context.createScriptProcessor(2048, 1, 1);
    const step = context.sampleRate / RATE;
    let carry = 0;
    processor.onaudioprocess = (event) => {
      if (ws.readyState !== WebSocket.OPEN) return;
      const input = event.inputBuffer.getChannelData(0);
      const out = new Int16Array(Math.floor((input.length - carry) / step) + 1);
      let n = 0;
      for (let i = carry; i < input.length; i += step) {
        // The mean of the samples this one stands for: a crude low-pass against aliasing.
        const from = Math.floor(i), to = Math.min(input.length, Math.floor(i + step));
        let sum = 0;
        for (let j = from; j < to; j++) sum += input[j];
        const sample = Math.max(-1, Math.min(1, sum / Math.max(1, to - from)));
        out[n++] = sample < 0 ? sample * 0x8000 : sample * 0x7fff;
      }
      carry = (carry + n * step) - input.length;
      ws.send(out.subarray(0, n).buffer.slice(0, n * 2));
    };
    source.connect(processor);
    processor.connect(context.destination);

    // The agent's speech, played in order; `clear` drops what is queued (the
    // caller spoke over it), and a mark is echoed once what came before it played.
    let playAt = 0;
    const playing = new Set();
    function play(data) {
      const pcm = new Int16Array(data);
      const buffer = context.createBuffer(1, pcm.length, RATE);
      const channel = buffer.getChannelData(0);
      for (let i = 0; i < pcm.length; i++) channel[i] = pcm[i] / 0x8000;
      const node = context.createBufferSource();
      node.buffer = buffer;
      node.connect(context.destination);
      playAt = Math.max(playAt, context.currentTime);
      node.start(playAt);
      playAt += buffer.duration;
      playing.add(node);
      node.onended = () => playing.delete(node);
    }
    ws.onmessage = (event) => {
      if (typeof event.data !== "string") return play(event.data);
      const data = JSON.parse(event.data);
      if (data.type === "clear") {
        playing.forEach((node) => node.stop());
        playing.clear();
        playAt = 0;
      } else if (data.type === "mark") {
        const wait = Math.max(0, playAt - context.currentTime) * 1000;
        setTimeout(() => {
          if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "mark", name: data.name }));
        }, wait);
      } else if (data.type === "transcript") {
        render({ id: uuid(), sender_type: data.role === "user" ? "user" : "agent", content: data.text });
      } else if (data.type === "state") {
        typing.hidden = data.state !== "thinking";
      } else if (data.type === "error") {
        notice.textContent = data.error;
      }
    };
    function stop() {
      processor.disconnect();
      source.disconnect();
      media.getTracks().forEach((track) => track.stop());
      context.close();
    }
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => {
        stop(); // the microphone and the audio context go with the call
        reject(new Error("voice socket failed"));
      };
    });
    ws.onclose = (event) => {
      stop();
      typing.hidden = true;
      callEnded(event.code === 1000 ? null : event.reason.replace(/^[A-Z_]+: /, ""));
    };
    return {
      hangUp() {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "stop" }));
        else stop();
      },
    };
  }

  // ---------- start-up ----------

  let profile = null;
  function mount() {
    document.body.append(host);
    api(`/public/agents/${AGENT}`).then((p) => {
      profile = p;
      title.textContent = p.name;
      if (p.theme && /^#[0-9a-f]{3,8}$/i.test(p.theme.color || "")) {
        root.style.setProperty("--accent", p.theme.color);
      }
    }).catch((error) => console.error("Syntera widget:", error));
    if (state.token) start();  // a returning visitor sees their history at once
  }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
