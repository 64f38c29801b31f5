"""Load on a local cluster: widget visitors chatting and staff using the
dashboard at once, then a ledger of what was acknowledged.

    python -m bench.load [--sessions 200] [--messages 3] [--duration 120] [--rest-rps 20]
    python -m bench.load --against /tmp/base [--rounds 2] ...   # another checkout, then this one

Starts bench.cluster (2 web, 2 worker, PostgreSQL, Redis, a model that
streams at about 50 tokens/s). Each of the K visitors starts a conversation
through the public REST API on one of the web processes (round robin),
connects to `/widget` over WebSocket and sends its messages one at a time,
waiting for the streamed reply and a short think time in between. Staff are
connected to `/dashboard` on every web process, and a REST client reads
conversations, messages and analytics at a steady rate meanwhile.

Reported: completed turns per second; p50/p99 of the ack (message stored),
the first streamed token, the whole reply, and each REST call; errors; and
the ledger — every acknowledged message stored exactly once, answered
exactly once, and delivered to every dashboard (goal: 0 lost, 0 duplicated,
0 undelivered).

The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import socketio

from bench.cluster import ROOT, Cluster
from bench.common import percentile
from bench.report import emit, table

ORIGIN = "https://load.example.com"
QUESTIONS = [
    "How long do refunds take?",
    "Can I change my delivery address?",
    "Do you ship to Norway?",
    "What is your returns policy for sale items?",
    "Is there a discount for students?",
]


@dataclass
class Stats:
    samples: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    acked: dict[str, str] = field(default_factory=dict)  # user message id -> conversation id
    turns_done: int = 0

    def time(self, name: str, started: float) -> None:
        self.samples[name].append((time.perf_counter() - started) * 1000)

    def report(self) -> dict[str, Any]:
        return {
            name: {
                "count": len(values),
                "p50_ms": round(percentile(values, 50), 1),
                "p99_ms": round(percentile(values, 99), 1),
            }
            for name, values in sorted(self.samples.items())
            if values
        }


@dataclass
class Staff:
    token: str
    company_id: str
    agent_id: str
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def public(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}", "Origin": ORIGIN}


async def set_up_company(http: aiohttp.ClientSession, url: str) -> Staff:
    email = f"load-{uuid.uuid4().hex[:8]}@example.com"
    async with http.post(
        f"{url}/api/auth/signup",
        json={"email": email, "password": "a long password", "company_name": "Load Co"},
    ) as response:
        account = await response.json()
    headers = {"Authorization": f"Bearer {account['access_token']}"}
    async with http.post(
        f"{url}/api/agents",
        json={"name": "Support", "model": "gpt-4o-mini", "temperature": 0.2},
        headers=headers,
    ) as response:
        agent = await response.json()
    async with http.post(
        f"{url}/api/agents/{agent['id']}/keys", json={"allowed_origins": [ORIGIN]}, headers=headers
    ) as response:
        key = await response.json()
    return Staff(account["access_token"], account["company"]["id"], agent["id"], key["key"])


async def drop(sio: socketio.AsyncClient) -> None:
    """Close a client at once (a polite disconnect waits out a long-poll)."""
    with contextlib.suppress(Exception):
        await sio.eio.disconnect(abort=True)
    if sio.eio.http is not None and not sio.eio.external_http:
        with contextlib.suppress(Exception):
            await sio.eio.http.close()


class Visitor:
    """One widget session: a conversation, a socket, messages one at a time.

    When its web process goes away it reconnects to another one, asks for
    what it missed (`conversation:resume`) and sends again what was not
    acknowledged, with the same client_id."""

    def __init__(self, urls: list[str], index: int, staff: Staff, stats: Stats) -> None:
        self.urls = urls[index % len(urls) :] + urls[: index % len(urls)]
        self.staff, self.stats = staff, stats
        self.conversation: dict[str, Any] | None = None
        self.sio: socketio.AsyncClient | None = None
        self.seqs: set[int] = set()
        self.replies: dict[str, dict] = {}  # user message id -> the stored reply (or notice)
        self.reply_arrived = asyncio.Event()
        self.first_delta: float | None = None
        self.reconnects = 0
        self.notices = 0  # replies that were the failure notice (the model was down)
        self.typing = False  # the agent:typing state as this visitor last heard it
        # When each streamed attempt at a reply began, (message_id, attempt) ->
        # time, and when each reply arrived: for the time a turn takes to be
        # taken over after its worker died (bench/faults kill_worker).
        self.streams: dict[tuple[str, str | None], float] = {}
        self.replied_at: dict[str, float] = {}
        self.waiting_for: str | None = None  # the message whose reply is awaited

    async def start(self, http: aiohttp.ClientSession) -> None:
        for attempt in range(40):
            started = time.perf_counter()
            url = self.urls[attempt % len(self.urls)]
            try:
                async with http.post(
                    f"{url}/public/conversations",
                    json={"agent_id": self.staff.agent_id},
                    headers=self.staff.public,
                ) as response:
                    if response.status == 201:
                        self.conversation = await response.json()
                        break
                    self.stats.errors[f"start:{response.status}"] += 1
            except (aiohttp.ClientError, OSError):
                self.stats.errors["start:connection"] += 1
            await asyncio.sleep(0.5)  # a process or the database is down: try again
        else:
            raise RuntimeError("no conversation could be started")
        self.stats.time("rest:start_conversation", started)
        await self.connect()

    def _saw(self, message: dict) -> None:
        self.seqs.add(message["seq"])
        # An AI reply, or the notice a visitor gets when the AI could not answer.
        if message.get("reply_to") and message["sender_type"] in ("agent", "system"):
            if message["reply_to"] not in self.replies and message["sender_type"] == "system":
                self.notices += 1
            self.replied_at.setdefault(message["reply_to"], time.perf_counter())
            self.replies[message["reply_to"]] = message
            self.reply_arrived.set()

    def _typing(self, data: dict) -> None:
        self.typing = bool(data.get("typing"))

    async def connect(self) -> None:
        last_error = None
        for attempt in range(len(self.urls) * 3):
            url = self.urls[attempt % len(self.urls)]
            sio = socketio.AsyncClient(reconnection=False)
            sio.on("message:new", self._saw, namespace="/widget")
            sio.on("message:done", self._saw, namespace="/widget")
            sio.on("message:delta", self._delta, namespace="/widget")
            sio.on("agent:typing", self._typing, namespace="/widget")
            try:
                await sio.connect(
                    url,
                    namespaces=["/widget"],
                    auth={"token": self.conversation["token"]},
                    transports=["websocket"],
                    headers={"Origin": ORIGIN},
                    wait_timeout=10,
                )
            except Exception as exc:  # a web process that is down: try the next
                last_error = exc
                await drop(sio)
                await asyncio.sleep(0.2)
                continue
            self.sio = sio
            if self.seqs:
                await self.resume()
            return
        raise RuntimeError(f"no web process accepted the visitor: {last_error}")

    async def _delta(self, data: dict) -> None:
        now = time.perf_counter()
        if self.first_delta is None:
            self.first_delta = now
        self.streams.setdefault((data.get("message_id"), data.get("attempt")), now)

    async def resume(self) -> None:
        ack = await self.sio.call(
            "conversation:resume", {"after_seq": max(self.seqs)}, namespace="/widget", timeout=15
        )
        for message in ack.get("messages", []):
            self._saw(message)

    async def reconnect(self) -> None:
        self.reconnects += 1
        if self.sio is not None:
            await drop(self.sio)
        await self.connect()

    async def send(self, content: str) -> dict:
        """Send until acknowledged: the same client_id, however often."""
        client_id = uuid.uuid4().hex
        for _ in range(60):
            started = time.perf_counter()
            try:
                if not self.sio.connected:
                    raise ConnectionError("disconnected")
                ack = await self.sio.call(
                    "message:send",
                    {"content": content, "client_id": client_id},
                    namespace="/widget",
                    timeout=15,
                )
            except Exception:
                self.stats.errors["send_retried"] += 1
                await self.reconnect()
                continue
            if not ack.get("ok"):
                self.stats.errors[f"send:{ack.get('code')}"] += 1
                if ack.get("code") in ("DATABASE_UNAVAILABLE", "SERVICE_UNAVAILABLE"):
                    await asyncio.sleep(0.5)  # fails fast while the database is down
                    continue
                raise RuntimeError(f"refused: {ack}")
            self.stats.time("ws:ack", started)
            message = ack["message"]
            self.stats.acked[message["id"]] = self.conversation["id"]
            self._saw(message)
            return message
        raise RuntimeError("never acknowledged")

    async def turn(self, content: str, reply_within: float = 60) -> None:
        self.first_delta = None
        started = time.perf_counter()
        message = await self.send(content)
        self.waiting_for = message["id"]
        deadline = time.perf_counter() + reply_within
        while message["id"] not in self.replies:
            self.reply_arrived.clear()
            try:
                await asyncio.wait_for(self.reply_arrived.wait(), 2)
            except TimeoutError:
                if time.perf_counter() > deadline:
                    self.stats.errors["no_reply"] += 1
                    return
                if not self.sio.connected:
                    await self.reconnect()
                else:
                    await self.resume()  # a reply published while we were away
        if self.first_delta is not None:
            self.stats.samples["ws:first_token"].append((self.first_delta - started) * 1000)
        self.stats.time("ws:reply_done", started)
        self.stats.turns_done += 1

    async def close(self) -> None:
        if self.sio is not None:
            await drop(self.sio)

    def gaps(self) -> list[int]:
        if not self.seqs:
            return []
        return sorted(set(range(1, max(self.seqs) + 1)) - self.seqs)


class Dashboard:
    """Staff on one web process: every message it has shown. Like the real
    dashboard, after a reconnect or a `sync` it reads again through REST what
    it may have missed."""

    def __init__(self, url: str, staff: Staff, http: aiohttp.ClientSession) -> None:
        self.url, self.staff, self.http = url, staff, http
        self.seen: set[str] = set()  # shown, live or by catching up
        self.live: set[str] = set()  # shown as it happened
        self.catch_ups = 0
        self._connected_once = False
        self._catching_up: set[asyncio.Task] = set()
        self.sio = socketio.AsyncClient(reconnection=True, reconnection_delay=0.2)
        self.sio.on("message:new", self._message, namespace="/dashboard")
        self.sio.on("sync", self._catch_up_later, namespace="/dashboard")
        self.sio.on("connect", self._connected, namespace="/dashboard")

    async def _message(self, message: dict) -> None:
        self.seen.add(message["id"])
        self.live.add(message["id"])

    async def _connected(self) -> None:
        if self._connected_once:
            await self._catch_up_later()
        self._connected_once = True

    async def _catch_up_later(self, _data=None) -> None:
        # Not inside the event handler: it would hold up the events behind it.
        task = asyncio.create_task(self.catch_up())
        self._catching_up.add(task)
        task.add_done_callback(self._catching_up.discard)

    async def catch_up(self) -> None:
        self.catch_ups += 1
        offset, total = 0, 1
        while offset < total:
            page = await self._get(f"/api/conversations?limit=50&offset={offset}")
            total = page["total"]
            offset += 50
            for conversation in page["conversations"]:
                after = 0
                while True:
                    path = f"/api/conversations/{conversation['id']}/messages"
                    found = (await self._get(f"{path}?limit=100&after_seq={after}"))["messages"]
                    self.seen.update(m["id"] for m in found)
                    if len(found) < 100:
                        break
                    after = found[-1]["seq"]

    async def _get(self, path: str) -> dict:
        for _attempt in range(20):  # the hub may still be recovering
            try:
                async with self.http.get(self.url + path, headers=self.staff.headers) as response:
                    if response.status == 200:
                        return await response.json()
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
        raise RuntimeError(f"dashboard could not read {path}")

    async def settled(self) -> None:
        if self._catching_up:
            await asyncio.gather(*self._catching_up, return_exceptions=True)

    async def connect(self) -> None:
        await self.sio.connect(
            self.url,
            namespaces=["/dashboard"],
            auth={"token": self.staff.token},
            transports=["websocket"],
            wait_timeout=10,
        )

    async def close(self) -> None:
        await drop(self.sio)


async def rest_traffic(
    http: aiohttp.ClientSession, urls: list[str], staff: Staff, stats: Stats, rps: float,
    stop: asyncio.Event,
) -> None:  # fmt: skip
    calls = [
        ("rest:list_conversations", "/api/conversations?limit=20"),
        ("rest:analytics_overview", "/api/analytics/overview"),
        ("rest:unread_count", "/api/notifications/unread-count"),
        ("rest:messages", None),
    ]
    i = 0
    while not stop.is_set():
        name, path = calls[i % len(calls)]
        if path is None:
            if not stats.acked:
                i += 1
                continue
            conversation = random.choice(list(stats.acked.values()))
            path = f"/api/conversations/{conversation}/messages?limit=50"
        url = urls[i % len(urls)]
        started = time.perf_counter()
        try:
            async with http.get(url + path, headers=staff.headers) as response:
                await response.read()
                if response.status != 200:
                    stats.errors[f"{name}:{response.status}"] += 1
                else:
                    stats.time(name, started)
        except (aiohttp.ClientError, OSError):
            stats.errors[f"{name}:connection"] += 1
        i += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1 / rps)


async def transactions(cluster: Cluster) -> int | None:
    """Transactions PostgreSQL has committed or rolled back in the cluster's
    database; None while it is down (a fault)."""
    try:
        conn = await asyncpg.connect(cluster.postgres.url)
    except (OSError, asyncpg.PostgresError):
        return None
    try:
        return await conn.fetchval(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database"
            " WHERE datname = current_database()"
        )
    finally:
        await conn.close()


async def ledger(cluster: Cluster, stats: Stats, dashboards: list[Dashboard]) -> dict[str, Any]:
    """Every acknowledged message stored once, answered once, seen by every dashboard."""
    conn = await asyncpg.connect(cluster.postgres.url)
    try:
        acked = list(stats.acked)
        stored = await conn.fetch(
            """SELECT m.id::text, (SELECT count(*) FROM messages d
                                   WHERE d.conversation_id = m.conversation_id
                                     AND d.client_id = m.client_id) AS copies
               FROM messages m WHERE m.id::text = ANY($1::text[])""",
            acked,
        )
        # Answered: by the AI's reply, or by the notice that it could not answer.
        replies = await conn.fetch(
            """SELECT reply_to::text, count(*) FILTER (WHERE sender_type = 'agent') AS n,
                      array_agg(id::text) AS ids
               FROM messages
               WHERE reply_to::text = ANY($1::text[]) AND sender_type IN ('agent', 'system')
               GROUP BY reply_to""",
            acked,
        )
        found = {r["id"] for r in stored}
        reply_ids = [i for r in replies for i in r["ids"]]
        everything = acked + reply_ids
        missed = {m for d in dashboards for m in everything if m not in d.seen}
        # What the dashboards missed, to tell a lost event from a late one.
        missed_rows = await conn.fetch(
            """SELECT id::text, sender_type, seq, created_at FROM messages
               WHERE id::text = ANY($1::text[]) ORDER BY created_at LIMIT 5""",
            list(missed),
        )
    finally:
        await conn.close()
    return {
        "acknowledged": len(acked),
        "lost": len(set(acked) - found),
        "duplicated": sum(1 for r in stored if r["copies"] > 1)
        + sum(max(0, r["n"] - 1) for r in replies),
        "unanswered": len(acked) - len(replies),
        "undelivered_to_dashboard": sum(
            1 for d in dashboards for message_id in everything if message_id not in d.seen
        ),
        # Shown only because the dashboard caught up (a reconnect or `sync`):
        # live events that were lost, which faults may cause and load must not.
        "caught_up_not_live": sum(
            1
            for d in dashboards
            for message_id in everything
            if message_id in d.seen and message_id not in d.live
        ),
        "undelivered_sample": [
            f"{r['sender_type']} seq {r['seq']} at {r['created_at']:%H:%M:%S.%f}"
            for r in missed_rows
        ],
    }


async def run(
    cluster: Cluster,
    *,
    sessions: int,
    messages: int,
    duration: float,
    rest_rps: float,
    think: tuple[float, float] = (1.0, 3.0),
    during=None,
    watch: list[int] | None = None,
) -> dict[str, Any]:
    """Drive the load on a started cluster; `during(visitors)` runs alongside
    (faults). The ledger counts delivery to the dashboards on the web processes
    in `watch` (default: all)."""
    stats = Stats()
    urls = cluster.web_urls
    async with aiohttp.ClientSession() as http:
        staff = await set_up_company(http, urls[0])
        dashboards = [Dashboard(url, staff, http) for url in urls]
        for dashboard in dashboards:
            await dashboard.connect()
        visitors = [Visitor(urls, i, staff, stats) for i in range(sessions)]
        stop = asyncio.Event()
        rest = asyncio.create_task(rest_traffic(http, urls, staff, stats, rest_rps, stop))
        deadline = time.perf_counter() + duration

        async def visit(visitor: Visitor) -> None:
            await asyncio.sleep(random.uniform(0, min(think[1] * 2, duration / 4)))
            await visitor.start(http)
            for n in range(messages):
                if time.perf_counter() > deadline:
                    return
                await visitor.turn(random.choice(QUESTIONS) + f" ({n})")
                await asyncio.sleep(random.uniform(*think))

        transactions_before = await transactions(cluster)
        started, cpu_before = time.perf_counter(), cluster.cpu()
        side = asyncio.create_task(during(visitors)) if during else None
        results = await asyncio.gather(*(visit(v) for v in visitors), return_exceptions=True)
        elapsed = time.perf_counter() - started
        cpu = {k: v - cpu_before[k] for k, v in cluster.cpu().items()}
        if side is not None:
            await side
        await asyncio.sleep(1.0)  # backends report their counts to the statistics within a second
        transactions_after = await transactions(cluster)
        stop.set()
        await rest
        for result in results:
            if isinstance(result, Exception):
                stats.errors[f"visitor:{type(result).__name__}"] += 1
        await asyncio.sleep(1.0)  # the last events reach the dashboards
        for dashboard in dashboards:
            await dashboard.settled()
        watched = [dashboards[i] for i in watch] if watch is not None else dashboards
        books = await ledger(cluster, stats, watched)
        gaps = sum(len(v.gaps()) for v in visitors)
        reconnects = sum(v.reconnects for v in visitors)
        for client in [*visitors, *dashboards]:
            await client.close()
    return {
        "sessions": sessions,
        "seconds": round(elapsed, 1),
        "turns": stats.turns_done,
        "turns_per_s": round(stats.turns_done / elapsed, 2),
        "latency": stats.report(),
        "errors": dict(stats.errors),
        "ledger": books,
        "seq_gaps": gaps,
        "reconnects": reconnects,
        "notices": sum(v.notices for v in visitors),
        "typing_left_on": sum(1 for v in visitors if v.typing),
        "dashboard_catch_ups": sum(d.catch_ups for d in dashboards),
        # CPU per completed turn, by kind of process (REST traffic included).
        "cpu_ms_per_turn": {
            k: round(v * 1000 / max(stats.turns_done, 1), 1) for k, v in cpu.items()
        },
        # Each statement outside a transaction counts as one too (a pool's reset query).
        # None when a fault restarted PostgreSQL (its statistics start again).
        "pg_transactions_per_turn": round(
            (transactions_after - transactions_before) / max(stats.turns_done, 1), 1
        )
        if transactions_before is not None and transactions_after is not None and side is None
        else None,
    }


CPU_COLUMNS = [("web", "web"), ("worker", "worker"), ("postgres", "PostgreSQL"), ("redis", "Redis")]


def print_report(figures: dict[str, Any]) -> None:
    emit(
        "load",
        f"{figures['sessions']} sessions, {figures['turns']} turns in {figures['seconds']} s"
        f" = {figures['turns_per_s']} turns/s; errors: {figures['errors'] or 'none'}.\n\n"
        + table(
            ["operation", "count", "p50", "p99"],
            [
                (name, row["count"], f"{row['p50_ms']} ms", f"{row['p99_ms']} ms")
                for name, row in figures["latency"].items()
            ],
        )
        + f"\nLedger: {ledger_line(figures)}.\n",
    )
    print_cpu([("this checkout", figures)])


def ledger_line(figures: dict[str, Any]) -> str:
    books = figures["ledger"]
    return (
        f"{books['acknowledged']} acknowledged, {books['lost']} lost,"
        f" {books['duplicated']} duplicated, {books['unanswered']} unanswered,"
        f" {books['undelivered_to_dashboard']} not shown on a dashboard,"
        f" {figures['seq_gaps']} gaps in a visitor's `seq`"
    )


def print_cpu(rows: list[tuple[str, dict[str, Any]]]) -> None:
    """CPU per completed turn, one row per run; with two runs, their ratio."""
    lines = []
    for label, figures in rows:
        cpu = figures["cpu_ms_per_turn"]
        lines.append(
            (label, figures["turns"], *(f"{cpu[key]} ms" for key, _ in CPU_COLUMNS),
             f"**{hub_total(figures)} ms**", f"{cpu['clients']} ms",
             figures["pg_transactions_per_turn"])
        )  # fmt: skip
    if len(rows) == 2:
        (_, before), (_, after) = rows
        ratios = [
            _ratio(after["cpu_ms_per_turn"][key], before["cpu_ms_per_turn"][key])
            for key, _ in CPU_COLUMNS
        ]
        total = _ratio(hub_total(after), hub_total(before))
        clients = _ratio(after["cpu_ms_per_turn"]["clients"], before["cpu_ms_per_turn"]["clients"])
        xacts = _ratio(after["pg_transactions_per_turn"] or 0, before["pg_transactions_per_turn"])
        lines.append(("ratio (second / first)", "", *ratios, f"**{total}**", clients, xacts))
    emit(
        "load-cpu",
        table(
            [
                "CPU per turn",
                "turns",
                *(title for _, title in CPU_COLUMNS),
                "hub total",
                "clients and model",
                "PostgreSQL transactions per turn",
            ],
            lines,
        ),  # fmt: skip
    )


def hub_total(figures: dict[str, Any]) -> float:
    cpu = figures["cpu_ms_per_turn"]
    return round(sum(cpu[key] for key, _ in CPU_COLUMNS), 1)


def _ratio(after: float, before: float) -> str:
    return f"{after / before:.2f}×" if before else "-"


async def measure(args: argparse.Namespace, source: Path) -> dict[str, Any]:
    async with Cluster(token_delay=args.token_delay, source=source) as cluster:
        return await run(
            cluster,
            sessions=args.sessions,
            messages=args.messages,
            duration=args.duration,
            rest_rps=args.rest_rps,
        )


async def main(args: argparse.Namespace) -> dict[str, Any]:
    if args.against is None:
        figures = await measure(args, ROOT)
        print_report(figures)
        return figures
    # The same load on another checkout's processes, then on this one's, back
    # to back on the same machine: compare the ratio, not the figures of a
    # machine that other work shares.
    runs: list[tuple[str, dict[str, Any]]] = []
    for _round in range(args.rounds):
        for label, source in ((str(args.against), args.against), ("this checkout", ROOT)):
            figures = await measure(args, source)
            print(f"\n## {label}\n")
            print_report(figures)
            runs.append((label, figures))
    print("\n## CPU per turn, side by side\n")
    for i in range(0, len(runs), 2):
        print_cpu(runs[i : i + 2])
        print()
    return {"runs": [{"source": label, **figures} for label, figures in runs]}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--messages", type=int, default=3)
    parser.add_argument("--duration", type=float, default=120)
    parser.add_argument("--rest-rps", type=float, default=20)
    parser.add_argument("--token-delay", type=float, default=0.02)
    parser.add_argument(
        "--against",
        type=Path,
        help="another checkout (e.g. `git archive main | tar -x -C /tmp/base`): run the same "
        "load on its processes first, then on this one's, and print CPU per turn side by side",
    )
    parser.add_argument("--rounds", type=int, default=1, help="with --against: pairs of runs")
    print(json.dumps(asyncio.run(main(parser.parse_args()))))
