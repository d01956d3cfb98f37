"""The performance guard's pure parts: its rows, the repositories they serve, the reload memory's growth."""

import json
import stat
from pathlib import Path

import pytest

from bench.benchmark.context import (
    ALL_ON,
    BOOSTED,
    CANARY,
    FEATURES,
    MODEL,
    ONE,
    SECOND,
    SHADOW,
    STACK_ROW,
    TABULAR,
    TWO_BY_TWO,
    XGBOOST,
    Layout,
)
from bench.benchmark.settings import FEATURE_ROWS
from bench.benchmark.systems import Guarded, reload_growth


@pytest.fixture
def sources(tmp_path: Path) -> dict[str, Path]:
    """Each model's version folder: the image's for both iris models, one of its own for the penguins and XGBoost."""
    folders = {}
    for name, content in (("image-model", b"model"), ("penguins", b"pipeline"), ("xgboost", b"trees")):
        folder = folders[name] = tmp_path / name
        folder.mkdir()
        (folder / "model.skops").write_bytes(content)
        (folder / "metadata.json").write_text("{}")
    return {MODEL: folders["image-model"], SECOND: folders["image-model"], TABULAR: folders["penguins"],
            BOOSTED: folders["xgboost"]}  # fmt: skip


def test_every_row_of_the_settings_is_a_system_with_its_repository_and_environment() -> None:
    assert tuple(FEATURES) == FEATURE_ROWS
    rows = {key: Guarded(key) for key in FEATURE_ROWS}
    assert rows["f-none"].layout == rows["f-control"].layout == rows["f-drift"].layout == ONE
    assert rows["f-none"].extra_env == rows["f-control"].extra_env == {"DRIFT_MAX_FEATURES": "0"}
    assert rows["f-drift"].extra_env == {}  # drift counting on: the server's default
    assert (rows["f-canary"].layout, rows["f-shadow"].layout, rows["f-reload"].layout) == (CANARY, SHADOW, TWO_BY_TWO)
    assert rows["f-reload"].extra_env["MODEL_POLL_SECONDS"] == "0.5"


@pytest.mark.parametrize(
    ("layout", "versions"),
    [
        (ONE, {MODEL: ["1"]}),
        (TWO_BY_TWO, {MODEL: ["1", "2"], SECOND: ["1", "2"]}),
        (CANARY, {MODEL: ["1", "2"]}),
        (XGBOOST, {MODEL: ["1"], BOOSTED: ["1"]}),
    ],
)
def test_a_repository_holds_the_layouts_versions(
    tmp_path: Path, sources: dict[str, Path], layout: Layout, versions: dict[str, list[str]]
) -> None:
    root = layout.build(tmp_path / "repo", sources)
    assert {m.name: sorted(v.name for v in m.iterdir() if v.is_dir()) for m in root.iterdir()} == versions
    content = {MODEL: b"model", SECOND: b"model", BOOSTED: b"trees"}
    assert all(
        (root / name / v / "model.skops").read_bytes() == content[name] for name, vs in versions.items() for v in vs
    )


def test_the_stack_serves_every_feature_on_each_kind_and_the_replicas_user_can_read_it(
    tmp_path: Path, sources: dict[str, Path]
) -> None:
    root = ALL_ON.build(tmp_path / "repo", sources)
    every_feature = {
        "version_policy": {"all": {}},
        "traffic": {"1": 90, "2": 10},
        "shadow": {"version": "2", "percent": 100},
    }
    assert json.loads((root / MODEL / "config.json").read_text()) == every_feature
    assert json.loads((root / TABULAR / "config.json").read_text()) == every_feature
    assert json.loads((root / BOOSTED / "config.json").read_text()) == every_feature
    assert json.loads((root / SECOND / "config.json").read_text()) == {"version_policy": {"latest": 2}}
    assert [(root / TABULAR / v / "model.skops").read_bytes() for v in ("1", "2")] == [b"pipeline", b"pipeline"]
    for path in (root, *root.rglob("*")):
        assert stat.S_IMODE(path.stat().st_mode) == (0o755 if path.is_dir() else 0o644), path
    assert not (SHADOW.build(tmp_path / "repo", sources) / SECOND).exists()  # rebuilt from scratch


def test_one_replica_direct_serves_the_stacks_repository_with_the_stacks_settings_for_the_replicas_group() -> None:
    same = Guarded("direct-all", row=STACK_ROW)
    assert (same.key, same.layout, same.extra_env, same.kind) == ("direct-all", ALL_ON, {}, "numeric")  # drift on


def test_reload_growth_is_measured_from_the_warm_cycle_to_the_last() -> None:
    # 153 MiB before, 290 after 10 cycles (each worker's own copies), 299 after 50
    assert reload_growth(290.0, 299.0, 10, 50) == {
        "from_cycle": 10,
        "to_cycle": 50,
        "mib": 9.0,
        "pct_of_warm": 3.1,
        "mib_per_cycle": 0.225,
    }
    assert reload_growth(200.0, 195.5, 10, 12)["mib_per_cycle"] == -2.25


def test_no_reload_growth_without_a_span_after_the_warm_cycles() -> None:
    assert reload_growth(None, 299.0, 10, 10) == {}
    assert reload_growth(290.0, 299.0, 10, 10) == {}
    assert reload_growth(290.0, None, 10, 50) == {}
    assert reload_growth(0.0, 299.0, 10, 50) == {}
