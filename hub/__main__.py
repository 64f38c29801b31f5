"""python -m hub serve | migrate | token | seed: the Syntera hub.

Every command uses the database `serve` uses: DATABASE_URL, or the embedded
PostgreSQL in the data dir (SYNTERA_DATA_DIR), which the command attaches to
if a running `serve` started it, or starts. `python -m hub COMMAND --help`
says what each does.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from hub.config import ConfigError, Settings, environment_help


def raise_open_files_limit() -> int:
    """The soft limit on open files raised to the hard one, as servers do:
    every widget, dashboard and voice socket is a descriptor, and the usual
    soft default (1 024) would refuse connections long before memory or CPU
    run out. The hard limit is the operator's (`ulimit -Hn`, systemd's
    LimitNOFILE, the container's); returns the limit now in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard
    return soft


def _serve(settings: Settings, _args: argparse.Namespace) -> int:
    from aiohttp import web

    from agents_runtime.voice.models import loaded_at_start
    from hub.app import build_app

    raise_open_files_limit()
    # Voice sessions run in this process; Piper and Whisper wait for the first call.
    if not loaded_at_start(eager=False):
        return 1

    def announce(_line: str) -> None:
        print(
            f"Syntera hub on http://{settings.host}:{settings.port}  "
            f"(API docs: /api/docs, health: /healthz)",
            flush=True,
        )

    web.run_app(
        build_app(settings),
        host=settings.host,
        port=settings.port,
        access_log=None,  # the observe middleware writes one JSON line per request
        print=announce,
    )
    return 0


async def _migrate(settings: Settings, _args: argparse.Namespace) -> int:
    from hub.db import connect
    from hub.db.migrate import migrate

    db = await connect(settings, max_size=1)
    try:
        async with db.session() as conn:
            applied = await migrate(conn)
    finally:
        await db.close()
    print("applied: " + ", ".join(applied) if applied else "up to date")
    return 0


async def _token(settings: Settings, args: argparse.Namespace) -> int:
    from hub.auth import mint_token
    from hub.db import connect
    from hub.db.migrate import migrate
    from hub.store import users

    settings = settings.ensure_jwt_secret()
    db = await connect(settings, max_size=1)
    try:
        async with db.session() as conn:
            await migrate(conn)
        async with db.system() as conn:
            user = await users.find_for_login(conn, args.email)
    finally:
        await db.close()
    if user is None:
        print(f"no user with email {args.email}", file=sys.stderr)
        return 1
    token, _ = mint_token(
        settings,
        user_id=user["id"],
        company_id=user["company_id"],
        role=user["role"],
        email=user["email"],
        ttl_seconds=args.ttl,
        hub_user=True,
    )
    print(token)
    return 0


async def _seed(settings: Settings, args: argparse.Namespace) -> int:
    import time

    from hub.db import connect
    from hub.db.migrate import migrate
    from hub.seed import seed

    db = await connect(settings, max_size=2)
    try:
        async with db.session() as conn:
            await migrate(conn)
        started = time.perf_counter()
        result = await seed(
            db,
            email=args.email,
            password=args.password,
            conversations=args.conversations,
            days=args.days,
        )
    finally:
        await db.close()
    print(
        f"company {result.company_id}: {result.conversations} conversations, "
        f"{result.messages} messages, {result.contacts} contacts, {result.deals} deals "
        f"in {time.perf_counter() - started:.1f} s"
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    """The commands, their options and the environment they read; --help on
    any of them prints that and exits before anything is opened or started."""
    epilog = environment_help()
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="python -m hub",
        description=__doc__,
        epilog=epilog,
        formatter_class=formatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    def command(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name,
            help=summary,
            description=f"{summary}.\n\n{description}",
            epilog=epilog,
            formatter_class=formatter,
        )

    serve = command(
        "serve",
        "run the web process (REST, Socket.IO, pages, voice sockets)",
        "The Procfile's `web`. Without REDIS_URL it also runs the agent turns,\n"
        "workflows and document ingestion itself (the embedded mode); with it,\n"
        "`python -m agents_runtime` workers do.",
    )
    serve.add_argument("--host", help="address to listen on (default: HOST, else 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default: PORT, else 8080)")
    command(
        "migrate",
        "apply database migrations",
        "The Procfile's `release`: applies what is missing, in order, each once\n"
        "(advisory-locked, so several may run at once).",
    )
    token = command(
        "token",
        "mint a JWT for an existing user",
        "Prints an access token for the user with that email (for scripts and curl).",
    )
    token.add_argument("--email", required=True)
    token.add_argument("--ttl", type=int, default=86400, help="seconds (default one day)")
    demo = command(
        "seed",
        "add realistic demo conversations to a company",
        "Conversations, messages, contacts and deals spread over the last days,\n"
        "for the dashboard and the analytics benchmark.",
    )
    demo.add_argument("--email", required=True, help="the owner (created if missing)")
    demo.add_argument("--password", required=True)
    demo.add_argument("--conversations", type=int, default=1000)
    demo.add_argument("--days", type=int, default=90)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    settings.configure_logging()

    if args.command == "serve":
        if args.host is not None:
            settings = settings.with_overrides(host=args.host)
        if args.port is not None:
            settings = settings.with_overrides(port=args.port)
        return _serve(settings, args)
    handler = {"migrate": _migrate, "token": _token, "seed": _seed}[args.command]
    return asyncio.run(handler(settings, args))


if __name__ == "__main__":
    sys.exit(main())
