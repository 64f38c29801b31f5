"""The job queue, in-process and on Redis Streams with two consumers."""

from __future__ import annotations

import asyncio
import uuid

import pytest
import redis.asyncio as aioredis

from hub.jobs import InProcessQueue, Job, QueuePolicy, RedisStreamQueue
from hub.scheduler import FairScheduler


def job(key: str, n: int, company: str = "c1", kind: str = "work") -> Job:
    return Job(kind, company, key, {"n": n})


async def test_in_process_orders_per_key_and_runs_keys_concurrently():
    queue = InProcessQueue(QueuePolicy(concurrency=4, per_company=4))
    seen: dict[str, list[int]] = {"a": [], "b": []}
    running = 0
    peak = 0

    async def work(j: Job) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        seen[j.key].append(j.payload["n"])
        running -= 1

    queue.handle("work", work)
    await queue.start()
    for n in range(5):
        await queue.enqueue(job("a", n))
        await queue.enqueue(job("b", n))
    await queue.join()
    await queue.stop()
    assert seen == {"a": [0, 1, 2, 3, 4], "b": [0, 1, 2, 3, 4]}
    assert peak == 2  # one per key, both keys at once


async def test_in_process_company_cap():
    queue = InProcessQueue(QueuePolicy(concurrency=8, per_company=2))
    running, peak = 0, 0

    async def work(j: Job) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.02)
        running -= 1

    queue.handle("work", work)
    await queue.start()
    for n in range(6):
        await queue.enqueue(job(f"k{n}", n))
    await queue.join()
    await queue.stop()
    assert peak == 2


async def test_in_process_retries_then_dead_letters():
    queue = InProcessQueue(QueuePolicy(max_attempts=3, backoff=0.01))
    attempts: list[int] = []
    dead: list[tuple[Job, str]] = []

    async def flaky(j: Job) -> None:
        attempts.append(j.attempt)
        if j.payload["n"] == 1 or j.attempt < 2:
            raise ValueError("model down")

    async def on_dead(j: Job, error: BaseException) -> None:
        dead.append((j, str(error)))

    queue.handle("work", flaky)
    queue.on_dead_letter("work", on_dead)
    await queue.start()
    await queue.enqueue(job("a", 0))
    await queue.join()
    assert attempts == [1, 2] and dead == []
    await queue.enqueue(job("a", 1))
    await queue.join()
    await queue.stop()
    assert attempts[2:] == [1, 2, 3]
    assert [(d.payload["n"], d.attempt, e) for d, e in dead] == [(1, 3, "model down")]
    assert len(queue.dead_letters) == 1


async def test_stop_finishes_what_is_running_and_drops_the_rest():
    queue = InProcessQueue()
    done = []
    started = asyncio.Event()

    async def slow(j: Job) -> None:
        started.set()
        await asyncio.sleep(0.05)
        done.append(j.payload["n"])

    queue.handle("work", slow)
    await queue.start()
    for n in range(3):
        await queue.enqueue(job("a", n))
    await started.wait()
    await queue.stop()
    assert done == [0]
    with pytest.raises(RuntimeError):
        await queue.enqueue(job("a", 9))


async def test_a_retry_never_replaces_the_job_behind_it():
    queue = InProcessQueue(QueuePolicy(backoff=0.001))
    runs: list[tuple[int, int]] = []

    async def work(j: Job) -> None:
        runs.append((j.payload["n"], j.attempt))
        if j.payload["n"] == 0 and j.attempt == 1:
            await asyncio.sleep(0.01)
            raise ValueError("once")
        await asyncio.sleep(0.01)

    queue.handle("work", work)
    await queue.start()
    for n in range(3):
        await queue.enqueue(job("a", n))
    await queue.join()
    await queue.stop()
    assert sorted(runs) == [(0, 1), (0, 2), (1, 1), (2, 1)]


async def redis_queue(
    redis_url: str, prefix: str, policy: QueuePolicy | None = None, **kw
) -> tuple[RedisStreamQueue, aioredis.Redis]:
    client = aioredis.from_url(redis_url)
    return RedisStreamQueue(client, prefix, policy or QueuePolicy(backoff=0.01), **kw), client


