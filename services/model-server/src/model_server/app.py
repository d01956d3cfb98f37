"""The application factory: settings in, a Flask app serving one loaded, warmed-up model out."""

from __future__ import annotations

import logging

from flask import Flask

from .artifact import load_artifact
from .auth import register_api_key_check
from .batching import MicroBatcher
from .config import Settings
from .errors import register_error_handlers
from .http_hooks import register_request_hooks
from .logs import configure_logging
from .predictor import Predictor
from .rest import openapi, predict, prometheus, v2
from .state import ServerState

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app. Raises ModelLoadError when the model cannot be served.

    Loading and the warm-up prediction happen here, before the app exists, so a server that
    answers at all serves a ready model; under gunicorn (``preload_app``) this runs once in
    the master and the workers share the loaded model.
    """
    settings = settings or Settings()
    configure_logging(settings.log_level)

    artifact = load_artifact(settings.model_dir, settings.model_sha256, tuple(settings.model_trusted_types))
    predictor = Predictor(
        artifact, settings.model_name, settings.model_version, settings.drift_max_features, settings.model_runtime
    )
    predictor.warm_up()
    batcher = None
    if settings.batch_max_rows > 0:
        batcher = MicroBatcher(predictor, settings.batch_max_rows, settings.batch_max_wait_ms / 1000)

    app = Flask(__name__, static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.json.compact = True  # type: ignore[attr-defined]
    app.extensions["model_server"] = ServerState(settings=settings, predictor=predictor, batcher=batcher)

    register_request_hooks(app, settings.access_log)  # first, so even a refused request has a request id and metrics
    register_api_key_check(app, settings.api_keys)
    register_error_handlers(app)
    for blueprint in (predict.bp, v2.bp, prometheus.bp, openapi.bp):
        app.register_blueprint(blueprint)

    model = predictor.description
    log.info(
        "model ready",
        extra={
            "model": model.name,
            "version": model.version,
            "sha256": model.sha256,
            "estimator": model.estimator,
            "runtime": model.runtime,
            "runtime_reason": model.runtime_reason,
            "batching": {"max_rows": settings.batch_max_rows, "max_wait_ms": settings.batch_max_wait_ms},
            "artifact": str(artifact.path),
            "api_keys": len(settings.api_keys),
        },
    )
    return app
