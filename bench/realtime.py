"""Many concurrent widget connections against one web process.

    python -m bench.realtime [--connections 1000 5000] [--idle 10000]

The hub runs as `python -m hub serve` (its own process, the offline responder
as an instant model: it streams its reply in small deltas with no network
wait). The clients run in this process and speak Engine.IO/Socket.IO over
WebSocket directly — a lean client, so thousands fit in one process. For each
connection count, every connection sends one message at a random moment in a
10-second window; measured: `message:send` → first `message:delta` (p50,
p99), `message:send` → ack, and turns per second. Baseline: a bare
python-socketio server (same client, same machine) that acks and emits a
delta straight back. Then memory per idle connection: the hub's RSS before
and after opening `--idle` connections that only answer pings.

Prints a table, then one JSON line with every figure.
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


async def load(base: str, tokens: list[str | None], window: float = 10.0) -> dict:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        clients = [WidgetClient(session, base, t) for t in tokens]
        semaphore = asyncio.Semaphore(200)

        async def connect(c: WidgetClient) -> None:
            async with semaphore:
                await c.connect()

        await asyncio.gather(*(connect(c) for c in clients))
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


async def idle_memory(base: str, pid: int, tokens: list[str]) -> float:
    """Bytes of hub RSS per idle connection."""
    process = psutil.Process(pid)
    before = process.memory_info().rss
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as session:
        clients = [WidgetClient(session, base, t) for t in tokens]
        semaphore = asyncio.Semaphore(200)

        async def connect(c: WidgetClient) -> None:
            async with semaphore:
                await c.connect()

        await asyncio.gather(*(connect(c) for c in clients))
        await asyncio.sleep(3)
        after = process.memory_info().rss
        await asyncio.gather(*(c.close() for c in clients))
    return (after - before) / len(tokens), after


async def main(counts: list[int], idle: int) -> dict:
    results: dict = {"hub": {}, "echo": {}}
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
            async with aiohttp.ClientSession() as session:
                tokens = await conversations_for(session, hub_base, max([*counts, idle]))
            print(
                f"{'connections':>12}{'hub δ p50':>12}{'hub δ p99':>12}{'echo p50':>10}"
                f"{'echo p99':>10}{'p99 ratio':>10}{'turns/s':>9}{'errors':>8}"
            )
            for count in counts:
                hub_figures = await load(hub_base, tokens[:count])
                echo_figures = await load(echo_base, [None] * count)
                ratio = round(
                    hub_figures["first_delta_p99_ms"] / echo_figures["first_delta_p99_ms"], 2
                )
                results["hub"][count] = {**hub_figures, "p99_ratio_to_echo": ratio}
                results["echo"][count] = echo_figures
                print(
                    f"{count:>12}{hub_figures['first_delta_p50_ms']:>12}"
                    f"{hub_figures['first_delta_p99_ms']:>12}{echo_figures['first_delta_p50_ms']:>10}"
                    f"{echo_figures['first_delta_p99_ms']:>10}{ratio:>10}"
                    f"{hub_figures['turns_per_s']:>9}{hub_figures['errors']:>8}"
                )
            per_connection, rss = await idle_memory(hub_base, hub.pid, tokens[:idle])
            results["idle"] = {
                "connections": idle,
                "bytes_per_connection": round(per_connection),
                "hub_rss_mb": round(rss / 2**20, 1),
            }
            print(
                f"idle: {idle} connections, {per_connection / 1024:.1f} KiB each, "
                f"hub RSS {rss / 2**20:.0f} MiB"
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
    parser.add_argument("--connections", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--idle", type=int, default=10_000)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.connections, args.idle))))
