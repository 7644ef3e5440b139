"""What the status endpoint and the status page report besides counts: whether each upstream
answers (asked at most every 30 s), the task workers alive and the latest tasks."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from pullthrough.catalog.db import Catalog
from pullthrough.catalog.models import Task, Worker
from pullthrough.services.tasks import online_since
from pullthrough.upstream.client import UpstreamClient

REACHABILITY_SECONDS = 30.0  # a status poll must not become a load on the upstream
REACHABILITY_WAIT_SECONDS = 2.0  # the most a status request waits for an upstream's answer
_checked: dict[str, tuple[float, bool]] = {}
_checking: dict[str, threading.Event] = {}
_lock = threading.Lock()


def reachable(clients: Sequence[UpstreamClient]) -> list[tuple[bool, float]]:
    """Whether each remote's index answers within REACHABILITY_WAIT_SECONDS, and when that was
    seen (epoch seconds). One check at a time per index, at most every REACHABILITY_SECONDS, on
    a thread of its own, all started at once and waited for against one deadline: indexes that
    take connections and never answer hold up no status request past the wait (a load
    balancer's health check would time out), and do not get a check per request meanwhile."""
    pending = [_checking_now(client) for client in clients]
    deadline = time.monotonic() + REACHABILITY_WAIT_SECONDS
    seen = []
    for client, done in zip(clients, pending, strict=True):
        if done is not None and not done.wait(max(deadline - time.monotonic(), 0)):
            seen.append((False, time.time()))  # no answer yet: not reachable, as clients see it
            continue
        with _lock:
            checked, ok = _checked[client.root]
        seen.append((ok, checked))
    return seen


def _checking_now(client: UpstreamClient) -> threading.Event | None:
    """The check under way of a remote whose last one is too old (started here if need be),
    or None when the last one is fresh."""
    root = client.root
    with _lock:
        seen = _checked.get(root)
        if seen is not None and time.time() - seen[0] <= REACHABILITY_SECONDS:
            return None
        if (done := _checking.get(root)) is None:
            done = _checking[root] = threading.Event()
            threading.Thread(
                target=_check, args=(client, done), name="pullthrough-reachability", daemon=True
            ).start()
        return done


def _check(client: UpstreamClient, done: threading.Event) -> None:
    ok = False
    try:
        ok = client.reachable()
    finally:
        with _lock:
            _checked[client.root] = (time.time(), ok)
            del _checking[client.root]
        done.set()


@dataclass(frozen=True)
class WorkerInfo:
    name: str
    last_heartbeat: datetime


@dataclass(frozen=True)
class TaskInfo:
    """A task as anyone may see it: no arguments, no error text (they may name private things)."""

    name: str
    state: str
    created: datetime
    started: datetime | None
    finished: datetime | None
    worker: str | None


def online_workers(catalog: Catalog, worker_timeout: float) -> list[WorkerInfo]:
    alive = online_since(catalog, worker_timeout)
    with catalog.reading() as session:
        rows = session.scalars(
            select(Worker).where(Worker.last_heartbeat >= alive).order_by(Worker.name)
        ).all()
        return [WorkerInfo(w.name, w.last_heartbeat) for w in rows]


def recent_tasks(catalog: Catalog, limit: int = 10) -> list[TaskInfo]:
    with catalog.reading() as session:
        rows = session.scalars(select(Task).order_by(Task.pulp_created.desc()).limit(limit)).all()
        return [
            TaskInfo(t.name, t.state, t.pulp_created, t.started_at, t.finished_at, t.worker)
            for t in rows
        ]
