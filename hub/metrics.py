"""Prometheus metrics, one registry per app so that several apps in one
process (tests, benchmarks) never share or clash."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rate_limit_backend_errors = Counter(
            "rate_limit_backend_errors_total",
            "Rate-limit checks that could not reach Redis and failed open",
            registry=self.registry,
        )
        self.retrieval_skipped = Counter(
            "retrieval_skipped_total",
            "Turns that went on without knowledge-base passages: the search ran over budget",
            ["channel"],
            registry=self.registry,
        )
        self.job_enqueue_failures = Counter(
            "job_enqueue_failures_total",
            "Jobs of committed records that could not be queued (recovered later), by kind",
            ["kind"],
            registry=self.registry,
        )
        self.background_failures = Counter(
            "background_failures_total",
            "Runs of a background loop that failed (logged with their traceback), by loop",
            ["loop"],
            registry=self.registry,
        )

        self.loop_lag = Histogram(
            "event_loop_lag_seconds",
            "How late the event loop ran a timer (every 0.1 s): time every socket waited",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    async def watch_event_loop(self, every: float = 0.1) -> None:
        """Forever: how late a sleep of `every` wakes up. Anything that holds
        the loop (or the GIL) delays every call's audio by as much."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(every)
            self.loop_lag.observe(max(0.0, loop.time() - started - every))

    def watch_event_bus(self, bus) -> None:
        gauge = Gauge(
            "event_publish_failures_total",
            "Domain events that could not be published to the bus (live delivery lost)",
            registry=self.registry,
        )
        gauge.set_function(lambda: bus.publish_failures)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
