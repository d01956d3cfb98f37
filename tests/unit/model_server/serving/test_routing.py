"""The rollout decision of serving/routing.py alone: shares, draws, sticky keys, roles, shadow, what is ignored."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
from model_server.repository.model_config import MAX_WEIGHT, ModelConfig, ModelConfigError, read_model_config
from model_server.serving.routing import (
    CANARY,
    PRIMARY,
    SHADOW,
    Routing,
    Unversioned,
    choose,
    draw,
    plan_routing,
    shadowed,
)


def config(**fields: object) -> ModelConfig:
    return ModelConfig.model_validate(fields)


def counts_over(routing: Routing, draws: list[float]) -> dict[int | None, int]:
    counts: dict[int | None, int] = {}
    for value in draws:
        picked = routing.pick(value)
        counts[picked] = counts.get(picked, 0) + 1
    return counts


def within_binomial(count: int, n: int, p: float, sigmas: float = 5.0) -> bool:
    """``count`` of ``n`` draws is within ``sigmas`` standard deviations of a share ``p`` (1 in 1.7 million fails)."""
    return abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p))


def test_weights_are_shares_of_their_sum_over_ascending_versions() -> None:
    routing, ignored = plan_routing(config(traffic={"2": 1, "1": 3}), {1, 2})

    assert ignored == []
    assert routing.versions == (1, 2)
    assert routing.shares({1, 2}) == {1: 0.75, 2: 0.25}
    # slices of [0, 1) in version order: version 1 owns [0, 0.75), version 2 [0.75, 1)
    assert [routing.pick(x) for x in (0.0, 0.7499, 0.75, 0.9999999)] == [1, 1, 2, 2]


def test_an_even_grid_of_draws_gets_exactly_the_shares() -> None:
    routing, _ = plan_routing(config(traffic={"1": 90, "2": 10}), {1, 2})

    assert counts_over(routing, [(i + 0.5) / 10_000 for i in range(10_000)]) == {1: 9_000, 2: 1_000}


@pytest.mark.parametrize("weights", [{"1": 90, "2": 10}, {"1": 50, "2": 50}, {"1": 1, "2": 1, "3": 2}])
def test_random_draws_honour_the_weights_within_statistical_bounds(weights: dict[str, int]) -> None:
    versions = {int(v) for v in weights}
    routing, _ = plan_routing(config(traffic=weights), versions)
    n = 20_000

    counts = counts_over(routing, [draw(None) for _ in range(n)])

    total = sum(weights.values())
    for version, weight in weights.items():
        assert within_binomial(counts.get(int(version), 0), n, weight / total), (counts, weights)


def test_no_traffic_means_the_newest_loaded_version_takes_everything() -> None:
    routing, ignored = plan_routing(config(), {1, 3})

    assert (routing.pick(0.5), ignored) == (None, [])
    assert routing.shares({1, 3}) == {1: 0.0, 3: 1.0}
    assert routing.roles({1, 3}) == {3: (PRIMARY,)}


def test_weights_of_versions_not_loaded_are_ignored_with_a_reason() -> None:
    routing, ignored = plan_routing(config(traffic={"1": 90, "2": 10}), {1})

    assert routing.versions == (1,)
    assert routing.shares({1}) == {1: 1.0}
    assert ignored == ["traffic weight of version 2 ignored: that version is not loaded"]


def test_no_weighted_version_loaded_falls_back_to_the_newest() -> None:
    routing, ignored = plan_routing(config(traffic={"5": 1}), {1, 2})

    assert routing.pick(0.3) is None
    assert ignored == [
        "traffic weight of version 5 ignored: that version is not loaded",
        "no weighted version is loaded: the newest loaded version serves every request",
    ]


def test_a_zero_weight_version_gets_no_traffic_and_no_role() -> None:
    routing, _ = plan_routing(config(traffic={"1": 1, "2": 0}), {1, 2})

    assert counts_over(routing, [i / 1000 for i in range(1000)]) == {1: 1000}
    assert routing.roles({1, 2}) == {1: (PRIMARY,)}


def test_roles_primary_is_the_largest_share_the_older_on_a_tie() -> None:
    routing, _ = plan_routing(config(traffic={"1": 10, "2": 90}, shadow={"version": "3", "percent": 5}), {1, 2, 3})
    assert routing.roles({1, 2, 3}) == {1: (CANARY,), 2: (PRIMARY,), 3: (SHADOW,)}

    tie, _ = plan_routing(config(traffic={"1": 50, "2": 50}, shadow={"version": 2, "percent": 100}), {1, 2})
    assert tie.roles({1, 2}) == {1: (PRIMARY,), 2: (CANARY, SHADOW)}


def test_sticky_keys_always_draw_the_same_number_in_every_process() -> None:
    keys = [f"user-{i}" for i in range(200)] + ["", "ü-ñ", "\udcff"]
    here = [draw(key) for key in keys]
    assert here == [draw(key) for key in keys]
    assert all(0 <= x < 1 for x in here)
    # Another interpreter, another hash salt: the same numbers (Python's hash() would differ).
    script = (
        "import json, sys; from model_server.serving.routing import draw;"
        " print(json.dumps([*map(draw, json.load(sys.stdin))]))"
    )
    other = subprocess.run(
        [sys.executable, "-c", script],
        input=json.dumps(keys[:-1]),
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONHASHSEED": "12345", "PATH": ""},
    )
    assert json.loads(other.stdout) == here[:-1]


def test_sticky_keys_spread_like_the_weights() -> None:
    routing, _ = plan_routing(config(traffic={"1": 90, "2": 10}), {1, 2})
    n = 20_000

    counts = counts_over(routing, [draw(f"user-{i}") for i in range(n)])

    assert within_binomial(counts[2], n, 0.10), counts


def test_a_growing_canary_keeps_the_keys_it_already_has() -> None:
    ten, _ = plan_routing(config(traffic={"1": 90, "2": 10}), {1, 2})
    fifty, _ = plan_routing(config(traffic={"1": 50, "2": 50}), {1, 2})
    keys = [draw(f"user-{i}") for i in range(5_000)]

    on_canary_at_10 = {i for i, x in enumerate(keys) if ten.pick(x) == 2}

    assert on_canary_at_10
    assert all(fifty.pick(keys[i]) == 2 for i in on_canary_at_10)


def test_shadow_share_and_a_shadow_not_loaded() -> None:
    routing, ignored = plan_routing(config(shadow={"version": "2", "percent": 25}), {1, 2})
    random.seed(1)
    n = 20_000
    assert within_binomial(sum(shadowed(routing) for _ in range(n)), n, 0.25)

    always, _ = plan_routing(config(shadow={"version": "2", "percent": 100}), {1, 2})
    assert all(shadowed(always) for _ in range(1000))

    missing, ignored = plan_routing(config(shadow={"version": "7", "percent": 100}), {1, 2})
    assert (missing.shadow_version, shadowed(missing)) == (None, False)
    assert ignored == ["shadow version 7 ignored: that version is not loaded"]

    off, ignored = plan_routing(config(shadow={"version": "2", "percent": 0}), {1, 2})
    assert (off.shadow_version, shadowed(off), ignored) == (None, False, [])


def test_choose_gives_each_unversioned_meaning_its_version() -> None:
    routing, _ = plan_routing(config(traffic={"1": 90, "2": 10}), [1, 2, 3])

    assert choose(routing, [1, 2, 3], Unversioned.NEWEST, {}) == (3, None)
    assert choose(routing, [1, 2, 3], Unversioned.PRIMARY, {}) == (1, None)
    picked = {choose(routing, [1, 2, 3], Unversioned.ROUTED, {})[0] for _ in range(400)}
    assert picked == {1, 2}, "the split, never the unweighted newest"


def test_choose_follows_the_sticky_header_and_draws_the_shadow() -> None:
    routing, _ = plan_routing(
        ModelConfig.model_validate(
            {"traffic": {"1": 50, "2": 50}, "sticky_header": "X-User", "shadow": {"version": 3, "percent": 100}}
        ),
        [1, 2, 3],
    )
    for user in ("ana", "bo", "cy"):
        expected = routing.pick(draw(user))
        # Header lookups are case-insensitive in a request; here a plain dict holds the configured name.
        assert choose(routing, [1, 2, 3], Unversioned.ROUTED, {"X-User": user}) == (expected, 3)
    assert choose(routing, [1, 2, 3], Unversioned.PRIMARY, {}) == (1, None), "only inference is shadowed"


def test_a_request_the_shadow_version_serves_is_not_shadowed() -> None:
    routing, _ = plan_routing(
        ModelConfig.model_validate({"traffic": {"2": 1}, "shadow": {"version": 2, "percent": 100}}), [1, 2]
    )

    assert choose(routing, [1, 2], Unversioned.ROUTED, {}) == (2, None)


def test_weights_at_the_maximum_split_evenly() -> None:
    routing, _ = plan_routing(config(traffic={"1": MAX_WEIGHT, "2": MAX_WEIGHT}), {1, 2})

    assert routing.shares({1, 2}) == {1: 0.5, 2: 0.5}


@pytest.mark.parametrize("weight", [1e308, MAX_WEIGHT * 1.5, float("inf"), -1])
def test_a_weight_over_the_maximum_or_not_finite_is_refused(tmp_path: Path, weight: float) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"traffic": {"1": weight, "2": 1}}).replace("Infinity", "1e999"))

    with pytest.raises(ModelConfigError, match=r"traffic\.1"):
        read_model_config(path)


@pytest.mark.parametrize("traffic", [{"1": 0, "2": 0}, {"1": 0}, {}])
def test_traffic_without_a_positive_weight_is_refused(tmp_path: Path, traffic: dict[str, float]) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"traffic": traffic}))

    with pytest.raises(ModelConfigError) as refused:
        read_model_config(path)
    assert str(refused.value) == f"{path}: traffic: give at least one version a weight above 0"


def test_bounds_are_the_exact_cumulative_shares_rounded_once() -> None:
    weights = {"1": 0.1, "2": 0.2, "3": 0.3}
    routing, _ = plan_routing(config(traffic=weights), {1, 2, 3})

    exact = [Fraction(w) for w in weights.values()]
    assert routing.bounds == tuple(float(sum(exact[: i + 1]) / sum(exact)) for i in range(3))
    assert routing.bounds[0] == 0.16666666666666669, "float sums give 0.16666666666666666"
    assert routing.bounds[-1] == 1.0
