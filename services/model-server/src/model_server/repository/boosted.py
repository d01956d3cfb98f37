"""Gradient-boosted models read from their own files by Treelite: XGBoost (``model.json``, ``model.ubj``) and
LightGBM (``model.txt``). Neither library is in the image.

A version folder holds the model file and ``metadata.json``. The file is data, not code, yet its
SHA-256 is checked as every artifact's is (a swapped file is refused). Treelite's parser checks
the file's syntax, not its trees, and its evaluation trusts them: so before any row is predicted,
every tree is checked here (:func:`_check_trees`): each node but the root is the child of exactly
one node (so a walk from the root ends at a leaf), every split names a feature the model has, and
every category list and leaf vector lies within its array. A model with more than one target is
refused: its outputs are one target's. ``python -m model_server.package``
writes the ``boosted`` section of the metadata where the model was trained, with the native library::

    "boosted": {"library": "xgboost", "library_version": "3.2.0", "objective": "multi:softprob",
                "task": "multiclass", "reference": {"rows": [[...], ...], "outputs": [[...], ...]}}

``reference`` holds a sample of the training rows as the model takes them (a categorical column as
its category's code, ``null`` for a missing value) and what the native library predicted for each:
the probability of the positive class (binary), one per class (multiclass) or the value
(regression). At load, Treelite predicts the same rows and must agree within
:data:`REFERENCE_TOLERANCE` per row and class (relative to the value past 1: a regression's sums
of float32 leaves round to a few ulps of their magnitude), or the version is refused (``ModelLoadFailing``).

Served objectives: binary logistic (``binary:logistic``, LightGBM ``binary``), multiclass
probabilities (``multi:softprob``, ``multiclass``) and squared-error regression
(``reg:squarederror``, ``regression``). The metadata's objective must be one of them, and the
file must hold what Treelite reads as such (a binary classifier with a sigmoid, a multiclass
classifier with a softmax, a regressor with no transformation); anything else is refused.
A classifier's classes are the metadata's ``classes``, in the order of the model's outputs.
"""

from __future__ import annotations

import ctypes
import json
from typing import Any

import numpy as np

from .errors import ModelLoadError, one_line

# The model file's name -> the library that wrote it (an artifact named in metadata.json goes by its suffix).
BOOSTED_SUFFIXES = {".json": "xgboost", ".ubj": "xgboost", ".txt": "lightgbm"}
REFERENCE_TOLERANCE = 1e-6  # per row and class; relative to values past 1
# The library's objective -> the task served; and Treelite's task type (its TaskType enum) and output
# transformation for each task.
OBJECTIVES = {
    "xgboost": {"binary:logistic": "binary", "multi:softprob": "multiclass", "reg:squarederror": "regression"},
    "lightgbm": {"binary": "binary", "multiclass": "multiclass", "regression": "regression"},
}
TASKS = {(0, "sigmoid"): "binary", (2, "softmax"): "multiclass", (1, "identity"): "regression"}
TASK_NAMES = {0: "binary classifier", 1: "regressor", 2: "multiclass classifier", 3: "ranker", 4: "isolation forest"}


class BoostedModel:
    """A gradient-boosted model on Treelite, with the estimator interface the server describes and calls:
    ``n_features_in_``, ``predict`` and, for a classifier, ``classes_`` and ``predict_proba``."""

    def __init__(self, model: Any, library: str, task: str, n_features: int, objective: str) -> None:
        from treelite.gtil import gtil

        self.treelite_model, self.library, self.task, self.objective = model, library, task, objective
        self.n_features_in_ = n_features
        # XGBoost reads its input as float32 (its DMatrix), LightGBM as float64: Treelite is given the same.
        self._dtype = np.float32 if library == "xgboost" else np.float64
        self._config = gtil.GTILConfig(predict_type="default", nthread=1)  # one per model (runtime.TreeliteRuntime)
        self._predict = gtil._predict_impl

    def outputs(self, rows: np.ndarray) -> np.ndarray:
        """What the library predicts: one column (binary: the positive class's probability; regression) or k."""
        matrix = np.ascontiguousarray(rows, dtype=self._dtype)
        return self._predict(self.treelite_model, matrix, config=self._config).reshape(len(matrix), -1)

    def predict(self, rows: np.ndarray) -> np.ndarray:
        return self.outputs(rows)[:, 0]

    @property
    def kind(self) -> str:
        """What the model is, for its metadata: ``xgboost multi:softprob``."""
        return f"{self.library} {self.objective}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.kind})"


