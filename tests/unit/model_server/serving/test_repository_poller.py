"""The repository poller end to end: real version folders, the real loader, the app's own views.

Each test builds a repository, an app on it (MODEL_POLL_SECONDS>0, so nothing servable is not
fatal; no poller thread is started: the test calls ``sync`` where the poller would), changes the
repository as an operator would, and checks what a user sees: which version answers, the
repository index, the log, and the metrics.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import joblib
import pytest
import skops.io
from flask import Flask
from model_server.app import start_polling
from model_server.repository import layout as repository_layout
from model_server.repository.model_config import ModelConfig
from model_server.serving import repository_poller
from model_server.serving.last_valid_configs import LastValidConfigs

from ..helpers import MODEL, finishes, json_logs, sample, scraped
from ..versions import (
    ROW,
    Replica,
    dump_untrusted,
    iris_tree,
    label_of,
    publish_iris,
    publish_wine,
    remove,
    scraped_versions,
    set_policy,
    write_iris,
)

REFUSED = "model version refused"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository with iris version 1, for this test to change."""
    root = tmp_path / "models"
    publish_iris(root, 1)
    return root


@pytest.fixture
def replica(app_factory: Callable[..., Flask], repo: Path) -> Replica:
    return Replica(app_factory(model_repository=repo, model_poll_seconds=60))


def failures(version: int, name: str = MODEL) -> float:
    return sample("model_server_model_load_failures_total", model=name, version=str(version))


def refused_lines(lines: list[dict[str, Any]], version: int) -> list[dict[str, Any]]:
    return [line for line in lines if line["message"] == REFUSED and line["version"] == str(version)]


# --- versions that must never serve ------------------------------------------------------------


def _write_metadata(directory: Path, **changes: Any) -> None:
    path = directory / "metadata.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _only(directory: Path, *keep: str) -> None:
    for path in directory.iterdir():
        if path.name not in keep:
            path.unlink()


def _bare(directory: Path) -> None:
    """Only a metadata.json that records nothing: the artifact written next is checked on its own."""
    _only(directory)
    (directory / "metadata.json").write_text("{}")


INCOMPLETE = "metadata.json is missing: a version loads only when complete"


# Each takes a complete version folder and breaks it; the refusal names the fragment.
BROKEN: dict[str, tuple[Callable[[Path], None], str]] = {
    # failed
    "corrupt artifact": (
        lambda d: (_bare(d), (d / "model.skops").write_bytes(b"garbage")),
        "not a readable skops file",
    ),
    "metadata contradicts the model": (
        lambda d: _write_metadata(d, feature_names=["a", "b"]),
        "lists 2 feature names but the model takes 4",
    ),
    # partial: copied in place, not published with mv, and seen half-way
    "nothing copied yet": (lambda d: _only(d), "metadata.json is missing: a version loads only when complete"),
    "artifact only": (
        lambda d: _only(d, "model.skops"),
        "metadata.json is missing: a version loads only when complete",
    ),
    "metadata only": (lambda d: _only(d, "metadata.json"), "named in metadata.json does not exist"),
    "artifact half copied": (
        lambda d: (d / "model.skops").write_bytes((d / "model.skops").read_bytes()[:1000]),
        "metadata.json records",
    ),
    # tampered
    "artifact replaced": (lambda d: skops.io.dump(iris_tree(3), d / "model.skops"), "metadata.json records"),
    "untrusted skops type": (lambda d: (_bare(d), dump_untrusted(d)), "untrusted types"),
    "pickle not in MODEL_SHA256": (
        lambda d: (_bare(d), joblib.dump(iris_tree(2), d / "model.joblib")),
        "refusing to unpickle model.joblib",
    ),
}
PARTIAL = ["nothing copied yet", "artifact only", "metadata only", "artifact half copied"]


