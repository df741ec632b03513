"""The agent's Celery app and task: delivery settings, JSON only, no Django, a bad message dropped."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from cellar_worker.agent import run_batch
from cellar_worker.app import app


def _agent_python(code: str, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")}
    environ.update(env)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_run_batch_is_acked_late_rejected_on_worker_loss_and_json_only():
    task = app.tasks["cellar.pool.run_batch"]
    assert task.name == run_batch.name and task.acks_late and task.reject_on_worker_lost and task.ignore_result
    assert app.conf.worker_prefetch_multiplier == 1
    assert app.conf.accept_content == ["json"] and app.conf.task_serializer == "json"


def test_the_visibility_timeout_comes_from_the_environment_and_the_agent_loads_no_django():
    # kombu imports django.utils when Django is installed; the ORM and the server must stay out.
    code = (
        "import json, sys\n"
        "from cellar_worker.app import app\n"
        "import cellar_worker.agent\n"
        "loaded = any(m in sys.modules for m in ('django.db', 'django.conf', 'cellar_server'))\n"
        "print(json.dumps({'options': app.conf.broker_transport_options, 'django': loaded}))"
    )
    assert _agent_python(code) == {"options": {"visibility_timeout": 3600.0}, "django": False}
    tuned = _agent_python(code, CELLAR_BROKER_VISIBILITY_TIMEOUT="900")
    assert tuned["options"] == {"visibility_timeout": 900.0}


def test_a_message_the_agent_cannot_read_is_dropped_not_retried(caplog):
    assert run_batch.run({"v": 99, "tasks": [{}, {}]}) == {"claimed": 0, "refused": 2}
    assert "unsupported batch version 99" in caplog.text
