"""PLACEHOLDER — owned by the A/B-test helper (issue 11), who replaces this whole module.

Contract (docs/serving.md, "A/B tests"): the predict path calls
`assign(block, unit_id) -> (version_id, variant_key, enrolled, shadow_version_ids) | None`
for each row that carries a `unit_id` when the deployment's manifest has
`extensions["abtest"]`; None means "not in the test": normal routing. Optional hooks serve
calls when the module defines them: `configure(config)` once at start-up (a ServeConfig: the
control-plane URL and serve credential, for an exposures Outbox) and `close()` at shutdown.
"""

from __future__ import annotations

from typing import Any


def assign(block: Any, unit_id: Any) -> tuple[str, str, bool, list[str]] | None:
    return None
