"""Who is calling: the peer's address, or the client's behind a trusted proxy."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from hub.config import Network


def _trusted(address: str, proxies: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_address(
    peer: str | None, forwarded_for: str | None, proxies: tuple[Network, ...]
) -> str:
    """`peer`, unless it is a trusted proxy (TRUSTED_PROXIES): then the address
    it forwards for, read from X-Forwarded-For right to left, past every
    trusted proxy. From anyone else the header is ignored: a client can write
    anything in it."""
    address = peer or ""
    if proxies and forwarded_for and _trusted(address, proxies):
        for hop in reversed([h.strip() for h in forwarded_for.split(",") if h.strip()]):
            address = hop
            if not _trusted(hop, proxies):
                break
    return address
