"""The hosted page's hand-off end to end: web app, Redis, a real worker, PostgreSQL, sandbox."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import select

from benchmarks._harness import CoexistApi, StackConfig, WebServer
from models import Database, Onboarding
from onboarding.connect.service import create_link
from onboarding.sandbox import Sandbox, SandboxServer

pytestmark = pytest.mark.integration


def test_a_handoff_through_a_link_syncs_and_streams_its_progress(
    api: CoexistApi,
    web: WebServer,
    db: Database,
    sandbox: Sandbox,
    sandbox_server: SandboxServer,
    stack_config: StackConfig,
) -> None:
    """The worker exchanges the page's code at once; the onboarding keeps the link's ref and
    its event stream shows the number found."""
    settings = stack_config.settings(sandbox_server.url)
    query = urlsplit(create_link(settings, "customer-4711", fallback_base=web.url).url).query
    business = sandbox.add_business("Lucky Shrub", ["+1 650 555 1234"])
    signup = sandbox.complete_signup(business.waba_id)

    answer = httpx.post(
        f"{web.url}/connect/handoff?{query}",
        json={"code": signup.code, "session": dict(signup.session)},
        timeout=10,
        trust_env=False,
    )
    assert answer.status_code == 202, answer.text
    body = answer.json()
    api.wait_for_onboarding(body["onboarding_id"])

    with db.sessionmaker() as session:
        [onboarding] = session.scalars(select(Onboarding)).all()
        assert onboarding.connect_ref == "customer-4711"
    first = first_progress(f"{web.url}/connect/events?{query}&watch={body['watch']}")
    number = next(s for s in first["steps"] if s["key"] == "number")
    assert number["status"] == "done"
    assert number["detail"] == "+1 650-555-1234 (Lucky Shrub)"


def first_progress(url: str) -> dict[str, Any]:
    """The first ``progress`` event of a stream, which is then closed."""
    with httpx.stream("GET", url, timeout=10, trust_env=False) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith("data: "):
                found: dict[str, Any] = json.loads(line.removeprefix("data: "))
                return found
    raise AssertionError("the stream ended without a progress event")
