"""The job queue: one interface, two implementations.

`InProcessQueue` (embedded mode) runs jobs in this process. `RedisStreamQueue`
(scaled mode, REDIS_URL) puts them on Redis streams, one per company, read
through a consumer group, so any number of worker processes share the work.

Both give the same guarantees to a handler:
- at-least-once delivery: a job is acknowledged only after its handler
  returned; a job whose process died is delivered again (handlers are
  idempotent: a turn checks whether its reply is already stored);
- jobs with the same `key` (a conversation) never run at the same time, in
  this process or across processes;
- a failing job is retried with backoff, then handed to the dead-letter
  callback;
- at most `per_company` jobs of one company run at once in a process, and
  a job that cannot start yet (its company's share is taken, its key is
  busy) waits without holding a slot; when a slot frees, companies take
  turns (hub.scheduler), so one company's backlog does not hold up another's;
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
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

import redis.asyncio as aioredis
from prometheus_client import Counter
from redis.exceptions import RedisError

from hub import jsoncodec
from hub.scheduler import FairScheduler

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
    """Handler lookup, the fair share of slots, retries and dead letters: shared by both queues."""

    def __init__(self, policy: QueuePolicy) -> None:
        self.policy = policy
        self._handlers: dict[str, Handler] = {}
        self._dead_letters: dict[str, DeadLetter] = {}
        # The latest jobs given up on, for inspection; bounded.
        self.dead_letters: deque[tuple[Job, str]] = deque(maxlen=1000)
        # A job waiting for a slot is a future here, not a slot held (hub.scheduler).
        self.scheduler: FairScheduler[asyncio.Future[None]] = FairScheduler(
            policy.concurrency, policy.per_company
        )
        self._open = False  # nothing starts before start(): the handlers are not all known yet

    def handle(self, kind: str, handler: Handler) -> None:
        self._handlers[kind] = handler

    def on_dead_letter(self, kind: str, callback: DeadLetter) -> None:
        self._dead_letters[kind] = callback

    @contextlib.asynccontextmanager
    async def _slot(self, job: Job, *, first: bool = False) -> AsyncIterator[None]:
        """Wait, holding nothing, until the scheduler gives the job a slot; hold it meanwhile."""
        started: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.scheduler.add(job.company_id, job.key, started, first=first)
        self._pump()
        try:
            await started
        except asyncio.CancelledError:
            if started.done() and not started.cancelled():  # given a slot as we were cancelled
                self._finished(job)
            raise
        try:
            yield
        finally:
            self._finished(job)

    def _finished(self, job: Job) -> None:
        self.scheduler.done(job.company_id, job.key)
        self._pump()

    def _pump(self) -> None:
        if not self._open:
            return
        while picked := self.scheduler.take():
            for company, key, started in picked:
                if started.cancelled():  # its task went away while it waited
                    self.scheduler.done(company, key)
                else:
                    started.set_result(None)

    async def run(self, job: Job) -> Job | None:
        """Run a job once (in its slot). Returns the job to retry, or None when
        it is done (succeeded, or dead-lettered after its last attempt)."""
        handler = self._handlers.get(job.kind)
        if handler is None:
            log.error('{"event":"job_without_handler","kind":"%s"}', job.kind)
            return None
        try:
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
        self._tasks: set[asyncio.Task] = set()  # a task per job: waiting, running or backing off
        self._backing_off: set[asyncio.Task] = set()
        self._idle = asyncio.Event()  # set whenever no job is waiting, running or to retry
        self._idle.set()
        self._accepting = True

    async def enqueue(self, job: Job) -> None:
        if not self._accepting:
            raise RuntimeError("the queue is stopping")
        self._spawn(job)

    def _spawn(self, job: Job, *, first: bool = False) -> None:
        task = asyncio.create_task(self._process(job, first))
        self._tasks.add(task)
        self._idle.clear()
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not self._tasks:
            self._idle.set()

    async def _process(self, job: Job, first: bool) -> None:
        async with self._slot(job, first=first):
            retry = await self.run(job)
        if retry is not None:
            me = asyncio.current_task()
            self._backing_off.add(me)
            try:
                await asyncio.sleep(self.delay(retry))
            finally:
                self._backing_off.discard(me)
            # Before the jobs that queued behind it on its key meanwhile.
            self._spawn(retry, first=True)

    async def start(self) -> None:
        self._open = True
        self._pump()

    async def join(self) -> None:
        """Wait until every enqueued job (and its retries) has finished."""
        await self._idle.wait()

    async def stop(self) -> None:
        """Let the running jobs finish; drop the rest. In-process jobs are not
        durable: what was queued is found again from the database at start-up
        (see hub.conversations.recover_turns)."""
        self._accepting = False
        for waiting in self.scheduler.drain():
            waiting.cancel()
        for task in self._backing_off:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@dataclass(eq=False)
class _Held:
    """An entry this consumer read and has not acknowledged: waiting for its
    key's lock or a slot, or running. Its lease is renewed all that time."""

    stream: str
    entry_id: bytes
    job: Job
    lock: str
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    locked: bool = False  # holds its key's lock
    running: bool = False  # holds a slot
    task: asyncio.Task | None = None


