"""The bounded versions of bench/load and bench/faults: real `web` and
`worker` processes from the Procfile, on a private PostgreSQL and Redis, under
load and while pieces fail. Each ends with the ledger: every acknowledged
message stored exactly once and answered exactly once."""

from __future__ import annotations

import pytest

from bench import faults, load
from bench.cluster import Cluster

SESSIONS = 6


@pytest.fixture(scope="module")
async def cluster():
    async with Cluster(job_lease_seconds=3, turn_recovery_seconds=2) as running:
        yield running


def explain(result: dict) -> str:
    keys = ("ledger", "errors", "seq_gaps", "reconnects", *faults.EXTRA)
    return str({k: result[k] for k in keys if k in result})


async def test_load_on_two_web_and_two_worker_processes(cluster):
    result = await load.run(
        cluster, sessions=SESSIONS, messages=2, duration=30, rest_rps=10, think=(0.2, 0.6)
    )
    assert result["turns"] == SESSIONS * 2, explain(result)
    assert faults.ledger_ok(result), explain(result)
    # With nothing failing, the dashboards saw every message live.
    assert result["ledger"]["caught_up_not_live"] == 0, explain(result)
    assert result["seq_gaps"] == 0 and not result["errors"], explain(result)
    for operation in ("ws:ack", "ws:first_token", "ws:reply_done", "rest:list_conversations"):
        assert result["latency"][operation]["count"] > 0, operation


@pytest.mark.parametrize("fault", list(faults.FAULTS))
async def test_fault(cluster, fault):
    result = await faults.FAULTS[fault](cluster, SESSIONS)
    assert result["ok"], explain(result)
