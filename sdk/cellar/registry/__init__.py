"""The model registry from Python: `cellar.register_model(...)`, `cellar.load_model("name@alias")`.

import cellar
version = cellar.register_model(model, "churn", metrics={"auc": 0.91}, input_example=X.head(),
                                training_data=X, alias="champion", gate="auc")
model = cellar.load_model("churn@champion")
model.predict(rows)
"""

from cellar.registry.client import (
    RegisteredVersion,
    RegistryError,
    load_model,
    model_manifest,
    register_model,
    set_alias,
)
from cellar.registry.scoring import BatchScore, score_batch

__all__ = [
    "BatchScore",
    "RegisteredVersion",
    "RegistryError",
    "load_model",
    "model_manifest",
    "register_model",
    "score_batch",
    "set_alias",
]
