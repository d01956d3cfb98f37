"""The frame a tabular model is given is the frame pandas reads from a CSV of the same rows.

The training data of such a model was read with pandas (``read_csv``): each column's dtype and
its missing-value marker are what the fitted imputers and encoders saw. The same rows written as
CSV (empty cells for missing values) and read back must equal the frame the server builds from
the validated rows.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io
from model_server.app import create_app
from model_server.config import Settings
from model_server.repository.artifact import sha256_of
from model_server.repository.signature import Column, Signature
from model_server.serving.model_input import ModelInput
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

SIGNATURE = Signature(
    inputs=(
        Column(name="island", type="string", nullable=True, categories=("Biscoe", "Dream"), dtype="str"),
        Column(name="length", type="double", nullable=True, dtype="float64"),
        Column(name="year", type="long", nullable=True, dtype="int64"),
        Column(name="tagged", type="boolean", nullable=True, dtype="bool"),
    ),
    frame=True,
)


def as_read_from_csv(rows: list[list]) -> pd.DataFrame:
    text = "island,length,year,tagged\n" + "\n".join(",".join("" if v is None else str(v) for v in row) for row in rows)
    return pd.read_csv(io.StringIO(text))


@pytest.mark.parametrize(
    "rows",
    [
        [["Biscoe", 39.1, 2007, True], ["Dream", 40.5, 2008, False]],  # nothing missing
        [["Biscoe", None, 2007, True], [None, 40.5, None, None]],  # something missing in every column
        [[None, None, None, None]],
    ],
)
def test_the_frame_is_what_pandas_reads_from_a_csv_of_the_rows(rows: list[list]) -> None:
    built = ModelInput(SIGNATURE)(np.array(rows, dtype=object))

    expected = as_read_from_csv(rows)
    if expected["island"].isna().all():  # an all-empty column reads as float64; the training column was text
        expected["island"] = expected["island"].astype("str")
    if expected["tagged"].isna().all():
        expected["tagged"] = expected["tagged"].astype(object)
    pd.testing.assert_frame_equal(built, expected)


def test_a_numeric_signature_is_a_float_frame_or_the_matrix_itself() -> None:
    rows = np.array([[1.0, 2.0]])
    assert ModelInput(Signature.of_doubles(["a", "b"]))(rows) is rows
    frame = ModelInput(Signature.of_doubles(["a", "b"], frame=True))(rows)
    pd.testing.assert_frame_equal(frame, pd.DataFrame({"a": [1.0], "b": [2.0]}))


def test_the_numeric_view_has_nan_for_missing_values() -> None:
    view = ModelInput(SIGNATURE).numeric(np.array([["Biscoe", None, 2007, True]], dtype=object))
    assert view.dtype == np.float64
    np.testing.assert_array_equal(view, [[np.nan, 2007.0]])


def test_the_warm_up_row_comes_from_the_example_or_fits_each_column() -> None:
    model_input = ModelInput(SIGNATURE)
    recorded = {"island": "Dream", "length": 41.0, "year": 2009, "tagged": False}
    assert model_input.example({"input_example": recorded}).tolist() == [["Dream", 41.0, 2009, False]]
    assert model_input.example({}).tolist() == [[None, None, None, None]]  # every column nullable
    strict = ModelInput(Signature(inputs=(Column(name="s", type="string", categories=("x", "y")),), frame=True))
    assert strict.example({"input_example": {"s": 3}}).tolist() == [["x"]]


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")  # as it always did
def test_a_version_packaged_before_signatures_is_given_the_float_matrix_as_always(tmp_path: Path) -> None:
    # A logistic regression fitted on a DataFrame, published by hand with feature names of its own and no
    # signature: it served a float matrix before signatures, and still does (no frame, whose names would clash).
    iris = load_iris(as_frame=True)
    model = LogisticRegression(max_iter=1000).fit(iris.data, iris.target)
    folder = tmp_path / "models" / "lr" / "1"
    folder.mkdir(parents=True)
    skops.io.dump(model, folder / "model.skops")
    metadata = {"artifact": "model.skops", "sha256": sha256_of(folder / "model.skops"),
                "feature_names": ["sepal_length", "sepal_width", "petal_length", "petal_width"]}  # fmt: skip
    (folder / "metadata.json").write_text(json.dumps(metadata))

    client = create_app(Settings(model_repository=tmp_path / "models")).test_client()
    response = client.post("/predict", json={"features": [5.9, 3.0, 5.1, 1.8]})

    assert response.status_code == 200, response.get_json()
    assert response.get_json() == {"prediction": model.predict(iris.data.iloc[[149]].to_numpy()).tolist()}


def test_a_coded_column_is_given_as_its_categorys_code_and_missing_or_unknown_as_nan() -> None:
    # A gradient-boosted model's categorical feature (repository/boosted.py): the category's position in the list.
    signature = Signature(
        inputs=(
            Column(
                name="island", type="string", nullable=True, categories=("Biscoe", "Dream", "Torgersen"), coded=True
            ),
            Column(name="length", type="double", nullable=True),
            Column(name="year", type="long"),
        )
    )
    rows = np.array([["Torgersen", 39.1, 2007], ["Biscoe", None, 2008], [None, 40.0, 2009], ["Atlantis", 1.5, 2009]],
                    dtype=object)  # fmt: skip
    given = ModelInput(signature)(rows)
    expected = [[2.0, 39.1, 2007.0], [0.0, np.nan, 2008.0], [np.nan, 40.0, 2009.0], [np.nan, 1.5, 2009.0]]
    np.testing.assert_array_equal(given, np.array(expected))
    assert given.dtype == np.float64
    assert rows[0, 0] == "Torgersen", "the validated rows are left as they are (the metrics count their categories)"
