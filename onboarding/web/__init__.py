"""HTTP interface (``uvicorn onboarding.web:app``), one module per group of routes.

* :mod:`.signup` — ``POST /signup``, the browser's Embedded Signup hand-off;
* :mod:`.webhooks` — ``GET``/``POST /webhooks/meta``, Meta's handshake and signed deliveries;
* :mod:`.admin_api` — ``/v1/admin/…``, every operator action, with its models (:mod:`.schemas`);
* :mod:`.admin` — the first status routes (``GET /onboardings/{id}``, ``GET /signups``,
  ``POST /follow-ups/{id}/ack``), kept for existing callers;
* :mod:`.feed` — ``GET /v1/events``, the event feed for the provider's product;
* :mod:`.read` — ``GET /v1/onboardings…`` and ``GET /v1/media/{sha256}``, what was synced;
* :mod:`.health` — ``GET /livez``, ``/readyz``, ``/healthz``;
* :mod:`.metrics` — ``GET /metrics`` for Prometheus;
* :mod:`.connect` — ``/connect``, the hosted signup page for businesses, its hand-off and its
  progress stream;
* :mod:`.console` — ``/console``, the operator console in the browser (:mod:`.console_auth`);
* :mod:`.http` — what they share: bearer checks, error answers, bodies read within limits;
* :mod:`.openapi` — what ``/openapi.json`` says of the routes that read their requests by hand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from importlib.metadata import version as package_version
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from config import get_settings
from onboarding import metrics as counters
from onboarding import runtime as runtime_module
from onboarding.operations import OperatorError
from onboarding.runtime import ConfigurationError, Runtime
from onboarding.web import (
    admin,
    admin_api,
    connect,
    console,
    feed,
    health,
    metrics,
    read,
    signup,
    webhooks,
)
from onboarding.web.http import PROBLEM_JSON, BodyRefusedError, problem
from onboarding.web.openapi import document

log = structlog.get_logger(__name__)


def create_app(rt: Runtime | None = None) -> FastAPI:
    """The web application; ``rt`` defaults to the process runtime built from settings."""

    def get_rt() -> Runtime:
        return rt or runtime_module.current()

    intake = webhooks.batcher(get_rt)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        missing = get_rt().settings.missing_for("web")
        if missing:
            raise ConfigurationError(f"refusing to start: set {', '.join(missing)}")
        intake.start()
        try:
            yield
        finally:
            await intake.stop()

    docs = (rt.settings if rt is not None else get_settings()).api_docs
    app = FastAPI(
        title="coexist",
        version=package_version("coexist"),
        summary="Onboarding, history sync and lifecycle of WhatsApp Business app numbers "
        "connected to the Cloud API (coexistence).",
        lifespan=lifespan,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
    )
    app.add_exception_handler(OperationalError, _database_down)  # type: ignore[arg-type]
    app.add_exception_handler(BodyRefusedError, _body_refused)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _request_invalid)  # type: ignore[arg-type]
    app.add_exception_handler(OperatorError, _operator_refused)  # type: ignore[arg-type]
    app.state.get_rt = get_rt
    #: Every group of routes the app serves (its OpenAPI test walks them).
    app.state.routers = [
        signup.routes(get_rt),
        webhooks.routes(get_rt, intake),
        admin.routes(get_rt),
        admin_api.router,
        feed.routes(get_rt),
        read.routes(get_rt),
        health.routes(get_rt),
        metrics.routes(get_rt),
        console.routes(get_rt),
        connect.routes(get_rt),
    ]
    for router in app.state.routers:
        app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=console.STATIC), name="console-static")
    app.mount("/connect/static", StaticFiles(directory=connect.STATIC), name="connect-static")

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document(app, app.state.routers)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


async def _database_down(_: Request, exc: OperationalError) -> JSONResponse:
    log.error("database_unavailable", error=type(exc).__name__)
    return problem(
        503, "unavailable", "database unavailable; try again", headers={"Retry-After": "5"}
    )


async def _body_refused(request: Request, exc: BodyRefusedError) -> JSONResponse:
    log.warning("request_body_refused", status=exc.status, error=exc.body["error"])
    if request.url.path == "/webhooks/meta":
        counters.DELIVERIES.labels(f"refused_{exc.body['error']}").inc()
    return JSONResponse(
        exc.body, status_code=exc.status, headers={"Connection": "close"}, media_type=PROBLEM_JSON
    )


#: The ``error`` code of an HTTP status FastAPI or Starlette answers by itself.
_HTTP_ERRORS = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Starlette's own errors (an unknown route, a method a route does not take)."""
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(status).phrase
    return problem(
        status,
        _HTTP_ERRORS.get(status, HTTPStatus(status).phrase.lower().replace(" ", "_")),
        detail,
        headers=exc.headers,
    )


async def _operator_refused(_: Request, exc: OperatorError) -> JSONResponse:
    """What the operators' service layer refused (not found, unsafe, malformed)."""
    return problem(exc.status, exc.error, str(exc))


async def _request_invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
    """A path, query or body value FastAPI could not read: ``422`` naming each field."""
    errors = [
        {"field": ".".join(str(p) for p in e.get("loc", ())) or "request", "message": e["msg"]}
        for e in exc.errors()
    ]
    return problem(422, "invalid_request", "the request has invalid fields", errors=errors)


def __getattr__(name: str) -> Any:
    # ``uvicorn onboarding.web:app`` builds the app from the environment on first access, so
    # importing this module (tests, the CLI) does not require a configured environment.
    if name == "app":
        return create_app()
    raise AttributeError(name)
