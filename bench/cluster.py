"""A local cluster: `web` and `worker` processes from the Procfile against one
PostgreSQL and one Redis on loopback, with a model endpoint.

    python -m bench.cluster [--webs 2] [--workers 2] [--token-delay 0.02]

starts everything, prints the addresses and a staff login, and stops it all
on Ctrl-C. The load and fault benchmarks (bench/load.py, bench/faults.py)
and their bounded versions in the test suite drive the same `Cluster`.

Each piece is the real thing, started the way an operator would: `release`
runs the migrations, then `web` and `worker` run with DATABASE_URL,
REDIS_URL and a shared JWT_SECRET. PostgreSQL and Redis are private to the
cluster (an embedded PostgreSQL from the `pgserver` package, a
`redis-server` on a free port), so the fault benchmark can stop and restart
them without touching anything else on the machine. The model is
fakes/openai.py's OpenAI-compatible server, streaming at a configurable
token rate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from fakes.openai import FakeOpenAI, Reply
from fakes.serve import served

ROOT = Path(__file__).resolve().parent.parent
ANSWER = (
    "Refunds are issued within fourteen days of the return reaching us, to the original "
    "card, and you will get an email when it is done. Anything else I can help with?"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def procfile() -> dict[str, list[str]]:
    """The Procfile's commands, run with this interpreter."""
    commands = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        if command.strip():
            argv = shlex.split(command.strip())
            if argv[0] == "python":
                argv[0] = sys.executable
            commands[name.strip()] = argv
    return commands


