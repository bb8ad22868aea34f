"""How a Graph request reaches an endpoint: its route, its parameters, and the answers' shape.

A path resolves to a :class:`Route`: the endpoint key (those of :data:`~.faults.ENDPOINTS`, or
``unknown``), the API version, the object id and the edge. Parameters come from the query and
a form or JSON body, merged as Graph does.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import parse_qsl

import httpx

from onboarding.sandbox.errors import GraphReplyError, json_response
from onboarding.sandbox.world import World

VERSION_RE: Final = re.compile(r"v\d+\.\d+")
CONTROL_PREFIX: Final = "/_sandbox"
MEDIA_PREFIX: Final = "_media"
UNKNOWN_ENDPOINT: Final = "unknown"
EDGE_ENDPOINTS: Final = frozenset(
    {"phone_numbers", "subscribed_apps", "smb_app_data", "register", "deregister", "messages"}
)


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request goes: endpoint key, API version, object id and edge (if any)."""

    endpoint: str
    version: str
    object_id: str
    edge: str | None


def is_control(path: str) -> bool:
    """Whether ``path`` is the control API's (``/_sandbox/...``), not Graph's."""
    return path == CONTROL_PREFIX or path.startswith(CONTROL_PREFIX + "/")


def _split(path: str) -> tuple[str | None, list[str]]:
    """Split a Graph path into its version (``None`` if absent or malformed) and the rest."""
    segments = [segment for segment in path.split("/") if segment]
    if segments and VERSION_RE.fullmatch(segments[0]):
        return segments[0], segments[1:]
    return None, segments


def resolve(world: World, path: str) -> Route:
    """The route of a Graph path; a bare object id is a WABA, a medium or a phone number."""
    version, rest = _split(path)
    if version is None:
        if len(rest) == 2 and rest[0] == MEDIA_PREFIX:
            return Route("media_download", "", rest[1], None)
        return Route(UNKNOWN_ENDPOINT, "", rest[0] if rest else "", None)
    if rest == ["oauth", "access_token"]:
        return Route("oauth", version, "oauth", "access_token")
    if rest == ["debug_token"]:
        return Route("debug_token", version, "debug_token", None)
    if len(rest) == 1:
        if rest[0] in world.wabas:
            endpoint = "waba"
        elif rest[0] in world.media:
            endpoint = "media"
        else:
            endpoint = "phone_number"
        return Route(endpoint, version, rest[0], None)
    if len(rest) == 2:
        edge = rest[1]
        endpoint = edge if edge in EDGE_ENDPOINTS else UNKNOWN_ENDPOINT
        return Route(endpoint, version, rest[0], edge)
    if len(rest) > 2:
        return Route(UNKNOWN_ENDPOINT, version, rest[0], "/".join(rest[1:]))
    return Route(UNKNOWN_ENDPOINT, version, "", None)


def request_params(request: httpx.Request) -> dict[str, Any]:
    """Merge query parameters and a form or JSON body, as Graph does."""
    params: dict[str, Any] = dict(request.url.params.items())
    body = request.content
    if not body.strip():
        return params
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
        return params
    try:
        decoded = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        raise GraphReplyError(
            "(#100) The request body could not be parsed: expected a JSON object", 100
        ) from None
    if not isinstance(decoded, dict):
        raise GraphReplyError(
            "(#100) The request body could not be parsed: expected a JSON object", 100
        )
    params.update(decoded)
    return params


def origin(request: httpx.Request) -> str:
    """The scheme and host the request came to, for URLs handed back to the caller."""
    return f"{request.url.scheme}://{request.url.netloc.decode('ascii')}"


def ok(payload: Any, route: Route) -> httpx.Response:
    """A 200 Graph answer carrying ``facebook-api-version``."""
    return json_response(200, payload, {"facebook-api-version": route.version})


def render_error(error: GraphReplyError, trace_id: str, route: Route) -> httpx.Response:
    """A Graph error answer, with ``facebook-api-version`` when the route had one."""
    response = error.to_response(trace_id)
    if route.version:
        response.headers["facebook-api-version"] = route.version
    return response
