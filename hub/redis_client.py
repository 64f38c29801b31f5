"""The process's Redis client, for a single Redis or a Redis Cluster.

REDIS_URL names one server. If that server says it is a cluster node
(`INFO cluster` answers `cluster_enabled:1`) the hub uses redis-py's cluster
client, which finds the other nodes itself and sends each command to the
node owning its key's slot; nothing else needs configuring. Everything the
hub keeps in Redis then has to live with that: a command (or script) touches
keys of one slot only, and pub/sub is sharded (hub/events.py).
"""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.connection import ConnectionPool, parse_url
from redis.exceptions import RedisError

Client = aioredis.Redis | RedisCluster


async def connect(url: str, *, within: float = 10.0) -> Client:
    """The shared client: commands time out after 5 s, so a stuck Redis
    cannot hold a request for long."""
    probe = aioredis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    deadline = time.monotonic() + within
    try:
        while True:
            try:
                info = await probe.info("cluster")
                break
            except (RedisError, OSError) as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"Redis at REDIS_URL does not answer: {exc}") from exc
                await asyncio.sleep(0.2)
    finally:
        await probe.aclose()
    if not info.get("cluster_enabled"):
        return aioredis.from_url(
            url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
        )
    cluster = RedisCluster.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    await cluster.initialize()
    return cluster


def is_cluster(client: Client) -> bool:
    return isinstance(client, RedisCluster)


def node_connection(url: str, host: str, port: int, **options) -> aioredis.Redis:
    """A plain connection to one node, with REDIS_URL's credentials and TLS:
    what a sharded subscription to that node's channels needs."""
    kwargs = parse_url(url)
    kwargs.update(host=host, port=port, **options)
    kwargs.pop("db", None)  # a cluster has database 0 only
    return aioredis.Redis.from_pool(ConnectionPool(**kwargs))  # closed with it
