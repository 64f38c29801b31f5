"""python -m agents_runtime: the worker process.

It opens the same services as `web` (database, Redis, event bus, job queue),
registers the agent-turn handler and consumes jobs until SIGTERM or SIGINT;
then it stops taking jobs and lets the running ones finish before exiting.
Scaled out (REDIS_URL), any number of workers share the queue. In the
embedded mode `web` runs the turns itself and a worker has nothing to take.
With LiveKit configured it also runs the voice worker (agents_runtime.voice),
which LiveKit hands the calls the hub dispatched.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys

from agents_runtime import runtime
from hub import lifecycle
from hub.config import ConfigError, Settings
from hub.jobs import InProcessQueue
from hub.services import close_services, open_services
from hub.voice.livekit import configured as voice_configured

log = logging.getLogger("agents_runtime")


async def run(settings: Settings) -> None:
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
                '{"event":"worker_turns_idle","reason":"no REDIS_URL: the web process runs turns"}'
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


def main() -> int:
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
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
