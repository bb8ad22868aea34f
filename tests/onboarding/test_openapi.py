"""``/openapi.json`` is the contract of every public route: each real answer, success and
error, validates against the schema the document gives for that route, status and content type,
and every route is documented with its parameters, answers and token."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from jsonschema import Draft202012Validator
from pydantic import SecretStr
from sqlalchemy import select

from models import Peer
from onboarding.media_store import store_for
from onboarding.runtime import Runtime
from onboarding.sandbox import Sandbox
from onboarding.web import create_app
from tests.conftest import ADMIN_TOKEN, FEED_TOKEN, SIGNUP_TOKEN, VERIFY_TOKEN
from tests.onboarding.deliveries import (
    Business,
    chunk,
    contacts,
    media_followup,
    placeholder,
    signed,
    text,
)
from tests.onboarding.followups.helpers import add_follow_up
from tests.onboarding.ingest.helpers import USER, ago, post
from tests.onboarding.read.helpers import message

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
FEED = {"Authorization": f"Bearer {FEED_TOKEN}"}
SIGNUP = {"Authorization": f"Bearer {SIGNUP_TOKEN}"}
MEDIA = b"\xff\xd8\xff\xe0 a photo of an invoice " * 64
DIGEST = hashlib.sha256(MEDIA).hexdigest()


@dataclass(frozen=True)
class World:
    """An onboarding with history, contacts and stored media, and what the calls need."""

    onboarding_id: int
    peer_id: int
    follow_up_id: int
    sandbox: Sandbox


@pytest.fixture
def world(
    rt: Runtime, web: TestClient, business: Business, sandbox: Sandbox, tmp_path: Path
) -> World:
    """The business onboarded through ``POST /signup``, then a history chunk (text, a media
    placeholder), late media, a contact and an abandoned signup, all through the routes; one
    message's media stored; one follow-up scheduled."""
    rt.settings.media_dir = tmp_path / "media"
    rt.settings.connect_link_secret = SecretStr("connect-link-secret-of-the-openapi-test")
    ts = ago(2)
    history = {USER: [text("wamid.T1", USER, ts, "hello"), placeholder("wamid.P1", USER, ts + 1)]}
    post(web, chunk(business, 0, 1, 100, history))
    post(web, media_followup(business, "wamid.P1", USER, ts + 1, media_id="24230790383178626"))
    post(web, contacts(business, ("add", USER, ts, "Ana Lopez")))
    cancel = {"session": {"type": "WA_EMBEDDED_SIGNUP", "event": "CANCEL", "data": {}}}
    assert web.post("/signup", json=cancel, headers=SIGNUP).status_code == 202
    store_for(rt.settings).put(MEDIA)
    with rt.db.session() as session:
        peer_id = session.scalars(
            select(Peer.id).where(Peer.onboarding_id == business.onboarding_id, Peer.phone == USER)
        ).one()
        message(
            session,
            business.onboarding_id,
            peer_id,
            "wamid.IMG",
            1,
            type="image",
            text_body=None,
            media_state="stored",
            media_mime="image/jpeg",
            media_sha256=DIGEST,
            media_size=len(MEDIA),
        )
    follow_up_id = add_follow_up(rt.db, business.onboarding_id)
    return World(business.onboarding_id, peer_id, follow_up_id, sandbox)


@pytest.fixture
def document(web: TestClient) -> dict[str, Any]:
    answer = web.get("/openapi.json")
    assert answer.status_code == 200
    document: dict[str, Any] = answer.json()
    return document


@dataclass(frozen=True)
class Call:
    """One request to a documented route (``path`` as the document names it)."""

    method: str
    path: str
    status: int
    url: Callable[[World], str]
    kwargs: Callable[[World], dict[str, Any]] = lambda _: {}


def finish(world: World) -> dict[str, Any]:
    seeded = world.sandbox.add_business("Second Shrub", 1)
    result = world.sandbox.complete_signup(seeded.waba_id)
    return {"json": {"code": result.code, "session": dict(result.session)}, "headers": SIGNUP}


def handshake(token: str) -> dict[str, Any]:
    return {
        "params": {
            "hub.mode": "subscribe",
            "hub.verify_token": token,
            "hub.challenge": "1158201444",
        }
    }


def delivery(_: World) -> dict[str, Any]:
    raw, headers = signed({"object": "whatsapp_business_account", "entry": []})
    return {"content": raw, "headers": headers}


def onboarding(world: World) -> str:
    return f"/v1/onboardings/{world.onboarding_id}"


