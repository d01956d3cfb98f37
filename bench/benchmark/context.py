"""What one run shares: the image's model (copied out, checked, re-saved for the tutorial and MLServer; bench/README.md,
The model), the host repositories built from it, and the compose project ``bench-<id>`` with its override."""

import hashlib
import json
import pickle
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from harness import penguins
from harness.commands import Failed, run
from harness.compose import COMPOSE_FILE, ComposeProject
from harness.docker import hardening_flags

from .settings import Settings

MODEL, SECOND = "iris-rf", "iris-rf-b"  # the image's model, served by /predict; the 2 x 2 repository's second
TABULAR = penguins.FOREST  # the scikit-learn Pipeline on the penguins DataFrame (harness/penguins.py)
BOOSTED = "cancer-xgb"  # an XGBoost model file, 50 trees on the breast cancer data (harness/boosted.py)
IMAGE_MODEL_DIR = f"/opt/models/{MODEL}/1"
TUTORIAL_ROW = [1, 2, 3, 4]
EXPECTED_UNTRUSTED = {"sklearn.tree._tree.Tree"}  # what a forest's skops file holds beyond skops' trusted types


def log(message: str) -> None:
    print(f"[bench {datetime.now().strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def readable(root: Path) -> None:
    for path in (root, *root.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)


@dataclass(frozen=True)
class Layout:
    """A repository: each model's versions (each a copy of the model's one version folder) and ``config.json``."""

    models: dict[str, tuple[int, ...]]
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def build(self, root: Path, sources: Mapping[str, Path]) -> Path:
        shutil.rmtree(root, ignore_errors=True)
        for name, versions in self.models.items():
            for version in versions:
                shutil.copytree(sources[name], root / name / str(version))
            if config := self.configs.get(name):
                (root / name / "config.json").write_text(json.dumps(config))
        readable(root)
        return root


ALL = {"version_policy": {"all": {}}}
ONE = Layout({MODEL: (1,)})
TWO_BY_TWO = Layout({MODEL: (1, 2), SECOND: (1, 2)}, {MODEL: ALL, SECOND: {"version_policy": {"latest": 2}}})
CANARY = Layout({MODEL: (1, 2)}, {MODEL: {**ALL, "traffic": {"1": 90, "2": 10}}})
SHADOW = Layout({MODEL: (1, 2)}, {MODEL: {**ALL, "traffic": {"1": 100}, "shadow": {"version": "2", "percent": 100}}})
# What the full stack (c) serves: every request-path feature at once, on each model kind it is measured on.
EVERY_FEATURE = {**CANARY.configs[MODEL], "shadow": SHADOW.configs[MODEL]["shadow"]}
ALL_ON = Layout(
    {**TWO_BY_TWO.models, TABULAR: (1, 2), BOOSTED: (1, 2)},
    {**TWO_BY_TWO.configs, MODEL: EVERY_FEATURE, TABULAR: EVERY_FEATURE, BOOSTED: EVERY_FEATURE},
)
XGBOOST = Layout({MODEL: (1,), BOOSTED: (1,)})  # the guard's XGBoost row: the model beside the iris forest
STACK_ROW = ("b-all) 1 replica direct, the stack's repository and settings", ALL_ON, {})  # the replicas group's
# The performance guard (bench/README.md): system (b) once per row, on a host repository built from the image's
# model with one request-path feature on. Version 2 is a copy of version 1, so every answer is the image model's.
DRIFT_OFF = {"DRIFT_MAX_FEATURES": "0"}
# key -> (label, repository, environment over the replica's)
FEATURES: dict[str, tuple[str, Layout, dict[str, str]]] = {
    "f-none": ("guard: 1 model x 1 version, drift off (baseline)", ONE, DRIFT_OFF),
    "f-control": ("control: the baseline again (noise floor)", ONE, DRIFT_OFF),
    "f-drift": ("guard: + drift counting", ONE, {}),
    "f-repository": ("guard: + 2 models x 2 versions", TWO_BY_TWO, DRIFT_OFF),
    "f-canary": ("guard: + canary 10 %", CANARY, DRIFT_OFF),
    "f-shadow": ("guard: + shadow 100 %", SHADOW, DRIFT_OFF),
    "f-reload": ("guard: 2 x 2, then reload cycles", TWO_BY_TWO, {**DRIFT_OFF, "MODEL_POLL_SECONDS": "0.5"}),
    "f-xgboost": ("guard: an XGBoost model file instead (V2 tensor)", XGBOOST, DRIFT_OFF),
}
KINDS = {"f-xgboost": "boosted"}  # a row measured on another model kind than the image's forest


@dataclass(frozen=True)
class Workload:
    """A model kind: the model, the check rows and their answers, the row wrk sends (bench/README.md, Model kinds)."""

    key: str
    model: str
    rows: list[Any]
    expected: list[Any]
    load_row: Any
    classes: list[Any] | None = None  # the labels of the class indices a native runtime (MLServer's xgboost) answers

    def v2(self, row: Any) -> dict[str, Any]:
        """One row as a V2 request: an FP64 tensor [1, n], or a pandas-codec request (one input per column)."""
        if isinstance(row, dict):
            return penguins.pandas_codec_request([row])
        return {"inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP64", "data": row}]}


