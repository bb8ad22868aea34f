"""The read API under ``/v1`` (bearer ``COEX_FEED_TOKEN``): what coexist synced.

* ``GET /v1/onboardings`` — filters ``state``, ``waba_id``, ``phone_number_id``,
  ``created_after``; ``order`` ``desc`` (newest first, the default) or ``asc``;
* ``GET /v1/onboardings/{id}`` — the same JSON as ``coexist onboardings show --json``;
* ``GET /v1/onboardings/{id}/threads`` — one per peer, most recently active first;
* ``GET /v1/onboardings/{id}/threads/{peer_id}/messages`` — ``order`` ``desc`` (default) or
  ``asc``;
* ``GET /v1/onboardings/{id}/contacts`` — ``removed`` ``true`` or ``false`` to keep only those;
* ``GET /v1/media/{sha256}`` — the stored bytes with their content type, streamed from the
  media store (``503`` while the store cannot be reached, ``500`` if it refuses).

Every list takes ``after`` (a cursor from the previous page's ``next_cursor``) and ``limit``
(1 to 1000, default 100), and answers ``{"<items>": [...], "next_cursor": ...}`` with
``next_cursor`` null on the last page. A bad cursor, limit or filter, or a parameter the route
does not take, is ``400`` (:func:`onboarding.web.http.bad_query`); an id nothing has is ``404``.
The queries are :mod:`onboarding.read`'s; this module only checks and answers. The
parameters are read by hand (so one ``400`` names every bad one) and declared to the OpenAPI
document beside each route; the answers' models are :mod:`onboarding.read.schemas`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import WithJsonSchema

from models import Onboarding, OnboardingState
from onboarding.media_store import MediaStoreError, StoreUnavailable, store_for
from onboarding.read import contacts, messages, onboardings, threads
from onboarding.read.media import find_media
from onboarding.read.pages import DEFAULT_LIMIT, MAX_LIMIT, CursorError, Order, Page
from onboarding.read.schemas import ContactPage, MessagePage, OnboardingPage, ThreadPage
from onboarding.runtime import Runtime
from onboarding.views import onboarding_detail
from onboarding.web.feed import feed_authorized
from onboarding.web.http import (
    MAX_ROW_ID,
    bad_query,
    not_found,
    problem,
    run_in_thread,
    unauthorized,
    unknown_parameters,
    whole_number,
)
from onboarding.web.openapi import ROW_ID, errors, query, secured
from onboarding.web.schemas import OnboardingDetail

T = TypeVar("T")
log = structlog.get_logger(__name__)

PAGE = {"after", "limit"}
ONBOARDINGS = PAGE | {"order", "state", "waba_id", "phone_number_id", "created_after"}
MESSAGES = PAGE | {"order"}
CONTACTS = PAGE | {"removed"}
STATES = {state.value for state in OnboardingState}
#: Stored media never changes under its name (the sha256 of its bytes); what it holds is the
#: customer's, so it is never interpreted by a browser as a page of this origin.
MEDIA_HEADERS = {
    "Cache-Control": "private, max-age=31536000, immutable",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; sandbox",
}

#: The query parameters as the OpenAPI document describes them (they are read by hand by
#: :class:`Query`, so each bad one is named in one ``400``).
DOCS: dict[str, dict[str, Any]] = {
    "after": query(
        "after",
        {"type": "string", "minLength": 1, "maxLength": 256},
        "the `next_cursor` of the previous page of this listing (and order)",
    ),
    "limit": query(
        "limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT}
    ),
    "order": query("order", {"type": "string", "enum": ["desc", "asc"], "default": "desc"}),
    "state": query("state", {"type": "string", "enum": sorted(STATES)}),
    "waba_id": query("waba_id", {"type": "string", "pattern": "^[0-9]{1,32}$"}),
    "phone_number_id": query("phone_number_id", {"type": "string", "pattern": "^[0-9]{1,32}$"}),
    "created_after": query(
        "created_after",
        {"type": "string", "maxLength": 64, "examples": ["2026-12-01T00:00:00Z"]},
        "onboardings created after this ISO 8601 time (UTC if it has no offset)",
    ),
    "removed": query(
        "removed", {"type": "boolean"}, "only removed contacts (`true`) or only present ones"
    ),
}
#: Every error answer of the read API, by status.
ERRORS = {
    "s400": "A bad cursor, limit or filter, a parameter given twice or one the route does not "
    "take (`invalid_query`), each named in `errors`.",
    "s404": "No such onboarding, thread or media (or an id no row can have).",
}
FEED_TOKEN = secured("FeedToken")
#: Path ids are read as text (so anything that is not one is ``404``) but documented as ids.
PathId = Annotated[str, WithJsonSchema(ROW_ID)]
Sha256 = Annotated[
    str,
    WithJsonSchema({"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}),
]
MEDIA_ANSWER = {
    "description": "The stored bytes, with the content type of the message that holds them "
    "(`application/octet-stream` when that is not a well-formed media type).",
    "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
    "headers": {
        name: {"schema": {"type": "string", "const": value}}
        for name, value in MEDIA_HEADERS.items()
    },
}


def documented(*names: str) -> dict[str, Any]:
    """``openapi_extra`` of a read route: its query parameters and the feed's token."""
    return {"parameters": [DOCS[name] for name in names], **FEED_TOKEN}


