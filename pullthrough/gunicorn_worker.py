"""gunicorn's gthread worker, with a kept-alive connection's next request read by the thread that
answered the one before, when it comes at once.

gthread hands every request of a kept-alive connection from its main loop to a pool thread and
back: the connection goes back to the main loop's poller after each answer, the poller wakes for
the next request and submits it to the pool again (futures, a wake-up pipe, two epoll calls,
three GIL handoffs). Under load on a warm page that round trip held a third of the GIL; without
it a request costs 7-17% less CPU. Clients that send their next request right after reading an
answer (nginx's kept-alive upstream connections under load, load generators) find the thread
still there: it waits a moment (`NEXT_REQUEST_WAIT`) for the connection to become readable, and
reads it itself. Clients that pause longer (pip between a page and its file) find the connection
back in the poller, as before.

The wait holds a thread, so a thread waits, or goes on with pipelined bytes already read, only
while at most half of the pool is taken; past that, connections go back to gthread's queue at
once. With TLS configured in gunicorn, and in a stopping worker, there is no wait. Everything
else (parsing, keep-alive limits, graceful stop, slow clients, HTTP/2) is gthread's own
`handle`. gunicorn >= 27: its `finish_request` queues a connection again at once when its next
request's bytes are already read.

A worker also hands the GIL on sooner: a request's thread that wants it while a background
thread runs Python code (storing a cold file, cataloguing it, keeping a page copy) waits up to
the switch interval, 5 ms by default and `GIL_SWITCH_INTERVAL` here. pip download of 25 cold
projects through a fresh server, medians of 8-10 alternating runs, three times: 0.92 -> 0.86,
0.92 -> 0.86 and 0.93 -> 0.87 s; warm pages' requests/s and CPU per request were within this
machine's noise (4 alternating rounds).

Once its app is loaded, a worker freezes the objects it holds (`gc.freeze`): 125,000-150,000
(imports, settings, the catalog's engine), alive as long as the worker. A full collection of the
cyclic garbage collector walked them all, 80-100 ms here, in the middle of whichever request
crossed its threshold (the second cold big page of a fresh app, in-process: 130-160 ms instead
of 40; under gunicorn, 3 of 50 cold big pages over 100 ms, none once frozen). Frozen, they are
never walked again; garbage the app makes later still is.

A worker also starts `PREPARED_THREADS` of its pool's threads with its app, each running the
app's `prepare_thread` (pullthrough's opens the thread's connections to its caches and to the
catalog), before it takes its first connection: a new worker's first requests, each on a thread of its own,
paid for those (a new thread and ~5 connections per request, ~2-4 ms). A cold `uv pip install`
of 10 projects (5 of 2,100 files) through a fresh server, its gunicorn workers' CPU, medians of
6 alternating runs: 0.253 -> 0.214 s. What it costs: a started worker's RSS, 88 -> 97 MiB here
(12 threads' connections, which its first busy moment would have opened anyway); 6 threads
saved about as much CPU on that install (~0.015 s less, within the noise).

A worker that starts while the catalog cannot be reached (PostgreSQL restarting, refusing
connections) waits for it, `BOOT_RETRY_SECONDS` between tries, rather than fail: gunicorn stops
the whole server when a worker fails to boot, so one worker replaced during an outage (killed,
timed out, out of memory) took the node down for good, its other workers with it. Meanwhile the
node's other workers answer 503, and the waiting one heartbeats (gunicorn's timeout is for hung
workers) and stops when asked.
"""

from __future__ import annotations

import contextlib
import gc
import select
import sys
import threading
import time
from concurrent import futures
from typing import Any

from gunicorn.workers.gthread import TConn, ThreadWorker
from sqlalchemy.exc import OperationalError

NEXT_REQUEST_WAIT = 0.002  # seconds a thread waits for the next request on its connection
GIL_SWITCH_INTERVAL = 0.001  # seconds a thread that wants the GIL waits before asking for it
BOOT_RETRY_SECONDS = 1.0  # between a starting worker's tries to reach the catalog
PREPARED_THREADS = 12  # pool threads started with the app (at most `threads`): uv opens ~10
PREPARE_WAIT = 5.0  # seconds they wait for each other to start (each on a thread of its own)


def may_wait(taken: int, threads: int) -> bool:
    """Whether a thread may wait for its connection's next request: `taken` threads of `threads`
    answer or wait (this one included), and at least half the pool stays free for the rest."""
    return taken <= threads // 2


def next_request_comes(conn: TConn, seconds: float) -> bool:
    """Whether the connection turns readable (a request, or its close) within `seconds`."""
    poller = select.poll()
    poller.register(conn.sock, select.POLLIN)
    return bool(poller.poll(seconds * 1000))


class KeepAliveWorker(ThreadWorker):  # type: ignore[misc]
    """gthread's worker whose threads answer a kept-alive connection's next request themselves
    when it comes within `NEXT_REQUEST_WAIT`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._taken = 0
        self._taken_lock = threading.Lock()

    def init_process(self) -> None:
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)  # in the worker: its threads and no other
        super().init_process()

    def load_wsgi(self) -> None:
        while True:
            try:
                super().load_wsgi()
                break
            except OperationalError as exc:  # the catalog cannot be reached: wait for it
                if not self.alive:  # asked to stop meanwhile
                    sys.exit(0)
                self.log.warning("worker waits for the catalog to start: %s", exc)
                self.notify()
                time.sleep(BOOT_RETRY_SECONDS)
        gc.collect()  # what loading left as garbage goes first, then the rest is kept for good
        gc.freeze()

    def run(self) -> None:
        self.prepare_threads()
        super().run()

    def prepare_threads(self) -> None:
        """Start `PREPARED_THREADS` of the pool's threads, each running the app's
        `prepare_thread` if it has one, and wait for them (at most twice `PREPARE_WAIT`)."""
        prepare = getattr(self.wsgi, "prepare_thread", None)
        if prepare is None:
            return
        count = min(PREPARED_THREADS, self.cfg.threads)
        together = threading.Barrier(count)  # none ends before all started: one thread each

        def start() -> None:
            with contextlib.suppress(threading.BrokenBarrierError):
                together.wait(PREPARE_WAIT)
            try:
                prepare()
            except Exception as exc:  # the first request's use will say it again, if it lasts
                self.log.warning("could not prepare a thread: %s", exc)

        futures.wait([self.tpool.submit(start) for _ in range(count)], timeout=PREPARE_WAIT * 2)

    def handle(self, conn: TConn) -> Any:
        if self.cfg.is_ssl:  # TLS keeps read bytes in its own buffer, where poll cannot see them
            return super().handle(conn)
        with self._taken_lock:
            self._taken += 1
        try:
            while True:
                result = super().handle(conn)
                if result is not True or not self.alive:
                    return result
                if not may_wait(self._taken, self.cfg.threads):
                    return result  # gthread queues it again at once if its next bytes are read
                if conn.parser.unreader.buf.getvalue():
                    continue  # the next request's first bytes are read already
                if not next_request_comes(conn, NEXT_REQUEST_WAIT):
                    return result
        finally:
            with self._taken_lock:
                self._taken -= 1
