"""gunicorn settings for the model server; every value can be set from the environment.

Workers are gevent (``model_server.process.gunicorn_worker``): each worker process serves up to
GUNICORN_WORKER_CONNECTIONS connections in one thread of greenlets. The model is loaded once, in
the master (``preload_app``), and shared by the workers; then each worker polls the model
repository on its own (``post_worker_init``). A greenlet switch costs far less than
handing a request to a thread and back, and requests waiting in one worker share its model calls
(micro-batching).
"""

# gevent patches the standard library first, before anything (the app and its locks included,
# loaded here by preload_app) is imported: a lock made before patching would block the worker.
from gevent import monkey

monkey.patch_all()

import gc  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import joblib  # noqa: E402
from model_server.config import ProcessSettings  # noqa: E402
from model_server.monitoring.worker_files import fold_dead_worker  # noqa: E402

settings = ProcessSettings.from_environment()  # every default: model_server/config.py

bind = f"0.0.0.0:{settings.port}"
# One worker per CPU the replica may use (its cgroup CPU limit, compose's `cpus:`, rounded up,
# and its CPU affinity: joblib's count): a worker is one Python thread of greenlets, one core.
workers = settings.gunicorn_workers or joblib.cpu_count()
worker_class = "model_server.process.gunicorn_worker.GeventWorker"  # each response in one write; fair keep-alive
worker_connections = settings.gunicorn_worker_connections
preload_app = True  # load + warm up once; a model that cannot be served stops the master
timeout = settings.gunicorn_timeout
graceful_timeout = settings.gunicorn_graceful_timeout
keepalive = settings.gunicorn_keepalive
max_requests = settings.gunicorn_max_requests
max_requests_jitter = max_requests // 10
# Worker heartbeat files: in memory, and writable under a read-only root filesystem.
_shm = Path("/dev/shm")  # noqa: S108 - a per-container tmpfs, not a shared /tmp
worker_tmp_dir = settings.gunicorn_worker_tmp_dir or (str(_shm) if _shm.is_dir() else None)
control_socket_disable = True  # gunicornc is not used; the root filesystem is read-only
# JSON lines on stderr, no gunicorn access log (nginx, and ACCESS_LOG=true, log requests).
logger_class = "model_server.process.gunicorn_logger.GunicornLogger"
errorlog = "-"
loglevel = settings.log_level.lower()

# Metrics: every worker writes its own files in PROMETHEUS_MULTIPROC_DIR. Stale files of an
# earlier run would be summed in, so the directory is emptied here, before the app (and its
# metrics) is loaded; the marker keeps a config reload (SIGHUP) from wiping live counters.
_metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
if _metrics_dir and not os.environ.get("_MODEL_SERVER_METRICS_DIR_READY"):
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)
    os.environ["_MODEL_SERVER_METRICS_DIR_READY"] = "1"

# Each model's last valid config.json as the workers last read it (model_server/serving/last_valid_configs.py):
# private to this master and its workers, in memory where /dev/shm is; kept across a SIGHUP.
_configs_dir = os.environ.get("_MODEL_SERVER_CONFIGS_DIR")
if not _configs_dir:
    _configs_dir = os.environ["_MODEL_SERVER_CONFIGS_DIR"] = tempfile.mkdtemp(
        prefix="model-server-configs-", dir=worker_tmp_dir
    )


def when_ready(server):
    """The master loaded the models (``preload_app``) and counted itself in their versions'
    ``version_workers`` gauge: only workers serve, so its count goes."""
    if _metrics_dir:
        fold_dead_worker(Path(_metrics_dir), os.getpid())


def child_exit(server, worker):
    """A dead worker's live gauges (in-flight, versions served) stop counting; its counts join the archives."""
    if _metrics_dir:
        fold_dead_worker(Path(_metrics_dir), worker.pid)


def worker_exit(server, worker):
    """Before a worker exits: what it holds in memory for its metric files (micro-batching's lone requests).

    gunicorn also calls this in the master for a worker that was already gone when it was to be
    killed: only the worker's own process has an app to ask, and nothing here may stop the master."""
    if worker.pid != os.getpid() or getattr(worker, "wsgi", None) is None:
        return
    try:
        from model_server.app import write_held_metrics

        write_held_metrics(worker.wsgi)
    except Exception:
        worker.log.exception("writing the held metrics before the worker exits failed")


def on_exit(server):
    shutil.rmtree(_configs_dir, ignore_errors=True)


def pre_fork(server, worker):
    """Keep the pages the workers share with the master shared.

    Everything the master loaded (the libraries, the app, the models of ``preload_app``) is
    shared with the workers copy-on-write. A full garbage collection in a worker writes to the
    header of every object it scans and so copies each page it touches: after a few model reloads
    (which allocate enough to trigger one) each worker held a private copy of about 45 MiB of the
    master's memory. ``gc.freeze`` moves the master's objects out of the collector's reach
    first, so a worker's collections scan only its own objects.
    """
    gc.freeze()


def post_worker_init(worker):
    """Each worker polls the model repository itself (a greenlet): the master's copy of the
    live models, loaded before the fork, is where every worker starts. Its loads run in gevent's
    thread pool while it serves, beating its heartbeat (model_server/serving/version_loader.py).
    A worker renews itself after GUNICORN_MAX_UNLOADS unloaded versions, plus a share drawn per
    worker (``random`` is seeded anew in each forked process), so that the workers of a fleet,
    which all unload the same versions, renew at different times."""
    from model_server.app import start_polling

    unloads = settings.gunicorn_max_unloads
    if unloads:
        unloads += random.randint(0, unloads // 2)  # noqa: S311 - spreading in time, not a secret
    start_polling(
        worker.wsgi,
        renew=worker.renew,
        renew_after_unloads=unloads,
        heartbeat=worker.notify,
        configs_folder=Path(_configs_dir),
    )
