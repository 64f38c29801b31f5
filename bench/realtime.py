"""Many concurrent widget connections against one web process.

    python -m bench.realtime [--idle 20000] [--storm 4000] [--connections 1000 5000]

The hub runs as `python -m hub serve` (its own process, the offline responder
as an instant model: it streams its reply in small deltas with no network
wait). The clients run in this process and speak Engine.IO/Socket.IO over
WebSocket directly — a lean client, so thousands fit in one process.
Baseline for every figure: a bare python-socketio server (same client, same
machine, same run) that acks and emits a delta straight back.

In this order, so that the idle figures are a fresh process's:

1. Idle: `--idle` connections opened on each server, each only answering
   pings; resident memory before and with them open (per connection), and
   the round trip of a `typing` event's ack on a sample of the idle sockets
   while they are all open (p50, p99).
2. Storm: `--storm` clients connecting 50 at a time (`--storm-batch`), as
   every widget does after a deploy; seconds from the first to the last
   connected, each server.
3. Chat: for each `--connections` count, every connection sends one message
   at a random moment in a 10-second window; `message:send` → first
   `message:delta` (p50, p99), → ack, and turns per second. Each level uses
   conversations no earlier level used (a level reusing them would inherit
   their history and their per-conversation message budget).

Each socket is a file descriptor in the hub and one here: the bench raises
its own soft limit to the hard one, and `python -m hub serve` raises its
own the same way; where the hard limit is lower than a count asks, the
count is cut to fit and the table says so. Prints markdown tables, then one
JSON line with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from pathlib import Path

import aiohttp
import psutil

from bench.cluster import free_port
from bench.common import percentile, scratch_database
from bench.report import emit, number, table
from hub.__main__ import raise_open_files_limit

ROOT = Path(__file__).resolve().parent.parent
NS = "/widget"

ECHO_SERVER = """
import socketio
from aiohttp import web
sio = socketio.AsyncServer(async_mode="aiohttp", cors_allowed_origins="*")
app = web.Application()
sio.attach(app)

@sio.on("connect", namespace="/widget")
async def connect(sid, environ, auth):
    await sio.enter_room(sid, sid, namespace="/widget")

@sio.on("typing", namespace="/widget")
async def typing(sid, data):
    return {"ok": True}

@sio.on("message:send", namespace="/widget")
async def send(sid, data):
    await sio.emit("message:delta", {"delta": "ok", "index": 0}, room=sid, namespace="/widget")
    return {"ok": True}

