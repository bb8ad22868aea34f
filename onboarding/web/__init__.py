"""HTTP interface (``uvicorn onboarding.web:app``), one module per group of routes.

* :mod:`.signup` — ``POST /signup``, the browser's Embedded Signup hand-off;
* :mod:`.webhooks` — ``GET``/``POST /webhooks/meta``, Meta's handshake and signed deliveries;
* :mod:`.admin` — ``GET /onboardings/{id}`` and ``POST /follow-ups/{id}/ack`` for operators;
* :mod:`.feed` — ``GET /v1/events``, the event feed for the provider's product;
* :mod:`.read` — ``GET /v1/onboardings…`` and ``GET /v1/media/{sha256}``, what was synced;
* :mod:`.health` — ``GET /healthz``;
* :mod:`.http` — what they share: bearer checks, error answers, bodies read within limits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

from onboarding import runtime as runtime_module
from onboarding.runtime import ConfigurationError, Runtime
from onboarding.web import admin, feed, health, read, signup, webhooks
from onboarding.web.http import BodyRefusedError

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

    app = FastAPI(
        title="coexist", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.add_exception_handler(OperationalError, _database_down)  # type: ignore[arg-type]
    app.add_exception_handler(BodyRefusedError, _body_refused)  # type: ignore[arg-type]
    app.include_router(signup.routes(get_rt))
    app.include_router(webhooks.routes(get_rt, intake))
    app.include_router(admin.routes(get_rt))
    app.include_router(feed.routes(get_rt))
    app.include_router(read.routes(get_rt))
    app.include_router(health.routes(get_rt))
    return app


async def _database_down(_: Request, exc: OperationalError) -> JSONResponse:
    log.error("database_unavailable", error=type(exc).__name__)
    return JSONResponse(
        {"error": "unavailable", "message": "database unavailable; try again"}, status_code=503
    )


async def _body_refused(_: Request, exc: BodyRefusedError) -> JSONResponse:
    log.warning("request_body_refused", status=exc.status, error=exc.body["error"])
    return JSONResponse(exc.body, status_code=exc.status, headers={"Connection": "close"})


def __getattr__(name: str) -> Any:
    # ``uvicorn onboarding.web:app`` builds the app from the environment on first access, so
    # importing this module (tests, the CLI) does not require a configured environment.
    if name == "app":
        return create_app()
    raise AttributeError(name)
