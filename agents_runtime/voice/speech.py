"""Which speech pieces a call uses, from the agent's `voice_settings` and the
environment: OpenAI's STT and TTS when a key is configured (unless the agent
asks for offline speech), else the offline ones (pocketsphinx, or Whisper
tiny.en for phone calls; Piper); silero VAD either way.

voice_settings: {"stt": "auto"|"openai"|"offline", "tts": "auto"|"openai"|"offline",
"voice": OpenAI voice name (default "alloy"), "language": "en", "speed": 0.5-2.0}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from livekit.agents import stt as lk_stt
from livekit.agents import tts as lk_tts

from agents_runtime.voice import models
from hub.config import Settings


@dataclass(frozen=True)
class Speech:
    stt: str  # "openai" | "offline"
    tts: str
    voice: str = "alloy"
    language: str = "en"
    speed: float = 1.0


def choose(voice_settings: dict[str, Any], settings: Settings) -> Speech:
    def pick(name: str) -> str:
        wanted = str(voice_settings.get(name) or "auto").lower()
        if wanted == "openai" and settings.openai_api_key:
            return "openai"
        if wanted == "auto" and settings.openai_api_key:
            return "openai"
        return "offline"

    speed = voice_settings.get("speed", 1.0)
    return Speech(
        stt=pick("stt"),
        tts=pick("tts"),
        voice=str(voice_settings.get("voice") or "alloy"),
        language=str(voice_settings.get("language") or "en"),
        speed=float(speed) if isinstance(speed, int | float) else 1.0,
    )


def build_stt(speech: Speech, settings: Settings, *, phone: bool = False) -> lk_stt.STT:
    """`phone`: the caller is on a telephone line (narrowband audio)."""
    if speech.stt == "openai":
        from livekit.plugins import openai

        return openai.STT(language=speech.language, **_endpoint(settings))
    from agents_runtime.voice.offline_stt import PocketsphinxSTT, WhisperSTT

    return WhisperSTT() if phone else PocketsphinxSTT(models.silero_vad())


def build_tts(speech: Speech, settings: Settings) -> lk_tts.TTS:
    if speech.tts == "openai":
        from livekit.plugins import openai

        return openai.TTS(voice=speech.voice, speed=speech.speed, **_endpoint(settings))
    from agents_runtime.voice.offline_tts import PiperTTS

    return PiperTTS(speed=speech.speed)


def _endpoint(settings: Settings) -> dict[str, str]:
    endpoint = {"api_key": settings.openai_api_key or ""}
    if settings.openai_base_url:
        endpoint["base_url"] = settings.openai_base_url
    return endpoint
