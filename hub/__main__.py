"""python -m hub serve | migrate | token | seed

Every command uses the database `serve` uses: DATABASE_URL, or the embedded
PostgreSQL in the data dir, which the command attaches to if a running `serve`
started it, or starts.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from hub.config import ConfigError, Settings


def _serve(settings: Settings, _args: argparse.Namespace) -> int:
    from aiohttp import web

    from agents_runtime.voice.models import loaded_at_start
    from hub.app import build_app

    if not loaded_at_start():  # voice sessions run in this process
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
        async with db.pool.acquire() as conn:
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
        async with db.pool.acquire() as conn:
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
        async with db.pool.acquire() as conn:
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hub")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("serve", help="run the web process (REST, Socket.IO, pages)")
    commands.add_parser("migrate", help="apply database migrations")
    token = commands.add_parser("token", help="mint a JWT for an existing user")
    token.add_argument("--email", required=True)
    token.add_argument("--ttl", type=int, default=86400, help="seconds (default one day)")
    demo = commands.add_parser("seed", help="add realistic demo conversations to a company")
    demo.add_argument("--email", required=True, help="the owner (created if missing)")
    demo.add_argument("--password", required=True)
    demo.add_argument("--conversations", type=int, default=1000)
    demo.add_argument("--days", type=int, default=90)
    args = parser.parse_args(argv)

    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    settings.configure_logging()

    if args.command == "serve":
        return _serve(settings, args)
    handler = {"migrate": _migrate, "token": _token, "seed": _seed}[args.command]
    return asyncio.run(handler(settings, args))


if __name__ == "__main__":
    sys.exit(main())
