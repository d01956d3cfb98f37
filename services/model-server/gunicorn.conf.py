"""gunicorn settings for the model server; every value can be set from the environment.

Workers are gthread: each worker process runs GUNICORN_THREADS request threads, and the model
(loaded once in the master thanks to ``preload_app``) is shared by all of them.
"""

import os
import shutil
from pathlib import Path

from prometheus_client import multiprocess

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
preload_app = True  # load + warm up once; a model that cannot be served stops the master
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "25"))  # SIGTERM: finish in-flight
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "75"))  # longer than nginx's upstream keepalive
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "0"))
max_requests_jitter = max_requests // 10
# Worker heartbeat files: in memory, and writable under a read-only root filesystem.
_shm = Path("/dev/shm")  # noqa: S108 - a per-container tmpfs, not a shared /tmp
worker_tmp_dir = os.environ.get("GUNICORN_WORKER_TMP_DIR", str(_shm) if _shm.is_dir() else None)
control_socket_disable = True  # gunicornc is not used; the root filesystem is read-only
# JSON lines on stderr, no gunicorn access log (nginx, and ACCESS_LOG=true, log requests).
logger_class = "model_server.gunicorn_logger.GunicornLogger"
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()

# Metrics: every worker writes its own files in PROMETHEUS_MULTIPROC_DIR. Stale files of an
# earlier run would be summed in, so the directory is emptied here, before the app (and its
# metrics) is loaded; the marker keeps a config reload (SIGHUP) from wiping live counters.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _metrics_dir and not os.environ.get("_MODEL_SERVER_METRICS_DIR_READY"):
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)
    os.environ["_MODEL_SERVER_METRICS_DIR_READY"] = "1"


def child_exit(server, worker):
    """A dead worker's live gauges (in-flight, ready, info) must stop counting."""
    if _metrics_dir:
        multiprocess.mark_process_dead(worker.pid)
