"""Web origins (`scheme://host[:port]`) as browsers write them in `Origin`."""

from __future__ import annotations

from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}


def normalise_origin(value: str) -> str | None:
    """`https://Shop.example.com:443/` → `https://shop.example.com`; None if not an origin."""
    if value == "*":
        return value
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        return None
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range: no origin has it
        return None
    # Browsers leave the scheme's default port out of Origin: so do we.
    suffix = f":{port}" if port not in (None, DEFAULT_PORTS[parts.scheme]) else ""
    return f"{parts.scheme}://{parts.hostname.lower()}{suffix}"
