"""Phone numbers routed to an agent (LiveKit SIP). A number belongs to one
company: the unique index spans tenants."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from hub.db.database import savepoint

COLUMNS = (
    "id, company_id, agent_id, phone_number, sip_trunk_id, sip_dispatch_rule_id, "
    "created_at, updated_at"
)


async def claim(
    conn: asyncpg.Connection, company_id: UUID, agent_id: UUID, phone_number: str
) -> dict[str, Any] | None:
    """The company's row for the number, locked, pointed at `agent_id`; a new
    row if the number is free. None when another company has it."""
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM voice_numbers WHERE phone_number = $1 FOR UPDATE", phone_number
    )
    if row is not None:
        return dict(row)
    try:
        async with savepoint(conn):  # a savepoint: the violation must not end the caller's
            row = await conn.fetchrow(
                f"""INSERT INTO voice_numbers (company_id, agent_id, phone_number)
                    VALUES ($1, $2, $3) RETURNING {COLUMNS}""",
                company_id,
                agent_id,
                phone_number,
            )
    except asyncpg.UniqueViolationError:
        return None  # invisible to this tenant, yet taken: another company's number
    return dict(row)


async def set_route(
    conn: asyncpg.Connection,
    number_id: UUID,
    *,
    agent_id: UUID,
    sip_trunk_id: str | None,
    sip_dispatch_rule_id: str | None,
) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"""UPDATE voice_numbers SET agent_id = $2, sip_trunk_id = $3, sip_dispatch_rule_id = $4,
                updated_at = now()
            WHERE id = $1 RETURNING {COLUMNS}""",
        number_id,
        agent_id,
        sip_trunk_id,
        sip_dispatch_rule_id,
    )
    return dict(row)


async def find(conn: asyncpg.Connection, phone_number: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {COLUMNS} FROM voice_numbers WHERE phone_number = $1", phone_number
    )
    return dict(row) if row else None
