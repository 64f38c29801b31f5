"""Domain events and the one bus that carries them.

Code that changes something publishes an Event; the real-time hub, workflows
and notifications subscribe. In-process (embedded mode) a publish reaches this
process's subscribers. With Redis, an event goes to the channels of its
topics (`topics()`): its company's, its conversation's, or the one every
process hears, and a process hears only the topics it follows (the
real-time side follows a company while one of its dashboards is connected
here, a conversation while a widget of it, or a dashboard that opened it, is).
Adding web processes then adds delivery capacity instead of multiplying
every event by the number of processes.

Either way each process delivers events to its subscribers one at a time,
in the order they arrived, and a conversation's events in the order they
were published: every event about a conversation is published on the
conversation's channel, and a process that follows that channel takes the
conversation's events from it alone (docs/realtime.md, "Scaling out").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from hub import jsoncodec
from hub.pubsub import Listener
from hub.redis_client import Client, is_cluster, node_connection

log = logging.getLogger(__name__)

Subscriber = Callable[["Event"], Awaitable[None]]
GapListener = Callable[[], Awaitable[None]]

# Events every process hears, whatever it follows: few and rare, and acted on
# by processes that hold no socket for them (workers cancel a turn on a
# takeover or an end, caches drop what a revoked key or a changed user or
# knowledge base made stale).
PROCESS_WIDE = frozenset(
    {
        "key.revoked",
        "knowledge.changed",
        "knowledge.queued",
        "conversation.takeover",
        "conversation.ended",
    }
)
# The high-volume events: only those who have the conversation open get them,
# so they go to its channel alone, not to its company's.
CONVERSATION_ONLY = frozenset({"message.delta", "agent.typing", "visitor.typing"})
EVERY_PROCESS = "all"  # the topic of the PROCESS_WIDE events


def company_topic(company_id: UUID | str) -> str:
    return f"company:{company_id}"


def conversation_topic(conversation_id: UUID | str) -> str:
    return f"conversation:{conversation_id}"


@dataclass(frozen=True)
class Event:
    type: str  # e.g. "message.created", "notification.created"
    company_id: UUID
    data: dict[str, Any]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def encode(self) -> bytes:
        # Not dataclasses.asdict: it deep-copies `data`, on every delta.
        return jsoncodec.dumps(
            {"type": self.type, "company_id": self.company_id, "data": self.data, "id": self.id}
        )

    @classmethod
    def decode(cls, raw: bytes | str) -> Event:
        value = jsoncodec.loads(raw)
        return cls(value["type"], UUID(value["company_id"]), value["data"], value["id"])

    @property
    def conversation_id(self) -> str | None:
        """The conversation the event is about, if any (a `conversation.*`
        event carries the conversation itself, others its id)."""
        found = self.data.get("conversation_id")
        if found is None and self.type.startswith("conversation."):
            found = self.data.get("id")
        return str(found) if found is not None else None


def topics(event: Event) -> tuple[str, ...]:
    """Where an event is published, the conversation's own topic last (see
    RedisEventBus._arrived for why the order matters)."""
    conversation = event.conversation_id
    if event.type in PROCESS_WIDE:
        found = [EVERY_PROCESS]
    elif event.type in CONVERSATION_ONLY and conversation is not None:
        found = []
    else:
        found = [company_topic(event.company_id)]
    if conversation is not None:
        found.append(conversation_topic(conversation))
    return tuple(found)


class RecentIds:
    """The ids of the last `size` events delivered that were published on
    more than one topic: a process following two of them hears it twice."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._ids: OrderedDict[str, None] = OrderedDict()

    def first_time(self, event_id: str) -> bool:
        if event_id in self._ids:
            return False
        self._ids[event_id] = None
        if len(self._ids) > self.size:
            self._ids.popitem(last=False)
        return True


