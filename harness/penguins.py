"""Tabular models for the tests and the benchmark: scikit-learn Pipelines fitted on the Palmer penguins DataFrame.

The data ships in the ``palmerpenguins`` wheel as a CSV: ``island`` and ``sex`` are strings,
``sex`` and the four measurements have missing values, ``year`` is an integer. Each pipeline
imputes, one-hot encodes the strings and scales the numbers, then classifies ``species``; they
are packaged with ``model_server.package`` from the CSV, as a user would.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import joblib
import palmerpenguins
import pandas as pd
from model_server.tools.package import package
from sklearn.compose import make_column_transformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

NUMBERS = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "year"]
STRINGS = ["island", "sex"]
TARGET = "species"
FOREST = "penguins-rf"  # unknown categories accepted (handle_unknown="ignore")
LOGISTIC = "penguins-lr"  # unknown categories refused (handle_unknown="error")


def data() -> pd.DataFrame:
    """The penguins table as pandas reads its CSV."""
    return palmerpenguins.load_penguins()


def features() -> pd.DataFrame:
    return data().drop(columns=TARGET)


def pipeline(final: Any, handle_unknown: str = "ignore", impute: bool = True) -> Pipeline:
    numbers = make_pipeline(SimpleImputer(strategy="median"), StandardScaler()) if impute else StandardScaler()
    strings = make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown=handle_unknown))
    return make_pipeline(make_column_transformer((numbers, NUMBERS), (strings, STRINGS)), final)


def forest() -> Pipeline:
    return pipeline(RandomForestClassifier(n_estimators=30, random_state=0)).fit(features(), data()[TARGET])


def logistic() -> Pipeline:
    return pipeline(LogisticRegression(max_iter=2000), "error").fit(features(), data()[TARGET])


def publish_penguins(repository: Path, work: Path, name: str, estimator: Pipeline, version: int = 1) -> Path:
    """Package ``estimator`` from the penguins CSV into ``repository`` as ``name`` version ``version``."""
    work.mkdir(parents=True, exist_ok=True)
    csv = work / "penguins.csv"
    if not csv.exists():
        data().to_csv(csv, index=False)
    joblib.dump(estimator, work / f"{name}.joblib")
    path, _ = package(
        work / f"{name}.joblib", csv, name=name, version=str(version), repository=repository, target_column=TARGET
    )
    return path


def records(frame: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    """Rows as JSON records, ``None`` for a missing value (what a client sends)."""
    frame = features() if frame is None else frame
    return [{k: _json(v) for k, v in row.items()} for row in frame.to_dict(orient="records")]


def _json(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value


def pandas_codec_request(records: list[dict[str, Any]], flat: bool = False) -> dict[str, Any]:
    """The V2 request MLServer's pandas codec writes for these rows (``PandasCodec.encode_request(df,
    use_bytes=False)``): one input per column, shape [N, 1] (``flat``: [N]), strings as BYTES, null for missing."""
    kinds = features().dtypes
    inputs = []
    for name in records[0]:
        kind = kinds[name].kind if name in kinds else "f"
        datatype = {"i": "INT64", "f": "FP64", "b": "BOOL"}.get(kind, "BYTES")
        shape = [len(records)] if flat else [len(records), 1]
        tensor: dict[str, Any] = {"name": name, "shape": shape, "datatype": datatype}
        if datatype == "BYTES":
            tensor["parameters"] = {"content_type": "str"}
        inputs.append({**tensor, "data": [record[name] for record in records]})
    return {"parameters": {"content_type": "pd"}, "inputs": inputs}
