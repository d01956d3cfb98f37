"""Routing: which loaded version answers a request, and which one shadows it — the whole rollout decision.

A model's ``config.json`` (:mod:`..repository.model_config`) may give ``traffic`` weights, a
``sticky_header`` and a ``shadow``. On every poll the repository poller turns them, with the
versions that are loaded right now, into one immutable :class:`Routing` (:func:`plan_routing`),
published in the live models' snapshot with the versions themselves: a request reads the snapshot
once, so a change of weights applies to whole requests, atomically, on every worker within one
poll interval. Per request, :func:`choose` makes the decision from it: the split, the sticky
hash and the shadow draw all live here.

- **Split.** Each request draws a number in [0, 1): at random, or — when the request carries the
  sticky header — from a hash of the header's value (BLAKE2b, the same on every worker and
  replica; Python's own ``hash`` is salted per process). The versions own consecutive slices of
  [0, 1) in ascending version order, each as wide as its share of the weights. A key therefore
  keeps its version while the weights stay, and when the newest version's weight grows (10 → 50)
  the keys already on it stay on it.
- **What is split.** Only unversioned inference (``/predict``, ``/v2/models/{name}/infer``):
  a versioned URL always reaches its version. Weights of versions that are not loaded are
  ignored (one log line); if no weighted version is loaded, the newest loaded version serves, as
  without ``traffic``.
- **Roles.** The *primary* is the version with the largest share (the older one on a tie), the
  others with a share are *canaries*; without ``traffic``, the newest loaded version is the
  primary. The shadow version has the role *shadow*. The roles are exported
  (``model_server_rollout_role``) so that the Canary* alerts know what to compare.
- **Shadow.** A share of the unversioned requests is also run on the shadow version, after the
  served answer is computed and outside the request (:mod:`.shadow`); a request served by the
  shadow version itself is not shadowed.
- **Unversioned URLs that do not infer** (:class:`Unversioned`): metadata and readiness mean the
  newest loaded version, feedback the primary.
"""

from __future__ import annotations

import hashlib
import random
from bisect import bisect_right
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from fractions import Fraction

from ..repository.model_config import ModelConfig

PRIMARY, CANARY, SHADOW = "primary", "canary", "shadow"


class Unversioned(Enum):
    """Which version an unversioned URL means."""

    NEWEST = "newest"  # metadata and readiness: the newest loaded version
    ROUTED = "routed"  # inference: the model's traffic split, and maybe a shadow
    PRIMARY = "primary"  # feedback: the version that takes most of the traffic


@dataclass(frozen=True)
class Routing:
    """The split of one model's unversioned requests, over versions that are loaded."""

    versions: tuple[int, ...] = ()  # the weighted loaded versions, ascending; () = the newest loaded serves
    bounds: tuple[float, ...] = ()  # upper end of each version's slice of [0, 1); the last is 1.0
    sticky_header: str | None = None
    shadow_version: int | None = None  # loaded, and percent > 0
    shadow_share: float = 0.0  # 0..1

    def pick(self, draw: float) -> int | None:
        """The version whose slice holds ``draw`` (in [0, 1)); None when there is no split (newest loaded)."""
        if not self.versions:
            return None
        return self.versions[min(bisect_right(self.bounds, draw), len(self.versions) - 1)]

    def shares(self, loaded: Iterable[int]) -> dict[int, float]:
        """Share of the unversioned requests each loaded version gets (0 for the unweighted)."""
        loaded = sorted(loaded)
        if not self.versions:
            return {v: 1.0 if v == loaded[-1] else 0.0 for v in loaded}
        lower = (0.0, *self.bounds[:-1])
        share = {v: hi - lo for v, lo, hi in zip(self.versions, lower, self.bounds, strict=True)}
        return {v: share.get(v, 0.0) for v in loaded}

    def roles(self, loaded: Iterable[int]) -> dict[int, tuple[str, ...]]:
        """The roles of each loaded version: primary, canary, shadow (a version may be canary and shadow)."""
        shares = self.shares(loaded)
        primary = max(shares, key=lambda v: (shares[v], -v)) if shares else None
        roles: dict[int, tuple[str, ...]] = {}
        for version, share in shares.items():
            mine = (PRIMARY,) if version == primary else (CANARY,) if share > 0 else ()
            if version == self.shadow_version:
                mine += (SHADOW,)
            if mine:
                roles[version] = mine
        return roles


def plan_routing(config: ModelConfig, loaded: Iterable[int]) -> tuple[Routing, list[str]]:
    """The routing that ``config`` gives over the ``loaded`` versions, and what of it was ignored (one line each)."""
    loaded = set(loaded)
    ignored: list[str] = []
    weights: dict[int, float] = {}
    for version, weight in sorted((config.traffic or {}).items()):
        if version not in loaded:
            ignored.append(f"traffic weight of version {version} ignored: that version is not loaded")
        elif weight > 0:
            weights[version] = weight
    if config.traffic and not weights and loaded:
        ignored.append("no weighted version is loaded: the newest loaded version serves every request")

    versions, bounds = tuple(weights), ()
    if weights:  # exact rational sums, rounded once per bound: no float drift, whatever the weights
        total, running = sum(map(Fraction, weights.values())), Fraction(0)
        cumulative = []
        for weight in weights.values():
            running += Fraction(weight)
            cumulative.append(float(running / total))
        bounds = tuple(cumulative)  # the last is exactly 1.0

    shadow_version, shadow_share = None, 0.0
    if config.shadow is not None and config.shadow.percent > 0:
        if config.shadow.version in loaded:
            shadow_version, shadow_share = config.shadow.version, config.shadow.percent / 100
        else:
            ignored.append(f"shadow version {config.shadow.version} ignored: that version is not loaded")
    routing = Routing(versions, bounds, config.sticky_header, shadow_version, shadow_share)
    return routing, ignored


NO_ROUTING = Routing()


def choose(
    routing: Routing, loaded: Collection[int], unversioned: Unversioned, headers: Mapping[str, str]
) -> tuple[int, int | None]:
    """The version an unversioned request of this model goes to, and the version that shadows it (or None).

    ``loaded`` is not empty; ``headers`` are the request's (the sticky header, if the model has one).
    """
    newest = max(loaded)
    if unversioned is Unversioned.NEWEST:
        return newest, None
    if unversioned is Unversioned.PRIMARY:
        roles = routing.roles(loaded)
        return next((v for v, held in roles.items() if PRIMARY in held), newest), None
    sticky_key = headers.get(routing.sticky_header) if routing.sticky_header else None
    picked = routing.pick(draw(sticky_key))
    version = picked if picked in loaded else newest
    shadow = routing.shadow_version
    if shadow is None or shadow == version or shadow not in loaded or not shadowed(routing):
        return version, None
    return version, shadow


def draw(sticky_key: str | None) -> float:
    """A number in [0, 1): from the sticky key when there is one (stable everywhere), else at random."""
    if sticky_key is None:
        return random.random()  # noqa: S311 - a traffic split, not a secret
    digest = hashlib.blake2b(sticky_key.encode("utf-8", "surrogateescape"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def shadowed(routing: Routing) -> bool:
    """Whether this request also runs on the shadow version (a fresh draw: independent of the split)."""
    return routing.shadow_share > 0 and (routing.shadow_share >= 1 or random.random() < routing.shadow_share)  # noqa: S311