@pytest.mark.parametrize("kind", BROKEN)
def test_a_broken_version_is_never_served_and_reported_once(replica: Replica, repo: Path, kind: str) -> None:
    breaks, fragment = BROKEN[kind]
    counted = failures(2)
    version_2 = write_iris(repo / MODEL / "2", 2)
    breaks(version_2)

    with json_logs() as lines:
        replica.sync(times=3)  # three polls

    assert replica.loaded() == [1]
    assert replica.predict() == (1, label_of(1)), "the previous version keeps serving"
    [logged] = refused_lines(lines(), 2)  # once per version, not once per poll
    assert (logged["level"], logged["model"]) == ("ERROR", MODEL)
    assert fragment in logged["reason"]
    assert failures(2) == counted + 1
    samples = replica.scrape()
    assert scraped(samples, "model_server_model_load_failed", model=MODEL, version="2") == 1
    assert scraped_versions(samples, "model_server_model_info") == [1]
    assert scraped(samples, "model_server_model_ready", model=MODEL) == 1
    [entry] = [e for e in replica.index() if e["version"] == "2"]
    assert (entry["name"], entry["state"]) == (MODEL, "UNAVAILABLE")
    assert fragment in entry["reason"]
    assert replica.index(ready=True) == [{"name": MODEL, "version": "1", "state": "READY", "reason": ""}]


@pytest.mark.parametrize("kind", PARTIAL)
def test_a_partial_version_loads_once_it_is_complete(replica: Replica, repo: Path, kind: str) -> None:
    version_2 = write_iris(repo / MODEL / "2", 2)
    BROKEN[kind][0](version_2)
    replica.sync()
    assert replica.states() == {1: "READY", 2: "UNAVAILABLE"}

    write_iris(version_2, 2)  # the copy completes: the folder changed
    with json_logs() as lines:
        replica.sync()

    assert replica.loaded() == [2]
    assert replica.predict() == (2, label_of(2))
    assert replica.states() == {1: "UNAVAILABLE", 2: "READY"}
    assert not refused_lines(lines(), 2)
    assert not [k for k in replica.scrape() if k[0] == "model_server_model_load_failed"]


def test_a_refused_version_is_retried_only_when_its_folder_changes(replica: Replica, repo: Path) -> None:
    version_2 = write_iris(repo / MODEL / "2", 2)
    BROKEN["corrupt artifact"][0](version_2)
    counted = failures(2)
    replica.sync(times=2)
    assert failures(2) == counted + 1

    (version_2 / "model.skops").write_bytes(b"still garbage, but other garbage")
    replica.sync(times=2)

    assert failures(2) == counted + 2, "changed: tried again, once"
    assert replica.loaded() == [1]


def test_a_fresh_replica_on_a_corrupt_newest_version_serves_the_previous(
    app_factory: Callable[..., Flask], repo: Path
) -> None:
    publish_iris(repo, 2)
    BROKEN["corrupt artifact"][0](repo / MODEL / "2")

    # Loaded once (MODEL_POLL_SECONDS=0): still a server, on version 1.
    replica = Replica(app_factory(model_repository=repo, model_poll_seconds=0))

    assert replica.loaded() == [1]
    assert replica.predict() == (1, label_of(1))
    assert replica.states() == {1: "READY", 2: "UNAVAILABLE"}
    assert scraped(replica.scrape(), "model_server_model_load_failed", model=MODEL, version="2") == 1
    assert replica.client.get("/v2/health/ready").status_code == 200


def test_a_refused_version_that_the_policy_no_longer_wants_is_not_a_failure(replica: Replica, repo: Path) -> None:
    BROKEN["corrupt artifact"][0](write_iris(repo / MODEL / "2", 2))
    replica.sync()
    publish_iris(repo, 3)

    replica.sync()

    assert replica.loaded() == [3]
    assert replica.states() == {1: "UNAVAILABLE", 2: "UNAVAILABLE", 3: "READY"}
    assert not [k for k in replica.scrape() if k[0] == "model_server_model_load_failed"]


# --- version policies -----------------------------------------------------------------------


def test_latest_1_replaces_the_old_version_only_once_the_new_one_is_loaded(replica: Replica, repo: Path) -> None:
    seen_while_loading: list[tuple[list[int], tuple[int, int]]] = []
    load = replica.poller._load

    def observed_load(name: str, version: int, path: Path) -> Any:
        seen_while_loading.append((replica.loaded(), replica.predict()))
        return load(name, version, path)

    replica.poller._load = observed_load
    publish_iris(repo, 2)

    replica.sync()

    assert seen_while_loading == [([1], (1, label_of(1)))], "version 1 served until version 2 was ready"
    assert replica.loaded() == [2]
    assert replica.predict() == (2, label_of(2))
    assert replica.states() == {1: "UNAVAILABLE", 2: "READY"}
    assert [e["reason"] for e in replica.index() if e["version"] == "1"] == ["not wanted by the version policy"]


