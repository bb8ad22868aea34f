"""``GET /healthz`` (no auth): the database and the broker, as a load balancer reads them."""

from __future__ import annotations

from collections.abc import Callable

import redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from onboarding.runtime import Runtime
from onboarding.web.http import run_in_thread


def routes(get_rt: Callable[[], Runtime]) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz")
    async def healthz() -> Response:
        """Liveness and database reachability."""
        return await run_in_thread(_health, get_rt())

    return router


def _health(r: Runtime) -> Response:
    """``503`` only when the database is unreachable: without it no delivery can be accepted.

    A broker outage is reported (``"status": "degraded"``) but answered ``200``: deliveries are
    still committed and answered, and beat re-dispatches them once the broker is back.
    """
    broker = broker_health(r.settings.broker_url) if not r.settings.tasks_eager else "eager"
    try:
        with r.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return JSONResponse(
            {"status": "degraded", "database": "unreachable", "broker": broker}, status_code=503
        )
    status = "ok" if broker in ("ok", "eager", "unchecked") else "degraded"
    return JSONResponse({"status": status, "database": "ok", "broker": broker})


def broker_health(url: str) -> str:
    """``ok`` or ``unreachable`` for a Redis broker (half a second at most); else ``unchecked``."""
    if not url.startswith(("redis://", "rediss://")):
        return "unchecked"
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        client.ping()
    except redis.RedisError:
        return "unreachable"
    finally:
        client.close()
    return "ok"
