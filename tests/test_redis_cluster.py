"""The hub on a Redis Cluster: a private three-node cluster on loopback
(bench.cluster.LocalRedisCluster), the event bus's sharded pub/sub across its
nodes, the job queue and the rate limits on it, and the hub as shipped (two
web processes and a worker) pointed at one of its nodes."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bench.cluster import Cluster, LocalRedisCluster
from bench.shipped import source_root
from hub import redis_client
from hub.events import Event, RedisEventBus, company_topic, conversation_topic
from hub.jobs import Job, QueuePolicy, RedisStreamQueue
from hub.ratelimit import RedisRateLimiter
from tests.helpers import SocketClient, wait_for
from tests.shipped import Api

pytestmark = pytest.mark.skipif(
    shutil.which("redis-server") is None or shutil.which("redis-cli") is None,
    reason="redis-server and redis-cli are needed for a Redis Cluster (scripts/test installs them)",
)


@pytest.fixture(scope="module")
async def redis_cluster():
    cluster = LocalRedisCluster(Path(tempfile.mkdtemp(prefix="syntera-redis-cluster-")))
    try:
        await cluster.start()
        yield cluster
    finally:
        await cluster.stop()


async def test_a_cluster_node_address_gives_a_cluster_client(redis_cluster):
    client = await redis_client.connect(redis_cluster.url)
    try:
        assert redis_client.is_cluster(client)
        assert len(client.get_nodes()) == 3
    finally:
        await client.aclose()


def on_another_node(client, first: str) -> str:
    """A conversation id whose channel's slot another node owns than `first`'s."""
    owner = client.nodes_manager.get_node_from_slot(client.keyslot(first)).name
    while True:
        candidate = str(uuid.uuid4())
        channel = f"cl:ev:{{{conversation_topic(candidate)}}}"
        if client.nodes_manager.get_node_from_slot(client.keyslot(channel)).name != owner:
            return candidate


async def test_the_bus_listens_on_the_nodes_owning_what_it_follows(redis_cluster):
    url = redis_cluster.url
    clients = [await redis_client.connect(url) for _ in range(2)]
    listener, publisher = (RedisEventBus(c, url, "cl") for c in clients)
    await listener.start()
    await publisher.start()
    heard: list[Event] = []

    async def record(event: Event) -> None:
        heard.append(event)

    listener.subscribe(record)
    try:
        company = uuid.uuid4()
        conversation = on_another_node(clients[0], listener.channel(company_topic(company)))
        await listener.follow(company_topic(company))
        await listener.follow(conversation_topic(conversation))
        # Sharded: one connection per node owning a followed channel.
        assert listener.sharded and len(listener._listeners) >= 2

        about = {"conversation_id": conversation}
        published = [Event("message.delta", company, {**about, "index": i}) for i in range(30)]
        published.append(Event("message.created", company, {**about, "sender_type": "agent"}))
        published.append(Event("conversation.ended", company, {"id": conversation, "by": "staff"}))
        other = Event("message.created", uuid.uuid4(), {"conversation_id": str(uuid.uuid4())})
        wide = Event("key.revoked", uuid.uuid4(), {"key_id": "k"})
        for event in [*published, other, wide]:
            await publisher.publish(event)

        async def all_heard():
            return wide.id in [e.id for e in heard]

        await wait_for(all_heard, within=10, every=0.05)
        await asyncio.sleep(0.2)
        # In order and once, though the company's channel is on another node;
        # nothing of a company this process does not follow.
        assert [e.id for e in heard] == [e.id for e in published] + [wide.id]
    finally:
        for bus in (listener, publisher):
            await bus.stop()
        for client in clients:
            await client.aclose()


async def test_jobs_and_rate_limits_on_the_cluster(redis_cluster):
    client = await redis_client.connect(redis_cluster.url)
    prefix = f"cq-{uuid.uuid4().hex[:6]}"
    queues = [RedisStreamQueue(client, prefix, QueuePolicy(backoff=0.01)) for _ in range(2)]
    runs: list[tuple[str, int]] = []
    active: set[str] = set()
    overlap: list[str] = []

    async def work(job: Job) -> None:
        if job.key in active:
            overlap.append(job.key)
        active.add(job.key)
        await asyncio.sleep(0.02)
        active.discard(job.key)
        runs.append((job.key, job.payload["n"]))

    try:
        for queue in queues:
            queue.handle("work", work)
            await queue.start()
        for n in range(8):
            await queues[0].enqueue(Job("work", str(uuid.uuid4()), f"k{n % 3}", {"n": n}))

        async def done():
            return len(runs) == 8

        await wait_for(done, within=20, every=0.05)
        assert sorted(n for _, n in runs) == list(range(8)) and overlap == []

        limiter = RedisRateLimiter(client, prefix)
        quotas = [await limiter.hit("user:1", 3, 60) for _ in range(4)]
        assert [q.remaining for q in quotas] == [2, 1, 0, 0]
        assert [q.allowed for q in quotas] == [True, True, True, False]
    finally:
        for queue in queues:
            await queue.stop()
        await client.aclose()


@pytest.fixture(scope="module")
async def hub_on_cluster():
    async with Cluster(webs=2, workers=1, redis_cluster=True, source=source_root()) as running:
        yield running


async def test_the_hub_as_shipped_on_a_redis_cluster(hub_on_cluster):
    """A visitor on one web process; staff on the other, one of them with the
    conversation open. The reply streams to the widget and to that dashboard
    only, everyone sees the stored reply, and it is stored once."""
    cluster = hub_on_cluster
    first, second = cluster.web_urls
    api = Api(first)
    sockets: list[SocketClient] = []
    try:
        staff = await api.signup()
        agent = await api.create_agent(staff, name="Clustered")
        key = await api.publishable_key(staff, agent["id"])
        started = await api.start_conversation(key, agent["id"])

        watching, elsewhere = SocketClient("/dashboard"), SocketClient("/dashboard")
        visitor = SocketClient("/widget", origin="https://shop.example.com")
        sockets += [watching, elsewhere, visitor]
        await watching.connect(second, staff.token)
        await elsewhere.connect(second, staff.token)
        opened = await watching.call("conversation:watch", {"conversation_id": started["id"]})
        assert opened["ok"] is True, opened
        await visitor.connect(first, started["token"])

        sent = await visitor.call("message:send", {"content": "How long do refunds take?"})
        assert sent["ok"] is True, sent
        done = await visitor.wait_for("message:done", within=60)
        assert done["content"] == cluster.answer
        streamed = "".join(d["delta"] for d in visitor.events["message:delta"])
        assert streamed == cluster.answer  # every delta, in order, before message:done
        await watching.wait_for("message:new", lambda m: m["sender_type"] == "agent", within=30)
        await elsewhere.wait_for("message:new", lambda m: m["sender_type"] == "agent", within=30)
        watched = "".join(d["delta"] for d in watching.events["message:delta"])
        assert watched == cluster.answer
        assert not elsewhere.events["message:delta"], dict(elsewhere.events)

        stored = await api.messages(staff, started["id"])
        assert [m["sender_type"] for m in stored] == ["user", "agent"], stored
    finally:
        for socket in sockets:
            await socket.close()
        await api.close()


async def test_a_lost_node_connection_makes_its_clients_catch_up(hub_on_cluster):
    """Every listening connection on every node cut (what a node restart does):
    each web process listens again and tells its clients to `sync`, and live
    delivery goes on."""
    cluster = hub_on_cluster
    first, second = cluster.web_urls
    api = Api(first)
    sockets: list[SocketClient] = []
    try:
        staff = await api.signup()
        agent = await api.create_agent(staff, name="Clustered")
        key = await api.publishable_key(staff, agent["id"])
        started = await api.start_conversation(key, agent["id"])
        dashboard = SocketClient("/dashboard")
        visitor = SocketClient("/widget", origin="https://shop.example.com")
        sockets += [dashboard, visitor]
        await dashboard.connect(second, staff.token)
        await visitor.connect(first, started["token"])

        cut = 0
        for port in cluster.redis.ports:
            node = aioredis.from_url(f"redis://127.0.0.1:{port}/0")
            try:
                for client in await node.client_list():
                    if client["name"] == "syntera:events":
                        await node.client_kill_filter(_id=client["id"])
                        cut += 1
            finally:
                await node.aclose()
        assert cut >= 3  # each process listens on at least one node
        await visitor.wait_for("sync", within=30)
        await dashboard.wait_for("sync", within=30)

        await visitor.call("message:send", {"content": "Still there?"})
        await dashboard.wait_for("message:new", lambda m: m["content"] == "Still there?")
        await visitor.wait_for("message:done", within=60)
    finally:
        for socket in sockets:
            await socket.close()
        await api.close()
