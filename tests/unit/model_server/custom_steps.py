"""Pipeline steps skops does not trust by default (imported by name when a test model loads)."""

from __future__ import annotations

import time

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


def double(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float64) * 2.0


class SlowToLoad(BaseEstimator, TransformerMixin):
    """An identity step whose loading holds the GIL for ``load_seconds``: a stand-in for a large model's load."""

    def __init__(self, load_seconds: float = 0.0) -> None:
        self.load_seconds = load_seconds

    def fit(self, x: np.ndarray, y: object = None) -> SlowToLoad:
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(x, dtype=np.float64)

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        end = time.perf_counter() + float(state.get("load_seconds", 0.0))
        while time.perf_counter() < end:  # busy, in Python: the GIL is held but for the interpreter's switches
            pass
