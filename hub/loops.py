"""Background loops: the one way a process runs periodic upkeep (idle
conversations, retention, turn recovery, workflow timers, document
ingestion).

A loop never swallows a failure and never dies of one: each is logged with its
traceback, counted in `background_failures_total{loop=...}`, and remembered
(last success, last failure and why) for `/healthz`; the loop goes on at its
next period.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter

log = logging.getLogger(__name__)


@dataclass
class LoopState:
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_error: str | None = None

    @property
    def failing(self) -> bool:
        """The latest run failed (a success since clears it)."""
        return self.last_failure_at is not None and (
            self.last_success_at is None or self.last_failure_at > self.last_success_at
        )

    def summary(self) -> str:
        """For /healthz: "ok", "not_run" or "failing: <why>"."""
        if self.failing:
            return f"failing: {self.last_error}"
        return "ok" if self.last_success_at is not None else "not_run"


class Loops:
    def __init__(self, failures: Counter) -> None:
        self.failures = failures  # labelled by loop
        self.states: dict[str, LoopState] = {}

    def state(self, name: str) -> LoopState:
        return self.states.setdefault(name, LoopState())

    async def attempt(self, name: str, work: Callable[[], Awaitable[Any]]) -> Any:
        """Run `work` once and return what it returns; a failure is logged,
        counted and remembered, not raised (None then)."""
        state = self.state(name)
        try:
            result = await work()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            state.last_failure_at = datetime.now(UTC)
            state.last_error = f"{type(exc).__name__}: {exc}"[:300]
            self.failures.labels(name).inc()
            log.exception('{"event":"background_failure","loop":"%s"}', name)
            return None
        state.last_success_at = datetime.now(UTC)
        return result

    async def run(
        self,
        name: str,
        every: float,
        work: Callable[[], Awaitable[Any]],
        *,
        at_start: bool = False,
    ) -> None:
        """Forever: `work` every `every` seconds (first at once with `at_start`)."""
        if not at_start:
            await asyncio.sleep(every)
        while True:
            await self.attempt(name, work)
            await asyncio.sleep(every)
