"""Runtimes that execute a fitted estimator: scikit-learn itself, or Treelite where it is exact.

scikit-learn's forests pay a few milliseconds of Python overhead per ``predict`` call whatever
the row count. Treelite's GTIL evaluates the same trees in C++ in tens of microseconds. It is
used only for estimators it imports and only after it reproduced scikit-learn on a validation
set built from the model's own split thresholds (each threshold, its neighbouring float32 values
and random points around them): labels identical and probabilities within
``PROBABILITY_TOLERANCE``. Otherwise the model is served by scikit-learn and the reason is
logged and published in the model metadata.

A scikit-learn Pipeline whose last step is such a forest (preprocessing, then the trees) runs
its forest on Treelite (:class:`PipelineRuntime`), checked as above on its own input space. Its
preprocessing runs compiled to NumPy (:mod:`.preprocessing`; the runtime is named
``numpy+treelite``) where it is made of steps that module knows and reproduces scikit-learn
exactly on the model's signature, else in scikit-learn (``sklearn+treelite``).

A gradient-boosted model (XGBoost, LightGBM: :mod:`..repository.boosted`) is Treelite's from the
start, checked at load against the predictions its library made when it was packaged
(:class:`BoostedRuntime`).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..repository.boosted import REFERENCE_TOLERANCE, BoostedModel
from ..repository.signature import Signature
from .preprocessing import compile_preprocessing

log = logging.getLogger(__name__)

COMPILED_PIPELINE = "numpy+treelite"  # the runtime whose model takes the rows as validated (.preprocessing)
PROBABILITY_TOLERANCE = 1e-12  # absolute; observed: bit-for-bit equal
VALIDATION_ROWS = 4096
# Estimators whose predict() is classes_[argmax(predict_proba)] (classifiers) or the mean of
# the trees (regressors), which is exactly what Treelite computes for them.
TREELITE_ESTIMATORS = frozenset(
    {"RandomForestClassifier", "ExtraTreesClassifier", "RandomForestRegressor", "ExtraTreesRegressor"}
)


class Runtime(Protocol):
    name: str

    def predict(self, rows: np.ndarray) -> np.ndarray: ...

    def predict_proba(self, rows: np.ndarray) -> np.ndarray: ...

    def predict_with_probabilities(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class SklearnRuntime:
    """The estimator's own ``predict`` and ``predict_proba``.

    An estimator fitted on a DataFrame of number columns only is given the rows as an array, in
    its signature's column order (checked before it is called); scikit-learn's "X does not have
    valid feature names" would warn of that deliberate call in every process, so it is silenced
    for such an estimator, and that warning only.
    """

    name = "sklearn"

    def __init__(self, estimator: Any) -> None:
        self._estimator = estimator
        self._named = hasattr(estimator, "feature_names_in_")

    def predict(self, rows: np.ndarray) -> np.ndarray:
        with self._quiet():
            return np.asarray(self._estimator.predict(rows))

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        with self._quiet():
            return self._estimator.predict_proba(rows)

    def _quiet(self) -> contextlib.AbstractContextManager[Any]:
        return _unnamed_rows_accepted() if self._named else contextlib.nullcontext()

    def predict_with_probabilities(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # Both calls: predict() is not argmax(predict_proba) for every estimator.
        return self.predict(rows), self.predict_proba(rows)


@contextlib.contextmanager
def _unnamed_rows_accepted() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="X does not have valid feature names", category=UserWarning)
        yield


class TreeliteRuntime:
    name = "treelite"

    def __init__(self, estimator: Any) -> None:
        import treelite
        from treelite.gtil import gtil  # the module gtil.predict lives in

        self._model = treelite.sklearn.import_model(estimator)
        self._classes = getattr(estimator, "classes_", None)
        # gtil.predict(model, rows, nthread=1) builds this configuration anew on every call (JSON, then
        # a parse in C++: a fifth of a one-row call); it is immutable, so one per model serves every call.
        self._config = gtil.GTILConfig(predict_type="default", nthread=1)
        self._predict = gtil._predict_impl  # what gtil.predict calls with it, in the pinned treelite

    def _raw(self, rows: np.ndarray) -> np.ndarray:
        # scikit-learn compares float32 inputs with its thresholds: round the same way.
        rows32 = np.ascontiguousarray(rows, dtype=np.float32).astype(np.float64)
        return self._predict(self._model, rows32, config=self._config).reshape(len(rows), -1)

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        return self._raw(rows)

    def predict(self, rows: np.ndarray) -> np.ndarray:
        return self._labels(self._raw(rows))

    def predict_with_probabilities(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raw = self._raw(rows)
        return self._labels(raw), raw

    def _labels(self, raw: np.ndarray) -> np.ndarray:
        if self._classes is None:
            return raw[:, 0]
        return self._classes.take(raw.argmax(axis=1))


class PipelineRuntime:
    """A Pipeline's steps before its last (scikit-learn's, or compiled: :mod:`.preprocessing`), then its forest."""

    def __init__(self, preprocessing: Any, final: Runtime, name: str = "sklearn+treelite") -> None:
        self._preprocessing = preprocessing
        self._final = final
        self.name = name

    def _features(self, rows: Any) -> np.ndarray:
        features = self._preprocessing.transform(rows)
        features = features.toarray() if hasattr(features, "toarray") else np.asarray(features)  # sparse one-hot: dense
        # The forest takes float32 values (TreeliteRuntime): refuse what scikit-learn's forest refuses, a value past
        # float32 (a scaled number; a bare forest's matrix is within float32 already, rest/validation.py).
        with np.errstate(over="ignore"):
            if np.isinf(features.astype(np.float32)).any():
                raise ValueError("Input X contains infinity or a value too large for dtype('float32').")
        return features

    def predict(self, rows: Any) -> np.ndarray:
        return self._final.predict(self._features(rows))

    def predict_proba(self, rows: Any) -> np.ndarray:
        return self._final.predict_proba(self._features(rows))

    def predict_with_probabilities(self, rows: Any) -> tuple[np.ndarray, np.ndarray]:
        return self._final.predict_with_probabilities(self._features(rows))


class BoostedRuntime:
    """A gradient-boosted model, on Treelite already: its predictions as the library makes them."""

    name = "treelite"

    def __init__(self, model: BoostedModel) -> None:
        self._model = model

    def predict(self, rows: np.ndarray) -> np.ndarray:
        return self._model.predict(rows)

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        return self._model.predict_proba(rows)  # type: ignore[attr-defined]  # a BoostedClassifier's only

    def predict_with_probabilities(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        probabilities = self.predict_proba(rows)
        return self._model.classes_.take(probabilities.argmax(axis=1)), probabilities  # type: ignore[attr-defined]


@dataclass(frozen=True)
class RuntimeChoice:
    runtime: Runtime
    reason: str


def select_runtime(estimator: Any, preference: str = "auto", signature: Signature | None = None) -> RuntimeChoice:
    """The fastest runtime that is exact for ``estimator`` (``preference="sklearn"`` forces it).

    With the model's ``signature``, a Pipeline's preprocessing before a forest is compiled where it can be.
    """
    if isinstance(estimator, BoostedModel):
        return RuntimeChoice(
            BoostedRuntime(estimator),
            f"treelite: a {estimator.library} {estimator.objective} model, equal to {estimator.library}'s predictions "
            f"on its reference rows within {REFERENCE_TOLERANCE:g}",
        )
    sklearn_runtime = SklearnRuntime(estimator)
    kind = type(estimator).__name__
    if preference == "sklearn":
        return RuntimeChoice(sklearn_runtime, "MODEL_RUNTIME=sklearn")
    steps = getattr(estimator, "steps", None)
    if kind == "Pipeline" and steps and len(steps) > 1 and type(steps[-1][1]).__name__ in TREELITE_ESTIMATORS:
        forest = select_runtime(steps[-1][1], preference)
        if not isinstance(forest.runtime, TreeliteRuntime):
            return RuntimeChoice(sklearn_runtime, f"Pipeline ending in {forest.reason.removeprefix('no exact ')}")
        before, final = ", ".join(name for name, _ in steps[:-1]), type(steps[-1][1]).__name__
        compiled, why = compile_preprocessing(estimator[:-1], signature) if signature else (None, "no signature")
        if compiled is not None:
            return RuntimeChoice(
                PipelineRuntime(compiled, forest.runtime, COMPILED_PIPELINE),
                f"Pipeline: its steps {before} compiled to NumPy ({why}), its {final} on {forest.reason}",
            )
        return RuntimeChoice(
            PipelineRuntime(estimator[:-1], forest.runtime),
            f"Pipeline: its steps {before} on scikit-learn (not compiled: {why}), its {final} on {forest.reason}",
        )
    if kind not in TREELITE_ESTIMATORS:
        return RuntimeChoice(sklearn_runtime, f"no exact fast runtime for {kind}")
    try:
        candidate = TreeliteRuntime(estimator)
        mismatch = _compare(sklearn_runtime, candidate, validation_rows(estimator), estimator)
    except Exception as exc:  # an import or evaluation failure means: not usable, not fatal
        return RuntimeChoice(sklearn_runtime, f"treelite failed on {kind}: {type(exc).__name__}: {exc}")
    if mismatch:
        return RuntimeChoice(sklearn_runtime, f"treelite differs from scikit-learn on {kind}: {mismatch}")
    return RuntimeChoice(
        candidate,
        f"treelite reproduced scikit-learn on {VALIDATION_ROWS} validation rows "
        f"(labels identical, probabilities within {PROBABILITY_TOLERANCE:g})",
    )


def validation_rows(estimator: Any, n: int = VALIDATION_ROWS, seed: int = 0) -> np.ndarray:
    """Rows that probe every split: thresholds, their float32 neighbours, points between, and missing values."""
    rng = np.random.default_rng(seed)
    n_features = int(estimator.n_features_in_)
    per_feature: list[list[float]] = [[] for _ in range(n_features)]
    for tree in getattr(estimator, "estimators_", []):
        structure = tree.tree_
        for feature, threshold in zip(structure.feature, structure.threshold, strict=True):
            if feature >= 0:
                per_feature[feature].append(float(threshold))
    columns = []
    for values in per_feature:
        thresholds = np.unique(np.asarray(values or [0.0], dtype=np.float64))
        as32 = thresholds.astype(np.float32)
        candidates = np.concatenate(
            [
                thresholds,
                np.nextafter(as32, np.float32(np.inf)).astype(np.float64),
                np.nextafter(as32, np.float32(-np.inf)).astype(np.float64),
                rng.uniform(thresholds.min() - 1.0, thresholds.max() + 1.0, size=len(thresholds) * 2),
            ]
        )
        columns.append(rng.choice(candidates, size=n))
    rows = np.column_stack(columns)
    # Missing values too (a nullable column's NaN): one row in 8 has one, in each column in turn.
    missing = np.arange(0, n, 8)
    rows[missing, missing // 8 % n_features] = np.nan
    return rows


def _compare(reference: SklearnRuntime, candidate: TreeliteRuntime, rows: np.ndarray, estimator: Any) -> str:
    expected_labels, labels = reference.predict(rows), candidate.predict(rows)
    if not np.array_equal(expected_labels, labels):
        return f"{int(np.sum(expected_labels != labels))} of {len(rows)} labels differ"
    if hasattr(estimator, "predict_proba"):
        expected, actual = reference.predict_proba(rows), candidate.predict_proba(rows)
        if expected.shape != actual.shape:
            return f"probability shape {actual.shape} instead of {expected.shape}"
        error = float(np.max(np.abs(expected - actual)))
        if error > PROBABILITY_TOLERANCE:
            return f"probabilities differ by up to {error:g}"
    return ""
