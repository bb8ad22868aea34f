"""Signup hand-off: code exchange inside 30 s, number resolution, eligibility, subscribe."""

from __future__ import annotations

from datetime import timedelta

import pytest
from freezegun import freeze_time
from sqlalchemy import select

from config import Settings
from config.celery import celery_config
from models import Alert, Database, Onboarding, OnboardingState
from models.crypto import TokenCipher
from onboarding.meta.graph import GraphClient
from onboarding.outcomes import Next, RetryLater
from onboarding.runtime import Runtime
from onboarding.sandbox import Faults, NumberSpec, Sandbox
from onboarding.signup import handoff
from onboarding.signup.intake import SignupBody, accept_signup
from tests.conftest import APP_ID, APP_SECRET, make_settings
from tests.onboarding.helpers import signup

S = OnboardingState


def _exchange(
    db: Database, graph: GraphClient, settings: Settings, cipher: TokenCipher, onboarding_id: int
) -> Next | None:
    with db.session() as session:
        return handoff.exchange_code(
            session, graph, settings=settings, cipher=cipher, onboarding_id=onboarding_id
        )


def _connect(
    db: Database, graph: GraphClient, settings: Settings, cipher: TokenCipher, onboarding_id: int
) -> Next | None:
    with db.session() as session:
        return handoff.connect(
            session, graph, settings=settings, cipher=cipher, onboarding_id=onboarding_id
        )


def test_exchange_stores_the_token_encrypted_and_forgets_the_code(
    db: Database, sandbox: Sandbox, graph: GraphClient, settings: Settings, cipher: TokenCipher
) -> None:
    """A fresh code is exchanged; the token is stored encrypted and the code is wiped."""
    with db.session() as session:
        onboarding = signup(session, sandbox, settings, cipher)
    assert _exchange(db, graph, settings, cipher, onboarding.id) is Next.CONNECT
    with db.session() as session:
        row = session.get_one(Onboarding, onboarding.id)
        assert row.state == S.TOKEN_EXCHANGED
        assert row.code_ciphertext is None
        token = cipher.decrypt(row.token_ciphertext or b"")
        assert token.startswith("EAAG")
        assert token.encode() not in (row.token_ciphertext or b"")


def test_code_older_than_30_seconds_ends_code_expired_without_calling_meta(
    db: Database, sandbox: Sandbox, graph: GraphClient, settings: Settings, cipher: TokenCipher
) -> None:
    """A code whose 30 s have passed is not sent: the onboarding ends code_expired."""
    with freeze_time("2026-11-26 10:00:00") as clock:
        with db.session() as session:
            onboarding = signup(session, sandbox, settings, cipher)
        clock.tick(timedelta(seconds=31))
        assert _exchange(db, graph, settings, cipher, onboarding.id) is None
    with db.session() as session:
        row = session.get_one(Onboarding, onboarding.id)
        assert row.state == S.CODE_EXPIRED
        assert "30 s" in (row.last_error or "")
        assert session.scalar(select(Alert.kind).where(Alert.onboarding_id == row.id)) == (
            "code_expired"
        )
    assert sandbox.call_counts().get("oauth", 0) == 0


def test_code_refused_by_meta_ends_code_expired(
    db: Database, sandbox: Sandbox, graph: GraphClient, settings: Settings, cipher: TokenCipher
) -> None:
    """A code Meta says was already used ends code_expired with Meta's reason."""
    with db.session() as session:
        onboarding = signup(session, sandbox, settings, cipher)
        code = cipher.decrypt(onboarding.code_ciphertext or b"")
    graph.exchange_code(code)  # someone else used it first
    _exchange(db, graph, settings, cipher, onboarding.id)
    with db.session() as session:
        row = session.get_one(Onboarding, onboarding.id)
        assert row.state == S.CODE_EXPIRED
        assert "has been used" in (row.last_error or "")


def test_transient_exchange_failure_asks_for_a_quick_retry(
    db: Database, sandbox: Sandbox, settings: Settings, cipher: TokenCipher
) -> None:
    """While the code lives, a Meta outage asks for a retry within the code's life."""
    sandbox.set_faults(Faults.only("oauth", error_5xx=1.0, seed=1))
    graph = GraphClient(
        app_id=APP_ID, app_secret=APP_SECRET, transport=sandbox.mock_transport(), max_wait=0.001
    )
    with db.session() as session:
        onboarding = signup(session, sandbox, settings, cipher)
    with pytest.raises(RetryLater) as info:
        _exchange(db, graph, settings, cipher, onboarding.id)
    assert 0 < info.value.countdown < 30
    with db.session() as session:
        row = session.get_one(Onboarding, onboarding.id)
        assert row.state == S.RECEIVED
        assert row.lease_until is None


