"""Batch scoring as a ready pipeline step: a registry model over a data set, predictions stored.

    import cellar
    scored = cellar.score_batch(model="churn@champion", dataset="s3://lake/customers.csv",
                                output="scores.csv")

`dataset` is a path or URI read through `cellar.dataset` (so the run records it as an input
with its content hash), or a DataFrame / list of records already in hand. The predictions (the
input's `keep` columns plus `prediction`) are written as CSV to the run's artifacts under
`output`; the run is tagged with the model version and the data set digest, so the lineage reads
scores ← run ← model version + data set. Rows are scored in chunks of `batch_size`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from cellar.registry.client import load_model


@dataclass
class BatchScore:
    model: str
    version: int
    version_id: str
    rows: int
    output: str  # the run's artifact path
    sha256: str
    dataset: dict[str, Any] = field(default_factory=dict)
    predictions: Any = None  # the scored DataFrame

    def __repr__(self) -> str:
        return f"<BatchScore {self.model} v{self.version}: {self.rows} rows -> {self.output}>"


def _frame(dataset: Any) -> tuple[Any, dict[str, Any]]:
    import pandas as pd

    if isinstance(dataset, str):
        import cellar

        frame = cellar.dataset(dataset, context="scoring")
        if not isinstance(frame, pd.DataFrame):
            raise ValueError(f"{dataset} did not read as a table (CSV, parquet or SQL); score_batch needs rows")
        return frame, {"uri": dataset}
    if isinstance(dataset, pd.DataFrame):
        return dataset, {"uri": "in-memory"}
    return pd.DataFrame(dataset), {"uri": "in-memory"}


def score_batch(
    *,
    model: str,
    dataset: Any,
    output: str = "predictions.csv",
    keep: list[str] | None = None,
    batch_size: int = 10_000,
    prediction_column: str = "prediction",
) -> BatchScore:
    """Score `dataset` with registry model `model` ("name@alias" or "name/3"); see the module doc."""
    import pandas as pd

    from cellar.tracking import run as runs

    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    loaded = load_model(model)
    registry = loaded.metadata["registry"]
    frame, source = _frame(dataset)
    names = loaded.signature.input_names() if loaded.signature is not None else []
    features = frame[names] if names and set(names) <= set(frame.columns) else frame
    if loaded.signature is not None and names:
        loaded.signature.validate_columns(features.head(1000).to_dict(orient="records"))  # names bad columns early
    parts = [loaded.predict(features.iloc[i : i + batch_size]) for i in range(0, len(features), batch_size)]
    values = [v for part in parts for v in (part.tolist() if hasattr(part, "tolist") else list(part))]
    out = frame[keep].copy() if keep else pd.DataFrame(index=frame.index)
    out[prediction_column] = values
    data = out.to_csv(index=False).encode()
    source["sha256"] = hashlib.sha256(frame.to_csv(index=False).encode()).hexdigest()
    run = runs.active_run()
    started_here = run is None
    if started_here:
        run = runs.start_run(name=f"score {registry['model']}")
        started_here = run.owned
    try:
        run._store_bytes(data, output)
        run.set_tags(
            {
                "cellar.scoring.model": f"{registry['model']}/{registry['version']}",
                "cellar.scoring.model_version_id": registry["id"],
                "cellar.scoring.dataset": str(source["uri"])[:500],
                "cellar.scoring.dataset_sha256": source["sha256"],
                "cellar.scoring.rows": str(len(out)),
            }
        )
        run.flush()
    finally:
        if started_here:
            run.end()
    return BatchScore(
        model=registry["model"],
        version=registry["version"],
        version_id=registry["id"],
        rows=len(out),
        output=output,
        sha256=hashlib.sha256(data).hexdigest(),
        dataset=source,
        predictions=out,
    )


__all__ = ["BatchScore", "score_batch"]
