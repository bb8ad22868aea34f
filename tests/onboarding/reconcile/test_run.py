"""Reconciliation: each drift is found, recorded and alerted; uncertain answers change nothing."""

from __future__ import annotations

from datetime import timedelta

import httpx
from freezegun import freeze_time
from sqlalchemy import select

from config import Settings
from models import Alert, Database, Onboarding, OnboardingState, utcnow
from models.crypto import TokenCipher
from onboarding import reconcile
from onboarding.meta.graph import GraphClient
from onboarding.outcomes import Next
from onboarding.reconcile import Verdict
from onboarding.sandbox import Faults, Sandbox
from onboarding.signup import handoff
from tests.conftest import APP_ID, APP_SECRET, make_settings
from tests.onboarding.helpers import signup


def _run(
    db: Database, graph: GraphClient, settings: Settings, cipher: TokenCipher, onboarding_id: int
) -> reconcile.Report:
    with db.session() as session:
        return reconcile.reconcile(
            session, graph, settings=settings, cipher=cipher, onboarding_id=onboarding_id
        )


def _verdicts(report: reconcile.Report) -> dict[str, Verdict]:
    return {f.check: f.verdict for f in report.findings}


def _alerts(db: Database, onboarding_id: int) -> set[str]:
    with db.session() as session:
        return set(session.scalars(select(Alert.kind).where(Alert.onboarding_id == onboarding_id)))


def _row(db: Database, onboarding_id: int) -> tuple[str, bool | None, str | None, int]:
    with db.session() as session:
        row = session.get_one(Onboarding, onboarding_id)
        return row.state, row.is_on_biz_app, row.platform_type, len(row.transitions)


def _waba(db: Database, onboarding_id: int) -> tuple[str, str]:
    with db.session() as session:
        row = session.get_one(Onboarding, onboarding_id)
        return row.waba_id, row.phone_number_id or ""


def test_nothing_drifted_records_nothing(
    db: Database, graph: GraphClient, settings: Settings, cipher: TokenCipher, subscribed: int
) -> None:
    """All three reads agree with what is stored: no note, no alert, reconciled_at set."""
    before = _row(db, subscribed)

    report = _run(db, graph, settings, cipher, subscribed)

    assert _verdicts(report) == dict.fromkeys(("token", "number", "subscription"), Verdict.OK)
    assert _row(db, subscribed) == before
    assert _alerts(db, subscribed) == set()
    with db.session() as session:
        assert session.get_one(Onboarding, subscribed).reconciled_at is not None


def test_number_that_left_the_business_app_is_recorded_and_alerted(
    db: Database,
    sandbox: Sandbox,
    graph: GraphClient,
    settings: Settings,
    cipher: TokenCipher,
    subscribed: int,
) -> None:
    """is_on_biz_app false from Meta updates the number, notes it and alerts."""
    _, number_id = _waba(db, subscribed)
    sandbox.set_number_platform(number_id, is_on_biz_app=False, platform_type="CLOUD_API")
    state, _, _, notes = _row(db, subscribed)

    report = _run(db, graph, settings, cipher, subscribed)

    assert _verdicts(report)["number"] is Verdict.DRIFT
    assert _row(db, subscribed) == (state, False, "CLOUD_API", notes + 1)
    assert _alerts(db, subscribed) == {"number_left_coexistence"}


def test_platform_type_change_alone_is_noted_without_alert(
    db: Database,
    sandbox: Sandbox,
    graph: GraphClient,
    settings: Settings,
    cipher: TokenCipher,
    subscribed: int,
) -> None:
    """A new platform_type while still on the app is noted on the timeline, not alerted."""
    _, number_id = _waba(db, subscribed)
    sandbox.set_number_platform(number_id, platform_type="ON_PREMISE")

    report = _run(db, graph, settings, cipher, subscribed)

    assert _verdicts(report)["number"] is Verdict.DRIFT
    assert _row(db, subscribed)[2] == "ON_PREMISE"
    assert _alerts(db, subscribed) == set()


def test_subscription_gone_is_alerted(
    db: Database,
    sandbox: Sandbox,
    graph: GraphClient,
    settings: Settings,
    cipher: TokenCipher,
    subscribed: int,
) -> None:
    """Our app missing from subscribed_apps raises subscription_gone."""
    waba_id, _ = _waba(db, subscribed)
    sandbox.unsubscribe(waba_id)

    report = _run(db, graph, settings, cipher, subscribed)

    assert _verdicts(report)["subscription"] is Verdict.DRIFT
    assert _alerts(db, subscribed) == {"subscription_gone"}


def test_dead_token_is_alerted_and_other_reads_are_unknown(
    db: Database,
    sandbox: Sandbox,
    graph: GraphClient,
    settings: Settings,
    cipher: TokenCipher,
    subscribed: int,
) -> None:
    """debug_token is_valid false raises token_dead; the refused reads change nothing."""
    waba_id, _ = _waba(db, subscribed)
    sandbox.revoke_tokens(sandbox.owner_of(waba_id))
    _, on_app, platform, _ = _row(db, subscribed)

    report = _run(db, graph, settings, cipher, subscribed)

    assert _verdicts(report) == {
        "token": Verdict.DRIFT,
        "number": Verdict.UNKNOWN,
        "subscription": Verdict.UNKNOWN,
    }
    assert _alerts(db, subscribed) == {"token_dead"}
    assert _row(db, subscribed)[1:3] == (on_app, platform)