def media_url(sha256: str) -> str:
    return f"/v1/media/{sha256}"


class Query:
    """A route's query string, read field by field; every problem is collected, so one ``400``
    names them all."""

    def __init__(self, request: Request, allowed: set[str]) -> None:
        self.params = request.query_params
        self.errors = (
            unknown_parameters(request, allowed)
            if allowed
            else [
                {"field": name, "message": "unknown parameter; this route takes none"}
                for name in sorted(set(self.params))
            ]
        )
        self.errors += [
            {"field": name, "message": "given more than once"}
            for name in sorted(allowed)
            if len(self.params.getlist(name)) > 1
        ]

    def _error(self, field: str, message: str) -> None:
        self.errors.append({"field": field, "message": message})

    def limit(self) -> int:
        value = whole_number(self.params.get("limit"), "limit", 1, MAX_LIMIT, DEFAULT_LIMIT)
        if isinstance(value, dict):
            self.errors.append(value)
            return DEFAULT_LIMIT
        return value

    def order(self) -> Order:
        value = self.params.get("order", "desc")
        if value == "asc":
            return "asc"
        if value != "desc":
            self._error("order", "asc or desc")
        return "desc"

    def cursor(self, decode: Callable[[str], T]) -> T | None:
        value = self.params.get("after")
        if value is None:
            return None
        try:
            return decode(value)
        except CursorError as exc:
            self._error("after", f"{exc}; pass a next_cursor this listing returned")
            return None

    def digits(self, field: str, longest: int) -> str | None:
        value = self.params.get(field)
        if value is not None and not (
            value.isascii() and value.isdigit() and len(value) <= longest
        ):
            self._error(field, f"digits, at most {longest}")
            return None
        return value

    def state(self) -> str | None:
        value = self.params.get("state")
        if value is not None and value not in STATES:
            self._error("state", f"one of {', '.join(sorted(STATES))}")
            return None
        return value

    def time(self, field: str) -> datetime | None:
        value = self.params.get(field)
        if value is None:
            return None
        try:
            moment = datetime.fromisoformat(value) if len(value) <= 64 else None
        except ValueError:
            moment = None
        if moment is None:
            self._error(field, "an ISO 8601 time, e.g. 2026-12-01T00:00:00Z (UTC if no offset)")
            return None
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    def flag(self, field: str) -> bool | None:
        value = self.params.get(field)
        if value is None:
            return None
        if value not in ("true", "false"):
            self._error(field, "true or false")
            return None
        return value == "true"

    def refused(self) -> Response | None:
        return bad_query(self.errors) if self.errors else None


