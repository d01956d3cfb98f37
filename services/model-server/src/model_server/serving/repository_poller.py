"""The repository poller: moves a worker's live models toward what the model repository says.

Every ``MODEL_POLL_SECONDS`` (0: once, at start) one :meth:`RepositoryPoller.sync` pass:

1. scans the repository (:mod:`..repository.layout`) and reads each model's ``config.json``;
2. decides per model what to load and unload (:mod:`..repository.policy`, availability
   preserving: never unload the last servable version before its successor serves);
3. loads each new version beside the old ones: verified (the safe-loading rules of
   :mod:`..repository.artifact`), checked (the Treelite runtime against scikit-learn, :mod:`.runtime`) and
   warmed up (:class:`.predictor.Predictor`). Only then is it published in the live models;
4. publishes the new :class:`.live_models.Snapshot` in one assignment. Requests already running
   keep the snapshot they started with and finish on their version.

A version whose reference statistics for drift (``reference`` in its metadata) are invalid is
served all the same, without drift monitoring; the reason is logged once, when it loads.

A version that fails any step is never served. Its reason is logged once, it is counted
(``model_server_model_load_failures_total``) and reported as refused (``ModelLoadFailing``), and
it is not retried until its folder changes (:func:`..repository.layout.fingerprint`): a version
copied in place rather than published with ``mv`` fails while incomplete (its ``metadata.json``
is required) and loads on a later poll. The version policy then picks among the versions not
refused, so a refused newest version leaves the previous one serving — also on a replica that
starts afresh. A loaded version whose folder changes is loaded again from it; refused then, the
version before it serves again (:meth:`RepositoryPoller._verify_again`), so every worker, however
late it loaded, serves what the folder holds now.

An invalid ``config.json`` keeps the model's last valid configuration (the default, latest 1,
before any), is logged once and is reported in the snapshot (``ModelConfigInvalid``). The last
valid one is the one the replica's workers last read (:mod:`.last_valid_configs`), so a worker
forked while the file is invalid follows the same configuration as its siblings. Each pass
also turns the config's rollout (``traffic``, ``shadow``, ``sticky_header``) and the versions
then loaded into the model's :class:`.routing.Routing`, published with them. Each gunicorn worker
runs its own poller (a greenlet under the gevent worker): all of them read the same folder, so
every worker of every replica converges on the same set within one poll interval plus the load
time.

Each version a worker unloads leaves its metrics' label sets behind in that worker (about 50 KiB;
prometheus_client offers no safe way to drop them), so a worker counts its unloads and, at the
limit it was given (:meth:`RepositoryPoller.renew_after_unloads`, GUNICORN_MAX_UNLOADS), asks
for its renewal and stops polling: gunicorn forks a fresh worker from the master, which catches
up with the repository before it accepts a connection (:func:`..app.start_polling`).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..monitoring import metrics
from ..repository.artifact import ModelLoadError
from ..repository.files import MAX_JSON_BYTES
from ..repository.layout import CANNOT_READ, Fingerprint, ModelDir, RepositoryError, fingerprint, scan
from ..repository.model_config import ModelConfig, ModelConfigError, read_model_config
from ..repository.policy import plan, wanted_versions
from .last_valid_configs import LastValidConfigs
from .live_models import LiveModels, Servable, Snapshot, State, VersionStatus
from .predictor import PreparedModel
from .routing import Routing, plan_routing
from .shadow import start_counters_at_zero
from .version_loader import VersionLoader, run_here

log = logging.getLogger(__name__)

Offload = Callable[[Callable[[], PreparedModel]], PreparedModel]


class RepositoryPoller:
    def __init__(
        self, repository: Path, live_models: LiveModels, loader: VersionLoader, max_json_bytes: int = MAX_JSON_BYTES
    ) -> None:
        self.repository = repository
        self._loader = loader
        self.offload: Offload = run_here  # where a load's heavy step runs (:mod:`.version_loader`)
        self._max_json_bytes = max_json_bytes
        self.live_models = live_models
        self._failed: dict[tuple[str, int], tuple[Fingerprint, str]] = {}
        self._fingerprints: dict[tuple[str, int], Fingerprint] = {}  # of each loaded version's folder, as loaded
        self._configs: dict[str, ModelConfig] = {}  # the last valid config of each model
        self.shared_configs = LastValidConfigs(None)  # ... as this replica's workers last read it
        self._config_errors: dict[str, str] = {}  # why a model's config.json is invalid right now
        # Problems of the scan and the configs, by reason: logged when they appear, not again
        # while they last (``_logged``: those of the last pass), and again if they come back.
        self._logged: set[str] = set()
        self._seen: set[str] = set()  # those of the pass running
        self._lock = threading.Lock()  # one sync at a time (a test may call sync() beside the poller)
        self.unloaded = 0  # versions this process has unloaded
        self._renew: Callable[[str], None] | None = None
        self._renew_from = self._renew_at = 0
        self.renewing = False  # renewal asked for: the poller stops, the worker ends

    def renew_after_unloads(self, unloads: int, renew: Callable[[str], None]) -> None:
        """Call ``renew`` once, after a pass that brings the versions unloaded from now on to ``unloads``.

        Each version a worker loads leaves memory behind when it is unloaded (prometheus_client's
        multiprocess mode keeps every label set the worker has written, with no way to drop
        one); a fresh worker, forked from the master, starts without it.
        """
        self._renew, self._renew_from, self._renew_at = renew, self.unloaded, self.unloaded + unloads

    def sync(self) -> Snapshot:
        """One pass: scan, decide, load, publish. Never raises for what the repository holds."""
        with self._lock:
            self._seen = set()
            try:
                found = scan(self.repository)
            except RepositoryError as exc:
                self._log_once(logging.ERROR, str(exc), "model repository unreadable; serving what is loaded")
                self._logged |= self._seen  # nothing else was looked at: what was logged still stands
                metrics.REPOSITORY_READ_ERRORS.labels("").inc()
                current = self.live_models.snapshot  # all of it stays as it is, said unreadable
                snapshot = Snapshot.build(
                    current.models, current.statuses, current.routes, current.config_errors, {"": str(exc)}
                )
                self.live_models.publish(snapshot)
                return snapshot
            for skipped in found.skipped:
                if skipped.reason.startswith(CANNOT_READ):
                    self._log_once(
                        logging.ERROR,
                        str(skipped),
                        "model repository folder unreadable; keeping what is loaded from it",
                    )
                else:
                    self._log_once(logging.WARNING, str(skipped), "model repository entry ignored")
            current = self.live_models.snapshot
            models = {name: dict(versions) for name, versions in current.models.items()}
            statuses: list[VersionStatus] = []
            routes: dict[str, Routing] = {}
            unreadable = dict(found.unreadable)
            for name in sorted(set(found) | set(models)):
                if name in found.unreadable:  # there, but unreadable: everything of it stays as it is
                    statuses += [s for s in current.statuses if s.name == name]
                    if name in current.routes:
                        routes[name] = current.routes[name]
                    continue
                model_dir = found.get(name)
                if model_dir is not None and model_dir.unreadable:
                    unreadable[name] = "; ".join(f"version {v}: {why}" for v, why in model_dir.unreadable.items())
                statuses += self._sync_model(name, model_dir, models, routes)
            for name in unreadable:
                metrics.REPOSITORY_READ_ERRORS.labels(name).inc()
            errors = {n: reason for n, reason in self._config_errors.items() if n in found or n in unreadable}
            snapshot = Snapshot.build(models, tuple(statuses), routes, errors, unreadable)
            self.live_models.publish(snapshot)
            self._logged = self._seen
        if self._renew is not None and self.unloaded >= self._renew_at:
            renew, self._renew, self.renewing = self._renew, None, True
            renew(f"{self.unloaded - self._renew_from} model versions unloaded (GUNICORN_MAX_UNLOADS)")
        return snapshot

    def poll_forever(self, interval: float) -> None:
        """Call :meth:`sync` every ``interval`` seconds, until a renewal; an unexpected error is logged, never fatal.

        The first wait is drawn within the interval: workers and replicas started together poll
        out of step, so they do not all start loading a new version at the same moment.
        """
        time.sleep(random.uniform(0, interval))  # noqa: S311 - spreading in time, not a secret
        while not self.renewing:
            time.sleep(interval)
            try:
                self.sync()
            except Exception:
                log.exception("model repository poll failed; retrying at the next poll")

    def start_polling(self, interval: float) -> threading.Thread | None:
        """Poll in the background (a greenlet under gevent's monkey-patching); None if ``interval`` is 0."""
        if interval <= 0:
            return None
        thread = threading.Thread(target=self.poll_forever, args=(interval,), name="model-repository", daemon=True)
        thread.start()
        return thread

    # --- one model ---------------------------------------------------------------------------
    def _sync_model(
        self,
        name: str,
        model_dir: ModelDir | None,
        models: dict[str, dict[int, Servable]],
        routes: dict[str, Routing],
    ) -> list:
        available = dict(model_dir.versions) if model_dir else {}
        loaded = models.setdefault(name, {})
        for version in model_dir.unreadable if model_dir else ():
            if version in loaded:  # there, but unreadable: kept, as if its folder had not changed
                available[version] = model_dir.path / str(version)
        config = self._config(name, model_dir)
        for key in [k for k in self._failed if k[0] == name]:  # retry a refused version once its folder changed
            if key[1] not in available or fingerprint(available[key[1]]) != self._failed[key][0]:
                del self._failed[key]
        self._verify_again(name, available, loaded)

        while True:
            failed = frozenset(v for n, v in self._failed if n == name)
            wanted = wanted_versions(config.version_policy, set(available) - failed)
            step = plan(wanted, frozenset(loaded), failed)
            if not step.load:
                break
            for version in step.load:  # newest first
                self._publish_loading(models, name, version)
                self._load_version(name, version, available[version], loaded)
                self.live_models.publish(_rebuilt(self.live_models.snapshot, models))
        for version in step.unload:
            del loaded[version]
            self._fingerprints.pop((name, version), None)
            self.unloaded += 1
            log.info("model version unloaded", extra={"model": name, "version": str(version)})
        if not loaded:
            del models[name]
        else:
            routes[name] = self._routing(name, config, loaded)

        policy_wanted = wanted_versions(config.version_policy, available)
        statuses = []
        for version in sorted(set(available) | set(loaded)):
            if version in loaded and (name, version) in self._failed:  # serving from memory: nothing else can
                reason = self._failed[(name, version)][1]
                statuses.append(VersionStatus(name, version, State.READY, reason, failed=True))
            elif version in loaded:
                statuses.append(VersionStatus(name, version, State.READY))
            elif (name, version) in self._failed:
                reason = self._failed[(name, version)][1]
                refused = version in policy_wanted  # wanted but refused: ModelLoadFailing
                statuses.append(VersionStatus(name, version, State.UNAVAILABLE, reason, failed=refused))
            else:
                statuses.append(VersionStatus(name, version, State.UNAVAILABLE, "not wanted by the version policy"))
        return statuses

    def _load(self, name: str, version: int, path: Path) -> Servable:
        """Load a version folder: its heavy step where :attr:`offload` says, its metrics here."""
        return self._loader.finish(self.offload(functools.partial(self._loader.prepare, name, version, path)))

    def _verify_again(self, name: str, available: dict[int, Path], loaded: dict[int, Servable]) -> None:
        """Load each loaded version whose folder changed since it loaded again, as if it were new.

        Loaded again, it serves from what its folder holds now. Refused, it is refused as a new
        version would be (logged, counted, ModelLoadFailing) and the version policy falls back:
        the version before it loads and serves again. With none that can, it keeps serving from
        memory what was verified when it loaded (availability preserving). A folder that cannot be
        read is not a changed one.
        """
        for version in sorted(loaded):
            path, key = available.get(version), (name, version)
            if path is None or key in self._failed:
                continue
            now = fingerprint(path)
            if now == self._fingerprints.get(key) or now[0] == "unreadable":
                continue
            log.info("model version folder changed; verifying it again", extra={"model": name, "version": str(version)})
            self._load_version(name, version, path, loaded)

    def _publish_loading(self, models: dict[str, dict[int, Servable]], name: str, version: int) -> None:
        """The index shows the version LOADING while it loads (to any thread or greenlet that asks)."""
        current = self.live_models.snapshot
        others = tuple(s for s in current.statuses if (s.name, s.version) != (name, version))
        self.live_models.publish(_rebuilt(current, models, (*others, VersionStatus(name, version, State.LOADING))))

    def _load_version(self, name: str, version: int, path: Path, loaded: dict[int, Servable]) -> None:
        before = fingerprint(path)
        started = time.perf_counter()
        try:
            servable = self._load(name, version, path)
        except ModelLoadError as exc:
            self._refuse(name, version, before, str(exc))
            return
        except Exception as exc:  # a loader bug must not stop the poller, nor serve the version
            self._refuse(name, version, before, f"{type(exc).__name__}: {exc}")
            return
        loaded[version] = servable
        self._fingerprints[(name, version)] = before
        servable.predictor.metrics.requests.start_at_zero()
        model = servable.description
        problem = servable.predictor.metrics.reference_problem
        if problem:
            log.warning(
                "model version served without drift monitoring: invalid reference statistics",
                extra={"model": name, "version": str(version), "reason": problem},
            )
        log.info(
            "model version ready",
            extra={
                "model": name,
                "version": str(version),
                "sha256": model.sha256,
                "estimator": model.estimator,
                "runtime": model.runtime,
                "runtime_reason": model.runtime_reason,
                "drift_reference": servable.predictor.metrics.has_drift_reference,
                "load_seconds": round(time.perf_counter() - started, 3),
            },
        )

    def _refuse(self, name: str, version: int, fingerprint_: Fingerprint, reason: str) -> None:
        self._failed[(name, version)] = (fingerprint_, reason)
        metrics.MODEL_LOAD_FAILURES.labels(name, str(version)).inc()
        log.error("model version refused", extra={"model": name, "version": str(version), "reason": reason})

    def _config(self, name: str, model_dir: ModelDir | None) -> ModelConfig:
        try:
            config = read_model_config(
                model_dir.config_path if model_dir else None, self.repository, self._max_json_bytes
            )
        except ModelConfigError as exc:
            self._log_once(logging.ERROR, str(exc), "model config invalid; keeping the last valid one")
            self._config_errors[name] = str(exc)
            return self.shared_configs.recall(name) or self._configs.get(name) or read_model_config(None)
        self._configs[name] = config
        self.shared_configs.remember(name, config)
        self._config_errors.pop(name, None)
        return config

    def _routing(self, name: str, config: ModelConfig, loaded: dict[int, Servable]) -> Routing:
        """The model's rollout over its loaded versions; what of its config is ignored is logged once."""
        routing, ignored = plan_routing(config, loaded)
        if routing.shadow_version is not None:
            columns = _columns(loaded[routing.shadow_version])
            served = routing.versions or (max(loaded),)
            other = next((v for v in served if v != routing.shadow_version and _columns(loaded[v]) != columns), None)
            if other is not None:  # its rows would be decoded for the served version's columns: compared wrongly
                ignored.append(
                    f"shadow version {routing.shadow_version} ignored: it takes other columns than version {other}"
                )
                routing = dataclasses.replace(routing, shadow_version=None, shadow_share=0.0)
        for reason in ignored:
            self._log_once(logging.WARNING, f"model {name}: {reason}", "model rollout setting ignored")
        if routing.shadow_version is not None:
            start_counters_at_zero(name, routing.shadow_version, loaded)
        return routing

    def _log_once(self, level: int, reason: str, message: str) -> None:
        if reason not in self._logged and reason not in self._seen:
            log.log(level, message, extra={"reason": reason})
        self._seen.add(reason)


def _columns(servable: Servable) -> tuple[tuple[str, str], ...]:
    """The columns a version takes, as a request's rows are decoded for them: names and types, in order."""
    return tuple((c.name, c.type) for c in servable.description.signature.inputs)


def _rebuilt(
    current: Snapshot, models: dict[str, dict[int, Servable]], statuses: tuple[VersionStatus, ...] | None = None
) -> Snapshot:
    """``current`` with the versions of ``models`` (and ``statuses``): a publish in the middle of a pass."""
    statuses = current.statuses if statuses is None else statuses
    return Snapshot.build(models, statuses, current.routes, current.config_errors, current.unreadable)
