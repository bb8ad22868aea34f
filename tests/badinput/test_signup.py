"""POST /signup with bad bodies: 401, 413 or 422 naming the field, and no row written."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient

from models import AbandonedSignup, Onboarding, RecordedFinish, Transition
from onboarding.runtime import Runtime
from tests.badinput.conftest import count
from tests.conftest import SIGNUP_TOKEN

AUTH = {"Authorization": f"Bearer {SIGNUP_TOKEN}", "Content-Type": "application/json"}
SESSION: dict[str, Any] = {
    "type": "WA_EMBEDDED_SIGNUP",
    "event": "FINISH",
    "data": {"waba_id": "102290129340398", "phone_number_id": "106540352242922"},
}


def good(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"code": "AQBx-code", "session": json.loads(json.dumps(SESSION))}
    body.update(changes)
    return body


def other(event: str, **data: Any) -> dict[str, Any]:
    """A body whose session is another flow's finish (or CANCEL/ERROR) with this data."""
    return good(session={"type": "WA_EMBEDDED_SIGNUP", "event": event, "data": data})


def with_data(**data: Any) -> dict[str, Any]:
    body = good()
    body["session"]["data"].update(data)
    return body


def without(path: str) -> dict[str, Any]:
    body = good()
    *parents, last = path.split(".")
    target = body
    for p in parents:
        target = target[p]
    del target[last]
    return body


def nothing_written(rt: Runtime) -> None:
    assert count(rt, Onboarding) == 0
    assert count(rt, AbandonedSignup) == 0
    assert count(rt, RecordedFinish) == 0
    assert count(rt, Transition) == 0


NOT_JSON = [
    pytest.param(b"", id="empty"),
    pytest.param(b"code=x&session=y", id="form-encoded"),
    pytest.param(b'{"code": "x", "session": {"type"', id="truncated"),
    pytest.param(b"{'code': 'x'}", id="single-quotes"),
    pytest.param(b"\xff\xfe{\x00}", id="not-utf8"),
    pytest.param(b'{"code": "x",}', id="trailing-comma"),
    pytest.param(b"NaN-ish garbage \x00", id="nul-garbage"),
]


@pytest.mark.parametrize("raw", NOT_JSON)
def test_non_json_signup_is_422_on_body(web: TestClient, rt: Runtime, raw: bytes) -> None:
    """A body that is not JSON is 422 naming `body`, and nothing is recorded."""
    response = web.post("/signup", content=raw, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_body"
    assert [e["field"] for e in response.json()["errors"]] == ["body"]
    nothing_written(rt)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[]", id="list"),
        pytest.param(b'"signup"', id="string"),
        pytest.param(b"null", id="null"),
        pytest.param(b"42", id="number"),
        pytest.param(b"true", id="bool"),
    ],
)
def test_json_that_is_not_an_object_is_422(web: TestClient, rt: Runtime, raw: bytes) -> None:
    """A JSON value other than an object is 422 on `body`."""
    response = web.post("/signup", content=raw, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body"
    nothing_written(rt)


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b"[" * 10_000 + b"]" * 10_000, id="10k-nested-lists"),
        pytest.param(
            b'{"code":"x","session":' + b'{"a":' * 5_000 + b"1" + b"}" * 5_001,
            id="5k-nested-objects",
        ),
    ],
)
def test_deeply_nested_signup_is_422(web: TestClient, rt: Runtime, raw: bytes) -> None:
    """JSON nested thousands deep (under the size limit) is 422 on `body`, not a crash."""
    response = web.post("/signup", content=raw, headers=AUTH)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "body"
    nothing_written(rt)