class LocalRedis:
    """A private redis-server (nothing kept on disk) that can be stopped and restarted."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (scripts/test installs it)")
        self.proc = await asyncio.create_subprocess_exec(
            binary,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.directory),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        await wait_for_port(self.port)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    def pids(self) -> list[int]:
        return [self.proc.pid] if self.proc is not None and self.proc.returncode is None else []


def free_cluster_port() -> int:
    """A free port whose cluster bus port (10 000 above) is free and exists."""
    while True:
        port = random.randint(20_000, 50_000)
        with contextlib.suppress(OSError), socket.socket() as a, socket.socket() as b:
            a.bind(("127.0.0.1", port))
            b.bind(("127.0.0.1", port + 10_000))
            return port


class LocalRedisCluster:
    """A private three-node Redis Cluster on loopback (no replicas, nothing
    kept on disk): what a hub pointed at a cluster node must work with.
    `url` names the first node; the hub finds the others."""

    def __init__(self, directory: Path, nodes: int = 3) -> None:
        self.directory = directory / "redis-cluster"
        self.ports = [free_cluster_port() for _ in range(nodes)]
        self.procs: list[asyncio.subprocess.Process] = []

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    @property
    def proc(self) -> asyncio.subprocess.Process | None:
        return self.procs[0] if self.procs else None

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs if p.returncode is None]

    async def start(self) -> None:
        server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if server is None or cli is None:
            raise RuntimeError("redis-server and redis-cli are needed (scripts/test installs them)")
        self.directory.mkdir(parents=True, exist_ok=True)
        for port in self.ports:
            self.procs.append(
                await asyncio.create_subprocess_exec(
                    server,
                    "--port", str(port),
                    "--bind", "127.0.0.1",
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", str(self.directory / f"nodes-{port}.conf"),
                    "--cluster-node-timeout", "2000",
                    "--save", "",
                    "--appendonly", "no",
                    "--dir", str(self.directory),
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
            )  # fmt: skip
        for port in self.ports:
            await wait_for_port(port)
        create = await asyncio.create_subprocess_exec(
            cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
            "--cluster-replicas", "0", "--cluster-yes",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        output, _ = await create.communicate()
        if create.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed: {output.decode()[-2000:]}")
        await self._wait_ok(cli)

    async def _wait_ok(self, cli: str, within: float = 30) -> None:
        """Until every node says cluster_state:ok (slots agreed on everywhere)."""
        deadline = time.monotonic() + within
        while True:
            states = []
            for port in self.ports:
                info = await asyncio.create_subprocess_exec(
                    cli, "-p", str(port), "cluster", "info", stdout=asyncio.subprocess.PIPE
                )
                out, _ = await info.communicate()
                states.append(b"cluster_state:ok" in out)
            if all(states):
                return
            if time.monotonic() > deadline:
                raise TimeoutError("the Redis Cluster did not reach cluster_state:ok")
            await asyncio.sleep(0.2)

    async def stop(self) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        self.procs = []
        shutil.rmtree(self.directory, ignore_errors=True)


class LocalPostgres:
    """A private PostgreSQL (pgserver's binaries) that can be stopped and restarted."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.server = None

    async def start(self) -> None:
        import pgserver

        if self.server is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self.directory.chmod(0o755)  # as root, pgserver's own user runs PostgreSQL
            self.server = await asyncio.to_thread(pgserver.get_server, self.directory, "stop")
        else:
            await asyncio.to_thread(self.server.ensure_postgres_running)

    @property
    def url(self) -> str:
        return self.server.get_uri()

    async def stop(self) -> None:
        from pgserver._commands import pg_ctl

        await asyncio.to_thread(
            pg_ctl,
            ["-w", "-m", "fast", "stop"],
            pgdata=self.server.pgdata,
            user=self.server.system_user,
        )

    def pids(self) -> list[int]:
        """The postmaster and its children (a backend per pooled connection)."""
        if self.server is None:
            return []
        try:
            postmaster = int((Path(self.server.pgdata) / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return []
        return [postmaster, *children_of(postmaster)]

    async def close(self) -> None:
        if self.server is not None:
            with contextlib.suppress(Exception):
                await self.stop()
            self.server = None


def cpu_seconds(pid: int) -> float:
    """User + system CPU a live process has used (Linux /proc), 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_of(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
    return found


async def wait_for_port(port: int, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)


@dataclass
class Process:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    port: int | None = None
    proc: asyncio.subprocess.Process | None = None
    cwd: Path = ROOT  # `python -m` runs the code of the checkout it starts in

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        log = self.log.open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, cwd=self.cwd, env=self.env, stdout=log, stderr=log
        )
        log.close()

    def signal(self, sig: int) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(sig)

    async def stop(self, within: float = 10) -> None:
        """SIGTERM, as a process manager stops it; SIGKILL if it hangs."""
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.terminate()
        try:
            await asyncio.wait_for(self.proc.wait(), within)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    async def kill(self) -> None:
        """SIGKILL: the process dies without cleaning up, as in a crash."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()


async def wait_healthy(web: Process, within: float = 60) -> dict:
    """Until the web process answers /healthz with 200 (it fails if the
    process exits); that answer."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as session:
        while True:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(f"{web.url}/healthz") as response:
                    if response.status == 200:
                        return await response.json()
            if web.proc.returncode is not None:
                raise RuntimeError(f"{web.name} exited: see {web.log}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{web.name} is not healthy: see {web.log}")
            await asyncio.sleep(0.1)


@dataclass
class Cluster:
    webs: int = 2
    workers: int = 2
    token_delay: float = 0.02  # seconds between streamed model chunks
    # Seconds before a dead worker's job is taken over (JOB_LEASE_SECONDS).
    job_lease_seconds: int = 3
    # How often workers look for messages whose turn was never queued.
    turn_recovery_seconds: int = 60
    extra_env: dict[str, str] = field(default_factory=dict)
    answer: str = ANSWER
    # The checkout the processes run (another one shows how an older commit behaves).
    source: Path = ROOT
    # A three-node Redis Cluster instead of one redis-server (REDIS_URL names a node).
    redis_cluster: bool = False

    def __post_init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="syntera-cluster-"))
        self.root.chmod(0o755)
        self.postgres = LocalPostgres(self.root / "pg")
        self.redis = LocalRedisCluster(self.root) if self.redis_cluster else LocalRedis(self.root)
        self.model = FakeOpenAI()
        self._model_served = contextlib.AsyncExitStack()
        self.jwt_secret = secrets.token_urlsafe(48)
        self.web: list[Process] = []
        self.worker: list[Process] = []

    @property
    def web_urls(self) -> list[str]:
        return [p.url for p in self.web]

    def cpu(self) -> dict[str, float]:
        """CPU seconds used so far by each kind of process (for CPU per turn)."""

        def total(pids) -> float:
            return sum(cpu_seconds(pid) for pid in pids)

        return {
            "web": total(p.proc.pid for p in self.web if p.proc is not None),
            "worker": total(p.proc.pid for p in self.worker if p.proc is not None),
            "postgres": total(self.postgres.pids()),
            "redis": total(self.redis.pids()),
            "clients": time.process_time(),  # this process: the visitors, staff and model
        }

    def env(self, **more: str) -> dict[str, str]:
        return {
            **os.environ,
            "DATABASE_URL": self.postgres.url,
            "REDIS_URL": self.redis.url,
            "JWT_SECRET": self.jwt_secret,
            "OPENAI_API_KEY": "sk-cluster",
            "OPENAI_BASE_URL": self.model.base_url,
            "LOG_LEVEL": "WARNING",
            "SYNTERA_DEMO": "0",
            "RATE_LIMIT_PER_HOUR": "10000000",
            "AUTH_RATE_LIMIT_PER_HOUR": "10000000",
            "PUBLIC_KEY_RATE_LIMIT_PER_HOUR": "100000000",
            "PUBLIC_IP_RATE_LIMIT_PER_HOUR": "100000000",
            "SOCKET_MESSAGES_PER_MINUTE": "10000",
            "SOCKET_CONNECTS_PER_MINUTE": "100000",  # every visitor comes from this machine
            "JOB_LEASE_SECONDS": str(self.job_lease_seconds),
            "TURN_RECOVERY_SECONDS": str(self.turn_recovery_seconds),
            **self.extra_env,
            **more,
        }

    async def start(self) -> None:
        await self._model_served.enter_async_context(served(self.model))
        self.model.default = Reply(text=self.answer, chunk_delay=self.token_delay)
        await self.postgres.start()
        await self.redis.start()
        commands = procfile()
        release = await asyncio.create_subprocess_exec(
            *commands["release"], cwd=self.source, env=self.env(), stdout=asyncio.subprocess.DEVNULL
        )
        if await release.wait() != 0:
            raise RuntimeError("release (migrations) failed")
        for i in range(self.webs):
            port = free_port()
            self.web.append(
                Process(
                    f"web.{i + 1}",
                    commands["web"],
                    self.env(PORT=str(port), SYNTERA_DATA_DIR=str(self.root / f"web{i + 1}")),
                    self.root / f"web{i + 1}.log",
                    port,
                    cwd=self.source,
                )
            )
        for i in range(self.workers):
            self.worker.append(
                Process(
                    f"worker.{i + 1}",
                    commands["worker"],
                    self.env(SYNTERA_DATA_DIR=str(self.root / f"worker{i + 1}")),
                    self.root / f"worker{i + 1}.log",
                    cwd=self.source,
                )
            )
        await asyncio.gather(*(p.start() for p in [*self.web, *self.worker]))
        await asyncio.gather(*(wait_healthy(p) for p in self.web))

    async def restart(self, process: Process) -> None:
        await process.start()
        if process in self.web:
            await wait_healthy(process)

    async def stop(self) -> None:
        await asyncio.gather(*(p.stop() for p in [*self.web, *self.worker]))
        await self.redis.stop()
        await self.postgres.close()
        await self._model_served.aclose()
        shutil.rmtree(self.root, ignore_errors=True)

    async def __aenter__(self) -> Cluster:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *_exc) -> None:
        await self.stop()

    def describe(self) -> str:
        lines = [f"PostgreSQL  {self.postgres.url}", f"Redis       {self.redis.url}"]
        lines += [f"model       {self.model.base_url}"]
        lines += [f"{p.name:<11} {p.url}" for p in self.web]
        lines += [f"{p.name:<11} pid {p.proc.pid}" for p in self.worker]
        return "\n".join(lines)


async def main(args: argparse.Namespace) -> None:
    async with Cluster(args.webs, args.workers, args.token_delay) as cluster:
        print(cluster.describe(), flush=True)
        print(f"logs        {cluster.root}/*.log", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--webs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--token-delay", type=float, default=0.02)
    asyncio.run(main(parser.parse_args()))
