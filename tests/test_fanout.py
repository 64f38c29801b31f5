"""Fan-out by topic (hub/events.py): where each event is published, what a
process hears for what it follows, and the dashboard's conversation:watch.
Against a real Redis; the three-node cluster is in tests/test_redis_cluster.py."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from hub import redis_client
from hub.events import (
    EVERY_PROCESS,
    Event,
    RedisEventBus,
    company_topic,
    conversation_topic,
    topics,
)
from hub.services import SERVICES
from tests.helpers import signup, wait_for
from tests.test_realtime import clients, hub, visitor_setup  # noqa: F401 (fixtures)

COMPANY, OTHER = uuid.uuid4(), uuid.uuid4()
CONVERSATION = uuid.uuid4()


def test_each_event_goes_to_the_topics_that_need_it():
    c, conv = company_topic(COMPANY), conversation_topic(CONVERSATION)
    about = {"conversation_id": str(CONVERSATION)}
    assert topics(Event("message.created", COMPANY, about)) == (c, conv)
    for high_volume in ("message.delta", "agent.typing", "visitor.typing"):
        assert topics(Event(high_volume, COMPANY, about)) == (conv,)
    assert topics(Event("conversation.updated", COMPANY, {"id": str(CONVERSATION)})) == (c, conv)
    # Process-wide: every process, and the conversation's own channel for its order.
    assert topics(Event("conversation.ended", COMPANY, {"id": str(CONVERSATION)})) == (
        EVERY_PROCESS,
        conv,
    )
    assert topics(Event("conversation.takeover", COMPANY, about)) == (EVERY_PROCESS, conv)
    for wide in ("key.revoked", "knowledge.changed", "knowledge.queued"):
        assert topics(Event(wide, COMPANY, {})) == (EVERY_PROCESS,)
    assert topics(Event("notification.created", COMPANY, {"user_id": "u"})) == (c,)


class Heard:
    def __init__(self, bus) -> None:
        self.events: list[Event] = []
        bus.subscribe(self.record)

    async def record(self, event: Event) -> None:
        self.events.append(event)

    def ids(self) -> list[str]:
        return [e.id for e in self.events]


@pytest.fixture
async def buses(redis_url):
    """Two processes' buses on one Redis, and a plain client to look at it."""
    prefix = f"fan-{uuid.uuid4().hex[:8]}"
    made = []
    for _ in range(2):
        client = await redis_client.connect(redis_url)
        bus = RedisEventBus(client, redis_url, prefix)
        await bus.start()
        made.append((bus, client))
    probe = aioredis.from_url(redis_url)
    yield made[0][0], made[1][0], probe
    for bus, client in made:
        await bus.stop()
        await client.aclose()
    await probe.aclose()


async def subscribers(probe, bus: RedisEventBus, topic: str) -> int:
    channel = bus.channel(topic)
    counts = await probe.execute_command("PUBSUB", "SHARDNUMSUB", channel)
    return int(counts[1])


async def test_follows_are_counted_and_the_last_unfollow_unsubscribes(buses):
    listener, _, probe = buses
    assert listener.sharded  # Redis 7 here
    topic = company_topic(COMPANY)
    await listener.follow(topic)
    await listener.follow(topic)
    assert await subscribers(probe, listener, topic) == 1  # one subscription for both
    await listener.unfollow(topic)
    assert await subscribers(probe, listener, topic) == 1  # one socket still needs it
    await listener.unfollow(topic)
    await wait_for(lambda: _none(probe, listener, topic))
    await listener.unfollow(topic)  # one too many changes nothing
    assert listener.follows.get(topic) is None


async def _none(probe, bus, topic) -> bool:
    return await subscribers(probe, bus, topic) == 0


async def test_a_process_hears_what_it_follows_and_the_process_wide_events(buses):
    listener, publisher, _ = buses
    heard = Heard(listener)
    await listener.follow(company_topic(COMPANY))
    mine = Event("message.created", COMPANY, {"conversation_id": str(uuid.uuid4())})
    theirs = Event("message.created", OTHER, {"conversation_id": str(uuid.uuid4())})
    delta = Event("message.delta", COMPANY, {"conversation_id": str(CONVERSATION), "delta": "x"})
    wide = Event("key.revoked", OTHER, {"key_id": "k"})
    for event in (theirs, delta, mine, wide):
        await publisher.publish(event)
    await wait_for(lambda: _has(heard, wide.id))
    # Another company's news and a delta of a conversation nobody here opened stay away.
    assert heard.ids() == [mine.id, wide.id]


