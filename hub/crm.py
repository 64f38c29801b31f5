"""Changing CRM records, with the events and notifications that go with it:
the REST routes, the agent's tools and workflows all change contacts and
deals through here."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg

from hub.db import Database
from hub.errors import ApiError
from hub.events import Event
from hub.notifications import notify
from hub.store import contacts, deals


def email_taken(email: str | None) -> ApiError:
    return ApiError.conflict("A contact with this email exists", field="email", email=email)


async def create_contact(
    db: Database, conn: asyncpg.Connection, company_id: UUID, fields: dict[str, Any]
) -> dict[str, Any]:
    contact = await contacts.create(conn, company_id, fields)
    if contact is None:
        raise email_taken(fields.get("email"))
    db.publish_after_commit(conn, Event("contact.created", company_id, contact))
    return contact


async def update_contact(
    db: Database,
    conn: asyncpg.Connection,
    company_id: UUID,
    contact_id: UUID,
    changes: dict[str, Any],
) -> dict[str, Any] | None:
    before = await contacts.get(conn, contact_id)
    if before is None:
        return None
    try:
        contact = await contacts.update(conn, contact_id, changes)
    except asyncpg.UniqueViolationError:  # (company, lower(email)) is unique
        raise email_taken(changes.get("email")) from None
    changed = [k for k in changes if before.get(k) != contact.get(k)]
    if changed:
        db.publish_after_commit(
            conn, Event("contact.updated", company_id, {**contact, "changed": changed})
        )
    return contact


async def _deal_changed(
    db: Database, conn: asyncpg.Connection, company_id: UUID, deal: dict, previous: str | None
) -> None:
    if previous is None:
        db.publish_after_commit(conn, Event("deal.created", company_id, deal))
    else:
        db.publish_after_commit(
            conn,
            Event(
                "deal.updated",
                company_id,
                {**deal, "stage_from": previous, "stage_to": deal["stage"]},
            ),
        )
    if deal["stage"] == "closed_won" and previous != "closed_won":
        await notify(
            db,
            conn,
            company_id=company_id,
            type="deal_won",
            title=f"Deal won: {deal['title']}",
            body=f"{deal['value']} {deal['currency']}",
            data={"deal_id": str(deal["id"])},
        )


async def create_deal(
    db: Database, conn: asyncpg.Connection, company_id: UUID, fields: dict[str, Any]
) -> dict[str, Any]:
    deal = await deals.create(conn, company_id, fields)
    await _deal_changed(db, conn, company_id, deal, None)
    return deal


async def update_deal(
    db: Database, conn: asyncpg.Connection, company_id: UUID, deal_id: UUID, changes: dict
) -> dict[str, Any] | None:
    deal, previous = await deals.update(conn, deal_id, changes)
    if deal is not None:
        await _deal_changed(db, conn, company_id, deal, previous)
    return deal
