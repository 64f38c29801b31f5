from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any
from uuid import UUID

import asyncpg

DOCUMENT = (
    "id, agent_id, title, description, filename, content_type, size, status, error,"
    " notice, chunk_count, created_at, processed_at"
)
LEASE = "interval '5 minutes'"


async def create_document(
    conn: asyncpg.Connection,
    *,
    company_id: UUID,
    agent_id: UUID | None,
    title: str,
    description: str | None,
    filename: str | None,
    content_type: str,
    data: bytes,
) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"""INSERT INTO documents (company_id, agent_id, title, description, filename,
                                   content_type, size, file)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {DOCUMENT}""",
        company_id,
        agent_id,
        title,
        description,
        filename,
        content_type,
        len(data),
        data,
    )
    return dict(row)


async def list_documents(conn: asyncpg.Connection, company_id: UUID) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {DOCUMENT} FROM documents WHERE company_id = $1 ORDER BY created_at DESC",
        company_id,
    )
    return [dict(r) for r in rows]


async def get_document(conn: asyncpg.Connection, document_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {DOCUMENT} FROM documents WHERE id = $1", document_id)
    return dict(row) if row else None


async def chunk_preview(
    conn: asyncpg.Connection, document_id: UUID, limit: int = 20
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT id, position, page, heading, left(content, 300) AS content, token_count
           FROM chunks WHERE document_id = $1 ORDER BY position LIMIT $2""",
        document_id,
        limit,
    )
    return [dict(r) for r in rows]


async def delete_document(conn: asyncpg.Connection, document_id: UUID) -> bool:
    return bool(
        await conn.fetchval("DELETE FROM documents WHERE id = $1 RETURNING true", document_id)
    )


async def requeue(conn: asyncpg.Connection, document_id: UUID) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"""UPDATE documents SET status = 'pending', error = NULL, last_error = NULL, attempts = 0,
                                 lease_until = NULL
            WHERE id = $1 RETURNING {DOCUMENT}""",
        document_id,
    )
    return dict(row) if row else None


async def replace_text(
    conn: asyncpg.Connection, agent_id: UUID, filename: str, data: bytes
) -> list[UUID]:
    """The agent's documents of this file name now hold `data` and wait to
    be processed again, unless they held it already (the demo's knowledge,
    rewritten by an upgrade)."""
    rows = await conn.fetch(
        """UPDATE documents SET file = $3, size = length($3), status = 'pending', error = NULL,
                                last_error = NULL, attempts = 0, lease_until = NULL
           WHERE agent_id = $1 AND filename = $2 AND file IS DISTINCT FROM $3 RETURNING id""",
        agent_id,
        filename,
        data,
    )
    return [r["id"] for r in rows]


async def requeue_other_models(conn: asyncpg.Connection, model: str) -> int:
    """Across tenants (system transaction): documents whose chunks were
    embedded by another model than `model` wait to be processed again.
    Their old chunks stay until then (full text still finds them; vector
    search, which uses only `model`, does not)."""
    status = await conn.execute(
        """UPDATE documents d SET status = 'pending', error = NULL, last_error = NULL,
                                 attempts = 0, lease_until = NULL
           WHERE d.status IN ('processed', 'failed')
             AND EXISTS (SELECT 1 FROM chunks c
                         WHERE c.document_id = d.id AND c.embedding_model <> $1)""",
        model,
    )
    return int(status.split()[-1])


async def claim(conn: asyncpg.Connection) -> dict[str, Any] | None:
    """Across tenants (system transaction): take the oldest document waiting,
    or one whose processor's lease ran out (it died), for processing.
    `attempts` counts this one; `last_error` is why the previous one failed."""
    row = await conn.fetchrow(
        f"""UPDATE documents SET status = 'processing', attempts = attempts + 1,
                                 lease_until = now() + {LEASE}
            WHERE id = (
                SELECT id FROM documents
                WHERE status = 'pending' OR (status = 'processing' AND lease_until < now())
                ORDER BY created_at FOR UPDATE SKIP LOCKED LIMIT 1
            )
            RETURNING id, company_id, agent_id, title, filename, content_type, file, attempts,
                      last_error"""
    )
    return dict(row) if row else None


async def release(conn: asyncpg.Connection, document_id: UUID) -> None:
    """Give back a claimed document whose processing was interrupted (a clean
    shutdown), for the next processor to take at once rather than after its
    lease; the interrupted attempt does not count."""
    await conn.execute(
        """UPDATE documents SET status = 'pending', lease_until = NULL,
                                attempts = greatest(attempts - 1, 0)
           WHERE id = $1 AND status = 'processing'""",
        document_id,
    )


async def retry(conn: asyncpg.Connection, document_id: UUID, error: str) -> None:
    """An attempt failed: the document waits for the next one, at once,
    remembering why (the next failure compares itself with it)."""
    await conn.execute(
        """UPDATE documents SET status = 'pending', lease_until = NULL, last_error = $2
           WHERE id = $1 AND status = 'processing'""",
        document_id,
        error,
    )


async def replace_chunks(
    conn: asyncpg.Connection,
    *,
    company_id: UUID,
    document_id: UUID,
    agent_id: UUID | None,
    model: str,
    chunks: list[tuple[int, int | None, str | None, str, int, list[float]]],
) -> tuple[list[int], list[int]]:
    """(position, page, heading, content, tokens, embedding) rows, replacing the old ones.
    Returns the vector ids (removed, added), for the FAISS caches to follow."""
    removed = [
        r["vector_id"]
        for r in await conn.fetch(
            "DELETE FROM chunks WHERE document_id = $1 RETURNING vector_id", document_id
        )
    ]
    await conn.executemany(
        """INSERT INTO chunks (company_id, document_id, agent_id, position, page, heading,
                               content, token_count, embedding_model, embedding)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)""",
        [(company_id, document_id, agent_id, *c[:5], model, c[5]) for c in chunks],
    )
    return removed, await vector_ids_of(conn, document_id)


async def vector_ids_of(conn: asyncpg.Connection, document_id: UUID) -> list[int]:
    rows = await conn.fetch("SELECT vector_id FROM chunks WHERE document_id = $1", document_id)
    return [r["vector_id"] for r in rows]


async def vectors_by_ids(conn: asyncpg.Connection, ids: list[int]) -> list[asyncpg.Record]:
    """Vectors and full-text lexemes (`tsv` as text) of the chunks just added."""
    return await conn.fetch(
        """SELECT vector_id, agent_id, embedding, tsv::text AS terms FROM chunks
           WHERE vector_id = ANY($1::bigint[])""",
        ids,
    )


async def finish(
    conn: asyncpg.Connection,
    document_id: UUID,
    *,
    chunk_count: int | None,
    error: str | None,
    notice: str | None = None,
) -> None:
    await conn.execute(
        """UPDATE documents
           SET status = CASE WHEN $3::text IS NULL THEN 'processed' ELSE 'failed' END,
                  chunk_count = coalesce($2, 0), error = $3, notice = $4, last_error = $3,
                  lease_until = NULL, processed_at = now()
           WHERE id = $1""",
        document_id,
        chunk_count,
        error,
        notice,
    )


async def vectors(
    conn: asyncpg.Connection, company_id: UUID, model: str, batch: int = 5000
) -> AsyncIterator[list[asyncpg.Record]]:
    """The company's chunks in batches (inside a transaction), so that a
    caller can turn each into arrays before the next arrives: as Python
    lists, 100k vectors would take over a gigabyte. Every chunk brings its
    full-text lexemes (`terms`, the tsvector as text); `embedding` is NULL
    for a chunk of another model than `model` (waiting to be re-embedded:
    keyword search still finds it, vector search does not)."""
    rows: list[asyncpg.Record] = []
    async for row in conn.cursor(
        """SELECT vector_id, agent_id, tsv::text AS terms,
                  CASE WHEN embedding_model = $2 THEN embedding END AS embedding
           FROM chunks WHERE company_id = $1""",
        company_id,
        model,
        prefetch=batch,
    ):
        rows.append(row)
        if len(rows) == batch:
            yield rows
            rows = []
    if rows:
        yield rows


async def chunks_by_vector_ids(conn: asyncpg.Connection, ids: list[int]) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT c.vector_id, c.id AS chunk_id, c.document_id, c.content, c.page, c.heading,
                  d.title, d.filename
           FROM chunks c JOIN documents d ON d.id = c.document_id
           WHERE c.vector_id = ANY($1::bigint[])""",
        ids,
    )
    return [dict(r) for r in rows]


async def query_terms(conn: asyncpg.Connection, query: str) -> str:
    """The query's lexemes as a tsvector's text: PostgreSQL's `english`
    analysis, the same that made the chunks' `tsv`, so both sides agree."""
    return await conn.fetchval("SELECT to_tsvector('english', $1)::text", query)


async def strict_matches(
    conn: asyncpg.Connection, company_id: UUID, query: str, agent_id: UUID | None
) -> list[int]:
    """The chunks that satisfy the query read as a web search, all of it:
    every word, "quoted phrases" as exact sequences, no -excluded word."""
    rows = await conn.fetch(
        """SELECT c.vector_id FROM chunks c
           WHERE c.company_id = $1 AND c.tsv @@ websearch_to_tsquery('english', $2)
             AND ($3::uuid IS NULL OR c.agent_id IS NULL OR c.agent_id = $3)""",
        company_id,
        query,
        agent_id,
    )
    return [r["vector_id"] for r in rows]