ONLY_WABA = {
    "type": "WA_EMBEDDED_SIGNUP",
    "event": "FINISH_ONLY_WABA",
    "data": {"waba_id": "524126980791429", "business_id": 2729063490586005},
}
ID = "/v1/onboardings/{onboarding_id}"
MESSAGES = f"{ID}/threads/{{peer_id}}/messages"
CALLS = [
    Call("post", "/signup", 202, lambda w: "/signup", finish),
    Call(
        "post",
        "/signup",
        202,
        lambda w: "/signup",
        lambda w: {
            "json": {"session": {"type": "WA_EMBEDDED_SIGNUP", "event": "ERROR", "data": {}}},
            "headers": SIGNUP,
        },
    ),
    Call(
        "post",
        "/signup",
        202,
        lambda w: "/signup",
        lambda w: {"json": {"session": ONLY_WABA}, "headers": SIGNUP},
    ),
    Call("post", "/signup", 422, lambda w: "/signup", lambda w: {"json": [], "headers": SIGNUP}),
    Call("post", "/signup", 401, lambda w: "/signup", lambda w: {"json": {}}),
    Call(
        "get", "/webhooks/meta", 200, lambda w: "/webhooks/meta", lambda w: handshake(VERIFY_TOKEN)
    ),
    Call("get", "/webhooks/meta", 403, lambda w: "/webhooks/meta", lambda w: handshake("wrong")),
    Call("post", "/webhooks/meta", 200, lambda w: "/webhooks/meta", delivery),
    Call(
        "post",
        "/webhooks/meta",
        401,
        lambda w: "/webhooks/meta",
        lambda w: {"content": b"{}", "headers": {"X-Hub-Signature-256": "sha256=" + "0" * 64}},
    ),
    Call("get", "/onboardings/{onboarding_id}", 200, lambda w: f"/onboardings/{w.onboarding_id}"),
    Call("get", "/onboardings/{onboarding_id}", 404, lambda w: "/onboardings/999999"),
    Call("get", "/signups", 200, lambda w: "/signups"),
    Call("get", "/signups", 422, lambda w: "/signups?limit=0"),
    Call(
        "post",
        "/follow-ups/{follow_up_id}/ack",
        200,
        lambda w: f"/follow-ups/{w.follow_up_id}/ack",
    ),
    Call("post", "/follow-ups/{follow_up_id}/ack", 404, lambda w: "/follow-ups/999999/ack"),
    Call("get", "/v1/admin/onboardings", 200, lambda w: "/v1/admin/onboardings"),
    Call("get", "/v1/admin/onboardings", 422, lambda w: "/v1/admin/onboardings?limit=0"),
    Call(
        "get",
        "/v1/admin/onboardings/{onboarding_id}",
        200,
        lambda w: f"/v1/admin/onboardings/{w.onboarding_id}",
    ),
    Call(
        "post",
        "/v1/admin/onboardings/{onboarding_id}/retry",
        409,
        lambda w: f"/v1/admin/onboardings/{w.onboarding_id}/retry",
    ),
    Call(
        "get",
        "/v1/admin/onboardings/{onboarding_id}/export",
        200,
        lambda w: f"/v1/admin/onboardings/{w.onboarding_id}/export",
    ),
    Call(
        "get",
        "/v1/admin/onboardings/{onboarding_id}/export",
        404,
        lambda w: "/v1/admin/onboardings/999999/export",
    ),
    Call(
        "post",
        "/v1/admin/onboardings/{onboarding_id}/erase",
        202,
        lambda w: f"/v1/admin/onboardings/{w.onboarding_id}/erase",
        lambda w: {"json": {"reason": "the business asked"}},
    ),
    Call(
        "post",
        "/v1/admin/onboardings/{onboarding_id}/erase",
        404,
        lambda w: "/v1/admin/onboardings/999999/erase",
    ),
    Call(
        "post",
        "/v1/admin/onboardings/{onboarding_id}/erase",
        422,
        lambda w: f"/v1/admin/onboardings/{w.onboarding_id}/erase",
        lambda w: {"json": {"reason": ""}},
    ),
    Call(
        "post",
        "/v1/admin/connect-links",
        201,
        lambda w: "/v1/admin/connect-links",
        lambda w: {"json": {"ref": "customer-4711", "expires": "7d"}},
    ),
    Call(
        "post",
        "/v1/admin/connect-links",
        422,
        lambda w: "/v1/admin/connect-links",
        lambda w: {"json": {"ref": "no spaces here"}},
    ),
    Call("get", "/v1/admin/alerts", 200, lambda w: "/v1/admin/alerts"),
    Call("get", "/v1/admin/inbox", 200, lambda w: "/v1/admin/inbox"),
    Call(
        "post",
        "/v1/admin/inbox/replay",
        202,
        lambda w: "/v1/admin/inbox/replay",
        lambda w: {"json": {"status": "processed"}},
    ),
    Call("get", "/v1/admin/follow-ups", 200, lambda w: "/v1/admin/follow-ups"),
    Call(
        "post",
        "/v1/admin/follow-ups/{follow_up_id}/ack",
        200,
        lambda w: f"/v1/admin/follow-ups/{w.follow_up_id}/ack",
    ),
    Call("get", "/v1/admin/signups", 200, lambda w: "/v1/admin/signups"),
    Call("get", "/v1/events", 200, lambda w: "/v1/events?limit=5"),
    Call("get", "/v1/events", 400, lambda w: "/v1/events?after=nowhere"),
    Call("get", "/v1/events", 401, lambda w: "/v1/events", lambda w: {"headers": ADMIN}),
    Call("get", "/v1/onboardings", 200, lambda w: "/v1/onboardings?limit=1&order=asc"),
    Call("get", "/v1/onboardings", 400, lambda w: "/v1/onboardings?limit=1001&after=x"),
    Call("get", "/v1/onboardings", 401, lambda w: "/v1/onboardings", lambda w: {"headers": {}}),
    Call("get", ID, 200, onboarding),
    Call("get", ID, 404, lambda w: "/v1/onboardings/999999"),
    Call("get", ID, 400, lambda w: f"{onboarding(w)}?limit=1"),
    Call("get", f"{ID}/threads", 200, lambda w: f"{onboarding(w)}/threads"),
    Call("get", f"{ID}/threads", 404, lambda w: "/v1/onboardings/0/threads"),
    Call("get", MESSAGES, 200, lambda w: f"{onboarding(w)}/threads/{w.peer_id}/messages"),
    Call("get", MESSAGES, 400, lambda w: f"{onboarding(w)}/threads/{w.peer_id}/messages?order=x"),
    Call("get", MESSAGES, 404, lambda w: f"{onboarding(w)}/threads/999999/messages"),
    Call("get", f"{ID}/contacts", 200, lambda w: f"{onboarding(w)}/contacts?removed=false"),
    Call("get", f"{ID}/contacts", 400, lambda w: f"{onboarding(w)}/contacts?removed=maybe"),
    Call("get", "/v1/media/{sha256}", 200, lambda w: f"/v1/media/{DIGEST}"),
    Call("get", "/v1/media/{sha256}", 404, lambda w: f"/v1/media/{'0' * 64}"),
    Call("get", "/livez", 200, lambda w: "/livez"),
    Call("get", "/readyz", 200, lambda w: "/readyz"),
    Call("get", "/healthz", 200, lambda w: "/healthz"),
    Call("get", "/metrics", 200, lambda w: "/metrics"),
]


