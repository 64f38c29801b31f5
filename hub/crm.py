"""Changing CRM records, with the events and notifications that go with it:
the REST routes, the agent's tools and workflows all change contacts and
deals through here."""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

import asyncpg

from hub.db import Database
from hub.errors import ApiError
from hub.events import Event
from hub.notifications import notify
from hub.store import contacts, conversations, deals


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


_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_PHONE = re.compile(r"^\+?[0-9 ()./-]{5,30}$")
CAPTURED = ("email", "phone", "first_name", "last_name", "company_name")


def check_contact(details: dict[str, Any]) -> None:
    """Raises ValueError when an email or phone number is not one."""
    email, phone = details.get("email"), details.get("phone")
    if email and not _EMAIL.match(email):
        raise ValueError(f"{email!r} is not an email address")
    if phone and not _PHONE.match(phone):
        raise ValueError(f"{phone!r} is not a phone number")


async def capture_contact(
    db: Database,
    conn: asyncpg.Connection,
    company_id: UUID,
    details: dict[str, str | None],
    conversation_id: UUID | None = None,
) -> tuple[dict[str, Any], bool]:
    """Find the contact by email or phone, or create it; fill in what the CRM
    did not know (never overwriting what it holds) and link the conversation.
    Returns (contact, created). Raises ValueError on details that are no
    contact (the agent's tool and workflows both capture contacts this way)."""
    check_contact(details)
    if not (details.get("email") or details.get("phone")):
        raise ValueError("an email or a phone number is needed")
    email, phone = details.get("email"), details.get("phone")
    known = {k: v[:200] for k in CAPTURED if (v := details.get(k))}
    existing = await contacts.find(conn, company_id, email=email, phone=phone)
    if existing is None:
        contact, created = await create_contact(db, conn, company_id, known), True
    else:
        missing = {k: v for k, v in known.items() if not existing.get(k)}
        contact = await update_contact(db, conn, company_id, existing["id"], missing)
        created = False
    if conversation_id is not None:
        await conversations.link_contact(conn, conversation_id, contact["id"])
    return contact, created


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