async def test_redis_two_workers_share_jobs_one_key_at_a_time(redis_url):
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    # Two slots each: a worker reads no more than it has room for, so the
    # other one gets work too.
    policy = QueuePolicy(concurrency=2, backoff=0.01)
    first, c1 = await redis_queue(redis_url, prefix, policy)
    second, c2 = await redis_queue(redis_url, prefix, policy)
    runs: list[tuple[str, str, int]] = []
    active: set[str] = set()
    overlap = []

    def handler(name: str):
        async def work(j: Job) -> None:
            if j.key in active:
                overlap.append(j.key)
            active.add(j.key)
            await asyncio.sleep(0.02)
            active.discard(j.key)
            runs.append((name, j.key, j.payload["n"]))

        return work

    first.handle("work", handler("first"))
    second.handle("work", handler("second"))
    await first.start()
    await second.start()
    for n in range(6):
        await first.enqueue(job(f"k{n % 2}", n))
    for _ in range(200):
        if len(runs) == 6:
            break
        await asyncio.sleep(0.05)
    await first.stop()
    await second.stop()
    assert sorted(r[2] for r in runs) == list(range(6))
    assert overlap == []
    assert {r[0] for r in runs} == {"first", "second"}  # both consumers took work
    assert not await c1.exists(first.company_stream("c1"))  # everything acknowledged
    await c1.delete(first.bell)
    await c1.aclose()
    await c2.aclose()


async def test_redis_job_of_a_dead_worker_is_run_by_the_other(redis_url):
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    doomed, c1 = await redis_queue(redis_url, prefix, lease_ms=300, reclaim_every=0.1)
    survivor, c2 = await redis_queue(redis_url, prefix, lease_ms=300, reclaim_every=0.1)
    started = asyncio.Event()
    completed: list[str] = []

    async def hang(j: Job) -> None:
        started.set()
        await asyncio.sleep(3600)

    async def finish(j: Job) -> None:
        completed.append(j.id)

    doomed.handle("work", hang)
    survivor.handle("work", finish)
    await doomed.start()
    await doomed.enqueue(job("conv", 1))
    await asyncio.wait_for(started.wait(), 5)
    # The doomed worker dies mid-job: its tasks vanish without acknowledging
    # and without releasing the lock, as a killed process's would.
    for task in [*doomed._loops, *doomed._running]:
        task.cancel()
    await asyncio.sleep(0)
    await survivor.start()
    for _ in range(100):
        if completed:
            break
        await asyncio.sleep(0.05)
    await survivor.stop()
    assert len(completed) == 1
    assert not await c2.exists(survivor.company_stream("c1"))
    await c2.delete(survivor.bell)
    await c1.aclose()
    await c2.aclose()


async def test_redis_retries_then_dead_letter_stream(redis_url):
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    queue, client = await redis_queue(redis_url, prefix)
    attempts = []
    dead = []

    async def broken(j: Job) -> None:
        attempts.append(j.attempt)
        raise RuntimeError("always")

    async def on_dead(j: Job, error: BaseException) -> None:
        dead.append(j.attempt)

    queue.handle("work", broken)
    queue.on_dead_letter("work", on_dead)
    await queue.start()
    await queue.enqueue(job("k", 1))
    for _ in range(100):
        if dead:
            break
        await asyncio.sleep(0.05)
    await queue.stop()
    assert attempts == [1, 2, 3] and dead == [3]
    assert await client.xlen(queue.dead_stream) == 1
    await client.delete(queue.dead_stream, queue.bell)
    await client.aclose()


async def test_redis_queue_survives_losing_its_stream(redis_url):
    """A Redis that restarts empty has no stream and no consumer group: the
    worker makes them again and goes on taking jobs."""
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    queue, client = await redis_queue(redis_url, prefix)
    runs: list[int] = []

    async def work(j: Job) -> None:
        runs.append(j.payload["n"])

    queue.handle("work", work)
    await queue.start()
    await queue.enqueue(job("a", 1))
    for _ in range(100):
        if runs:
            break
        await asyncio.sleep(0.05)
    # What a restart of a Redis that keeps nothing leaves: none of the queue's keys.
    await client.delete(queue.company_stream("c1"), queue.ready, queue.bell)
    await queue.enqueue(job("a", 2))
    for _ in range(100):
        if 2 in runs:
            break
        await asyncio.sleep(0.05)
    await queue.stop()
    await client.delete(queue.company_stream("c1"), queue.ready, queue.bell)
    await client.aclose()
    assert runs == [1, 2]


