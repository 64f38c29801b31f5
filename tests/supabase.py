"""Access tokens as Supabase mints them (HS256 with the project's JWT secret),
for the tests of a hub that trusts Supabase."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt


def supabase_token(secret: str, sub: str, email: str | None, **changes: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "https://project-ref.supabase.co/auth/v1",
        "sub": sub,
        "aud": "authenticated",
        "exp": now + 3600,
        "iat": now,
        "email": email,
        "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {"email_verified": True},
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": now}],
        "session_id": str(uuid.uuid4()),
        "is_anonymous": False,
        **changes,
    }
    return jwt.encode(claims, secret, "HS256")
