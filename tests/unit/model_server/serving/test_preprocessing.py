"""A Pipeline's preprocessing compiled to NumPy: bit for bit scikit-learn's, or left to scikit-learn with the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from model_server.app import create_app
from model_server.config import Settings
from model_server.repository.signature import Signature
from model_server.serving import preprocessing
from model_server.serving.model_input import ModelInput
from model_server.serving.preprocessing import compile_preprocessing
from model_server.serving.runtime import select_runtime
from model_server.tools.signature import derive_signature
from sklearn.compose import ColumnTransformer, make_column_selector, make_column_transformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, OrdinalEncoder, StandardScaler

from harness import penguins

NUMBERS, STRINGS = penguins.NUMBERS, penguins.STRINGS


def fitted(*steps: Any, frame: pd.DataFrame | None = None) -> Pipeline:
    frame = penguins.features() if frame is None else frame
    return make_pipeline(*steps, RandomForestClassifier(n_estimators=5, random_state=0)).fit(
        frame, penguins.data()["species"]
    )


def rows_of(frame: pd.DataFrame, signature: Signature) -> np.ndarray:
    """The frame's rows as the server validates them: an object matrix in the signature's order, None if missing."""
    records = penguins.records(frame)
    return np.array([[record[name] for name in signature.names] for record in records], dtype=object)


def sklearn_features(pipeline: Pipeline, signature: Signature, rows: np.ndarray) -> np.ndarray:
    features = pipeline[:-1].transform(ModelInput(signature)(rows))
    return np.asarray(features.toarray() if hasattr(features, "toarray") else features)


def compiled_equals_sklearn(pipeline: Pipeline, frame: pd.DataFrame | None = None) -> np.ndarray:
    frame = penguins.features() if frame is None else frame
    signature = derive_signature(frame, pipeline)
    compiled, reason = compile_preprocessing(pipeline[:-1], signature)
    assert compiled is not None, reason
    assert reason == "equal to scikit-learn's on 512 validation rows"
    rows = rows_of(frame, signature)
    features = compiled.transform(rows)
    assert features.dtype == np.float64
    np.testing.assert_array_equal(features, sklearn_features(pipeline, signature, rows))
    return features


def not_compiled(pipeline: Pipeline, frame: pd.DataFrame | None = None) -> str:
    frame = penguins.features() if frame is None else frame
    compiled, reason = compile_preprocessing(pipeline[:-1], derive_signature(frame, pipeline))
    assert compiled is None
    return reason


def columns(numbers: Any, strings: Any, **options: Any) -> Any:
    return make_column_transformer((numbers, NUMBERS), (strings, STRINGS), **options)


def test_the_penguins_pipeline_is_served_compiled_with_its_own_answers() -> None:
    forest, frame = penguins.forest(), penguins.features()  # missing numbers and strings, an integer column
    signature = derive_signature(frame, forest)
    choice = select_runtime(forest, signature=signature)

    assert choice.runtime.name == "numpy+treelite"
    assert choice.reason.startswith(
        "Pipeline: its steps columntransformer compiled to NumPy (equal to scikit-learn's on 512 validation rows), "
        "its RandomForestClassifier on treelite reproduced scikit-learn"
    )
    labels, probabilities = choice.runtime.predict_with_probabilities(rows_of(frame, signature))
    np.testing.assert_array_equal(labels, forest.predict(frame))
    np.testing.assert_array_equal(probabilities, forest.predict_proba(frame))
    assert select_runtime(forest, "sklearn", signature).runtime.name == "sklearn"
    without = select_runtime(forest)
    assert without.runtime.name == "sklearn+treelite" and "(not compiled: no signature)" in without.reason


def test_the_server_serves_a_packaged_pipeline_compiled_and_says_so(tmp_path: Path) -> None:
    forest = penguins.forest()
    penguins.publish_penguins(tmp_path / "models", tmp_path / "work", "penguins", forest)
    app = create_app(Settings(model_repository=tmp_path / "models"))
    metadata = app.test_client().get("/v2/models/penguins").get_json()
    assert metadata["parameters"]["runtime"] == "numpy+treelite"
    frame = penguins.features()  # every row, missing values included, in one request
    body = {"features": penguins.records(frame), "return_probabilities": True}
    answer = app.test_client().post("/predict", json=body)
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["prediction"] == forest.predict(frame).tolist()
    np.testing.assert_array_equal(np.array(answer.get_json()["probabilities"]), forest.predict_proba(frame))


@pytest.mark.parametrize(
    "transformer",
    [
        columns(make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), make_pipeline(
            SimpleImputer(strategy="most_frequent"), OneHotEncoder(handle_unknown="ignore"))),
        columns(make_pipeline(SimpleImputer(strategy="mean"), StandardScaler(with_mean=False)), make_pipeline(
            SimpleImputer(strategy="constant", fill_value="unknown"), OneHotEncoder(drop="first")), sparse_threshold=0),
        columns(make_pipeline(SimpleImputer(strategy="most_frequent"), StandardScaler(with_std=False)),
                OneHotEncoder(drop="if_binary", handle_unknown="ignore", sparse_output=False)),
        columns(make_pipeline(SimpleImputer(strategy="constant", fill_value=-1.0)), OneHotEncoder()),
        columns(StandardScaler(), OneHotEncoder(handle_unknown="infrequent_if_exist")),  # NaN passes the scaler
        make_column_transformer((StandardScaler(), [1, 2]), (OneHotEncoder(), [0]), ("drop", [5]),
                                remainder="passthrough"),
        make_column_transformer((make_pipeline(SimpleImputer(), StandardScaler()), NUMBERS[:2]), ("drop", STRINGS),
                                remainder=SimpleImputer()),
    ],
    ids=["impute-scale-onehot", "constant-drop-first-dense", "if-binary", "impute-only", "missing-as-category",
         "positions-passthrough", "drop-and-remainder"],
)  # fmt: skip
def test_each_step_and_option_compiled_gives_scikit_learns_numbers(transformer: Any) -> None:
    compiled_equals_sklearn(fitted(transformer))


def test_steps_on_every_column_without_a_column_transformer() -> None:
    frame = penguins.features()[NUMBERS]
    compiled_equals_sklearn(fitted(SimpleImputer(strategy="median"), StandardScaler(), frame=frame), frame)


def test_unknown_categories_are_zeros_or_refused_as_the_encoder_says() -> None:
    frame = penguins.features().head(6).assign(island=["Biscoe", "Atlantis", None, "Dream", "Torgersen", "Atlantis"])
    features = compiled_equals_sklearn(penguins.forest(), frame)  # handle_unknown="ignore": all zeros
    assert features[1, 5:8].tolist() == [0.0, 0.0, 0.0] and features[0, 5:8].tolist() == [1.0, 0.0, 0.0]
    strict = fitted(columns(SimpleImputer(), make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder())))
    signature = derive_signature(penguins.features(), strict)
    compiled, _ = compile_preprocessing(strict[:-1], signature)
    assert compiled is not None
    with pytest.raises(ValueError, match="Found unknown categories") as refused:
        strict[:-1].transform(ModelInput(signature)(rows_of(frame, signature)))
    with pytest.raises(ValueError, match=r"Found unknown categories \['Atlantis'\] in column 0 during transform"):
        compiled.transform(rows_of(frame, signature))
    assert "Atlantis" in str(refused.value)


@pytest.mark.parametrize(
    ("transformer", "reason"),
    [
        (columns(MinMaxScaler(), OneHotEncoder()), "MinMaxScaler on number columns is not compiled"),
        (columns(SimpleImputer(), OrdinalEncoder()), "OrdinalEncoder on string columns is not compiled"),
        (columns(SimpleImputer(add_indicator=True), OneHotEncoder()), "a SimpleImputer with an indicator"),
        (columns(SimpleImputer(), OneHotEncoder(min_frequency=20)), "infrequent categories is not compiled"),
        (make_column_transformer((OneHotEncoder(), ["year"]), remainder="drop"),
         "OneHotEncoder on number columns is not compiled"),
        (ColumnTransformer([("numbers", SimpleImputer(), NUMBERS), ("strings", OneHotEncoder(), STRINGS)],
                           transformer_weights={"numbers": 2.0}),
         "a ColumnTransformer with transformer_weights is not compiled"),
    ],
    ids=["min-max", "ordinal", "indicator", "infrequent", "numbers-one-hot", "weights"],
)  # fmt: skip
def test_steps_it_does_not_know_stay_on_scikit_learn_with_the_reason(transformer: Any, reason: str) -> None:
    assert reason in not_compiled(fitted(transformer))


def test_a_column_with_more_categories_than_the_signature_lists_is_checked_on_the_encoders_own() -> None:
    forest = penguins.forest()
    signature = derive_signature(penguins.features(), forest, max_categories=2)  # island's 3 and sex's 2: not listed
    assert signature.inputs[signature.position()["island"]].categories is None
    compiled, _ = compile_preprocessing(forest[:-1], signature)
    assert compiled is not None
    rows = preprocessing.validation_rows(forest[:-1], compiled, signature)
    island = signature.position()["island"]
    assert set(rows[:, island]) - {None} == {"Biscoe", "Dream", "Torgersen", "not-a-category"}
    assert compiled.categories[island] == (["Biscoe", "Dream", "Torgersen"], True)


def test_columns_chosen_by_dtype_are_compiled_as_the_fitted_selection() -> None:
    transformer = make_column_transformer(
        (make_pipeline(SimpleImputer(), StandardScaler()), make_column_selector(dtype_include="number")),
        (make_pipeline(SimpleImputer(strategy="most_frequent"), OneHotEncoder()),
         make_column_selector(dtype_exclude="number")),
    )  # fmt: skip
    compiled_equals_sklearn(fitted(transformer))


def test_a_compiled_step_that_differs_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(preprocessing, "_scaled", lambda x, mean, scale: (x - mean) * (1.0 / scale))
    reason = not_compiled(penguins.forest())
    assert reason.startswith("compiled preprocessing differs from scikit-learn's in ")
    choice = select_runtime(penguins.forest(), signature=derive_signature(penguins.features(), penguins.forest()))
    assert (
        choice.runtime.name == "sklearn+treelite" and "(not compiled: compiled preprocessing differs" in choice.reason
    )


def test_a_step_it_cannot_read_falls_back_instead_of_refusing_the_model() -> None:
    pipeline = penguins.forest()
    signature = derive_signature(penguins.features(), pipeline)
    del pipeline[0].transformers_[0][1][1].mean_  # a fitted scaler without its mean: not as this module reads one
    compiled, reason = compile_preprocessing(pipeline[:-1], signature)
    assert compiled is None and reason.startswith("AttributeError: ")


FOREST = penguins.forest()
SIGNATURE = derive_signature(penguins.features(), FOREST)
NUMBER = st.one_of(st.none(), st.floats(allow_nan=False, allow_infinity=False, width=32), st.integers(-(10**6), 10**6))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(NUMBER, NUMBER, NUMBER, NUMBER, st.one_of(st.none(), st.integers(-(2**40), 2**40)),
                  st.sampled_from([None, "Biscoe", "Dream", "Torgersen", "Atlantis"]),
                  st.sampled_from([None, "male", "female", "other"])),
        min_size=1, max_size=20,
    )
)  # fmt: skip
def test_any_rows_a_client_can_send_give_scikit_learns_numbers(values: list[tuple[Any, ...]]) -> None:
    forest, signature = FOREST, SIGNATURE
    rows = np.empty((len(values), 7), dtype=object)
    order = [*NUMBERS, *STRINGS]
    for i, row in enumerate(values):
        for name, value in zip(order, row, strict=True):
            column = signature.inputs[signature.position()[name]]
            rows[i, signature.position()[name]] = (
                float(value) if column.type == "double" and value is not None else value
            )
    compiled, _ = compile_preprocessing(forest[:-1], signature)
    assert compiled is not None
    with np.errstate(over="ignore", invalid="ignore"):
        expected = sklearn_features(forest, signature, rows)
    np.testing.assert_array_equal(compiled.transform(rows), expected)


def test_preprocessing_that_may_output_integers_is_left_to_scikit_learn() -> None:
    # scikit-learn would hand the forest int64 (no missing year in a batch), rounded to float32 once; float64 first
    # would round twice, which differs past 2**53: not compiled. A float step or column anywhere makes it float64.
    only_years = fitted(make_column_transformer(("passthrough", ["year"]), remainder="drop"))
    assert not_compiled(only_years) == "its output may be integers (no float column or step), not compiled"
    most_frequent = fitted(make_column_transformer((SimpleImputer(strategy="most_frequent"), ["year"])))
    assert not_compiled(most_frequent).startswith("its output may be integers")
    compiled_equals_sklearn(fitted(make_column_transformer(("passthrough", ["year", "bill_length_mm"]))))
    compiled_equals_sklearn(fitted(make_column_transformer((StandardScaler(), ["year"]))))


def test_a_long_column_over_the_whole_int64_range_is_checked_on_values_the_server_accepts() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"id": rng.integers(-(2**62), 2**62, 344), "body_mass_g": penguins.features()["body_mass_g"]})
    pipeline = fitted(
        make_column_transformer((StandardScaler(), ["id"]), (SimpleImputer(), ["body_mass_g"])), frame=frame
    )
    signature = derive_signature(frame, pipeline)
    compiled, reason = compile_preprocessing(pipeline[:-1], signature)
    assert compiled is not None, reason
    rows = preprocessing.validation_rows(pipeline[:-1], compiled, signature)
    assert all(-(2**63) <= value < 2**63 for value in rows[:, 0] if value is not None)


def test_a_value_scaled_past_float32_is_refused_as_scikit_learns_forest_refuses_it() -> None:
    forest, signature = FOREST, SIGNATURE
    rows = rows_of(penguins.features().head(2), signature)
    rows[1, signature.position()["body_mass_g"]] = 1e300  # (1e300 - mean) / scale: past float32's largest
    choice = select_runtime(forest, signature=signature)
    assert choice.runtime.name == "numpy+treelite"
    with pytest.raises(ValueError, match="too large for dtype"), np.errstate(over="ignore"):
        forest.predict(ModelInput(signature)(rows))
    with pytest.raises(ValueError, match=r"^Input X contains infinity or a value too large for dtype\('float32'\)\.$"):
        choice.runtime.predict(rows)
    np.testing.assert_array_equal(choice.runtime.predict(rows[:1]), forest.predict(penguins.features().head(1)))
