"""Tasks, Pulp-style: write operations answer 202 with a task that clients poll.

Quick operations run in the request and are recorded as a completed task in the same
transaction (`record_completed`): a failure changes nothing and records nothing. Long ones (sync,
orphan cleanup) are queued in the catalog and claimed by workers: one inside each server process
(the embedded default) or `pullthrough worker`. Claiming is safe across processes and hosts:
SQLite serializes it in one write transaction, PostgreSQL uses SELECT ... FOR UPDATE SKIP LOCKED.
Workers heartbeat; a task whose worker has been silent too long is marked failed instead of
staying `running` forever. Which tasks exist is the container's table (services.container).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from pullthrough.catalog.db import Catalog, in_batches
from pullthrough.catalog.models import Task, Worker, now
from pullthrough.core.tasks import RUNNING_TASK_STATES
from pullthrough.core.times import read_utc, utc

if TYPE_CHECKING:
    from pullthrough.services.container import Services

log = logging.getLogger(__name__)
FORGOTTEN_AFTER_SECONDS = 7 * 86400  # a worker missing this long is no longer listed
PROCESS = f"{socket.gethostname()}-{os.getpid()}"  # what this process's workers are named after


@dataclass(frozen=True)
class Ref:
    """Something a task created; the API renders it as an href."""

    kind: str  # repository_version, content, distribution, publication, ...
    id: str  # for a repository version: its repository's id
    number: int | None = None  # a repository version's number

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "id": self.id,
            **({"number": self.number} if self.number is not None else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Ref:
        return cls(str(data["kind"]), str(data["id"]), data.get("number"))


@dataclass
class TaskOutcome:
    created: list[Ref] = field(default_factory=list)
    result: dict[str, Any] | None = None


def record_completed(
    session: Session,
    name: str,
    work: Callable[[Session, TaskOutcome], None],
    *,
    cid: str = "",
    reserved: Sequence[str] = (),
) -> str:
    """Do `work` and record it as a completed task, in the caller's transaction; returns the
    task's id. No task worker ran it, so it names none (its `worker` is empty). `reserved`: what
    it acted on, as Pulp records it (an href; `shared:<href>` for what it only read)."""
    started = now()
    outcome = TaskOutcome()
    work(session, outcome)
    task = Task(
        name=name,
        state="completed",
        logging_cid=cid,
        started_at=started,
        finished_at=now(),
        created_resources=[ref.to_json() for ref in outcome.created],
        reserved_resources=list(reserved),
        result=outcome.result,
    )
    session.add(task)
    session.flush()
    return task.id


def catalog_now(catalog: Catalog) -> Any:
    """Now, for heartbeats and what is compared with them: by the database's clock on
    PostgreSQL (one clock for every node: a node whose own clock is off by more than
    tasks.worker_timeout neither takes the other nodes' workers for dead, failing their running
    tasks, nor is taken for dead by them), by this host's on SQLite (one host)."""
    return func.now() if catalog.engine.dialect.name == "postgresql" else now()


def catalog_time(catalog: Catalog, clock: Callable[[], datetime] = now) -> datetime:
    """catalog_now's value, read once (a query on PostgreSQL): for a decision several nodes
    must agree on made in Python, as orphan cleanup's cutoff. `clock` is this host's (SQLite)."""
    if catalog.engine.dialect.name != "postgresql":
        return clock()
    with catalog.engine.connect() as conn:
        return utc(conn.execute(select(func.now())).scalar_one())


def online_since(catalog: Catalog, window: float) -> Any:
    """Workers that heartbeat after this time are alive (a time, or the database's now minus
    the window: see catalog_now)."""
    return catalog_now(catalog) - timedelta(seconds=window)


class Canceled(Exception):
    pass


