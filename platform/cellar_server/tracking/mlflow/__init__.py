"""MLflow-compatible tracking API (MLflow's REST contract, reimplemented on Cellar's models)."""

# The MLflow release whose contract this implements and whose client the tests drive.
COMPATIBLE_MLFLOW_VERSION = "3.17.2"
