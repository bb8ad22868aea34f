"""POST /signup's domain: which session events onboard, which are recorded, and how."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from config import Settings
from models import AbandonedSignup, Database, Onboarding, RecordedFinish
from models.crypto import TokenCipher
from onboarding.signup.intake import SignupBody, SignupOutcome, accept_signup, other_waba_ids
from tests.onboarding.signup.sessions import (
    BUSINESS,
    ID_LISTS,
    NUMBER,
    WABA,
    all_ids,
    v3,
    v4,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
OTHER_FINISHES = ("FINISH_ONLY_WABA", "FINISH_OBO_MIGRATION", "FINISH_GRANT_ONLY_API_ACCESS")


def accept(
    db: Database,
    settings: Settings,
    cipher: TokenCipher,
    session_message: dict[str, Any],
    code: str | None = "AQBx-code",
) -> SignupOutcome:
    body: dict[str, Any] = {"session": session_message}
    if code is not None:
        body["code"] = code
    with db.sessionmaker() as session:
        return accept_signup(
            session, SignupBody.model_validate(body), settings=settings, cipher=cipher, now=NOW
        )


def rows(db: Database, model: type[Any]) -> list[Any]:
    with db.sessionmaker() as session:
        return list(session.scalars(select(model).order_by(model.id)))


def count(db: Database, model: type[Any]) -> int:
    with db.sessionmaker() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


@pytest.mark.parametrize(
    "message",
    [
        pytest.param(v4("FINISH", **all_ids()), id="cloud-api-v4"),
        pytest.param(v3("FINISH", **all_ids()), id="cloud-api-v3"),
        pytest.param(v3("FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING", waba_id=WABA), id="coex-v3"),
        pytest.param(v4("FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING", waba_id=WABA), id="coex-v4"),
        pytest.param(
            v4("FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING", **all_ids()), id="coex-v4-all-ids"
        ),
    ],
)
def test_onboarding_finishes_start_an_onboarding_with_or_without_version(
    db: Database, settings: Settings, cipher: TokenCipher, message: dict[str, Any]
) -> None:
    """FINISH and the coexistence finish start an onboarding in v3's form and in v4's."""
    outcome = accept(db, settings, cipher, message)

    assert outcome.created is True
    assert outcome.recorded is None
    [onboarding] = rows(db, Onboarding)
    assert (onboarding.id, onboarding.signup_event, onboarding.waba_id) == (
        outcome.onboarding_id,
        message["event"],
        WABA,
    )
    assert onboarding.session_data == message
    assert count(db, RecordedFinish) == count(db, AbandonedSignup) == 0


@pytest.mark.parametrize("event", OTHER_FINISHES)
def test_other_finish_is_recorded_with_every_id_and_starts_nothing(
    db: Database, settings: Settings, cipher: TokenCipher, event: str
) -> None:
    """A v4 finish of another flow is recorded with its ids and id lists; no onboarding."""
    message = v4(event, **all_ids(**ID_LISTS))

    outcome = accept(db, settings, cipher, message)

    assert outcome.onboarding_id is None
    assert outcome.recorded is not None
    assert (outcome.recorded.kind, outcome.created) == ("not_onboarded", True)
    [row] = rows(db, RecordedFinish)
    assert row.id == outcome.recorded.row_id
    assert (row.event, row.waba_id, row.phone_number_id, row.business_id) == (
        event,
        WABA,
        NUMBER,
        BUSINESS,
    )
    assert row.asset_ids == ID_LISTS
    assert row.received_at == NOW
    assert row.session_data == message
    assert count(db, Onboarding) == 0


def test_other_finish_in_v3_form_is_recorded(
    db: Database, settings: Settings, cipher: TokenCipher
) -> None:
    """FINISH_ONLY_WABA with version 3 (no number, no code) is recorded like v4's."""
    outcome = accept(
        db, settings, cipher, v3("FINISH_ONLY_WABA", waba_id=WABA, business_id=BUSINESS), None
    )

    assert outcome.recorded is not None
    [row] = rows(db, RecordedFinish)
    assert (row.event, row.waba_id, row.phone_number_id, row.asset_ids) == (
        "FINISH_ONLY_WABA",
        WABA,
        None,
        {},
    )
    assert row.session_data["version"] == 3


def test_same_other_finish_twice_is_recorded_once(
    db: Database, settings: Settings, cipher: TokenCipher
) -> None:
    """The same FINISH_ONLY_WABA body posted twice is one row; the second post is not created."""
    message = v4("FINISH_ONLY_WABA", waba_id=WABA, business_id=BUSINESS)

    first = accept(db, settings, cipher, message)
    second = accept(db, settings, cipher, message)

    assert first.recorded is not None
    assert second.recorded is not None
    assert second.recorded.row_id == first.recorded.row_id
    assert (first.created, second.created) == (True, False)
    assert count(db, RecordedFinish) == 1


