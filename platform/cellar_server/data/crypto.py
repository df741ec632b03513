"""Encrypting secret values at rest: Fernet (AES-128-CBC + HMAC-SHA256), MultiFernet for rotation."""

from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from cellar_server.core.exceptions import ServiceError


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ServiceError(
            "secrets_key_missing",
            "Secrets are disabled: set CELLAR_SECRETS_KEY to a Fernet key (or make CELLAR_HOME writable).",
            status_code=503,
        )
    try:
        return MultiFernet([Fernet(k.encode()) for k in keys])
    except ValueError:
        raise ServiceError(
            "secrets_key_invalid",
            "CELLAR_SECRETS_KEY is not a list of Fernet keys (32 url-safe base64 bytes each).",
            status_code=503,
        ) from None


def fernet() -> MultiFernet:
    return _fernet(tuple(settings.CELLAR_SECRETS_KEYS))


def encrypt(value: str) -> str:
    return fernet().encrypt(value.encode()).decode()


def decrypt(ciphertext: str) -> str:
    try:
        return fernet().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise ServiceError(
            "secret_undecryptable",
            "This secret was encrypted with a key the server no longer has; add the old key to "
            "CELLAR_SECRETS_KEY (after the new one) or set the secret again.",
            status_code=500,
        ) from None


def rotate(ciphertext: str) -> str:
    """Re-encrypt with the first key."""
    return fernet().rotate(ciphertext.encode()).decode()
