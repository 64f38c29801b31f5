"""Model prices in USD per million tokens, prompt and completion apart.

Matching is exact: a model that is not listed is reported as unpriced, never
priced as a neighbour (snapshots of one model have had different prices).
"""

from __future__ import annotations

from decimal import Decimal

# The model name recorded on what the built-in offline responder
# (agents_runtime.llm.OfflineResponder) answers: it runs on this machine, calls
# no provider and counts no tokens, so it is priced at zero.
OFFLINE_RESPONDER = "offline-responder"

PER_MILLION: dict[str, tuple[Decimal, Decimal]] = {
    name: (Decimal(prompt), Decimal(completion))
    for name, prompt, completion in [
        ("gpt-4o-mini", "0.15", "0.60"),
        ("gpt-4o", "2.50", "10.00"),
        ("gpt-4.1", "2.00", "8.00"),
        ("gpt-4.1-mini", "0.40", "1.60"),
        ("gpt-4.1-nano", "0.10", "0.40"),
        ("gpt-4-turbo", "10.00", "30.00"),
        ("gpt-3.5-turbo", "0.50", "1.50"),
        ("o3-mini", "1.10", "4.40"),
        ("text-embedding-3-small", "0.02", "0"),
        ("text-embedding-3-large", "0.13", "0"),
        (OFFLINE_RESPONDER, "0", "0"),
    ]
}


def cost(model: str | None, prompt_tokens: int, completion_tokens: int) -> Decimal | None:
    """USD, or None when the model has no price."""
    prices = PER_MILLION.get(model or "")
    if prices is None:
        return None
    prompt, completion = prices
    return (prompt * prompt_tokens + completion * completion_tokens) / 1_000_000


def usage(model: str, prompt_tokens: int, completion_tokens: int) -> dict:
    """The usage part of a reply's ai_metadata, chat and voice alike."""
    price = cost(model, prompt_tokens, completion_tokens)
    return {
        "model": model,
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "tokens_used": prompt_tokens + completion_tokens,
        "cost": None if price is None else float(price),
    }