def test_other_finishes_with_different_codes_are_two_records(
    db: Database, settings: Settings, cipher: TokenCipher
) -> None:
    """Two signups of the same WABA (two codes) are two records."""
    message = v4("FINISH_ONLY_WABA", waba_id=WABA, business_id=BUSINESS)

    accept(db, settings, cipher, message, code="AQ-first")
    accept(db, settings, cipher, message, code="AQ-second")

    assert count(db, RecordedFinish) == 2


def test_error_event_is_kept_as_abandoned_with_its_error(
    db: Database, settings: Settings, cipher: TokenCipher
) -> None:
    """An ERROR session is kept as an abandoned signup with error code, message and session id."""
    message = v4(
        "ERROR",
        error_message="An unexpected error occurred",
        error_code="524126",
        session_id="f34b51dab5e0498",
        timestamp="1746041036",
    )

    outcome = accept(db, settings, cipher, message, code=None)

    assert outcome.recorded is not None
    assert outcome.recorded.kind == "abandoned"
    [row] = rows(db, AbandonedSignup)
    assert (row.event, row.error_code, row.session_id) == ("ERROR", "524126", "f34b51dab5e0498")
    assert row.reported_at == datetime.fromtimestamp(1746041036, tz=UTC)
    assert count(db, Onboarding) == 0


def test_same_reported_error_twice_is_recorded_once(
    db: Database, settings: Settings, cipher: TokenCipher
) -> None:
    """A user-reported CANCEL (Meta's example, with a session id) posted twice is one row."""
    message = v4(
        "CANCEL",
        error_message="Your verified name violates WhatsApp guidelines...",
        error_code="524126",
        session_id="f34b51dab5e0498",
        timestamp="1746041036",
    )

    first = accept(db, settings, cipher, message, code=None)
    second = accept(db, settings, cipher, message, code=None)

    assert first.recorded is not None
    assert second.recorded is not None
    assert second.recorded.row_id == first.recorded.row_id
    assert second.created is False
    assert count(db, AbandonedSignup) == 1


def test_bare_cancels_are_each_recorded(
    db: Database, settings: Settings, cipher: TokenCipher
) -> None:
    """Two abandonments at the same screen (Meta's v3 example) cannot be told apart: two rows."""
    message = v3("CANCEL", current_step="PHONE_NUMBER_SETUP")

    accept(db, settings, cipher, message, code=None)
    accept(db, settings, cipher, message, code=None)

    assert [(r.event, r.current_step) for r in rows(db, AbandonedSignup)] == [
        ("CANCEL", "PHONE_NUMBER_SETUP"),
        ("CANCEL", "PHONE_NUMBER_SETUP"),
    ]


def test_unknown_keys_are_kept_in_the_stored_session(
    db: Database, settings: Settings, cipher: TokenCipher
) -> None:
    """Keys Meta adds later, in the message and in its data, are stored as posted."""
    message = v4("FINISH_GRANT_ONLY_API_ACCESS", **all_ids(new_asset_ids=["42"]))
    message["flow_variant"] = {"name": "lite", "rank": 2}

    accept(db, settings, cipher, message)

    [row] = rows(db, RecordedFinish)
    assert row.session_data["flow_variant"] == {"name": "lite", "rank": 2}
    assert row.session_data["data"]["new_asset_ids"] == ["42"]


def test_onboarding_keeps_the_session_as_posted(
    db: Database, settings: Settings, cipher: TokenCipher
) -> None:
    """A finish whose ids came as numbers is stored as posted, its unknown keys included."""
    message = v4("FINISH", phone_number_id=int(NUMBER), waba_id=int(WABA), surprise=True)

    accept(db, settings, cipher, message)

    [onboarding] = rows(db, Onboarding)
    assert onboarding.waba_id == WABA
    assert onboarding.session_data == message


def test_multi_waba_coexistence_finish_onboards_the_named_waba(
    db: Database, settings: Settings, cipher: TokenCipher
) -> None:
    """A coexistence finish listing several waba_ids onboards waba_id and keeps the others."""
    message = v4("FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING", **all_ids(**ID_LISTS))

    accept(db, settings, cipher, message)

    [onboarding] = rows(db, Onboarding)
    assert onboarding.waba_id == WABA
    assert other_waba_ids(onboarding) == ["524126980791430"]
    assert count(db, RecordedFinish) == 0


def test_single_waba_finish_has_no_other_wabas(
    db: Database, settings: Settings, cipher: TokenCipher
) -> None:
    """A finish without waba_ids, or listing only its own WABA, has no other WABAs."""
    accept(db, settings, cipher, v4("FINISH", **all_ids(waba_ids=[WABA])), code="AQ-1")
    accept(db, settings, cipher, v4("FINISH", **all_ids()), code="AQ-2")

    assert [other_waba_ids(o) for o in rows(db, Onboarding)] == [[], []]
