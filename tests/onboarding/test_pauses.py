"""Pauses and restrictions: what each stops, when it lifts, and what the timeline says."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from freezegun import freeze_time
from sqlalchemy import select

from models import Alert, Database, Onboarding
from onboarding import pauses
from onboarding.pauses import Restriction

SET_AT = datetime(2027, 1, 15, 8, 0, tzinfo=UTC)
EXPIRY = int(datetime(2027, 1, 16, 8, 0, tzinfo=UTC).timestamp())


def restrict(db: Database, onboarding_id: int, *items: Restriction) -> None:
    with db.session() as session:
        onboarding = session.get_one(Onboarding, onboarding_id)
        pauses.restrict(session, onboarding, list(items), at=SET_AT)
        session.commit()


def stopped(db: Database, onboarding_id: int, kind: str, now: datetime) -> object:
    with db.sessionmaker() as session:
        return pauses.stopped(session.get_one(Onboarding, onboarding_id), kind, now)


@pytest.mark.parametrize(
    ("restriction_type", "text_stops", "template_stops"),
    [
        ("RESTRICTED_BIZ_INITIATED_MESSAGING", False, True),
        ("RESTRICTED_CUSTOMER_INITIATED_MESSAGING", True, False),
        ("RESTRICTED_UTILITY_TEMPLATES", False, True),
        ("RESTRICTED_ADD_PHONE_NUMBER_ACTION", False, False),
        ("RESTRICTED_SOMETHING_NEW", True, True),
    ],
)
def test_each_restriction_stops_only_what_it_restricts(
    db: Database,
    subscribed: int,
    restriction_type: str,
    text_stops: bool,
    template_stops: bool,
) -> None:
    """Each documented restriction type stops its kind of message; an unknown one stops all."""
    restrict(db, subscribed, Restriction(restriction_type, EXPIRY))
    assert (stopped(db, subscribed, "text", SET_AT) is not None) is text_stops
    assert (stopped(db, subscribed, "template", SET_AT) is not None) is template_stops


def test_a_restriction_says_how_long_to_wait(db: Database, subscribed: int) -> None:
    """A stopped send is told the seconds left until the restriction expires."""
    restrict(db, subscribed, Restriction("RESTRICTED_BIZ_INITIATED_MESSAGING", EXPIRY))
    stop = stopped(db, subscribed, "template", SET_AT)
    assert isinstance(stop, tuple)
    reason, wait = stop
    assert reason.startswith("ACCOUNT_RESTRICTION: RESTRICTED_BIZ_INITIATED_MESSAGING")
    assert wait == 86_400


def test_an_expired_restriction_stops_nothing_before_anyone_acts(
    db: Database, subscribed: int
) -> None:
    """Past its expiry a restriction no longer stops sends, even before the beat job ran."""
    restrict(db, subscribed, Restriction("RESTRICTED_BIZ_INITIATED_MESSAGING", EXPIRY))
    after = datetime.fromtimestamp(EXPIRY + 1, tz=UTC)
    assert stopped(db, subscribed, "template", after) is None


def test_beat_notes_the_lift_and_closes_the_alert(db: Database, subscribed: int) -> None:
    """The beat job drops expired restrictions, notes each lift on the timeline, and resolves
    the alert once none is left."""
    restrict(db, subscribed, Restriction("RESTRICTED_BIZ_INITIATED_MESSAGING", EXPIRY))
    with freeze_time(datetime.fromtimestamp(EXPIRY - 60, tz=UTC)), db.session() as session:
        assert pauses.lift_expired(session) == []
    with freeze_time(datetime.fromtimestamp(EXPIRY + 30, tz=UTC)), db.session() as session:
        assert pauses.lift_expired(session) == [subscribed]
        assert pauses.lift_expired(session) == []
    with db.sessionmaker() as session:
        onboarding = session.get_one(Onboarding, subscribed)
        alert = session.scalars(select(Alert).where(Alert.kind == "restricted_sends")).one()
        assert onboarding.restrictions is None
        assert onboarding.transitions[-1].cause == (
            "ACCOUNT_RESTRICTION lifted: RESTRICTED_BIZ_INITIATED_MESSAGING expired"
        )
        assert onboarding.transitions[-1].at == datetime.fromtimestamp(EXPIRY, tz=UTC)
        assert alert.acknowledged_at is not None


def test_beat_keeps_restrictions_not_yet_expired(db: Database, subscribed: int) -> None:
    """Of two restrictions, the one still in force stays, and so does the alert."""
    restrict(
        db,
        subscribed,
        Restriction("RESTRICTED_BIZ_INITIATED_MESSAGING", EXPIRY),
        Restriction("RESTRICTED_CUSTOMER_INITIATED_MESSAGING", EXPIRY + 3600),
    )
    with freeze_time(datetime.fromtimestamp(EXPIRY + 30, tz=UTC)), db.session() as session:
        assert pauses.lift_expired(session) == [subscribed]
    with db.sessionmaker() as session:
        onboarding = session.get_one(Onboarding, subscribed)
        alert = session.scalars(select(Alert).where(Alert.kind == "restricted_sends")).one()
        assert onboarding.restrictions == [
            {"type": "RESTRICTED_CUSTOMER_INITIATED_MESSAGING", "expires_at": EXPIRY + 3600}
        ]
        assert alert.acknowledged_at is None


def test_lift_only_ends_a_pause_set_by_the_named_events(db: Database, subscribed: int) -> None:
    """A reinstatement does not lift a pause a violation set."""
    with db.session() as session:
        onboarding = session.get_one(Onboarding, subscribed)
        pauses.pause(session, onboarding, "ACCOUNT_VIOLATION", "violation_type=SCAM", at=SET_AT)
        lifted = pauses.lift(
            session, onboarding, "reinstated", at=SET_AT, paused_by=frozenset({"DISABLED_UPDATE"})
        )
        assert lifted is False
        assert onboarding.paused_by == "ACCOUNT_VIOLATION"


def test_pauses_by_different_events_must_each_be_lifted(db: Database, subscribed: int) -> None:
    """A ban lifted while a violation also paused the account leaves sends paused by the
    violation, and closes only the ban's alert."""
    with db.session() as session:
        onboarding = session.get_one(Onboarding, subscribed)
        pauses.pause(session, onboarding, "ACCOUNT_VIOLATION", "violation_type=SCAM", at=SET_AT)
        pauses.pause(session, onboarding, "DISABLED_UPDATE", "the WABA was disabled", at=SET_AT)
        reinstated = frozenset({"DISABLED_UPDATE"})
        assert pauses.lift(session, onboarding, "reinstated", at=SET_AT, paused_by=reinstated)
        assert onboarding.paused_by == "ACCOUNT_VIOLATION"
        assert pauses.stopped(onboarding, "text", SET_AT) is not None
        assert "stay paused by ACCOUNT_VIOLATION" in onboarding.transitions[-1].cause
        session.flush()
        open_kinds = set(
            session.scalars(
                select(Alert.kind).where(
                    Alert.onboarding_id == subscribed, Alert.acknowledged_at.is_(None)
                )
            )
        )
    assert open_kinds == {"paused_account_violation"}


def test_restriction_items_without_a_type_are_refused_with_the_reason() -> None:
    """A restriction_info item with no restriction_type is refused and said why; the others are
    read, a quoted expiration included."""
    value = {
        "event": "ACCOUNT_RESTRICTION",
        "restriction_info": [
            {"expiration": 1_800_000_000},
            {"restriction_type": "RESTRICTED_UTILITY_TEMPLATES", "expiration": "1800000000"},
        ],
    }
    found, refused = pauses.parse_restrictions(value)
    assert found == [Restriction("RESTRICTED_UTILITY_TEMPLATES", 1_800_000_000)]
    assert refused[0].startswith("restriction_info item without a restriction_type")
