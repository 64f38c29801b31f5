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
from hub.services import Services


def build_llm(settings: Settings) -> LLM:
    """Any OpenAI-compatible endpoint when a key is configured, else offline."""
    if settings.openai_api_key:
        return OpenAIChat(settings.openai_api_key, settings.openai_base_url)
    return OfflineResponder()


def attach_knowledge(services: Services) -> Knowledge:
    """The knowledge base of this process: search for REST and turns, and the
    ingestion loop (run by whoever processes documents)."""
    knowledge = Knowledge(services)
    services.knowledge = knowledge
    return knowledge


def attach_workflows(services: Services) -> Engine:
    """The workflow engine of this process: dry runs for REST everywhere; its
    jobs and timers only where agent work runs (`install`)."""
    engine = Engine(services)
    services.workflows = engine
    return engine


def install(services: Services, llm: LLM | None = None) -> TurnRunner:
    """Take agent turns and workflow jobs from the queue in this process."""
    llm = llm or build_llm(services.settings)
    runner = TurnRunner(services, llm)
    engine = services.workflows or attach_workflows(services)
    engine.install(llm)

    async def turn(job: Job) -> None:
        # A visitor's message_received workflows run first: one may hand the
        # conversation to a person before the AI answers.
        await engine.before_turn(job)
        await runner.handle(job)

    services.jobs.handle(TURN, turn)
    services.jobs.on_dead_letter(TURN, runner.dead_letter)
    return runner