def row_id(value: str) -> int | None:
    """A path id as an int, or None when no row can have it (the route answers ``404``)."""
    parsed = whole_number(value, "id", 1, MAX_ROW_ID, 0)
    return parsed if isinstance(parsed, int) else None


def listing(items: str, found: Page) -> JSONResponse:
    return JSONResponse({items: found.items, "next_cursor": found.next_cursor})


def routes(get_rt: Callable[[], Runtime]) -> APIRouter:  # noqa: C901 - one closure per route
    router = APIRouter()

    def authorized(request: Request) -> Runtime | None:
        r = get_rt()
        return r if feed_authorized(request, r) else None

    @router.get(
        "/v1/onboardings",
        tags=["read"],
        response_model=OnboardingPage,
        responses=errors(400, 401, 503, **ERRORS),
        openapi_extra=documented(*sorted(ONBOARDINGS)),
    )
    async def list_onboardings(request: Request) -> Response:
        """Onboardings, filtered, newest (or oldest) first."""
        if (r := authorized(request)) is None:
            return unauthorized()
        query = Query(request, ONBOARDINGS)
        order = query.order()
        after = query.cursor(lambda value: onboardings.after_id(value, order))
        filters = onboardings.Filters(
            state=query.state(),
            waba_id=query.digits("waba_id", 32),
            phone_number_id=query.digits("phone_number_id", 32),
            created_after=query.time("created_after"),
        )
        limit = query.limit()
        if (refused := query.refused()) is not None:
            return refused
        return await run_in_thread(_onboardings, r, filters, order, after, limit)

    @router.get(
        "/v1/onboardings/{onboarding_id}",
        tags=["read"],
        response_model=OnboardingDetail,
        responses=errors(400, 401, 404, 503, **ERRORS),
        openapi_extra=documented(),
    )
    async def show_onboarding(onboarding_id: PathId, request: Request) -> Response:
        """One onboarding: the same JSON as ``coexist onboardings show --json``."""
        if (r := authorized(request)) is None:
            return unauthorized()
        if (oid := row_id(onboarding_id)) is None:
            return not_found()
        if (refused := Query(request, set()).refused()) is not None:
            return refused
        return await run_in_thread(_detail, r, oid)

    @router.get(
        "/v1/onboardings/{onboarding_id}/threads",
        tags=["read"],
        response_model=ThreadPage,
        responses=errors(400, 401, 404, 503, **ERRORS),
        openapi_extra=documented(*sorted(PAGE)),
    )
    async def list_threads(onboarding_id: PathId, request: Request) -> Response:
        """An onboarding's threads, one per peer, most recently active first."""
        if (r := authorized(request)) is None:
            return unauthorized()
        if (oid := row_id(onboarding_id)) is None:
            return not_found()
        query = Query(request, PAGE)
        after = query.cursor(threads.after_position)
        limit = query.limit()
        if (refused := query.refused()) is not None:
            return refused
        return await run_in_thread(_threads, r, oid, after, limit)

    @router.get(
        "/v1/onboardings/{onboarding_id}/threads/{peer_id}/messages",
        tags=["read"],
        response_model=MessagePage,
        responses=errors(400, 401, 404, 503, **ERRORS),
        openapi_extra=documented(*sorted(MESSAGES)),
    )
    async def list_messages(onboarding_id: PathId, peer_id: PathId, request: Request) -> Response:
        """A thread's messages in time order, newest first unless ``order=asc``."""
        if (r := authorized(request)) is None:
            return unauthorized()
        oid, pid = row_id(onboarding_id), row_id(peer_id)
        if oid is None or pid is None:
            return not_found()
        query = Query(request, MESSAGES)
        order = query.order()
        after = query.cursor(lambda value: messages.after_position(value, order))
        limit = query.limit()
        if (refused := query.refused()) is not None:
            return refused
        return await run_in_thread(_messages, r, oid, pid, order, after, limit)

    @router.get(
        "/v1/onboardings/{onboarding_id}/contacts",
        tags=["read"],
        response_model=ContactPage,
        responses=errors(400, 401, 404, 503, **ERRORS),
        openapi_extra=documented(*sorted(CONTACTS)),
    )
    async def list_contacts(onboarding_id: PathId, request: Request) -> Response:
        """An onboarding's contacts, each with its peer, by id."""
        if (r := authorized(request)) is None:
            return unauthorized()
        if (oid := row_id(onboarding_id)) is None:
            return not_found()
        query = Query(request, CONTACTS)
        after = query.cursor(contacts.after_id)
        removed = query.flag("removed")
        limit = query.limit()
        if (refused := query.refused()) is not None:
            return refused
        return await run_in_thread(_contacts, r, oid, removed, after, limit)

    @router.get(
        "/v1/media/{sha256}",
        tags=["read"],
        response_class=Response,
        responses={200: MEDIA_ANSWER, **errors(400, 401, 404, 503, **ERRORS)},
        openapi_extra=documented(),
    )
    async def media(sha256: Sha256, request: Request) -> Response:
        """Stored media by the sha256 of its bytes, with its content type."""
        if (r := authorized(request)) is None:
            return unauthorized()
        if (refused := Query(request, set()).refused()) is not None:
            return refused
        return await run_in_thread(_media, r, sha256)

    return router


