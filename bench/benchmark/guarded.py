"""The performance guard's rows: system (b) on a host repository of its own (:mod:`.features`)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support.commands import Failed

from .client import connect, post_json
from .containers import Direct
from .features import FEATURES, MODEL, SECOND, build_repository
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
        started = time.monotonic()
        newest = max(self.layout.models[SECOND])
        for _ in range(self.reload_cycles):
            newest += 1
            self._publish(ctx.image_model_dir, newest)
        elapsed = time.monotonic() - started
        time.sleep(2)  # the unloaded versions' last requests end; the allocator settles
        after = self.memory()
        log(f"{self.key}: {self.reload_cycles} reload cycles in {elapsed:.1f}s; memory {before} -> {after}")
        return {
            "reload_cycles": {
                "cycles": self.reload_cycles,
                "seconds": round(elapsed, 1),
                "memory_before": before,
                "memory_after": after,
                "how": f"publish {SECOND}/<n+1> (copy to a hidden name, then mv; policy latest 2 unloads the "
                "oldest), remove the oldest folder, wait until the replica serves <n+1> on 6 requests in a row",
            }
        }

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
