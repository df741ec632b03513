"""Where the workspaces integration keeps its secrets (no Django imports: settings read this).

Single machine: everything lives under CELLAR_HOME/hub/, created on first use, mode 0600.
Beyond one machine each value comes from a variable instead, so every web replica and the
hub share them (CELLAR_OIDC_PRIVATE_KEY, CELLAR_HUB_API_TOKEN, CELLAR_HUB_OAUTH_FILE).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from cellar_server import config


def hub_dir() -> Path:
    return config.cellar_home() / "hub"


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _read_or_create(path: Path, make) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        _write_private(path, make())
        return path.read_text()


def oidc_private_key() -> str:
    """The RSA key that signs ID tokens (RS256): $CELLAR_OIDC_PRIVATE_KEY, else a generated file."""
    if os.environ.get("CELLAR_OIDC_PRIVATE_KEY"):
        return os.environ["CELLAR_OIDC_PRIVATE_KEY"]
    try:
        return _read_or_create(hub_dir() / "oidc-private.pem", _new_rsa_pem)
    except OSError:
        # A read-only CELLAR_HOME (an image without the variable): this process signs with a key of
        # its own, so hub sign-in works only through this one process. Settings must still load.
        return _new_rsa_pem()


def _new_rsa_pem() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def hub_api_token() -> str:
    """The token Cellar's service account holds on the hub ($CELLAR_HUB_API_TOKEN, else a file)."""
    if os.environ.get("CELLAR_HUB_API_TOKEN"):
        return os.environ["CELLAR_HUB_API_TOKEN"]
    return _read_or_create(hub_dir() / "service-token", lambda: secrets.token_hex(32)).strip()


def hub_oauth_file() -> Path:
    """JSON {client_id, client_secret, redirect_uri}: the only place the secret exists in clear."""
    raw = os.environ.get("CELLAR_HUB_OAUTH_FILE")
    return Path(raw) if raw else hub_dir() / "oauth-client.json"


def write_hub_oauth_file(text: str) -> Path:
    path = hub_oauth_file()
    _write_private(path, text)
    return path
