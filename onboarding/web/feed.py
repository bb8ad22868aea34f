"""The event feed over HTTP: ``GET /v1/events`` (bearer ``COEX_FEED_TOKEN``).

``after`` is a cursor from an earlier page (absent: from the start of the feed), ``limit`` how
many events at most (1 to 1000, default 100); ``onboarding_id`` and ``type`` (repeatable)
filter. The answer is ``{"events": [...], "next_cursor": "..."}``: ask again with
``after=next_cursor``, which is where the page ended (the same cursor when nothing new came).
Events appear in feed order and never behind a cursor already handed out
(:mod:`onboarding.feed.log`).
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from onboarding.feed.events import EventType
from onboarding.feed.log import MAX_LIMIT, Cursor, CursorError, read
from onboarding.feed.schemas import EventPage
from onboarding.runtime import Runtime
from onboarding.web.http import (
    MAX_ROW_ID,
    bad_query,
    bearer_ok,
    run_in_thread,
    unauthorized,
    unknown_parameters,
    whole_number,
)
from onboarding.web.openapi import errors, secured

PARAMETERS = {"after", "limit", "onboarding_id", "type"}
#: The query parameters as the OpenAPI document describes them (they are read by hand, so each
#: bad one is named in one ``400``).
PARAMETER_DOCS = [
    {
        "name": "after",
        "in": "query",
        "required": False,
        "description": "a cursor: an event's `cursor` or a page's `next_cursor`",
        "schema": {"type": "string", "pattern": "^[0-9]{1,19}-[0-9]{1,19}$"},
    },
    {
        "name": "limit",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 100},
    },
    {
        "name": "onboarding_id",
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1},
    },
    {
        "name": "type",
        "in": "query",
        "required": False,
        "description": "only these event types (repeat the parameter)",
        "schema": {
            "type": "array",
            "items": {"type": "string", "enum": [t.value for t in EventType]},
        },
        "style": "form",
        "explode": True,
    },
]


def feed_authorized(request: Request, r: Runtime) -> bool:
    """Whether the request carries the feed's bearer token (never the admin's)."""
    return bearer_ok(request, r.settings.feed_token.get_secret_value())


def routes(get_rt: Callable[[], Runtime]) -> APIRouter:
    router = APIRouter()

    @router.get(
        "/v1/events",
        tags=["feed"],
        responses={
            200: {"model": EventPage},
            **errors(
                400,
                401,
                503,
                s400="A bad cursor, limit, onboarding id or type, or a parameter the route does "
                "not take (`invalid_query`), each named in `errors`.",
            ),
        },
        openapi_extra={"parameters": PARAMETER_DOCS, **secured("FeedToken")},
    )
    async def events(request: Request) -> Response:
        """The event feed: a page of events after a cursor, and the next cursor."""
        r = get_rt()
        if not feed_authorized(request, r):
            return unauthorized()
        query = _query(request)
        if isinstance(query, Response):
            return query
        return await run_in_thread(_events, r, *query)

    return router


def _query(request: Request) -> tuple[Cursor, int, int | None, list[EventType]] | Response:
    params = request.query_params
    errors = unknown_parameters(request, PARAMETERS)
    after = Cursor()
    if "after" in params:
        try:
            after = Cursor.decode(params["after"])
        except CursorError as exc:
            errors.append({"field": "after", "message": str(exc)})
    limit = whole_number(params.get("limit"), "limit", 1, MAX_LIMIT, 100)
    onboarding_id = whole_number(params.get("onboarding_id"), "onboarding_id", 1, MAX_ROW_ID, 0)
    types: list[EventType] = []
    for value in params.getlist("type"):
        try:
            types.append(EventType(value))
        except ValueError:
            errors.append({"field": "type", "message": f"no event type {value[:64]!r}"})
    errors += [e for e in (limit, onboarding_id) if isinstance(e, dict)]
    if errors:
        return bad_query(errors)
    assert isinstance(limit, int)
    assert isinstance(onboarding_id, int)
    return after, limit, onboarding_id or None, types


def _events(
    r: Runtime, after: Cursor, limit: int, onboarding_id: int | None, types: list[EventType]
) -> Response:
    with r.db.sessionmaker() as session:
        page = read(session, after, limit, onboarding_id=onboarding_id, types=types)
        return JSONResponse({"events": page.events, "next_cursor": page.next_cursor.encode()})
