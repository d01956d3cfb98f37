"""MLServer's side of each model kind: the repository the run writes for it, and how its answer is read."""

import json
from pathlib import Path

import pytest

from bench.benchmark.context import Context, Workload
from bench.benchmark.settings import Settings
from bench.benchmark.systems import MLServer

CANCER = Workload("boosted", "cancer-xgb", [[1.0] * 30], ["malignant"], [1.0] * 30, ["benign", "malignant"])


def answer(value: object) -> dict[str, object]:
    return {"outputs": [{"name": "predict", "shape": [1, 1], "datatype": "INT64", "data": [value]}]}


def test_its_xgboost_runtime_answers_the_class_index_which_the_check_reads_as_the_label() -> None:
    system = MLServer("mlserver-boosted", "d-x", "boosted", CANCER)
    assert [system.prediction(answer(index)) for index in (1, 0, 1.0)] == ["malignant", "benign", "malignant"]
    with pytest.raises(IndexError):
        system.prediction(answer(2))  # no third class: a wrong answer is not read as a label


def test_its_scikit_learn_runtime_answers_the_label_itself() -> None:
    iris = Workload("numeric", "iris-rf", [[5.1, 3.5, 1.4, 0.2]], [0], [5.1, 3.5, 1.4, 0.2])
    assert MLServer("mlserver", "d", "numeric", iris).prediction(answer(0)) == 0


def test_a_model_file_gets_the_xgboost_runtime_and_a_fitted_model_a_joblib_file(tmp_path: Path) -> None:
    ctx = Context(Settings(run_dir=tmp_path))
    model = tmp_path / "made" / "model.json"
    model.parent.mkdir()
    model.write_text('{"learner": {}}')
    ctx._for_mlserver(CANCER, model)
    folder = tmp_path / "mlserver-boosted" / "cancer-xgb"
    assert (folder / "model.json").read_text() == '{"learner": {}}'
    assert json.loads((folder / "model-settings.json").read_text()) == {
        "name": "cancer-xgb",
        "implementation": "mlserver_xgboost.XGBoostModel",
        "parameters": {"uri": "./model.json", "version": "1"},
    }
    ctx._for_mlserver(Workload("numeric", "iris-rf", [], [], []), {"a fitted": "model"})
    settings = json.loads((tmp_path / "mlserver-numeric" / "iris-rf" / "model-settings.json").read_text())
    assert (settings["implementation"], settings["parameters"]["uri"]) == (
        "mlserver_sklearn.SKLearnModel",
        "./model.joblib",
    )
    assert (tmp_path / "mlserver-numeric" / "iris-rf" / "model.joblib").stat().st_size > 0