@pytest.mark.parametrize(
    ("policy", "loaded"),
    [({"latest": 1}, [3]), ({"latest": 2}, [2, 3]), ({"specific": [1, 3]}, [1, 3]), ({"all": {}}, [1, 2, 3])],
    ids=["latest-1", "latest-2", "specific", "all"],
)
def test_version_policies(replica: Replica, repo: Path, policy: dict[str, Any], loaded: list[int]) -> None:
    publish_iris(repo, 2)
    publish_iris(repo, 3)
    set_policy(repo, policy)

    replica.sync()

    assert replica.loaded() == loaded
    assert replica.states() == {v: "READY" if v in loaded else "UNAVAILABLE" for v in (1, 2, 3)}
    assert scraped_versions(replica.scrape(), "model_server_model_info") == loaded
    for version in (1, 2, 3):
        response = replica.client.post(
            f"/v2/models/{MODEL}/versions/{version}/infer",
            json={"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": ROW}]},
        )
        if version in loaded:
            assert response.get_json()["outputs"][0]["data"] == [label_of(version)]
        else:
            assert response.status_code == 404
    assert replica.predict() == (3, label_of(3)), "unversioned: the newest"


def test_changing_the_policy_loads_and_unloads(replica: Replica, repo: Path) -> None:
    publish_iris(repo, 2)
    set_policy(repo, {"all": {}})
    replica.sync()
    assert replica.loaded() == [1, 2]

    set_policy(repo, {"specific": [1]})
    replica.sync()

    assert replica.loaded() == [1]
    assert replica.predict() == (1, label_of(1))


def test_an_invalid_config_keeps_the_last_valid_policy_and_is_logged_once(replica: Replica, repo: Path) -> None:
    publish_iris(repo, 2)
    set_policy(repo, {"all": {}})
    replica.sync()
    assert replica.loaded() == [1, 2]

    set_policy(repo, '{"version_policy": {"lates": 1}}')  # a typo
    publish_iris(repo, 3)
    with json_logs() as lines:
        replica.sync(times=3)

    assert replica.loaded() == [1, 2, 3], "still 'all'"
    [logged] = [line for line in lines() if line["message"].startswith("model config invalid")]
    assert logged["level"] == "ERROR"
    assert "config.json" in logged["reason"]
    assert "unknown key" in logged["reason"]

    set_policy(repo, {"latest": 1})
    replica.sync()
    assert replica.loaded() == [3]


def test_an_invalid_config_that_comes_back_is_logged_again(replica: Replica, repo: Path) -> None:
    def invalid_config_lines(lines: list[dict[str, Any]]) -> int:
        return len([line for line in lines if line["message"].startswith("model config invalid")])

    with json_logs() as lines:
        set_policy(repo, "{not json")
        replica.sync(times=2)
        assert invalid_config_lines(lines()) == 1
        set_policy(repo, {"latest": 1})
        replica.sync(times=2)
        set_policy(repo, "{not json")
        replica.sync(times=2)

        assert invalid_config_lines(lines()) == 2


def test_an_invalid_config_from_the_start_means_the_default_policy(
    app_factory: Callable[..., Flask], repo: Path
) -> None:
    publish_iris(repo, 2)
    set_policy(repo, "{not json")

    replica = Replica(app_factory(model_repository=repo, model_poll_seconds=0))

    assert replica.loaded() == [2]


