"""The Graph client: one choke point, Meta's error envelope turned into typed errors."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from structlog.testing import capture_logs

from onboarding.meta.errors import (
    BadRequestError,
    BsuidRecipientError,
    CodeExchangeError,
    GraphPermissionError,
    GraphTransportError,
    MalformedResponseError,
    MediaTooLargeError,
    PolicyError,
    RateLimitedError,
    SyncAlreadyRequestedError,
    SyncWindowClosedError,
    TokenInvalidError,
    TransientGraphError,
)
from onboarding.meta.graph import GraphClient

Handler = Callable[[httpx.Request], httpx.Response]


def envelope(
    code: int, message: str = "error", status: int = 400, **extra: object
) -> httpx.Response:
    error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "AbCdEf123"}
    error.update(extra)
    return httpx.Response(status, json={"error": error})


def client(handler: Handler, **kw: object) -> GraphClient:
    return GraphClient(
        app_id="1",
        app_secret="app-secret-value",
        transport=httpx.MockTransport(handler),
        max_wait=0.001,
        **kw,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        (1, 500, TransientGraphError),
        (2, 503, TransientGraphError),
        (131016, 500, TransientGraphError),
        (4, 400, RateLimitedError),
        (80007, 400, RateLimitedError),
        (130429, 400, RateLimitedError),
        (190, 401, TokenInvalidError),
        (10, 403, GraphPermissionError),
        (200, 403, GraphPermissionError),
        (100, 400, BadRequestError),
        (368, 400, PolicyError),
        (131062, 400, BsuidRecipientError),
        (2593107, 400, SyncAlreadyRequestedError),
        (2593108, 400, SyncWindowClosedError),
        (999999, 400, BadRequestError),
    ],
)
def test_error_codes_map_to_types(code: int, status: int, expected: type[Exception]) -> None:
    """Each documented Graph error code becomes its exception type, whatever the HTTP status."""
    graph = client(lambda r: envelope(code, status=status), max_attempts=1)
    with pytest.raises(expected) as info:
        graph.get_phone_number("106540352242922", "EAAGtoken", fields="id")
    assert info.value.code == code
    assert info.value.fbtrace_id == "AbCdEf123"
    assert info.value.endpoint == "{id}"


def test_code_exchange_refusal_is_its_own_type() -> None:
    """A used or expired signup code (code 100 on oauth/access_token) is a CodeExchangeError."""
    graph = client(
        lambda r: envelope(100, "This authorization code has been used.", error_subcode=36009)
    )
    with pytest.raises(CodeExchangeError) as info:
        graph.exchange_code("AQcode-abc")
    assert info.value.subcode == 36009


def test_transient_errors_are_retried_a_bounded_number_of_times() -> None:
    """A 5xx is retried quickly, up to max_attempts, then raised."""
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return envelope(1, "An unknown error has occurred.", status=500)

    with pytest.raises(TransientGraphError):
        client(handler, max_attempts=3).get_phone_number("1", "EAAGtoken", fields="id")
    assert len(calls) == 3


def test_transient_error_then_success_returns_the_answer() -> None:
    """A transient failure followed by success is invisible to the caller."""
    answers = iter([envelope(2, status=503), httpx.Response(200, json={"id": "1"})])
    graph = client(lambda r: next(answers))
    assert graph.get_phone_number("1", "EAAGtoken", fields="id") == {"id": "1"}


def test_rate_limits_are_not_retried_inside_the_client() -> None:
    """Throttling is left to the task's retry with backoff: the client raises at once."""
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        usage = {
            "123": [
                {
                    "type": "whatsapp_business_management",
                    "call_count": 100,
                    "estimated_time_to_regain_access": 2,
                }
            ]
        }
        response = envelope(80007, "(#80007) Rate limit issues")
        response.headers["X-Business-Use-Case-Usage"] = json.dumps(usage)
        return response

    with pytest.raises(RateLimitedError) as info:
        client(handler).get_phone_number("1", "EAAGtoken", fields="id")
    assert len(calls) == 1
    assert info.value.retry_after == 120.0


def test_sync_request_is_never_retried() -> None:
    """smb_app_data is sent once even when the answer is a 5xx: it may have been applied."""
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return envelope(1, status=500)

    with pytest.raises(TransientGraphError) as info:
        client(handler).request_sync("106540352242922", "EAAGtoken", "history")
    assert len(calls) == 1
    assert info.value.maybe_applied is True


def test_sync_request_sends_meta_body_and_bearer() -> None:
    """The sync trigger posts messaging_product and sync_type with the business token."""
    seen: dict[str, object] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["path"] = request.url.path
        seen["auth"] = request.headers["authorization"]
        seen["body"] = json.loads(request.content)
        return httpx.Response(200, json={"messaging_product": "whatsapp", "request_id": "42"})

    assert client(handler).request_sync("106540352242922", "EAAGtok", "history") == "42"
    assert seen == {
        "path": "/v25.0/106540352242922/smb_app_data",
        "auth": "Bearer EAAGtok",
        "body": {"messaging_product": "whatsapp", "sync_type": "history"},
    }


def test_dropped_connection_is_a_maybe_applied_transport_error() -> None:
    """No answer after sending means the call may have been applied."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("Server disconnected", request=request)

    with pytest.raises(GraphTransportError) as info:
        client(handler).request_sync("1", "EAAGtoken", "history")
    assert info.value.maybe_applied is True


def test_connect_failure_was_certainly_not_applied() -> None:
    """A connection that never opened cannot have applied anything."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(GraphTransportError) as info:
        client(handler, max_attempts=1).request_sync("1", "EAAGtoken", "history")
    assert info.value.maybe_applied is False