def _onboardings(
    r: Runtime, filters: onboardings.Filters, order: Order, after: int | None, limit: int
) -> Response:
    with r.db.sessionmaker() as session:
        found = onboardings.read_onboardings(
            session, filters=filters, order=order, after=after, limit=limit
        )
        return listing("onboardings", found)


def _detail(r: Runtime, onboarding_id: int) -> Response:
    with r.db.sessionmaker() as session:
        onboarding = session.get(Onboarding, onboarding_id)
        if onboarding is None:
            return not_found()
        return JSONResponse(onboarding_detail(session, onboarding))


def _threads(
    r: Runtime, onboarding_id: int, after: threads.Position | None, limit: int
) -> Response:
    with r.db.sessionmaker() as session:
        if session.get(Onboarding, onboarding_id) is None:
            return not_found()
        return listing(
            "threads", threads.read_threads(session, onboarding_id, after=after, limit=limit)
        )


def _messages(
    r: Runtime,
    onboarding_id: int,
    peer_id: int,
    order: Order,
    after: messages.Position | None,
    limit: int,
) -> Response:
    with r.db.sessionmaker() as session:
        found = messages.read_messages(
            session,
            onboarding_id,
            peer_id,
            order=order,
            after=after,
            limit=limit,
            media_url=media_url,
        )
        # Messages of the pair prove the thread is there; only an empty page pays the look.
        if not found.items and not messages.thread_exists(session, onboarding_id, peer_id):
            return not_found()
        return listing("messages", found)


def _contacts(
    r: Runtime, onboarding_id: int, removed: bool | None, after: int | None, limit: int
) -> Response:
    with r.db.sessionmaker() as session:
        if session.get(Onboarding, onboarding_id) is None:
            return not_found()
        found = contacts.read_contacts(
            session, onboarding_id, removed=removed, after=after, limit=limit
        )
        return listing("contacts", found)


def _media(r: Runtime, sha256: str) -> Response:
    with r.db.sessionmaker() as session:
        try:
            stored = find_media(session, store_for(r.settings), sha256)
        except StoreUnavailable as exc:
            log.warning("media_store_unavailable", store=exc.location, error=exc.message)
            return problem(
                503,
                "media_store_unavailable",
                "the media store cannot be reached; try again later",
                headers={"Retry-After": "30"},
            )
        except MediaStoreError as exc:
            log.error("media_store_refused", store=exc.location, error=exc.message)
            return problem(500, "media_store_error", "the media store refused the read")
    if stored is None:
        return not_found()
    return StreamingResponse(
        stored.object.chunks(),
        media_type=stored.content_type,
        headers={**MEDIA_HEADERS, "Content-Length": str(stored.object.size)},
    )