class RedisStreamQueue(_Runner):
    """Jobs on Redis streams, one per company, read through one consumer group
    by every worker.

    A stream per company is what lets a worker be fair: it reads from the
    companies it has room for, the one served longest ago first, so a quiet
    company's job is not behind another company's backlog in one line. A
    worker reads no more than it has room for (`concurrency` entries held,
    `per_company` of one company): the rest stays in Redis for the other
    workers. What it holds stays pending in the group, its lease renewed
    while it waits and runs, so if the process dies another worker reclaims
    it once the lease runs out.
    """

    GROUP = "workers"

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: str,
        policy: QueuePolicy | None = None,
        *,
        lease_ms: int = 3_000,
        reclaim_every: float | None = None,
    ) -> None:
        super().__init__(policy or QueuePolicy())
        self.client = client
        # One hash tag for every key the scripts touch together (a company's
        # stream, the ready set, the bell), so that on a Redis Cluster they
        # live in one slot, as the one stream of before did.
        self.stream = f"{{{prefix}:jobs}}"  # the companies' streams are named after it
        self.ready = f"{self.stream}:ready"  # the companies whose stream has entries
        self.bell = f"{self.stream}:bell"  # rung by every enqueue, to wake idle workers
        self.dead_stream = f"{self.stream}:dead"  # the dead-letter entries
        self.lock_prefix = f"{prefix}:joblock:"
        self.consumer = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.lease_ms = lease_ms
        # Renewed four times a lease: a live job loses its lease only if the
        # event loop stalls for three quarters of it (docs/agents.md).
        self.renew_every = lease_ms / 4000
        self.reclaim_every = lease_ms / 6000 if reclaim_every is None else reclaim_every
        self._held: dict[tuple[str, bytes], _Held] = {}
        self._held_by_company: dict[str, int] = defaultdict(int)
        self._locking = 0  # held entries waiting for their key's lock
        self._served: dict[str, int] = {}  # company -> when it was last read from (a counter)
        self._reads = 0
        self._wake = asyncio.Event()  # room, or the bell rang: read
        self._running: set[asyncio.Task] = set()
        self._loops: list[asyncio.Task] = []
        self._heartbeat_task: asyncio.Task | None = None
        self._consuming = False
        self._enqueue = client.register_script(self._ENQUEUE)
        self._ack = client.register_script(self._ACK)
        self._renew_entry = client.register_script(self._RENEW_ENTRY)
        self._renew_lock = client.register_script(self._RENEW_LOCK)

    def company_stream(self, company_id: str) -> str:
        return f"{self.stream}:company:{company_id}"

    # The stream and its group are made with the first entry and deleted with
    # the last, in the same script as the entry, so a company no longer
    # queuing leaves nothing behind, and a Redis that restarted empty needs
    # no repair.
    _ENQUEUE = """
    if redis.call('exists', KEYS[1]) == 0 then
      redis.call('xgroup', 'create', KEYS[1], ARGV[1], '0', 'MKSTREAM')
    end
    redis.call('xadd', KEYS[1], '*', 'job', ARGV[2])
    redis.call('sadd', KEYS[2], ARGV[3])
    redis.call('xadd', KEYS[3], 'MAXLEN', '~', '100', '*', 'c', ARGV[3])
    return 1
    """

    _ACK = """
    redis.call('xack', KEYS[1], ARGV[1], ARGV[2])
    redis.call('xdel', KEYS[1], ARGV[2])
    if redis.call('xlen', KEYS[1]) == 0 then
      redis.call('del', KEYS[1])
      redis.call('srem', KEYS[2], ARGV[3])
    end
    return 1
    """

    async def enqueue(self, job: Job) -> None:
        keys = [self.company_stream(job.company_id), self.ready, self.bell]
        args = [self.GROUP, job.encode(), job.company_id]
        await self._enqueue(keys=keys, args=args, client=self.client)

    async def start(self) -> None:
        self._consuming = True
        self._open = True
        self._wake.set()
        self._heartbeat_task = asyncio.create_task(self._heartbeat(), name="jobs-heartbeat")
        self._loops = [
            asyncio.create_task(self._read(), name="jobs-read"),
            asyncio.create_task(self._listen(), name="jobs-bell"),
            asyncio.create_task(self._reclaim(), name="jobs-reclaim"),
            self._heartbeat_task,
        ]

    async def stop(self) -> None:
        self._consuming = False
        for loop in self._loops:
            if loop is not self._heartbeat_task:
                loop.cancel()
        # What waits for its key or a slot is left pending: another worker
        # reclaims it after the lease. What runs finishes and acknowledges,
        # its lease renewed meanwhile.
        for held in list(self._held.values()):
            if not held.running and held.task is not None:
                held.task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        if self._heartbeat_task is not None:
            self._heartbeat_task.cancel()
        await asyncio.gather(*self._loops, return_exceptions=True)

    async def _listen(self) -> None:
        """Wake the reader when any company's job is queued (the bell stream)."""
        last = "0-0"
        while self._consuming:
            try:
                rung = await self.client.xread({self.bell: last}, count=100, block=1000)
            except (RedisError, OSError):
                await asyncio.sleep(0.5)
                self._wake.set()
                continue
            for _stream, entries in rung or []:
                if entries:
                    last = entries[-1][0]
                    self._wake.set()

    async def _read(self) -> None:
        while self._consuming:
            # Also once a second without a reason: what a lost bell would have said.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), 1.0)
            self._wake.clear()
            try:
                await self._fill()
            except (RedisError, OSError):
                log.warning('{"event":"jobs_read_failed"}')
                await asyncio.sleep(0.5)

    def _shares(self, companies: list[str]) -> list[tuple[str, int]]:
        """How many entries to read from which company.

        A company with nothing held here gets one entry whatever the room:
        the scheduler can only be fair among the jobs it sees, so a quiet
        company's job waits here, for the next free slot, not in Redis
        behind what this process already holds of a noisy one. Then the
        room left — slots not taken by what runs or waits for a slot; an
        entry waiting for its key's lock (its conversation's job runs
        elsewhere) takes none — goes one at a time to the companies below
        their share, served longest ago first. Never more than twice the
        slots in all: what a worker holds, no other worker can run.
        """
        concurrency, per_company = self.policy.concurrency, self.scheduler.per_company
        spare = 2 * concurrency - len(self._held)
        room = min(concurrency - (len(self._held) - self._locking), spare)
        held = self._held_by_company.get
        order = sorted(
            (c for c in companies if held(c, 0) < per_company),
            key=lambda c: self._served.get(c, 0),
        )
        counts = dict.fromkeys(order, 0)
        for company in order:
            if spare > 0 and not held(company, 0):
                counts[company] = 1
                spare -= 1
                room -= 1
        open_ = [c for c in order if held(c, 0) + counts[c] < per_company]
        while room > 0 and open_:
            for company in list(open_):
                if room == 0:
                    break
                counts[company] += 1
                room -= 1
                if held(company, 0) + counts[company] >= per_company:
                    open_.remove(company)
        return [(c, n) for c, n in counts.items() if n]

    async def _fill(self) -> None:
        """Read what this process has room for, fairly across companies."""
        while self._consuming:
            companies = [c.decode() for c in await self.client.smembers(self.ready)]
            for gone in self._served.keys() - set(companies):
                del self._served[gone]
            shares = self._shares(companies)
            if not shares:
                return
            async with self.client.pipeline(transaction=False) as pipe:
                for company, count in shares:
                    stream = self.company_stream(company)
                    pipe.xreadgroup(self.GROUP, self.consumer, {stream: ">"}, count=count)
                results = await pipe.execute(raise_on_error=False)
            read = 0
            for (company, _count), result in zip(shares, results, strict=True):
                self._reads += 1
                self._served[company] = self._reads
                if isinstance(result, Exception):  # NOGROUP: its last entry was just acknowledged
                    continue
                for stream, entries in result or []:
                    for entry_id, fields in entries:
                        self._take(company, stream.decode(), entry_id, fields)
                        read += 1
            if not read:
                return

    def _take(self, company: str, stream: str, entry_id: bytes, fields: dict) -> None:
        if (stream, entry_id) in self._held:
            return
        job = Job.decode(fields[b"job"])
        held = _Held(stream, entry_id, job, self.lock_prefix + job.key)
        self._held[(stream, entry_id)] = held
        self._held_by_company[company] += 1
        held.task = asyncio.create_task(self._process(held))
        self._running.add(held.task)
        held.task.add_done_callback(self._running.discard)

    async def _reclaim(self) -> None:
        """Take over jobs whose consumer stopped renewing them (it died)."""
        while self._consuming:
            await asyncio.sleep(self.reclaim_every)
            try:
                companies = [c.decode() for c in await self.client.smembers(self.ready)]
                if not companies:
                    continue
                async with self.client.pipeline(transaction=False) as pipe:
                    for company in companies:
                        pipe.xautoclaim(
                            self.company_stream(company),
                            self.GROUP,
                            self.consumer,
                            min_idle_time=self.lease_ms,
                            start_id="0-0",
                            count=10,
                        )
                    results = await pipe.execute(raise_on_error=False)
                for company, result in zip(companies, results, strict=True):
                    if isinstance(result, Exception):
                        continue
                    stream = self.company_stream(company)
                    for entry_id, fields in result[1]:
                        if not fields:  # deleted entries come back empty
                            continue
                        if await self._deliveries(stream, entry_id) > self.policy.max_attempts + 1:
                            # It kept killing whoever ran it: do not let it take down the next one.
                            job = Job.decode(fields[b"job"])
                            await self.dead(job, RuntimeError("delivered too many times"))
                            await self._acknowledge(stream, entry_id, company)
                            continue
                        self._take(company, stream, entry_id, fields)
            except (RedisError, OSError):
                continue

    async def _deliveries(self, stream: str, entry_id: bytes) -> int:
        pending = await self.client.xpending_range(
            stream, self.GROUP, min=entry_id, max=entry_id, count=1
        )
        return pending[0]["times_delivered"] if pending else 0

    async def _acknowledge(self, stream: str, entry_id: bytes, company: str) -> None:
        args = [self.GROUP, entry_id, company]
        await self._ack(keys=[stream, self.ready], args=args, client=self.client)

    async def dead(self, job: Job, error: BaseException) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.client.xadd(
                self.dead_stream, {"job": job.encode(), "error": repr(error)}, maxlen=10_000
            )
        await super().dead(job, error)

    async def _process(self, held: _Held) -> None:
        job = held.job
        try:
            # Another worker runs a job of this key; the lock lives in Redis, so
            # poll it. Waiting here holds no slot.
            self._locking += 1
            try:
                while not await self.client.set(held.lock, held.token, nx=True, px=self.lease_ms):  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
            finally:
                self._locking -= 1
            held.locked = True
            async with self._slot(job):
                held.running = True
                retry = await self.run(job)
            if retry is not None:
                await asyncio.sleep(self.delay(retry))
                await self.enqueue(retry)
            await self._acknowledge(held.stream, held.entry_id, job.company_id)
        finally:
            del self._held[(held.stream, held.entry_id)]
            self._held_by_company[job.company_id] -= 1
            if not self._held_by_company[job.company_id]:
                del self._held_by_company[job.company_id]
            if held.locked:
                await self._release(held.lock, held.token)
            self._wake.set()  # room to read

    # 1: renewed; 0: no longer pending (a Redis that restarted empty: the job
    # goes on, nothing to renew); -1: another consumer has claimed it.
    _RENEW_ENTRY = """
    local p = redis.call('xpending', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
    if p[1] == nil then return 0 end
    if p[1][2] ~= ARGV[2] then return -1 end
    redis.call('xclaim', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
    return 1
    """

    # 1: renewed; 0: gone (a Redis that restarted empty, or the job released
    # it since this renewal was sent: not taken again, or the conversation's
    # next job would wait out a lease); -1: another token holds it.
    _RENEW_LOCK = """
    local v = redis.call('get', KEYS[1])
    if v == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) end
    if not v then return 0 end
    return -1
    """

    async def _heartbeat(self) -> None:
        """Renew the lease of every entry this process holds, and the lock of
        its key once taken, in one round trip. A job whose lease another
        worker took (this process stalled past it, and the job was taken
        over) is cancelled: it runs there now."""
        while True:
            await asyncio.sleep(self.renew_every)
            held = list(self._held.values())
            if not held:
                continue
            try:
                async with self.client.pipeline(transaction=False) as pipe:
                    for h in held:
                        await self._renew_entry(
                            keys=[h.stream],
                            args=[self.GROUP, self.consumer, h.entry_id],
                            client=pipe,
                        )
                        if h.locked:
                            await self._renew_lock(
                                keys=[h.lock], args=[h.token, self.lease_ms], client=pipe
                            )
                    results = iter(await pipe.execute(raise_on_error=False))
            except (RedisError, OSError):
                continue
            for h in held:
                lost = next(results) == -1
                if h.locked:
                    lost = next(results) == -1 or lost
                if lost and h.task is not None and not h.task.done():
                    log.warning(
                        '{"event":"job_lease_lost","kind":"%s","id":"%s"}', h.job.kind, h.job.id
                    )
                    h.task.cancel()

    _RELEASE = (
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end"
        " return 0"
    )

    async def _release(self, lock: str, token: str) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self.client.eval(self._RELEASE, 1, lock, token)
