from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

COLUMNS = (
    "id, company_id, name, description, system_prompt, model, temperature, max_tokens,"
    " enabled, voice_settings, tools, avatar_url, greeting, theme, created_at, updated_at"
)
# The columns a client may set; update() builds its SET clause from these names only.
WRITABLE = (
    "name",
    "description",
    "system_prompt",
    "model",
    "temperature",
    "max_tokens",
    "enabled",
    "voice_settings",
    "tools",
    "avatar_url",
    "greeting",
    "theme",
)


async def create(conn: asyncpg.Connection, company_id: UUID, fields: dict[str, Any]) -> dict:
    names = [name for name in WRITABLE if name in fields]
    placeholders = ", ".join(f"${i}" for i in range(2, len(names) + 2))
    row = await conn.fetchrow(
        f"""INSERT INTO agents (company_id, {", ".join(names)})
            VALUES ($1, {placeholders}) RETURNING {COLUMNS}""",
        company_id,
        *(fields[name] for name in names),
    )
    return dict(row)


async def list_all(conn: asyncpg.Connection, company_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {COLUMNS} FROM agents WHERE company_id = $1 ORDER BY created_at, id",
        company_id,
    )
    return [dict(r) for r in rows]


async def get(conn: asyncpg.Connection, agent_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM agents WHERE id = $1", agent_id)
    return dict(row) if row else None


async def get_enabled(conn: asyncpg.Connection, agent_id: UUID) -> dict[str, Any] | None:
    """The agent if it may take calls and visitors now; a disabled one is not found."""
    row = await conn.fetchrow(f"SELECT {COLUMNS} FROM agents WHERE id = $1 AND enabled", agent_id)
    return dict(row) if row else None


async def update(
    conn: asyncpg.Connection, agent_id: UUID, fields: dict[str, Any]
) -> dict[str, Any] | None:
    names = [name for name in WRITABLE if name in fields]
    if not names:
        return await get(conn, agent_id)
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
    row = await conn.fetchrow(
        f"""UPDATE agents SET {assignments}, updated_at = now()
            WHERE id = $1 RETURNING {COLUMNS}""",
        agent_id,
        *(fields[name] for name in names),
    )
    return dict(row) if row else None


async def delete(conn: asyncpg.Connection, agent_id: UUID) -> bool:
    return await conn.fetchval("DELETE FROM agents WHERE id = $1 RETURNING true", agent_id) or False


async def public_profile(conn: asyncpg.Connection, agent_id: UUID) -> dict[str, Any] | None:
    """What a visitor may see of an agent: never its prompt or settings."""
    row = await conn.fetchrow(
        "SELECT id, name, avatar_url, greeting, theme FROM agents WHERE id = $1 AND enabled",
        agent_id,
    )
    return dict(row) if row else None
