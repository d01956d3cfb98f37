"""bench.benchmark.features: the repositories the guard's rows serve, and the report's verdicts on them."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import pytest

from bench.benchmark.features import (
    ALL_ON,
    CANARY,
    FEATURES,
    MODEL,
    ONE,
    SECOND,
    SHADOW,
    TWO_BY_TWO,
    build_repository,
    reload_growth,
)
from bench.benchmark.report_guard import guard_rows, guard_section
from bench.benchmark.settings import FEATURE_ROWS


@pytest.fixture
def version_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "image-model"
    folder.mkdir()
    (folder / "model.skops").write_bytes(b"model")
    (folder / "metadata.json").write_text("{}")
    return folder


def test_every_row_of_the_settings_has_a_feature() -> None:
    assert tuple(FEATURES) == FEATURE_ROWS


@pytest.mark.parametrize(
    ("layout", "versions"),
    [(ONE, {MODEL: ["1"]}), (TWO_BY_TWO, {MODEL: ["1", "2"], SECOND: ["1", "2"]}), (CANARY, {MODEL: ["1", "2"]})],
)
def test_a_repository_holds_the_layouts_versions(tmp_path: Path, version_dir: Path, layout, versions) -> None:
    root = build_repository(tmp_path / "repo", version_dir, layout)

    found = {m.name: sorted(v.name for v in m.iterdir() if v.is_dir()) for m in root.iterdir()}
    assert found == versions
    for name, listed in versions.items():
        for version in listed:
            assert (root / name / version / "model.skops").read_bytes() == b"model"


def test_configs_and_permissions_let_the_replicas_user_read_it(tmp_path: Path, version_dir: Path) -> None:
    root = build_repository(tmp_path / "repo", version_dir, ALL_ON)

    config = json.loads((root / MODEL / "config.json").read_text())
    assert config["traffic"] == {"1": 90, "2": 10} and config["shadow"] == {"version": "2", "percent": 100}
    assert json.loads((root / SECOND / "config.json").read_text()) == {"version_policy": {"latest": 2}}
    for path in (root, *root.rglob("*")):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), path
    shadow_root = build_repository(tmp_path / "repo", version_dir, SHADOW)  # rebuilt from scratch
    assert not (shadow_root / SECOND).exists()


def run(rps: float, p50: float, cores: float = 1.0) -> dict[str, Any]:
    return {"rps": rps, "latency_ms": {"p50": p50, "p99": p50 * 3}, "cpu": {"components_cores": {"replica": cores}}}


def system(c16: dict[str, Any], c1: dict[str, Any]) -> dict[str, Any]:
    return {"status": "ok", "runs": [{"concurrency": 16, **c16}, {"concurrency": 1, **c1}]}


def test_guard_rows_compare_each_feature_with_the_baseline() -> None:
    results = {
        "systems": {
            "f-none": system(run(1000, 0), run(100, 2.0)),
            "f-drift": system(run(960, 0), run(100, 2.1)),
            "f-shadow": system(run(800, 0), run(100, 3.5)),
        }
    }

    rows = {row["key"]: row for row in guard_rows(results)}

    assert rows["f-drift"]["rps_change"] == pytest.approx(-0.04)
    assert rows["f-drift"]["p50_change_ms"] == pytest.approx(0.1)
    assert rows["f-drift"]["cpu_us_c16"] == pytest.approx(1e6 / 960)
    markdown = "\n".join(guard_section(results, {}, {}, [], [1, 16]))
    assert "✅ + drift counting: -4.0% of the baseline's req/s" in markdown
    assert "❌ 100 % shadow: p50 at c=1 +1.50 ms (single run; budget +1 ms)" in markdown


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