def test_meta_5xx_leaves_everything_unchanged(
    db: Database,
    sandbox: Sandbox,
    graph: GraphClient,
    settings: Settings,
    cipher: TokenCipher,
    subscribed: int,
) -> None:
    """With every read answered 5xx, all three are unknown and nothing is written or alerted."""
    waba_id, number_id = _waba(db, subscribed)
    sandbox.unsubscribe(waba_id)
    sandbox.set_number_platform(number_id, is_on_biz_app=False)
    sandbox.set_faults(Faults.only("*", error_5xx=1.0, seed=1))
    before = _row(db, subscribed)

    report = _run(db, graph, settings, cipher, subscribed)

    assert set(_verdicts(report).values()) == {Verdict.UNKNOWN}
    assert _row(db, subscribed) == before
    assert _alerts(db, subscribed) == set()


def test_timeouts_are_unknown_not_disconnected(
    db: Database, settings: Settings, cipher: TokenCipher, subscribed: int
) -> None:
    """A read that times out is reported unknown; the onboarding is left as it was."""

    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    before = _row(db, subscribed)
    with GraphClient(
        app_id=APP_ID, app_secret=APP_SECRET, transport=httpx.MockTransport(timeout), max_wait=0.001
    ) as graph:
        report = _run(db, graph, settings, cipher, subscribed)

    assert set(_verdicts(report).values()) == {Verdict.UNKNOWN}
    assert _row(db, subscribed) == before
    assert _alerts(db, subscribed) == set()


def test_override_other_than_the_configured_one_is_alerted(
    db: Database,
    sandbox: Sandbox,
    graph: GraphClient,
    settings: Settings,
    cipher: TokenCipher,
    subscribed: int,
) -> None:
    """With COEX_WEBHOOK_OVERRIDE_URL set, a WABA pointing elsewhere is a drift with an alert."""
    waba_id, _ = _waba(db, subscribed)
    sandbox.set_webhook_override(waba_id, "https://elsewhere.example/wa", "other-vt")
    ours = make_settings(
        database_url=settings.database_url,
        webhook_override_url="https://coexist.example/webhooks/meta",
        webhook_override_verify_token="coexist-vt-123",
    )

    report = _run(db, graph, ours, cipher, subscribed)

    assert _verdicts(report)["subscription"] is Verdict.DRIFT
    assert _alerts(db, subscribed) == {"webhook_override_changed"}


def test_inactive_onboarding_is_skipped_without_calling_meta(
    db: Database, sandbox: Sandbox, graph: GraphClient, settings: Settings, cipher: TokenCipher
) -> None:
    """An onboarding not yet connected is skipped: no Graph call is made."""
    with db.session() as session:
        onboarding_id = signup(session, sandbox, settings, cipher).id
    calls = sum(sandbox.call_counts().values())

    report = _run(db, graph, settings, cipher, onboarding_id)

    assert report.skipped == "not active (received)"
    assert sum(sandbox.call_counts().values()) == calls


def _connected(
    db: Database, sandbox: Sandbox, graph: GraphClient, settings: Settings, cipher: TokenCipher
) -> int:
    with db.session() as session:
        onboarding = signup(session, sandbox, settings, cipher)
        kw = {"settings": settings, "cipher": cipher, "onboarding_id": onboarding.id}
        assert handoff.exchange_code(session, graph, **kw) is Next.CONNECT
        assert handoff.connect(session, graph, **kw) is Next.SYNC
        return onboarding.id


def test_batch_is_bounded_and_one_failure_does_not_stop_the_others(
    db: Database, sandbox: Sandbox, graph: GraphClient, cipher: TokenCipher, settings: Settings
) -> None:
    """A batch handles at most reconcile_batch_size ids; an undecryptable token fails alone."""
    small = make_settings(database_url=settings.database_url, reconcile_batch_size=3)
    ids = [_connected(db, sandbox, graph, small, cipher) for _ in range(4)]
    with db.session() as session:
        session.get_one(Onboarding, ids[0]).token_ciphertext = b"not a fernet token"

    with db.session() as session:
        reports = reconcile.reconcile_batch(
            session, graph, settings=small, cipher=cipher, onboarding_ids=ids
        )

    assert [r.onboarding_id for r in reports] == ids[:3]
    assert reports[0].error is not None
    assert all(r.error is None and not r.drifted for r in reports[1:])
    with db.session() as session:
        assert session.get_one(Onboarding, ids[2]).reconciled_at is not None
        assert session.get_one(Onboarding, ids[3]).reconciled_at is None


def test_due_picks_active_unreconciled_first_within_the_run_limit(
    db: Database, sandbox: Sandbox, graph: GraphClient, cipher: TokenCipher, settings: Settings
) -> None:
    """due() skips the freshly reconciled, puts never-reconciled first, and stops at the limit."""
    limited = make_settings(database_url=settings.database_url, reconcile_max_per_run=2)
    with freeze_time(utcnow()) as clock:
        ids = [_connected(db, sandbox, graph, limited, cipher) for _ in range(4)]
        with db.session() as session:
            session.get_one(Onboarding, ids[0]).reconciled_at = utcnow() - timedelta(hours=25)
            session.get_one(Onboarding, ids[1]).reconciled_at = utcnow() - timedelta(hours=1)
            session.get_one(Onboarding, ids[3]).state = OnboardingState.DISCONNECTED.value
        clock.tick(timedelta(seconds=1))
        with db.session() as session:
            assert reconcile.due(session, settings=limited) == [ids[2], ids[0]]
            assert reconcile.due(session, settings=settings) == [ids[2], ids[0]]
