"""Safe loading: what the loader refuses (with a one-line reason) and what it accepts."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import joblib
import numpy as np
import pytest
import skops.io
from model_server.repository import artifact as artifact_module
from model_server.repository.artifact import DEFAULT_TRUSTED_TYPES, ModelLoadError, load_artifact
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from .. import custom_steps

CUSTOM_TYPE = f"{custom_steps.__name__}.double"


def complete(model_dir: Path) -> Path:
    """A version folder is complete with its metadata.json: ``{}`` where the test wrote none."""
    if model_dir.is_dir() and not (model_dir / "metadata.json").exists():
        (model_dir / "metadata.json").write_text("{}")
    return model_dir


def refusal(model_dir: Path, *args: Any) -> str:
    complete(model_dir)
    with pytest.raises(ModelLoadError) as caught:
        load_artifact(model_dir, *args)
    message = str(caught.value)
    assert "\n" not in message, "a refusal is one line"
    return message


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write_metadata(model_dir: Path, **changes: Any) -> None:
    path = model_dir / "metadata.json"
    metadata = json.loads(path.read_text())
    metadata.update(changes)
    path.write_text(json.dumps(metadata))


@pytest.fixture(scope="module")
def iris() -> tuple[np.ndarray, np.ndarray]:
    return load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def fitted(iris) -> LogisticRegression:
    return LogisticRegression(max_iter=1000).fit(*iris)


class Boom:
    """Unpickling this runs code: it creates the file named by ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


# --- the trained default model ----------------------------------------------------------------


def test_loads_the_trained_model(model_dir: Path, metadata: dict, estimator, rows: np.ndarray) -> None:
    artifact = load_artifact(model_dir)

    assert artifact.path == model_dir / "model.skops"
    assert artifact.sha256 == sha256(model_dir / "model.skops") == metadata["sha256"]
    assert artifact.metadata == metadata
    np.testing.assert_array_equal(artifact.estimator.predict(rows), estimator.predict(rows))


def test_the_trained_model_needs_only_the_default_trusted_types(model_dir: Path) -> None:
    assert set(skops.io.get_untrusted_types(file=model_dir / "model.skops")) <= set(DEFAULT_TRUSTED_TYPES)


@pytest.mark.parametrize("trusted", [[], ["0" * 64]], ids=["none", "others"])
def test_model_sha256_does_not_gate_skops(model_dir: Path, metadata: dict, trusted: list[str]) -> None:
    # MODEL_SHA256 lists the pickles trusted to run; a skops file is checked by its types and
    # by the digest its own metadata.json records (a repository holds many skops versions).
    assert load_artifact(model_dir, trusted).sha256 == metadata["sha256"]


# --- the model directory ----------------------------------------------------------------------


def test_missing_directory(tmp_path: Path) -> None:
    assert "does not exist" in refusal(tmp_path / "absent")


def test_no_artifact(tmp_path: Path) -> None:
    (tmp_path / "README.txt").write_text("not a model")

    message = refusal(tmp_path)

    assert "no model artifact" in message
    assert "model.skops" in message


def test_artifact_named_in_metadata_must_exist(model_copy: Path) -> None:
    write_metadata(model_copy, artifact="other.skops")

    assert "other.skops" in refusal(model_copy)


@pytest.mark.parametrize("name", ["../model.skops", "/etc/passwd", "sub/model.skops", 5])
def test_artifact_named_in_metadata_must_be_a_file_name(model_copy: Path, name: object) -> None:
    write_metadata(model_copy, artifact=name)

    assert "must be a file name" in refusal(model_copy)


def test_unsupported_format_named_in_metadata(model_copy: Path) -> None:
    shutil.copy(model_copy / "model.skops", model_copy / "model.onnx")
    write_metadata(model_copy, artifact="model.onnx", sha256=None)

    assert "unsupported artifact format '.onnx'" in refusal(model_copy)


@pytest.mark.parametrize(("content", "fragment"), [("{", "not valid JSON"), ("[1, 2]", "must hold a JSON object")])
def test_metadata_must_be_a_json_object(model_copy: Path, content: str, fragment: str) -> None:
    (model_copy / "metadata.json").write_text(content)

    assert fragment in refusal(model_copy)


