"""Which versions of a model to load and unload: a small pure decision, kept apart from the loading.

Two steps, as in TensorFlow Serving (its "aspired versions" and AvailabilityPreservingPolicy):

* :func:`wanted_versions`: what the model's version policy asks for, among the versions on disk.
* :func:`plan`: given what is wanted, what is loaded (ready) and what failed to load, the
  versions to load (newest first) and the versions to unload.

The availability-preserving rule, the one subtle line of :func:`plan`: a loaded version that is
no longer wanted is unloaded only once some wanted version is loaded, so a model never loses
its last servable version before a successor is ready. Its consequences:

* v1 loaded, v2 published (latest 1): load v2 and keep v1; once v2 is loaded, unload v1.
* v3 fails to load: nothing is unloaded, v2 keeps serving (the caller keeps v3 in ``failed``
  until its folder changes, so it is not retried in a loop).
* v2's folder removed while v2 is loaded (v1 still on disk): load v1 again and keep v2 until v1
  is ready, then unload v2: TF Serving's roll back. If v1 fails, v2 keeps serving from memory.
* The model withdrawn, i.e. nothing wanted and nothing failed (its folder removed, or its
  policy matches no version on disk): everything is unloaded, as TF Serving does; no version
  on disk could succeed the loaded ones, and a withdrawn model must stop answering.

``wanted`` may include failed versions (TF Serving's aspired versions), or the caller may pick
among the versions that did not fail (``wanted_versions(policy, available - failed)``, so that
the policy falls back to the newest version that loads); the rule holds either way, because a
model with failed versions is never taken for withdrawn.

Who loads, in which order, and how a load is confirmed is the repository poller's business
(:mod:`..serving.repository_poller`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .model_config import VersionPolicy


@dataclass(frozen=True)
class Plan:
    load: tuple[int, ...]  # wanted, neither loaded nor failed; newest first
    unload: tuple[int, ...]  # loaded, no longer wanted, and safe to drop (see the module docstring); ascending

    def __bool__(self) -> bool:
        return bool(self.load or self.unload)


def wanted_versions(policy: VersionPolicy, available: Iterable[int]) -> frozenset[int]:
    """The versions ``policy`` asks for among ``available``: the N highest, the listed ones that exist, or all."""
    versions = frozenset(available)
    match policy.kind:
        case "latest":
            return frozenset(sorted(versions, reverse=True)[: policy.latest])
        case "specific":
            return versions.intersection(policy.specific or ())
        case "all":
            return versions


def plan(wanted: frozenset[int], loaded: frozenset[int], failed: frozenset[int]) -> Plan:
    """What to load and unload so that ``loaded`` moves toward ``wanted`` without losing availability.

    ``failed``: versions on disk that failed to load and are not to be retried (yet).
    """
    load = tuple(sorted(wanted - loaded - failed, reverse=True))
    withdrawn = not wanted and not failed
    # The availability-preserving rule: unload only once a wanted version serves, or when the
    # model is withdrawn (no version on disk could succeed the loaded ones).
    unload = tuple(sorted(loaded - wanted)) if (wanted & loaded) or withdrawn else ()
    return Plan(load=load, unload=unload)
