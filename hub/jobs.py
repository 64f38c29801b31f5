"""The job queue: one interface, two implementations.

`InProcessQueue` (embedded mode) runs jobs in this process. `RedisStreamQueue`
(scaled mode, REDIS_URL) puts them on a Redis stream read by a consumer group,
so any number of worker processes share the work.

Both give the same guarantees to a handler:
- at-least-once delivery: a job is acknowledged only after its handler
  returned; a job whose process died is delivered again (handlers are
  idempotent: a turn checks whether its reply is already stored);
- jobs with the same `key` (a conversation) never run at the same time, in
  this process or across processes;
- a failing job is retried with backoff, then handed to the dead-letter
  callback;
- at most `per_company` jobs of one company run at once in a process;
- `stop()` stops taking new jobs and lets the running ones finish.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.exceptions import RedisError, ResponseError

from hub import jsoncodec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    kind: str  # which handler runs it, e.g. "turn"
    company_id: str
    key: str  # jobs with one key run one at a time (e.g. a conversation id)
    payload: dict[str, Any]
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    attempt: int = 1

    def encode(self) -> bytes:
        return jsoncodec.dumps(asdict(self))

    @classmethod
    def decode(cls, raw: bytes | str) -> Job:
        return cls(**jsoncodec.loads(raw))


Handler = Callable[[Job], Awaitable[None]]
DeadLetter = Callable[[Job, BaseException], Awaitable[None]]


@dataclass
class QueuePolicy:
    concurrency: int = 64  # jobs running at once in this process (JOB_CONCURRENCY)
    per_company: int = 32  # of which at most this many for one company
    max_attempts: int = 3
    backoff: float = 0.5  # seconds before the second attempt; doubles each time


class JobQueue(Protocol):
    def handle(self, kind: str, handler: Handler) -> None: ...
    def on_dead_letter(self, kind: str, callback: DeadLetter) -> None: ...
    async def enqueue(self, job: Job) -> None: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


async def enqueue_committed(jobs: JobQueue, job: Job, failures: Counter) -> bool:
    """Queue the job of a record that has already committed. The record is the
    acknowledgement and something finds it again if its job is lost (turns:
    `hub.lifecycle.recover_turns`; workflow events: the outbox; workflow runs:
    their lease), so a failure here is logged with its traceback and counted
    (`job_enqueue_failures_total{kind}`), never raised into the request."""
    try:
        await jobs.enqueue(job)
        return True
    except Exception:  # Redis unreachable, the queue stopping
        failures.labels(job.kind).inc()
        log.exception('{"event":"job_enqueue_failed","kind":"%s","key":"%s"}', job.kind, job.key)
        return False


class _Runner:
    """Handler lookup, per-company caps, retries and dead letters: shared by both queues."""

    def __init__(self, policy: QueuePolicy) -> None:
        self.policy = policy
        self._handlers: dict[str, Handler] = {}
        self._dead_letters: dict[str, DeadLetter] = {}
        # The latest jobs given up on, for inspection; bounded.
        self.dead_letters: deque[tuple[Job, str]] = deque(maxlen=1000)
        self._company_slots: dict[str, asyncio.Semaphore] = defaultdict(
            lambda: asyncio.Semaphore(policy.per_company)
        )

    def handle(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    def on_dead_letter(self, kind: str, callback: DeadLetter) -> None:
        self._dead_letters[kind] = callback

    async def run(self, job: Job) -> Job | None:
        """Run a job once. Returns the job to retry, or None when it is done
        (succeeded, or dead-lettered after its last attempt)."""
        handler = self._handlers.get(job.kind)
        if handler is None:
            log.error('{"event":"job_without_handler","kind":"%s"}', job.kind)
            return None
        try:
            async with self._company_slots[job.company_id]:
                await handler(job)
            return None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if job.attempt < self.policy.max_attempts:
                log.warning(
                    '{"event":"job_retry","kind":"%s","attempt":%d,"error":"%s"}',
                    job.kind,
                    job.attempt,
                    type(exc).__name__,
                )
                return replace(job, attempt=job.attempt + 1)
            log.exception('{"event":"job_dead","kind":"%s","id":"%s"}', job.kind, job.id)
            await self.dead(job, exc)
            return None

    async def dead(self, job: Job, error: BaseException) -> None:
        """Record a job that will not be tried again, and tell its owner."""
        self.dead_letters.append((job, repr(error)))
        callback = self._dead_letters.get(job.kind)
        if callback is not None:
            try:
                await callback(job, error)
            except Exception:
                log.exception('{"event":"dead_letter_failed","id":"%s"}', job.id)

    def delay(self, job: Job) -> float:
        return self.policy.backoff * 2 ** (job.attempt - 2)


class InProcessQueue(_Runner):
    def __init__(self, policy: QueuePolicy | None = None) -> None:
        super().__init__(policy or QueuePolicy())
        self._waiting: dict[str, deque[Job]] = {}  # key -> jobs not yet started
        self._ready: asyncio.Queue[str] = asyncio.Queue()  # keys with work and no runner
        self._workers: list[asyncio.Task] = []
        self._retries: set[asyncio.Task] = set()
        self._current: set[str] = set()  # ids of the jobs running now
        self._idle = asyncio.Event()  # set whenever no job is running
        self._idle.set()
        self._accepting = True

    async def enqueue(self, job: Job) -> None:
        if not self._accepting:
            raise RuntimeError("the queue is stopping")
        if job.key in self._waiting:
            self._waiting[job.key].append(job)
        else:
            self._waiting[job.key] = deque([job])
            self._ready.put_nowait(job.key)

    async def start(self) -> None:
        self._workers = [
            asyncio.create_task(self._work(), name=f"job-worker-{i}")
            for i in range(self.policy.concurrency)
        ]

    async def _work(self) -> None:
        while True:
            key = await self._ready.get()
            try:
                # This task owns the key until its jobs run out: one at a time, in order.
                # The key stays in _waiting while a job runs, so that jobs enqueued
                # meanwhile wait for this task instead of starting a second one.
                while self._waiting[key] and self._accepting:
                    job = self._waiting[key].popleft()
                    self._current.add(job.id)
                    self._idle.clear()
                    try:
                        retry = await self.run(job)
                    finally:
                        self._current.discard(job.id)
                        if not self._current:
                            self._idle.set()
                    if retry is not None:
                        self._schedule_retry(retry)
                if not self._waiting[key]:
                    del self._waiting[key]
            finally:
                self._ready.task_done()

    def _schedule_retry(self, job: Job) -> None:
        async def later() -> None:
            await asyncio.sleep(self.delay(job))
            if job.key in self._waiting:
                self._waiting[job.key].appendleft(job)
            else:
                self._waiting[job.key] = deque([job])
                self._ready.put_nowait(job.key)

        task = asyncio.create_task(later())
        self._retries.add(task)
        task.add_done_callback(self._retries.discard)

    async def join(self) -> None:
        """Wait until every enqueued job (and its retries) has finished."""
        while True:
            await self._ready.join()
            if not self._retries:
                return
            await asyncio.gather(*self._retries)

    async def stop(self) -> None:
        """Let the running jobs finish; drop the rest. In-process jobs are not
        durable: what was queued is found again from the database at start-up
        (see hub.conversations.recover_turns)."""
        self._accepting = False
        for task in self._retries:
            task.cancel()
        await self._idle.wait()
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, *self._retries, return_exceptions=True)


class RedisStreamQueue(_Runner):
    """Jobs on a Redis stream, read through one consumer group by every worker."""

    GROUP = "workers"

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        policy: QueuePolicy | None = None,
        *,
        lease_ms: int = 15_000,
        reclaim_every: float = 2.0,
    ) -> None:
        super().__init__(policy or QueuePolicy())
        self.client = client
        self.stream = f"{prefix}:jobs"
        self.dead_stream = f"{prefix}:jobs:dead"  # the dead-letter entries
        self.lock_prefix = f"{prefix}:joblock:"
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.lease_ms = lease_ms
        self.reclaim_every = reclaim_every
        self._slots = asyncio.Semaphore(self.policy.concurrency)
        self._running: set[asyncio.Task] = set()
        self._loops: list[asyncio.Task] = []
        self._consuming = False

    async def enqueue(self, job: Job) -> None:
        await self.client.xadd(self.stream, {"job": job.encode()})

    async def _ensure_group(self) -> None:
        try:
            await self.client.xgroup_create(self.stream, self.GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def start(self) -> None:
        await self._ensure_group()
        self._consuming = True
        self._loops = [
            asyncio.create_task(self._read(), name="jobs-read"),
            asyncio.create_task(self._reclaim(), name="jobs-reclaim"),
        ]

    async def stop(self) -> None:
        self._consuming = False
        for loop in self._loops:
            loop.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)
        # In-flight jobs finish and acknowledge; unread ones stay for other workers.
        await asyncio.gather(*self._running, return_exceptions=True)

    async def _read(self) -> None:
        while self._consuming:
            await self._slots.acquire()
            self._slots.release()
            try:
                batches = await self.client.xreadgroup(
                    self.GROUP, self.consumer, {self.stream: ">"}, count=1, block=1000
                )
            except ResponseError as exc:
                if "NOGROUP" in str(exc):
                    # Redis came back without our stream (a restart of a Redis that
                    # keeps nothing on disk): make it again and go on reading.
                    log.warning('{"event":"jobs_group_recreated"}')
                    with contextlib.suppress(RedisError, OSError):
                        await self._ensure_group()
                else:
                    log.warning('{"event":"jobs_read_failed"}')
                    await asyncio.sleep(1)
                continue
            except (RedisError, OSError):
                log.warning('{"event":"jobs_read_failed"}')
                await asyncio.sleep(1)
                continue
            for _stream, entries in batches or []:
                for entry_id, fields in entries:
                    await self._spawn(entry_id, fields)

    async def _reclaim(self) -> None:
        """Take over jobs whose consumer stopped renewing them (it died)."""
        while self._consuming:
            await asyncio.sleep(self.reclaim_every)
            try:
                _next, entries, *_ = await self.client.xautoclaim(
                    self.stream,
                    self.GROUP,
                    self.consumer,
                    min_idle_time=self.lease_ms,
                    start_id="0-0",
                    count=10,
                )
            except (RedisError, OSError):
                continue
            for entry_id, fields in entries:
                if not fields:  # deleted entries come back empty
                    continue
                if await self._deliveries(entry_id) > self.policy.max_attempts + 1:
                    # It kept killing whoever ran it: do not let it take down the next one.
                    job = Job.decode(fields[b"job"])
                    await self.dead(job, RuntimeError("delivered too many times"))
                    await self.client.xack(self.stream, self.GROUP, entry_id)
                    await self.client.xdel(self.stream, entry_id)
                    continue
                await self._spawn(entry_id, fields)

    async def _deliveries(self, entry_id: bytes) -> int:
        pending = await self.client.xpending_range(
            self.stream, self.GROUP, min=entry_id, max=entry_id, count=1
        )
        return pending[0]["times_delivered"] if pending else 0

    async def dead(self, job: Job, error: BaseException) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.client.xadd(
                self.dead_stream, {"job": job.encode(), "error": repr(error)}, maxlen=10_000
            )
        await super().dead(job, error)

    async def _spawn(self, entry_id: bytes, fields: dict) -> None:
        await self._slots.acquire()
        task = asyncio.create_task(self._process(entry_id, Job.decode(fields[b"job"])))
        self._running.add(task)
        task.add_done_callback(self._running.discard)
        task.add_done_callback(lambda _: self._slots.release())

    async def _process(self, entry_id: bytes, job: Job) -> None:
        lock = self.lock_prefix + job.key
        token = uuid.uuid4().hex
        # Renewed from the start: a job waiting for its key's lock is not
        # abandoned, and must not be reclaimed (and at last dead-lettered) meanwhile.
        finished = asyncio.Event()
        heartbeat = asyncio.create_task(self._renew(entry_id, lock, token, finished))
        try:
            # Another worker runs a job of this key; the lock lives in Redis, so poll it.
            while not await self.client.set(lock, token, nx=True, px=self.lease_ms):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            retry = await self.run(job)
            if retry is not None:
                await asyncio.sleep(self.delay(retry))
                await self.client.xadd(self.stream, {"job": retry.encode()})
            await self.client.xack(self.stream, self.GROUP, entry_id)
            await self.client.xdel(self.stream, entry_id)
        finally:
            finished.set()
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat
            await self._release(lock, token)

    async def _renew(self, entry_id: bytes, lock: str, token: str, finished: asyncio.Event) -> None:
        """While a job waits or runs, keep its entry from being reclaimed and,
        once it holds its key's lock, the lock from expiring. It stops on
        `finished` too: a cancellation that lands inside a Redis call's own
        timeout handling can be lost, and a heartbeat that outlived its job
        would keep the entry from ever being reclaimed."""
        while not finished.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(finished.wait(), self.lease_ms / 3000)
            if finished.is_set():
                return
            with contextlib.suppress(RedisError, OSError):
                if await self.client.get(lock) == token.encode():
                    await self.client.pexpire(lock, self.lease_ms)
                await self.client.xclaim(
                    self.stream, self.GROUP, self.consumer, 0, [entry_id], justid=True
                )

    _RELEASE = (
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"
        " return 0"
    )

    async def _release(self, lock: str, token: str) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.client.eval(self._RELEASE, 1, lock, token)
