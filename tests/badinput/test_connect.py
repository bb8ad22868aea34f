"""POST /connect/handoff with bad links and bad bodies: a clear answer and no row written."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from models import AbandonedSignup, Onboarding, RecordedFinish, Transition
from onboarding.runtime import Runtime
from tests.badinput.conftest import count
from tests.conftest import SIGNUP_TOKEN
from tests.onboarding.connect.conftest import connect_web, link_query

__all__ = ["connect_web"]

JSON = {"Content-Type": "application/json"}
BODY: dict[str, Any] = {
    "code": "AQBx-code",
    "session": {
        "type": "WA_EMBEDDED_SIGNUP",
        "event": "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
        "data": {"waba_id": "102290129340398"},
    },
}


def nothing_written(rt: Runtime) -> None:
    for model in (Onboarding, AbandonedSignup, RecordedFinish, Transition):
        assert count(rt, model) == 0


def test_no_link_is_400(connect_web: TestClient, rt: Runtime) -> None:
    """A hand-off without the link's values is 400 ``incomplete_link``."""
    answer = connect_web.post("/connect/handoff", json=BODY)

    assert answer.status_code == 400
    assert answer.json()["error"] == "incomplete_link"
    nothing_written(rt)


def test_the_signup_token_does_not_stand_in_for_a_link(
    connect_web: TestClient, rt: Runtime
) -> None:
    """``POST /signup``'s bearer token does not authorise the page's hand-off."""
    answer = connect_web.post(
        "/connect/handoff", json=BODY, headers={"Authorization": f"Bearer {SIGNUP_TOKEN}"}
    )

    assert answer.status_code == 400
    nothing_written(rt)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda q: q.replace("ref=customer-4711", "ref=customer-4712"), id="ref"),
        pytest.param(lambda q: q.replace("exp=", "exp=1"), id="exp"),
        pytest.param(lambda q: q[:-1] + ("0" if q[-1] != "0" else "1"), id="sig"),
        pytest.param(lambda q: q.replace("sig=", "sig=%00"), id="sig-nul"),
        pytest.param(lambda q: q.replace("ref=customer-4711", "ref=" + "a" * 65), id="long-ref"),
    ],
)
def test_a_tampered_link_is_403(connect_web: TestClient, rt: Runtime, change: Any) -> None:
    """A link changed after signing is 403 ``invalid_link``."""
    answer = connect_web.post(f"/connect/handoff?{change(link_query(rt))}", json=BODY)

    assert answer.status_code == 403
    assert answer.json()["error"] == "invalid_link"
    nothing_written(rt)


def test_an_expired_link_is_410(connect_web: TestClient, rt: Runtime) -> None:
    """A link past its expiry is 410 ``expired_link``."""
    query = link_query(rt, lifetime=timedelta(minutes=1), age=120)

    answer = connect_web.post(f"/connect/handoff?{query}", json=BODY)

    assert answer.status_code == 410
    assert answer.json()["error"] == "expired_link"
    nothing_written(rt)


def test_without_a_link_secret_the_page_is_unavailable(
    connect_web: TestClient, rt: Runtime
) -> None:
    """With no ``COEX_CONNECT_LINK_SECRET`` configured the hand-off is 503, not open."""
    query = link_query(rt)
    rt.settings.connect_link_secret = type(rt.settings.connect_link_secret)("")

    answer = connect_web.post(f"/connect/handoff?{query}", json=BODY)

    assert answer.status_code == 503
    assert answer.json()["error"] == "not_configured"
    nothing_written(rt)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        pytest.param(b"", "body", id="empty"),
        pytest.param(b"[1]", "body", id="list"),
        pytest.param(b'{"session": {"type": "WA_EMBEDDED_SIGNUP"', "body", id="truncated"),
        pytest.param(
            b'{"session": {"type": "WA_EMBEDDED_SIGNUP", "event": "FINISH", '
            b'"data": {"waba_id": "1"}}}',
            "code",
            id="finish-without-code",
        ),
        pytest.param(
            b'{"code": "x", "session": {"type": "WA_EMBEDDED_SIGNUP", "event": "FINISH", '
            b'"data": {"waba_id": "12a"}}}',
            "session.data.waba_id",
            id="bad-waba",
        ),
        pytest.param(b'{"code": "x", "session": {}, "link": 1}', "session", id="no-event"),
    ],
)
def test_a_bad_body_is_422_naming_the_field(
    connect_web: TestClient, rt: Runtime, raw: bytes, field: str
) -> None:
    """A body that is not the signup hand-off is 422 naming the wrong field first."""
    answer = connect_web.post(f"/connect/handoff?{link_query(rt)}", content=raw, headers=JSON)

    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == field
    nothing_written(rt)


def test_an_oversized_body_is_413(connect_web: TestClient, rt: Runtime) -> None:
    """A body over ``COEX_SIGNUP_MAX_BODY_BYTES`` is refused before it is read whole."""
    raw = b'{"code": "' + b"x" * (rt.settings.signup_max_body_bytes + 1) + b'"}'

    answer = connect_web.post(f"/connect/handoff?{link_query(rt)}", content=raw, headers=JSON)

    assert answer.status_code == 413
    nothing_written(rt)


@pytest.mark.parametrize("query", ["", "ref=c1&exp=1&sig=" + "a" * 64])
def test_a_bad_link_page_says_why_and_offers_no_button(
    connect_web: TestClient, rt: Runtime, query: str
) -> None:
    """``GET /connect`` with a missing or invalid link explains and has no button."""
    page = connect_web.get(f"/connect?{query}")

    assert page.status_code in (400, 403)
    assert 'id="refused"' in page.text
    assert 'id="start"' not in page.text