def test_connect_resolves_the_business_app_number_from_the_waba(
    db: Database, sandbox: Sandbox, graph: GraphClient, settings: Settings, cipher: TokenCipher
) -> None:
    """With only waba_id in the session, the number with is_on_biz_app true is chosen."""
    numbers = [
        NumberSpec(display_phone_number="+1 650 555 0001", is_on_biz_app=False),
        NumberSpec(display_phone_number="+1 650 555 1234", verified_name="Lucky Shrub"),
    ]
    with db.session() as session:
        onboarding = signup(session, sandbox, settings, cipher, numbers=numbers)
    _exchange(db, graph, settings, cipher, onboarding.id)
    assert _connect(db, graph, settings, cipher, onboarding.id) is Next.SYNC
    with db.session() as session:
        row = session.get_one(Onboarding, onboarding.id)
        assert row.state == S.SUBSCRIBED
        assert row.display_phone_number is not None
        assert row.display_phone_number.endswith("555-1234")
        assert row.is_on_biz_app is True
        assert row.platform_type == "CLOUD_API"
        assert row.region == "US"
        assert row.verified_name == "Lucky Shrub"
        assert sandbox.is_subscribed(row.waba_id)
    assert sandbox.stats()["calls"].get("register", 0) == 0


def test_connect_reads_is_on_biz_app_from_the_node_when_the_list_omits_it(
    db: Database, settings: Settings, cipher: TokenCipher
) -> None:
    """When the WABA listing leaves is_on_biz_app off, each number node is asked."""
    sandbox = Sandbox(app_id=APP_ID, app_secret=APP_SECRET, list_includes_biz_app_fields=False)
    graph = GraphClient(app_id=APP_ID, app_secret=APP_SECRET, transport=sandbox.mock_transport())
    with db.session() as session:
        onboarding = signup(session, sandbox, settings, cipher, numbers=2)
    _exchange(db, graph, settings, cipher, onboarding.id)
    _connect(db, graph, settings, cipher, onboarding.id)
    with db.session() as session:
        row = session.get_one(Onboarding, onboarding.id)
        # Both numbers are on the app: the signup must say which one.
        assert row.state == S.FAILED
        assert "several Business app numbers" in (row.last_error or "")


def test_blocked_region_ends_ineligible_under_the_2025_preset(
    db: Database, sandbox: Sandbox, graph: GraphClient, cipher: TokenCipher, settings: Settings
) -> None:
    """Under policy meta-2025-09-13 a German number is ineligible and never subscribed."""
    strict = make_settings(
        database_url=settings.database_url,
        token_keys=settings.token_keys,
        eligibility_policy="meta-2025-09-13",
    )
    with db.session() as session:
        onboarding = signup(session, sandbox, strict, cipher, numbers=["+49 151 12345678"])
    _exchange(db, graph, strict, cipher, onboarding.id)
    assert _connect(db, graph, strict, cipher, onboarding.id) is None
    with db.session() as session:
        row = session.get_one(Onboarding, onboarding.id)
        assert row.state == S.INELIGIBLE
        assert row.region == "DE"
        assert not sandbox.is_subscribed(row.waba_id)


def test_default_policy_allows_every_region(
    db: Database, sandbox: Sandbox, graph: GraphClient, settings: Settings, cipher: TokenCipher
) -> None:
    """Meta's current docs list no unsupported country, so a German number goes ahead."""
    with db.session() as session:
        onboarding = signup(session, sandbox, settings, cipher, numbers=["+49 151 12345678"])
    _exchange(db, graph, settings, cipher, onboarding.id)
    assert _connect(db, graph, settings, cipher, onboarding.id) is Next.SYNC


