"""The hub as shipped: `python -m hub serve`, the Procfile's `web`, started
as the README's quick start does, in a subprocess with only the configuration
it is given. The as-shipped tests (tests/shipped.py drives it from outside)
and the voice benchmark run it.

SYNTERA_SHIPPED_ROOT names another checkout of the project to start the
process from (`python -m hub` puts its working directory first on sys.path),
so that the tests can be shown to fail against an older commit."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from bench.cluster import ROOT, Process, free_port, procfile, wait_healthy
from hub.config import configuration_names


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
