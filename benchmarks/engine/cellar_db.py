"""Run in Cellar's environment (DATABASE_URL, ARTIFACT_STORE_URL): the bench's database-side steps.

    python cellar_db.py quota TEAM COUNT          raise Team.max_concurrent_cpu_tasks (the service)
    python cellar_db.py verify TEAM PIPELINE NUMBER N  -> JSON on stdout

`verify` checks what "every task record and output persisted" means for the bench pipeline
(make -> expand -> work x N -> join): every task succeeded with exactly one attempt, every
work task records its output `x`, every output blob exists in the artifact store, and the
join's `total` read back from the store is sum(2 * i). It also returns the run's timeline
(from the task rows' timestamps) for the profile printed by bench_engine.py --profile.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
from collections import Counter


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cellar_server.settings")
    import django

    django.setup()


def quota(team_slug: str, count: int) -> None:
    from cellar_server.teams.actors import SYSTEM
    from cellar_server.teams.models import Team
    from cellar_server.teams.services import team_quota_update

    team = Team.objects.get(slug=team_slug)
    team_quota_update(actor=SYSTEM, team=team, max_concurrent_cpu_tasks=count)
    team.refresh_from_db()
    print(json.dumps({"team": team_slug, "max_concurrent_cpu_tasks": team.max_concurrent_cpu_tasks}))


def _pcts(values: list[float]) -> dict:
    if not values:
        return {}
    values = sorted(values)
    pick = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
    return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": values[-1], "mean": statistics.fmean(values)}


def verify(team_slug: str, pipeline: str, number: int, n: int) -> dict:
    from django.conf import settings

    from cellar.artifacts import store_from_url
    from cellar.pipelines.execute import ArtifactRef, is_stored, load_artifact
    from cellar_server.pipelines.models import PipelineRun, Task, TaskAttempt

    run = PipelineRun.all_teams.select_related("pipeline", "pipeline__team").get(
        pipeline__team__slug=team_slug, pipeline__name=pipeline, number=number
    )
    rows = list(
        Task.all_teams.filter(run_id=run.pk).values_list(
            "step", "kind", "index", "state", "attempt", "outputs", "created_at", "dispatched_at", "started_at",
            "ended_at",
        )
    )  # fmt: skip
    attempts = Counter(TaskAttempt.all_teams.filter(task__run_id=run.pk).values_list("state", flat=True))
    by = Counter((step, kind, state) for step, kind, _, state, *_ in rows)
    store = store_from_url(settings.ARTIFACT_STORE_URL)
    refs = [ref for *_, outputs, _c, _d, _s, _e in rows for ref in outputs.values()]
    # Persisted = readable back: small values inline in the task record, the rest as blobs.
    missing = sum(1 for ref in refs if not is_stored(ArtifactRef.from_dict(ref), store=store, team=team_slug))
    work = [r for r in rows if r[0] == "work" and r[1] == "step"]
    join = next((r for r in rows if r[0] == "join"), None)
    total = None
    if join is not None and "total" in join[5]:
        total = load_artifact(ArtifactRef.from_dict(join[5]["total"]), store=store, team=team_slug)
    problems = []
    if run.state != "succeeded":
        problems.append(f"run state {run.state}")
    if len(work) != n:
        problems.append(f"{len(work)} work tasks, expected {n}")
    if sorted(r[2] for r in work) != list(range(n)):
        problems.append("work task indexes are not 0..N-1")
    if any(r[3] != "succeeded" for r in rows):
        problems.append(f"task states {dict(Counter(r[3] for r in rows))}")
    if any("x" not in r[5] for r in work):
        problems.append(f"{sum(1 for r in work if 'x' not in r[5])} work tasks without their output")
    else:
        wrong = [
            r[2]
            for r in work
            if load_artifact(ArtifactRef.from_dict(r[5]["x"]), store=store, team=team_slug) != 2 * r[2]
        ]
        if wrong:
            problems.append(f"{len(wrong)} work outputs read back wrong (first at index {wrong[0]})")
    if any(r[4] != 1 for r in rows) or attempts != Counter({"succeeded": len(rows)}):
        problems.append(f"attempts {dict(attempts)} for {len(rows)} tasks")
    if missing:
        problems.append(f"{missing} of {len(refs)} output blobs missing from the store")
    if total != sum(2 * i for i in range(n)):
        problems.append(f"join total {total!r}, expected {sum(2 * i for i in range(n))}")

    def since(start, stamps):
        return [(s - start).total_seconds() for s in stamps if s is not None]

    t0 = run.created_at
    timeline = {
        "run_created_to_started_s": (run.started_at - t0).total_seconds() if run.started_at else None,
        "run_created_to_ended_s": (run.ended_at - t0).total_seconds() if run.ended_at else None,
        "work_created_first_last_s": [min(since(t0, [r[6] for r in work]), default=None),
                                      max(since(t0, [r[6] for r in work]), default=None)],
        "work_dispatched_first_last_s": [min(since(t0, [r[7] for r in work]), default=None),
                                         max(since(t0, [r[7] for r in work]), default=None)],
        "work_ended_first_last_s": [min(since(t0, [r[9] for r in work]), default=None),
                                    max(since(t0, [r[9] for r in work]), default=None)],
        "per_step": {},
        "dispatch_to_start_s": _pcts([(r[8] - r[7]).total_seconds() for r in work if r[7] and r[8]]),
        "start_to_end_s": _pcts([(r[9] - r[8]).total_seconds() for r in work if r[8] and r[9]]),
    }  # fmt: skip
    for step in ("make", "expand", "join"):
        kind = "expand" if step == "expand" else "step"
        name = "work" if step == "expand" else step
        row = next((r for r in rows if r[0] == name and r[1] == kind), None)
        if row is not None:
            timeline["per_step"][step] = {
                k: (v - t0).total_seconds() if v else None
                for k, v in zip(("created", "dispatched", "started", "ended"), row[6:10], strict=True)
            }
    return {
        "run": {"state": run.state, "tasks_total": run.tasks_total, "tasks_done": run.tasks_done,
                "created_at": run.created_at.timestamp(),
                "ended_at": run.ended_at.timestamp() if run.ended_at else None},
        "tasks": len(rows),
        "by_step_kind_state": {f"{s}/{k}/{st}": c for (s, k, st), c in sorted(by.items())},
        "attempts": dict(attempts),
        "output_refs": len(refs),
        "missing_blobs": missing,
        "join_total": total,
        "problems": problems,
        "timeline": timeline,
    }  # fmt: skip


def main(argv: list[str]) -> int:
    _setup()
    if argv[0] == "quota":
        quota(argv[1], int(argv[2]))
    elif argv[0] == "verify":
        print(json.dumps(verify(argv[1], argv[2], int(argv[3]), int(argv[4])), default=str))
    else:
        raise SystemExit(f"unknown command {argv[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