async def test_redis_job_waiting_for_its_key_is_not_reclaimed_or_dead_lettered(redis_url):
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    first, c1 = await redis_queue(redis_url, prefix, lease_ms=300, reclaim_every=0.05)
    second, c2 = await redis_queue(redis_url, prefix, lease_ms=300, reclaim_every=0.05)
    runs: list[int] = []
    dead: list[int] = []

    async def slow(j: Job) -> None:
        # Far longer than the lease times the deliveries a job may have.
        await asyncio.sleep(2.0 if j.payload["n"] == 1 else 0)
        runs.append(j.payload["n"])

    async def on_dead(j: Job, error: BaseException) -> None:
        dead.append(j.payload["n"])

    for queue in (first, second):
        queue.handle("work", slow)
        queue.on_dead_letter("work", on_dead)
        await queue.start()
    await first.enqueue(job("conv", 1))
    await first.enqueue(job("conv", 2))  # waits for the lock of "conv" meanwhile
    for _ in range(100):
        if len(runs) >= 2:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # time for a duplicate run, if one could happen
    await first.stop()
    await second.stop()
    # Each ran once (either may win the key's lock first: order within a key
    # is the turn's business, see agents_runtime.turns), none was given up on.
    assert sorted(runs) == [1, 2] and dead == []
    await c1.delete(first.bell, first.dead_stream)
    await c1.aclose()
    await c2.aclose()


def test_scheduler_serves_the_company_served_longest_ago_first():
    scheduler: FairScheduler[str] = FairScheduler(slots=2, per_company=2)
    for n in range(5):
        scheduler.add("noisy", f"a{n}", f"a{n}")
    assert [item for *_, item in scheduler.take()] == ["a0", "a1"]
    scheduler.add("quiet", "b0", "b0")
    assert scheduler.take() == []  # no slot: it waits, holding none
    scheduler.done("noisy", "a0")
    # The quiet company was never served: it goes before the noisy one's backlog.
    assert [item for *_, item in scheduler.take()] == ["b0"]
    scheduler.done("noisy", "a1")
    scheduler.done("quiet", "b0")
    assert [item for *_, item in scheduler.take()] == ["a2", "a3"]


def test_scheduler_keeps_keys_exclusive_and_companies_to_their_share():
    scheduler: FairScheduler[str] = FairScheduler(slots=4, per_company=2)
    scheduler.add("c1", "k", "k-1")
    scheduler.add("c1", "k", "k-2")
    scheduler.add("c1", "j", "j-1")
    scheduler.add("c1", "i", "i-1")
    # k-2 waits for k-1 and lets j go first; i waits for c1's share.
    assert [item for *_, item in scheduler.take()] == ["k-1", "j-1"]
    scheduler.done("c1", "k")
    assert [item for *_, item in scheduler.take()] == ["k-2"]
    assert scheduler.running == 2 and scheduler.waiting == 1
    assert scheduler.drain() == ["i-1"] and scheduler.waiting == 0


async def test_in_process_quiet_company_runs_before_a_noisy_backlog_drains():
    """The noisy company's backlog is ten times the process's slots; the
    quiet company's job, queued last, starts as soon as a slot frees."""
    queue = InProcessQueue(QueuePolicy(concurrency=2, per_company=2))
    started: list[str] = []

    async def work(j: Job) -> None:
        started.append(j.company_id)
        await asyncio.sleep(0.01)

    queue.handle("work", work)
    await queue.start()
    for n in range(20):
        await queue.enqueue(job(f"a{n}", n, company="noisy"))
    await asyncio.sleep(0)  # the first two are running
    await queue.enqueue(job("b", 0, company="quiet"))
    await queue.join()
    await queue.stop()
    assert len(started) == 21
    assert started.index("quiet") == 2  # the next to start after the first two


