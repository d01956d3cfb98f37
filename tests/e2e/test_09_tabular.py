"""Tabular models through nginx: scikit-learn Pipelines fitted on the Palmer penguins DataFrame.

Two Pipelines (median / most-frequent imputers, one-hot encoding of ``island`` and ``sex``,
scaling; then a random forest that ignores unknown categories, or a logistic regression that
refuses them), packaged with ``model_server.package`` from the penguins CSV (strings and
missing values), served by the 3 replicas from a host repository (MODEL_REPOSITORY=/models,
MODEL_HOST_DIR), each in turn as the default model. Every row of the data, sent through each
request format (``/predict`` records and positional rows, ``/invocations`` in MLflow's
``dataframe_split`` and CSV, V2 ``infer`` with one input per column as MLServer's pandas codec
writes it), answers exactly what the fitted pipeline predicts here; a value that does not fit
its column answers 422 naming the row and the column. The replicas return to the image's
built-in repository at the end.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sklearn.pipeline import Pipeline

from harness import penguins

from .stack import Stack, serving_repository

FRAME = penguins.features()
RECORDS = penguins.records(FRAME)


@pytest.fixture(scope="module")
def fitted() -> dict[str, Pipeline]:
    return {penguins.FOREST: penguins.forest(), penguins.LOGISTIC: penguins.logistic()}


@pytest.fixture(scope="module")
def repository(fitted: dict[str, Pipeline]) -> Iterator[Path]:
    root, work = Path(tempfile.mkdtemp(prefix="e2e-tabular-")), Path(tempfile.mkdtemp(prefix="e2e-work-"))
    try:
        for name, estimator in fitted.items():
            penguins.publish_penguins(root, work, name, estimator)
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="module", params=[penguins.FOREST, penguins.LOGISTIC])
def served(request: pytest.FixtureRequest, stack: Stack, repository: Path) -> Iterator[str]:
    """The replicas serving the penguins repository with this model as the default one."""
    with serving_repository(stack, repository, default_model=request.param):
        yield request.param


def post(url: str, expected: int = 200, **body: Any) -> dict[str, Any]:
    response = requests.post(url, timeout=60, **body)
    assert response.status_code == expected, response.text
    return response.json()


def test_every_row_in_every_format_answers_what_the_pipeline_predicts(
    stack: Stack, fitted: dict[str, Pipeline], served: str
) -> None:
    expected = fitted[served].predict(FRAME).tolist()
    url = stack.nginx_url
    arrays = [list(record.values()) for record in RECORDS]

    answers = {
        "/predict records": post(f"{url}/predict", json={"features": RECORDS})["prediction"],
        "/predict arrays": post(f"{url}/predict", json={"features": arrays})["prediction"],
        "/invocations dataframe_split": post(
            f"{url}/invocations", json={"dataframe_split": {"columns": list(FRAME.columns), "data": arrays}}
        )["predictions"],
        "/invocations text/csv": post(
            f"{url}/invocations", data=FRAME.to_csv(index=False), headers={"Content-Type": "text/csv"}
        )["predictions"],
        "V2 pandas columns": post(f"{url}/v2/models/{served}/infer", json=penguins.pandas_codec_request(RECORDS))[
            "outputs"
        ][0]["data"],
    }
    for form, predictions in answers.items():
        assert predictions == expected, form
    one = [post(f"{url}/predict", json={"features": record})["prediction"][0] for record in RECORDS[:30]]
    assert one == expected[:30]
    print(
        f"\n[e2e] {served}: {len(FRAME)} penguins rows through {len(answers)} request formats, all as predicted locally"
    )


GOOD = RECORDS[0]


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/predict", {"features": [GOOD, {k: v for k, v in GOOD.items() if k != "island"}]},
         "features: row 1, column 'island': missing"),
        ("/predict", {"features": {**GOOD, "beak": 1}}, "features: row 0, column 'beak': not a column of the model"),
        ("/predict", {"features": [GOOD, {**GOOD, "bill_length_mm": "39.1"}]},
         "features: row 1, column 'bill_length_mm': expected a number, got a string"),
        ("/invocations", {"dataframe_records": [GOOD, GOOD, {**GOOD, "year": 2007.5}]},
         "dataframe_records: row 2, column 'year': 2007.5 is not an integer"),
        ("/predict", {"features": {**GOOD, "sex": "unknown"}},
         "features: row 0, column 'sex': 'unknown' is not a category"),
    ],
)  # fmt: skip
def test_a_value_that_does_not_fit_is_422_naming_the_row_and_column(
    stack: Stack, served: str, path: str, body: dict[str, Any], message: str
) -> None:
    response = requests.post(f"{stack.nginx_url}{path}", json=body, timeout=60)
    if served == penguins.FOREST and "is not a category" in message:  # its encoder ignores unknown categories
        assert response.status_code == 200, response.text
        return
    assert response.status_code == 422, response.text
    assert message in response.json()["error"]
