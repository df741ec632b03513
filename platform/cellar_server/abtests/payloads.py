"""JSON shapes of A/B tests in the API."""

from __future__ import annotations

from typing import Any

from cellar_server.abtests.models import ABTest


def _iso(value) -> str | None:
    return value.isoformat() if value else None


def test_payload(test: ABTest) -> dict[str, Any]:
    return {
        "id": test.pk,
        "name": test.name,
        "description": test.description,
        "deployment": test.deployment_name,
        "status": test.status,
        "seed": test.seed,
        "shadow": test.shadow,
        "coverage": test.coverage,
        "phase": test.phase,
        "alpha": test.alpha,
        "sequential_n_star": test.sequential_n_star,
        "variants": [{"key": a.key, "version_id": a.version_id, "weight": a.weight} for a in test.arms.all()],
        "metrics": [
            {
                "name": m.name,
                "kind": m.kind,
                "role": m.role,
                "denominator": m.denominator or None,
                "higher_is_better": m.higher_is_better,
                "window_hours": m.window_hours,
                "winsorize_percentile": m.winsorize_percentile,
                "cuped": m.cuped,
            }
            for m in test.metrics.all()
        ],
        "winner": test.winner_arm or None,
        "created_by": test.created_by,
        "created_at": _iso(test.created_at),
        "started_at": _iso(test.started_at),
        "ends_at": _iso(test.ends_at),
        "stopped_at": _iso(test.stopped_at),
        "refreshed_at": _iso(test.refreshed_at),
    }