class TaskContext:
    """What a running task sees: its arguments, the services, progress and cancellation."""

    def __init__(self, services: Services, task_id: str, args: dict[str, Any]) -> None:
        self.services = services
        self.task_id = task_id
        self.args = args
        self.outcome = TaskOutcome()
        self._reports: dict[str, dict[str, Any]] = {}
        self._written = 0.0

    def report(
        self,
        code: str,
        message: str,
        *,
        done: int = 0,
        total: int | None = None,
        state: str = "running",
        force: bool = False,
    ) -> None:
        """Pulp-shaped progress reports; written at most twice a second unless forced."""
        self._reports[code] = {
            "message": message,
            "code": code,
            "state": state,
            "done": done,
            "total": total,
            "suffix": None,
        }
        if force or state != "running" or time.monotonic() - self._written > 0.5:
            self._written = time.monotonic()
            with self.services.catalog.session() as session:
                task = session.get(Task, self.task_id)
                if task is not None:
                    task.progress_reports = list(self._reports.values())

    def completed(self, code: str, message: str, done: int, total: int | None = None) -> None:
        """A finished step's report, written now."""
        total = done if total is None else total
        self.report(code, message, done=done, total=total, state="completed", force=True)

    def check_canceled(self) -> None:
        with self.services.catalog.session() as session:
            if session.scalar(select(Task.state).where(Task.id == self.task_id)) == "canceling":
                raise Canceled()


Handler = Callable[[TaskContext], None]


def count_by_state(catalog: Catalog) -> dict[str, int]:
    """Tasks per state, for /metrics and the status page: read without waiting for a writer."""
    with catalog.reading() as session:
        rows = session.execute(select(Task.state, func.count()).group_by(Task.state))
        return {state: count for state, count in rows}


def purge_tasks(ctx: TaskContext) -> None:
    """The task `pulp task purge` queues, as Pulp's: the records of the tasks in `states`
    (final ones) that finished before `finished_before`, gone; this one stays."""
    before = read_utc(ctx.args["finished_before"])
    with ctx.services.catalog.session() as session:
        ids = list(
            session.scalars(
                select(Task.id).where(
                    Task.state.in_(ctx.args["states"]),
                    # a task canceled while waiting, recorded by an earlier version, has no
                    # finished_at: its creation stands for it
                    func.coalesce(Task.finished_at, Task.pulp_created) < before,
                    Task.id != ctx.task_id,
                )
            )
        )
        for batch in in_batches(ids):
            session.execute(
                delete(Task).where(Task.id.in_(batch)),
                execution_options={"synchronize_session": False},
            )
    ctx.completed("purge.tasks.total", "Purged task-related-objects total", len(ids))
    ctx.completed(
        "purge.tasks.key.core.Task", "Purged task-related-objects of type core.Task", len(ids)
    )


def enqueue(
    session: Session,
    name: str,
    args: dict[str, Any],
    *,
    cid: str = "",
    reserved: Sequence[str] = (),
) -> str:
    """Queue a background task in the caller's transaction; returns its id. Wake the workers
    once it is committed. `reserved`: as record_completed's."""
    task = Task(name=name, args=args, logging_cid=cid, reserved_resources=list(reserved))
    session.add(task)
    session.flush()
    return task.id


