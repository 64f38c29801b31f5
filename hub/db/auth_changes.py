"""Hears PostgreSQL's notices of changes to what a staff token's check reads
(migration 0016: a row of `users` inserted, updated or deleted, a company
deleted) and drops the token checks they affect from this process's cache.

Why PostgreSQL and not the event bus: the trigger sees every writer — the
hub's routes and an operator's psql alike (deleting a user or a company is
done in the database; no route does it) —, the notice leaves at commit and
reaches every process connected to the database in both modes, Redis or
not, and it is handled as it arrives rather than behind a queue of other
events. One connection per process, kept for listening only.

When that connection is lost the cache is emptied and keeps nothing until
the process listens again: what changed meanwhile was not heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from uuid import UUID

import asyncpg

from hub import jsoncodec
from hub.tokencache import TokenCache

log = logging.getLogger(__name__)

CHANNEL = "syntera_auth_changed"
RETRY_SECONDS = 1.0


class AuthChanges:
    def __init__(self, url: str, cache: TokenCache) -> None:
        self.url = url
        self.cache = cache
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Listen now if the database answers (it has just served migrations),
        and from then on keep listening, reconnecting after a loss."""
        with contextlib.suppress(*_CONNECT_ERRORS):
            await self._listen()
        self._task = asyncio.create_task(self._keep_listening(), name="auth-changes")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.cache.listening = False
        if self._conn is not None and not self._conn.is_closed():
            self._conn.remove_termination_listener(self._terminated)  # not a loss
            await self._conn.close()

    async def _listen(self) -> None:
        conn = await asyncpg.connect(self.url, timeout=5)
        try:
            await conn.add_listener(CHANNEL, self._heard)
        except BaseException:
            conn.terminate()
            raise
        conn.add_termination_listener(self._terminated)
        self._conn = conn
        self._lost.clear()
        # Anything may have changed while nobody listened.
        self.cache.clear()
        self.cache.listening = True

    async def _keep_listening(self) -> None:
        while True:
            if self._conn is not None and not self._conn.is_closed():
                await self._lost.wait()
            self.cache.listening = False
            self.cache.clear()
            try:
                await self._listen()
                log.info('{"event":"auth_changes_listening"}')
            except _CONNECT_ERRORS:
                await asyncio.sleep(RETRY_SECONDS)

    def _terminated(self, _conn: asyncpg.Connection) -> None:
        # Stop serving from the cache at once, before the reconnecting task runs.
        self.cache.listening = False
        self.cache.clear()
        log.warning('{"event":"auth_changes_lost"}')
        self._lost.set()

    def _heard(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        try:
            change = jsoncodec.loads(payload)
            if change.get("all"):
                self.cache.clear()
                return
            user_ids = [UUID(u) for u in change.get("user_ids") or () if u]
            company = change.get("company_id")
            self.cache.forget(user_ids, UUID(company) if company else None)
        except (ValueError, TypeError, AttributeError):
            log.exception('{"event":"auth_change_unreadable"}')
            self.cache.clear()


_CONNECT_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)