def test_non_json_success_is_malformed() -> None:
    """A 2xx whose body is not a JSON object is refused with a clear error."""
    graph = client(lambda r: httpx.Response(200, text="<html>oops</html>"))
    with pytest.raises(MalformedResponseError):
        graph.get_phone_number("1", "EAAGtoken", fields="id")


def test_error_without_envelope_is_classified_by_status() -> None:
    """A 502 from a proxy without Meta's envelope is transient; a bare 404 is permanent."""
    with pytest.raises(TransientGraphError):
        client(lambda r: httpx.Response(502, text="Bad Gateway"), max_attempts=1).subscribe_app(
            "1", "EAAGtoken"
        )
    with pytest.raises(BadRequestError):
        client(lambda r: httpx.Response(404, text="nope")).subscribe_app("1", "EAAGtoken")


def test_exchange_without_access_token_is_malformed() -> None:
    """A code exchange answer without access_token is refused."""
    graph = client(lambda r: httpx.Response(200, json={"token_type": "bearer"}))
    with pytest.raises(MalformedResponseError):
        graph.exchange_code("AQcode")


def test_phone_numbers_follow_paging_next() -> None:
    """Listing follows paging.next across pages until it is absent, even past short pages."""
    pages = {
        None: {
            "data": [{"id": "1"}],
            "paging": {"next": "https://graph.facebook.com/v25.0/9/phone_numbers?after=A"},
        },
        "A": {
            "data": [],
            "paging": {"next": "https://graph.facebook.com/v25.0/9/phone_numbers?after=B"},
        },
        "B": {"data": [{"id": "2"}, {"id": "3"}], "paging": {"cursors": {"after": "C"}}},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=pages[request.url.params.get("after")])

    numbers = list(client(handler).list_phone_numbers("9", "EAAGtoken", fields="id"))
    assert [n["id"] for n in numbers] == ["1", "2", "3"]


def test_paging_next_to_another_host_is_refused() -> None:
    """A paging.next on another host is never followed: it would leak the business token."""
    body = {"data": [], "paging": {"next": "https://evil.example/v25.0/9/phone_numbers"}}
    graph = client(lambda r: httpx.Response(200, json=body))
    with pytest.raises(MalformedResponseError):
        list(graph.list_phone_numbers("9", "EAAGtoken", fields="id"))


def test_object_ids_cannot_escape_the_path() -> None:
    """An id that is not all digits is refused before any request is made."""
    graph = client(lambda r: pytest.fail("no request expected"))
    with pytest.raises(BadRequestError):
        graph.subscribe_app("../me", "EAAGtoken")


def test_errors_are_logged_with_fbtrace_id_and_no_token() -> None:
    """A Graph error is logged with its code and fbtrace_id; the token never appears."""
    graph = client(lambda r: envelope(190, "Invalid OAuth access token", status=401))
    with capture_logs() as logs, pytest.raises(TokenInvalidError):
        graph.get_phone_number("1", "EAAGsecrettoken123", fields="id")
    event = next(e for e in logs if e["event"] == "graph_error")
    assert event["fbtrace_id"] == "AbCdEf123"
    assert event["graph_code"] == 190
    assert "EAAGsecrettoken123" not in repr(logs)


def test_media_download_retries_transient_failures_quickly_and_boundedly() -> None:
    """A download is a read: a 5xx or a cut connection is retried, at most max_attempts."""
    answers = [
        envelope(2, "Service temporarily unavailable", status=503),
        httpx.ReadError("connection reset"),
        httpx.Response(200, content=b"\xff\xd8 jpeg bytes"),
    ]
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["authorization"])
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    graph = client(handler, max_attempts=3)
    url = "https://graph.facebook.com/v25.0/media/bytes"
    assert graph.download(url, "EAAtoken", max_bytes=1024, allowed_hosts=frozenset()) == (
        b"\xff\xd8 jpeg bytes"
    )
    assert seen == ["Bearer EAAtoken"] * 3

    failing = client(lambda _: envelope(2, "unavailable", status=503), max_attempts=2)
    with pytest.raises(TransientGraphError):
        failing.download(url, "EAAtoken", max_bytes=1024, allowed_hosts=frozenset())


def test_media_download_is_not_retried_when_the_failure_is_permanent() -> None:
    """An oversized body is a permanent failure: one call, no retry."""
    calls: list[int] = []

    def handler(_: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(200, content=b"x" * 2048)

    graph = client(handler, max_attempts=3)
    url = "https://graph.facebook.com/v25.0/media/bytes"
    with pytest.raises(MediaTooLargeError, match="over 1024"):
        graph.download(url, "EAAtoken", max_bytes=1024, allowed_hosts=frozenset())
    assert calls == [1]


def test_media_from_the_configured_graph_url_keeps_its_scheme_and_port() -> None:
    """The operator's Graph URL (the sandbox: plain HTTP, a loopback port) serves media as given."""
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, content=b"bytes")

    graph = GraphClient(
        app_id="1",
        app_secret="app-secret-value",
        base_url="http://127.0.0.1:8081",
        transport=httpx.MockTransport(handler),
    )
    url = "http://127.0.0.1:8081/_sandbox/media/1"
    assert graph.download(url, "EAAtoken", max_bytes=64, allowed_hosts=frozenset()) == b"bytes"
    for other in ("http://127.0.0.1:8082/_sandbox/media/1", "http://127.0.0.1/_sandbox/media/1"):
        with pytest.raises(MalformedResponseError):
            graph.download(other, "EAAtoken", max_bytes=64, allowed_hosts=frozenset())
    assert seen == [url]
