"""What the systems of one run share: settings, the compose project, the model's files and answers.

:meth:`Context.prepare` builds the model-server image, reads from the compose configuration how a
replica runs (environment, hardening, port) and on which port nginx listens, copies the image's
model out and writes the other systems' copies of it. :meth:`Context.check` asks a system every
check row.

The compose project (``bench-<id>``) reads ``docker-compose.yml`` and an override written here:
``BENCH_MODEL_ENV`` for the replicas, and **no published port for nginx** (``!reset``): the
benchmark reaches nginx at its container's own address, so nothing of the run listens on this
machine's interfaces and no docker-proxy relays the load.
"""

from __future__ import annotations

import json
from typing import Any

from tests.support.commands import Failed, run
from tests.support.compose import COMPOSE_FILE, ComposeProject
from tests.support.docker import hardening_flags

from .client import connect, post_json
from .features import ALL_ON, MODEL, build_repository
from .model import IMAGE_MODEL_DIR, TUTORIAL_ROW, check_rows, load_model_dir, retrained_agrees, write_artifacts
from .settings import Settings
from .systems import System


class Context:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.run_label = {"bench.run": settings.bench_id}  # on every container the run starts outside compose
        self.model_pickle = settings.run_dir / "tutorial" / "model.pkl"
        self.image_model_dir = settings.run_dir / "image-model"  # the image's iris-rf/1, copied out
        self.stack_repository = settings.run_dir / "repo-stack"  # what the stack serves: every feature on
        self.rows: list[list[float]] = []
        self.expected: list[Any] = []
        self.model_info: dict[str, Any] = {}
        # How compose runs a replica and nginx (from `docker compose config`, read in prepare()).
        self.replica_env: dict[str, str] = {}
        self.replica_hardening: list[str] = []
        self.replica_port = 0
        self.nginx_port = 0
        self.empty_env_file = settings.run_dir / "empty.env"
        self.override_file = settings.run_dir / "compose.override.yml"
        # --env-file: a developer's .env (API keys, ports, ...) must not leak into the benchmark.
        self.project = ComposeProject(
            settings.project,
            env={
                "MODEL_IMAGE": settings.image,
                "MODEL_REPLICAS": str(settings.replicas),
                "GUNICORN_WORKERS": str(settings.workers or ""),
                "MODEL_CPUS": str(settings.model_cpus),
                "MODEL_MEMORY": settings.model_memory,
                "NGINX_RATE_LIMIT": settings.rate_limit,
                "NGINX_RATE_BURST": settings.rate_burst,
                "API_KEYS": "",
            },
            files=(COMPOSE_FILE, self.override_file),
            env_file=self.empty_env_file,
            log_to=settings.run_dir / "compose.log",
        )

    def prepare(self) -> None:
        s = self.settings
        self.empty_env_file.write_text("")
        model_env = json.dumps({"environment": s.model_env})
        # JSON is YAML; `!reset` (Compose >= 2.24) drops nginx's published port.
        self.override_file.write_text(f'{{"services": {{"nginx": {{"ports": !reset []}}, "model": {model_env}}}}}\n')
        # How docker-compose.yml alone runs a replica and nginx: what (b) copies, and nginx's own port.
        production = ComposeProject(s.project, self.project.env, files=(COMPOSE_FILE,), env_file=self.empty_env_file)
        services = production.config()["services"]
        model = services["model"]
        self.replica_env = {k: "" if v is None else str(v) for k, v in model["environment"].items()}
        self.replica_hardening = hardening_flags(model)
        (self.replica_port,) = (int(port) for port in model["expose"])
        (self.nginx_port,) = (int(port["target"]) for port in services["nginx"]["ports"])
        self.project.compose("build", "model", timeout=1200)
        self._copy_model()
        # The stack runs with every feature of the request path on (features.ALL_ON), from a host repository.
        build_repository(self.stack_repository, self.image_model_dir, ALL_ON)
        self.project.env.update(
            {"MODEL_REPOSITORY": "/models", "MODEL_HOST_DIR": str(self.stack_repository), "DEFAULT_MODEL": MODEL}
        )

    def _copy_model(self) -> None:
        """The model the replicas serve, copied out of the image, checked, loaded and re-saved for the others."""
        s = self.settings
        copy_name = f"bench-{s.bench_id}-modelcopy"
        image_model = self.image_model_dir
        labels = [arg for key, value in self.run_label.items() for arg in ("--label", f"{key}={value}")]
        run(["docker", "create", "--name", copy_name, *labels, s.image], timeout=60)
        try:
            run(["docker", "cp", f"{copy_name}:{IMAGE_MODEL_DIR}", str(image_model)], timeout=60)
        finally:
            run(["docker", "rm", "-f", copy_name], timeout=60, check=False)
        model, metadata, digest = load_model_dir(image_model)
        artifact = metadata.get("artifact", "model.skops")
        self.rows = check_rows()
        self.expected = model.predict(self.rows).tolist()
        write_artifacts(model, metadata, self.model_pickle, s.run_dir / "mlserver")
        self.model_info = {
            "estimator": type(model).__name__,
            "params": {k: model.get_params()[k] for k in ("n_estimators", "max_depth", "random_state")},
            "source": f"{s.image}:{IMAGE_MODEL_DIR}/{artifact} (trained in the image build)",
            "sha256": digest,
            "metadata": {
                k: metadata.get(k)
                for k in ("name", "version", "created", "sklearn_version", "numpy_version", "python_version", "metrics")
            },
            "tutorial_artifact": "pickle.dump of the loaded estimator",
            "mlserver_artifact": "joblib.dump of the loaded estimator",
            "check_rows": len(self.rows),
            "identical_refit_agrees": retrained_agrees(model, self.rows, s.run_dir / "retrained"),
            "prediction_for_tutorial_row": self.expected[self.rows.index(TUTORIAL_ROW)],
        }

    def check(self, system: System) -> dict[str, Any]:
        """Every check row, one request each: the system must answer 200 with the model's prediction."""
        target = system.target
        connection = connect(target)
        mismatches = []
        try:
            for row, expected in zip(self.rows, self.expected, strict=True):
                status, answer = post_json(target, system.path, system.body(row), connection)
                got = system.prediction(answer) if status == 200 else f"HTTP {status}: {answer}"
                if got != expected:
                    mismatches.append({"row": row, "expected": expected, "got": got})
        finally:
            connection.close()
        if mismatches:
            raise Failed(f"{len(mismatches)}/{len(self.rows)} wrong answers, first: {mismatches[0]}")
        return {"rows": len(self.rows), "all_correct": True}
