"""Short-lived hub tokens: signed, bound to the sign-in session or API token that asked for one.

A token names what it stands on (the session's or API token's hash), so the hub can refuse
it once that session is logged out or the API token revoked, even before it expires.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

SALT = "insightwave-live-token"
MAX_TOKEN_LENGTH = 1024


class LiveTokenError(ValueError):
    """The token is missing, forged or expired; the message says which."""


@dataclass(frozen=True)
class LiveClaims:
    user_id: int
    session_hash: str | None  # the sign-in session the token stands on, or
    api_token_hash: str | None  # the API token it stands on
    origin: str | None  # the page origin it was issued to (None: a program, not a browser)
    nonce: str


def credential_hash(secret: str) -> str:
    """Hash a session or API token the way ``user_sessions`` and ``api_tokens`` store them."""
    return hashlib.sha256(secret.encode()).hexdigest()


def issue(
    secret_key: str,
    user_id: int,
    *,
    session_token: str | None = None,
    api_token: str | None = None,
    origin: str | None = None,
) -> str:
    """Sign a token for ``user_id`` standing on a session or an API token (exactly one)."""
    if (session_token is None) == (api_token is None):
        raise ValueError("a live token stands on a session or an API token")
    claims: dict[str, Any] = {
        "u": user_id,
        "s": credential_hash(session_token) if session_token else None,
        "t": credential_hash(api_token) if api_token else None,
        "o": origin,
        "n": secrets.token_urlsafe(12),
    }
    return str(URLSafeTimedSerializer(secret_key, salt=SALT).dumps(claims))


def verify(secret_key: str, token: str | None, max_age: int) -> LiveClaims:
    """Check the signature and age of ``token`` and return its claims.

    :raises LiveTokenError: when it is missing, too long, forged or expired.
    """
    if not token:
        raise LiveTokenError("a live token is required (GET /api/v1/live/token)")
    if len(token) > MAX_TOKEN_LENGTH:
        raise LiveTokenError("the live token is malformed")
    serializer = URLSafeTimedSerializer(secret_key, salt=SALT)
    try:
        claims = serializer.loads(token, max_age=int(max_age))
    except SignatureExpired as exc:
        raise LiveTokenError("the live token has expired; ask for a new one") from exc
    except BadSignature as exc:
        raise LiveTokenError("the live token is not valid") from exc
    if not isinstance(claims, dict) or not isinstance(claims.get("u"), int):
        raise LiveTokenError("the live token is not valid")
    return LiveClaims(
        user_id=claims["u"],
        session_hash=claims.get("s"),
        api_token_hash=claims.get("t"),
        origin=claims.get("o"),
        nonce=str(claims.get("n", "")),
    )