web.run_app(app, host="127.0.0.1", port=int(__import__("sys").argv[1]), print=None)
"""


async def wait_http(url: str, within: float = 60) -> None:
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while True:
            try:
                async with session.get(url) as response:
                    if response.status < 500:
                        return
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(url)
            await asyncio.sleep(0.2)


class WidgetClient:
    """One visitor: Engine.IO v4 over WebSocket, the `/widget` namespace."""

    def __init__(self, session: aiohttp.ClientSession, base: str, token: str | None) -> None:
        self.session, self.base, self.token = session, base, token
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.first_delta = asyncio.Event()
        self.acked = asyncio.Event()
        self.reader: asyncio.Task | None = None

    async def connect(self) -> None:
        url = self.base.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        self.ws = await self.session.ws_connect(url, headers={"Origin": self.base})
        opened = await self.ws.receive_str()
        assert opened.startswith("0"), opened
        auth = json.dumps({"token": self.token}) if self.token else "{}"
        await self.ws.send_str(f"40{NS},{auth}")
        while True:
            packet = await self.ws.receive_str()
            if packet.startswith(f"40{NS},"):
                break
            if packet.startswith(f"44{NS},"):
                raise RuntimeError(f"refused: {packet}")
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            data = message.data
            if data == "2":
                await self.ws.send_str("3")  # pong
            elif data.startswith(f"43{NS},"):
                self.acked.set()
            elif data.startswith(f'42{NS},["message:delta"'):
                self.first_delta.set()

    async def send(self, text: str) -> tuple[float, float]:
        """Milliseconds from sending to the ack, and to the first delta."""
        assert self.ws is not None
        self.first_delta.clear()
        self.acked.clear()
        start = time.perf_counter()
        payload = json.dumps(["message:send", {"content": text}])
        await self.ws.send_str(f"42{NS},1{payload}")
        await asyncio.wait_for(self.acked.wait(), 120)
        acked = (time.perf_counter() - start) * 1000
        await asyncio.wait_for(self.first_delta.wait(), 120)
        return acked, (time.perf_counter() - start) * 1000

    async def round_trip(self, event: str, payload: dict) -> float:
        """Milliseconds from emitting `event` to its ack."""
        assert self.ws is not None
        self.acked.clear()
        start = time.perf_counter()
        await self.ws.send_str(f"42{NS},1{json.dumps([event, payload])}")
        await asyncio.wait_for(self.acked.wait(), 60)
        return (time.perf_counter() - start) * 1000

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
        if self.ws is not None:
            await self.ws.close()


async def conversations_for(session, base: str, count: int) -> list[str]:
    """Sign up, make an agent and a key, and start `count` conversations."""
    email = f"bench-{random.getrandbits(32):x}@example.com"
    async with session.post(
        f"{base}/api/auth/signup",
        json={"email": email, "password": "bench password", "company_name": "Bench"},
    ) as r:
        token = (await r.json())["access_token"]
    staff = {"Authorization": f"Bearer {token}"}
    async with session.post(f"{base}/api/agents", json={"name": "Bench"}, headers=staff) as r:
        agent = await r.json()
    async with session.post(
        f"{base}/api/agents/{agent['id']}/keys", json={"allowed_origins": ["*"]}, headers=staff
    ) as r:
        key = (await r.json())["key"]
    public = {"Authorization": f"Bearer {key}"}
    semaphore = asyncio.Semaphore(50)

    async def start() -> str:
        async with (
            semaphore,
            session.post(
                f"{base}/public/conversations", json={"agent_id": agent["id"]}, headers=public
            ) as r,
        ):
            return (await r.json())["token"]

    return await asyncio.gather(*(start() for _ in range(count)))


REFUSALS = {"count": 0}  # connects refused and tried again, over the run


async def connect_all(clients: list[WidgetClient], at_once: int) -> float:
    """Connect every client, `at_once` at a time; seconds it took. A refused
    connect (the hub answers 503 when its database waits too long, which a
    machine shared with other work can cause) is tried again after a second,
    as the widget's client does, and counted."""
    semaphore = asyncio.Semaphore(at_once)

    async def connect(c: WidgetClient) -> None:
        for attempt in range(5):
            try:
                async with semaphore:
                    await c.connect()
                return
            except RuntimeError:
                if attempt == 4:
                    raise
                REFUSALS["count"] += 1
                if c.ws is not None:
                    await c.ws.close()
                await asyncio.sleep(1)

    started = time.perf_counter()
    await asyncio.gather(*(connect(c) for c in clients))
    return time.perf_counter() - started


def new_session() -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))


async def load(base: str, tokens: list[str | None], window: float = 10.0) -> dict:
    async with new_session() as session:
        clients = [WidgetClient(session, base, t) for t in tokens]
        await connect_all(clients, 200)
        acks, deltas, errors = [], [], 0

        async def visitor(c: WidgetClient) -> None:
            nonlocal errors
            await asyncio.sleep(random.uniform(0, window))
            try:
                ack, delta = await c.send("How do I deploy Syntera?")
                acks.append(ack)
                deltas.append(delta)
            except (TimeoutError, RuntimeError, aiohttp.ClientError):
                errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(visitor(c) for c in clients))
        elapsed = time.perf_counter() - start
        await asyncio.gather(*(c.close() for c in clients))
    return {
        "ack_p50_ms": round(percentile(acks, 50), 1),
        "first_delta_p50_ms": round(percentile(deltas, 50), 1),
        "first_delta_p99_ms": round(percentile(deltas, 99), 1),
        "turns_per_s": round(len(deltas) / elapsed, 1),
        "errors": errors,
    }


def rss(pid: int) -> int:
    return psutil.Process(pid).memory_info().rss


