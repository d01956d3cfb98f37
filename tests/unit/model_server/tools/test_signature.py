"""The signature the packager derives: types from the training DataFrame, what the model accepts asked of the model."""

from __future__ import annotations

import pandas as pd
import pytest
from model_server.repository.signature import MAX_CATEGORIES, Column
from model_server.tools.signature import SignatureDerivationError, derive_signature, input_example
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder

from harness import penguins


def test_the_penguins_pipelines_signatures() -> None:
    frame = penguins.features()
    forest = derive_signature(frame, penguins.forest())
    assert forest.frame and forest.names == tuple(frame.columns)
    assert forest.inputs[0] == Column(
        name="island", type="string", nullable=True, categories=("Biscoe", "Dream", "Torgersen"), dtype="str"
    )
    assert forest.inputs[1] == Column(name="bill_length_mm", type="double", nullable=True, dtype="float64")
    assert forest.inputs[6] == Column(name="year", type="long", nullable=True, dtype="int64")  # imputed
    logistic = derive_signature(frame, penguins.logistic())
    assert [c.unknown for c in logistic.inputs if c.type == "string"] == ["refuse", "refuse"]
    assert input_example(frame, forest) == {
        "island": "Torgersen", "bill_length_mm": 39.1, "bill_depth_mm": 18.7, "flipper_length_mm": 181.0,
        "body_mass_g": 3750.0, "sex": "male", "year": 2007,
    }  # fmt: skip


def test_nullable_is_what_the_model_takes() -> None:
    complete = penguins.data().dropna()
    x, y = complete.drop(columns=penguins.TARGET), complete[penguins.TARGET]
    strict = penguins.pipeline(LogisticRegression(max_iter=2000), impute=False).fit(x, y)
    signature = derive_signature(x, strict)
    assert {c.name: c.nullable for c in signature.inputs} == {
        "island": True, "bill_length_mm": False, "bill_depth_mm": False, "flipper_length_mm": False,
        "body_mass_g": False, "sex": True, "year": False,
    }  # fmt: skip  # the strings are imputed; the numbers are not
    # A model that takes NaN as it is: nullable where training had missing values, not where it had none.
    numbers = penguins.features()[penguins.NUMBERS]
    native = HistGradientBoostingClassifier(max_iter=5).fit(numbers, penguins.data()[penguins.TARGET])
    assert {c.name: c.nullable for c in derive_signature(numbers, native).inputs} == {
        "bill_length_mm": True, "bill_depth_mm": True, "flipper_length_mm": True, "body_mass_g": True, "year": False,
    }  # fmt: skip
    # A forest takes NaN too (down a default branch), yet trained on complete numbers its columns are not
    # nullable: the signature stays a float matrix, input-0 and all.
    doubles = complete[penguins.NUMBERS[:4]]
    forest = RandomForestClassifier(n_estimators=3, random_state=0).fit(doubles, y)
    signature = derive_signature(doubles, forest)
    assert signature.matrix and not any(c.nullable for c in signature.inputs)


def test_a_boolean_column_and_a_category_column() -> None:
    frame = pd.DataFrame({"flag": [True, False] * 10, "n": [float(i) for i in range(20)], "y": [0, 1] * 10})
    model = make_pipeline(make_column_transformer((OneHotEncoder(), ["flag"]), ("passthrough", ["n"])),
                          LogisticRegression()).fit(frame[["flag", "n"]], frame["y"])  # fmt: skip
    [flag, n] = derive_signature(frame[["flag", "n"]], model).inputs
    assert flag == Column(name="flag", type="boolean", nullable=False, dtype="bool")
    assert n == Column(name="n", type="double", nullable=False, dtype="float64")
    categorical = frame.assign(flag=frame["flag"].astype(str).astype("category"))
    with pytest.raises(SignatureDerivationError, match="column 'flag' has the pandas category dtype"):
        derive_signature(categorical[["flag", "n"]], model)


def test_training_data_with_missing_values_the_model_fails_on_is_refused() -> None:
    complete = penguins.data().dropna()
    strict = penguins.pipeline(LogisticRegression(max_iter=2000), impute=False)
    strict.fit(complete.drop(columns=penguins.TARGET), complete[penguins.TARGET])
    with pytest.raises(SignatureDerivationError, match="column 'bill_length_mm' has missing values"):
        derive_signature(penguins.features(), strict)


