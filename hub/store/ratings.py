from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg


async def upsert(
    conn: asyncpg.Connection,
    *,
    company_id: UUID,
    conversation_id: UUID,
    rating: int,
    comment: str | None,
) -> dict[str, Any]:
    """One rating per conversation; rating again replaces it."""
    row = await conn.fetchrow(
        """INSERT INTO conversation_ratings (company_id, conversation_id, rating, comment)
           VALUES ($1, $2, $3, $4)
           ON CONFLICT (conversation_id)
           DO UPDATE SET rating = excluded.rating, comment = excluded.comment,
                         created_at = now()
           RETURNING conversation_id, rating, comment, created_at""",
        company_id,
        conversation_id,
        rating,
        comment,
    )
    return dict(row)
