"""model_server.serving.live_models: immutable snapshots of what serves, published in one assignment."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from model_server.serving.live_models import (
    LiveModels,
    Servable,
    Snapshot,
    State,
    UnknownModel,
    UnknownVersion,
    VersionStatus,
)


def servable(name: str, version: int) -> Servable:
    """A stand-in for a loaded version: only its description is read by the live models."""
    description = SimpleNamespace(name=name, version=str(version))
    return Servable(predictor=SimpleNamespace(description=description))  # type: ignore[arg-type]


def snapshot(**models: list[int]) -> Snapshot:
    return Snapshot.build({name: {v: servable(name, v) for v in versions} for name, versions in models.items()}, ())


def test_no_live_models_serve_nothing() -> None:
    current = LiveModels().snapshot

    assert not current
    assert current.servables() == []
    with pytest.raises(UnknownModel):
        current.route("iris")


def test_unversioned_is_the_newest_loaded() -> None:
    current = snapshot(iris=[10, 2, 9])

    assert current.route("iris").servable.version == 10
    assert current.route("iris", 2).servable.version == 2


def test_unknown_model_and_unknown_version() -> None:
    current = snapshot(iris=[1])

    with pytest.raises(UnknownModel):
        current.route("wine")
    with pytest.raises(UnknownVersion):
        current.route("iris", 2)


def test_build_sorts_and_leaves_out_models_without_versions() -> None:
    current = snapshot(wine=[3, 1], iris=[2], empty=[])

    assert list(current.models) == ["iris", "wine"]
    assert list(current.models["wine"]) == [1, 3]
    assert [(s.name, s.version) for s in current.servables()] == [("iris", 2), ("wine", 1), ("wine", 3)]


def test_a_snapshot_cannot_be_changed_in_place() -> None:
    current = snapshot(iris=[1])

    with pytest.raises(TypeError):
        current.models["wine"] = {}  # type: ignore[index]
    with pytest.raises(TypeError):
        current.models["iris"][2] = servable("iris", 2)  # type: ignore[index]


def test_building_copies_the_callers_dicts() -> None:
    versions = {1: servable("iris", 1)}
    models = {"iris": versions}
    current = Snapshot.build(models, ())

    versions[2] = servable("iris", 2)
    models["wine"] = {1: servable("wine", 1)}

    assert list(current.models) == ["iris"]
    assert list(current.models["iris"]) == [1]


def test_a_request_holding_a_snapshot_keeps_its_version_across_a_publish() -> None:
    live_models = LiveModels()
    live_models.publish(snapshot(iris=[1]))
    held = live_models.snapshot  # what a request took when it started

    live_models.publish(snapshot(iris=[2]))

    assert held.route("iris").servable.version == 1, "the request finishes on its version"
    assert live_models.snapshot.route("iris").servable.version == 2, "new requests get the new one"


def test_statuses_travel_with_the_snapshot() -> None:
    statuses = (VersionStatus("iris", 2, State.UNAVAILABLE, "no model artifact", failed=True),)

    current = Snapshot.build({}, statuses)

    assert not current, "a refused version does not serve"
    assert current.statuses == statuses