def headers_for(call: Call) -> dict[str, str]:
    """The token a route takes, unless the call brings its own headers."""
    if call.path.startswith(("/v1/admin", "/onboardings", "/signups", "/follow-ups")):
        return ADMIN
    if call.path.startswith("/v1/"):
        return FEED
    return {}


def documented_schema(
    document: dict[str, Any], path: str, method: str, status: int, content_type: str
) -> dict[str, Any]:
    """The schema ``document`` gives this answer: by route, status and content type (a range
    such as ``*/*`` covers any)."""
    operation = document["paths"][path][method]
    answer = operation["responses"].get(str(status))
    assert answer is not None, f"{method.upper()} {path} answered an undocumented {status}"
    content = answer["content"]
    media_type = content_type.split(";", maxsplit=1)[0].strip()
    chosen = content.get(media_type) or content.get(f"{media_type.split('/')[0]}/*")
    chosen = chosen or content.get("*/*")
    assert chosen is not None, f"{method.upper()} {path} {status} as {media_type}: {content}"
    schema: dict[str, Any] = chosen["schema"]
    return schema


def validator(document: dict[str, Any], schema: dict[str, Any]) -> Draft202012Validator:
    """A validator of ``schema`` whose ``#/components/...`` references are the document's."""
    return Draft202012Validator({**schema, "components": document["components"]})


#: Each documented operation, with the calls that reach it.
OPERATIONS = sorted({(c.method, c.path) for c in CALLS}, key=lambda op: (op[1], op[0]))


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_each_answer_validates_against_the_schema_of_its_route(
    web: TestClient, world: World, document: dict[str, Any], method: str, path: str
) -> None:
    """Each real answer of the route has the status its call expects, and its body the schema
    the document gives for that route, status and content type."""
    for call in (c for c in CALLS if (c.method, c.path) == (method, path)):
        kwargs = {"headers": headers_for(call), **call.kwargs(world)}
        answer = web.request(method.upper(), call.url(world), **kwargs)
        assert answer.status_code == call.status, answer.text
        content_type = answer.headers["content-type"]
        schema = documented_schema(document, path, method, call.status, content_type)
        if "json" in content_type:
            errors = list(validator(document, schema).iter_errors(answer.json()))
            assert errors == [], (call.status, [e.message for e in errors])
        else:
            assert schema.get("type") == "string", schema
            if "const" in schema:
                assert answer.text == schema["const"]


