"""Word error rate of the offline speech recognition on phone audio against
wideband audio, on twenty things a caller to a support line says.

The callers are espeak-ng's voices (`espeak-ng --stdout`), not Piper: Piper
is the agent's own voice, and recognition must not be judged on the voice it
may have been tuned on. Two voices, espeak-ng's plain en-us and its Klatt
variant (the plain one is hard for any recogniser: compare `by_voice`); each
voice is one caller, who says the twenty phrases in turn. Each phrase, spoken
once, is heard twice:

- wideband (a browser, WebRTC): the speech at 16 kHz with the silence the VAD
  hands the STT around it (its 0.5 s of padding before,
  `models.END_OF_TURN_SILENCE` after);
- phone (Twilio): the same speech downsampled to 8 kHz, padded the same way,
  through G.711 μ-law and back (`hub.voice.twilio`), then to 16 kHz in 20 ms
  frames through `rtc.AudioResampler(8000, 16000)` as `StreamAudioInput`
  does.

What hears each is what the product uses (`speech.build_stt`): wideband,
pocketsphinx fed as `PocketsphinxSTT`'s stream feeds it (pieces of
`offline_stt.FEED_SECONDS` as the audio arrives, the caller's cepstral mean
kept between utterances, the final pass at the end); phone, Whisper tiny.en
(`models.whisper_transcribe`). Beside them, for comparison, each recogniser
on the other kind of audio (`recognisers`).

WER is word-level Levenshtein over normalised words (lower case, punctuation
gone, a number in a hypothesis spelled as the phrase spells it): all errors
over all reference words, and the ratio phone / wideband (the goal: at most
1.5). Times are the mean wall time of one recognition, on one thread.

    python -m bench.wer [--voices en-us,en-us+klatt]

`measure()` blocks for a minute or two on one core: from async code,
`await asyncio.to_thread(measure)`.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections.abc import Callable

from livekit import rtc

from agents_runtime.voice import models
from agents_runtime.voice.offline_stt import FEED_SECONDS
from bench.report import emit, table
from fakes.voice_line import espeak, resample, silence
from hub.voice import twilio

PHRASES = [
    "What is your refund policy?",
    "I would like a refund for my last order.",
    "Where is my order?",
    "My package has not arrived yet.",
    "Can I change the delivery address on my order?",
    "What are your opening hours on Saturday?",
    "Are you open on Sunday?",
    "I want to talk to a person.",
    "Can I speak to a manager, please?",
    "How do I cancel my subscription?",
    "I was charged twice this month.",
    "How do I reset my password?",
    "The deployment failed again this morning.",
    "How long does a deployment take?",
    "Can you send me the invoice by email?",
    "I need to update my credit card.",
    "Do you ship to Canada?",
    "My order number is four five six seven.",
    "The product arrived damaged and I want to return it.",
    "Thank you, that is all for today.",
]

SPEED = 175  # words a minute: espeak-ng's own default
VOICES = ["en-us", "en-us+klatt"]  # espeak-ng voices (`espeak-ng --voices=en`), `+variant` allowed
WIDE, PHONE = models.STT_SAMPLE_RATE, 8_000
# Seconds of silence the VAD hands the STT around speech: silero's prefix padding
# before, and the silence that ends the turn after.
BEFORE, AFTER = 0.5, models.END_OF_TURN_SILENCE
FRAME = 0.02  # seconds per Twilio media message
GOAL = 1.5  # phone WER at most this many times wideband WER


# -- the callers ------------------------------------------------------------------


def wideband(speech16k: bytes) -> bytes:
    """What the STT gets from a 16 kHz caller (the browser socket, WebRTC)."""
    return silence(BEFORE, WIDE) + speech16k + silence(AFTER, WIDE)


def phone_line(speech16k: bytes) -> bytes:
    """The same speech as Twilio carries it: 8 kHz μ-law, decoded (8 kHz PCM)."""
    narrow = silence(BEFORE, PHONE) + resample(speech16k, WIDE, PHONE) + silence(AFTER, PHONE)
    return twilio.ulaw_to_pcm16(twilio.pcm16_to_ulaw(narrow))


def upsample_as_stream_input(pcm8k: bytes) -> bytes:
    """8 kHz → 16 kHz as StreamAudioInput does it: one resampler, 20 ms frames."""
    resampler = rtc.AudioResampler(PHONE, WIDE, num_channels=1)
    step = 2 * int(FRAME * PHONE)
    out = []
    for start in range(0, len(pcm8k), step):
        piece = pcm8k[start : start + step]
        out += resampler.push(rtc.AudioFrame(piece, PHONE, 1, len(piece) // 2))
    out += resampler.flush()
    return b"".join(bytes(f.data) for f in out)


# -- the recognisers --------------------------------------------------------------


class Sphinx:
    """One caller heard by pocketsphinx as `PocketsphinxSTT`'s stream hears
    them (16 kHz PCM): a pooled decoder set to the caller's cepstral mean, fed
    the utterance piece by piece, then its final pass."""

    def __init__(self) -> None:
        self.cmn: str | None = None

    def __call__(self, pcm16k: bytes) -> str:
        pool = models.decoders()
        decoder = pool.take(self.cmn)
        try:
            decoder.start_utt()
            step = 2 * int(WIDE * FEED_SECONDS)
            for start in range(0, len(pcm16k), step):
                decoder.process_raw(pcm16k[start : start + step], False, False)
            decoder.end_utt()
            return decoder.hypothesis()[0]
        finally:
            self.cmn = pool.give(decoder)


def whisper(pcm16k: bytes) -> str:
    return models.whisper_transcribe(pcm16k)[0]


# For one caller: what hears their wideband and their phone audio (16 kHz PCM).
def product() -> dict[str, Callable[[bytes], str]]:
    return {"wideband": Sphinx(), "phone": whisper}


def pocketsphinx() -> dict[str, Callable[[bytes], str]]:
    return {"wideband": Sphinx(), "phone": Sphinx()}


def whisper_only() -> dict[str, Callable[[bytes], str]]:
    return {"wideband": whisper, "phone": whisper}


RECOGNISERS = {
    "product": product,  # pocketsphinx for browsers, Whisper for phones
    "pocketsphinx": pocketsphinx,
    "whisper-tiny.en": whisper_only,
}


# -- scoring ----------------------------------------------------------------------

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def _cardinal(n: int) -> list[str]:
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])
    for size, name in ((10**6, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= size:
            rest = n % size
            return _cardinal(n // size) + [name] + (_cardinal(rest) if rest else [])
    raise AssertionError(n)


def words(text: str) -> list[str]:
    """Lower case, punctuation gone; digits stay digits (see `spelled`)."""
    text = re.sub(r"(?<=\d)[,.](?=\d)", "", text.lower())
    return [w.strip("'") for w in re.sub(r"[^a-z0-9' ]+", " ", text).split() if w.strip("'")]


def spelled(hypothesis: list[str], reference: list[str]) -> list[str]:
    """Numbers in a hypothesis as the phrase spells them: 4567 is "four five
    six seven" where the phrase reads the digits, "four thousand five hundred
    sixty seven" where it says the number (whichever matches better)."""
    out: list[str] = []
    for word in hypothesis:
        if not word.isdigit() or len(word) > 9:
            out.append(word)
            continue
        options = [[_ONES[int(d)] for d in word], _cardinal(int(word))]
        out += min(options, key=lambda o: errors(reference, out + o))
    return out


