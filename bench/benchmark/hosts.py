"""The systems that run as host processes, reached at 127.0.0.1: the tutorial app and MLServer.

Each runs in a process group of its own, recorded in ``pgid-<system>`` in the run folder, so that
bench/run's trap can stop it (children included) even if this process dies.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support.addresses import Target, free_port
from tests.support.commands import Failed, run
from tests.support.waiting import wait_for

from .client import get_status, post_json
from .model import MODEL_NAME, TUTORIAL_ROW
from .settings import BENCH_DIR
from .systems import System

if TYPE_CHECKING:
    from .context import Context


class HostProcess(System):
    """A server run on the host (its own process group, recorded for bench/run's trap)."""

    _proc: subprocess.Popen[bytes] | None = None

    def spawn(self, ctx: Context, args: list[str], env: dict[str, str], cwd: Path, log_name: str) -> None:
        with (ctx.settings.run_dir / log_name).open("w") as log_file:
            self._proc = subprocess.Popen(
                args, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.pid = self._proc.pid
        (ctx.settings.run_dir / f"pgid-{self.key}").write_text(str(self._proc.pid))

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self, ctx: Context) -> None:
        proc = self._proc
        if proc is None:
            return
        for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(grace)
                break
            except subprocess.TimeoutExpired:
                continue
        # Children left in the group (MLServer's workers) go with it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        (ctx.settings.run_dir / f"pgid-{self.key}").unlink(missing_ok=True)
        self._proc = None
        self.reached_at = None


class Tutorial(HostProcess):
    def start(self, ctx: Context) -> None:
        target = self.reached_at = Target.loopback(free_port())
        env = {**os.environ, "MODEL_PATH": str(ctx.model_pickle), "HOST": target.host, "PORT": str(target.port)}
        args = [ctx.settings.bench_python, str(BENCH_DIR / "tutorial_app.py")]
        self.spawn(ctx, args, env, ctx.settings.run_dir, "tutorial.log")
        self.settings = {
            "server": "Flask development server (app.run, threaded: one thread per connection), debug off",
            "processes": 1,
            "model": "pickle.load of the image's fitted model",
            "bind": f"{target.host} (the tutorial binds all interfaces)",
            "access log": "werkzeug's, per request, to a file",
        }

        def ready() -> bool:
            if not self.alive():
                raise Failed("the tutorial app exited; see results/tmp/tutorial.log")
            return post_json(target, "/predict", {"features": TUTORIAL_ROW})[0] == 200

        wait_for("the tutorial app", ready, 60, interval=0.5)
        self.find_engine()


class MLServer(HostProcess):
    def body(self, row: list[float]) -> Any:
        return {"inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": row}]}

    def prediction(self, answer: Any) -> Any:
        return answer["outputs"][0]["data"][0]

    def start(self, ctx: Context) -> None:
        s = ctx.settings
        target = self.reached_at = Target.loopback(free_port())
        self.path = f"/v2/models/{MODEL_NAME}/infer"
        self.script = "v2_infer.lua"
        repo = s.run_dir / "mlserver"
        server: dict[str, Any] = {
            "host": target.host,
            "http_port": target.port,
            "grpc_port": free_port(),
            "metrics_port": free_port(),
        }
        if s.mlserver_parallel_workers is not None:
            server["parallel_workers"] = s.mlserver_parallel_workers
        (repo / "settings.json").write_text(json.dumps(server, indent=2))
        mlserver_bin = s.mlserver_venv / "bin" / "mlserver"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLSERVER")}
        self.spawn(ctx, [str(mlserver_bin), "start", str(repo)], env, repo, "mlserver.log")
        defaults = self._defaults(ctx)
        self.settings = {
            "server": "mlserver start (uvicorn HTTP server + inference worker processes)",
            "settings.json": server,
            "parallel_workers": server.get("parallel_workers", defaults.get("parallel_workers")),
            "debug (access log)": defaults.get("debug"),
            "adaptive batching": "off (max_batch_size 0, the default)",
            "model": f"{MODEL_NAME}: mlserver_sklearn.SKLearnModel, joblib dump of the image's fitted model",
        }

        def ready() -> bool:
            if not self.alive():
                raise Failed("MLServer exited; see results/tmp/mlserver.log")
            return get_status(target, f"/v2/models/{MODEL_NAME}/ready") == 200

        wait_for("MLServer's model to be ready", ready, 180, interval=0.5)
        self.find_engine()

    @staticmethod
    def _defaults(ctx: Context) -> dict[str, Any]:
        """MLServer's own defaults for the settings the report names."""
        code = (
            "import json, mlserver.settings as m; s = m.Settings(); "
            "print(json.dumps({'parallel_workers': s.parallel_workers, 'debug': s.debug}))"
        )
        try:
            return json.loads(run([str(ctx.settings.mlserver_venv / "bin" / "python"), "-c", code], timeout=60))
        except (Failed, ValueError):
            return {}