async def idle(base: str, pid: int, tokens: list[str | None], sample: int = 2000) -> dict:
    """Memory per idle connection, and `typing` ack round trips on a sample
    of the idle sockets (20 in flight at a time) while all are open."""
    before = rss(pid)
    async with new_session() as session:
        clients = [WidgetClient(session, base, t) for t in tokens]
        # 50 at a time, as the storm: more at once only queues them for the
        # hub's database pool.
        await connect_all(clients, 50)
        await asyncio.sleep(5)  # let the last connects' garbage go
        after = rss(pid)
        lanes = [random.sample(clients, min(sample, len(clients)))[i::20] for i in range(20)]
        trips: list[float] = []

        async def lane(chosen: list[WidgetClient]) -> None:
            for c in chosen:
                trips.append(await c.round_trip("typing", {"typing": False}))
                await asyncio.sleep(0.05)

        await asyncio.gather(*(lane(chosen) for chosen in lanes))
        await asyncio.gather(*(c.close() for c in clients))
    return {
        "connections": len(tokens),
        "rss_before_mb": round(before / 2**20, 1),
        "rss_open_mb": round(after / 2**20, 1),
        "kib_per_connection": round((after - before) / len(tokens) / 1024, 1),
        "ack_p50_ms": round(percentile(trips, 50), 1),
        "ack_p99_ms": round(percentile(trips, 99), 1),
    }


async def settle(pid: int, within: float = 600) -> None:
    """Until the server's process is idle (under 5 % of a core over a second):
    closing thousands of sockets keeps a server busy after the clients are
    gone (python-socketio's stock manager scans every room per disconnect),
    and a storm timed meanwhile would measure that too."""
    process = psutil.Process(pid)
    deadline = time.monotonic() + within
    process.cpu_percent()
    while time.monotonic() < deadline:
        await asyncio.sleep(1)
        if process.cpu_percent() < 5:
            return


async def storm(base: str, tokens: list[str | None], at_once: int) -> float:
    """Seconds for every client to connect, `at_once` at a time."""
    async with new_session() as session:
        clients = [WidgetClient(session, base, t) for t in tokens]
        took = await connect_all(clients, at_once)
        await asyncio.gather(*(c.close() for c in clients))
    return took


def sockets_allowed(wanted: int) -> int:
    """`wanted`, or as many sockets as the hard limit on open files leaves
    room for in one process (each server, and this process, hold one
    descriptor per socket), after raising the soft limit to it."""
    limit = raise_open_files_limit()
    return min(wanted, limit - 200)