class BoostedClassifier(BoostedModel):
    def __init__(self, model: Any, library: str, task: str, n_features: int, objective: str, classes: list) -> None:
        super().__init__(model, library, task, n_features, objective)
        self.classes_ = np.asarray(classes)

    def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        outputs = self.outputs(rows)
        return np.column_stack([1.0 - outputs[:, 0], outputs[:, 0]]) if self.task == "binary" else outputs

    def predict(self, rows: np.ndarray) -> np.ndarray:
        return self.classes_.take(self.predict_proba(rows).argmax(axis=1))


def load_boosted(name: str, data: bytes, metadata: dict[str, Any]) -> BoostedModel:
    """The model in ``data`` (the file ``name``'s verified bytes), checked against the metadata's references."""
    library = BOOSTED_SUFFIXES[_suffix(name)]
    section = metadata.get("boosted")
    if not isinstance(section, dict):
        raise ModelLoadError(
            f"{name}: metadata.json has no 'boosted' section (the native library's reference predictions): "
            "package the model with python -m model_server.package"
        )
    if section.get("library") not in (None, library):
        raise ModelLoadError(f"{name}: metadata.json says {section.get('library')!r} wrote it, its name says {library}")
    objective = section.get("objective")
    if not isinstance(objective, str) or objective not in OBJECTIVES[library]:
        served = ", ".join(OBJECTIVES[library])
        raise ModelLoadError(f"{name}: unsupported objective {objective!r} (metadata.json; served: {served})")
    _check_declared_objective(name, data, library, objective)
    model = _parse(name, data, library)
    _check_trees(name, model)
    header = model.get_header_accessor()
    if int(header.get_field("num_target")[0]) != 1:
        raise ModelLoadError(f"{name}: a model of {int(header.get_field('num_target')[0])} targets; served: one")
    task_type, postprocessor = int(header.get_field("task_type")[0]), str(header.get_field("postprocessor"))
    task = OBJECTIVES[library][objective]
    if TASKS.get((task_type, postprocessor)) != task:
        kind = TASK_NAMES.get(task_type, f"task {task_type}")
        raise ModelLoadError(
            f"{name}: the file holds a {kind} whose output goes through {postprocessor!r}, not a {objective} model "
            "(served: binary logistic, multiclass softprob, squared-error regression)"
        )
    n_features = int(model.num_feature)
    if task == "regression":
        boosted = BoostedModel(model, library, task, n_features, objective)
    else:
        n_classes = 2 if task == "binary" else int(header.get_field("num_class")[0])
        classes = metadata.get("classes", list(range(n_classes)))
        if (
            not isinstance(classes, list)
            or len(classes) != n_classes
            or len(set(map(repr, classes))) != n_classes
            or not all(isinstance(c, str | int | float) and not isinstance(c, bool) for c in classes)
        ):
            raise ModelLoadError(f"{name}: metadata 'classes' must list the model's {n_classes} classes, each once")
        boosted = BoostedClassifier(model, library, task, n_features, objective, classes)
    _check_references(name, boosted, section.get("reference"))
    return boosted


def _suffix(name: str) -> str:
    return name[name.rfind(".") :].lower() if "." in name else ""


def _parse(name: str, data: bytes, library: str) -> Any:
    import treelite
    from treelite.core import _LIB, _check_call
    from treelite.util import c_str

    try:
        if library == "lightgbm":
            # The verified bytes, parsed from memory (treelite.frontend reads LightGBM text from a file only).
            handle, text = ctypes.c_void_p(), c_str(data.decode())
            _check_call(_LIB.TreeliteLoadLightGBMModelFromString(text, c_str("{}"), ctypes.byref(handle)))
            return treelite.Model(handle=handle)
        if _suffix(name) == ".ubj":
            return treelite.frontend.from_xgboost_ubjson(data)
        return treelite.frontend.from_xgboost_json(data)
    except Exception as exc:  # Treelite refuses a malformed or unsupported file with its own errors
        hint = ""
        if "categorical encoder" in str(exc) or "category_container" in str(exc):
            hint = " (an XGBoost model's categories: python -m model_server.package moves them to the signature)"
        raise ModelLoadError(f"{name} is not a {library} model Treelite reads: {one_line(exc)}{hint}") from None


