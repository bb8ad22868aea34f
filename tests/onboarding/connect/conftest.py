"""The web app with a link secret, and links signed for the tests."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from models import utcnow
from onboarding.connect.service import create_link
from onboarding.runtime import Runtime
from onboarding.web import create_app

LINK_SECRET = "connect-link-secret-for-tests-0123"
REF = "customer-4711"


@pytest.fixture
def connect_web(rt: Runtime) -> Iterator[TestClient]:
    """The web app over the test runtime with ``COEX_CONNECT_LINK_SECRET`` set."""
    rt.settings.connect_link_secret = SecretStr(LINK_SECRET)
    rt.settings.meta_config_id = "987654321"
    with TestClient(create_app(rt)) as client:
        yield client


def link_query(
    rt: Runtime, ref: str = REF, lifetime: timedelta = timedelta(days=7), age: float = 0
) -> str:
    """The query string of an invitation for ``ref``, signed ``age`` seconds ago."""
    made = create_link(
        rt.settings,
        ref,
        lifetime,
        fallback_base="http://testserver",
        now=utcnow() - timedelta(seconds=age),
    )
    return urlsplit(made.url).query
