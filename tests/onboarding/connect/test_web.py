"""The hosted page's routes: the page and its headers, the hand-off, the progress stream."""

from __future__ import annotations

import json
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from models import AbandonedSignup, Onboarding
from onboarding.runtime import Runtime
from onboarding.sandbox import Sandbox
from tests.conftest import SIGNUP_TOKEN
from tests.onboarding.connect.conftest import REF, link_query


def finished(sandbox: Sandbox) -> dict[str, Any]:
    business = sandbox.add_business("Lucky Shrub", ["+1 650 555 1234"])
    result = sandbox.complete_signup(business.waba_id)
    return {"code": result.code, "session": dict(result.session)}


def events(client: TestClient, url: str) -> list[tuple[str, dict[str, Any]]]:
    """The server-sent events of a stream that ends by itself, as (event, data) pairs."""
    found: list[tuple[str, dict[str, Any]]] = []
    with client.stream("GET", url) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        name = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                found.append((name, json.loads(line.removeprefix("data: "))))
    return found


def test_the_page_launches_signup_with_the_configured_app(
    connect_web: TestClient, rt: Runtime
) -> None:
    """A valid link's page carries the app id, config id, Graph version and v4 extras with the
    coexistence feature type, and loads Meta's SDK."""
    page = connect_web.get(f"/connect?{link_query(rt)}")

    assert page.status_code == 200
    assert f'data-app-id="{rt.settings.meta_app_id}"' in page.text
    assert 'data-config-id="987654321"' in page.text
    assert f'data-graph-version="{rt.settings.meta_api_version}"' in page.text
    assert "whatsapp_business_app_onboarding" in page.text
    assert 'src="https://connect.facebook.net/en_US/sdk.js"' in page.text


def test_the_v4_extras_setting_sends_only_setup(connect_web: TestClient, rt: Runtime) -> None:
    """With ``connect_extras`` ``v4`` the page sends ``{setup: {}}`` and no feature type."""
    rt.settings.connect_extras = "v4"

    page = connect_web.get(f"/connect?{link_query(rt)}")

    assert 'data-extras="{&#34;setup&#34;: {}}"' in page.text
    assert "featureType" not in page.text


def test_the_page_allows_scripts_only_from_itself_and_the_sdk(
    connect_web: TestClient, rt: Runtime
) -> None:
    """The page's CSP allows scripts from self and the SDK's origin, no inline script, no
    framing, and its Referrer-Policy keeps the link's signature at home."""
    page = connect_web.get(f"/connect?{link_query(rt)}")
    csp = page.headers["content-security-policy"]

    assert "default-src 'none'" in csp
    assert "script-src 'self' https://connect.facebook.net;" in csp
    assert "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "<script>" not in page.text


def test_the_signup_token_never_reaches_the_page(connect_web: TestClient, rt: Runtime) -> None:
    """The page does not carry ``COEX_SIGNUP_TOKEN``."""
    page = connect_web.get(f"/connect?{link_query(rt)}")

    assert SIGNUP_TOKEN not in page.text


def test_a_finished_handoff_starts_an_onboarding_under_the_ref(
    connect_web: TestClient, rt: Runtime, sandbox: Sandbox
) -> None:
    """A finish is exchanged at once, its onboarding keeps the link's ref, and the answer
    carries a watch token."""
    answer = connect_web.post(f"/connect/handoff?{link_query(rt)}", json=finished(sandbox))

    assert answer.status_code == 202
    body = answer.json()
    assert body["created"] is True
    assert body["watch"].startswith(f"{body['onboarding_id']}.")
    with rt.db.sessionmaker() as session:
        onboarding = session.get_one(Onboarding, body["onboarding_id"])
        assert onboarding.connect_ref == REF
        assert onboarding.state == "syncing"


def test_a_cancel_is_recorded_as_abandoned_under_the_ref(
    connect_web: TestClient, rt: Runtime, sandbox: Sandbox
) -> None:
    """A ``CANCEL`` is recorded as an abandoned signup with the link's ref, and no watch."""
    body = {"session": sandbox.cancel_signup("PHONE_NUMBER_SETUP")}

    answer = connect_web.post(f"/connect/handoff?{link_query(rt)}", json=body)

    assert answer.status_code == 202
    assert "watch" not in answer.json()
    with rt.db.sessionmaker() as session:
        [row] = session.scalars(select(AbandonedSignup)).all()
        assert (row.current_step, row.connect_ref) == ("PHONE_NUMBER_SETUP", REF)


def test_the_same_code_under_another_link_gets_no_watch(
    connect_web: TestClient, rt: Runtime, sandbox: Sandbox
) -> None:
    """A code already handed over through one link does not let another link follow it."""
    body = finished(sandbox)
    first = connect_web.post(f"/connect/handoff?{link_query(rt)}", json=body)

    again = connect_web.post(f"/connect/handoff?{link_query(rt, 'customer-9')}", json=body)

    assert again.json()["onboarding_id"] == first.json()["onboarding_id"]
    assert again.json()["watch"] is None


def test_the_stream_tells_an_expired_code_and_ends(
    connect_web: TestClient, rt: Runtime, sandbox: Sandbox
) -> None:
    """A code Meta refuses as expired streams one final snapshot saying start again."""
    body = finished(sandbox)
    sandbox.advance_clock(31)
    query = link_query(rt)
    answer = connect_web.post(f"/connect/handoff?{query}", json=body).json()

    found = events(connect_web, f"/connect/events?{query}&watch={answer['watch']}")

    [(name, view)] = found
    assert name == "progress"
    assert view["final"] is True
    assert view["problem"]["kind"] == "code_expired"
    assert view["problem"]["next_step"].startswith("Start again")


def test_the_stream_needs_the_watch_token(connect_web: TestClient, rt: Runtime) -> None:
    """A valid link alone does not open a progress stream."""
    answer = connect_web.get(f"/connect/events?{link_query(rt)}")

    assert answer.status_code == 403
    assert answer.json()["error"] == "invalid_watch"


def test_a_watch_token_of_another_ref_opens_no_stream(
    connect_web: TestClient, rt: Runtime, sandbox: Sandbox
) -> None:
    """The watch token of one link's onboarding does not open a stream under another link."""
    answer = connect_web.post(f"/connect/handoff?{link_query(rt)}", json=finished(sandbox))

    refused = connect_web.get(
        f"/connect/events?{link_query(rt, 'customer-9')}&watch={answer.json()['watch']}"
    )

    assert refused.status_code == 403


def test_without_a_config_id_the_page_offers_no_button(
    connect_web: TestClient, rt: Runtime
) -> None:
    """With no ``COEX_META_CONFIG_ID`` the page says signup is not open and answers 503."""
    rt.settings.meta_config_id = ""

    page = connect_web.get(f"/connect?{link_query(rt)}")

    assert page.status_code == 503
    assert "not open yet" in page.text
    assert "COEX_" not in page.text
    assert 'id="start"' not in page.text
