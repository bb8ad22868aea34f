"""The web app at its edges, over raw sockets against the real uvicorn process and PostgreSQL.

What an HTTP client library would never send: both ``Content-Length`` and
``Transfer-Encoding``, bodies that never end, a body trickled in one byte at a time, row ids
beyond 64 bits, strings PostgreSQL cannot hold. Each gets a clear answer, and nothing is stored.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import select
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import func
from sqlalchemy import select as sql_select

from benchmarks._harness import StackConfig, WebServer, start_web
from models import AbandonedSignup, Database, InboxDelivery, Onboarding
from onboarding.sandbox import SandboxServer

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
#: The web app of :func:`slow_web` gives a request body this long to arrive.
BODY_TIMEOUT = 1.0


@dataclass(frozen=True)
class RawAnswer:
    """What came back on the socket, and how much of the body went out before it did."""

    status: int
    body: bytes
    sent: int


def chunked(parts: Iterable[bytes]) -> Iterator[bytes]:
    """``parts`` framed in HTTP/1.1 chunked encoding, then the last chunk."""
    for part in parts:
        yield f"{len(part):x}\r\n".encode() + part + b"\r\n"
    yield b"0\r\n\r\n"


def raw_request(
    url: str,
    head: str,
    body: Iterable[bytes],
    *,
    pace: float = 0.0,
    timeout: float = 15.0,
) -> RawAnswer:
    """Send ``head`` then ``body`` piece by piece until the server answers or closes.

    Stops sending as soon as the server has answered (or reset the connection), so the count
    of bytes sent shows whether the server read a body it had no reason to read.
    """
    address = urlsplit(url)
    sent = 0
    received = b""
    with socket.create_connection((address.hostname, address.port), timeout=timeout) as conn:
        conn.sendall(head.replace("\n", "\r\n").encode() + b"\r\n")
        for piece in body:
            if select.select([conn], [], [], 0)[0]:
                break  # the server has answered (or closed): stop sending
            try:
                conn.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
            if pace:
                time.sleep(pace)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = conn.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            received += data
            if _complete(received):
                break
    status_line, _, rest = received.partition(b"\r\n")
    status = int(status_line.split()[1]) if status_line.startswith(b"HTTP/1.1") else 0
    return RawAnswer(status, rest.partition(b"\r\n\r\n")[2], sent)


def _complete(response: bytes) -> bool:
    head, sep, body = response.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value.strip())
    return False


def signed(config: StackConfig, body: bytes) -> str:
    digest = hmac.new(config.app_secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def rows(db: Database, model: type) -> int:
    with db.sessionmaker() as session:
        return int(session.scalar(sql_select(func.count()).select_from(model)) or 0)


def delivery_of(size: int) -> bytes:
    """A signed-looking Meta delivery padded with JSON whitespace to ``size`` bytes."""
    body = json.dumps({"object": "whatsapp_business_account", "entry": []}).encode()
    return body[:-1] + b" " * (size - len(body)) + b"}"


def pieces(data: bytes, size: int = MIB) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def test_webhook_with_both_framing_headers_is_refused_before_its_body_is_read(
    web: WebServer, db: Database
) -> None:
    """Content-Length 5 with a chunked 64 MiB body: 400 at once, the body never read."""
    head = (
        "POST /webhooks/meta HTTP/1.1\nHost: coexist\nContent-Type: application/json\n"
        "Content-Length: 5\nTransfer-Encoding: chunked\n"
    )
    answer = raw_request(web.url, head, chunked(b"x" * MIB for _ in range(64)))
    assert answer.status == 400
    assert json.loads(answer.body)["error"] == "ambiguous_framing"
    assert answer.sent < 8 * MIB
    assert rows(db, InboxDelivery) == 0


def test_signed_webhook_over_the_limit_is_413_however_it_is_framed(
    web: WebServer, db: Database, stack_config: StackConfig
) -> None:
    """A signed 48 MiB delivery is never stored against the 16 MiB limit, chunked or declared."""
    body = delivery_of(48 * MIB)
    base = (
        "POST /webhooks/meta HTTP/1.1\nHost: coexist\nContent-Type: application/json\n"
        f"X-Hub-Signature-256: {signed(stack_config, body)}\n"
    )
    smuggled = raw_request(
        web.url, base + "Content-Length: 5\nTransfer-Encoding: chunked\n", chunked(pieces(body))
    )
    streamed = raw_request(web.url, base + "Transfer-Encoding: chunked\n", chunked(pieces(body)))
    declared = raw_request(web.url, base + f"Content-Length: {len(body)}\n", pieces(body))
    assert (smuggled.status, streamed.status, declared.status) == (400, 413, 413)
    # Cut off once past the limit (socket buffers let a few MiB more out), not read to the end.
    assert streamed.sent <= 24 * MIB
    assert rows(db, InboxDelivery) == 0


def test_signup_with_both_framing_headers_is_refused_and_nothing_recorded(
    web: WebServer, db: Database, stack_config: StackConfig
) -> None:
    """A 200 KB signup framed by both headers is 400; chunked alone it is 413; none recorded."""
    body = json.dumps(
        {
            "code": "AQBx-code",
            "session": {
                "type": "WA_EMBEDDED_SIGNUP",
                "event": "FINISH",
                "data": {"waba_id": "102290129340398", "padding": "x" * 200_000},
            },
        }
    ).encode()
    base = (
        "POST /signup HTTP/1.1\nHost: coexist\nContent-Type: application/json\n"
        f"Authorization: Bearer {stack_config.signup_token}\n"
    )
    smuggled = raw_request(
        web.url,
        base + "Content-Length: 5\nTransfer-Encoding: chunked\n",
        chunked(pieces(body, 16_384)),
    )
    streamed = raw_request(
        web.url, base + "Transfer-Encoding: chunked\n", chunked(pieces(body, 16_384))
    )
    assert (smuggled.status, streamed.status) == (400, 413)
    assert rows(db, Onboarding) == rows(db, AbandonedSignup) == 0


@pytest.fixture(scope="module")
def slow_web(
    stack_config: StackConfig, sandbox_server: SandboxServer, db: Database, log_dir: Path
) -> Iterator[WebServer]:
    """A second web app whose request bodies must arrive within :data:`BODY_TIMEOUT`."""
    config = dataclasses.replace(
        stack_config,
        overrides={**stack_config.overrides, "request_body_timeout_seconds": str(BODY_TIMEOUT)},
    )
    with start_web(config, sandbox_server.url, log_dir / "slow-web") as server:
        yield server


@pytest.mark.parametrize("path", ["/webhooks/meta", "/signup"])
def test_a_body_trickled_in_is_cut_off_with_408(
    slow_web: WebServer, db: Database, stack_config: StackConfig, path: str
) -> None:
    """A client sending its body a byte at a time is answered 408 once the body timeout passes."""
    head = (
        f"POST {path} HTTP/1.1\nHost: coexist\nContent-Type: application/json\n"
        f"Authorization: Bearer {stack_config.signup_token}\nContent-Length: 400\n"
    )
    started = time.monotonic()
    answer = raw_request(slow_web.url, head, (b" " for _ in range(400)), pace=0.05, timeout=10)
    took = time.monotonic() - started
    assert answer.status == 408
    assert json.loads(answer.body)["error"] == "body_timeout"
    assert BODY_TIMEOUT <= took < BODY_TIMEOUT + 3
    assert rows(db, InboxDelivery) == rows(db, Onboarding) == 0


@pytest.mark.parametrize(
    "row_id", ["9223372036854775808", "100000000000000000000000000000", "0", "-1"]
)
def test_row_ids_beyond_64_bits_are_404(
    web: WebServer, stack_config: StackConfig, row_id: str
) -> None:
    """Ids no row can have answer 404 on the status API and the follow-up ack, never 500."""
    auth = {"Authorization": f"Bearer {stack_config.admin_token}"}
    shown = httpx.get(f"{web.url}/onboardings/{row_id}", headers=auth)
    acked = httpx.post(f"{web.url}/follow-ups/{row_id}/ack", headers=auth)
    assert (shown.status_code, acked.status_code) == (404, 404)


UNSTORABLE_SESSIONS: list[Any] = [
    pytest.param({"event": "FINISH", "data": {"waba_id": "1", "x": "a\u0000"}}, id="nul-finish"),
    pytest.param({"event": "CANCEL", "data": {"current_step": "A\u0000"}}, id="nul-cancel"),
    pytest.param({"event": "CANCEL", "data": {"extra": "\ud83d"}}, id="surrogate-cancel"),
]


@pytest.mark.parametrize("session", UNSTORABLE_SESSIONS)
def test_signup_strings_postgresql_cannot_hold_are_422(
    web: WebServer, db: Database, stack_config: StackConfig, session: dict[str, Any]
) -> None:
    """NUL or a lone surrogate in a session string is 422 naming the field, nothing recorded."""
    body = {"code": "AQBx", "session": {"type": "WA_EMBEDDED_SIGNUP", **session}}
    response = httpx.post(
        f"{web.url}/signup",
        content=json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {stack_config.signup_token}",
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"].startswith("session.data.")
    assert rows(db, Onboarding) == rows(db, AbandonedSignup) == 0
