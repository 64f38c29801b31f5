"""Event fan-out across web processes: delivered events per second with 1, 2
and 3 `web` processes on one Redis.

    python -m bench.fanout [--conversations 20] [--rate 1000] [--seconds 10]

Starts bench.cluster with three web processes (no worker: nothing here needs
a turn). Each web process gets `--conversations` widget sockets, each on a
conversation of its own; at level N the sockets of the first N processes are
connected and the others' processes hold none (they follow nothing, so they
receive nothing). The load generator publishes `message.delta` events for
the connected conversations straight onto the bus, the way a worker
streaming replies does (hub.events: each on its conversation's channel), at
`--rate` events per second per driven process: the same offered load per
process at each level. Counted: the `message:delta` frames the sockets
receive during `--seconds`, after a warm-up.

The sockets are raw WebSocket clients speaking just enough Engine.IO and
Socket.IO to join `/widget`, answer pings and count frames, so that the
clients' own CPU does not cap what is measured (python-socketio's client
costs several times more per frame). The machine's cores bound the figure:
the hub's processes, Redis and this process share them.

The table is markdown; "vs 1" is delivered per second over the 1-process
level's, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
import uuid

import aiohttp

from bench.cluster import Cluster
from bench.load import ORIGIN, set_up_company
from bench.report import emit, number, table
from hub import redis_client
from hub.events import Event, RedisEventBus, conversation_topic

PREFIX = "syntera"  # the cluster's processes run with the default REDIS_PREFIX


class Socket:
    """One widget connection that counts the deltas it is sent."""

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str) -> None:
        self.session, self.url, self.token = session, url, token
        self.deltas = 0
        self.conversation = ""
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task | None = None

    async def connect(self) -> None:
        ws_url = self.url.replace("http", "ws", 1) + "/socket.io/?EIO=4&transport=websocket"
        self.ws = await self.session.ws_connect(ws_url, headers={"Origin": ORIGIN})
        opened = await self.ws.receive_str(timeout=30)
        assert opened.startswith("0"), opened
        await self.ws.send_str("40/widget," + json.dumps({"token": self.token}))
        while True:
            frame = await self.ws.receive_str(timeout=30)
            if frame.startswith("40/widget,"):
                break
            if frame.startswith("44/widget,"):
                raise RuntimeError(f"widget refused: {frame}")
            if frame == "2":
                await self.ws.send_str("3")
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.ws is not None
        async for message in self.ws:
            if message.type != aiohttp.WSMsgType.TEXT:
                break
            frame = message.data
            if frame == "2":
                await self.ws.send_str("3")
            elif frame.startswith('42/widget,["message:delta"'):
                self.deltas += 1

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader
        if self.ws is not None:
            await self.ws.close()


async def offer(bus: RedisEventBus, company: uuid.UUID, conversations, rate: int, stop) -> int:
    """Publish deltas round robin over `conversations` at `rate` per second,
    in batches every 10 ms (one pipeline each); how many were published.
    Each conversation's event is encoded once: the generator's own CPU is
    spent on sending, not on making JSON."""
    wire = []
    for conversation in conversations:
        data = {"conversation_id": conversation, "message_id": "b", "delta": "word ", "index": 0}
        event = Event("message.delta", company, data)
        wire.append((bus.channel(conversation_topic(conversation)), event.encode()))
    published, started = 0, time.perf_counter()
    while not stop.is_set():
        due = int((time.perf_counter() - started) * rate) - published
        if due > 0:
            async with bus.client.pipeline(transaction=False) as pipe:
                for _ in range(due):
                    pipe.spublish(*wire[published % len(wire)])
                    published += 1
                await pipe.execute()
        await asyncio.sleep(0.01)
    return published


async def level(
    cluster: Cluster, bus, company, sockets_by_web, webs: int, rate: int, seconds: float
) -> dict:
    sockets = [s for per_web in sockets_by_web[:webs] for s in per_web]
    conversations = [s.conversation for s in sockets]
    stop = asyncio.Event()
    publisher = asyncio.create_task(offer(bus, company, conversations, rate * webs, stop))
    await asyncio.sleep(2)  # warm-up
    before = sum(s.deltas for s in sockets)
    cpu_before = cluster.cpu()
    started = time.perf_counter()
    await asyncio.sleep(seconds)
    delivered = sum(s.deltas for s in sockets) - before
    elapsed = time.perf_counter() - started
    cpu_after = cluster.cpu()
    stop.set()
    await publisher
    await asyncio.sleep(1)  # let the tail drain before the next level
    return {
        "webs": webs,
        "offered": rate * webs,
        "delivered": delivered / elapsed,
        "web_cpu": (cpu_after["web"] - cpu_before["web"]) / elapsed,
        "redis_cpu": (cpu_after["redis"] - cpu_before["redis"]) / elapsed,
    }


def fanout_table(rows: list[dict], conversations: int) -> str:
    base = rows[0]["delivered"] or 1
    return table(
        ["web processes", "sockets", "offered events/s", "delivered events/s",
         "delivered per process", "vs 1", "web CPU (cores)", "web CPU ms per 1 000 delivered"],
        [
            (r["webs"], r["webs"] * conversations, number(r["offered"]),
             number(round(r["delivered"])), number(round(r["delivered"] / r["webs"])),
             f"{r['delivered'] / base:.2f}×", f"{r['web_cpu']:.2f}",
             f"{r['web_cpu'] * 1e6 / max(r['delivered'], 1):.0f}")
            for r in rows
        ],
    )  # fmt: skip


async def run(conversations: int, rate: int, seconds: float, webs: int = 3) -> list[dict]:
    async with Cluster(webs=webs, workers=0) as cluster:
        client = await redis_client.connect(cluster.redis.url)
        bus = RedisEventBus(client, cluster.redis.url, PREFIX)
        bus.sharded = await bus.has_sharded_pubsub()  # published with, not listened to
        sockets_by_web: list[list[Socket]] = []
        session = aiohttp.ClientSession()
        try:
            staff = await set_up_company(session, cluster.web_urls[0])
            for url in cluster.web_urls:
                mine = []
                for _ in range(conversations):
                    async with session.post(
                        f"{url}/public/conversations",
                        json={"agent_id": staff.agent_id},
                        headers=staff.public,
                    ) as response:
                        started = await response.json()
                    socket = Socket(session, url, started["token"])
                    socket.conversation = started["id"]
                    mine.append(socket)
                sockets_by_web.append(mine)
            rows = []
            for n in range(1, webs + 1):
                await asyncio.gather(*(s.connect() for s in sockets_by_web[n - 1]))
                rows.append(
                    await level(
                        cluster, bus, uuid.UUID(staff.company_id), sockets_by_web, n, rate, seconds
                    )
                )
            return rows
        finally:
            for per_web in sockets_by_web:
                for socket in per_web:
                    await socket.close()
            await session.close()
            await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--conversations", type=int, default=20, help="widget sockets per process")
    parser.add_argument("--rate", type=int, default=1000, help="deltas per second per process")
    parser.add_argument("--seconds", type=float, default=10.0, help="measured time per level")
    args = parser.parse_args()
    rows = asyncio.run(run(args.conversations, args.rate, args.seconds))
    emit("fanout", fanout_table(rows, args.conversations))
    print(json.dumps({"fanout": rows, "args": vars(args)}))


if __name__ == "__main__":
    main()
