"""The stalled-sync watchdog: a history sync Meta accepted but never started sending.

Meta starts history only while the business keeps the WhatsApp Business app open. A history
sync ``requested`` for ``history_stall_minutes`` with no history webhook becomes ``stalled``,
with an alert telling the operator what to ask of the business; the next history webhook makes
it ``requested`` again (:mod:`.history`). State changes go through :mod:`onboarding.sync.states`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from config import Settings
from models import SyncRequest, SyncState, SyncType, utcnow
from onboarding.states import raise_alert
from onboarding.sync import states as sync_states

log = structlog.get_logger(__name__)


def watch_stalled(session: Session, *, settings: Settings, now: datetime | None = None) -> int:
    """History syncs requested long ago with no history webhook become ``stalled``. Commits.

    Returns how many were stalled now.
    """
    now = now or utcnow()
    cutoff = now - timedelta(minutes=settings.history_stall_minutes)
    rows = session.scalars(
        select(SyncRequest).where(
            SyncRequest.sync_type == SyncType.HISTORY.value,
            SyncRequest.state == SyncState.REQUESTED.value,
            SyncRequest.first_webhook_at.is_(None),
            SyncRequest.requested_at < cutoff,
        )
    ).all()
    for row in rows:
        sync_states.move(row, SyncState.STALLED)
        row.last_error = (
            f"no history webhook {settings.history_stall_minutes:g} min after the request; "
            "ask the business to open the WhatsApp Business app and keep it open"
        )
        raise_alert(
            session,
            row.onboarding_id,
            "history_stalled",
            f"onboarding {row.onboarding_id}: {row.last_error}",
        )
        log.warning("history_sync_stalled", onboarding_id=row.onboarding_id)
    session.commit()
    return len(rows)
