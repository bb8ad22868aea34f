"""Signups recorded without an onboarding: one row per body, listed newest first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from models import AbandonedSignup, Database, RecordedFinish
from onboarding.signup.records import list_recorded, record_abandoned, record_finish
from tests.onboarding.signup.sessions import WABA, v4

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DIGEST = "a" * 64


def finish(session: Session, digest: str = DIGEST, at: datetime = NOW) -> Any:
    message = v4("FINISH_ONLY_WABA", waba_id=WABA)
    return record_finish(
        session,
        event="FINISH_ONLY_WABA",
        data=message["data"],
        raw_session=message,
        body_sha256=digest,
        now=at,
    )


def cancel(session: Session, step: str, at: datetime) -> Any:
    message = v4("CANCEL", current_step=step)
    return record_abandoned(
        session,
        event="CANCEL",
        data=message["data"],
        raw_session=message,
        body_sha256=None,
        now=at,
    )


def test_a_body_posted_twice_at_once_is_one_record(db: Database) -> None:
    """When another post commits the same body first, the loser answers with the winner's row."""
    with db.sessionmaker() as session:

        @event.listens_for(session, "before_flush", once=True)
        def _other_post_wins(*_: Any) -> None:
            with db.sessionmaker() as other:
                finish(other)

        recorded = finish(session)

    with db.sessionmaker() as session:
        assert session.scalar(select(func.count()).select_from(RecordedFinish)) == 1
        assert recorded.row_id == session.scalar(select(RecordedFinish.id))
    assert recorded.created is False


def test_listing_is_newest_first_across_kinds_and_limited(db: Database) -> None:
    """Abandoned and not-onboarded signups are listed together, newest first, up to the limit."""
    with db.sessionmaker() as session:
        cancel(session, "PERMISSIONS", NOW)
        finish(session, at=NOW + timedelta(minutes=1))
        cancel(session, "PHONE_NUMBER_SETUP", NOW + timedelta(minutes=2))

        listed = list_recorded(session, limit=2)
        abandoned = list_recorded(session, kind="abandoned")

    assert [(type(r).__name__, r.event) for r in listed] == [
        ("AbandonedSignup", "CANCEL"),
        ("RecordedFinish", "FINISH_ONLY_WABA"),
    ]
    assert [r.current_step for r in abandoned if isinstance(r, AbandonedSignup)] == [
        "PHONE_NUMBER_SETUP",
        "PERMISSIONS",
    ]
