"""Workflows and their executions."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

COLUMNS = (
    "id, company_id, name, description, enabled, trigger_type, trigger_config, nodes, edges,"
    " version, secret, next_run_at, created_at, updated_at"
)
WRITABLE = (
    "name",
    "description",
    "enabled",
    "trigger_type",
    "trigger_config",
    "nodes",
    "edges",
    "next_run_at",
)
# A change to any of these makes a new version of the workflow.
DEFINITION = ("trigger_type", "trigger_config", "nodes", "edges")

EXECUTION_COLUMNS = (
    "id, workflow_id, workflow_version, status, test, triggered_by, trigger_data, depth,"
    " trace, error, resume_at, execution_time_ms, executed_at, finished_at"
)


async def create(
    conn: asyncpg.Connection, company_id: UUID, fields: dict[str, Any], secret: str
) -> dict[str, Any]:
    names = [n for n in WRITABLE if n in fields]
    placeholders = ", ".join(f"${i}" for i in range(3, len(names) + 3))
    row = await conn.fetchrow(
        f"""INSERT INTO workflows (company_id, secret, {", ".join(names)})
            VALUES ($1, $2, {placeholders}) RETURNING {COLUMNS}""",
        company_id,
        secret,
        *(fields[n] for n in names),
    )
    return dict(row)


async def list_all(conn: asyncpg.Connection, company_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM workflows WHERE company_id = $1 ORDER BY created_at, id",
        company_id,
    )
    return [dict(r) for r in rows]


async def get(conn: asyncpg.Connection, workflow_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM workflows WHERE id = $1", workflow_id)
    return dict(row) if row else None


async def update(
    conn: asyncpg.Connection, workflow_id: UUID, changes: dict[str, Any]
) -> dict[str, Any] | None:
    names = [n for n in WRITABLE if n in changes]
    if not names:
        return await get(conn, workflow_id)
    sets = ", ".join(f"{n} = ${i}" for i, n in enumerate(names, start=2))
    bump = ", version = version + 1" if any(n in DEFINITION for n in names) else ""
    row = await conn.fetchrow(
        f"""UPDATE workflows SET {sets}{bump}, updated_at = now()
            WHERE id = $1 RETURNING {COLUMNS}""",
        workflow_id,
        *(changes[n] for n in names),
    )
    return dict(row) if row else None


async def delete(conn: asyncpg.Connection, workflow_id: UUID) -> bool:
    return bool(
        await conn.fetchval("DELETE FROM workflows WHERE id = $1 RETURNING true", workflow_id)
    )


async def enabled_for(
    conn: asyncpg.Connection, company_id: UUID, trigger_type: str
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""SELECT {COLUMNS} FROM workflows
            WHERE company_id = $1 AND trigger_type = $2 AND enabled
            ORDER BY created_at, id""",
        company_id,
        trigger_type,
    )
    return [dict(r) for r in rows]


# --- executions -------------------------------------------------------------


async def create_execution(
    conn: asyncpg.Connection,
    *,
    company_id: UUID,
    workflow: dict[str, Any],
    triggered_by: str,
    trigger_data: dict[str, Any],
    dedupe_key: str | None,
    depth: int,
    token: str | None,
    lease_seconds: float,
    state: dict[str, Any] | None = None,
    trace: list[dict[str, Any]] | None = None,
    test: bool = False,
    status: str = "running",
    error: str | None = None,
    execution_time_ms: int = 0,
) -> tuple[dict[str, Any], bool]:
    """(execution, created). A dedupe key seen before returns the execution it
    started instead. The new execution is leased to `token`."""
    row = await conn.fetchrow(
        """INSERT INTO workflow_executions
               (company_id, workflow_id, workflow_version, triggered_by, trigger_data,
                dedupe_key, depth, graph, test, status, error, lease_token, lease_until,
                finished_at, state, trace, execution_time_ms)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
                   CASE WHEN $10 = 'running' THEN now() + make_interval(secs => $13) END,
                   CASE WHEN $10 = 'running' THEN NULL ELSE now() END, $14, $15, $16)
           ON CONFLICT (workflow_id, dedupe_key) DO NOTHING
           RETURNING *""",
        company_id,
        workflow["id"],
        workflow["version"],
        triggered_by,
        trigger_data,
        dedupe_key,
        depth,
        {"nodes": workflow["nodes"], "edges": workflow["edges"]},
        test,
        status,
        error,
        token,
        lease_seconds,
        state or {},
        trace or [],
        execution_time_ms,
    )
    if row is not None:
        return dict(row), True
    row = await conn.fetchrow(
        "SELECT * FROM workflow_executions WHERE workflow_id = $1 AND dedupe_key = $2",
        workflow["id"],
        dedupe_key,
    )
    return dict(row), False