class EventBus:
    """In-process bus; also the local delivery half of the Redis bus."""

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._dispatcher: asyncio.Task | None = None
        self._gap_listeners: list[GapListener] = []
        self.follows: dict[str, int] = {}  # topic -> how many sockets here need it
        self.publish_failures = 0

    def subscribe(self, subscriber: Subscriber) -> None:
        """Deliver to `subscriber` every event that reaches this process: the
        PROCESS_WIDE ones always, the others for the topics it follows (all
        of them in-process)."""
        self._subscribers.append(subscriber)

    def on_gap(self, listener: GapListener) -> None:
        """Call `listener` when this process may have missed events (it lost
        the bus and has it back), so that what it serves can catch up from the
        database. The in-process bus never misses any."""
        self._gap_listeners.append(listener)

    async def _gap(self) -> None:
        for listener in self._gap_listeners:
            try:
                await listener()
            except Exception:
                log.exception('{"event":"gap_listener_failed"}')

    def unsubscribe(self, subscriber: Subscriber) -> None:
        """For subscribers that live shorter than the process (a voice call)."""
        with contextlib.suppress(ValueError):
            self._subscribers.remove(subscriber)

    async def follow(self, topic: str) -> None:
        """One more socket here needs `topic`'s events. Returns once they are
        sure to arrive (the subscription is confirmed), so that a socket
        joining its room after this misses nothing published after this."""
        count = self.follows.get(topic, 0)
        self.follows[topic] = count + 1
        if count == 0:
            await self._listen(topic)

    async def unfollow(self, topic: str) -> None:
        """One socket fewer needs `topic`; the last one stops the subscription."""
        count = self.follows.get(topic, 0)
        if count <= 1:
            self.follows.pop(topic, None)
            if count == 1:
                await self._stop_listening(topic)
        else:
            self.follows[topic] = count - 1

    async def _listen(self, topic: str) -> None:
        """In-process every event is here already."""

    async def _stop_listening(self, topic: str) -> None:
        pass

    async def publish(self, event: Event) -> None:
        # Subscribers get the JSON form in both modes (ids and times as strings),
        # so a subscriber tested in-process behaves the same over Redis.
        self._queue.put_nowait(Event.decode(event.encode()))

    async def start(self) -> None:
        self._dispatcher = asyncio.create_task(self._dispatch(), name="event-dispatch")

    async def stop(self) -> None:
        await self._queue.join()  # what was published is delivered before we go
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._dispatcher

    async def _dispatch(self) -> None:
        while True:
            event = await self._queue.get()
            try:
                # A copy: a subscriber may unsubscribe (a voice call ending) meanwhile.
                for subscriber in tuple(self._subscribers):
                    try:
                        await subscriber(event)
                    except Exception:
                        log.exception('{"event":"subscriber_failed","type":"%s"}', event.type)
            finally:
                self._queue.task_done()


