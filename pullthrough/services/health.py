"""What the status endpoint and the status page report besides counts: whether each upstream
answers (asked at most every 30 s), the task workers alive and the latest tasks."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from pullthrough.catalog.db import Catalog
from pullthrough.catalog.models import Task, Worker
from pullthrough.services.tasks import online_since
from pullthrough.upstream.client import UpstreamClient

REACHABILITY_SECONDS = 30.0  # a status poll must not become a load on the upstream
_checked: dict[str, tuple[float, bool]] = {}
_lock = threading.Lock()


def reachable(client: UpstreamClient) -> tuple[bool, float]:
    """Whether the remote's index answers, and when that was checked (epoch seconds)."""
    now = time.time()
    with _lock:
        seen = _checked.get(client.root)
    if seen is None or now - seen[0] > REACHABILITY_SECONDS:
        seen = (now, client.reachable())
        with _lock:
            _checked[client.root] = seen
    return seen[1], seen[0]


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
    alive = online_since(worker_timeout)
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
