"""Deleting a repository version: a task, as Pulp's `delete_version`."""

from __future__ import annotations

import logging

from pullthrough.catalog.versions import delete_version
from pullthrough.services.tasks import TaskContext

log = logging.getLogger(__name__)


def delete(ctx: TaskContext) -> None:
    """The task: args `repository_id` and `number`. A version deleted meanwhile is no error;
    the only version, or one a distribution serves by now, fails the task (catalog.versions)."""
    repository_id, number = ctx.args["repository_id"], int(ctx.args["number"])
    with ctx.services.catalog.session() as session:
        if not delete_version(session, repository_id, number):
            log.info(
                "version %d of repository %s was not found: nothing to do", number, repository_id
            )
