"""Helpers of benchmarks/bench_engine.py: Cellar's engine vs raw Celery and Metaflow, side by side.

procs.py        the private Redis, process groups, CPU and peak-RSS accounting, load average
raw_celery.py   raw Celery: one `apply_async` per no-op task, acks_late, counted by a file
noop_app.py     the Celery app the raw worker runs (`celery -A noop_app worker`)
metaflow_side   Metaflow's local runtime in its own venv: a foreach of trivial branches
cellar_side.py  the real Cellar processes (gunicorn, control worker --beat, cellar-worker) and a run
cellar_db.py    run in Cellar's environment: raise the team quota, verify a run's records and outputs
"""