def test_a_worker_forked_while_the_config_is_invalid_follows_its_siblings_last_valid_one(
    app_factory: Callable[..., Flask], repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The master booted before config.json pinned version 1: its memory says latest 1 (version
    # 2). A worker read the pin; then the file broke. A worker forked now starts from the
    # master's memory, yet must follow the pin its sibling last read, as the sibling does.
    publish_iris(repo, 2)
    master = app_factory(model_repository=repo, model_poll_seconds=60)
    shared = tmp_path / "configs"
    shared.mkdir()
    sibling = Replica(app_factory(model_repository=repo, model_poll_seconds=60))
    sibling.poller.shared_configs = LastValidConfigs(shared)
    set_policy(repo, {"specific": [1]})
    sibling.sync()
    assert sibling.loaded() == [1]

    set_policy(repo, "{not json")
    sibling.sync()
    forked = Replica(master)
    polling: list[float] = []
    monkeypatch.setattr(forked.poller, "start_polling", polling.append)  # no thread left behind
    start_polling(master, configs_folder=shared)  # a worker's start: catch up, then poll

    assert polling == [60]
    assert sibling.loaded() == forked.loaded() == [1]
    assert forked.predict() == (1, label_of(1))
    assert scraped(forked.scrape(), "model_server_model_config_invalid", model=MODEL) == 1


def test_the_shared_last_valid_config_follows_the_file_and_its_removal(repo: Path, tmp_path: Path) -> None:
    configs = LastValidConfigs(tmp_path)
    assert configs.recall(MODEL) is None
    configs.remember(MODEL, ModelConfig.model_validate({"version_policy": {"all": {}}, "traffic": {"1": 9, "2": 1}}))
    recalled = configs.recall(MODEL)
    assert recalled is not None and recalled.version_policy.kind == "all" and recalled.traffic == {1: 9.0, 2: 1.0}
    configs.remember(MODEL, ModelConfig())  # the file removed: the default is the last valid config
    assert configs.recall(MODEL) == ModelConfig()
    (tmp_path / f"{MODEL}.json").write_text("{broken")  # not written by a worker: ignored
    assert configs.recall(MODEL) is None
    assert LastValidConfigs(None).recall(MODEL) is None


def test_a_metadata_json_linked_to_dev_zero_is_refused_and_the_replica_keeps_serving(
    replica: Replica, repo: Path
) -> None:
    version_2 = write_iris(repo / MODEL / "2", 2)
    (version_2 / "metadata.json").unlink()
    (version_2 / "metadata.json").symlink_to("/dev/zero")

    with json_logs() as lines:
        assert finishes(replica.sync) is None

    assert replica.loaded() == [1]
    assert replica.predict() == (1, label_of(1))
    [refused] = refused_lines(lines(), 2)
    assert f"{version_2 / 'metadata.json'} leads out of the model repository (to /dev/zero)" in refused["reason"]


def test_a_config_json_linked_to_dev_zero_is_an_invalid_config(replica: Replica, repo: Path) -> None:
    (repo / MODEL / "config.json").symlink_to("/dev/zero")

    assert finishes(replica.sync) is None

    assert replica.predict() == (1, label_of(1))
    assert scraped(replica.scrape(), "model_server_model_config_invalid", model=MODEL) == 1


def test_the_size_caps_are_the_settings(app_factory: Callable[..., Flask], repo: Path) -> None:
    size = (repo / MODEL / "1" / "model.skops").stat().st_size
    replica = Replica(app_factory(model_repository=repo, model_poll_seconds=60, model_max_json_bytes=1024))
    publish_iris(repo, 2)
    (repo / MODEL / "config.json").write_text('{"version_policy": {"latest": 1}}' + " " * 1024)
    capped = Replica(app_factory(model_repository=repo, model_poll_seconds=60, model_max_artifact_bytes=size - 1))

    replica.sync()

    assert scraped(replica.scrape(), "model_server_model_config_invalid", model=MODEL) == 1
    assert capped.loaded() == []
    [entry] = [e for e in capped.index() if e["version"] == "2"]
    assert entry["state"] == "UNAVAILABLE"
    assert "over MODEL_MAX_ARTIFACT_BYTES" in entry["reason"]


def test_weights_of_1e308_are_refused_and_the_last_valid_split_stays(
    app_factory: Callable[..., Flask], repo: Path
) -> None:
    publish_iris(repo, 2)
    config = repo / MODEL / "config.json"
    config.write_text(json.dumps({"version_policy": {"all": {}}, "traffic": {"1": 1, "2": 1}}))
    replica = Replica(app_factory(model_repository=repo, model_poll_seconds=60))
    config.write_text(json.dumps({"version_policy": {"all": {}}, "traffic": {"1": 1e308, "2": 1e308}}))

    with json_logs() as lines:
        replica.sync()

    samples = replica.scrape()
    shares = {v: scraped(samples, "model_server_traffic_share", model=MODEL, version=v) for v in ("1", "2")}
    assert shares == {"1": 0.5, "2": 0.5}, "the last valid split, not 0 and 1"
    assert scraped(samples, "model_server_model_config_invalid", model=MODEL) == 1
    [logged] = [line for line in lines() if line["message"].startswith("model config invalid")]
    assert "traffic.1" in logged["reason"]


def test_a_shadow_that_takes_other_columns_is_ignored_and_said_so(replica: Replica, repo: Path) -> None:
    # Version 2 of the model is a wine model (13 columns): the iris rows decoded for version 1 cannot be its input.
    publish_wine(repo, 2, name=MODEL)
    config = {"version_policy": {"all": {}}, "traffic": {"1": 100}, "shadow": {"version": "2", "percent": 100}}
    (repo / MODEL / "config.json").write_text(json.dumps(config))

    with json_logs() as lines:
        replica.sync()

    assert replica.loaded() == [1, 2]
    assert replica.live_models.snapshot.routing(MODEL).shadow_version is None
    [logged] = [line for line in lines() if line["message"] == "model rollout setting ignored"]
    assert logged["reason"] == f"model {MODEL}: shadow version 2 ignored: it takes other columns than version 1"
    assert replica.predict() == (1, label_of(1))


def test_removing_the_newest_version_rolls_back_to_the_previous(replica: Replica, repo: Path) -> None:
    first = replica.live_models.snapshot.route(MODEL, 1).servable
    publish_iris(repo, 2)
    replica.sync()
    assert replica.loaded() == [2]

    remove(repo / MODEL / "2")
    replica.sync()

    assert replica.loaded() == [1]
    assert replica.predict() == (1, label_of(1))
    assert replica.live_models.snapshot.route(MODEL, 1).servable is not first, "loaded again from its folder"
    assert replica.states() == {1: "READY"}
    assert scraped_versions(replica.scrape(), "model_server_model_info") == [1]


def test_removing_a_model_folder_unloads_it(replica: Replica, repo: Path) -> None:
    publish_iris(repo, 1, name="other")
    replica.sync()
    assert replica.loaded("other") == [1]

    remove(repo / "other")
    replica.sync()

    assert replica.loaded("other") == []
    assert replica.client.get("/v2/models/other").status_code == 404
    assert [e["name"] for e in replica.index()] == [MODEL]
    samples = replica.scrape()
    assert scraped_versions(samples, "model_server_model_info", "other") == []
    assert scraped(samples, "model_server_model_ready", model="other") is None
    assert replica.loaded() == [1]


def test_model_info_lists_exactly_the_loaded_versions_after_an_unload(replica: Replica, repo: Path) -> None:
    publish_iris(repo, 2)
    set_policy(repo, {"all": {}})
    replica.sync()
    samples = replica.scrape()
    assert scraped_versions(samples, "model_server_model_info") == [1, 2]
    assert scraped_versions(samples, "model_server_feature_training_mean") == [1] * 4 + [2] * 4

    set_policy(repo, {"latest": 1})
    replica.sync()

    samples = replica.scrape()
    assert scraped_versions(samples, "model_server_model_info") == [2]
    assert scraped_versions(samples, "model_server_feature_training_mean") == [2] * 4


def test_an_unloaded_versions_series_leave_metrics(app_factory: Callable[..., Flask], repo: Path) -> None:
    # A model name of its own: the default registry is shared by every app of the test process.
    name = f"unloaded-{os.getpid()}"
    publish_iris(repo, 1, name=name)
    replica = Replica(app_factory(model_repository=repo, model_poll_seconds=60, default_model=name))
    replica.predict()
    version_series = {"model_server_model_requests_total", "model_server_inference_duration_seconds_count"}

    def versions_in(samples: dict) -> dict[str, list[int]]:
        return {metric: scraped_versions(samples, metric, name) for metric in sorted(version_series)}

    assert versions_in(replica.scrape()) == {metric: [1] for metric in sorted(version_series)}
    publish_iris(repo, 2, name=name)
    replica.sync()
    replica.predict()

    samples = replica.scrape()
    assert versions_in(samples) == {metric: [2] for metric in sorted(version_series)}
    assert scraped(samples, "model_server_version_workers", model=name, version="2") == 1
    assert scraped(samples, "model_server_version_workers", model=name, version="1") is None


def test_an_unreadable_repository_keeps_serving_what_is_loaded(replica: Replica, repo: Path) -> None:
    moved = repo.with_name("elsewhere")
    os.rename(repo, moved)
    with json_logs() as lines:
        replica.sync(times=3)

    assert replica.predict() == (1, label_of(1))
    [logged] = [line for line in lines() if line["message"].startswith("model repository unreadable")]
    assert "does not exist" in logged["reason"]

    os.rename(moved, repo)
    publish_iris(repo, 2)
    replica.sync()
    assert replica.loaded() == [2]

    os.rename(repo, moved)  # unreadable again: said again
    with json_logs() as lines:
        replica.sync(times=2)
    assert len([line for line in lines() if line["message"].startswith("model repository unreadable")]) == 1


# --- a loaded version whose folder changes is verified again ------------------------------------


def test_a_loaded_version_that_fails_verification_gives_way_to_the_one_before(replica: Replica, repo: Path) -> None:
    publish_iris(repo, 2)
    set_policy(repo, {"latest": 1})
    replica.sync()
    assert replica.loaded() == [2]
    before = failures(2)

    skops.io.dump(iris_tree(3), repo / MODEL / "2" / "model.skops")  # tampered in place
    with json_logs() as lines:
        replica.sync()

    assert replica.loaded() == [1], "version 1 loaded again, version 2 unloaded"
    assert replica.predict() == (1, label_of(1))
    assert failures(2) - before == 1
    [refused] = refused_lines(lines(), 2)
    assert "metadata.json records" in refused["reason"]
    assert replica.states() == {1: "READY", 2: "UNAVAILABLE"}
    replica.sync()
    assert failures(2) - before == 1, "not verified again while its folder stays as it is"


def test_a_loaded_version_whose_folder_changes_validly_is_loaded_again(replica: Replica, repo: Path) -> None:
    first = replica.live_models.snapshot.route(MODEL).servable
    metadata = repo / MODEL / "1" / "metadata.json"
    recorded = json.loads(metadata.read_text())
    names = ["a", "b", "c", "d"]
    signature = {"inputs": [{"name": name, "type": "double"} for name in names]}
    metadata.write_text(json.dumps({**recorded, "feature_names": names, "signature": signature}))  # arrived late

    replica.sync()

    now = replica.live_models.snapshot.route(MODEL).servable
    assert now is not first
    assert now.description.feature_names == ("a", "b", "c", "d"), "it serves what its folder holds now"
    assert replica.predict() == (1, label_of(1))


def test_the_only_version_failing_verification_keeps_serving_from_memory_and_is_reported(
    replica: Replica, repo: Path
) -> None:
    skops.io.dump(iris_tree(3), repo / MODEL / "1" / "model.skops")

    replica.sync()

    assert replica.predict() == (1, label_of(1)), "what was verified at load still serves"
    [entry] = [e for e in replica.index() if e["name"] == MODEL]
    assert entry["state"] == "READY"
    assert "metadata.json records" in entry["reason"]
    assert replica.scrape()[("model_server_model_load_failed", (("model", MODEL), ("version", "1")))] == 1


def unreadable_gauge(replica: Replica, name: str = MODEL) -> float | None:
    return replica.scrape().get(("model_server_repository_unreadable", (("model", name),)))


def failing_on(monkeypatch: pytest.MonkeyPatch, *paths: Path, code: int = errno.EIO) -> Callable[[bool], None]:
    """Make listing and stat'ing ``paths`` fail with ``code`` (root reads any folder: chmod cannot); a switch back."""
    failing = {"on": True}
    real_stat, real_scandir = repository_layout.os.stat, repository_layout.os.scandir

    def check(path: object) -> None:
        if failing["on"] and Path(str(path)) in paths:
            raise OSError(code, os.strerror(code))

    def stat(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        check(path)
        return real_stat(path, *args, **kwargs)

    def scandir(path: Any) -> Any:
        check(path)
        return real_scandir(path)

    monkeypatch.setattr(repository_layout.os, "stat", stat)
    monkeypatch.setattr(repository_layout.os, "scandir", scandir)
    return lambda on: failing.update(on=on)


@pytest.mark.parametrize("code", [errno.EACCES, errno.EIO, errno.ESTALE])
def test_a_model_folder_unreadable_for_two_polls_keeps_serving(
    replica: Replica, repo: Path, monkeypatch: pytest.MonkeyPatch, code: int
) -> None:
    publish_iris(repo, 2)
    replica.sync()
    before = sample("model_server_repository_read_errors_total", model=MODEL)
    states = replica.states()
    switch = failing_on(monkeypatch, repo / MODEL, code=code)

    with json_logs() as lines:
        replica.sync(times=2)

    assert replica.predict() == (2, label_of(2)), "still served, not withdrawn"
    assert replica.states() == states
    assert unreadable_gauge(replica) == 1
    assert sample("model_server_repository_read_errors_total", model=MODEL) - before == 2
    [logged] = [line for line in lines() if line["level"] == "ERROR"]
    assert logged["message"] == "model repository folder unreadable; keeping what is loaded from it"
    assert logged["reason"] == f"{repo / MODEL}: cannot be read: {os.strerror(code)}"

    switch(False)
    replica.sync()
    assert unreadable_gauge(replica) == 0
    assert replica.predict() == (2, label_of(2))
    assert replica.loaded() == [2]


def test_a_loaded_version_folder_unreadable_keeps_serving(
    replica: Replica, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failing_on(monkeypatch, repo / MODEL / "1", code=errno.ESTALE)

    replica.sync(times=2)

    assert replica.loaded() == [1]
    assert replica.predict() == (1, label_of(1))
    assert unreadable_gauge(replica) == 1


def test_a_model_folder_that_is_gone_withdraws_the_model(replica: Replica, repo: Path) -> None:
    shutil.rmtree(repo / MODEL)
    replica.sync()

    assert replica.loaded() == []
    assert unreadable_gauge(replica) is None


def test_an_unreadable_repository_is_reported_without_a_model_label(replica: Replica, repo: Path) -> None:
    assert unreadable_gauge(replica, "") == 0
    os.rename(repo, repo.with_name("elsewhere"))

    replica.sync()

    assert unreadable_gauge(replica, "") == 1
    assert replica.predict() == (1, label_of(1))


def test_an_odd_entry_is_logged_once(replica: Replica, repo: Path) -> None:
    (repo / MODEL / "v2").mkdir()  # not a version number

    with json_logs() as lines:
        replica.sync(times=3)

    [logged] = [line for line in lines() if line["message"] == "model repository entry ignored"]
    assert (logged["level"], logged["reason"]) == (
        "WARNING",
        f"{repo / MODEL / 'v2'}: not a version number (a positive integer without leading zeros)",
    )
    assert replica.loaded() == [1]


# --- the poller of a worker -------------------------------------------------------------------


def test_a_worker_catches_up_before_it_polls(replica: Replica, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A gunicorn worker forked long after the master loaded the repository starts from the
    # master's registry: start_polling syncs at once, before the first poll interval.
    polling: list[float] = []
    monkeypatch.setattr(replica.poller, "start_polling", polling.append)  # no thread left behind
    publish_iris(repo, 2)

    start_polling(replica.app)

    assert replica.loaded() == [2]
    assert polling == [60], "and polls from now on"


def test_no_poller_when_polling_is_off(
    app_factory: Callable[..., Flask], repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    replica = Replica(app_factory(model_repository=repo, model_poll_seconds=0))
    polling: list[float] = []
    monkeypatch.setattr(replica.poller, "start_polling", polling.append)
    publish_iris(repo, 2)

    start_polling(replica.app)

    assert (replica.loaded(), polling) == ([1], [])
    assert replica.poller.__class__.start_polling(replica.poller, 0) is None


def test_an_unexpected_error_does_not_stop_the_poller(replica: Replica, monkeypatch: pytest.MonkeyPatch) -> None:
    class Stop(BaseException):
        pass

    calls: list[int] = []

    def sync() -> None:
        calls.append(1)
        raise RuntimeError("boom") if len(calls) == 1 else Stop

    monkeypatch.setattr(replica.poller, "sync", sync)
    monkeypatch.setattr(repository_poller.time, "sleep", lambda seconds: None)

    with json_logs() as lines, pytest.raises(Stop):
        replica.poller.poll_forever(5)

    assert len(calls) == 2, "polled again after the error"
    [logged] = [line for line in lines() if line["message"].startswith("model repository poll failed")]
    assert "boom" in logged["exc_info"]


# --- renewal after unloads (GUNICORN_MAX_UNLOADS) ---------------------------------------------


def test_a_worker_asks_for_its_renewal_once_after_the_unloads_it_was_given(
    replica: Replica, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(replica.poller, "start_polling", lambda interval: None)
    publish_iris(repo, 2)  # the catch-up of start_polling unloads the master's version 1: not counted
    renewals: list[str] = []

    start_polling(replica.app, renew=renewals.append, renew_after_unloads=2)
    assert (replica.loaded(), renewals) == ([2], [])

    publish_iris(repo, 3)
    replica.sync()  # unloads 2: one
    assert (replica.loaded(), renewals, replica.poller.renewing) == ([3], [], False)

    publish_iris(repo, 4)
    replica.sync()  # unloads 3: two
    assert replica.loaded() == [4], "the pass that renews still serves the new version"
    assert renewals == ["2 model versions unloaded (GUNICORN_MAX_UNLOADS)"]
    assert replica.poller.renewing

    publish_iris(repo, 5)
    replica.sync()
    assert len(renewals) == 1, "asked once"


def test_a_load_that_unloads_nothing_does_not_count(replica: Replica, repo: Path) -> None:
    renewals: list[str] = []
    replica.poller.renew_after_unloads(1, renewals.append)
    set_policy(repo, {"latest": 2})
    publish_iris(repo, 2)
    replica.sync()  # loads 2 beside 1
    assert (replica.loaded(), renewals) == ([1, 2], [])

    remove(repo / MODEL / "1")
    replica.sync()

    assert (replica.loaded(), len(renewals)) == ([2], 1)


def test_no_renewal_without_a_limit(replica: Replica, repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(replica.poller, "start_polling", lambda interval: None)
    renewals: list[str] = []
    start_polling(replica.app, renew=renewals.append, renew_after_unloads=0)
    for version in (2, 3, 4):
        publish_iris(repo, version)
        replica.sync()
    assert (replica.loaded(), renewals, replica.poller.unloaded) == ([4], [], 3)


def test_the_first_wait_is_drawn_within_the_interval(replica: Replica, monkeypatch: pytest.MonkeyPatch) -> None:
    # Replicas and workers started together must not all poll, and load a new version, at the
    # same moment: the first wait is a draw in [0, interval], then each wait is the interval.
    class Stop(BaseException):
        pass

    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise Stop

    def first_waits(runs: int) -> list[float]:
        waits = []
        for _ in range(runs):
            sleeps.clear()
            with pytest.raises(Stop):
                replica.poller.poll_forever(5)
            assert sleeps[1] == 5, "then the interval"
            waits.append(sleeps[0])
        return waits

    monkeypatch.setattr(replica.poller, "sync", lambda: None)
    monkeypatch.setattr(repository_poller.time, "sleep", sleep)

    waits = first_waits(20)
    assert all(0 <= wait <= 5 for wait in waits)
    assert len(set(waits)) > 1, "drawn anew each time, not a constant"

    draws: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        draws.append((low, high))
        return [0.0, 1.25, 5.0][len(draws) - 1]

    monkeypatch.setattr(repository_poller.random, "uniform", uniform)
    assert first_waits(3) == [0.0, 1.25, 5.0], "the wait is the draw"
    assert draws == [(0, 5)] * 3


def test_the_poller_stops_once_a_renewal_is_asked_for(replica: Replica, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def sync() -> None:
        calls.append(1)
        replica.poller.renewing = len(calls) == 2

    monkeypatch.setattr(replica.poller, "sync", sync)
    monkeypatch.setattr(repository_poller.time, "sleep", lambda seconds: None)

    replica.poller.poll_forever(5)

    assert len(calls) == 2
