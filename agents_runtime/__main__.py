"""python -m agents_runtime: the worker process.

It connects to the same database as `web`, applies any pending migration and
stays up until SIGTERM or SIGINT. The work it takes from the queue (agent
turns, ingestion, workflow runs, the voice worker) is registered by the
modules that implement those jobs.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from hub.config import ConfigError, Settings
from hub.db import connect
from hub.db.migrate import migrate

log = logging.getLogger("agents_runtime")


async def run(settings: Settings) -> None:
    db = await connect(settings, max_size=4)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with db.pool.acquire() as conn:
            await migrate(conn)
        log.info('{"event":"worker_ready"}')
        await stop.wait()
        log.info('{"event":"worker_stopping"}')
    finally:
        await db.close()


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    settings.configure_logging()
    asyncio.run(run(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
