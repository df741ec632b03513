"""Helpers of benchmarks/bench_tracking.py: Cellar vs `mlflow server`, side by side.

servers.py     start/stop both servers and their bench-only databases
populate.py    write the same search and history data into both databases with executemany SQL
client_script  the unmodified-MLflow-client timings (runs in .venv-mlflow, once per server)
inproc.py      the same requests in-process, without the network (Flask test client / django.test.Client)
"""
