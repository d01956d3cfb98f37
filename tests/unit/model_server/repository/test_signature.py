"""The signature a version's metadata records, checked against its model; the legacy one of numeric models."""

from __future__ import annotations

import pytest
from model_server.repository.signature import Column, Signature, SignatureError, read_signature

NAMES = ("island", "year")
RECORDED = {
    "frame": True,
    "inputs": [
        {"name": "island", "type": "string", "categories": ["Biscoe", "Dream"], "unknown": "refuse", "dtype": "str"},
        {"name": "year", "type": "long", "nullable": True},
    ],
}


def test_a_recorded_signature_is_read() -> None:
    signature = read_signature({"signature": RECORDED}, NAMES, NAMES)
    assert signature.inputs[0] == Column(
        name="island", type="string", categories=("Biscoe", "Dream"), unknown="refuse", dtype="str"
    )
    assert signature.inputs[1].nullable and signature.frame and not signature.matrix


def test_a_version_without_one_takes_non_null_doubles() -> None:
    signature = read_signature({}, ("a", "b"), None)
    assert signature == Signature.of_doubles(["a", "b"]) and signature.matrix and not signature.frame
    assert not read_signature({}, ("a", "b"), ("a", "b")).frame, "fitted on a DataFrame: still the matrix, as ever"


@pytest.mark.parametrize(
    ("recorded", "fragment"),
    [
        ([], "'signature' must be an object"),
        ({"inputs": []}, "'signature'.inputs"),
        ({"inputs": [{"name": "island", "type": "text"}, {"name": "year", "type": "long"}]}, ".type"),
        ({"inputs": [{"name": "island", "type": "string", "colour": 1}, {"name": "year", "type": "long"}]}, "colour"),
        ({"inputs": [{"name": "island", "type": "double", "categories": ["a"]}, {"name": "year", "type": "long"}]},
         "only string columns list categories"),
        ({"inputs": [{"name": "island", "type": "string", "unknown": "refuse"}, {"name": "year", "type": "long"}]},
         "needs the categories listed"),
        ({"inputs": [{"name": "island", "type": "string"}, {"name": "island", "type": "long"}]}, "listed twice"),
        ({"inputs": [{"name": "island", "type": "string", "coded": True}, {"name": "year", "type": "long"}]},
         "a coded column needs its categories, in the order of their codes"),
        ({"inputs": [{"name": "year", "type": "long"}, {"name": "island", "type": "string"}]}, "the model takes"),
    ],
)  # fmt: skip
def test_an_unusable_signature_is_refused_saying_where(recorded: object, fragment: str) -> None:
    with pytest.raises(SignatureError) as caught:
        read_signature({"signature": recorded}, NAMES, NAMES)
    assert fragment in str(caught.value)


def test_a_frame_signature_must_list_the_columns_the_model_was_fitted_on() -> None:
    with pytest.raises(SignatureError, match="the model was fitted on"):
        read_signature({"signature": RECORDED}, NAMES, ("year", "island"))
