"""Gradient-boosted models for the tests and the benchmark, fitted with the native libraries (installed for the tests
only; the image has neither) and saved as their users save them.

* XGBoost on the penguins DataFrame, ``island`` and ``sex`` as pandas categories
  (``enable_categorical``): XGBoost 3 writes their categories into the model file;
* LightGBM on the penguins too (categorical features from the DataFrame's categories), and each
  library on scikit-learn's breast cancer data (binary, all numbers; XGBoost's is the benchmark's);
* a regression of each library on the penguins' body mass (XGBoost's also on the number columns alone).

Each maker writes the model file and the training CSV (the target as its labels: species names)
into a folder and returns the model (to predict with natively), the model file and the CSV.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import penguins

CATEGORICAL = ["island", "sex"]
XGBOOST = "penguins-xgb"  # multiclass softprob, categorical splits
LIGHTGBM = "cancer-lgbm"  # binary, numbers only


@dataclass(frozen=True)
class Boosted:
    model: Any  # the fitted scikit-learn API model (XGBClassifier, LGBMClassifier, ...)
    path: Path  # the saved model file
    csv: Path  # the training data with its target column
    target: str
    frame: pd.DataFrame  # the features as the model was fitted on them (categorical columns as pandas categories)

    def native(self, frame: pd.DataFrame | None = None) -> np.ndarray:
        """The native library's outputs: probabilities per class for a classifier, else the values."""
        x = self.frame if frame is None else frame
        return self.model.predict_proba(x) if hasattr(self.model, "predict_proba") else self.model.predict(x)


def penguin_frame() -> tuple[pd.DataFrame, pd.Series]:
    """The penguins' features (categorical columns as pandas categories) and species, complete rows or not."""
    data = penguins.data()
    return data.drop(columns=penguins.TARGET).astype(dict.fromkeys(CATEGORICAL, "category")), data[penguins.TARGET]


def xgboost_penguins(folder: Path, n_estimators: int = 30, file: str = "model.json", max_depth: int = 4) -> Boosted:
    import xgboost

    frame, species = penguin_frame()
    codes = pd.Categorical(species).codes  # 0..2 in the sorted names' order
    model = xgboost.XGBClassifier(
        n_estimators=n_estimators, max_depth=max_depth, enable_categorical=True, random_state=0
    )
    model.fit(frame, codes)
    return _saved(folder, model, file, frame, species, lambda path: model.save_model(path))


def lightgbm_penguins(folder: Path, n_estimators: int = 30) -> Boosted:
    import lightgbm

    frame, species = penguin_frame()
    model = lightgbm.LGBMClassifier(n_estimators=n_estimators, num_leaves=8, verbose=-1, random_state=0)
    model.fit(frame, pd.Categorical(species).codes)
    return _saved(folder, model, "model.txt", frame, species, lambda path: model.booster_.save_model(path))


def lightgbm_cancer(folder: Path, n_estimators: int = 40) -> Boosted:
    import lightgbm
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame, labels = data.data, data.target.map(dict(enumerate(data.target_names)))  # "malignant", "benign"
    model = lightgbm.LGBMClassifier(n_estimators=n_estimators, num_leaves=8, verbose=-1, random_state=0)
    model.fit(frame, (labels == "malignant").astype(int))  # class 1: "malignant", the later name in sorted order
    return _saved(folder, model, "model.txt", frame, labels, lambda path: model.booster_.save_model(path))


def regression(folder: Path, library: str, file: str = "model.json", numbers_only: bool = False) -> Boosted:
    """Each library's squared-error regression of the penguins' body mass on the other columns (``numbers_only``:
    on the number columns alone, so that an XGBoost file has no categories to move; ``file``: XGBoost's file name)."""
    frame, _ = penguin_frame()
    known = frame["body_mass_g"].notna()
    x, y = frame[known].drop(columns="body_mass_g"), frame.loc[known, "body_mass_g"]
    if numbers_only:
        x = x.drop(columns=CATEGORICAL)
    if library == "xgboost":
        import xgboost

        model = xgboost.XGBRegressor(n_estimators=20, max_depth=3, enable_categorical=True, random_state=0).fit(x, y)
        return _saved(folder, model, file, x, y, lambda path: model.save_model(path))
    import lightgbm

    model = lightgbm.LGBMRegressor(n_estimators=20, num_leaves=8, verbose=-1, random_state=0).fit(x, y)
    return _saved(folder, model, "model.txt", x, y, lambda path: model.booster_.save_model(path))


def _saved(folder: Path, model: Any, file: str, frame: pd.DataFrame, target: pd.Series, save: Any) -> Boosted:
    folder.mkdir(parents=True, exist_ok=True)
    path, csv = folder / file, folder / "train.csv"
    save(str(path))
    name = str(target.name)
    frame.assign(**{name: target}).to_csv(csv, index=False)
    return Boosted(model, path, csv, name, frame)


def xgboost_cancer(folder: Path, n_estimators: int = 50, file: str = "model.json") -> Boosted:
    """XGBoost's binary classifier on the breast cancer data (30 numbers, none missing): the benchmark's model
    (``file``: ``model.ubj`` saves it as UBJSON, kept as written since it has no categories)."""
    import xgboost
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame, labels = data.data, data.target.map(dict(enumerate(data.target_names)))
    model = xgboost.XGBClassifier(n_estimators=n_estimators, max_depth=4, random_state=0)
    model.fit(frame, (labels == "malignant").astype(int))  # class 1: "malignant", the later name in sorted order
    return _saved(folder, model, file, frame, labels, lambda path: model.save_model(path))