async def main(counts: list[int], idle_count: int, storm_count: int, storm_batch: int) -> dict:
    results: dict = {"hub": {}, "echo": {}}
    wanted = idle_count
    idle_count = sockets_allowed(idle_count)
    echo_port, hub_port = free_port(), free_port()
    echo = await asyncio.create_subprocess_exec(sys.executable, "-c", ECHO_SERVER, str(echo_port))
    async with scratch_database() as url:
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "PORT": str(hub_port),
            "LOG_LEVEL": "WARNING",
            "SYNTERA_DEMO": "0",
            "PUBLIC_IP_RATE_LIMIT_PER_HOUR": "10000000",
            "PUBLIC_KEY_RATE_LIMIT_PER_HOUR": "10000000",
            # Every simulated visitor connects from this one address.
            "SOCKET_CONNECTS_PER_MINUTE": "1000000",
            "AUTH_RATE_LIMIT_PER_HOUR": "1000",
            "SYNTERA_DATA_DIR": "/tmp/syntera-bench-realtime",
        }
        env.pop("REDIS_URL", None)
        env.pop("OPENAI_API_KEY", None)
        hub = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "hub",
            "serve",
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.DEVNULL,
        )
        try:
            hub_base, echo_base = f"http://127.0.0.1:{hub_port}", f"http://127.0.0.1:{echo_port}"
            await wait_http(f"{hub_base}/healthz")
            await wait_http(f"{echo_base}/socket.io/?EIO=4&transport=polling")
            fresh = rss(hub.pid)
            # One conversation per visitor; the chat levels each get their own.
            needed = max(idle_count, storm_count) + sum(counts)
            async with aiohttp.ClientSession() as session:
                tokens = await conversations_for(session, hub_base, needed)

            await settle(hub.pid)
            hub_idle = await idle(hub_base, hub.pid, tokens[:idle_count])
            await settle(hub.pid)
            results["idle"] = {
                "hub": hub_idle,
                "echo": await idle(echo_base, echo.pid, [None] * idle_count),
                "hub_fresh_rss_mb": round(fresh / 2**20, 1),
            }
            cut = (
                ""
                if idle_count == wanted
                else f" (cut from {number(wanted)}: open-files hard limit)"
            )
            print(f"\nIdle connections: {idle_count}{cut}", flush=True)
            rows = []
            for name, label in (("echo", "bare python-socketio"), ("hub", "hub")):
                f = results["idle"][name]
                rows.append(
                    (label, f"{f['rss_before_mb']} MiB", f"{f['rss_open_mb']} MiB",
                     f"{f['kib_per_connection']} KiB", f"{f['ack_p50_ms']} ms",
                     f"{f['ack_p99_ms']} ms")
                )  # fmt: skip
            emit(
                "realtime-idle",
                f"{number(idle_count)} idle connections{cut}; the hub just started held"
                f" {results['idle']['hub_fresh_rss_mb']} MiB.\n\n"
                + table(
                    [
                        "server",
                        "RSS before",
                        f"RSS with {number(idle_count)} open",
                        "per connection",
                        "ack p50",
                        "ack p99",
                    ],
                    rows,
                ),  # fmt: skip
            )
            print(f"connects refused and tried again so far: {REFUSALS['count']}")

            storm_count = min(storm_count, idle_count)
            # Alternated, twice each, so that a busy moment of the machine
            # falls on both servers.
            runs: dict[str, list[float]] = {"echo": [], "hub": []}
            for _ in range(2):
                for name, base, pid, who in (
                    ("echo", echo_base, echo.pid, [None] * storm_count),
                    ("hub", hub_base, hub.pid, tokens[:storm_count]),
                ):
                    await settle(pid)
                    runs[name].append(await storm(base, who, storm_batch))
            ratio = round(min(runs["hub"]) / min(runs["echo"]), 2)
            results["storm"] = {"connections": storm_count, "at_once": storm_batch, **runs}
            results["storm"]["ratio"] = ratio
            results["refused_connects_retried"] = REFUSALS["count"]
            emit(
                "realtime-storm",
                f"{number(storm_count)} clients reconnecting, {storm_batch} at a time.\n\n"
                + table(
                    ["server", "run 1", "run 2", "ratio (best / best)"],
                    [
                        (
                            label,
                            f"{runs[name][0]:.2f} s",
                            f"{runs[name][1]:.2f} s",
                            f"{ratio}×" if name == "hub" else "1.0×",
                        )
                        for name, label in (("echo", "bare python-socketio"), ("hub", "hub"))
                    ],
                ),  # fmt: skip
            )

            chat_rows = []
            offset = max(idle_count, storm_count)
            for count in counts:
                level = tokens[offset : offset + count]
                offset += count
                hub_figures = await load(hub_base, level)
                echo_figures = await load(echo_base, [None] * count)
                ratio = round(
                    hub_figures["first_delta_p99_ms"] / echo_figures["first_delta_p99_ms"], 2
                )
                results["hub"][count] = {**hub_figures, "p99_ratio_to_echo": ratio}
                results["echo"][count] = echo_figures
                chat_rows.append(
                    (number(count), f"{hub_figures['first_delta_p50_ms']} ms",
                     f"{hub_figures['first_delta_p99_ms']} ms",
                     f"{echo_figures['first_delta_p50_ms']} ms",
                     f"{echo_figures['first_delta_p99_ms']} ms", f"{ratio}×",
                     f"{hub_figures['ack_p50_ms']} ms", hub_figures["turns_per_s"],
                     hub_figures["errors"])
                )  # fmt: skip
            if chat_rows:
                emit(
                    "realtime-chat",
                    table(
                        [
                            "connections",
                            "hub: send → first delta p50",
                            "p99",
                            "echo p50",
                            "echo p99",
                            "p99 ratio",
                            "hub ack p50",
                            "hub turns/s",
                            "errors",
                        ],
                        chat_rows,
                    ),  # fmt: skip
                )
        finally:
            hub.terminate()
            echo.terminate()
            await hub.wait()
            await echo.wait()
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, nargs="*", default=[1000, 5000])
    parser.add_argument("--idle", type=int, default=20_000)
    parser.add_argument("--storm", type=int, default=4_000)
    parser.add_argument("--storm-batch", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.connections, args.idle, args.storm, args.storm_batch))))