def _check_declared_objective(name: str, data: bytes, library: str, objective: str) -> None:
    """The objective the file itself names, where it can be read without a parser of its own (LightGBM's text,
    XGBoost's JSON), must be the metadata's: another with the same output transformation (absolute error,
    quantiles, Huber) would otherwise pass for it. UBJSON's is checked by its transformation only."""
    named = None
    if library == "lightgbm":
        head = data[: 1 << 16].decode("utf-8", "replace")
        line = next((line for line in head.splitlines() if line.startswith("objective=")), "objective=")
        named = line.removeprefix("objective=").split(" ")[0] or None  # none: not LightGBM's text at all
    elif _suffix(name) == ".json":
        try:
            named = json.loads(data)["learner"]["objective"]["name"]
        except (ValueError, KeyError, TypeError):
            return  # not XGBoost JSON: Treelite's parser says why
    if named is not None and named != objective:
        raise ModelLoadError(f"{name}: the file's objective is {named!r}, metadata.json says {objective!r}")


def _check_trees(name: str, model: Any) -> None:
    """Every tree is a tree Treelite can walk safely (module docstring); ModelLoadError naming the first that is not."""
    n_features = int(model.num_feature)
    for index in range(int(model.num_tree)):
        tree = model.get_tree_accessor(index)
        n = int(tree.get_field("num_nodes")[0])
        kinds, left, right = (np.asarray(tree.get_field(f)) for f in ("node_type", "cleft", "cright"))
        split = np.asarray(tree.get_field("split_index"))
        inner = kinds != 0  # 0: a leaf; 1: a numerical split; 2: a categorical split
        children = np.concatenate([left[inner], right[inner]])
        problem = ""
        if n < 1 or any(len(a) != n for a in (kinds, left, right, split)):
            problem = "its node arrays disagree on its size"
        elif not np.array_equal(np.sort(children), np.arange(1, n)):
            problem = "a node other than the root is not the child of exactly one node"
        elif np.any((split[inner] < 0) | (split[inner] >= n_features)):
            problem = f"a split on a feature outside the model's {n_features}"
        elif not _within(tree, "category_list", inner & (kinds == 2)) or not _within(tree, "leaf_vector", ~inner):
            problem = "a category list or a leaf vector lies outside its array"
        if problem:
            raise ModelLoadError(f"{name}: tree {index} cannot be evaluated safely: {problem}")


def _within(tree: Any, field: str, nodes: np.ndarray) -> bool:
    size = len(tree.get_field(field))
    begin, end = (np.asarray(tree.get_field(f"{field}_{side}"))[nodes] for side in ("begin", "end"))
    return bool(np.all((begin >= 0) & (begin <= end) & (end <= size)))


def _check_references(name: str, model: BoostedModel, reference: Any) -> None:
    """Treelite's outputs on the reference rows must equal the native library's, within REFERENCE_TOLERANCE."""
    try:
        rows = np.asarray(reference["rows"], dtype=np.float64)  # JSON null -> NaN
        expected = np.asarray(reference["outputs"], dtype=np.float64)
    except (TypeError, KeyError, ValueError, OverflowError):
        raise ModelLoadError(f"{name}: metadata 'boosted.reference' must hold 'rows' and 'outputs' (numbers)") from None
    if rows.ndim != 2 or len(rows) == 0 or rows.shape[1] != model.n_features_in_:
        raise ModelLoadError(f"{name}: the reference rows must be a matrix of {model.n_features_in_} columns")
    actual = model.outputs(rows)
    if expected.shape != actual.shape and expected.size == actual.size:
        expected = expected.reshape(actual.shape)  # one output per row, written flat
    if expected.shape != actual.shape:
        raise ModelLoadError(f"{name}: reference outputs of shape {expected.shape}, Treelite gives {actual.shape}")
    error = np.abs(actual - expected) / np.maximum(1.0, np.abs(expected))
    if not np.all(error <= REFERENCE_TOLERANCE):
        row = int(np.nanargmax(np.where(np.isnan(error), np.inf, error).max(axis=1)))
        raise ModelLoadError(
            f"{name}: Treelite's predictions differ from {model.library}'s references (row {row}: "
            f"{actual[row].tolist()} against {expected[row].tolist()}; tolerance {REFERENCE_TOLERANCE:g})"
        )