async def _has(heard: Heard, event_id: str) -> bool:
    return event_id in heard.ids()


async def test_a_conversation_followed_twice_over_is_heard_once_and_in_order(buses):
    """Followed through its company (a dashboard) and itself (a widget): the
    message heard on both channels is delivered once, after its deltas."""
    listener, publisher, _ = buses
    heard = Heard(listener)
    await listener.follow(company_topic(COMPANY))
    await listener.follow(conversation_topic(CONVERSATION))
    about = {"conversation_id": str(CONVERSATION)}
    published = [Event("message.delta", COMPANY, {**about, "index": i}) for i in range(20)]
    published.append(Event("message.created", COMPANY, {**about, "sender_type": "agent"}))
    published.append(Event("conversation.ended", COMPANY, {"id": str(CONVERSATION)}))
    for event in published:
        await publisher.publish(event)
    await wait_for(lambda: _has(heard, published[-1].id))
    await asyncio.sleep(0.2)  # a duplicate would have arrived by now
    assert heard.ids() == [e.id for e in published]

    # Unfollowed: the conversation's news come by the company's channel again, once.
    await listener.unfollow(conversation_topic(CONVERSATION))
    later = Event("message.created", COMPANY, {**about, "sender_type": "user"})
    await publisher.publish(later)
    await wait_for(lambda: _has(heard, later.id))
    await asyncio.sleep(0.2)
    assert heard.ids().count(later.id) == 1


async def test_the_in_process_bus_still_delivers_everything(make_client):
    embedded = await make_client()
    bus = embedded.app[SERVICES].events
    heard = Heard(bus)
    event = Event("message.delta", COMPANY, {"conversation_id": str(CONVERSATION)})
    await bus.publish(event)
    await wait_for(lambda: _has(heard, event.id))


async def test_dashboards_get_the_stream_of_the_conversations_they_opened(hub, clients):  # noqa: F811
    account, _, _, started = await visitor_setup(hub)
    watching, elsewhere = clients("/dashboard"), clients("/dashboard")
    await watching.connect(hub, account.token)
    await elsewhere.connect(hub, account.token)
    outsider = clients("/dashboard")
    await outsider.connect(hub, (await signup(hub)).token)
    visitor = clients()
    await visitor.connect(hub, started["token"])

    opened = await watching.call("conversation:watch", {"conversation_id": started["id"]})
    assert opened == {"ok": True, "conversation_id": started["id"]}
    # Another company's conversation, a bad payload: the standard errors.
    refused = await outsider.call("conversation:watch", {"conversation_id": started["id"]})
    assert refused["ok"] is False and refused["code"] == "NOT_FOUND", refused
    bad = await watching.call("conversation:watch", {"conversation_id": "nope"})
    assert bad["ok"] is False and bad["code"] == "VALIDATION_ERROR", bad
    assert "conversation_id" in bad["details"]["fields"], bad
    extra = await watching.call("conversation:unwatch", {"conversation_id": started["id"], "x": 1})
    assert extra["ok"] is False and extra["code"] == "VALIDATION_ERROR", extra

    await visitor.call("message:send", {"content": "Stream it"})
    await visitor.wait_for("message:done")
    await watching.wait_for("message:new", lambda m: m["sender_type"] == "agent")
    await elsewhere.wait_for("message:new", lambda m: m["sender_type"] == "agent")
    assert watching.events["message:delta"], dict(watching.events)
    assert watching.events["agent:typing"]
    assert not elsewhere.events["message:delta"] and not elsewhere.events["agent:typing"]
    assert not outsider.events["message:new"]

    # Closed: no more of its stream.
    closed = await watching.call("conversation:unwatch", {"conversation_id": started["id"]})
    assert closed == {"ok": True, "conversation_id": started["id"]}
    again = await watching.call("conversation:unwatch", {"conversation_id": started["id"]})
    assert again["ok"] is False and again["code"] == "NOT_FOUND", again  # not watched now
    deltas = len(watching.events["message:delta"])
    await visitor.call("message:send", {"content": "Again"})
    await watching.wait_for("message:new", lambda m: m["sender_type"] == "agent" and m["seq"] > 2)
    assert len(watching.events["message:delta"]) == deltas
