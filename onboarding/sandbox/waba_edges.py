"""The WABA's edges: its paged phone number list and the app's webhook subscription.

``GET /{waba_id}/phone_numbers`` pages with opaque ``before``/``after`` cursors and ``limit``
(25 by default); ``GET|POST|DELETE /{waba_id}/subscribed_apps`` reads, makes (optionally with
``override_callback_uri`` and ``verify_token``) and removes the app's subscription.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlencode

import httpx

from onboarding.sandbox.errors import GraphReplyError, nonexisting_field, unsupported_request
from onboarding.sandbox.nodes import (
    NUMBER_NODE,
    PHONE_FIELDS,
    WABA_NODE,
    parse_fields,
    render_number,
    select,
)
from onboarding.sandbox.routes import Route, ok, origin
from onboarding.sandbox.world import Waba, World

DEFAULT_PAGE_LIMIT: Final = 25
BIZ_APP_FIELDS: Final = frozenset({"is_on_biz_app", "platform_type"})
"""Fields the list returns only when requested (and only if the sandbox is so configured)."""
LIST_DEFAULT_FIELDS: Final = (
    "id",
    "display_phone_number",
    "verified_name",
    "quality_rating",
    "code_verification_status",
    "status",
    "name_status",
    "throughput",
)


def waba_edge(
    world: World, request: httpx.Request, route: Route, waba: Waba, params: Mapping[str, Any]
) -> httpx.Response:
    """Answer a call on one of the WABA's edges."""
    method = request.method.upper()
    edge = route.edge or ""
    if edge == "phone_numbers" and method == "GET":
        return ok(list_numbers(world, request, route, waba, params), route)
    if edge == "subscribed_apps":
        if method == "GET":
            return ok(subscriptions(world, waba), route)
        if method == "POST":
            subscribe(waba, params)
            return ok({"success": True}, route)
        if method == "DELETE":
            waba.subscribed = False
            waba.override_callback_uri = None
            waba.override_verify_token = None
            return ok({"success": True}, route)
    if method == "GET":
        raise nonexisting_field(edge, WABA_NODE)
    raise unsupported_request(method, waba.id)


def list_numbers(
    world: World, request: httpx.Request, route: Route, waba: Waba, params: Mapping[str, Any]
) -> dict[str, Any]:
    """``GET /{waba_id}/phone_numbers``: one page of the WABA's numbers."""
    requested = parse_fields(params.get("fields"))
    if requested:
        names = select(requested, PHONE_FIELDS, NUMBER_NODE)
        if not world.rules.list_includes_biz_app_fields:
            names = [name for name in names if name not in BIZ_APP_FIELDS]
    else:
        names = list(LIST_DEFAULT_FIELDS)
    limit = _limit(params.get("limit"))
    ids = waba.number_ids
    if params.get("after"):
        start = _cursor_index(str(params["after"]), waba) + 1
        end = start + limit
    elif params.get("before"):
        end = _cursor_index(str(params["before"]), waba)
        start = max(end - limit, 0)
    else:
        start, end = 0, limit
    page_ids = ids[start:end]
    result: dict[str, Any] = {
        "data": [render_number(world.numbers[pid], names) for pid in page_ids]
    }
    if not page_ids:
        return result
    before, after = _cursor(waba, page_ids[0]), _cursor(waba, page_ids[-1])
    paging: dict[str, Any] = {"cursors": {"before": before, "after": after}}
    if start > 0:
        paging["previous"] = _page_url(request, route, limit, "before", before)
    if end < len(ids):
        paging["next"] = _page_url(request, route, limit, "after", after)
    result["paging"] = paging
    return result


def _limit(raw: Any) -> int:
    if raw is None or raw == "":
        return DEFAULT_PAGE_LIMIT
    try:
        limit = int(raw)
    except (TypeError, ValueError):
        raise GraphReplyError("(#100) Param limit must be a positive integer", 100) from None
    if limit <= 0:
        raise GraphReplyError("(#100) Param limit must be a positive integer", 100)
    return limit


def _cursor(waba: Waba, number_id: str) -> str:
    raw = f"sandbox:{waba.id}:{number_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_index(cursor: str, waba: Waba) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        prefix, waba_id, number_id = base64.urlsafe_b64decode(padded.encode()).decode().split(":")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise GraphReplyError("(#100) Invalid pagination cursor", 100) from None
    if prefix != "sandbox" or waba_id != waba.id or number_id not in waba.number_ids:
        raise GraphReplyError("(#100) Invalid pagination cursor", 100)
    return waba.number_ids.index(number_id)


def _page_url(request: httpx.Request, route: Route, limit: int, direction: str, cursor: str) -> str:
    kept = [
        (key, value)
        for key, value in request.url.params.multi_items()
        if key not in {"after", "before", "limit"}
    ]
    query = urlencode([*kept, ("limit", str(limit)), (direction, cursor)])
    return f"{origin(request)}/{route.version}/{route.object_id}/phone_numbers?{query}"


def subscriptions(world: World, waba: Waba) -> dict[str, Any]:
    """``GET /{waba_id}/subscribed_apps``: the app, if subscribed, with its override."""
    if not waba.subscribed:
        return {"data": []}
    app_id = world.rules.app_id
    item: dict[str, Any] = {
        "whatsapp_business_api_data": {
            "id": app_id,
            "link": f"https://www.facebook.com/games/?app_id={app_id}",
            "name": world.rules.app_name,
        }
    }
    if waba.override_callback_uri:
        item["override_callback_uri"] = waba.override_callback_uri
    return {"data": [item]}


def subscribe(waba: Waba, params: Mapping[str, Any]) -> None:
    """``POST /{waba_id}/subscribed_apps``: subscribe, with or without a callback override.

    As on Meta, a POST without ``override_callback_uri`` removes the override set earlier.
    """
    uri = params.get("override_callback_uri")
    verify_token = params.get("verify_token")
    if uri is None and verify_token is None:
        waba.subscribed = True
        waba.override_callback_uri = None
        waba.override_verify_token = None
        return
    if not isinstance(uri, str) or not uri or not isinstance(verify_token, str):
        raise GraphReplyError(
            "(#100) override_callback_uri and verify_token must be provided together", 100
        )
    if len(uri) > 200 or not uri.startswith("https://"):
        raise GraphReplyError(
            "(#100) Param override_callback_uri must be an https URL of at most 200 characters",
            100,
        )
    waba.subscribed = True
    waba.override_callback_uri = uri
    waba.override_verify_token = verify_token
