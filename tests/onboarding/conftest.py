"""Fixtures for the onboarding domain tests."""

from __future__ import annotations

import pytest

from config import Settings
from models import Database
from models.crypto import TokenCipher
from onboarding import handoff
from onboarding.graph import GraphClient
from onboarding.outcomes import Next
from onboarding.sandbox import Sandbox
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
