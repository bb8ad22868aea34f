"""Routing a Graph request: its endpoint key, object and edge, and its merged parameters."""

from __future__ import annotations

import httpx
import pytest

from onboarding.sandbox.errors import GraphReplyError
from onboarding.sandbox.routes import Route, is_control, request_params, resolve
from onboarding.sandbox.world import AppRules, World


@pytest.fixture
def world() -> World:
    """An empty world with one business."""
    rules = AppRules("1", "s", "app", 30.0, 86400.0, True, 604800.0, 300.0, 20.0)
    world = World(rules, clock=lambda: 1_700_000_000.0, seed=1)
    world.add_business("Acme", [])
    return world


def test_paths_resolve_to_endpoint_keys(world: World) -> None:
    """Oauth, a WABA, an unknown id, an edge, an unknown edge and the media CDN each route."""
    [waba_id] = world.wabas
    assert resolve(world, "/v21.0/oauth/access_token") == Route(
        "oauth", "v21.0", "oauth", "access_token"
    )
    assert resolve(world, f"/v21.0/{waba_id}").endpoint == "waba"
    assert resolve(world, "/v21.0/123").endpoint == "phone_number"
    assert resolve(world, "/v21.0/123/messages") == Route("messages", "v21.0", "123", "messages")
    assert resolve(world, "/v21.0/123/photos").endpoint == "unknown"
    assert resolve(world, "/v21.0/123/a/b") == Route("unknown", "v21.0", "123", "a/b")
    assert resolve(world, "/_media/xyz") == Route("media_download", "", "xyz", None)
    assert resolve(world, "/123").endpoint == "unknown"


def test_the_control_prefix_is_not_graph() -> None:
    """Only /_sandbox and what is under it is the control API."""
    assert is_control("/_sandbox")
    assert is_control("/_sandbox/stats")
    assert not is_control("/_sandboxes")


def test_query_form_and_json_parameters_merge() -> None:
    """The body's parameters join the query's, as Graph merges them."""
    form = httpx.Request("POST", "https://g/v21.0/1?a=1", data={"b": "2"})
    body = httpx.Request("POST", "https://g/v21.0/1?a=1", json={"c": [3]})

    assert request_params(form) == {"a": "1", "b": "2"}
    assert request_params(body) == {"a": "1", "c": [3]}


@pytest.mark.parametrize("content", [b"{not json", b"[1, 2]"])
def test_a_body_that_is_not_a_json_object_is_a_graph_error(content: bytes) -> None:
    """A body neither a form nor a JSON object is Graph's code 100."""
    request = httpx.Request("POST", "https://g/v21.0/1", content=content)

    with pytest.raises(GraphReplyError) as info:
        request_params(request)
    assert info.value.code == 100