async def claim(
    conn: asyncpg.Connection, execution_id: UUID, token: str, runner: str, lease_seconds: float
) -> dict[str, Any] | None:
    """Take a runnable execution for `runner`: the lease is held by `token` (the
    job that carries it, or this runner already) or has expired. The lease
    passes to `runner`, so a second delivery of the same job finds it taken.
    None when the execution is finished, waiting, a test, or someone else's."""
    row = await conn.fetchrow(
        """UPDATE workflow_executions
           SET lease_token = $3, lease_until = now() + make_interval(secs => $4)
           WHERE id = $1 AND status = 'running' AND resume_at IS NULL AND NOT test
             AND (lease_token = $2 OR lease_until IS NULL OR lease_until < now())
           RETURNING *""",
        execution_id,
        token,
        runner,
        lease_seconds,
    )
    return dict(row) if row else None


async def lock_owned(conn: asyncpg.Connection, execution_id: UUID, token: str) -> bool:
    """Lock the execution's row for this transaction, if it is still ours and running."""
    return bool(
        await conn.fetchval(
            """SELECT true FROM workflow_executions
               WHERE id = $1 AND lease_token = $2 AND status = 'running'
               FOR UPDATE""",
            execution_id,
            token,
        )
    )


async def save_progress(
    conn: asyncpg.Connection,
    execution_id: UUID,
    token: str,
    *,
    state: dict[str, Any],
    trace: list[dict[str, Any]],
    active_ms: int,
    lease_seconds: float,
) -> bool:
    """Record the nodes run so far; False when the execution is no longer ours
    (cancelled, or taken over after our lease expired)."""
    return bool(
        await conn.fetchval(
            """UPDATE workflow_executions
               SET state = $3, trace = $4, execution_time_ms = $5,
                   lease_until = now() + make_interval(secs => $6)
               WHERE id = $1 AND lease_token = $2 AND status = 'running'
               RETURNING true""",
            execution_id,
            token,
            state,
            trace,
            active_ms,
            lease_seconds,
        )
    )


async def finish(
    conn: asyncpg.Connection,
    execution_id: UUID,
    token: str,
    *,
    status: str,
    state: dict[str, Any],
    trace: list[dict[str, Any]],
    active_ms: int,
    error: str | None = None,
    resume_at: datetime | None = None,
) -> dict[str, Any] | None:
    """End the execution (success, failed, cancelled), or park it until
    `resume_at` (status stays running, the lease is let go)."""
    row = await conn.fetchrow(
        f"""UPDATE workflow_executions
            SET status = $3, state = $4, trace = $5, execution_time_ms = $6, error = $7,
                resume_at = $8, lease_token = NULL, lease_until = NULL,
                finished_at = CASE WHEN $3 = 'running' THEN NULL ELSE now() END
            WHERE id = $1 AND lease_token = $2 AND status = 'running'
            RETURNING {EXECUTION_COLUMNS}""",
        execution_id,
        token,
        status,
        state,
        trace,
        active_ms,
        error,
        resume_at,
    )
    return dict(row) if row else None


async def cancel(conn: asyncpg.Connection, workflow_id: UUID, execution_id: UUID) -> dict | None:
    row = await conn.fetchrow(
        f"""UPDATE workflow_executions
            SET status = 'cancelled', finished_at = now(), resume_at = NULL,
                lease_token = NULL, lease_until = NULL,
                error = coalesce(error, 'cancelled by staff')
            WHERE id = $1 AND workflow_id = $2 AND status = 'running'
            RETURNING {EXECUTION_COLUMNS}""",
        execution_id,
        workflow_id,
    )
    return dict(row) if row else None


async def get_execution(
    conn: asyncpg.Connection, workflow_id: UUID, execution_id: UUID
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {EXECUTION_COLUMNS} FROM workflow_executions WHERE id = $1 AND workflow_id = $2",
        execution_id,
        workflow_id,
    )
    return dict(row) if row else None


async def executions(
    conn: asyncpg.Connection, workflow_id: UUID, limit: int
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"""SELECT {EXECUTION_COLUMNS} FROM workflow_executions WHERE workflow_id = $1
            ORDER BY executed_at DESC, id DESC LIMIT $2""",
        workflow_id,
        limit,
    )
    return [dict(r) for r in rows]


# --- the outbox of trigger events -------------------------------------------


async def keep_event(
    conn: asyncpg.Connection,
    *,
    company_id: UUID,
    trigger_type: str,
    event_id: str,
    subject: str,
    data: dict[str, Any],
    depth: int,
) -> int | None:
    """Put the event in the outbox if one of the company's enabled workflows
    has this trigger; its id, or None."""
    return await conn.fetchval(
        """INSERT INTO workflow_events (company_id, trigger_type, event_id, subject, data, depth)
           SELECT $1, $2, $3, $4, $5, $6
           WHERE EXISTS (SELECT 1 FROM workflows
                         WHERE company_id = $1 AND trigger_type = $2 AND enabled)
           RETURNING id""",
        company_id,
        trigger_type,
        event_id,
        subject,
        data,
        depth,
    )


