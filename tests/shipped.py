"""The hub as shipped, driven from outside: a `python -m hub serve` started
as the README's quick start does, and the clients a customer, a visitor, a
phone carrier or a member of staff would be — HTTP, WebSocket and Socket.IO
against a URL. Nothing here imports the hub's app: what runs is the process.

SYNTERA_SHIPPED_ROOT names another checkout of the project to start the
process from (`python -m hub` puts its working directory first on sys.path),
so that these tests can be shown to fail against an older commit."""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import ClientWebSocketResponse

from bench.cluster import Process, procfile, wait_healthy
from hub.config import Settings
from tests.helpers import free_port, wait_for

ROOT = Path(__file__).resolve().parent.parent


def configuration_names() -> set[str]:
    """Every variable hub/config.py reads: Settings.from_env, given an empty
    environment that notes each name it is asked for. The process gets only
    those a test gives it."""
    asked: set[str] = set()

    class Noting(dict):
        def get(self, name, default=None):
            asked.add(name)
            return default

    Settings.from_env(Noting())
    return asked


POLICY = (
    "Our refund policy: customers may return any product within thirty days "
    "of delivery for a full refund.\n"
)


def source_root() -> Path:
    """Where the processes are started from: this checkout, or SYNTERA_SHIPPED_ROOT."""
    return Path(os.environ.get("SYNTERA_SHIPPED_ROOT") or ROOT)


def clean_env(**extra: str) -> dict[str, str]:
    configuration = configuration_names()
    env = {k: v for k, v in os.environ.items() if k not in configuration}
    env.update(extra)
    return env


class Served:
    """`python -m hub serve`, the Procfile's `web`, in a subprocess, its
    output in a log file."""

    def __init__(self, directory: Path, **env: str) -> None:
        # As root, pgserver runs PostgreSQL as its own unprivileged user, which
        # must be able to reach the data directory inside this one.
        directory.chmod(0o755)
        port = free_port()
        self.data_dir = directory / "var"
        self.log_path = directory / "serve.log"
        self.process = Process(
            "web",
            procfile()["web"],
            clean_env(SYNTERA_DATA_DIR=str(self.data_dir), PORT=str(port), **env),
            self.log_path,
            port,
            cwd=source_root(),
        )

    @property
    def port(self) -> int:
        return self.process.port

    @property
    def url(self) -> str:
        return self.process.url

    @property
    def proc(self) -> asyncio.subprocess.Process | None:
        return self.process.proc

    async def start(self) -> None:
        await self.process.start()

    async def wait_healthy(self, within: float = 180) -> dict:
        """/healthz's answer once it is 200; fails with the log if serve exits or never is."""
        try:
            return await wait_healthy(self.process, within)
        except (RuntimeError, TimeoutError) as exc:
            raise AssertionError(f"{exc}:\n{self.log()}") from None

    async def stop(self) -> int | None:
        """SIGTERM, as a process manager stops it (the embedded PostgreSQL
        goes with it); SIGKILL if it hangs."""
        if self.proc is None:
            return None
        await self.process.stop(within=60)
        return self.proc.returncode

    def log(self, since: int = 0, lines: int = 300) -> str:
        """The process's output from byte `since`, its last `lines` lines,
        without the access log's successful requests."""
        try:
            with self.log_path.open("rb") as f:
                f.seek(since)
                text = f.read().decode(errors="replace")
        except OSError:
            return ""
        kept = [line for line in text.splitlines() if not _succeeded(line)]
        return "\n".join(kept[-lines:])

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return 0


def _succeeded(line: str) -> bool:
    if not line.startswith('{"event":"request"'):
        return False
    try:
        return json.loads(line)["status"] < 400
    except (ValueError, KeyError, TypeError):
        return False


def tracebacks(log: str) -> list[str]:
    """The Python tracebacks in a process's log (plain or inside JSON lines)."""
    return [line for line in log.splitlines() if "Traceback (most recent call last)" in line]


# -- REST ---------------------------------------------------------------------------


@dataclass
class Staff:
    token: str
    company_id: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


