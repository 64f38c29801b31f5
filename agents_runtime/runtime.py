"""What a process that runs agent work sets up: the LLM, the turn runner and
its place on the job queue. Used by `web` in the embedded mode and by
`python -m agents_runtime` when scaled out."""

from __future__ import annotations

from agents_runtime.knowledge.service import Knowledge
from agents_runtime.llm import LLM, OfflineResponder, OpenAIChat
from agents_runtime.turns import TurnRunner
from agents_runtime.workflows.engine import Engine
from hub.config import Settings
from hub.conversations import TURN
from hub.jobs import Job
from hub.services import Core, Services


def build_llm(settings: Settings) -> LLM:
    """Any OpenAI-compatible endpoint when a key is configured, else offline."""
    if settings.openai_api_key:
        return OpenAIChat(settings.openai_api_key, settings.openai_base_url)
    return OfflineResponder()


def parts(core: Core) -> tuple[Knowledge, Engine]:
    """What every process holds of the runtime (hub.services.open_services
    builds it before the process serves): the knowledge base (search for REST
    and turns; the ingestion loop, run by whoever processes documents) and the
    workflow engine (dry runs for REST everywhere; its jobs and timers only
    where agent work runs, `install`)."""
    return Knowledge(core), Engine(core)


def install(services: Services, llm: LLM | None = None) -> TurnRunner:
    """Take agent turns and workflow jobs from the queue in this process."""
    llm = llm or build_llm(services.settings)
    runner = TurnRunner(services, llm)
    engine = services.workflows
    engine.install(llm)

    async def turn(job: Job) -> None:
        # A visitor's message_received workflows run first: one may hand the
        # conversation to a person before the AI answers.
        await engine.before_turn(job)
        await runner.handle(job)

    services.jobs.handle(TURN, turn)
    services.jobs.on_dead_letter(TURN, runner.dead_letter)
    return runner
