"""gunicorn settings for `pullthrough serve` (deploy/gunicorn.conf.py points here, for gunicorn
run directly: then its master does the node's setup that `serve` does before it starts gunicorn).

Threads suit the work: requests mostly wait on the upstream or on sendfile, not on the CPU.
PULLTHROUGH_WORKERS / PULLTHROUGH_THREADS / PULLTHROUGH_BIND are set by the CLI from the config.
"""

import multiprocessing
import os
from typing import Any

bind = [os.environ.get("PULLTHROUGH_BIND", "127.0.0.1:24817")]
worker_class = "pullthrough.gunicorn_worker.KeepAliveWorker"
workers = int(os.environ.get("PULLTHROUGH_WORKERS", "0")) or max(2, multiprocessing.cpu_count())
threads = int(os.environ.get("PULLTHROUGH_THREADS", "32"))
keepalive = 30  # pip and uv reuse connections across a resolve
timeout = 120  # a worker silent this long is restarted; downloads keep it busy, not silent
graceful_timeout = 30
accesslog = os.environ.get("PULLTHROUGH_ACCESS_LOG") or None
# gunicorn's default with "-" for its %(u)s, the user of a Basic header: a client may send a
# token there (pip's http://TOKEN@host/ form), and secrets are never logged.
access_log_format = '%(h)s %(l)s - %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
errorlog = "-"
loglevel = os.environ.get("PULLTHROUGH_LOG_LEVEL", "info")
control_socket_disable = True  # several servers may run side by side (tests, benchmarks)
wsgi_app = "pullthrough.app:create_app()"


def on_starting(server: Any) -> None:
    """The node's one-time setup, in the master before it starts its workers, when gunicorn is
    run directly (`gunicorn -c deploy/gunicorn.conf.py`); `pullthrough serve` did it already."""
    if getattr(server.app, "app_uri", None) == wsgi_app:  # not an app named on the command line
        from pullthrough.cli.server import start_in_gunicorn

        start_in_gunicorn(server.cfg.bind)


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone: its live gauges (downloads in flight) stop counting; its counters stay
    in the sum (prometheus_client's multiprocess mode, set up by `pullthrough serve`)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
