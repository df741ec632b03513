"""The keys that encrypt team secrets at rest (no Django imports: settings read this).

`CELLAR_SECRETS_KEY` holds one or more Fernet keys, comma-separated: the first encrypts,
every one decrypts (MultiFernet), so a key is rotated by putting the new one first and
running `manage.py cellar_secrets_rotate`. Unset (the single-machine default), a key is
generated once into CELLAR_HOME/secrets.key (mode 0600) and reused; never a built-in key.
"""

from __future__ import annotations

import os
import tempfile
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

    # Written to a private temporary file, then linked into place: two processes starting at once
    # (web and control under `make up`) agree on one key, and nobody reads a half-written file.
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=".secrets.key.")  # mode 0600
        tmp = Path(name)
        with os.fdopen(fd, "w") as handle:
            handle.write(Fernet.generate_key().decode())
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process won: use its key
        finally:
            tmp.unlink()
    except OSError:
        return []  # read-only CELLAR_HOME: secrets refuse to work until CELLAR_SECRETS_KEY is set
    return [path.read_text().strip()]