def test_every_documented_route_is_called(document: dict[str, Any]) -> None:
    """The calls above reach every operation of the document, so none goes unchecked."""
    documented = {(path, method) for path, ops in document["paths"].items() for method in ops}
    assert {(c.path, c.method) for c in CALLS} == documented


def test_the_documented_signup_body_takes_what_the_browser_posts(
    document: dict[str, Any], sandbox: Sandbox
) -> None:
    """Embedded Signup's finish as the browser hands it over is a valid body by the schema,
    ids given as numbers included; a finish without its WABA is not."""
    body = document["paths"]["/signup"]["post"]["requestBody"]["content"]["application/json"]
    check = validator(document, body["schema"])
    seeded = sandbox.add_business("Lucky Shrub", 1)
    result = sandbox.complete_signup(seeded.waba_id)
    posted = {"code": result.code, "session": dict(result.session)}
    assert list(check.iter_errors(posted)) == []
    numeric = json.loads(json.dumps(posted))
    numeric["session"]["data"]["waba_id"] = int(seeded.waba_id)
    assert list(check.iter_errors(numeric)) == []
    del numeric["session"]["data"]["waba_id"]
    assert list(check.iter_errors(numeric)) != []


def test_the_media_route_is_documented_as_bytes(
    web: TestClient, world: World, document: dict[str, Any]
) -> None:
    """Stored media is served as the documented bytes, with the documented headers."""
    answer = web.get(f"/v1/media/{DIGEST}", headers=FEED)
    assert answer.content == MEDIA
    documented = document["paths"]["/v1/media/{sha256}"]["get"]["responses"]["200"]
    assert documented["content"]["*/*"]["schema"] == {"type": "string", "format": "binary"}
    for name, header in documented["headers"].items():
        assert answer.headers[name] == header["schema"]["const"]


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from references(value)
    elif isinstance(node, list):
        for item in node:
            yield from references(item)


def test_every_reference_in_the_document_resolves(document: dict[str, Any]) -> None:
    """No ``$ref`` points at a schema the components do not hold."""
    names = set(document["components"]["schemas"])
    refs = set(references(document))
    assert refs
    assert {r for r in refs if r.removeprefix("#/components/schemas/") not in names} == set()


def test_read_parameters_are_documented_with_the_bounds_the_handlers_enforce(
    web: TestClient, world: World, document: dict[str, Any]
) -> None:
    """``limit``'s documented bounds and ``order``'s values are exactly those accepted."""
    operation = document["paths"][MESSAGES]["get"]
    parameters = {p["name"]: p["schema"] for p in operation["parameters"]}
    limit, order = parameters["limit"], parameters["order"]
    url = f"/v1/onboardings/{world.onboarding_id}/threads/{world.peer_id}/messages"
    for value, accepted in [
        (limit["minimum"] - 1, False),
        (limit["minimum"], True),
        (limit["maximum"], True),
        (limit["maximum"] + 1, False),
    ]:
        answer = web.get(url, params={"limit": str(value)}, headers=FEED)
        assert (answer.status_code == 200) is accepted, value
    for value in order["enum"]:
        assert web.get(url, params={"order": value}, headers=FEED).status_code == 200
    for name in ("onboarding_id", "peer_id"):
        assert parameters[name] | {"title": None} == {
            "type": "integer",
            "minimum": 1,
            "maximum": 2**63 - 1,
            "title": None,
        }


def test_a_route_reading_its_request_by_hand_must_declare_it(rt: Runtime) -> None:
    """Every documented route that takes the raw request states what it reads: FastAPI cannot
    see it, so a new one without ``openapi_extra`` fails here."""
    app = create_app(rt)
    routes = [
        r
        for router in app.state.routers
        for r in router.routes
        if isinstance(r, APIRoute) and r.include_in_schema
    ]
    assert routes
    bare = [
        r.path for r in routes if r.dependant.request_param_name is not None and not r.openapi_extra
    ]
    assert bare == []


def test_the_problem_schema_is_the_one_every_error_uses(document: dict[str, Any]) -> None:
    """Every 4xx answer of every route is the one problem schema, as problem+json."""
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                if re.fullmatch(r"4\d\d", status):
                    assert answer["content"] == {
                        "application/problem+json": {
                            "schema": {"$ref": "#/components/schemas/Problem"}
                        }
                    }, (method, path, status)
