"""What a client sees of a model repository: the index, refused load/unload, versions, /predict, readiness.

The repository of this module holds two models: iris (versions 1 and 2, both served: policy
``all``; each version predicts differently, see :mod:`.versions`) and wine (13 features, another
estimator). The stock ``tritonclient`` talks to the app over real HTTP (a server thread).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tritonclient.http as triton
from flask import Flask
from flask.testing import FlaskClient
from tritonclient.utils import InferenceServerException

from ..helpers import MODEL, assert_error, serving, v2_input
from ..versions import ROW, WINE, Replica, label_of, publish_iris, publish_wine, set_policy, wine_model, wine_rows

INDEX = "/v2/repository/index"
EVERYTHING = [
    {"name": MODEL, "version": "1", "state": "READY", "reason": ""},
    {"name": MODEL, "version": "2", "state": "READY", "reason": ""},
    {"name": WINE, "version": "1", "state": "READY", "reason": ""},
]


@pytest.fixture(scope="module")
def two_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("two-models")
    publish_iris(root, 1)
    publish_iris(root, 2)
    set_policy(root, {"all": {}})
    publish_wine(root)
    return root


@pytest.fixture
def make(app_factory: Callable[..., Flask], two_models: Path) -> Callable[..., Flask]:
    return lambda **settings: app_factory(model_repository=two_models, **settings)


@pytest.fixture
def client(make: Callable[..., Flask]) -> FlaskClient:
    return make(default_model=MODEL).test_client()


# --- the index ---------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b"", b"  \n", b"{}", b'{"ready": false}'], ids=["empty", "blank", "{}", "false"])
def test_index_lists_every_version(client: FlaskClient, body: bytes) -> None:
    response = client.post(INDEX, data=body, content_type="application/json")

    assert response.status_code == 200
    assert response.get_json() == EVERYTHING


def test_index_ready_only(app_factory: Callable[..., Flask], tmp_path: Path) -> None:
    publish_iris(tmp_path, 1)
    publish_iris(tmp_path, 2)
    (tmp_path / MODEL / "2" / "model.skops").write_bytes(b"garbage")
    client = app_factory(model_repository=tmp_path).test_client()

    everything = client.post(INDEX, json={}).get_json()
    ready = client.post(INDEX, json={"ready": True}).get_json()

    assert [(e["version"], e["state"]) for e in everything] == [("1", "READY"), ("2", "UNAVAILABLE")]
    assert "metadata.json records" in everything[1]["reason"]
    assert ready == [everything[0]]


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"{", 400, "not valid JSON"),
        (b"[]", 422, "must be a JSON object"),
        (b'"ready"', 422, "must be a JSON object"),
        (b'{"ready": "yes"}', 422, "'ready' must be true or false"),
        (b'{"ready": 1}', 422, "'ready' must be true or false"),
    ],
)
def test_index_refuses_bad_bodies_with_json(client: FlaskClient, body: bytes, status: int, fragment: str) -> None:
    assert_error(client.post(INDEX, data=body, content_type="application/json"), status, fragment)


def test_index_is_post_only(client: FlaskClient) -> None:
    assert_error(client.get(INDEX), 405, "method not allowed")


@pytest.mark.parametrize("action", ["load", "unload"])
def test_load_and_unload_are_refused(client: FlaskClient, action: str) -> None:
    response = client.post(f"/v2/repository/models/{MODEL}/{action}", json={})

    assert_error(response, 400, f"explicit model {action} is not allowed", "publish or remove a version directory")


def test_the_stock_triton_client(client: FlaskClient) -> None:
    with serving(client.application) as port:
        triton_client = triton.InferenceServerClient(f"127.0.0.1:{port}")
        try:
            assert "model_repository" in triton_client.get_server_metadata()["extensions"]
            assert triton_client.get_model_repository_index() == EVERYTHING
            for call, action in ((triton_client.load_model, "load"), (triton_client.unload_model, "unload")):
                with pytest.raises(InferenceServerException) as refused:
                    call(MODEL)
                assert f"explicit model {action} is not allowed" in refused.value.message()
                assert refused.value.status() == "400"
            assert triton_client.get_model_repository_index() == EVERYTHING, "nothing changed"

            assert triton_client.is_model_ready(MODEL, "1")
            assert not triton_client.is_model_ready(MODEL, "3")
            assert triton_client.get_model_metadata(MODEL)["versions"] == ["1", "2"]
            tensor = triton.InferInput("input-0", [1, 4], "FP64")
            tensor.set_data_from_numpy(np.asarray([ROW]))
            for version in ("1", "2"):
                result = triton_client.infer(MODEL, [tensor], model_version=version)
                assert result.get_response()["model_version"] == version
                assert result.as_numpy("predict").tolist() == [label_of(int(version))]
        finally:
            triton_client.close()


# --- versions on the V2 API ----------------------------------------------------------------


@pytest.mark.parametrize("version", [1, 2])
def test_a_versioned_infer_reaches_exactly_that_version(client: FlaskClient, version: int) -> None:
    response = client.post(f"/v2/models/{MODEL}/versions/{version}/infer", json={"inputs": [v2_input(ROW, [1, 4])]})

    assert response.get_json()["model_version"] == str(version)
    assert response.get_json()["outputs"][0]["data"] == [label_of(version)]


def test_unversioned_reaches_the_newest(client: FlaskClient) -> None:
    body = client.post(f"/v2/models/{MODEL}/infer", json={"inputs": [v2_input(ROW, [1, 4])]}).get_json()

    assert (body["model_version"], body["outputs"][0]["data"]) == ("2", [label_of(2)])
    assert client.get(f"/v2/models/{MODEL}").get_json()["versions"] == ["1", "2"]
    assert client.get(f"/v2/models/{MODEL}/versions/1").get_json()["versions"] == ["1"]


@pytest.mark.parametrize("suffix", ["", "/ready", "/infer"])
def test_an_unknown_version_is_404(client: FlaskClient, suffix: str) -> None:
    method = "POST" if suffix == "/infer" else "GET"
    response = client.open(f"/v2/models/{MODEL}/versions/3{suffix}", method=method, json={})

    assert_error(response, 404, "no version '3' loaded", "loaded versions: '1', '2'")


@pytest.mark.parametrize("version", ["abc", "01", "1.0", "-1", "0", "+1", "99999999999999999999"])
def test_a_version_that_is_not_a_positive_integer_is_404(client: FlaskClient, version: str) -> None:
    response = client.post(f"/v2/models/{MODEL}/versions/{version}/infer", json={"inputs": [v2_input(ROW, [1, 4])]})

    assert_error(response, 404, f"no version '{version}'")


def test_the_second_model_has_its_own_shape(client: FlaskClient) -> None:
    rows = wine_rows()
    body = {"inputs": [v2_input(rows.ravel().tolist(), list(rows.shape))]}

    response = client.post(f"/v2/models/{WINE}/infer", json=body)

    assert response.get_json()["outputs"][0]["data"] == wine_model().predict(rows).tolist()
    assert client.get(f"/v2/models/{WINE}").get_json()["inputs"][0]["shape"] == [-1, 13]
    assert_error(client.post(f"/v2/models/{WINE}/infer", json={"inputs": [v2_input(ROW, [1, 4])]}), 422, "13")


# --- /predict: the default model ------------------------------------------------------------


def test_predict_names_the_version_that_answered(client: FlaskClient) -> None:
    response = client.post("/predict", json={"features": ROW})

    assert response.headers["X-Model-Version"] == "2"
    assert response.get_json()["prediction"] == [label_of(2)]


def test_default_model_picks_the_model(make: Callable[..., Flask]) -> None:
    client = make(default_model=WINE).test_client()
    rows = wine_rows()

    response = client.post("/predict", json={"features": rows.tolist()})

    assert response.get_json()["prediction"] == wine_model().predict(rows).tolist()
    assert response.headers["X-Model-Version"] == "1"


def test_two_models_and_no_default_model_is_a_404_that_says_what_to_set(make: Callable[..., Flask]) -> None:
    client = make().test_client()

    assert_error(client.post("/predict", json={"features": ROW}), 404, "set DEFAULT_MODEL", f"'{MODEL}', '{WINE}'")
    assert client.get("/v2/health/ready").status_code == 200, "the V2 API serves both"


def test_the_only_model_is_the_default(app_factory: Callable[..., Flask], tmp_path: Path) -> None:
    publish_wine(tmp_path)

    response = app_factory(model_repository=tmp_path).test_client().post("/predict", json={"features": [1.0] * 13})

    assert (response.status_code, response.headers["X-Model-Version"]) == (200, "1")


# --- readiness --------------------------------------------------------------------------------


def test_not_ready_until_a_version_is_published_and_synced(app_factory: Callable[..., Flask], tmp_path: Path) -> None:
    replica = Replica(app_factory(model_repository=tmp_path, model_poll_seconds=1))
    assert (replica.client.get("/v2/health/ready").status_code, replica.index()) == (503, [])
    assert_error(replica.client.post("/predict", json={"features": ROW}), 404, "models served: none")

    publish_iris(tmp_path, 1)
    assert replica.client.get("/v2/health/ready").status_code == 503, "published, not yet synced"
    replica.sync()

    assert replica.client.get("/v2/health/ready").status_code == 200
    assert replica.predict() == (1, label_of(1))


def test_ready_waits_for_the_default_model(app_factory: Callable[..., Flask], tmp_path: Path) -> None:
    publish_iris(tmp_path, 1)
    replica = Replica(app_factory(model_repository=tmp_path, model_poll_seconds=1, default_model=WINE))
    assert replica.client.get("/v2/health/ready").status_code == 503, "iris serves, but /predict would not"

    publish_wine(tmp_path)
    replica.sync()

    assert replica.client.get("/v2/health/ready").status_code == 200


def test_nothing_servable_and_no_polling_is_refused(app_factory: Callable[..., Flask], tmp_path: Path) -> None:
    from model_server.repository.artifact import ModelLoadError

    with pytest.raises(ModelLoadError, match="no servable model"):
        app_factory(model_repository=tmp_path, model_poll_seconds=0)
