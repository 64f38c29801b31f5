// One visitor turn with the official socket.io-client, as a browser would:
// node widget_turn.mjs HUB_URL CONVERSATION_TOKEN ORIGIN
// Prints one JSON line: the ack, the deltas and the done message.
import { io } from "socket.io-client";

const [hub, token, origin] = process.argv.slice(2);
const socket = io(`${hub}/widget`, {
  auth: { token },
  transports: ["websocket"],
  extraHeaders: { Origin: origin },
  reconnection: false,
});
const deltas = [];
const timer = setTimeout(() => { console.log(JSON.stringify({ error: "timeout" })); process.exit(2); }, 15000);

socket.on("connect_error", (error) => {
  console.log(JSON.stringify({ connect_error: error.message, data: error.data }));
  process.exit(0);
});
socket.on("message:delta", (delta) => deltas.push(delta));
socket.on("message:done", (done) => {
  clearTimeout(timer);
  console.log(JSON.stringify({ ack, deltas, done }));
  socket.close();
});
let ack = null;
socket.on("connect", async () => {
  ack = await socket.emitWithAck("message:send", { content: "Hello from Node", client_id: "node-1" });
});