def test_too_many_categories_for_a_model_that_refuses_unknown_ones() -> None:
    frame = pd.DataFrame({"code": [f"c{i}" for i in range(30)], "y": [i % 2 for i in range(30)]})
    model = make_pipeline(make_column_transformer((OneHotEncoder(), ["code"])), LogisticRegression())
    model.fit(frame[["code"]], frame["y"])
    with pytest.raises(SignatureDerivationError, match="30 categories, more than --max-categories"):
        derive_signature(frame[["code"]], model, max_categories=10)
    assert derive_signature(frame[["code"]], model, max_categories=30).inputs[0].unknown == "refuse"


def test_a_column_mixing_strings_and_numbers_is_refused() -> None:
    frame = pd.DataFrame({"code": ["a", 1, "b", 2], "y": [0, 1, 0, 1]})
    model = make_pipeline(OneHotEncoder(handle_unknown="ignore"), LogisticRegression())
    model.fit(frame[["code"]].astype(str), frame["y"])
    with pytest.raises(SignatureDerivationError, match="mixes strings with int values"):
        derive_signature(frame[["code"]], model)


def test_a_missing_column_is_refused() -> None:
    with pytest.raises(SignatureDerivationError, match="no column 'sex'"):
        derive_signature(penguins.features().drop(columns="sex"), penguins.forest())


def test_categories_are_the_fitted_encoders_even_those_the_sample_lacks() -> None:
    # Fitted on every penguin, packaged with a sample without Torgersen's: the encoder knows Torgersen, and so
    # does the signature, whether the model refuses unknown islands (logistic) or ignores them (forest).
    sample = penguins.features().query("island != 'Torgersen'")
    for model, unknown in [(penguins.logistic(), "refuse"), (penguins.forest(), "accept")]:
        island, sex = (c for c in derive_signature(sample, model).inputs if c.type == "string")
        assert island.categories == ("Biscoe", "Dream", "Torgersen") and island.unknown == unknown
        assert sex.categories == ("female", "male")
    # The encoder's, not the sample's: a value in the sample that the encoder never saw is not a category.
    frame = pd.DataFrame({"code": ["a", "b", "c", "a"], "n": [1.0, 2.0, 3.0, 4.0], "y": [0, 1, 0, 1]})
    ordinal = make_pipeline(
        make_column_transformer((OrdinalEncoder(), [0]), remainder="passthrough"), LogisticRegression()
    ).fit(frame[["code", "n"]], frame["y"])  # columns chosen by position; an OrdinalEncoder
    [code, _] = derive_signature(frame.assign(code=["a", "a", "b", "b"])[["code", "n"]], ordinal).inputs
    assert code.categories == ("a", "b", "c") and code.unknown == "refuse"


def test_categories_of_a_column_changed_before_its_encoder_are_the_samples() -> None:
    # The encoder sees the values lower-cased: its categories are not the column's, whose values are the sample's.
    frame = pd.DataFrame({"code": ["A", "b", "C", "a"], "y": [0, 1, 0, 1]})
    lower = FunctionTransformer(lambda x: x.apply(lambda column: column.str.lower()), feature_names_out="one-to-one")
    model = make_pipeline(lower, OneHotEncoder(handle_unknown="ignore"), LogisticRegression())
    model.fit(frame[["code"]], frame["y"])
    assert model[1].categories_[0].tolist() == ["a", "b", "c"]
    assert derive_signature(frame[["code"]], model).inputs[0].categories == ("A", "C", "a", "b")


def test_the_category_limit_counts_the_encoders_categories() -> None:
    frame = pd.DataFrame({"code": [f"c{i}" for i in range(30)], "y": [i % 2 for i in range(30)]})
    model = make_pipeline(make_column_transformer((OneHotEncoder(), ["code"])), LogisticRegression())
    model.fit(frame[["code"]], frame["y"])
    sample = frame[["code"]].head(5)  # 5 values in the sample, 30 in the encoder
    with pytest.raises(SignatureDerivationError, match="30 categories, more than --max-categories"):
        derive_signature(sample, model, max_categories=10)
    assert len(derive_signature(sample, model, max_categories=30).inputs[0].categories or ()) == 30
    # Past the most a signature lists, whatever --max-categories says: refused, not a failed signature check.
    n = MAX_CATEGORIES + 1
    many = pd.DataFrame({"code": [f"c{i}" for i in range(n)], "y": [i % 2 for i in range(n)]})
    model.fit(many[["code"]], many["y"])
    with pytest.raises(SignatureDerivationError, match=f"{n} categories, more than the {MAX_CATEGORIES}"):
        derive_signature(sample, model, max_categories=5 * MAX_CATEGORIES)
