"""Settings from the environment: the one place that reads environment variables.

Everything else receives a `Settings` object. Tests build one directly with the
values they need instead of patching the environment.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import secrets
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from hub.origins import normalise_origin

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(Exception):
    """Invalid configuration; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    redis_url: str | None = None
    jwt_secret: str = field(default="", repr=False)
    jwt_jwks_url: str | None = None
    jwt_audience: str | None = None
    jwt_issuer: str | None = None
    jwt_ttl_seconds: int = 3600
    # How long a staff token's check is kept (hub/tokencache.py); a change to
    # the users or companies it read drops it at once. 0: every request checks.
    token_cache_seconds: int = 5
    rate_limit_per_hour: int = 1000
    auth_rate_limit_per_hour: int = 60
    public_key_rate_limit_per_hour: int = 20_000
    public_ip_rate_limit_per_hour: int = 1_000
    openai_api_key: str | None = field(default=None, repr=False)
    openai_base_url: str | None = None
    livekit_url: str | None = None
    livekit_api_key: str | None = None
    livekit_api_secret: str | None = field(default=None, repr=False)
    # Voice without LiveKit (the WebSocket audio transport and phone media
    # streams, http_api/routes/voice_sockets.py): sessions run in the web
    # process the socket reaches, so each process caps its own; each company
    # has a cap across processes; a socket that sends no audio this long ends.
    voice_sessions_per_company: int = 10
    # 2: on 2 cores the offline pipeline kept p90 ≤ 1.2 s to first audio at
    # 2 calls in every run, at 4 in one of two (docs/voice.md, "Scaled mode").
    voice_sessions_per_process: int = 2
    voice_idle_seconds: int = 30
    # Twilio: requests to /voice/twilio/incoming must carry a valid
    # X-Twilio-Signature made with it; unset, that webhook answers 503.
    twilio_auth_token: str | None = field(default=None, repr=False)
    # The address the world reaches this hub at (https://hub.example.com):
    # Twilio signs it and the stream URL is built on it. Unset: the request's own.
    public_url: str | None = None
    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("./var")
    log_level: str = "INFO"
    max_body_bytes: int = 1024 * 1024
    max_attachment_bytes: int = 25 * 1024 * 1024
    max_upload_bytes: int = 10 * 1024 * 1024  # a visitor's uploaded file
    # The knowledge base: which embedder (changing it re-embeds every chunk),
    # the largest document, and the memory the FAISS caches may use.
    embedding_provider: str = "local"
    embedding_model: str | None = None
    knowledge_max_upload_bytes: int = 20 * 1024 * 1024
    knowledge_index_budget_mb: int = 512
    socket_messages_per_minute: int = 20  # per widget conversation
    socket_connects_per_minute: int = 60  # Socket.IO connection attempts per IP address
    # Seconds between Socket.IO pings; a long-poll request is held at most this long.
    socket_ping_interval: int = 20
    conversation_idle_minutes: int = 30  # an active conversation this quiet is ended
    # Scaled out: a job whose worker stopped renewing it (it died) is taken
    # over after this; a live worker renews four times a lease (docs/agents.md).
    job_lease_seconds: int = 3
    # Jobs running at once in one process, and of those at most this many for
    # one company. Turns mostly wait on the model (holding no database
    # connection), so a process holds many. A job waiting for its company's
    # share holds no slot; companies take turns for them (hub.scheduler).
    job_concurrency: int = 64
    job_concurrency_per_company: int = 32
    # Workers re-queue turns whose message was stored but never queued this often
    # (a message is taken once it waited two periods).
    turn_recovery_seconds: int = 60
    # Workflow webhooks may call private addresses (loopback, the LAN, cloud
    # metadata): off by default, so a tenant cannot reach the hub's network.
    workflow_webhooks_allow_private: bool = False
    # The demo company, agent and key on first start (hub/demo.py); by default
    # only in the embedded mode, where a newcomer is trying the hub out.
    demo: bool | None = None
    # Load balancers whose X-Forwarded-For is believed (CIDRs). From anyone
    # else the header is ignored: a client could write anything in it.
    trusted_proxies: tuple[Network, ...] = ()
    # Web pages that may call the staff API (/api/...) from their own origin
    # (a dashboard elsewhere): CORS for those origins only, none by default.
    cors_origins: tuple[str, ...] = ()
    # Keys in a shared Redis are prefixed so that several hubs (or test runs)
    # can share one server without seeing each other's counters.
    redis_prefix: str = "syntera"

    def with_overrides(self, **changes) -> Settings:
        return replace(self, **changes)

    @property
    def embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def demo_enabled(self) -> bool:
        return self.embedded_database if self.demo is None else self.demo

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env

        def text(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        def integer(name: str, default: int, low: int, high: int) -> int:
            raw = text(name)
            if raw is None:
                return default
            try:
                value = int(raw)
            except ValueError:
                raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
            if not low <= value <= high:
                raise ConfigError(f"{name} must be between {low} and {high}, got {value}")
            return value

        def url(name: str, schemes: tuple[str, ...]) -> str | None:
            raw = text(name)
            if raw is None:
                return None
            parts = urlsplit(raw)
            if parts.scheme not in schemes:
                raise ConfigError(f"{name} must be a URL starting with {' or '.join(schemes)}")
            return raw

        log_level = (text("LOG_LEVEL") or "INFO").upper()
        if log_level not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}")

        livekit = {
            "LIVEKIT_URL": url("LIVEKIT_URL", ("ws", "wss", "http", "https")),
            "LIVEKIT_API_KEY": text("LIVEKIT_API_KEY"),
            "LIVEKIT_API_SECRET": text("LIVEKIT_API_SECRET"),
        }
        if any(livekit.values()) and not all(livekit.values()):
            missing = next(name for name, value in livekit.items() if not value)
            raise ConfigError(f"{missing} must be set when any LIVEKIT_* variable is set")

        data_dir = Path(text("SYNTERA_DATA_DIR") or "./var")
        provider = (text("EMBEDDING_PROVIDER") or "local").lower()
        if provider not in ("local", "openai"):
            raise ConfigError("EMBEDDING_PROVIDER must be local or openai")
        if provider == "openai" and not text("OPENAI_API_KEY"):
            raise ConfigError("OPENAI_API_KEY must be set when EMBEDDING_PROVIDER is openai")

        def networks(name: str) -> tuple[Network, ...]:
            parts = [p.strip() for p in (text(name) or "").split(",") if p.strip()]
            try:
                return tuple(ipaddress.ip_network(p, strict=False) for p in parts)
            except ValueError:
                raise ConfigError(
                    f"{name} must be comma-separated addresses or CIDRs (e.g. 10.0.0.0/8)"
                ) from None

        def origins(name: str) -> tuple[str, ...]:
            parts = [p.strip() for p in (text(name) or "").split(",") if p.strip()]
            normalised = [normalise_origin(p) for p in parts]
            if None in normalised or "*" in normalised:
                raise ConfigError(
                    f"{name} must be comma-separated origins (e.g. https://dash.example.com)"
                )
            return tuple(dict.fromkeys(normalised))

        demo = text("SYNTERA_DEMO")
        if demo not in (None, "0", "1"):
            raise ConfigError("SYNTERA_DEMO must be 0 or 1")
        private_webhooks = text("WORKFLOW_WEBHOOKS_ALLOW_PRIVATE")
        if private_webhooks not in (None, "0", "1"):
            raise ConfigError("WORKFLOW_WEBHOOKS_ALLOW_PRIVATE must be 0 or 1")
        settings = cls(
            database_url=url("DATABASE_URL", ("postgres", "postgresql")),
            redis_url=url("REDIS_URL", ("redis", "rediss", "unix")),
            jwt_secret=text("JWT_SECRET") or "",
            jwt_jwks_url=url("JWT_JWKS_URL", ("http", "https")),
            jwt_audience=text("JWT_AUDIENCE"),
            jwt_issuer=text("JWT_ISSUER"),
            token_cache_seconds=integer("TOKEN_CACHE_SECONDS", 5, 0, 300),
            rate_limit_per_hour=integer("RATE_LIMIT_PER_HOUR", 1000, 1, 10_000_000),
            auth_rate_limit_per_hour=integer("AUTH_RATE_LIMIT_PER_HOUR", 60, 1, 10_000_000),
            public_key_rate_limit_per_hour=integer(
                "PUBLIC_KEY_RATE_LIMIT_PER_HOUR", 20_000, 1, 100_000_000
            ),
            public_ip_rate_limit_per_hour=integer(
                "PUBLIC_IP_RATE_LIMIT_PER_HOUR", 1_000, 1, 100_000_000
            ),
            openai_api_key=text("OPENAI_API_KEY"),
            openai_base_url=url("OPENAI_BASE_URL", ("http", "https")),
            livekit_url=livekit["LIVEKIT_URL"],
            livekit_api_key=livekit["LIVEKIT_API_KEY"],
            livekit_api_secret=livekit["LIVEKIT_API_SECRET"],
            voice_sessions_per_company=integer("VOICE_SESSIONS_PER_COMPANY", 10, 1, 100_000),
            voice_sessions_per_process=integer("VOICE_SESSIONS_PER_PROCESS", 2, 1, 10_000),
            voice_idle_seconds=integer("VOICE_IDLE_SECONDS", 30, 1, 3600),
            twilio_auth_token=text("TWILIO_AUTH_TOKEN"),
            public_url=url("PUBLIC_URL", ("http", "https")),
            host=text("HOST") or "127.0.0.1",
            port=integer("PORT", 8080, 1, 65535),
            data_dir=data_dir,
            log_level=log_level,
            redis_prefix=text("REDIS_PREFIX") or "syntera",
            trusted_proxies=networks("TRUSTED_PROXIES"),
            cors_origins=origins("CORS_ORIGINS"),
            demo=None if demo is None else demo == "1",
            socket_messages_per_minute=integer("SOCKET_MESSAGES_PER_MINUTE", 20, 1, 10_000),
            socket_connects_per_minute=integer("SOCKET_CONNECTS_PER_MINUTE", 60, 1, 1_000_000),
            conversation_idle_minutes=integer("CONVERSATION_IDLE_MINUTES", 30, 1, 100_000),
            job_lease_seconds=integer("JOB_LEASE_SECONDS", 3, 2, 3600),
            turn_recovery_seconds=integer("TURN_RECOVERY_SECONDS", 60, 1, 3600),
            job_concurrency=integer("JOB_CONCURRENCY", 64, 1, 10_000),
            job_concurrency_per_company=integer("JOB_CONCURRENCY_PER_COMPANY", 32, 1, 10_000),
            workflow_webhooks_allow_private=private_webhooks == "1",
            embedding_provider=provider,
            embedding_model=text("EMBEDDING_MODEL"),
            knowledge_max_upload_bytes=integer(
                "KNOWLEDGE_MAX_UPLOAD_BYTES", 20 * 1024 * 1024, 1, 1024 * 1024 * 1024
            ),
            knowledge_index_budget_mb=integer("KNOWLEDGE_INDEX_BUDGET_MB", 512, 16, 1_000_000),
            max_upload_bytes=integer("UPLOAD_MAX_BYTES", 10 * 1024 * 1024, 1, 1024 * 1024 * 1024),
            max_attachment_bytes=integer(
                "ATTACHMENT_MAX_BYTES", 25 * 1024 * 1024, 1, 2 * 1024 * 1024 * 1024
            ),
        )
        if settings.jwt_secret and len(settings.jwt_secret) < 32:
            raise ConfigError("JWT_SECRET must be at least 32 characters")
        return settings

    def ensure_jwt_secret(self) -> Settings:
        """Without JWT_SECRET, use a random secret generated once and kept in the data dir.

        A hard-coded default would let anyone mint tokens for any hub that forgot
        to set one.
        """
        if self.jwt_secret:
            return self
        path = self.data_dir / "jwt_secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            # Write aside, then link into place: processes starting together all
            # end up reading the one secret that won, never a half-written file.
            tmp = path.with_name(f".jwt_secret.{os.getpid()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(48))
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return replace(self, jwt_secret=path.read_text().strip())

    def configure_logging(self) -> None:
        logging.basicConfig(level=self.log_level, format="%(message)s")


def configuration_names() -> list[str]:
    """Every variable this module reads, sorted: Settings.from_env, given an
    empty environment that notes each name it is asked for (so the list
    cannot drift from the reader). For --help and for the as-shipped tests."""
    asked: set[str] = set()

    class Noting(dict):
        def get(self, name, default=None):
            asked.add(name)
            return default

    Settings.from_env(Noting())
    return sorted(asked)


def environment_help() -> str:
    """The --help epilog of every entry point: the variables it reads."""
    names = ", ".join(configuration_names())
    return "environment (hub/config.py; README.md's Configuration table says what each does):\n" + (
        textwrap.fill(names, 78, initial_indent="  ", subsequent_indent="  ")
    )