class TaskWorker:
    def __init__(
        self,
        services: Services,
        handlers: Mapping[str, Handler],
        *,
        heartbeat: float,  # seconds between heartbeats
        dead_after: float,  # a worker silent this long is presumed dead
        name: str | None = None,
    ) -> None:
        self.services = services
        self.handlers = handlers
        self.heartbeat_seconds = heartbeat
        self.dead_after = dead_after
        self.name = name or f"{PROCESS}-{threading.get_ident() % 10000}"
        self.wakeup = threading.Event()
        self._stop = threading.Event()  # take no new task
        self._ended = threading.Event()  # the loop is over: the task under way, if any, ended
        self._thread: threading.Thread | None = None
        self._beat = 0.0

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="pullthrough-worker", daemon=True)
        self._thread.start()

    def _beat_forever(self) -> None:
        """Heartbeats on their own thread, so a long task does not look like a dead worker -
        until the loop is over: a worker asked to stop (SIGTERM) finishes its task alive, not
        reaped as failed by another worker while it still runs."""
        while not self._ended.is_set():
            try:
                self.heartbeat()
            except Exception:
                log.exception("task worker %s: heartbeat failed", self.name)
            self._ended.wait(min(self.heartbeat_seconds, 1.0))

    def stop(self, timeout: float = 10.0) -> None:
        """Take no new task; wait up to `timeout` s for the one under way (it goes on after)."""
        self._stop.set()
        self.wakeup.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        beater = threading.Thread(
            target=self._beat_forever, name="pullthrough-heartbeat", daemon=True
        )
        beater.start()
        try:
            while not self._stop.is_set():
                try:
                    ran = self.run_once()
                except Exception:  # the catalog may be briefly unavailable; keep on
                    log.exception("task worker %s: loop error", self.name)
                    ran = False
                if not ran:
                    self.wakeup.wait(1.0)
                    self.wakeup.clear()
        finally:
            self._ended.set()

    def heartbeat(self, *, force: bool = False) -> None:
        if not force and time.monotonic() - self._beat < self.heartbeat_seconds:
            return
        self._beat = time.monotonic()
        beat = catalog_now(self.services.catalog)
        with self.services.catalog.session() as session:
            worker = session.get(Worker, self.name)
            if worker is None:
                session.add(Worker(name=self.name, last_heartbeat=beat))
            else:
                worker.last_heartbeat = beat
        self.reap()

    def reap(self) -> int:
        """Mark failed the tasks of workers that stopped heartbeating; forget workers missing
        for a week, as Pulp does (their tasks then name no worker, as Pulp's: no href of
        theirs leads nowhere)."""
        catalog = self.services.catalog
        with catalog.session() as session:
            gone = select(Worker.name).where(
                Worker.last_heartbeat < online_since(catalog, FORGOTTEN_AFTER_SECONDS)
            )
            if names := list(session.scalars(gone)):
                session.execute(update(Task).where(Task.worker.in_(names)).values(worker=None))
                session.execute(delete(Worker).where(Worker.name.in_(names)))
            alive = select(Worker.name).where(
                Worker.last_heartbeat >= online_since(catalog, self.dead_after)
            )
            orphaned = session.scalars(
                select(Task)
                .where(
                    Task.state.in_(RUNNING_TASK_STATES),
                    or_(Task.worker.is_(None), Task.worker.not_in(alive)),
                )
                .with_for_update(skip_locked=True)  # one its worker is ending now: not reaped
            ).all()
            for task in orphaned:
                task.state = "failed"
                task.finished_at = now()
                task.error = {
                    "description": f"The worker running this task ({task.worker}) stopped responding.",
                    "traceback": "",
                }
            return len(orphaned)

    def claim(self) -> Task | None:
        with self.services.catalog.session() as session:
            query = select(Task).where(Task.state == "waiting").order_by(Task.pulp_created).limit(1)
            if session.bind is not None and session.bind.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            task = session.scalar(query)
            if task is None:
                return None
            task.state, task.worker, task.started_at = "running", self.name, now()
            return task

    def run_once(self) -> bool:
        task = self.claim()
        if task is None:
            return False
        func = self.handlers.get(task.name)
        ctx = TaskContext(self.services, task.id, dict(task.args or {}))
        state, error = "completed", None
        try:
            if func is None:
                raise LookupError(f"no background task named {task.name!r}")
            func(ctx)
        except Canceled:
            state = "canceled"
        except Exception as exc:
            log.warning("task %s (%s) failed: %s", task.id, task.name, exc)
            state = "failed"
            error = {"description": str(exc), "traceback": traceback.format_exc(limit=8)}
            if (code := getattr(exc, "error_code", None)) is not None:  # as Pulp's errors
                error["error_code"] = code
        self._finish(task.id, ctx, state, error)
        self.services.registry.changed()
        return True

    def _finish(
        self, task_id: str, ctx: TaskContext, state: str, error: dict[str, Any] | None
    ) -> None:
        """Record the outcome; retried, so a briefly busy catalog cannot leave it `running`."""
        for attempt in range(5):
            try:
                self._write_outcome(task_id, ctx, state, error)
                return
            except Exception:
                log.exception(
                    "task %s: recording its outcome failed (attempt %d)", task_id, attempt + 1
                )
                time.sleep(1.0 + attempt)

    def _write_outcome(
        self, task_id: str, ctx: TaskContext, state: str, error: dict[str, Any] | None
    ) -> None:
        with self.services.catalog.session() as session:
            # under a row lock: a reap committed between a plain read and the write would be
            # overwritten (PostgreSQL; SQLite's writers are one at a time anyway)
            row = session.get(Task, task_id, with_for_update=True)
            assert row is not None
            if row.state not in RUNNING_TASK_STATES:  # reaped meanwhile: ended already
                log.warning(
                    "task %s ended %s, but was already recorded as %s; left so",
                    task_id,
                    state,
                    row.state,
                )
                return
            row.state, row.finished_at, row.error = state, now(), error
            # Reports still running end as the task did.
            row.progress_reports = [
                {**r, "state": state if r["state"] == "running" else r["state"]}
                for r in ctx._reports.values()
            ]
            if state == "completed":
                row.created_resources = [ref.to_json() for ref in ctx.outcome.created]
                row.result = ctx.outcome.result
