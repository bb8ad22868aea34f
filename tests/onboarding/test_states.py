"""Operator alerts: raised once per kind, resolved when their condition ends, reopened anew."""

from __future__ import annotations

from sqlalchemy import select

from models import Alert, Database
from onboarding.states import raise_alert, resolve_alert


def alerts(db: Database, onboarding_id: int) -> list[Alert]:
    with db.sessionmaker() as session:
        return list(session.scalars(select(Alert).where(Alert.onboarding_id == onboarding_id)))


def test_an_alert_is_raised_once_per_kind(db: Database, subscribed: int) -> None:
    """Raising the same kind again, open or resolved, adds nothing unless reopening."""
    with db.session() as session:
        assert raise_alert(session, subscribed, "paused_x", "first")
        assert not raise_alert(session, subscribed, "paused_x", "again")
        assert resolve_alert(session, subscribed, "paused_x")
        assert not raise_alert(session, subscribed, "paused_x", "after")
    [alert] = alerts(db, subscribed)
    assert (alert.message, alert.acknowledged_at is not None) == ("first", True)


def test_resolving_closes_only_an_open_alert(db: Database, subscribed: int) -> None:
    """Resolving an alert that is not open reports nothing resolved."""
    with db.session() as session:
        assert not resolve_alert(session, subscribed, "paused_x")
        raise_alert(session, subscribed, "paused_x", "first")
        assert resolve_alert(session, subscribed, "paused_x")
        assert not resolve_alert(session, subscribed, "paused_x")


def test_a_resolved_alert_reopens_as_a_new_alert(db: Database, subscribed: int) -> None:
    """When the condition comes back, the resolved alert is replaced by a new open one."""
    with db.session() as session:
        raise_alert(session, subscribed, "paused_x", "first")
        resolve_alert(session, subscribed, "paused_x")
    [first] = alerts(db, subscribed)
    with db.session() as session:
        assert raise_alert(session, subscribed, "paused_x", "back", reopen=True)
        assert not raise_alert(session, subscribed, "paused_x", "still", reopen=True)
    [again] = alerts(db, subscribed)
    assert (again.message, again.acknowledged_at) == ("back", None)
    assert again.raised_at >= first.raised_at
