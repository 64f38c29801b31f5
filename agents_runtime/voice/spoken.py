"""What the voice agent says is what a listener hears: citation markers
([1], [2, 3]) that the chat shows are dropped from the spoken text as it
streams, so neither the speech nor the stored transcript carries them (the
reply's sources are in its ai_metadata)."""

from __future__ import annotations

import re

_CITATION = re.compile(r"\s*\[\d+(?:\s*,\s*\d+)*\]")
_OPEN = re.compile(r"\s*\[[\d,\s]*$")  # a marker that may still be arriving


class SpokenText:
    def __init__(self) -> None:
        self._held = ""

    def feed(self, text: str) -> str:
        text = _CITATION.sub("", self._held + text)
        tail = _OPEN.search(text)
        if tail is not None and len(text) - tail.start() < 24:
            self._held, text = text[tail.start() :], text[: tail.start()]
        else:
            self._held = ""
        return text

    def flush(self) -> str:
        held, self._held = _CITATION.sub("", self._held), ""
        return held


def spoken(text: str) -> str:
    cleaner = SpokenText()
    return (cleaner.feed(text) + cleaner.flush()).strip()
