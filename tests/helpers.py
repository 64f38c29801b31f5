"""Helpers the tests share: accounts, free ports, where screenshots go, and
the standard error shape."""

from __future__ import annotations

import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

from aiohttp.test_utils import TestClient

# Screenshots of the browser tests (git-ignored).
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Account:
    token: str
    user_id: str
    company_id: str
    email: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


async def signup(client: TestClient, company: str = "Acme") -> Account:
    email = f"owner-{uuid.uuid4().hex[:10]}@example.com"
    response = await client.post(
        "/api/auth/signup",
        json={"email": email, "password": "correct horse battery", "company_name": company},
    )
    assert response.status == 201, await response.text()
    body = await response.json()
    return Account(body["access_token"], body["user"]["id"], body["company"]["id"], email)


def assert_error(body: dict, code: str) -> None:
    assert set(body) == {"error", "code", "details"}, body
    assert body["code"] == code, body
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["details"], dict)
