"""The keys that encrypt team secrets at rest (no Django imports: settings read this).

`CELLAR_SECRETS_KEY` holds one or more Fernet keys, comma-separated: the first encrypts,
every one decrypts (MultiFernet), so a key is rotated by putting the new one first and
running `manage.py cellar_secrets_rotate`. Unset (the single-machine default), a key is
generated once into CELLAR_HOME/secrets.key (mode 0600) and reused; never a built-in key.
"""

from __future__ import annotations

import os
from pathlib import Path

from cellar_server import config


def key_file() -> Path:
    return config.cellar_home() / "secrets.key"


def secrets_keys() -> list[str]:
    raw = os.environ.get("CELLAR_SECRETS_KEY", "")
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    if keys:
        return keys
    path = key_file()
    try:
        return [path.read_text().strip()]
    except FileNotFoundError:
        pass
    from cryptography.fernet import Fernet

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it first: use theirs
        return [path.read_text().strip()]
    except OSError:
        return []  # read-only CELLAR_HOME: secrets refuse to work until CELLAR_SECRETS_KEY is set
    with os.fdopen(fd, "w") as handle:
        handle.write(Fernet.generate_key().decode())
    return [path.read_text().strip()]
