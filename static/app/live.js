// The `/dashboard` Socket.IO namespace (docs/realtime.md): the company's
// conversations, messages and notifications as they happen, and the staff
// actions (take over, hand back, reply). Uses the vendored official client
// (static/vendor/socket.io.min.js, loaded by index.html as window.io).

import { ApiError } from "./api.js";

const handlers = new Map(); // event name -> Set of functions
// Conversations a view has open -> how many views: the hub streams replies
// and typing only for these (conversation:watch), and forgets them when the
// socket goes, so they are sent again on every connect.
const watched = new Map();
let socket = null;
let everConnected = false;

function dispatch(event, data) {
  for (const fn of handlers.get(event) || []) {
    try { fn(data); } catch (error) { console.error(`dashboard: ${event} handler failed`, error); }
  }
}

export const live = {
  connect(token, onRefused) {
    this.disconnect();
    everConnected = false;
    socket = window.io("/dashboard", { auth: { token }, transports: ["websocket", "polling"] });
    socket.onAny((event, data) => dispatch(event, data));
    socket.on("connect", () => {
      for (const id of watched.keys()) socket.emit("conversation:watch", { conversation_id: id });
      // After a reconnect, pages fetch what they may have missed.
      dispatch(everConnected ? "live:reconnected" : "live:connected", null);
      everConnected = true;
      dispatch("live:status", true);
    });
    // The hub lost events on their way to us (its Redis restarted): catch up.
    socket.on("sync", () => dispatch("live:reconnected", null));
    socket.on("disconnect", () => dispatch("live:status", false));
    socket.on("connect_error", (error) => {
      dispatch("live:status", false);
      if (error?.data?.code === "INVALID_TOKEN" || error?.data?.code === "UNAUTHORIZED") onRefused();
    });
  },

  disconnect() {
    if (socket) socket.disconnect();
    socket = null;
  },

  /** Signing out: every subscription goes with the session. */
  reset() {
    this.disconnect();
    handlers.clear();
    watched.clear();
  },

  get connected() { return Boolean(socket?.connected); },

  /** Subscribe; returns the function that unsubscribes. */
  on(event, fn) {
    if (!handlers.has(event)) handlers.set(event, new Set());
    handlers.get(event).add(fn);
    return () => handlers.get(event).delete(fn);
  },

  /** A view shows a conversation: its reply streams in and typing shows.
   *  Returns the function to call when the view leaves it. */
  watch(conversationId) {
    const count = watched.get(conversationId) || 0;
    watched.set(conversationId, count + 1);
    if (count === 0 && socket?.connected) socket.emit("conversation:watch", { conversation_id: conversationId });
    let stopped = false;
    return () => {
      if (stopped) return;
      stopped = true;
      const left = (watched.get(conversationId) || 1) - 1;
      if (left > 0) { watched.set(conversationId, left); return; }
      watched.delete(conversationId);
      if (socket?.connected) socket.emit("conversation:unwatch", { conversation_id: conversationId });
    };
  },

  /** Emit with an acknowledgement; a refusal throws the hub's error. */
  async call(event, payload) {
    if (!socket) throw new ApiError(0, { error: "Not connected", code: "NETWORK_ERROR" });
    let reply;
    try {
      reply = await socket.timeout(10_000).emitWithAck(event, payload);
    } catch (_) {
      throw new ApiError(0, { error: "The hub did not answer in time", code: "TIMEOUT" });
    }
    if (!reply?.ok) throw new ApiError(0, reply);
    return reply;
  },
};