class Api:
    """JSON over HTTP to a running hub."""

    def __init__(self, base: str) -> None:
        self.base = base.rstrip("/")
        self.session = aiohttp.ClientSession()

    async def close(self) -> None:
        await self.session.close()

    async def request(
        self, method: str, path: str, *, expect: int | tuple[int, ...] = 200, **kwargs
    ) -> Any:
        async with self.session.request(method, self.base + path, **kwargs) as response:
            text = await response.text()
            expected = (expect,) if isinstance(expect, int) else expect
            assert response.status in expected, (method, path, response.status, text)
            if response.content_type == "application/json":
                return json.loads(text)
            return text

    async def signup(self, company: str = "Acme") -> Staff:
        body = await self.request(
            "POST",
            "/api/auth/signup",
            json={
                "email": f"owner-{uuid.uuid4().hex[:10]}@example.com",
                "password": "correct horse battery",
                "company_name": company,
            },
            expect=201,
        )
        return Staff(body["access_token"], body["company"]["id"])

    async def login(self, email: str, password: str) -> Staff:
        body = await self.request(
            "POST", "/api/auth/login", json={"email": email, "password": password}
        )
        return Staff(body["access_token"], body["company"]["id"])

    async def create_agent(self, staff: Staff, **fields) -> dict:
        return await self.request(
            "POST", "/api/agents", json=fields, headers=staff.headers, expect=201
        )

    async def add_document(
        self, staff: Staff, agent_id: str, text: str, filename: str, within: float = 120
    ) -> dict:
        """Upload a knowledge document and wait until it is processed."""
        form = aiohttp.FormData()
        form.add_field("file", text.encode(), filename=filename)
        form.add_field("agent_id", agent_id)
        uploaded = await self.request(
            "POST", "/api/knowledge-base/upload", data=form, headers=staff.headers, expect=201
        )

        async def done():
            document = await self.request(
                "GET", f"/api/knowledge-base/{uploaded['id']}", headers=staff.headers
            )
            return document if document["status"] in ("processed", "failed") else None

        document = await wait_for(done, within=within, every=0.3)
        assert document["status"] == "processed", document
        return document

    async def publishable_key(self, staff: Staff, agent_id: str, origins=("*",)) -> str:
        key = await self.request(
            "POST",
            f"/api/agents/{agent_id}/keys",
            json={"allowed_origins": list(origins)},
            headers=staff.headers,
            expect=201,
        )
        return key["key"]

    async def start_conversation(
        self, key: str, agent_id: str, channel: str = "chat", origin: str | None = None
    ) -> dict:
        headers = {"Authorization": f"Bearer {key}"}
        if origin:
            headers["Origin"] = origin
        return await self.request(
            "POST",
            "/public/conversations",
            json={"agent_id": agent_id, "channel": channel},
            headers=headers,
            expect=201,
        )

    async def conversation(self, staff: Staff, conversation_id: str) -> dict:
        return await self.request(
            "GET", f"/api/conversations/{conversation_id}", headers=staff.headers
        )

    async def conversations(self, staff: Staff, **query: str) -> list[dict]:
        body = await self.request(
            "GET", "/api/conversations", params={"limit": "50", **query}, headers=staff.headers
        )
        return body["conversations"]

    async def messages(self, staff: Staff, conversation_id: str) -> list[dict]:
        body = await self.request(
            "GET",
            f"/api/conversations/{conversation_id}/messages",
            params={"limit": "200"},
            headers=staff.headers,
        )
        return body["messages"]

    async def reply_stored(
        self, staff: Staff, conversation_id: str, line=None, within: float = 120
    ) -> list[dict]:
        """Wait for an agent message answering the caller; all the conversation's
        messages then. With the call's `line` (tests/voice_line.Line), a call
        that ends first fails at once, with how it ended."""

        async def replied():
            if line is not None and line.closed.is_set():
                raise AssertionError(
                    f"the call ended: {line.close_code} {line.close_reason} {line.frames}"
                )
            stored = await self.messages(staff, conversation_id)
            return stored if any(m["reply_to"] for m in stored) else None

        return await wait_for(replied, within=within)

    async def ended(self, staff: Staff, conversation_id: str, within: float = 30) -> dict:
        async def status():
            found = await self.conversation(staff, conversation_id)
            return found if found["status"] == "ended" else None

        return await wait_for(status, within=within)

    async def ws(self, path: str, **kwargs) -> ClientWebSocketResponse:
        url = path if "://" in path else self.base.replace("http", "ws", 1) + path
        return await self.session.ws_connect(url, **kwargs)


async def marked(line, transcript: bool = False) -> bool:
    """A call's line (tests/voice_line.Line): the agent's speech ended with a
    mark, which the line echoed, and (browser transport) its transcript came."""
    roles = {t.get("role") for t in line.of_type("transcript")}
    return bool(line.marks) and (not transcript or "agent" in roles)