class RedisEventBus(EventBus):
    """Publishes each event to the Redis channels of its topics; each process
    listens to the channels of the topics it follows.

    Sharded pub/sub (SPUBLISH/SSUBSCRIBE, Redis 7) where the server has it: on
    a cluster a channel then lives on the node owning its slot, and a publish
    travels to that node alone instead of to every node. Plain
    PUBLISH/SUBSCRIBE otherwise. Channel names carry their topic as a hash
    tag, so that each company and conversation has a slot of its own.
    """

    # How long follow() waits for Redis to confirm a subscription; after it
    # the socket goes on, and a late confirmation changes nothing but timing.
    CONFIRM_WITHIN = 5.0

    def __init__(self, client: Client, url: str, prefix: str) -> None:
        super().__init__()
        self.client = client
        self.url = url
        self.prefix = prefix
        self.cluster = is_cluster(client)
        self.sharded = True  # decided in start(), from the server's version
        self._listeners: dict[tuple[str, int] | None, Listener] = {}
        self._home: dict[str, Listener] = {}  # channel -> the listener subscribed to it
        self._confirmed: set[str] = set()  # channels whose subscription is live
        self._waiting: dict[str, asyncio.Future] = {}
        self._recent = RecentIds()
        self._started = False

    def channel(self, topic: str) -> str:
        return f"{self.prefix}:ev:{{{topic}}}"

    def topic(self, channel: str) -> str:
        return channel[len(self.prefix) + 5 : -1]

    async def publish(self, event: Event) -> None:
        raw = event.encode()
        channels = [self.channel(topic) for topic in topics(event)]
        try:
            # In order, the conversation's own channel last: a process hearing
            # both lets the broader copy through only while it does not yet
            # follow the conversation (see _arrived). On one Redis a pipeline
            # keeps the order in one round trip; a cluster's channels live on
            # different nodes, so there they go one after the other.
            if len(channels) > 1 and not self.cluster:
                pipe = self.client.pipeline(transaction=False)
                for channel in channels:
                    (pipe.spublish if self.sharded else pipe.publish)(channel, raw)
                await pipe.execute()
            else:
                send = self.client.spublish if self.sharded else self.client.publish
                for channel in channels:
                    await send(channel, raw)
        except (RedisError, OSError):
            # The change itself is stored; only its live delivery is lost.
            # Counted so that it shows in /metrics, not only in the log.
            self.publish_failures += 1
            log.warning('{"event":"event_publish_failed","type":"%s"}', event.type)

    async def start(self) -> None:
        await super().start()
        self.sharded = await self.has_sharded_pubsub()
        self._started = True
        await self.follow(EVERY_PROCESS)

    async def has_sharded_pubsub(self) -> bool:
        # On a cluster, one node's answer: nodes of one cluster run one version.
        info = await self.client.info("server")
        return int(str(info["redis_version"]).split(".")[0]) >= 7

    async def stop(self) -> None:
        for listener in list(self._listeners.values()):
            await listener.stop()
        self._listeners.clear()
        await super().stop()

    # -- following ------------------------------------------------------------

    async def _listen(self, topic: str) -> None:
        channel = self.channel(topic)
        waiting = self._waiting.get(channel)
        if waiting is None or waiting.done():
            waiting = self._waiting[channel] = asyncio.get_running_loop().create_future()
        listener = self._listener_for(channel)
        self._home[channel] = listener
        await listener.add(channel)
        if listener.lost:
            return  # Redis is away: no use holding the socket; it will sync when back
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(waiting), self.CONFIRM_WITHIN)

    async def follow(self, topic: str) -> None:
        await super().follow(topic)
        # A second socket must not run ahead of the first one's subscription.
        channel = self.channel(topic)
        waiting, home = self._waiting.get(channel), self._home.get(channel)
        if waiting is not None and not waiting.done() and not (home and home.lost):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(waiting), self.CONFIRM_WITHIN)

    async def _stop_listening(self, topic: str) -> None:
        channel = self.channel(topic)
        self._confirmed.discard(channel)
        self._waiting.pop(channel, None)
        listener = self._home.pop(channel, None)
        if listener is not None:
            await listener.remove(channel)

    def _listener_for(self, channel: str) -> Listener:
        """The connection to the node that owns the channel's slot (the one
        Redis, when it is not a cluster or pub/sub is not sharded)."""
        node: tuple[str, int] | None = None
        if self.cluster and self.sharded:
            owner = self.client.nodes_manager.get_node_from_slot(self.client.keyslot(channel))
            node = (owner.host, owner.port)
        listener = self._listeners.get(node)
        if listener is None:
            listener = self._listeners[node] = Listener(
                lambda: self._connect(node),
                sharded=self.sharded,
                on_message=self._arrived,
                on_confirmed=self._on_confirmed,
                on_lost=self._on_lost,
                on_back=self._on_back,
            )
            listener.start()
        return listener

    def _connect(self, node: tuple[str, int] | None):
        # Subscribing needs a connection without a read timeout: the shared
        # client's would drop the subscription whenever the channels are quiet.
        options = {
            "socket_connect_timeout": 5,
            "health_check_interval": 30,
            "client_name": f"{self.prefix}:events",  # who is who in CLIENT LIST
            # No retries: redis-py's pub/sub would otherwise reconnect and
            # subscribe again by itself when the connection drops, and what
            # was published meanwhile would be missed without the listener
            # ever hearing of a gap (so no `sync`). Listener reconnects.
            "retry": Retry(NoBackoff(), 0),
        }
        if node is None:
            if self.cluster:  # plain pub/sub on a cluster: any node hears every publish
                first = self.client.get_default_node()
                return node_connection(self.url, first.host, first.port, **options)
            return aioredis.from_url(self.url, **options)
        return node_connection(self.url, node[0], node[1], **options)

    def _on_confirmed(self, channel: str) -> None:
        if channel not in self._home:
            return  # unfollowed meanwhile
        self._confirmed.add(channel)
        waiting = self._waiting.pop(channel, None)
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    async def _on_lost(self, listener: Listener) -> None:
        for channel in listener.channels:
            self._confirmed.discard(channel)
        if not self.cluster:
            return
        # The node may be gone for good (a failover): ask the cluster where
        # each slot lives now, and move the channels whose owner changed.
        with contextlib.suppress(RedisError, OSError):
            await self.client.nodes_manager.initialize()
        for channel in list(listener.channels):
            moved = self._listener_for(channel)
            if moved is not listener:
                await listener.remove(channel)
                self._home[channel] = moved
                await moved.add(channel)
                # Whatever was published before the move is lost for us.
                moved._lost = True

    async def _on_back(self, listener: Listener) -> None:
        # Back after a loss: whatever was published meanwhile did not reach
        # us. Pub/sub keeps nothing for later.
        log.warning('{"event":"event_reader_resubscribed"}')
        await self._gap()

    # -- receiving ------------------------------------------------------------

    def _arrived(self, channel: str, raw: bytes) -> None:
        """Order per conversation: a conversation's events are all published
        on its channel, last. A process that follows the conversation (its
        subscription confirmed) takes them from there alone, in the order
        they were published, and drops the copies from the company's or the
        every-process channel (on a cluster those come over another node's
        connection, and could overtake the conversation's deltas). A process
        that does not follow it takes the broader copy. An event heard on two
        channels (around a follow or an unfollow) is delivered once."""
        event = Event.decode(raw)
        conversation = event.conversation_id
        if conversation is not None:
            own = self.channel(conversation_topic(conversation))
            if channel != own and own in self._confirmed:
                return
            if len(topics(event)) > 1 and not self._recent.first_time(event.id):
                return
        self._queue.put_nowait(event)