def test_number_not_on_the_business_app_is_ineligible(
    db: Database, sandbox: Sandbox, graph: GraphClient, settings: Settings, cipher: TokenCipher
) -> None:
    """A FINISH for a Cloud-API-only number is not a coexistence onboarding."""
    business = sandbox.add_business("API only", 1, coexistence=False)
    result = sandbox.complete_signup(business.waba_id, coexistence=False)
    with db.session() as session:
        outcome = accept_signup(
            session,
            SignupBody.model_validate({"code": result.code, "session": dict(result.session)}),
            settings=settings,
            cipher=cipher,
        )
    assert outcome.onboarding_id is not None
    _exchange(db, graph, settings, cipher, outcome.onboarding_id)
    _connect(db, graph, settings, cipher, outcome.onboarding_id)
    with db.session() as session:
        row = session.get_one(Onboarding, outcome.onboarding_id)
        assert row.state == S.INELIGIBLE
        assert "is_on_biz_app false" in (row.last_error or "")


def test_dead_token_fails_connect_for_an_operator(
    db: Database, settings: Settings, cipher: TokenCipher, sandbox: Sandbox, graph: GraphClient
) -> None:
    """A token Meta rejects (190) parks the onboarding in failed with the step to resume."""
    with db.session() as session:
        onboarding = signup(session, sandbox, settings, cipher, include_phone_number_id=True)
    _exchange(db, graph, settings, cipher, onboarding.id)
    assert onboarding.business_id is not None
    assert sandbox.revoke_tokens(onboarding.business_id) == 1
    _connect(db, graph, settings, cipher, onboarding.id)
    with db.session() as session:
        row = session.get_one(Onboarding, onboarding.id)
        assert row.state == S.FAILED
        assert row.failed_step == "connect"
        assert "190" in (row.last_error or "")


def test_signups_whose_exchange_never_started_are_resumed_while_their_code_lives(
    db: Database, sandbox: Sandbox, settings: Settings, cipher: TokenCipher
) -> None:
    """A received signup is due again after 5 s without an exchange, and no longer once it died."""
    with freeze_time("2026-11-26 10:00:00") as clock:
        with db.session() as session:
            lost = signup(session, sandbox, settings, cipher).id
        with db.session() as session:
            assert handoff.unexchanged(session, settings=settings) == []  # still on its way
        clock.tick(timedelta(seconds=handoff.RESUME_AFTER_SECONDS))
        with db.session() as session:
            assert handoff.unexchanged(session, settings=settings) == [lost]
        clock.tick(timedelta(seconds=settings.code_ttl_seconds))
        with db.session() as session:
            assert handoff.unexchanged(session, settings=settings) == []  # the sweeper expires it


def test_a_signup_being_exchanged_or_exchanged_is_not_resumed(
    db: Database, sandbox: Sandbox, graph: GraphClient, settings: Settings, cipher: TokenCipher
) -> None:
    """Neither an exchange holding its lease nor a finished one is enqueued again."""
    with freeze_time("2026-11-26 10:00:00") as clock:
        with db.session() as session:
            busy = signup(session, sandbox, settings, cipher)
            done = signup(session, sandbox, settings, cipher)
        assert _exchange(db, graph, settings, cipher, done.id) is Next.CONNECT
        with db.session() as session:
            row = session.get_one(Onboarding, busy.id)
            row.lease_until = row.signup_completed_at + timedelta(seconds=20)
        clock.tick(timedelta(seconds=handoff.RESUME_AFTER_SECONDS + 1))
        with db.session() as session:
            assert handoff.unexchanged(session, settings=settings) == []


def test_beat_resumes_unexchanged_signups_every_few_seconds() -> None:
    """The resume entry runs far more often than the code's 30 s life, and never piles up."""
    entry = celery_config(make_settings())["beat_schedule"]["resume-signups"]
    assert entry["task"] == "coexist.signup.resume"
    assert entry["schedule"] <= 5.0
    assert entry["options"]["expires"] <= entry["schedule"]


def test_the_resume_task_exchanges_a_signup_whose_message_was_lost(
    rt: Runtime, sandbox: Sandbox
) -> None:
    """A signup stored without its exchange message is exchanged by beat's resume task."""
    from tasks.signup import resume_exchanges  # noqa: PLC0415 - registers the task on import

    with freeze_time("2026-11-26 10:00:00") as clock:
        with rt.db.session() as session:
            onboarding_id = signup(session, sandbox, rt.settings, rt.cipher).id
        clock.tick(timedelta(seconds=handoff.RESUME_AFTER_SECONDS + 1))
        resume_exchanges.delay()
    with rt.db.sessionmaker() as session:
        assert session.get_one(Onboarding, onboarding_id).state != S.RECEIVED
