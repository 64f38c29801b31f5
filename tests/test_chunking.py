"""The chunker keeps every window within what the embedder reads, the
heading included, and every chunk is embedded with its heading."""

from __future__ import annotations

from agents_runtime.knowledge.embeddings import chunk
from agents_runtime.knowledge.extract import Section


class WordCounter:
    """An embedder as the chunker sees it: one token a word, a small window."""

    window = 20

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(t.split()) for t in texts]


def test_windows_fit_the_embedder_with_their_heading():
    sentences = [f"Sentence {i} has exactly five words." for i in range(12)]  # six tokens
    section = Section(" ".join(sentences), heading="Bone density in adults")  # 4 words
    pieces = chunk([section], WordCounter(), size=400, overlap=6)
    assert len(pieces) > 1
    for piece in pieces:
        # size 400 is cut to the window (20); the heading's 4 words and the
        # newline's token leave 15 for the passage.
        assert piece.tokens <= 15
        assert piece.embedding_text() == f"Bone density in adults\n{piece.content}"
        assert len(piece.embedding_text().split()) <= WordCounter.window
    # Two sentences a window; consecutive windows overlap by one sentence.
    assert [p.tokens for p in pieces[:-1]] == [12] * (len(pieces) - 1)
    assert pieces[1].content.startswith(pieces[0].content.split(". ")[-1].rstrip("."))
    # Without the heading embedded, the whole window is the passage's: three sentences.
    plain = chunk([section], WordCounter(), size=400, overlap=6, heading=False)
    assert plain[0].tokens == 18 and plain[0].embedding_text(False) == plain[0].content
