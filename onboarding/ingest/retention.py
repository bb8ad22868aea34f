"""Raw-body retention: processed deliveries lose their bytes after the retention's days.

The inbox keeps every signed delivery raw so that it can be processed again (replay) and
forwarded (the relay). Once a row is ``processed`` and old enough, the raw bytes are only
weight, and they hold customers' messages. With ``COEX_INBOX_BODY_RETENTION_DAYS`` set, beat's
``drop-inbox-bodies`` job, every minute, empties the ``body`` of at most
``COEX_INBOX_BODY_RETENTION_BATCH`` rows and stamps ``body_dropped_at``; the row keeps its
metadata: ``sha256`` and ``size`` of the bytes (so a redelivery of the same bytes is still
recognised and stored once), fields, WABA, number, onboarding, status, times, summary.

Which rows. Exactly those that are, all at once:

* ``processed`` — never ``pending``, ``waiting_for_onboarding``, ``quarantined`` or
  ``orphaned`` ones: replay may still need their bytes;
* received more than the retention's days ago;
* still holding their body;
* handled by the relay when it is on (``COEX_RELAY_URL``): at or before its cursor
  (:func:`onboarding.relay.run.handled_through`), so the relay never lacks a body it still owes.
  A relay that has not run yet has handled nothing, so nothing is dropped.

The statement rechecks the state as it writes, so a row replayed meanwhile (back to
``pending``) keeps its body. A row whose body was dropped cannot be replayed: the answer says so
(:class:`BodyDroppedError`).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import ColumnElement, select, tuple_, update
from sqlalchemy.orm import Session

from config import Settings
from models import InboxDelivery, InboxStatus, utcnow
from onboarding.relay.run import handled_through

log = structlog.get_logger(__name__)


class BodyDroppedError(ValueError):
    """The delivery's raw body was dropped by retention: it cannot be processed again."""

    def __init__(self, delivery_id: int, dropped_at: datetime) -> None:
        super().__init__(
            f"delivery {delivery_id}'s raw body was dropped by retention on "
            f"{dropped_at.isoformat()}: it cannot be processed again"
        )
        self.delivery_id = delivery_id
        self.dropped_at = dropped_at


def kept() -> ColumnElement[bool]:
    """Rows that still hold their raw body."""
    return InboxDelivery.body_dropped_at.is_(None)


def drop_bodies(session: Session, *, settings: Settings, now: datetime | None = None) -> int:
    """Drop the raw bodies due, at most one batch; how many were dropped. Commits."""
    days = settings.inbox_body_retention_days
    if days is None:
        return 0
    now = now or utcnow()
    conditions = [
        InboxDelivery.status == InboxStatus.PROCESSED.value,
        kept(),
        InboxDelivery.received_at < now - timedelta(days=days),
    ]
    relayed = handled_through(session, settings)
    if relayed is not None:
        conditions.append(
            tuple_(InboxDelivery.tx, InboxDelivery.id) <= tuple_(relayed.tx, relayed.id)
        )
    due = (
        select(InboxDelivery.id)
        .where(*conditions)
        .order_by(InboxDelivery.received_at)
        .limit(settings.inbox_body_retention_batch)
    )
    ids = list(session.scalars(due))
    dropped = 0
    if ids:
        result = session.execute(
            update(InboxDelivery)
            .where(InboxDelivery.id.in_(ids), *conditions)
            .values(body=b"", body_dropped_at=now)
            .execution_options(synchronize_session=False)
        )
        dropped = int(result.rowcount or 0)  # type: ignore[attr-defined]
    session.commit()
    if dropped:
        log.info("inbox_bodies_dropped", dropped=dropped, retention_days=days)
    return dropped