async def test_in_process_a_job_waiting_for_its_company_holds_no_slot():
    queue = InProcessQueue(QueuePolicy(concurrency=2, per_company=1))
    running: set[str] = set()
    together: list[set[str]] = []

    async def work(j: Job) -> None:
        running.add(j.company_id)
        together.append(set(running))
        await asyncio.sleep(0.02)
        running.discard(j.company_id)

    queue.handle("work", work)
    await queue.start()
    for n in range(4):
        await queue.enqueue(job(f"a{n}", n, company="noisy"))
    await queue.enqueue(job("b", 0, company="quiet"))
    await queue.join()
    await queue.stop()
    # noisy's second job waits for noisy's share without taking the free slot.
    assert {"noisy", "quiet"} in together


async def test_redis_quiet_company_runs_before_a_noisy_backlog_drains(redis_url):
    """Two workers of 4 slots; one company queues 60 jobs at once (over 12
    conversations), then another company queues one. The quiet job runs long
    before the backlog drains; keys stay exclusive across the workers, no
    process runs more than its slots, and neither hoards the backlog."""
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    policy = QueuePolicy(concurrency=4, per_company=4, backoff=0.01)
    clients = [aioredis.from_url(redis_url) for _ in range(2)]
    queues = [RedisStreamQueue(c, prefix, policy) for c in clients]
    started: list[str] = []
    active_keys: set[str] = set()
    overlap: list[str] = []
    running = {0: 0, 1: 0}
    peak = {0: 0, 1: 0}
    pending_seen: list[int] = []

    def handler(index: int):
        async def work(j: Job) -> None:
            if j.key in active_keys:
                overlap.append(j.key)
            active_keys.add(j.key)
            running[index] += 1
            peak[index] = max(peak[index], running[index])
            started.append(j.company_id)
            if j.company_id == "noisy":
                # What each worker has read and not acknowledged: what it holds.
                pending = await clients[index].xpending(
                    queues[index].company_stream("noisy"), RedisStreamQueue.GROUP
                )
                pending_seen.extend(c["pending"] for c in pending["consumers"])
            await asyncio.sleep(0.1)
            running[index] -= 1
            active_keys.discard(j.key)

        return work

    for index, queue in enumerate(queues):
        queue.handle("work", handler(index))
        await queue.start()
    for n in range(60):
        await queues[0].enqueue(job(f"a{n % 12}", n, company="noisy"))
    while len(started) < 8:  # noqa: ASYNC110 (both workers are full of the backlog)
        await asyncio.sleep(0.01)
    await queues[1].enqueue(job("b", 0, company="quiet"))
    for _ in range(400):
        if len(started) == 61:
            break
        await asyncio.sleep(0.05)
    for queue in queues:
        await queue.stop()
    try:
        assert len(started) == 61
        # Behind the quiet job, most of the backlog was still to run.
        assert started.index("quiet") < 30, started.index("quiet")
        assert overlap == []
        assert peak[0] <= 4 and peak[1] <= 4 and peak[0] > 0 and peak[1] > 0
        assert max(pending_seen) <= 8  # each holds at most twice its slots' worth
        assert not await clients[0].exists(
            queues[0].company_stream("noisy"), queues[0].company_stream("quiet")
        )  # emptied streams are removed with their last entry
        assert await clients[0].scard(queues[0].ready) == 0
    finally:
        await clients[0].delete(queues[0].bell)
        for client in clients:
            await client.aclose()


async def test_redis_a_job_whose_lease_was_taken_stops_and_is_left_to_the_taker(redis_url):
    """A slow-but-alive worker whose lock was taken over (it stalled past its
    lease) cancels its run and does not acknowledge: the entry is the new
    holder's."""
    prefix = f"t-{uuid.uuid4().hex[:8]}"
    queue, client = await redis_queue(redis_url, prefix, lease_ms=400)
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def slow(j: Job) -> None:
        started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    queue.handle("work", slow)
    await queue.start()
    await queue.enqueue(job("conv", 1))
    await asyncio.wait_for(started.wait(), 5)
    await client.set(queue.lock_prefix + "conv", "another worker's token", px=5000)
    await asyncio.wait_for(cancelled.wait(), 5)
    stream = queue.company_stream("c1")
    assert (await client.xpending(stream, RedisStreamQueue.GROUP))["pending"] == 1
    assert await client.get(queue.lock_prefix + "conv") == b"another worker's token"
    await queue.stop()
    await client.delete(stream, queue.ready, queue.bell, queue.lock_prefix + "conv")
    await client.aclose()
