"""The audit trail: every write, with who made it, what it was, to what, when and from where.

An event is written in the transaction of the write it records, so the two stand or fall
together. Details never hold secrets: the callers pass only what may be shown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from pullthrough.catalog.models import AuditEvent

CONFIG_ACTOR = "config"  # what the config file sets at start


def record(
    session: Session,
    actor: str,
    action: str,
    subject: str,
    *,
    address: str = "",
    detail: Mapping[str, Any] | None = None,
) -> None:
    session.add(
        AuditEvent(
            actor=actor, action=action, subject=subject, address=address, detail=dict(detail or {})
        )
    )
