"""model_server.repository.policy: which versions are wanted, and the availability-preserving plan."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from model_server.repository.model_config import AllVersions, VersionPolicy
from model_server.repository.policy import Plan, plan, wanted_versions

PROPERTY = settings(max_examples=500, deadline=None, database=None)

LATEST_1 = VersionPolicy(latest=1)


def fs(*versions: int) -> frozenset[int]:
    return frozenset(versions)


# --- wanted_versions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "available", "wanted"),
    [
        (VersionPolicy(latest=1), [1, 2, 3], {3}),
        (VersionPolicy(latest=2), [3, 1, 2], {2, 3}),
        (VersionPolicy(latest=5), [1, 2], {1, 2}),
        (VersionPolicy(latest=1), [2, 10], {10}),
        (VersionPolicy(latest=1), [], set()),
        (VersionPolicy(specific=(1, 3)), [1, 2, 3, 4], {1, 3}),
        (VersionPolicy(specific=(1, 3)), [2, 3], {3}),
        (VersionPolicy(specific=(5,)), [1, 2], set()),
        (VersionPolicy(all=AllVersions()), [4, 1, 2], {1, 2, 4}),
        (VersionPolicy(all=AllVersions()), [], set()),
    ],
)
def test_wanted_versions(policy: VersionPolicy, available: list[int], wanted: set[int]) -> None:
    assert wanted_versions(policy, available) == frozenset(wanted)


def test_wanted_versions_takes_any_iterable() -> None:
    versions = {1: "a", 3: "b", 2: "c"}  # as ModelDir.versions

    assert wanted_versions(VersionPolicy(latest=2), versions) == fs(2, 3)
    assert wanted_versions(VersionPolicy(latest=2), iter([1, 1, 3])) == fs(1, 3)


policies = st.one_of(
    st.builds(VersionPolicy, latest=st.integers(1, 5)),
    st.builds(VersionPolicy, specific=st.lists(st.integers(1, 12), min_size=1, max_size=4).map(tuple)),
    st.just(VersionPolicy(all=AllVersions())),
)
version_sets = st.frozensets(st.integers(1, 12), max_size=8)


@PROPERTY
@given(policies, version_sets)
def test_wanted_versions_are_available_and_as_many_as_asked(policy: VersionPolicy, available: frozenset[int]) -> None:
    wanted = wanted_versions(policy, available)

    assert wanted <= available
    if policy.kind == "latest":
        assert policy.latest is not None
        assert len(wanted) == min(policy.latest, len(available))
        assert all(v > u for v in wanted for u in available - wanted)  # the highest ones
    elif policy.kind == "specific":
        assert wanted == available & set(policy.specific or ())
    else:
        assert wanted == available


# --- plan: the cases -----------------------------------------------------------------------------


def test_the_first_version_is_loaded() -> None:
    assert plan(wanted=fs(1), loaded=fs(), failed=fs()) == Plan(load=(1,), unload=())


def test_a_new_version_is_loaded_while_the_old_one_keeps_serving() -> None:
    assert plan(wanted=fs(2), loaded=fs(1), failed=fs()) == Plan(load=(2,), unload=())


def test_the_old_version_is_unloaded_once_the_new_one_is_ready() -> None:
    assert plan(wanted=fs(2), loaded=fs(1, 2), failed=fs()) == Plan(load=(), unload=(1,))


def test_a_version_that_failed_to_load_leaves_the_old_one_serving() -> None:
    assert plan(wanted=fs(3), loaded=fs(2), failed=fs(3)) == Plan(load=(), unload=())


def test_roll_back_when_the_newest_folder_is_removed() -> None:
    """v2 loaded, its folder removed, v1 still on disk (latest 1): load v1, keep v2 until v1 is ready."""
    wanted = wanted_versions(LATEST_1, [1])

    assert plan(wanted, loaded=fs(2), failed=fs()) == Plan(load=(1,), unload=())
    assert plan(wanted, loaded=fs(1, 2), failed=fs()) == Plan(load=(), unload=(2,))


def test_roll_back_that_fails_keeps_the_removed_version_serving() -> None:
    assert plan(wanted=fs(1), loaded=fs(2), failed=fs(1)) == Plan(load=(), unload=())


def test_a_model_whose_folder_vanished_is_unloaded() -> None:
    """Nothing available, nothing wanted: no successor to wait for; the withdrawn model stops serving."""
    wanted = wanted_versions(LATEST_1, [])

    assert plan(wanted, loaded=fs(1, 2), failed=fs()) == Plan(load=(), unload=(1, 2))


def test_a_model_with_failed_versions_is_not_withdrawn() -> None:
    """v2 loaded, its folder removed, v1 refused, and the caller picks among versions that did not fail."""
    wanted = wanted_versions(LATEST_1, fs(1) - fs(1))

    assert plan(wanted, loaded=fs(2), failed=fs(1)) == Plan(load=(), unload=())


def test_the_policy_may_pick_among_the_versions_that_did_not_fail() -> None:
    """The newest version refused: the previous one is wanted instead, also on a fresh start."""
    wanted = wanted_versions(LATEST_1, fs(1, 2) - fs(2))

    assert plan(wanted, loaded=fs(), failed=fs(2)) == Plan(load=(1,), unload=())
    assert plan(wanted, loaded=fs(1), failed=fs(2)) == Plan(load=(), unload=())


def test_a_specific_policy_that_matches_nothing_unloads_everything() -> None:
    wanted = wanted_versions(VersionPolicy(specific=(9,)), [1, 2])

    assert plan(wanted, loaded=fs(2), failed=fs()) == Plan(load=(), unload=(2,))


def test_versions_load_newest_first() -> None:
    assert plan(wanted=fs(1, 3, 2), loaded=fs(), failed=fs()).load == (3, 2, 1)


def test_failed_versions_are_not_retried() -> None:
    assert plan(wanted=fs(1, 2, 3), loaded=fs(), failed=fs(3)).load == (2, 1)


def test_latest_two_unloads_the_oldest_as_soon_as_a_wanted_version_serves() -> None:
    """v1 and v2 loaded, v3 published: v2 is wanted and ready, so v1 goes now while v3 loads."""
    wanted = wanted_versions(VersionPolicy(latest=2), [1, 2, 3])

    assert plan(wanted, loaded=fs(1, 2), failed=fs()) == Plan(load=(3,), unload=(1,))


def test_a_steady_state_has_nothing_to_do() -> None:
    steady = plan(wanted=fs(2, 3), loaded=fs(2, 3), failed=fs())

    assert steady == Plan(load=(), unload=())
    assert not steady
    assert Plan(load=(1,), unload=())


# --- plan: properties ----------------------------------------------------------------------------


State = tuple[frozenset[int], frozenset[int], frozenset[int]]  # wanted, loaded, failed


@st.composite
def states(draw: st.DrawFn) -> State:
    wanted, loaded = draw(version_sets), draw(version_sets)
    failed = draw(version_sets) - loaded  # a loaded version has not failed
    return wanted, loaded, failed


@PROPERTY
@given(states())
def test_never_leaves_a_serving_model_without_a_version_while_one_is_wanted(
    state: State,
) -> None:
    """The availability-preserving rule: unloading keeps at least one version while any is wanted."""
    wanted, loaded, failed = state

    result = plan(wanted, loaded, failed)

    if loaded and wanted:  # in particular while some wanted version is not loaded yet
        assert loaded - set(result.unload)


@PROPERTY
@given(states())
def test_the_plan_only_moves_toward_what_is_wanted(state: State) -> None:
    wanted, loaded, failed = state

    result = plan(wanted, loaded, failed)

    assert set(result.load) == wanted - loaded - failed
    assert list(result.load) == sorted(result.load, reverse=True)
    assert set(result.unload) <= loaded - wanted  # never a wanted version
    assert list(result.unload) == sorted(result.unload)
    if wanted & loaded or not (wanted or failed):
        assert set(result.unload) == loaded - wanted  # nothing left behind once it is safe


events = st.lists(
    st.one_of(
        st.tuples(st.just("publish"), st.integers(1, 6)),
        st.tuples(st.just("remove"), st.integers(1, 6)),
        st.tuples(st.just("poll"), st.booleans()),  # plan and carry it out; the loads succeed or fail
    ),
    max_size=40,
)


@PROPERTY
@given(policies, events, st.booleans())
@example(  # roll back to a version that is refused: the removed version keeps serving
    LATEST_1, [("publish", 1), ("publish", 2), ("poll", True), ("remove", 2), ("poll", False), ("poll", True)], True
)
def test_a_registry_following_the_plan_stays_available(policy: VersionPolicy, history: list, skip: bool) -> None:
    """Over any history of publications, removals and load failures, a serving model keeps serving
    while its policy wants a version on disk, and once loads succeed it settles on exactly the wanted
    versions. Both ways of calling: failed versions among the wanted, or skipped by the policy."""
    disk: set[int] = set()
    loaded: set[int] = set()
    failed: set[int] = set()

    def poll(loads_succeed: bool) -> Plan:
        failed.intersection_update(disk)  # a removed folder is forgotten (its next copy is new)
        wanted = wanted_versions(policy, disk - failed if skip else disk)
        step = plan(wanted, frozenset(loaded), frozenset(failed))
        serving = bool(loaded)
        for version in step.load:
            (loaded if loads_succeed else failed).add(version)
        loaded.difference_update(step.unload)
        assert loaded or not (serving and wanted_versions(policy, disk))
        assert not set(step.unload) & wanted
        return step

    for event, value in history:
        if event == "publish":
            disk.add(value)
        elif event == "remove":
            disk.discard(value)
        else:
            poll(value)

    failed.clear()  # every folder fixed
    for _ in range(3):
        if not poll(True):
            break
    assert loaded == wanted_versions(policy, disk)
