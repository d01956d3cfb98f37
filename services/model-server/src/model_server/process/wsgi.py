"""The WSGI entry point for gunicorn: ``model_server.process.wsgi:app``.

Invalid settings, or a repository with no servable model (missing, corrupt, untrusted, failing
its warm-up) when MODEL_POLL_SECONDS is 0, end the process with exit code 3 and a one-line
reason, not a traceback. With polling on, such a server starts not ready instead.
"""

from __future__ import annotations

import logging
import sys

from pydantic import ValidationError

from ..app import create_app
from ..logs import configure_logging
from ..repository.artifact import ModelLoadError

EXIT_CANNOT_SERVE = 3


def _refuse(reason: str) -> None:
    configure_logging("INFO")
    logging.getLogger("model_server").critical(reason)
    sys.exit(EXIT_CANNOT_SERVE)


try:
    app = create_app()
except ModelLoadError as exc:
    _refuse(f"cannot serve the model: {exc}")
except ValidationError as exc:
    problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
    _refuse(f"invalid configuration: {problems}")
