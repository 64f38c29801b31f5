"""Model usage outside agent replies (rolling summaries), for cost analytics."""

from __future__ import annotations

from uuid import UUID

import asyncpg


async def record(
    conn: asyncpg.Connection,
    *,
    company_id: UUID,
    agent_id: UUID | None,
    conversation_id: UUID | None,
    purpose: str,
    model: str,
    prompt_tokens: int,
    completion_tokens: int,
) -> None:
    await conn.execute(
        """INSERT INTO model_usage (company_id, agent_id, conversation_id, purpose, model,
                                    prompt_tokens, completion_tokens)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        company_id,
        agent_id,
        conversation_id,
        purpose,
        model,
        prompt_tokens,
        completion_tokens,
    )
