from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg

_COLUMNS = """id, company_id, email, role, invited_by, created_at, expires_at,
    accepted_at, user_id,
    CASE WHEN accepted_at IS NOT NULL THEN 'accepted'
         WHEN expires_at <= now() THEN 'expired'
         ELSE 'pending' END AS status"""


async def create(
    conn: asyncpg.Connection,
    *,
    company_id: UUID,
    email: str,
    role: str,
    token_hash: bytes,
    invited_by: UUID,
    expires_at: datetime,
) -> dict[str, Any] | None:
    """Returns None while the address has an open invitation to the company
    (an expired one makes way)."""
    await conn.execute(
        """DELETE FROM invitations
           WHERE company_id = $1 AND lower(email) = lower($2)
             AND accepted_at IS NULL AND expires_at <= now()""",
        company_id,
        email,
    )
    row = await conn.fetchrow(
        f"""INSERT INTO invitations (company_id, email, role, token_hash, invited_by, expires_at)
            VALUES ($1, $2, $3, $4, $5, $6)
            ON CONFLICT DO NOTHING
            RETURNING {_COLUMNS}""",
        company_id,
        email,
        role,
        token_hash,
        invited_by,
        expires_at,
    )
    return dict(row) if row else None


async def list_for_company(conn: asyncpg.Connection, company_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM invitations WHERE company_id = $1 ORDER BY created_at DESC, id",
        company_id,
    )
    return [dict(r) for r in rows]


async def revoke(conn: asyncpg.Connection, invitation_id: UUID) -> str | None:
    """'revoked' (the row is gone), 'accepted' (kept: its user exists), or None."""
    row = await conn.fetchrow(
        """WITH gone AS (DELETE FROM invitations WHERE id = $1 AND accepted_at IS NULL
                         RETURNING id)
           SELECT CASE WHEN EXISTS (SELECT 1 FROM gone) THEN 'revoked'
                       WHEN EXISTS (SELECT 1 FROM invitations WHERE id = $1) THEN 'accepted'
                  END AS outcome""",
        invitation_id,
    )
    return row["outcome"]


async def take_open(conn: asyncpg.Connection, token_hash: bytes) -> dict[str, Any] | None:
    """Across tenants (system transaction): the token is what names the
    company. Locked until the transaction ends, so it is accepted once."""
    row = await conn.fetchrow(
        """SELECT id, company_id, email, role FROM invitations
           WHERE token_hash = $1 AND accepted_at IS NULL AND expires_at > now()
           FOR UPDATE""",
        token_hash,
    )
    return dict(row) if row else None


async def mark_accepted(conn: asyncpg.Connection, invitation_id: UUID, user_id: UUID) -> None:
    await conn.execute(
        "UPDATE invitations SET accepted_at = now(), user_id = $2 WHERE id = $1",
        invitation_id,
        user_id,
    )
