"""Model files and their contracts: save/load (MLflow-compatible), signatures, reference profiles.

No Django and no mlflow import; numpy/pandas/scikit-learn are imported only when a model or
a DataFrame needs them.
"""

from cellar.models.flavors import LoadedModel, ModelFormatError, load_model, read_mlmodel, save_model
from cellar.models.profile import reference_profile
from cellar.models.signature import ColSpec, Signature, SignatureError, TensorSpec, ValidatedInput, infer_signature

__all__ = [
    "ColSpec",
    "LoadedModel",
    "ModelFormatError",
    "Signature",
    "SignatureError",
    "TensorSpec",
    "ValidatedInput",
    "infer_signature",
    "load_model",
    "read_mlmodel",
    "reference_profile",
    "save_model",
]
