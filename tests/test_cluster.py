"""The bounded versions of bench/load and bench/faults: real `web` and
`worker` processes from the Procfile, on a private PostgreSQL and Redis, under
load and while pieces fail. Each ends with the ledger: every acknowledged
message stored exactly once and answered exactly once."""

from __future__ import annotations

import asyncio
import re
import sys

import pytest

from bench import fairness, faults, load
from bench.cluster import Cluster
from bench.shipped import source_root, tracebacks
from fakes.voice_line import Line, espeak, silence, transcribe
from tests.helpers import wait_for
from tests.shipped import Api, marked

SESSIONS = 6


@pytest.fixture(scope="module")
async def cluster():
    async with Cluster(
        job_lease_seconds=3, turn_recovery_seconds=2, source=source_root()
    ) as running:
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


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
async def test_a_voice_call_on_a_web_process(cluster):
    """Scaled mode as the Procfile runs it: a voice call over the WebSocket
    lands on a `web` process, which runs the session itself (docs/voice.md);
    the caller (espeak-ng) is answered aloud by the cluster's model, and the
    call is stored. Before the faults below, so every process is as it started."""
    web = cluster.web[-1]
    api = Api(web.url)
    try:
        staff = await api.signup()
        # The cluster has a model key, which would make speech OpenAI's: offline here.
        agent = await api.create_agent(
            staff, name="Voice", voice_settings={"stt": "offline", "tts": "offline"}
        )
        key = await api.publishable_key(staff, agent["id"])
        started = await api.start_conversation(key, agent["id"], channel="voice")
        ws = await api.ws(f"/public/voice/ws?token={started['token']}")
        ready = await ws.receive_json(timeout=60)
        assert ready == {"type": "ready", "conversation_id": started["id"]}, ready
        line = Line(ws, 16_000)
        try:
            line.say(silence(0.5, 16_000) + espeak("Can I get a refund?", 16_000))
            stored = await api.reply_stored(staff, started["id"], line)
            user, reply = stored[0], next(m for m in stored if m["reply_to"])
            assert user["sender_type"] == "user" and user["content"].strip(), stored
            assert reply["sender_type"] == "agent" and reply["reply_to"] == user["id"]
            assert reply["content"] == cluster.answer, reply  # all of it was played
            await wait_for(lambda: marked(line, transcript=True), within=30)
            assert {t["role"] for t in line.of_type("transcript")} == {"user", "agent"}
            await line.send_json({"type": "stop"})
            await asyncio.wait_for(line.closed.wait(), 30)
            assert line.close_code == 1000
        finally:
            await line.close()
        ended = await api.ended(staff, started["id"])
        assert ended["metadata"]["call_end_reason"] == "hung_up", ended
    except BaseException:
        print(
            f"--- {web.name} ---\n{web.log.read_text(errors='replace')[-20_000:]}", file=sys.stderr
        )
        raise
    finally:
        await api.close()
    # Spoken: the audio says the answer's words (heard once the line is closed).
    said = set(re.findall(r"[a-z]+", transcribe(bytes(line.audio), 16_000)))
    assert len(said & set(re.findall(r"[a-z]+", cluster.answer.lower()))) >= 3, said
    # Every process started cleanly and is still up: `python -m agents_runtime`
    # (the worker) too, which answers the chat turns in this mode.
    for process in [*cluster.web, *cluster.worker]:
        log = process.log.read_text(errors="replace")
        assert process.proc.returncode is None and not tracebacks(log), (process.name, log)


@pytest.mark.parametrize("fault", list(faults.FAULTS))
async def test_fault(cluster, fault):
    result = await faults.FAULTS[fault](cluster, SESSIONS)
    assert result["ok"], explain(result)


async def test_a_quiet_company_is_answered_while_another_floods_the_workers():
    """bench/fairness in a bounded form, on its own cluster: workers of two
    slots each, one company sends 40 messages at once, then another company's
    visitors chat. Their turns are answered while most of the flood is still
    waiting, not after it drains."""
    async with Cluster(extra_env={"JOB_CONCURRENCY": "2"}, source=source_root()) as cluster:
        result = await fairness.run(cluster, flood=40, quiet=2, turns=1)
    assert not result["errors"], result
    assert result["under_flood"]["count"] == 2 and result["flood_turns"] == 40, result
    assert result["flood_left_when_quiet_done"] >= 10, result
