"""Open Inference Protocol V2 through nginx with a stock client written by others (tritonclient)."""

import numpy as np
import requests
import tritonclient.http as triton

from .stack import Stack

MODEL = "iris-rf"
ROWS = np.array([[5.1, 3.5, 1.4, 0.2], [5.9, 3.0, 4.2, 1.5], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)


def client(stack: Stack) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=stack.nginx_url.removeprefix("http://"), connection_timeout=10)


def test_health_and_metadata(stack: Stack) -> None:
    v2 = client(stack)
    assert v2.is_server_live()
    assert v2.is_server_ready()
    assert v2.is_model_ready(MODEL)
    assert v2.is_model_ready(MODEL, model_version="1")
    assert not v2.is_model_ready("no-such-model")
    server = v2.get_server_metadata()
    assert server["name"] == "model-server"
    model = v2.get_model_metadata(MODEL)
    assert model["name"] == MODEL and model["versions"] == ["1"]
    assert model["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 4]}]
    assert {o["name"] for o in model["outputs"]} == {"predict", "predict_proba"}


def test_infer_matches_predict(stack: Stack) -> None:
    tensor = triton.InferInput("input-0", list(ROWS.shape), "FP32")
    tensor.set_data_from_numpy(ROWS)  # the client's default: the binary tensor extension
    outputs = [triton.InferRequestedOutput("predict"), triton.InferRequestedOutput("predict_proba")]
    result = client(stack).infer(MODEL, inputs=[tensor], outputs=outputs)
    labels, probabilities = result.as_numpy("predict"), result.as_numpy("predict_proba")

    expected = requests.post(
        f"{stack.nginx_url}/predict",
        json={"features": ROWS.astype(float).tolist(), "return_probabilities": True},
        timeout=10,
    ).json()
    assert labels.tolist() == expected["prediction"] == [0, 1, 2]  # setosa, versicolor, virginica
    assert np.allclose(probabilities, expected["probabilities"])
    assert probabilities.shape == (3, 3)


def test_infer_json_and_errors(stack: Stack) -> None:
    tensor = triton.InferInput("input-0", [1, 4], "FP64")
    tensor.set_data_from_numpy(ROWS[:1].astype(np.float64), binary_data=False)
    result = client(stack).infer(
        MODEL, inputs=[tensor], outputs=[triton.InferRequestedOutput("predict", binary_data=False)]
    )
    assert result.as_numpy("predict").tolist() == [0]
    bad = triton.InferInput("input-0", [1, 3], "FP32")
    bad.set_data_from_numpy(ROWS[:1, :3])
    try:
        client(stack).infer(MODEL, inputs=[bad])
    except triton.InferenceServerException as exc:
        assert "expected 4 features" in exc.message()
    else:
        raise AssertionError("a 3-feature tensor was accepted")
