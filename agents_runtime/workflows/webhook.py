"""Outbound webhooks: signed, retried with backoff, and kept away from the
hub's own network.

Every request carries `X-Syntera-Signature` (HMAC-SHA256 of the body with the
workflow's secret, as the inbound webhook trigger expects) and
`X-Syntera-Delivery` (the execution and node: the same on every retry and
redelivery, so a receiver can drop a repeat). A 5xx, a 429, a timeout or a
refused connection is tried again; any other answer is final.

A tenant must not make the hub call its private network (cloud metadata
endpoints, the database): unless private targets are allowed, only public
addresses are connected to, checked on the addresses actually resolved.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver
from yarl import URL

from hub import jsoncodec
from hub.workflows import signature

MAX_RESPONSE_BYTES = 64 * 1024  # what later nodes can read of a response


class WebhookError(Exception):
    def __init__(self, message: str, attempts: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.attempts = attempts


class NotPublic(OSError):
    """A name that resolves to private addresses only."""


_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _public(address: str) -> bool:
    """A global address, also when an IPv6 address carries an IPv4 one
    (mapped, 6to4, Teredo, NAT64): that one must be global too."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if ip.version == 6:
        if ip in _IPV4_COMPATIBLE:
            return False
        inner = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is None and any(ip in net for net in _NAT64):
            inner = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if inner is not None and not inner.is_global:
            return False
    return ip.is_global


class PublicResolver(AbstractResolver):
    """Resolves names to public addresses only."""

    def __init__(self) -> None:
        self._resolver = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET):
        found = [r for r in await self._resolver.resolve(host, port, family) if _public(r["host"])]
        if not found:
            raise NotPublic(f"{host} has no public address")
        return found

    async def close(self) -> None:
        await self._resolver.close()


class WebhookSender:
    def __init__(self, *, allow_private: bool, backoff: float = 1.0) -> None:
        # backoff: seconds before the second attempt, doubling (the node's budget assumes 1)
        self.allow_private = allow_private
        self.backoff = backoff
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            resolver = None if self.allow_private else PublicResolver()
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(resolver=resolver, limit=100),
                headers={"User-Agent": "Syntera-Workflows/1"},
            )
        return self._session

    def check_url(self, url: str) -> URL:
        parsed = URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise WebhookError(f"{url!r} is not an http(s) URL", [])
        if not self.allow_private:
            try:
                if not _public(parsed.host):
                    raise WebhookError(f"{parsed.host} is not a public address", [])
            except ValueError:
                pass  # a name: the resolver checks what it resolves to
        return parsed

    async def send(
        self,
        *,
        url: str,
        method: str,
        headers: dict[str, str],
        body: Any,
        secret: str,
        delivery: str,
        depth: int,
        attempt_timeout: float,
        retries: int,
    ) -> dict[str, Any]:
        """The final response as {status, body, attempts}; raises WebhookError
        when every attempt failed."""
        target = self.check_url(url)
        payload = b"" if method == "GET" else jsoncodec.dumps(body)
        headers = {
            **headers,
            "Content-Type": "application/json",
            "X-Syntera-Signature": signature(secret, payload),
            "X-Syntera-Delivery": delivery,
            # Our own inbound webhook reads it: a loop through webhooks stops too.
            "X-Syntera-Depth": str(depth),
        }
        attempts: list[dict[str, Any]] = []
        for attempt in range(retries + 1):
            if attempt:
                await asyncio.sleep(self.backoff * 2 ** (attempt - 1))
            started = time.perf_counter()
            record: dict[str, Any] = {"attempt": attempt + 1}
            try:
                async with self._client().request(
                    method,
                    target,
                    data=payload or None,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=attempt_timeout),
                    allow_redirects=False,
                ) as response:
                    raw = await response.content.read(MAX_RESPONSE_BYTES)
                    record.update(status=response.status)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                refused = getattr(exc, "os_error", None)
                if isinstance(refused, NotPublic):  # final: no retry reaches another address
                    attempts.append({**record, "error": str(refused)})
                    raise WebhookError(str(refused), attempts) from None
                record.update(error=str(exc) or type(exc).__name__)
                raw, response = b"", None
            record["ms"] = round((time.perf_counter() - started) * 1000)
            attempts.append(record)
            if response is None or response.status >= 500 or response.status == 429:
                continue
            if response.status >= 400:
                raise WebhookError(f"the webhook answered HTTP {response.status}", attempts)
            return {"status": response.status, "body": _decode(raw), "attempts": attempts}
        last = attempts[-1]
        reason = f"HTTP {last['status']}" if "status" in last else last["error"]
        raise WebhookError(f"the webhook failed after {len(attempts)} attempts: {reason}", attempts)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _decode(raw: bytes) -> Any:
    try:
        return jsoncodec.loads(raw)
    except ValueError:
        return raw.decode("utf-8", "replace")
