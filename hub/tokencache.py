"""Recent staff-token checks, kept a few seconds so that a dashboard's burst
of requests pays for one check, not one each.

A check (`Core.authenticate`) verifies the token's signature and holds its
claims against the users and companies tables: a database transaction of its
own on every request, the larger part of a simple GET's cost. What it found
is kept here, by token, for TTL seconds at most (never past the token's own
expiry), and dropped at once when what it read changes: PostgreSQL tells
every process of each change to `users` or `companies` as it commits
(migration 0016, `hub.db.auth_changes`), whoever made it — a route of the
hub, or an operator deleting a user in psql. While a process is not hearing
those notices (its listening connection lost), it keeps nothing, so the TTL
only bounds what a notice lost in flight could leave behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from uuid import UUID

from hub.auth import Identity, Principal

TTL_SECONDS = 5.0
MAX_ENTRIES = 10_000


class TokenCache:
    def __init__(
        self,
        ttl: float = TTL_SECONDS,
        size: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ttl = ttl
        self.size = size
        self.clock = clock
        # token -> (principal, the token's subject, valid until): in insertion
        # order, so the oldest is first to go when full.
        self._entries: dict[str, tuple[Principal, UUID, float]] = {}
        # Bumped by every change heard: a check that read the tables before a
        # change and finishes after it must not store what it read.
        self.generation = 0
        self.listening = False  # set by whoever hears the changes (hub.db.auth_changes)

    def get(self, token: str) -> Principal | None:
        entry = self._entries.get(token)
        if entry is None:
            return None
        if self.clock() >= entry[2]:
            del self._entries[token]
            return None
        return entry[0]

    def put(self, token: str, identity: Identity, principal: Principal, generation: int) -> None:
        """Keep `principal`, checked from `identity` by a check that began at
        `generation`, unless a change was heard since or none can be heard."""
        if not self.listening or generation != self.generation or self.ttl <= 0:
            return
        until = self.clock() + self.ttl
        if identity.expires_at is not None:
            until = min(until, identity.expires_at)
        if len(self._entries) >= self.size:
            self._entries.pop(next(iter(self._entries)))
        self._entries[token] = (principal, identity.subject, until)

    def forget(self, user_ids: Iterable[UUID] = (), company_id: UUID | None = None) -> None:
        """Drop every check that involved one of these users (by id or linked
        sub) or this company. Changes are rare; a scan of a bounded dict is
        cheaper than keeping indexes up to date on every request."""
        self.generation += 1
        users = set(user_ids)
        self._entries = {
            token: entry
            for token, entry in self._entries.items()
            if entry[1] not in users
            and entry[0].user_id not in users
            and entry[0].company_id != company_id
        }

    def clear(self) -> None:
        self.generation += 1
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