def load_model_dir(model_dir: Path) -> tuple[Any, dict[str, Any], str]:
    """(estimator, metadata, SHA-256), refused if the digest is not the metadata's or a type is not a forest's."""
    import skops.io

    metadata = json.loads((model_dir / "metadata.json").read_text())
    artifact = model_dir / metadata.get("artifact", "model.skops")
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    if metadata.get("sha256") and metadata["sha256"] != digest:
        raise Failed(f"{artifact} SHA-256 {digest} differs from metadata.json's {metadata['sha256']}")
    untrusted = skops.io.get_untrusted_types(file=artifact)
    if unexpected := sorted(set(untrusted) - EXPECTED_UNTRUSTED):
        raise Failed(f"{artifact} holds unexpected types {unexpected}")
    return skops.io.load(artifact, trusted=untrusted), metadata, digest


def check_rows() -> list[list[float]]:
    """Iris, the tutorial's row, and 29 random rows within iris' ranges (seeded)."""
    from sklearn.datasets import load_iris

    iris = load_iris().data
    random_rows = np.random.default_rng(0).uniform(iris.min(axis=0), iris.max(axis=0), size=(29, 4)).round(2)
    return np.vstack([iris, [TUTORIAL_ROW], random_rows]).tolist()


class Context:
    def __init__(self, settings: Settings) -> None:
        s = self.settings = settings
        self.run_label = {"bench.run": s.id}  # on every container the run starts outside compose
        self.model_dir = s.run_dir / "image-model"  # the image's iris-rf/1, copied out
        self.model_pickle = s.run_dir / "tutorial" / "model.pkl"
        self.workloads: dict[str, Workload] = {}  # by kind: "numeric" (the image's model), "tabular"
        self.sources: dict[str, Path] = {}  # each model's version folder, from which the repositories are built
        self.model_info: dict[str, Any] = {}
        # How docker-compose.yml runs a replica and nginx, read in prepare().
        self.replica_env, self.replica_hardening, self.replica_port, self.nginx_port = {}, [], 0, 0
        env = {"MODEL_IMAGE": s.image, "MODEL_REPLICAS": str(s.replicas), "GUNICORN_WORKERS": str(s.workers or ""),
               "MODEL_CPUS": str(s.model_cpus), "MODEL_MEMORY": s.model_memory, "NGINX_RATE_LIMIT": s.rate_limit,
               "NGINX_RATE_BURST": s.rate_burst, "API_KEYS": ""}  # fmt: skip
        # --env-file: a developer's .env (API keys, ports, ...) must not leak into the benchmark.
        self.project = ComposeProject(s.project, env, (COMPOSE_FILE, s.run_dir / "compose.override.yml"),
                                      env_file=s.run_dir / "empty.env", log_to=s.run_dir / "compose.log")  # fmt: skip

    def prepare(self) -> None:
        s, project = self.settings, self.project
        (s.run_dir / "empty.env").write_text("")
        # JSON is YAML; `!reset` (Compose >= 2.24) drops nginx's published port.
        model_env = json.dumps({"environment": s.model_env})
        project.files[1].write_text(f'{{"services": {{"nginx": {{"ports": !reset []}}, "model": {model_env}}}}}\n')
        config = ComposeProject(s.project, project.env, (COMPOSE_FILE,), env_file=project.env_file).config()
        model = config["services"]["model"]
        self.replica_env = {key: "" if value is None else str(value) for key, value in model["environment"].items()}
        self.replica_hardening = hardening_flags(model)
        (self.replica_port,) = (int(port) for port in model["expose"])
        (self.nginx_port,) = (int(port["target"]) for port in config["services"]["nginx"]["ports"])
        project.compose("build", "model", timeout=1200)
        self._copy_model()
        self._package_tabular()
        self._package_boosted()
        repository = ALL_ON.build(s.run_dir / "repo-stack", self.sources)
        project.env.update({"MODEL_REPOSITORY": "/models", "MODEL_HOST_DIR": str(repository), "DEFAULT_MODEL": MODEL})

    def _copy_model(self) -> None:
        s = self.settings
        name = f"bench-{s.id}-modelcopy"
        run(["docker", "create", "--name", name, "--label", f"bench.run={s.id}", s.image], timeout=60)
        try:
            run(["docker", "cp", f"{name}:{IMAGE_MODEL_DIR}", str(self.model_dir)], timeout=60)
        finally:
            run(["docker", "rm", "-f", name], timeout=60, check=False)
        model, metadata, digest = load_model_dir(self.model_dir)
        rows = check_rows()
        numeric = Workload("numeric", MODEL, rows, model.predict(rows).tolist(), TUTORIAL_ROW)
        self.workloads["numeric"], self.sources = numeric, {MODEL: self.model_dir, SECOND: self.model_dir}
        self.model_pickle.parent.mkdir(parents=True, exist_ok=True)
        self.model_pickle.write_bytes(pickle.dumps(model))
        self._for_mlserver(numeric, model)
        self.model_info = {
            "estimator": type(model).__name__,
            "params": {key: model.get_params()[key] for key in ("n_estimators", "max_depth", "random_state")},
            "source": f"{s.image}:{IMAGE_MODEL_DIR}/{metadata.get('artifact', 'model.skops')}",
            "sha256": digest,
            "metadata": {key: metadata.get(key) for key in ("name", "version", "created", "sklearn_version",
                                                            "numpy_version", "python_version", "metrics")},
            "check_rows": len(rows),
            "prediction_for_tutorial_row": numeric.expected[rows.index(TUTORIAL_ROW)],
        }  # fmt: skip

    def _package_tabular(self) -> None:
        """The penguins Pipeline, fitted here and packaged from its CSV as a user would; its check rows are the
        complete ones (MLServer's pandas codec cannot send a missing string)."""
        s, pipeline = self.settings, penguins.forest()
        self.sources[TABULAR] = penguins.publish_penguins(s.run_dir / "tabular", s.run_dir / "tabular-work", TABULAR,
                                                          pipeline)  # fmt: skip
        frame = penguins.features().dropna()
        rows = penguins.records(frame)
        self.workloads["tabular"] = Workload("tabular", TABULAR, rows, pipeline.predict(frame).tolist(), rows[0])
        self._for_mlserver(self.workloads["tabular"], pipeline)
        steps = " → ".join(type(step).__name__ for step in pipeline.named_steps.values())
        self.model_info["tabular"] = {
            "pipeline": steps,
            "columns": {c: str(t) for c, t in frame.dtypes.items()},
            "check_rows": len(rows),
            "source": "harness/penguins.py, model_server.package",
        }

    def _package_boosted(self) -> None:
        """The XGBoost model, fitted here, saved as its users save it and packaged from its file and CSV."""
        from model_server.tools.package import package

        from harness import boosted

        s = self.settings
        made = boosted.xgboost_cancer(s.run_dir / "boosted-work")
        repository = s.run_dir / "boosted"
        self.sources[BOOSTED], metadata = package(
            made.path, made.csv, name=BOOSTED, version="1", repository=repository, target_column=made.target
        )
        rows, classes = made.frame.to_numpy().tolist(), metadata["classes"]
        expected = [classes[i] for i in made.native().argmax(axis=1)]
        self.workloads["boosted"] = Workload("boosted", BOOSTED, rows, expected, rows[0], classes)
        self._for_mlserver(self.workloads["boosted"], made.path)
        params = made.model.get_params()
        self.model_info["boosted"] = {
            "model": f"XGBClassifier, {params['n_estimators']} trees, depth {params['max_depth']}",
            "file": metadata["artifact"],
            "check_rows": len(rows),
        }

    def _for_mlserver(self, workload: Workload, model: Any) -> None:
        """MLServer's repository for a kind: a model file (a path) for its XGBoost runtime, else a joblib file."""
        import joblib

        folder = self.settings.run_dir / f"mlserver-{workload.key}" / workload.model
        folder.mkdir(parents=True, exist_ok=True)
        if isinstance(model, Path):
            file, runtime = Path(shutil.copy(model, folder)).name, "mlserver_xgboost.XGBoostModel"
        else:
            file, runtime = "model.joblib", "mlserver_sklearn.SKLearnModel"
            joblib.dump(model, folder / file)
        parameters = {"uri": f"./{file}", "version": "1"}
        mlserver = {"name": workload.model, "implementation": runtime, "parameters": parameters}
        (folder / "model-settings.json").write_text(json.dumps(mlserver, indent=2))
