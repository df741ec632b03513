"""The rule for metric, param and tag keys (MLflow's), shared by the SDK and the server.

The SDK checks a key when it is logged, so a bad key fails at the call instead of
later in the background sender; the server checks it again on every write.
"""

from __future__ import annotations

import posixpath
import re
from typing import Any

MAX_KEY_LENGTH = 250
_KEY_RE = re.compile(r"^[/\w.\- :]*$")


def key_problem(key: Any, what: str) -> str | None:
    """Why `key` is not a valid `what` ("metric", "param", "tag") key, or None when it is."""
    if not isinstance(key, str) or not key:
        return f"Missing value for required parameter 'key' of the {what}."
    if len(key) > MAX_KEY_LENGTH:
        return f"{what.capitalize()} key '{key[:40]}…' is {len(key)} characters; the limit is {MAX_KEY_LENGTH}."
    if not _KEY_RE.match(key):
        return (
            f"Invalid {what} key '{key}': names may only contain alphanumerics, underscores (_), dashes (-), "
            "periods (.), spaces ( ), colons (:) and slashes (/)."
        )
    parts = key.split("/")
    if posixpath.normpath(key) != key or key.startswith("/") or ".." in parts or "." in parts:
        return (
            f"Invalid {what} key '{key}': names may be treated as files in certain cases, and must not "
            "resolve to other names when treated as such."
        )
    return None
