"""When an onboarding ends, coexist takes back the WABA override it set, and only that one."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from config import Settings
from models import Alert, Database, Onboarding, OnboardingState
from models.crypto import TokenCipher
from onboarding.meta.graph import GraphClient
from onboarding.outcomes import Next
from onboarding.rights import erase
from onboarding.sandbox import Sandbox
from onboarding.sandbox.faults import Faults
from onboarding.signup import handoff, routing
from tests.conftest import make_settings
from tests.onboarding.helpers import signup

OURS = ("https://coexist.example/webhooks/meta", "coexist-verify-123")
PROVIDER_URL = "https://provider.example/whatsapp"


def connected(
    db: Database, sandbox: Sandbox, graph: GraphClient, settings: Settings, cipher: TokenCipher
) -> int:
    """An onboarding connected with coexist's override, then disconnected."""
    ours = make_settings(
        database_url=settings.database_url,
        webhook_override_url=OURS[0],
        webhook_override_verify_token=OURS[1],
    )
    with db.session() as session:
        onboarding = signup(session, sandbox, ours, cipher)
        kw = {"settings": ours, "cipher": cipher, "onboarding_id": onboarding.id}
        assert handoff.exchange_code(session, graph, **kw) is Next.CONNECT
        assert handoff.connect(session, graph, **kw) is Next.SYNC
        onboarding = session.get_one(Onboarding, onboarding.id)
        assert onboarding.webhook_override_set == OURS[0]
        onboarding.state = OnboardingState.DISCONNECTED.value
        session.commit()
        return onboarding.id


def waba_of(db: Database, onboarding_id: int) -> str:
    with db.sessionmaker() as session:
        return session.get_one(Onboarding, onboarding_id).waba_id


def test_subscribing_without_an_override_records_none(
    db: Database, sandbox: Sandbox, graph: GraphClient, settings: Settings, cipher: TokenCipher
) -> None:
    """An empty-body subscription sets no override, so none is ever taken back."""
    with db.session() as session:
        onboarding = signup(session, sandbox, settings, cipher)
        kw = {"settings": settings, "cipher": cipher, "onboarding_id": onboarding.id}
        handoff.exchange_code(session, graph, **kw)
        handoff.connect(session, graph, **kw)
        assert session.get_one(Onboarding, onboarding.id).webhook_override_set is None


def test_the_override_coexist_set_is_removed_when_the_onboarding_is_disconnected(
    db: Database, sandbox: Sandbox, graph: GraphClient, settings: Settings, cipher: TokenCipher
) -> None:
    """An empty-body POST takes the override back; the app stays subscribed."""
    onboarding_id = connected(db, sandbox, graph, settings, cipher)
    with db.session() as session:
        done = routing.release_overrides(session, graph, cipher)
    assert "removed" in done[onboarding_id]
    waba_id = waba_of(db, onboarding_id)
    assert sandbox.webhook_override(waba_id) is None
    assert sandbox.is_subscribed(waba_id)
    with db.sessionmaker() as session:
        onboarding = session.get_one(Onboarding, onboarding_id)
        assert onboarding.webhook_override_set is None
        assert any("removed (onboarding ended)" in t.cause for t in onboarding.transitions)
        assert routing.release_overrides(session, graph, cipher) == {}


def test_an_override_someone_else_set_since_is_left_alone(
    db: Database, sandbox: Sandbox, graph: GraphClient, settings: Settings, cipher: TokenCipher
) -> None:
    """The provider's own override, put there after coexist's, is not removed."""
    onboarding_id = connected(db, sandbox, graph, settings, cipher)
    waba_id = waba_of(db, onboarding_id)
    sandbox.set_webhook_override(waba_id, PROVIDER_URL, "provider-vt")
    with db.session() as session:
        done = routing.release_overrides(session, graph, cipher)
    assert "not coexist's" in done[onboarding_id]
    assert sandbox.webhook_override(waba_id) == (PROVIDER_URL, "provider-vt")


def test_an_active_onboarding_keeps_its_override(
    db: Database, sandbox: Sandbox, graph: GraphClient, settings: Settings, cipher: TokenCipher
) -> None:
    """Only ended onboardings give their override back."""
    onboarding_id = connected(db, sandbox, graph, settings, cipher)
    with db.session() as session:
        session.get_one(Onboarding, onboarding_id).state = OnboardingState.SYNCED.value
        session.commit()
        assert routing.release_overrides(session, graph, cipher) == {}
    assert sandbox.webhook_override(waba_of(db, onboarding_id)) == OURS


def test_a_transient_failure_is_retried_and_a_lasting_one_is_given_up_with_an_alert(
    db: Database, sandbox: Sandbox, graph: GraphClient, settings: Settings, cipher: TokenCipher
) -> None:
    """A 5xx keeps the record for the next run; a day after the onboarding ended, coexist
    stops trying and raises ``webhook_override_not_removed``."""
    onboarding_id = connected(db, sandbox, graph, settings, cipher)
    sandbox.set_faults(Faults.only("subscribed_apps", error_5xx=1.0, seed=1))
    with db.session() as session:
        done = routing.release_overrides(session, graph, cipher)
        assert done[onboarding_id].startswith("not removed yet")
        assert session.get_one(Onboarding, onboarding_id).webhook_override_set == OURS[0]
        changed = session.get_one(Onboarding, onboarding_id).state_changed_at
        routing.release_overrides(session, graph, cipher, now=changed + timedelta(days=2))
    with db.sessionmaker() as session:
        assert session.get_one(Onboarding, onboarding_id).webhook_override_set is None
        kinds = session.scalars(select(Alert.kind).where(Alert.onboarding_id == onboarding_id))
        assert "webhook_override_not_removed" in set(kinds)


def test_an_erased_onboarding_gives_its_override_back_and_then_loses_its_token(
    db: Database, sandbox: Sandbox, graph: GraphClient, settings: Settings, cipher: TokenCipher
) -> None:
    """Erasing a connected onboarding keeps its token only until the sweep has taken back
    coexist's override; then the override is gone at Meta and so is the token."""
    onboarding_id = connected(db, sandbox, graph, settings, cipher)
    with db.session() as session:
        session.get_one(Onboarding, onboarding_id).state = OnboardingState.SYNCED.value
        session.commit()
        erase.request_erasure(session, onboarding_id, reason="the business asked")
        kept = session.get_one(Onboarding, onboarding_id)
        assert (kept.token_ciphertext is not None, kept.session_data) == (True, {})
        done = routing.release_overrides(session, graph, cipher)
    assert "removed" in done[onboarding_id]
    assert sandbox.webhook_override(waba_of(db, onboarding_id)) is None
    with db.sessionmaker() as session:
        onboarding = session.get_one(Onboarding, onboarding_id)
        assert (onboarding.webhook_override_set, onboarding.token_ciphertext) == (None, None)


def test_an_erased_onboarding_without_an_override_loses_its_token_at_once(
    db: Database, sandbox: Sandbox, graph: GraphClient, settings: Settings, cipher: TokenCipher
) -> None:
    """With no override of coexist's to take back, erasure wipes the token when it begins."""
    with db.session() as session:
        onboarding = signup(session, sandbox, settings, cipher)
        kw = {"settings": settings, "cipher": cipher, "onboarding_id": onboarding.id}
        handoff.exchange_code(session, graph, **kw)
        handoff.connect(session, graph, **kw)
        erase.request_erasure(session, onboarding.id)
        assert session.get_one(Onboarding, onboarding.id).token_ciphertext is None
        assert routing.release_overrides(session, graph, cipher) == {}
