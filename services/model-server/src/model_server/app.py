"""The application factory: settings in, a Flask app serving the model repository out."""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable
from inspect import iscoroutinefunction
from pathlib import Path
from typing import Any

from flask import Flask

from .config import Settings
from .logs import configure_logging
from .monitoring.http_requests import register_request_hooks
from .repository.artifact import ModelLoadError
from .rest import feedback, invocations, openapi, predict, prometheus, repository_api, v2
from .rest.auth import register_api_key_check
from .rest.errors import register_error_handlers
from .serving.batching import MicroBatcher
from .serving.last_valid_configs import LastValidConfigs
from .serving.live_models import LiveModels
from .serving.repository_poller import RepositoryPoller
from .serving.shadow import ShadowRunner
from .serving.version_loader import ThreadPoolLoads, VersionLoader
from .state import ServerState

log = logging.getLogger(__name__)


class ModelServerFlask(Flask):
    """Flask, deciding once per function whether it is a coroutine function.

    Flask asks ``inspect.iscoroutinefunction`` of every view and request hook on every call
    (about four times a request); the answer never changes, so it is remembered, for as long as
    the function lives: a callable made per request (an ``after_this_request`` closure, a class
    view's bound method) leaves the cache with it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # function -> whether it is a coroutine function (a value that holds no reference to its key)
        self._coroutine: weakref.WeakKeyDictionary[Callable[..., Any], bool] = weakref.WeakKeyDictionary()

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        coroutine = self._coroutine.get(func)
        if coroutine is None:
            coroutine = self._coroutine[func] = iscoroutinefunction(func)
        return self.async_to_sync(func) if coroutine else func


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app, with every servable version of the repository loaded and warmed up.

    The first repository pass happens here, before the app exists; under gunicorn
    (``preload_app``) it runs once in the master and the workers start with what it loaded,
    then each worker polls on its own (gunicorn.conf.py starts the poller). A repository with
    nothing servable gives an app that is not ready (``/v2/health/ready`` is 503) until a version
    arrives — unless MODEL_POLL_SECONDS is 0, when nothing ever would: then ModelLoadError.
    """
    settings = settings or Settings()
    configure_logging(settings.log_level)

    live_models = LiveModels()
    poller = RepositoryPoller(
        settings.model_repository, live_models, VersionLoader(settings), settings.model_max_json_bytes
    )
    snapshot = poller.sync()
    if not snapshot and settings.model_poll_seconds == 0:
        refusals = "; ".join(f"{s.name} version {s.version}: {s.reason}" for s in snapshot.statuses)
        reasons = snapshot.unreadable.get("") or refusals
        raise ModelLoadError(f"no servable model in {settings.model_repository}" + (f" ({reasons})" if reasons else ""))

    app = ModelServerFlask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.compact = True  # type: ignore[attr-defined]
    app.extensions["model_server"] = ServerState(
        settings=settings,
        live_models=live_models,
        poller=poller,
        shadow=ShadowRunner(settings.shadow_queue_rows),
        batcher=MicroBatcher(settings.batch_max_rows, settings.batch_max_wait_ms / 1000)
        if settings.batch_max_rows > 0
        else None,
    )

    register_request_hooks(app, settings.access_log)  # first, so even a refused request has a request id and metrics
    register_api_key_check(app, settings.api_keys)
    register_error_handlers(app)
    for blueprint in (predict.bp, invocations.bp, v2.bp, feedback.bp, repository_api.bp, prometheus.bp, openapi.bp):
        app.register_blueprint(blueprint)

    log.info(
        "model server ready" if snapshot else "model server started with no servable model: not ready",
        extra={
            "repository": str(settings.model_repository),
            "poll_seconds": settings.model_poll_seconds,
            "models": {name: sorted(versions) for name, versions in snapshot.models.items()},
            "default_model": settings.default_model,
            "batching": {"max_rows": settings.batch_max_rows, "max_wait_ms": settings.batch_max_wait_ms},
            "api_keys": len(settings.api_keys),
        },
    )
    return app


def write_held_metrics(app: Flask) -> None:
    """Write the metrics this worker holds in memory (micro-batching's lone requests): before it exits."""
    state: ServerState | None = getattr(app, "extensions", {}).get("model_server")  # not the app: gunicorn's fail app
    if state is not None and state.batcher is not None:
        state.batcher.write_metrics()


def start_polling(
    app: Flask,
    renew: Callable[[str], None] | None = None,
    renew_after_unloads: int = 0,
    heartbeat: Callable[[], None] | None = None,
    configs_folder: Path | None = None,
) -> None:
    """Catch up with the repository, then poll it from now on, in this process (each gunicorn worker calls it once).

    With ``heartbeat`` (a gevent worker's: gunicorn's ``worker.notify``), each load's heavy step
    runs in gevent's thread pool while the worker serves, beating the heartbeat as it waits, and
    is abandoned after MODEL_LOAD_TIMEOUT (:mod:`.serving.version_loader`).

    A worker forked later than the master's start (a replacement: GUNICORN_MAX_REQUESTS, or a
    renewal) begins with the live models the master loaded at boot: without the first sync here it
    would answer with versions the repository has moved past until its first poll. With
    ``renew``, the worker asks for its renewal once it has unloaded ``renew_after_unloads``
    versions after that first sync (the master's versions it lets go of then count for nothing:
    they are the master's memory). With ``configs_folder`` (one per replica, gunicorn.conf.py's),
    the workers share each model's last valid config.json there (:mod:`.serving.last_valid_configs`).
    """
    state: ServerState = app.extensions["model_server"]
    state.live_models.count_anew()  # in this worker's metric files (the master's were removed)
    if state.settings.model_poll_seconds <= 0:
        return
    state.poller.shared_configs = LastValidConfigs(configs_folder)
    if heartbeat is not None:
        state.poller.offload = ThreadPoolLoads(state.settings.model_load_timeout, heartbeat)
    try:
        state.poller.sync()
    except Exception:  # as in the poller: never fatal, the next poll retries
        log.exception("model repository sync failed at worker start; retrying at the next poll")
    if renew is not None and renew_after_unloads > 0:
        state.poller.renew_after_unloads(renew_after_unloads, renew)
    state.poller.start_polling(state.settings.model_poll_seconds)
