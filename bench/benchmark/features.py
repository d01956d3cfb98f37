"""The performance guard: one replica with each feature of the request path on, side by side.

Every row is system (b) — one model-server replica, ``docker run`` with the same CPUs, memory
and workers — serving a host repository (read-only at ``/models``) built from the image's model:

=================  ======================================================================
``f-none``         one model, one version, drift counting off (``DRIFT_MAX_FEATURES=0``)
``f-control``      ``f-none`` again, a second replica just like it: the A/A control, whose
                   change against ``f-none`` is the run's noise floor
``f-drift``        the same with drift counting on (the default)
``f-repository``   2 models x 2 versions loaded (policy all), drift off
``f-canary``       2 versions of the served model, ``traffic {"1": 90, "2": 10}``, drift off
``f-shadow``       2 versions, ``traffic {"1": 100}``, version 2 a 100 % shadow, drift off
``f-reload``       the 2 x 2 repository, then ``BENCH_RELOAD_CYCLES`` reloads; memory before,
                   after the first 10 and after the last, and its growth in between
=================  ======================================================================

Each feature's cost is its row against ``f-none`` (req/s at 16 connections, p50 at 1); ``f-control``
measures what such a change is when nothing differs. Version 2
is a copy of version 1, so every answer is the image model's and the checks hold. ``f-reload``
publishes a new version of the second model with ``mv`` (policy latest 2, so the oldest is
unloaded), waits until the replica serves it, and repeats; ``MODEL_POLL_SECONDS`` is 0.5 there
so that 50 cycles take a minute, not four. A worker's first reload of a model costs memory
once (it loads a private copy; the copy the gunicorn master loaded is shared until then), so
the growth that would show a leak is the one after the first :data:`RELOAD_WARM_CYCLES`
(:func:`reload_growth`). The full stack (c) serves :data:`ALL_ON`: every feature at once. This
module is pure (the layouts, how a repository is written, the reload memory's arithmetic);
:class:`.guarded.Guarded` runs the rows.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MODEL = "iris-rf"  # what the image's repository holds, and what /predict serves
SECOND = "iris-rf-b"  # the second model of the 2 x 2 repository
DRIFT_OFF = {"DRIFT_MAX_FEATURES": "0"}


@dataclass(frozen=True)
class Layout:
    """A repository: model name -> its versions, and the served model's config.json."""

    models: dict[str, tuple[int, ...]]
    config: dict[str, Any] = field(default_factory=dict)
    second_config: dict[str, Any] = field(default_factory=dict)


ONE = Layout({MODEL: (1,)})
TWO_BY_TWO = Layout({MODEL: (1, 2), SECOND: (1, 2)}, {"version_policy": {"all": {}}}, {"version_policy": {"latest": 2}})
CANARY = Layout({MODEL: (1, 2)}, {"version_policy": {"all": {}}, "traffic": {"1": 90, "2": 10}})
SHADOW = Layout(
    {MODEL: (1, 2)}, {"version_policy": {"all": {}}, "traffic": {"1": 100}, "shadow": {"version": "2", "percent": 100}}
)
ALL_ON = Layout(
    {MODEL: (1, 2), SECOND: (1, 2)},
    {"version_policy": {"all": {}}, "traffic": {"1": 90, "2": 10}, "shadow": {"version": "2", "percent": 100}},
    {"version_policy": {"latest": 2}},
)

RELOAD_WARM_CYCLES = 10  # reload cycles after which every worker holds its own copies

# key -> (label, repository, environment over the replica's)
FEATURES: dict[str, tuple[str, Layout, dict[str, str]]] = {
    "f-none": ("guard: 1 model x 1 version, drift off (baseline)", ONE, DRIFT_OFF),
    "f-control": ("control: the baseline again (noise floor)", ONE, DRIFT_OFF),
    "f-drift": ("guard: + drift counting", ONE, {}),
    "f-repository": ("guard: + 2 models x 2 versions", TWO_BY_TWO, DRIFT_OFF),
    "f-canary": ("guard: + canary 10 %", CANARY, DRIFT_OFF),
    "f-shadow": ("guard: + shadow 100 %", SHADOW, DRIFT_OFF),
    "f-reload": ("guard: 2 x 2, then reload cycles", TWO_BY_TWO, {**DRIFT_OFF, "MODEL_POLL_SECONDS": "0.5"}),
}


def build_repository(root: Path, version_dir: Path, layout: Layout) -> Path:
    """``root/<model>/<version>`` copies of ``version_dir`` and the configs, readable by the replica's user."""
    shutil.rmtree(root, ignore_errors=True)
    for name, versions in layout.models.items():
        for version in versions:
            shutil.copytree(version_dir, root / name / str(version))
    for name, config in ((MODEL, layout.config), (SECOND, layout.second_config)):
        if config and name in layout.models:
            (root / name / "config.json").write_text(json.dumps(config))
    for path in (root, *root.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return root


def reload_growth(warm_mib: float | None, last_mib: float | None, warm_cycles: int, cycles: int) -> dict[str, Any]:
    """How much memory grew from cycle ``warm_cycles`` (``warm_mib``) to the last one (``last_mib``): MiB, %
    of the memory at ``warm_cycles``, MiB per cycle. Empty when there is no such span to measure."""
    if warm_mib is None or last_mib is None or warm_mib <= 0 or cycles <= warm_cycles:
        return {}
    growth = last_mib - warm_mib
    return {
        "from_cycle": warm_cycles,
        "to_cycle": cycles,
        "mib": round(growth, 1),
        "pct_of_warm": round(100 * growth / warm_mib, 2),
        "mib_per_cycle": round(growth / (cycles - warm_cycles), 3),
    }
