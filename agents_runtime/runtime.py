"""What a process that runs agent work sets up: the LLM, the turn runner and
its place on the job queue. Used by `web` in the embedded mode and by
`python -m agents_runtime` when scaled out."""

from __future__ import annotations

from agents_runtime.knowledge.service import Knowledge
from agents_runtime.llm import LLM, OfflineResponder, OpenAIChat
from agents_runtime.turns import TurnRunner
from hub.config import Settings
from hub.conversations import TURN
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


def install(services: Services, llm: LLM | None = None) -> TurnRunner:
    runner = TurnRunner(services, llm or build_llm(services.settings))
    services.jobs.handle(TURN, runner.handle)
    services.jobs.on_dead_letter(TURN, runner.dead_letter)
    return runner
