"""Signups that start no onboarding here, recorded for operators.

Two kinds (docs/meta.md#embedded-signup-v4-session-events):

* **abandoned** — ``CANCEL`` (the customer left, ``current_step``; or reported an error,
  ``error_code`` and ``session_id``) and ``ERROR``, kept for support;
* **not onboarded** — finishes of flows coexist does not onboard (``FINISH_ONLY_WABA``,
  ``FINISH_OBO_MIGRATION``, ``FINISH_GRANT_ONLY_API_ACCESS``), kept with every id they named.

A body that can be told from another (a finish, or an abandonment carrying a code or a
``session_id``) is recorded once however often it is posted; a bare ``CANCEL`` (only the last
screen) says nothing that tells two customers apart, so each post is a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import AbandonedSignup, RecordedFinish

log = structlog.get_logger(__name__)

#: The id lists a session's ``data`` may carry besides ``waba_id``, ``phone_number_id`` and
#: ``business_id`` (docs/meta.md#embedded-signup-v4-session-events).
ASSET_LISTS = (
    "waba_ids",
    "ad_account_ids",
    "page_ids",
    "dataset_ids",
    "catalog_ids",
    "instagram_account_ids",
)

Kind = Literal["abandoned", "not_onboarded"]
KINDS: tuple[Kind, ...] = ("abandoned", "not_onboarded")


@dataclass(frozen=True)
class Recorded:
    """The row a recorded signup is in, and whether this post created it."""

    kind: Kind
    row_id: int
    created: bool


def record_abandoned(
    session: Session,
    *,
    event: str,
    data: dict[str, Any],
    raw_session: dict[str, Any],
    body_sha256: str | None,
    now: datetime,
    connect_ref: str | None = None,
) -> Recorded:
    """Keep a ``CANCEL`` or ``ERROR`` for support (once per ``body_sha256`` if given). Commits.

    ``connect_ref`` is the invitation's customer reference when it came through the hosted page.
    """
    if body_sha256 is not None:
        existing = _find(session, AbandonedSignup, body_sha256)
        if existing is not None:
            log.info("signup_abandoned_duplicate", abandoned_signup_id=existing)
            return Recorded("abandoned", existing, created=False)
    row = AbandonedSignup(
        received_at=now,
        event=event,
        current_step=data.get("current_step"),
        error_code=data.get("error_code"),
        error_message=data.get("error_message"),
        session_id=data.get("session_id"),
        reported_at=_reported_at(data.get("timestamp"), now),
        session_data=raw_session,
        body_sha256=body_sha256,
        connect_ref=connect_ref,
    )
    recorded = _commit(session, row, "abandoned", body_sha256)
    log.info(
        "signup_abandoned",
        abandoned_signup_id=recorded.row_id,
        signup_event=event,
        current_step=row.current_step,
        error_code=row.error_code,
        session_id=row.session_id,
        connect_ref=connect_ref,
    )
    return recorded


def record_finish(
    session: Session,
    *,
    event: str,
    data: dict[str, Any],
    raw_session: dict[str, Any],
    body_sha256: str,
    now: datetime,
) -> Recorded:
    """Keep a finish coexist does not onboard, with every id it named (once per body). Commits."""
    existing = _find(session, RecordedFinish, body_sha256)
    if existing is not None:
        log.info("signup_not_onboarded_duplicate", recorded_finish_id=existing)
        return Recorded("not_onboarded", existing, created=False)
    row = RecordedFinish(
        received_at=now,
        event=event,
        waba_id=data.get("waba_id"),
        phone_number_id=data.get("phone_number_id"),
        business_id=data.get("business_id"),
        asset_ids={key: data[key] for key in ASSET_LISTS if data.get(key) is not None},
        session_data=raw_session,
        body_sha256=body_sha256,
    )
    recorded = _commit(session, row, "not_onboarded", body_sha256)
    log.info(
        "signup_not_onboarded",
        recorded_finish_id=recorded.row_id,
        signup_event=event,
        waba_id=row.waba_id,
        business_id=row.business_id,
    )
    return recorded


def _find(
    session: Session, model: type[AbandonedSignup] | type[RecordedFinish], digest: str
) -> int | None:
    return session.scalar(select(model.id).where(model.body_sha256 == digest))


def _commit(
    session: Session,
    row: AbandonedSignup | RecordedFinish,
    kind: Kind,
    digest: str | None,
) -> Recorded:
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()  # the same body, posted twice at once
        winner = _find(session, type(row), digest) if digest is not None else None
        if winner is None:
            raise
        return Recorded(kind, winner, created=False)
    return Recorded(kind, row.id, created=True)


def _reported_at(timestamp: str | None, now: datetime) -> datetime | None:
    """Meta's ``timestamp`` (Unix seconds as a string), or ``None`` when it is not one."""
    if not timestamp or not timestamp.isdigit():
        return None
    try:
        return datetime.fromtimestamp(int(timestamp), tz=now.tzinfo)
    except (OverflowError, OSError, ValueError):
        return None


def list_recorded(
    session: Session, *, kind: Kind | None = None, limit: int = 100
) -> list[AbandonedSignup | RecordedFinish]:
    """Recorded signups, newest first (``coexist signups list``, ``GET /signups``)."""
    rows: list[AbandonedSignup | RecordedFinish] = []
    if kind in (None, "abandoned"):
        query = select(AbandonedSignup).order_by(AbandonedSignup.received_at.desc())
        rows.extend(session.scalars(query.limit(limit)))
    if kind in (None, "not_onboarded"):
        query2 = select(RecordedFinish).order_by(RecordedFinish.received_at.desc())
        rows.extend(session.scalars(query2.limit(limit)))
    rows.sort(key=lambda r: (r.received_at, r.id), reverse=True)
    return rows[:limit]