def test_metadata_is_required(model_copy: Path) -> None:
    (model_copy / "metadata.json").unlink()

    with pytest.raises(ModelLoadError) as caught:
        load_artifact(model_copy)

    assert str(caught.value) == (
        f"{model_copy / 'metadata.json'} is missing: a version loads only when complete (metadata.json records its "
        "artifact's SHA-256; python -m model_server.package writes it)"
    )


def test_metadata_without_a_sha256_still_loads(model_copy: Path, estimator, rows: np.ndarray) -> None:
    (model_copy / "metadata.json").write_text("{}")

    artifact = load_artifact(model_copy)

    assert artifact.metadata == {}
    np.testing.assert_array_equal(artifact.estimator.predict(rows), estimator.predict(rows))


def test_metadata_sha256_mismatch(model_copy: Path) -> None:
    write_metadata(model_copy, sha256="f" * 64)

    message = refusal(model_copy)

    assert "metadata.json records " + "f" * 64 in message
    assert sha256(model_copy / "model.skops") in message


def test_modified_artifact_is_refused_by_its_recorded_sha256(model_copy: Path, fitted) -> None:
    skops.io.dump(fitted, model_copy / "model.skops")  # another, valid model in place of the trained one

    assert "metadata.json records" in refusal(model_copy)


# --- skops ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [b"", b"not a zip file at all", b"PK\x03\x04" + b"\x00" * 64],
    ids=["empty", "text", "zip-magic-only"],
)
def test_corrupt_skops_file(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "model.skops").write_bytes(content)

    message = refusal(tmp_path)

    assert "model.skops is not a readable skops file" in message


