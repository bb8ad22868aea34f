"""The fake Graph's dispatch: one routed request to the endpoint that answers it.

``oauth`` and ``media_download`` need no token, ``debug_token`` the app token; every other
call is authenticated (:mod:`.auth`, ``appsecret_proof`` included), and an object the token's
business does not own is answered as if it did not exist. A bare object id is a node (number
or WABA), an object id and an edge goes to :mod:`.waba_edges` or :mod:`.number_edges`. Runs
with the world's lock held.
"""

from __future__ import annotations

import httpx

from onboarding.sandbox.auth import authenticate, exchange_code
from onboarding.sandbox.errors import GraphReplyError, unsupported_request
from onboarding.sandbox.media import download_media, media_node
from onboarding.sandbox.nodes import number_node, waba_node
from onboarding.sandbox.number_edges import number_edge
from onboarding.sandbox.records import AcceptedSync
from onboarding.sandbox.routes import Route, ok, request_params
from onboarding.sandbox.token_debug import debug_token
from onboarding.sandbox.waba_edges import waba_edge
from onboarding.sandbox.world import World


def dispatch(  # noqa: C901 - Graph's routing table: endpoint, auth, object, edge, in that order
    world: World, request: httpx.Request, route: Route
) -> tuple[httpx.Response, AcceptedSync | None]:
    """Answer one Graph request; also return the ``smb_app_data`` call it accepted, if any."""
    method = request.method.upper()
    params = request_params(request)
    if route.endpoint == "media_download":
        return download_media(world, request, route, params), None
    if route.endpoint == "oauth":
        if method not in {"GET", "POST"}:
            raise unsupported_request(method, "oauth")
        return exchange_code(world, params, route), None
    if route.endpoint == "debug_token":
        if method != "GET":
            raise unsupported_request(method, "debug_token")
        return debug_token(world, request, route, params), None
    token = authenticate(world, request, params)
    if route.endpoint == "media":
        return media_node(world, request, route, token, params), None
    waba = world.wabas.get(route.object_id)
    number = world.numbers.get(route.object_id)
    if waba is not None and waba.business_id != token.business_id:
        waba = None
    if number is not None and world.owner_of(number.waba_id) != token.business_id:
        number = None
    if waba is None and number is None:
        raise unsupported_request(method, route.object_id)
    edge = route.edge
    if edge is not None and "/" in edge:
        raise GraphReplyError(f"Unknown path components: /{edge}", 2500)
    if edge is None:
        if method != "GET":
            raise unsupported_request(method, route.object_id)
        if number is not None:
            return ok(number_node(number, params), route), None
        assert waba is not None
        return ok(waba_node(waba, params), route), None
    if waba is not None:
        return waba_edge(world, request, route, waba, params), None
    assert number is not None
    return number_edge(world, request, route, number, params)