async def take_event(conn: asyncpg.Connection, outbox_id: int) -> dict[str, Any] | None:
    """Remove the event from the outbox as this transaction starts its workflows
    (None: someone else took it)."""
    row = await conn.fetchrow("DELETE FROM workflow_events WHERE id = $1 RETURNING *", outbox_id)
    return dict(row) if row else None


# --- timers (system transactions: they span companies) ----------------------


async def events_to_retry(conn: asyncpg.Connection, every_seconds: float) -> list[dict]:
    """Outbox events still there after their job should have taken them: queued
    again (counted in `attempts`, as it was before this one), and not before
    `every_seconds` once more."""
    rows = await conn.fetch(
        """UPDATE workflow_events SET retry_at = now() + make_interval(secs => $1),
                                      attempts = attempts + 1
           WHERE id IN (SELECT id FROM workflow_events WHERE retry_at <= now()
                        ORDER BY retry_at LIMIT 100 FOR UPDATE SKIP LOCKED)
           RETURNING id, company_id, subject, attempts - 1 AS attempts""",
        every_seconds,
    )
    return [dict(r) for r in rows]


async def wake_due(conn: asyncpg.Connection, token: str, lease_seconds: float) -> list[dict]:
    """Executions whose delay is over, leased to `token` for the jobs that resume them."""
    rows = await conn.fetch(
        """UPDATE workflow_executions
           SET resume_at = NULL, lease_token = $1,
               lease_until = now() + make_interval(secs => $2)
           WHERE id IN (SELECT id FROM workflow_executions
                        WHERE status = 'running' AND resume_at <= now() AND NOT test
                        ORDER BY resume_at LIMIT 100 FOR UPDATE SKIP LOCKED)
           RETURNING id, company_id""",
        token,
        lease_seconds,
    )
    return [dict(r) for r in rows]


async def take_stalled(conn: asyncpg.Connection, token: str, lease_seconds: float) -> list[dict]:
    """Running executions whose runner went away (the lease expired): leased
    to `token` so that one job resumes each, and the takeover counted."""
    rows = await conn.fetch(
        """UPDATE workflow_executions
           SET lease_token = $1, lease_until = now() + make_interval(secs => $2),
               takeovers = takeovers + 1
           WHERE id IN (SELECT id FROM workflow_executions
                        WHERE status = 'running' AND resume_at IS NULL
                          AND lease_until < now() AND NOT test
                        LIMIT 100 FOR UPDATE SKIP LOCKED)
           RETURNING id, company_id""",
        token,
        lease_seconds,
    )
    return [dict(r) for r in rows]


async def fail_stalled(conn: asyncpg.Connection, max_takeovers: int) -> list[dict]:
    """Running executions whose runner went away once more after
    `max_takeovers` takeovers: they end `failed`, saying so (after the last
    crash's error, when a runner lived to record one)."""
    rows = await conn.fetch(
        """UPDATE workflow_executions
           SET status = 'failed', finished_at = now(), lease_token = NULL, lease_until = NULL,
               error = format('given up: its run stopped %s times without finishing', takeovers + 1)
                       || coalesce(' (last: ' || error || ')', '')
           WHERE id IN (SELECT id FROM workflow_executions
                        WHERE status = 'running' AND resume_at IS NULL
                          AND lease_until < now() AND NOT test AND takeovers >= $1
                        LIMIT 100 FOR UPDATE SKIP LOCKED)
           RETURNING id, company_id, workflow_id, error""",
        max_takeovers,
    )
    return [dict(r) for r in rows]


async def note_crash(conn: asyncpg.Connection, execution_id: UUID, token: str, error: str) -> bool:
    """A runner that failed outside any node (the engine itself, or the
    database) records why and lets its lease go, for the timer to take over
    (and count) at its next tick; False when the execution is no longer ours."""
    return bool(
        await conn.fetchval(
            """UPDATE workflow_executions SET error = $3, lease_until = now()
               WHERE id = $1 AND lease_token = $2 AND status = 'running'
               RETURNING true""",
            execution_id,
            token,
            error,
        )
    )


async def due_schedules(conn: asyncpg.Connection) -> list[dict[str, Any]]:
    """Scheduled workflows that are due, row-locked until the caller commits
    (another process skips them)."""
    rows = await conn.fetch(
        f"""SELECT {COLUMNS} FROM workflows
            WHERE enabled AND trigger_type = 'schedule' AND next_run_at <= now()
            ORDER BY next_run_at LIMIT 100 FOR UPDATE SKIP LOCKED"""
    )
    return [dict(r) for r in rows]


async def set_next_run(conn: asyncpg.Connection, workflow_id: UUID, at: datetime | None) -> None:
    await conn.execute("UPDATE workflows SET next_run_at = $2 WHERE id = $1", workflow_id, at)