FIELD_CASES = [
    pytest.param(without("session"), "session", id="missing-session"),
    pytest.param(without("code"), "code", id="missing-code-on-finish"),
    pytest.param(good(code=""), "code", id="empty-code"),
    pytest.param(good(code="   "), "code", id="blank-code"),
    pytest.param(good(code=12345), "code", id="code-int"),
    pytest.param(good(code=["a"]), "code", id="code-list"),
    pytest.param(good(code="x" * 4097), "code", id="code-too-long"),
    pytest.param(good(session="FINISH"), "session", id="session-string"),
    pytest.param(good(session=[]), "session", id="session-list"),
    pytest.param(without("session.event"), "session", id="missing-event"),
    pytest.param(good(session={**SESSION, "event": "BOGUS"}), "session", id="unknown-event"),
    pytest.param(good(session={**SESSION, "type": "OTHER"}), "session.type", id="wrong-type"),
    pytest.param(without("session.type"), "session.type", id="missing-type"),
    pytest.param(without("session.data"), "session.data", id="missing-data"),
    pytest.param(without("session.data.waba_id"), "session.data.waba_id", id="missing-waba"),
    pytest.param(with_data(waba_id="abc"), "session.data.waba_id", id="waba-letters"),
    pytest.param(with_data(waba_id=-5), "session.data.waba_id", id="waba-negative"),
    pytest.param(with_data(waba_id=True), "session.data.waba_id", id="waba-bool"),
    pytest.param(with_data(waba_id=["1"]), "session.data.waba_id", id="waba-list"),
    pytest.param(with_data(waba_id="12\x0034"), "session.data.waba_id", id="waba-nul"),
    pytest.param(
        with_data(waba_id="\u0661\u0662\u0663\u0664"),
        "session.data.waba_id",
        id="waba-arabic-digits",
    ),
    pytest.param(with_data(phone_number_id={}), "session.data.phone_number_id", id="pnid-obj"),
    pytest.param(good(extra="x"), "extra", id="extra-top-level"),
    pytest.param(good(session={**SESSION, "event": 1}), "session", id="event-int"),
    pytest.param(good(session={**SESSION, "data": ["x"]}), "session.data", id="data-list"),
    pytest.param(
        good(session={**SESSION, "version": "v" * 17}), "session.version", id="version-long"
    ),
    pytest.param(
        other("FINISH_ONLY_WABA", waba_id="abc"), "session.data.waba_id", id="only-waba-letters"
    ),
    pytest.param(
        other("FINISH_OBO_MIGRATION", waba_ids=["12", "x"]),
        "session.data.waba_ids.1",
        id="waba-ids-letters",
    ),
    pytest.param(
        other("FINISH_GRANT_ONLY_API_ACCESS", page_ids="123"),
        "session.data.page_ids",
        id="page-ids-not-a-list",
    ),
    pytest.param(
        with_data(catalog_ids=[{"id": "1"}]), "session.data.catalog_ids.0", id="catalog-ids-obj"
    ),
    pytest.param(
        other("FINISH_ONLY_WABA", ad_account_ids=["1"] * 1001),
        "session.data.ad_account_ids",
        id="ad-account-ids-too-many",
    ),
    pytest.param(
        other("ERROR", error_message="x" * 2049), "session.data.error_message", id="error-long"
    ),
    pytest.param(
        other("CANCEL", current_step=["PERMISSIONS"]),
        "session.data.current_step",
        id="cancel-step-list",
    ),
    pytest.param(
        good(session={"type": "WA_EMBEDDED_SIGNUP", "event": "FINISH_OBO_MIGRATION"}),
        "session.data",
        id="other-finish-without-data",
    ),
]


@pytest.mark.parametrize(("body", "field"), FIELD_CASES)
def test_invalid_signup_field_is_422_naming_it(
    web: TestClient, rt: Runtime, body: dict[str, Any], field: str
) -> None:
    """A wrong, missing or extra field is 422 and the error names that field."""
    response = web.post("/signup", content=json.dumps(body).encode(), headers=AUTH)
    assert response.status_code == 422, response.text
    payload = response.json()
    assert payload["error"] == "invalid_body"
    fields = [e["field"] for e in payload["errors"]]
    assert any(f == field or f.startswith(field + ".") for f in fields), fields
    assert all(e["message"] for e in payload["errors"])
    nothing_written(rt)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-header"),
        pytest.param({"Authorization": "Bearer wrong"}, id="wrong-token"),
        pytest.param({"Authorization": f"Basic {SIGNUP_TOKEN}"}, id="basic-scheme"),
        pytest.param({"Authorization": "Bearer "}, id="empty-bearer"),
        pytest.param({"Authorization": f"Bearer {SIGNUP_TOKEN}x"}, id="token-suffix"),
    ],
)
def test_signup_without_the_bearer_is_401_even_when_malformed(
    web: TestClient, rt: Runtime, headers: dict[str, str]
) -> None:
    """Authentication comes first: a bad bearer is 401 whatever the body, nothing recorded."""
    response = web.post("/signup", content=b"{not json", headers=headers)
    assert response.status_code == 401
    nothing_written(rt)


def test_oversized_signup_is_413(web: TestClient, rt: Runtime) -> None:
    """A body above signup_max_body_bytes is 413 with the limit, nothing recorded."""
    limit = rt.settings.signup_max_body_bytes
    raw = json.dumps(good(code="x" * (limit + 1))).encode()
    response = web.post("/signup", content=raw, headers=AUTH)
    assert response.status_code == 413
    assert response.json()["limit_bytes"] == limit
    nothing_written(rt)


