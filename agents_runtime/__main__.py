"""python -m agents_runtime: the worker process (the Procfile's `worker`).

It opens the same services as `web` (database, Redis, event bus, job queue),
takes agent turns and workflow runs from the Redis queue (REDIS_URL) and
ingests uploaded documents until SIGTERM or SIGINT, then stops taking jobs
and lets the running ones finish before exiting. Any number of workers share
the queue.
With LiveKit configured (LIVEKIT_URL, LIVEKIT_API_KEY, LIVEKIT_API_SECRET)
it also runs the voice worker, which LiveKit hands the calls the hub
dispatched.

Without REDIS_URL there is no queue to read (`python -m hub serve` runs the
turns itself), so it refuses to start, unless LiveKit is configured: LiveKit
calls run only in a worker, so it then runs them (and document ingestion,
claimed from PostgreSQL) and leaves the turns to `web`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys

from hub.config import ConfigError, Settings, environment_help
from hub.voice.livekit import configured as voice_configured

log = logging.getLogger("agents_runtime")

NO_QUEUE = (
    "cannot start: a worker takes its work from the Redis queue and REDIS_URL is not set "
    "(without it, python -m hub serve runs the agent turns itself)"
)


async def run(settings: Settings) -> None:
    from agents_runtime import runtime
    from hub import lifecycle
    from hub.jobs import InProcessQueue
    from hub.services import close_services, open_services

    services = await open_services(settings, runtime.parts)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # Documents are claimed from PostgreSQL, so workers share them in both modes.
    ingestion = asyncio.create_task(services.knowledge.run())
    voice = None
    if voice_configured(services.settings):
        from agents_runtime.voice.worker import build_server

        voice = build_server(services.settings)
        voice_task = asyncio.create_task(voice.run())
    recovery = None
    try:
        if isinstance(services.jobs, InProcessQueue):
            log.warning(
                '{"event":"worker_turns_idle","reason":"no REDIS_URL: the web process runs '
                'turns; this worker runs LiveKit calls and document ingestion"}'
            )
        else:
            runtime.install(services)
            await services.jobs.start()
            services.workflows.start_timers()
            recovery = asyncio.create_task(
                lifecycle.recover_turns_periodically(services, settings.turn_recovery_seconds)
            )
        log.info('{"event":"worker_ready"}')
        await stop.wait()
        log.info('{"event":"worker_stopping"}')
        if voice is not None:
            await voice.drain()  # calls in progress end first
    finally:
        if recovery is not None:
            recovery.cancel()
        await services.workflows.stop_timers()
        if voice is not None:
            await voice.aclose()
            await asyncio.gather(voice_task, return_exceptions=True)
        # Before the database closes: an interrupted document is handed back.
        ingestion.cancel()
        await asyncio.gather(ingestion, return_exceptions=True)
        await close_services(services)  # stops the queue after in-flight jobs finish


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="python -m agents_runtime",
        description=__doc__,
        epilog=environment_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    ).parse_args(argv)
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    if settings.redis_url is None and not voice_configured(settings):
        print(NO_QUEUE, file=sys.stderr)
        return 2
    settings.configure_logging()
    if voice_configured(settings):
        from agents_runtime.voice.models import loaded_at_start

        if not loaded_at_start():  # LiveKit's calls run in this worker
            return 1
    asyncio.run(run(settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
