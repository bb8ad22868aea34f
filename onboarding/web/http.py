"""What every route shares: bearer checks, error answers, and bodies read within limits.

Every error is one shape, RFC 9457 ``application/problem+json``: ``type`` (``about:blank``: the
status says what kind of problem), ``title`` (the status phrase), ``status``, ``detail`` (what
went wrong, in words), ``error`` (a stable code to branch on, e.g. ``invalid_query``) and, for
bad fields, ``errors``: ``[{"field", "message"}]`` with the field's path.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

#: Row ids are 64-bit integers; a path id outside this range names no row.
MAX_ROW_ID = 2**63 - 1


def bearer_ok(request: Request, expected: str) -> bool:
    """Whether the request carries ``Authorization: Bearer <expected>`` (constant time)."""
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented or not expected:
        return False
    return hmac.compare_digest(presented.strip().encode(), expected.encode())


PROBLEM_JSON = "application/problem+json"


def problem_body(status: int, error: str, detail: str, **extra: Any) -> dict[str, Any]:
    """An RFC 9457 problem: ``type``, ``title``, ``status``, ``detail``, plus ``error`` (a stable
    code) and any ``extra`` members (``errors`` for bad fields)."""
    return {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "error": error,
        **extra,
    }


def problem(
    status: int,
    error: str,
    detail: str,
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """An error answer in the one shape every route uses (:func:`problem_body`)."""
    return JSONResponse(
        problem_body(status, error, detail, **extra),
        status_code=status,
        headers=dict(headers or {}),
        media_type=PROBLEM_JSON,
    )


def unauthorized() -> JSONResponse:
    return problem(
        401,
        "unauthorized",
        "a valid bearer token is required",
        headers={"WWW-Authenticate": "Bearer"},
    )


def not_found(detail: str = "no such resource") -> JSONResponse:
    return problem(404, "not_found", detail)


def invalid(errors: list[dict[str, str]]) -> JSONResponse:
    return problem(422, "invalid_body", "the request body has invalid fields", errors=errors)


async def run_in_thread(fn: Any, *args: Any) -> Response:
    """Run a blocking handler (database work) off the event loop."""
    result: Response = await run_in_threadpool(fn, *args)
    return result


class BodyRefusedError(Exception):
    """A request body refused before it was read in full; the connection is closed after."""

    def __init__(self, status: int, error: str, detail: str, **facts: Any) -> None:
        super().__init__(error)
        self.status = status
        self.body = problem_body(status, error, detail, **facts)


async def read_limited(request: Request, limit: int, timeout: float) -> bytes:
    """The body, counted as it streams in: at most ``limit`` bytes within ``timeout`` seconds.

    The headers are not trusted to say how long the body is. A request carrying both
    ``Content-Length`` and ``Transfer-Encoding`` is refused (``400``): the two can frame
    different bodies (request smuggling; RFC 9112 §6.3), and the server frames by the
    chunked encoding whatever ``Content-Length`` claims. A declared length over the limit is
    refused at once, and any body is cut off the moment its bytes pass the limit (``413``),
    so nothing larger is ever buffered. A client that has not sent the whole body within
    ``timeout`` gets ``408`` (slow clients cannot hold a connection open indefinitely).
    """
    headers = request.headers
    declared = headers.get("content-length")
    if declared is not None and "transfer-encoding" in headers:
        raise BodyRefusedError(
            400, "ambiguous_framing", "Content-Length and Transfer-Encoding together"
        )
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyRefusedError(
            413, "too_large", f"the body is over {limit} bytes", limit_bytes=limit
        )
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyRefusedError(
                        413, "too_large", f"the body is over {limit} bytes", limit_bytes=limit
                    )
                chunks.append(chunk)
    except TimeoutError:
        raise BodyRefusedError(
            408,
            "body_timeout",
            f"the body did not arrive within {timeout} s",
            timeout_seconds=timeout,
        ) from None
    return b"".join(chunks)


def bad_query(errors: list[dict[str, str]]) -> JSONResponse:
    """``400``: query parameters that name nothing or hold what they cannot."""
    return problem(400, "invalid_query", "the query has invalid parameters", errors=errors)


def unknown_parameters(request: Request, allowed: set[str]) -> list[dict[str, str]]:
    """A field error for each query parameter a route does not take (a misspelt filter must
    not silently widen what comes back)."""
    return [
        {
            "field": name,
            "message": f"unknown parameter; this route takes {', '.join(sorted(allowed))}",
        }
        for name in sorted(set(request.query_params) - allowed)
    ]


def whole_number(
    value: str | None, field: str, low: int, high: int, default: int
) -> int | dict[str, str]:
    """``value`` as an int within ``[low, high]``, ``default`` if absent, else a field error."""
    if value is None:
        return default
    if value.isascii() and value.isdigit() and len(value) <= 19 and low <= int(value) <= high:
        return int(value)
    return {"field": field, "message": f"a whole number from {low} to {high}"}