def test_oversized_streamed_signup_is_413(web: TestClient, rt: Runtime) -> None:
    """A chunked body (no Content-Length) over the limit is cut off with 413."""
    limit = rt.settings.signup_max_body_bytes

    def chunks() -> Any:
        for _ in range(limit // 1024 + 2):
            yield b"x" * 1024

    response = web.post("/signup", content=chunks(), headers=AUTH)
    assert response.status_code == 413
    nothing_written(rt)


def test_signup_with_both_content_length_and_chunked_is_400(web: TestClient, rt: Runtime) -> None:
    """Content-Length beside Transfer-Encoding (a smuggling shape) is refused, nothing read."""

    def chunks() -> Any:
        yield json.dumps(good()).encode()

    headers = {**AUTH, "Content-Length": "5", "Transfer-Encoding": "chunked"}
    response = web.post("/signup", content=chunks(), headers=headers)
    assert response.status_code == 400
    assert response.json()["error"] == "ambiguous_framing"
    assert response.headers["connection"] == "close"
    nothing_written(rt)


UNSTORABLE = [
    pytest.param(with_data(waba_id="1022901\u00002"), "session.data.waba_id", id="nul-waba-id"),
    pytest.param(
        with_data(phone_number_id="\u0000"), "session.data.phone_number_id", id="nul-phone-id"
    ),
    pytest.param(good(code="AQB\u0000x"), "code", id="nul-code"),
    pytest.param(
        {**good(), "session": {**SESSION, "version": "3\u0000"}}, "session.version", id="nul-ver"
    ),
    pytest.param(
        {**good(), "session": {**SESSION, "event": "CANCEL", "data": {"current_step": "A\u0000"}}},
        "session.data.current_step",
        id="nul-cancel-step",
    ),
    pytest.param(
        {
            **good(),
            "session": {**SESSION, "event": "CANCEL", "data": {"error_message": "x\u0000y"}},
        },
        "session.data.error_message",
        id="nul-cancel-message",
    ),
    pytest.param(
        {**good(), "session": {**SESSION, "event": "CANCEL", "data": {"session_id": "\u0000"}}},
        "session.data.session_id",
        id="nul-cancel-session-id",
    ),
    pytest.param(with_data(extra="\ud800"), "session.data.extra", id="surrogate-extra-data"),
    pytest.param(with_data(notes=["ok", "\udfff"]), "session.data.notes.1", id="surrogate-list"),
    pytest.param(with_data(**{"k\u0000": 1}), "session.data.k\u0000", id="nul-in-a-key"),
]


@pytest.mark.parametrize(("body", "field"), UNSTORABLE)
def test_unstorable_strings_are_422_naming_the_field(
    web: TestClient, rt: Runtime, body: dict[str, Any], field: str
) -> None:
    """NUL or a lone surrogate anywhere in the body is 422 naming the field, nothing recorded."""
    raw = json.dumps(body).encode()  # \u0000 and lone surrogates travel as JSON escapes
    response = web.post("/signup", content=raw, headers=AUTH)
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["field"] == field
    assert "NUL" in error["message"] or "surrogate" in error["message"]
    nothing_written(rt)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e400", "-2.5e999"])
def test_non_json_numbers_in_the_session_are_422(
    web: TestClient, rt: Runtime, constant: str
) -> None:
    """NaN, Infinity and numbers beyond a double are not storable: 422, nothing recorded."""
    raw = json.dumps(with_data(extra=0)).replace('"extra": 0', f'"extra": {constant}').encode()
    response = web.post("/signup", content=raw, headers=AUTH)
    assert response.status_code == 422
    assert constant in response.json()["errors"][0]["message"]
    nothing_written(rt)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(with_data(new_field={"nested": [1, "two"]}), id="finish-data-key"),
        pytest.param(good(session={**SESSION, "flow": "lite"}), id="finish-session-key"),
        pytest.param(other("FINISH_ONLY_WABA", waba_id="1", new_ids=["2"]), id="other-data-key"),
        pytest.param(other("ERROR", error_id="77", step="X"), id="error-data-key"),
    ],
)
def test_unknown_session_keys_are_kept_not_refused(
    web: TestClient, rt: Runtime, body: dict[str, Any]
) -> None:
    """Keys Meta may add inside the session are accepted (202), not refused."""
    response = web.post("/signup", content=json.dumps(body).encode(), headers=AUTH)
    assert response.status_code == 202, response.text
