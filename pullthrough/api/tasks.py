"""Tasks, Pulp-style: write operations answer 202 with a task href that clients poll.

The operations so far are quick, so their work runs in the request's own transaction and the task
is recorded as completed in that same transaction: a failure changes nothing and records
nothing, and validation errors are still answered as 400s. Long operations (sync) will run in
the background with the same records.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from pullthrough.catalog.db import Catalog
from pullthrough.catalog.models import Task, now

WORKER = f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class TaskOutcome:
    created: list[str] = field(default_factory=list)  # hrefs
    result: dict[str, Any] | None = None


def run_as_task(
    catalog: Catalog,
    name: str,
    work: Callable[[Session, TaskOutcome], None],
    *,
    cid: str = "",
    reserved: tuple[str, ...] = (),
) -> str:
    """Do `work` and record it as a completed task; returns the task id."""
    started = now()
    outcome = TaskOutcome()
    with catalog.session() as session:
        work(session, outcome)
        task = Task(
            name=name,
            state="completed",
            logging_cid=cid,
            started_at=started,
            finished_at=now(),
            worker=WORKER,
            created_resources=outcome.created,
            reserved_resources=list(reserved),
            result=outcome.result,
        )
        session.add(task)
    return task.id
