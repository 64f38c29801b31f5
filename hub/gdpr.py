"""Data-protection requests: a person's export and erasure, a company's
export, and the retention period enforced in the background."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

from hub import jsoncodec
from hub.db import Database
from hub.services import Services
from hub.store import contacts, deals, gdpr

log = logging.getLogger(__name__)


async def export_contact(db: Database, company_id: UUID, contact_id: UUID) -> dict | None:
    async with db.tenant(company_id) as conn:
        contact = await contacts.get(conn, contact_id)
        if contact is None:
            return None
        return {
            "exported_at": datetime.now(UTC),
            "contact": contact,
            "conversations": await gdpr.contact_conversations(conn, contact_id),
            "deals": await deals.for_contact(conn, contact_id),
        }


async def export_company(db: Database, company_id: UUID, batch: int = 1000) -> AsyncIterator[bytes]:
    """The company's data as one JSON document, produced in pieces so that a
    large company never sits in memory whole."""
    yield b'{"company_id":' + jsoncodec.dumps(str(company_id))
    yield b',"exported_at":' + jsoncodec.dumps(datetime.now(UTC))
    for table in gdpr.EXPORTS:
        yield b',"' + table.encode() + b'":['
        after, first = None, True
        while True:
            async with db.tenant(company_id) as conn:
                rows = await gdpr.export_page(conn, table, after, batch)
            for row in rows:
                yield (b"" if first else b",") + jsoncodec.dumps(row)
                first = False
            if len(rows) < batch:
                break
            after = str(rows[-1]["id"])
        yield b"]"
    yield b"}"


async def enforce_retention(services: Services, now: datetime | None = None) -> dict[str, int]:
    """Delete each company's conversations older than its retention period.
    Returns the number deleted per company. Every web process runs it; the
    deletes are idempotent, so two at once do no harm."""
    now = now or datetime.now(UTC)
    deleted: dict[str, int] = {}
    async with services.db.system() as conn:
        policies = await gdpr.companies_with_retention(conn)
    for policy in policies:
        cutoff = now - timedelta(days=policy["days"])
        async with services.db.tenant(policy["id"]) as conn:
            count = await gdpr.delete_older_than(conn, cutoff)
        if count:
            deleted[str(policy["id"])] = count
            log.info('{"event":"retention","company_id":"%s","deleted":%d}', policy["id"], count)
    return deleted


RETENTION_LOOP = "retention"  # its name in /metrics and /healthz


async def run_retention(services: Services, every: float = 3600.0) -> None:
    await services.loops.run(
        RETENTION_LOOP, every, lambda: enforce_retention(services), at_start=True
    )
