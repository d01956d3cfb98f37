"""The performance guard's rows: system (b) on a host repository of its own (:mod:`.features`).

The rows run exactly as (b) does, the image's Docker health check included: they stay up together
for their paired rounds (:mod:`.interleaved`), and while one is measured the others are frozen
(:mod:`.freeze`), so their health checks take no CPU from it. Each row is ready when it answers
``/v2/health/ready``, as (b) is.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support.commands import Failed

from .client import connect, post_json
from .containers import Direct
from .features import FEATURES, MODEL, RELOAD_WARM_CYCLES, SECOND, build_repository, reload_growth
from .measure import log

if TYPE_CHECKING:
    from .context import Context


class Guarded(Direct):
    """System (b) on a host repository of its own, with one feature (or none) on."""

    def __init__(self, key: str, reload_cycles: int = 0) -> None:
        label, layout, env = FEATURES[key]
        super().__init__(key, label, env)
        self.layout = layout
        self.reload_cycles = reload_cycles
        self.repository: Path | None = None

    def start(self, ctx: Context) -> None:
        self.repository = build_repository(ctx.settings.run_dir / f"repo-{self.key}", ctx.image_model_dir, self.layout)
        self.extra_env = {**self.extra_env, "MODEL_REPOSITORY": "/models", "DEFAULT_MODEL": MODEL}
        self.mounts = [f"{self.repository}:/models:ro"]
        super().start(ctx)
        self.settings["repository"] = {
            name: {"versions": list(versions)} for name, versions in self.layout.models.items()
        }
        self.settings["config.json"] = {MODEL: self.layout.config, SECOND: self.layout.second_config}

    def after_runs(self, ctx: Context) -> dict[str, Any]:
        if not self.reload_cycles or self.repository is None:
            return {}
        before = self.memory()
        warm: dict[str, Any] = {}
        elapsed = 0.0
        newest = max(self.layout.models[SECOND])
        for cycle in range(1, self.reload_cycles + 1):
            newest += 1
            started = time.monotonic()
            self._publish(ctx.image_model_dir, newest)
            elapsed += time.monotonic() - started
            if cycle == RELOAD_WARM_CYCLES and cycle < self.reload_cycles:
                warm = self._settled_memory()
        after = self._settled_memory()
        growth = reload_growth(_resident(warm), _resident(after), RELOAD_WARM_CYCLES, self.reload_cycles)
        log(
            f"{self.key}: {self.reload_cycles} reload cycles in {elapsed:.1f}s; resident MiB {_resident(before)} "
            f"before, {_resident(warm)} after {RELOAD_WARM_CYCLES}, {_resident(after)} after the last"
        )
        return {
            "reload_cycles": {
                "cycles": self.reload_cycles,
                "seconds": round(elapsed, 1),
                "memory_before": before,
                "warm_cycles": RELOAD_WARM_CYCLES,
                "memory_warm": warm,
                "memory_after": after,
                "growth_after_warm": growth,
                "how": f"publish {SECOND}/<n+1> (copy to a hidden name, then mv; policy latest 2 unloads the "
                "oldest), remove the oldest folder, wait until the replica serves <n+1> on 6 requests in a row",
            }
        }

    def _settled_memory(self) -> dict[str, Any]:
        time.sleep(2)  # the unloaded versions' last requests end; the allocator settles
        return self.memory()

    def _publish(self, version_dir: Path, version: int) -> None:
        assert self.repository is not None
        folder = self.repository / SECOND
        hidden = folder / f".{version}.incoming"
        shutil.copytree(version_dir, hidden)
        for path in (hidden, *hidden.rglob("*")):
            path.chmod(0o755 if path.is_dir() else 0o644)
        os.replace(hidden, folder / str(version))
        shutil.rmtree(folder / str(version - 2), ignore_errors=True)
        target = self.target
        path = f"/v2/models/{SECOND}/versions/{version}/infer"
        body = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP64", "data": [5.1, 3.5, 1.4, 0.2]}]}
        deadline, in_a_row = time.monotonic() + 60, 0
        while in_a_row < 6:  # fresh connections reach the replica's workers in turn
            if time.monotonic() > deadline:
                raise Failed(f"{SECOND} version {version} not served within 60 s")
            connection = connect(target)
            try:
                status, _ = post_json(target, path, body, connection)
            finally:
                connection.close()
            in_a_row = in_a_row + 1 if status == 200 else 0
            if status != 200:
                time.sleep(0.1)


def _resident(memory: dict[str, Any]) -> float | None:
    """The replica's resident MiB (cgroup anonymous + mapped pages), the figure the report uses."""
    return memory.get("replica", {}).get("resident_mib")
