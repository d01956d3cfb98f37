"""gunicorn's logger for this server: its own messages as JSON lines, and no access log.

Every request is logged by nginx (JSON, with the request id) and, with ACCESS_LOG=true, by the
app; gunicorn's access log would be a third copy, and merely preparing it costs time on every
request whenever any log configuration is set.
"""

from __future__ import annotations

from typing import Any

from gunicorn import glogging

from ..logs import json_formatter


class GunicornLogger(glogging.Logger):
    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for handler in self.error_log.handlers:
            handler.setFormatter(json_formatter())

    def access(self, resp: Any, req: Any, environ: Any, request_time: Any) -> None:
        return
