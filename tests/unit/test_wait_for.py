"""`harness.waiting.wait_for`, the e2e, Swarm and benchmark wait: retries "not yet", never a failed assertion."""

import time

import pytest
import requests

from harness.waiting import NotYet, wait_for


def test_an_assertion_inside_the_probe_fails_at_once() -> None:
    calls = []

    def probe() -> bool:
        calls.append(1)
        assert len(calls) > 5, "a failed request was counted"  # would pass on the 6th call if retried
        return True

    started = time.monotonic()
    with pytest.raises(AssertionError, match="a failed request was counted"):
        wait_for("something", probe, timeout=5, interval=0.01)
    assert calls == [1] and time.monotonic() - started < 1


@pytest.mark.parametrize("not_yet", [NotYet("no data yet"), requests.ConnectionError("refused"), KeyError("ready")])
def test_not_yet_is_retried_until_the_probe_succeeds(not_yet: Exception) -> None:
    calls = []

    def probe() -> str | None:
        calls.append(1)
        if len(calls) < 3:
            raise not_yet
        return "done"

    assert wait_for("something", probe, timeout=5, interval=0.01) == "done"
    assert len(calls) == 3


def test_a_probe_that_never_succeeds_times_out_naming_what_and_the_last_answer() -> None:
    with pytest.raises(AssertionError, match=r"timed out after 0s waiting for the thing; last: NotYet\('still not'\)"):
        wait_for("the thing", lambda: (_ for _ in ()).throw(NotYet("still not")), timeout=0.05, interval=0.01)
