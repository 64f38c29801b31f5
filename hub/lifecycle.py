"""Background upkeep of conversations: ending idle conversations (every web
process), and recovering agent turns that were never queued — in memory when
the process last stopped (embedded mode, at start-up), or lost to a failed
enqueue (workers, periodically)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from hub.conversations import record_failed_turn, turn_job, update_conversation
from hub.jobs import enqueue_committed
from hub.services import Services
from hub.store import conversations, messages

log = logging.getLogger(__name__)

RECOVERY_WINDOW = timedelta(hours=1)  # older unanswered messages are left to people
MAX_TURN_RECOVERIES = 2  # queued again this often and still unanswered: failed


async def end_idle(services: Services, now: datetime | None = None) -> int:
    """End active conversations with no message for `conversation_idle_minutes`.

    Safe with several processes: ending takes the row lock and only the first
    to move a conversation out of `active` publishes `conversation.ended`."""
    now = now or datetime.now(UTC)
    cutoff = now - timedelta(minutes=services.settings.conversation_idle_minutes)
    async with services.db.system() as conn:
        quiet = await conversations.idle(conn, cutoff)
    for row in quiet:
        async with services.db.tenant(row["company_id"]) as conn:
            await update_conversation(
                services.db,
                conn,
                company_id=row["company_id"],
                conversation_id=row["id"],
                fields={"status": "ended"},
                by="idle",
            )
    return len(quiet)


async def recover_turns(services: Services, *, min_age: timedelta = timedelta(0)) -> int:
    """Queue again the turns of recent user messages that no reply answers
    (and that are at least `min_age` old). A duplicate of a turn still queued
    is harmless: turns are idempotent. A turn queued again MAX_TURN_RECOVERIES
    times and still unanswered kept failing where its failure could not be
    recorded (its worker died with it, each time): it is recorded as failed
    now, rather than queued on every start-up or period."""
    now = datetime.now(UTC)
    async with services.db.system() as conn:
        pending = await messages.awaiting_reply(conn, now - RECOVERY_WINDOW, now - min_age)
        again = [row for row in pending if row["turn_recoveries"] < MAX_TURN_RECOVERIES]
        # Counted before it is queued: a turn that kills its worker is counted too.
        await messages.count_recoveries(conn, [row["id"] for row in again])
    for row in pending:
        if row["turn_recoveries"] < MAX_TURN_RECOVERIES:
            job = turn_job(row["company_id"], row["conversation_id"], row)
            await enqueue_committed(services.jobs, job, services.metrics.job_enqueue_failures)
            continue
        log.warning('{"event":"turn_given_up","message_id":"%s"}', row["id"])
        await record_failed_turn(
            services.db,
            company_id=row["company_id"],
            conversation_id=row["conversation_id"],
            message_id=row["id"],
            cause=(
                f"the turn was queued {row['turn_recoveries'] + 1} times and never answered"
                " (whatever ran it stopped before recording a reply or an error)"
            ),
        )
    if pending:
        log.info('{"event":"turns_recovered","count":%d}', len(pending))
    return len(pending)


async def recover_turns_periodically(services: Services, every: float = 60.0) -> None:
    """Workers, scaled out: turns whose enqueue failed after their message was
    stored (Redis briefly down) would otherwise wait for no one. Once per
    period across all workers (a Redis lock), messages unanswered for two
    periods are queued again."""
    assert services.redis is not None, "the in-process queue recovers at start-up"
    lock = f"{services.settings.redis_prefix}:turn-recovery"

    async def once() -> None:
        if await services.redis.set(lock, "1", nx=True, px=int(every * 1000)):
            await recover_turns(services, min_age=timedelta(seconds=2 * every))

    await services.loops.run("turn_recovery", every, once)


async def run_periodically(services: Services, every: float = 60.0) -> None:
    """Every web process: end the conversations that went idle."""
    await services.loops.run("idle_conversations", every, lambda: end_idle(services))
