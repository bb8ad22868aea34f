"""Fixtures for the onboarding domain tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from config import Settings
from models import Database
from models.crypto import TokenCipher
from onboarding.meta.graph import GraphClient
from onboarding.outcomes import Next
from onboarding.runtime import Runtime
from onboarding.sandbox import Sandbox
from onboarding.signup import handoff
from onboarding.web import create_app
from tests.conftest import SIGNUP_TOKEN
from tests.onboarding.deliveries import Business
from tests.onboarding.helpers import signup


@pytest.fixture
def subscribed(
    db: Database, sandbox: Sandbox, graph: GraphClient, settings: Settings, cipher: TokenCipher
) -> int:
    """An onboarding whose app is subscribed and whose syncs are not yet requested."""
    with db.session() as session:
        onboarding = signup(session, sandbox, settings, cipher)
        kw = {"settings": settings, "cipher": cipher, "onboarding_id": onboarding.id}
        assert handoff.exchange_code(session, graph, **kw) is Next.CONNECT
        assert handoff.connect(session, graph, **kw) is Next.SYNC
        return onboarding.id


@pytest.fixture
def web(rt: Runtime) -> Iterator[TestClient]:
    """The web app over the test runtime (tasks run eagerly)."""
    with TestClient(create_app(rt)) as client:
        yield client


@pytest.fixture
def business(rt: Runtime, sandbox: Sandbox, web: TestClient) -> Business:
    """A business onboarded through POST /signup, with both syncs requested."""
    seeded = sandbox.add_business("Lucky Shrub", ["+1 650 555 1234"])
    signup_result = sandbox.complete_signup(seeded.waba_id)
    response = web.post(
        "/signup",
        json={"code": signup_result.code, "session": dict(signup_result.session)},
        headers={"Authorization": f"Bearer {SIGNUP_TOKEN}"},
    )
    assert response.status_code == 202
    return Business(
        onboarding_id=response.json()["onboarding_id"],
        waba_id=seeded.waba_id,
        phone_number_id=seeded.phone_number_ids[0],
        number="16505551234",
    )


@pytest.fixture
def onboarding_id(business: Business) -> int:
    """The id of :func:`business`'s onboarding (``syncing``, both syncs requested)."""
    return business.onboarding_id
