"""Subscribing a WABA keeps the provider's webhook override, or sets ours, never silently."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from config import Settings
from models import Alert, Database, Onboarding, OnboardingState
from models.crypto import TokenCipher
from onboarding.meta.graph import GraphClient
from onboarding.outcomes import Next
from onboarding.sandbox import Sandbox
from onboarding.signup import handoff
from tests.conftest import APP_SECRET, make_settings
from tests.onboarding.helpers import signup

PROVIDER_URL = "https://provider.example/whatsapp"
OURS = ("https://coexist.example/webhooks/meta", "coexist-verify-123")


def _connect(
    db: Database,
    sandbox: Sandbox,
    graph: GraphClient,
    settings: Settings,
    cipher: TokenCipher,
    *,
    override: tuple[str, str] | None = None,
) -> Onboarding:
    """Sign up, then connect; ``override`` is put on the WABA by the provider before connect."""
    with db.session() as session:
        onboarding = signup(session, sandbox, settings, cipher)
        kw = {"settings": settings, "cipher": cipher, "onboarding_id": onboarding.id}
        assert handoff.exchange_code(session, graph, **kw) is Next.CONNECT
        if override is not None:
            sandbox.set_webhook_override(onboarding.waba_id, *override)
        assert handoff.connect(session, graph, **kw) is Next.SYNC
        return onboarding


def _causes(db: Database, onboarding_id: int) -> list[str]:
    with db.session() as session:
        return [t.cause for t in session.get_one(Onboarding, onboarding_id).transitions]


def _alerts(db: Database, onboarding_id: int) -> list[str]:
    with db.session() as session:
        return list(session.scalars(select(Alert.kind).where(Alert.onboarding_id == onboarding_id)))


def test_empty_body_post_would_remove_the_providers_override(
    sandbox: Sandbox, graph: GraphClient
) -> None:
    """The old connect step (an empty-body POST) removes an override the provider had set."""
    business = sandbox.add_business("Lucky Shrub", 1)
    token = sandbox.issue_token(business.id)
    sandbox.set_webhook_override(business.waba_id, PROVIDER_URL, "provider-vt")

    graph.subscribe_app(business.waba_id, token)

    assert sandbox.webhook_override(business.waba_id) is None


def test_connect_keeps_the_providers_override_and_posts_nothing(
    db: Database, sandbox: Sandbox, graph: GraphClient, settings: Settings, cipher: TokenCipher
) -> None:
    """Already subscribed with an override: connect posts nothing and notes the override kept."""
    onboarding = _connect(db, sandbox, graph, settings, cipher, override=(PROVIDER_URL, "pv-1"))

    assert sandbox.webhook_override(onboarding.waba_id) == (PROVIDER_URL, "pv-1")
    assert any(f"override {PROVIDER_URL} is kept" in cause for cause in _causes(db, onboarding.id))
    assert _alerts(db, onboarding.id) == []


def test_connect_never_posts_an_empty_body_when_an_override_exists(
    db: Database, sandbox: Sandbox, settings: Settings, cipher: TokenCipher
) -> None:
    """With an override on the WABA, no POST subscribed_apps is sent at all."""
    posts: list[httpx.Request] = []
    transport = sandbox.mock_transport()

    def spy(request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and request.url.path.endswith("/subscribed_apps"):
            posts.append(request)
        return transport.handle_request(request)

    with GraphClient(
        app_id=sandbox.app_id,
        app_secret=APP_SECRET,
        transport=httpx.MockTransport(spy),
        max_wait=0.01,
    ) as graph:
        _connect(db, sandbox, graph, settings, cipher, override=(PROVIDER_URL, "pv-1"))

    assert posts == []


def test_connect_subscribes_a_fresh_waba_without_override(
    db: Database, sandbox: Sandbox, graph: GraphClient, settings: Settings, cipher: TokenCipher
) -> None:
    """A WABA our app is not subscribed to gets a plain subscription when none is configured."""
    onboarding = _connect(db, sandbox, graph, settings, cipher)

    assert sandbox.is_subscribed(onboarding.waba_id)
    assert sandbox.webhook_override(onboarding.waba_id) is None
    with db.session() as session:
        assert session.get_one(Onboarding, onboarding.id).state == OnboardingState.SUBSCRIBED


def test_configured_override_is_set_on_a_fresh_waba(
    db: Database, sandbox: Sandbox, graph: GraphClient, cipher: TokenCipher, settings: Settings
) -> None:
    """With COEX_WEBHOOK_OVERRIDE_URL, subscribing posts it with its verify token."""
    ours = make_settings(
        database_url=settings.database_url,
        webhook_override_url=OURS[0],
        webhook_override_verify_token=OURS[1],
    )
    onboarding = _connect(db, sandbox, graph, ours, cipher)

    assert sandbox.webhook_override(onboarding.waba_id) == OURS
    assert any(f"set to {OURS[0]}" in cause for cause in _causes(db, onboarding.id))
    assert _alerts(db, onboarding.id) == []


def test_configured_override_replacing_another_is_recorded_and_alerted(
    db: Database, sandbox: Sandbox, graph: GraphClient, cipher: TokenCipher, settings: Settings
) -> None:
    """Replacing the provider's different override is noted on the timeline with an alert."""
    ours = make_settings(
        database_url=settings.database_url,
        webhook_override_url=OURS[0],
        webhook_override_verify_token=OURS[1],
    )
    onboarding = _connect(db, sandbox, graph, ours, cipher, override=(PROVIDER_URL, "pv-1"))

    assert sandbox.webhook_override(onboarding.waba_id) == OURS
    assert any(f"{PROVIDER_URL} -> {OURS[0]}" in cause for cause in _causes(db, onboarding.id))
    assert _alerts(db, onboarding.id) == ["webhook_override_replaced"]


def test_same_override_already_set_posts_nothing(
    db: Database, sandbox: Sandbox, graph: GraphClient, cipher: TokenCipher, settings: Settings
) -> None:
    """The configured override already on the WABA is left as it is, without an alert."""
    ours = make_settings(
        database_url=settings.database_url,
        webhook_override_url=OURS[0],
        webhook_override_verify_token=OURS[1],
    )
    onboarding = _connect(db, sandbox, graph, ours, cipher, override=(OURS[0], "old-vt"))

    assert sandbox.webhook_override(onboarding.waba_id) == (OURS[0], "old-vt")
    assert _alerts(db, onboarding.id) == []