def test_truncated_skops_file(model_dir: Path, tmp_path: Path) -> None:
    data = (model_dir / "model.skops").read_bytes()
    (tmp_path / "model.skops").write_bytes(data[: len(data) // 2])

    assert "not a readable skops file" in refusal(tmp_path)


@pytest.fixture
def untrusted_dir(tmp_path: Path, iris) -> Path:
    """A skops pipeline whose first step is a function skops does not trust by default."""
    model = make_pipeline(FunctionTransformer(custom_steps.double), LogisticRegression(max_iter=1000)).fit(*iris)
    skops.io.dump(model, tmp_path / "model.skops")
    assert skops.io.get_untrusted_types(file=tmp_path / "model.skops") == [CUSTOM_TYPE]
    return complete(tmp_path)


def test_untrusted_type_is_refused(untrusted_dir: Path) -> None:
    message = refusal(untrusted_dir)

    assert f"contains untrusted types {CUSTOM_TYPE}" in message
    assert "MODEL_TRUSTED_TYPES" in message


def test_untrusted_type_is_refused_even_with_a_matching_sha256(untrusted_dir: Path) -> None:
    # A pinned digest is no substitute for the type allow-list of skops files.
    assert "untrusted types" in refusal(untrusted_dir, [sha256(untrusted_dir / "model.skops")])


def test_trusting_another_type_does_not_admit_it(untrusted_dir: Path) -> None:
    assert CUSTOM_TYPE in refusal(untrusted_dir, (), ("sklearn.something.Else",))


def test_trusted_types_admit_it(untrusted_dir: Path, iris) -> None:
    artifact = load_artifact(untrusted_dir, (), (CUSTOM_TYPE,))

    x, y = iris
    expected = make_pipeline(FunctionTransformer(custom_steps.double), LogisticRegression(max_iter=1000)).fit(x, y)
    np.testing.assert_array_equal(artifact.estimator.predict(x), expected.predict(x))


def test_trusted_types_through_the_app(untrusted_dir: Path, app_factory, iris) -> None:
    with pytest.raises(ModelLoadError, match="untrusted types"):
        app_factory(model_dir=untrusted_dir)

    client = app_factory(model_dir=untrusted_dir, model_trusted_types=[CUSTOM_TYPE]).test_client()

    x = iris[0][::10]
    response = client.post("/predict", json={"features": x.tolist()})
    assert response.status_code == 200
    assert (
        response.get_json()["prediction"]
        == load_artifact(untrusted_dir, (), (CUSTOM_TYPE,)).estimator.predict(x).tolist()
    )


def test_skops_object_without_predict(tmp_path: Path, iris) -> None:
    skops.io.dump(StandardScaler().fit(iris[0]), tmp_path / "model.skops")

    assert "holds a StandardScaler, which has no predict()" in refusal(tmp_path)


# --- pickle and joblib ------------------------------------------------------------------------


def dump_pickle(obj: object, path: Path) -> Path:
    """``obj`` pickled at ``path``, in a complete version folder."""
    if path.suffix == ".joblib":
        joblib.dump(obj, path)
    else:
        path.write_bytes(pickle.dumps(obj))
    complete(path.parent)
    return path


@pytest.mark.parametrize("name", ["model.pkl", "model.joblib"])
def test_pickle_without_sha256_is_refused_before_unpickling(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "code-ran"
    path = dump_pickle(Boom(marker), tmp_path / name)

    message = refusal(tmp_path)

    assert f"refusing to unpickle {name}" in message
    assert sha256(path) in message, "the operator is told the digest to pin"
    assert "add its digest to MODEL_SHA256" in message
    assert not marker.exists(), "the pickle was never opened"


@pytest.mark.parametrize("name", ["model.pkl", "model.joblib"])
def test_pickle_with_a_wrong_sha256_is_refused_before_unpickling(tmp_path: Path, name: str) -> None:
    marker = tmp_path / "code-ran"
    path = dump_pickle(Boom(marker), tmp_path / name)

    message = refusal(tmp_path, ["a" * 64, "b" * 64])

    assert f"refusing to unpickle {name} (SHA-256 {sha256(path)})" in message
    assert not marker.exists()


def test_one_digest_given_as_a_string_is_not_a_list_of_substrings(tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    path = dump_pickle(Boom(marker), tmp_path / "model.pkl")

    assert "refusing to unpickle" in refusal(tmp_path, "0" + sha256(path))
    assert not marker.exists()


@pytest.mark.parametrize("name", ["model.pkl", "model.joblib"])
def test_pickle_with_the_right_sha256_loads(tmp_path: Path, name: str, fitted, iris) -> None:
    path = dump_pickle(fitted, tmp_path / name)

    artifact = load_artifact(tmp_path, ["a" * 64, sha256(path)])  # one of the trusted digests

    assert artifact.path == path
    np.testing.assert_array_equal(artifact.estimator.predict(iris[0]), fitted.predict(iris[0]))


def test_pickle_through_the_app(tmp_path: Path, app_factory, fitted, iris) -> None:
    path = dump_pickle(fitted, tmp_path / "model.joblib")
    with pytest.raises(ModelLoadError, match="refusing to unpickle"):
        app_factory(model_dir=tmp_path)

    client = app_factory(model_dir=tmp_path, model_sha256=sha256(path).upper()).test_client()

    x = iris[0][::5]
    assert client.post("/predict", json={"features": x.tolist()}).get_json()["prediction"] == fitted.predict(x).tolist()
    # With no metadata.json, named and versioned after its repository folders.
    assert client.get("/v2/models/iris-rf/versions/1").get_json()["name"] == "iris-rf"
    assert client.get(f"/v2/models/{tmp_path.name}").status_code == 404


@pytest.mark.parametrize("obj", [{"predict": "not callable"}, [1, 2, 3], "model"], ids=["dict", "list", "str"])
def test_pickle_without_predict_is_refused(tmp_path: Path, obj: object) -> None:
    path = dump_pickle(obj, tmp_path / "model.pkl")

    assert "which has no predict()" in refusal(tmp_path, [sha256(path)])


def test_corrupt_pickle_with_its_sha256(tmp_path: Path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x80\x05garbage")

    assert "could not be unpickled" in refusal(tmp_path, [sha256(path)])


def test_skops_is_preferred_to_pickle(model_copy: Path, estimator, fitted) -> None:
    dump_pickle(fitted, model_copy / "model.pkl")
    write_metadata(model_copy, artifact=None)  # no explicit choice: the search order decides

    assert load_artifact(model_copy).path.name == "model.skops"


# --- what the model must provide to be served -------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "fragment"),
    [
        ({"feature_names": ["a", "b"]}, "lists 2 feature names but the model takes 4"),
        ({"feature_names": 5}, "'feature_names' must be an array"),
        ({"feature_names": "abcd"}, "'feature_names' must be an array"),
        ({"class_names": 3}, "'class_names' must be an array"),
        ({"class_names": {"0": "setosa"}}, "'class_names' must be an array"),
    ],
)
def test_metadata_that_contradicts_the_model_is_refused(
    model_copy: Path, app_factory, changes: dict, fragment: str
) -> None:
    write_metadata(model_copy, **changes)

    with pytest.raises(ModelLoadError, match=fragment):
        app_factory(model_dir=model_copy)


def test_recorded_means_of_the_wrong_type_are_ignored(model_copy: Path, app_factory) -> None:
    # They only seed the warm-up row and a drift reference: zeros are used instead.
    write_metadata(model_copy, feature_means="x")
    assert app_factory(model_dir=model_copy).test_client().get("/v2/health/ready").status_code == 200


def test_model_whose_prediction_fails_is_refused(tmp_path: Path, app_factory) -> None:
    path = dump_pickle(_Broken(), tmp_path / "model.pkl")

    with pytest.raises(ModelLoadError, match="warm-up prediction failed: ValueError: no"):
        app_factory(model_dir=tmp_path, model_sha256=[sha256(path)])


def test_model_without_a_feature_count_is_refused(tmp_path: Path, app_factory) -> None:
    path = dump_pickle(_Broken(n_features=None), tmp_path / "model.pkl")

    with pytest.raises(ModelLoadError, match="cannot tell how many features"):
        app_factory(model_dir=tmp_path, model_sha256=[sha256(path)])


class _Broken:
    def __init__(self, n_features: int | None = 4) -> None:
        if n_features is not None:
            self.n_features_in_ = n_features

    def predict(self, rows: np.ndarray) -> np.ndarray:
        raise ValueError("no")


# --- what is verified is what is loaded ---------------------------------------------------------


@pytest.fixture
def swap_after_hashing(monkeypatch: pytest.MonkeyPatch) -> Callable[[Path, bytes], None]:
    """Arrange for ``path`` to hold ``content`` from the moment the loader has its SHA-256 digest.

    Another process replacing the file between the check and the load: if the loader read the
    file again after hashing it, it would load ``content``, which nobody verified.
    """

    def arrange(path: Path, content: bytes) -> None:
        real = hashlib.sha256

        class SwapOnDigest:
            def __init__(self, *data: bytes) -> None:
                self._digest = real(*data)

            def update(self, data: bytes) -> None:
                self._digest.update(data)

            def hexdigest(self) -> str:
                digest = self._digest.hexdigest()
                path.write_bytes(content)
                return digest

        monkeypatch.setattr(artifact_module, "hashlib", SimpleNamespace(sha256=SwapOnDigest))

    return arrange


@pytest.mark.parametrize("name", ["model.pkl", "model.joblib"])
def test_a_pickle_swapped_after_its_check_is_never_loaded(
    tmp_path: Path, name: str, fitted, iris, swap_after_hashing
) -> None:
    path = dump_pickle(fitted, tmp_path / name)
    pinned = sha256(path)
    marker = tmp_path / "code-ran"
    swap_after_hashing(path, dump_pickle(Boom(marker), tmp_path / f"evil-{name}").read_bytes())

    artifact = load_artifact(tmp_path, [pinned])

    assert not marker.exists(), "the swapped-in pickle ran"
    assert path.read_bytes() == (tmp_path / f"evil-{name}").read_bytes(), "the file was swapped"
    np.testing.assert_array_equal(artifact.estimator.predict(iris[0]), fitted.predict(iris[0]))
    assert artifact.sha256 == pinned


def test_a_skops_file_swapped_after_its_check_is_never_loaded(
    model_copy: Path, metadata: dict, fitted, swap_after_hashing, tmp_path: Path
) -> None:
    other = tmp_path / "other.skops"
    skops.io.dump(fitted, other)  # a valid model, but not the one metadata.json records
    swap_after_hashing(model_copy / "model.skops", other.read_bytes())

    artifact = load_artifact(model_copy)

    assert (model_copy / "model.skops").read_bytes() == other.read_bytes(), "the file was swapped"
    assert artifact.sha256 == metadata["sha256"]
    assert type(artifact.estimator).__name__ == "RandomForestClassifier", "the verified bytes were loaded"
