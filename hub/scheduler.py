"""Which waiting job starts next: the job queues' fair share across companies.

A job that cannot start yet — its company already runs its share
(`per_company`), or its key (a conversation) is running — waits here and
holds none of the process's slots. When a slot frees, the companies with a
job that could start are served in turn, the one served longest ago first,
so a quiet company's job starts next however deep another company's
backlog is (a company that had nothing to do counts as never served).
Within a company jobs start in arrival order, except that a
job whose key is busy lets the company's next key go first.

Pure bookkeeping, no I/O and no awaiting: `hub.jobs` calls `take()` when
something was added or finished and starts what it returns. Both queues use
it, in-process and over Redis.
"""

from __future__ import annotations

from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class FairScheduler(Generic[T]):
    def __init__(self, slots: int, per_company: int) -> None:
        self.slots = slots
        self.per_company = min(per_company, slots)
        # company -> key -> items waiting, both in order of arrival
        self._waiting: dict[str, dict[str, deque[T]]] = {}
        # company -> when one of its jobs last started (a counter), kept while
        # it has jobs: one that comes back after a quiet spell goes first.
        self._served: dict[str, int] = {}
        self._starts = 0
        self._running_by_company: dict[str, int] = {}
        self._busy_keys: set[str] = set()
        self.running = 0
        self.waiting = 0

    def add(self, company: str, key: str, item: T, *, first: bool = False) -> None:
        """Queue an item; `first` puts it before the other items of its key (a retry)."""
        keys = self._waiting.setdefault(company, {})
        items = keys.setdefault(key, deque())
        if first:
            items.appendleft(item)
        else:
            items.append(item)
        self.waiting += 1

    def take(self) -> list[tuple[str, str, T]]:
        """The items that start now, as (company, key, item). Each holds a slot,
        a share of its company and its key until `done(company, key)`."""
        started = []
        while self.running < self.slots:
            found = self._next()
            if found is None:
                break
            company, key = found
            keys = self._waiting[company]
            item = keys[key].popleft()
            if not keys[key]:
                del keys[key]
            if not keys:
                del self._waiting[company]
            self._starts += 1
            self._served[company] = self._starts
            self.waiting -= 1
            self.running += 1
            self._running_by_company[company] = self._running_by_company.get(company, 0) + 1
            self._busy_keys.add(key)
            started.append((company, key, item))
        return started

    def _next(self) -> tuple[str, str] | None:
        """The first free key of the company served longest ago among those
        with room and a job whose key is free."""
        best: tuple[str, str] | None = None
        best_served = 0
        for company, keys in self._waiting.items():
            if self._running_by_company.get(company, 0) >= self.per_company:
                continue
            served = self._served.get(company, 0)
            if best is not None and served >= best_served:
                continue
            key = next((k for k in keys if k not in self._busy_keys), None)
            if key is not None:
                best, best_served = (company, key), served
        return best

    def done(self, company: str, key: str) -> None:
        self.running -= 1
        self._busy_keys.discard(key)
        left = self._running_by_company[company] - 1
        if left:
            self._running_by_company[company] = left
        else:
            del self._running_by_company[company]
            if company not in self._waiting:
                self._served.pop(company, None)

    def running_for(self, company: str) -> int:
        return self._running_by_company.get(company, 0)

    def drain(self) -> list[T]:
        """Forget every waiting item (the queue is stopping); what was waiting."""
        items = [item for keys in self._waiting.values() for q in keys.values() for item in q]
        self._waiting.clear()
        self._served = {c: n for c, n in self._served.items() if c in self._running_by_company}
        self.waiting = 0
        return items