def errors(reference: list[str], hypothesis: list[str]) -> int:
    """Word-level Levenshtein distance (substitutions + deletions + insertions)."""
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        previous, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ref != hyp))
    return row[-1]


def wer(pairs: list[tuple[str, str]]) -> float:
    """All errors over all reference words, for (phrase, hypothesis) pairs."""
    total = found = 0
    for phrase, hypothesis in pairs:
        reference = words(phrase)
        total += len(reference)
        found += errors(reference, spelled(words(hypothesis), reference))
    return round(found / total, 4)


# -- the benchmark ----------------------------------------------------------------


def _scores(rows: list[dict], name: str) -> dict:
    wide = wer([(r["phrase"], r[name]["wideband"]) for r in rows])
    phone = wer([(r["phrase"], r[name]["phone"]) for r in rows])
    return {
        "wer_wideband": wide,
        "wer_phone": phone,
        "ratio": round(phone / wide, 2) if wide else None,
    }


def measure(voices: list[str] | None = None) -> dict:
    """Blocking (see the module docstring)."""
    voices = voices or VOICES
    rows, seconds = [], 0.0
    ms: dict[tuple[str, str], list[float]] = {}
    for voice in voices:
        callers = {name: make() for name, make in RECOGNISERS.items()}  # a new caller
        for text in PHRASES:
            speech = espeak(text, WIDE, voice=voice, speed=SPEED)
            audio = {
                "wideband": wideband(speech),
                "phone": upsample_as_stream_input(phone_line(speech)),
            }
            seconds += len(speech) / 2 / WIDE
            row: dict = {"voice": voice, "phrase": text}
            for name, hears in callers.items():
                row[name] = {}
                for condition, recognise in hears.items():
                    started = time.perf_counter()
                    row[name][condition] = recognise(audio[condition])
                    elapsed = (time.perf_counter() - started) * 1000
                    ms.setdefault((name, condition), []).append(elapsed)
            rows.append(row)
    result: dict = {
        "phrases": len(PHRASES),
        "voices": voices,
        "reference_words": sum(len(words(p)) for p in PHRASES) * len(voices),
        "mean_speech_seconds": round(seconds / len(rows), 2),
        **_scores(rows, "product"),
        "goal_ratio": GOAL,
        "recognisers": {},
    }
    for name in RECOGNISERS:
        entry = _scores(rows, name)
        entry["ms_per_phrase"] = {
            c: round(statistics.mean(ms[name, c]), 1) for c in ("wideband", "phone")
        }
        entry["by_voice"] = {v: _scores([r for r in rows if r["voice"] == v], name) for v in voices}
        result["recognisers"][name] = entry
    result["per_phrase"] = rows
    return result


NAMES = {
    "product": "**the product** (pocketsphinx for 16 kHz, Whisper tiny.en for phone)",
    "pocketsphinx": "pocketsphinx alone (its wideband model on both)",
    "whisper-tiny.en": "Whisper tiny.en alone (faster-whisper, int8, beam 5)",
}


def print_report(result: dict) -> None:
    def percent(value: float) -> str:
        return f"{value * 100:.1f} %"

    rows = []
    for name, entry in result["recognisers"].items():
        ratio = f"{entry['ratio']}"
        rows.append(
            (NAMES.get(name, name), percent(entry["wer_wideband"]), percent(entry["wer_phone"]),
             f"**{ratio}**" if name == "product" else ratio,
             f"{entry['ms_per_phrase']['wideband']} / {entry['ms_per_phrase']['phone']} ms")
        )  # fmt: skip
    per_phrase = f"per phrase ({result['mean_speech_seconds']} s of speech)"
    emit(
        "wer",
        table(["recogniser", "16 kHz", "μ-law 8 kHz", "ratio", per_phrase], rows),
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--voices", default=",".join(VOICES))
    args = parser.parse_args()
    models.load_speech()
    measured = measure(args.voices.split(","))
    print_report(measured)
    print(json.dumps(measured, indent=2))
