"""The pipeline engine: a DAG state machine persisted in the database (ARCHITECTURE.md, "Runs and tasks").

- runs.py       run_create / run_cancel / run_resume: a run of one version with parameters.
- advance.py    run_advance: create the tasks that became ready (applying the step cache), close the run.
- results.py    what the pool agents say through the worker API: claims, heartbeats, results; requeue.
- closing.py    how a run stops: its first failure, cancelling unstarted work, closing it, the tracking run.
- cache.py      the step cache on the control side: keys (the SDK's one rule) and entries by pointer.
- tokens.py     per-task tokens: signed, scoped to one task's team, run and lease.
- rows.py       task rows inserted and updated in bulk with plain SQL (the 20,000-task paths).
- dispatch.py   the fair, micro-batching dispatcher; reconcile.py the reconciler; schedules.py cron runs.

The control plane never unpickles a user's value: it moves ArtifactRef dicts (pointers) only.
"""
