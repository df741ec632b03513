"""Secret generation and hashing for API tokens and invitation links.

Tokens are 256-bit random secrets, so a single SHA-256 is the right hash: a
slow password hash buys nothing against a secret nobody can guess, and would
cost every API request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_PREFIX = "cellar"


def hash_secret(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def secrets_match(raw: str, expected_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(raw), expected_hash)


def new_api_token() -> tuple[str, str]:
    """Return (lookup prefix, full raw token). The prefix is stored in clear to find the row."""
    prefix = secrets.token_hex(6)
    return prefix, f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"


def parse_api_token(raw: str) -> str | None:
    """Return the lookup prefix of a well-formed token, else None."""
    parts = raw.split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX or len(parts[1]) != 12:
        return None
    return parts[1]


def new_invitation_secret() -> str:
    return secrets.token_urlsafe(24)
