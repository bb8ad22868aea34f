"""Health without auth, for load balancers and orchestrators.

* ``GET /livez`` — liveness: the process is up and answering. It touches nothing else, so a
  database outage never gets healthy web processes restarted.
* ``GET /readyz`` — readiness: ``503`` while the database is unreachable (no delivery can be
  stored); a broker outage is ``200`` with ``"status": "degraded"``, since deliveries are still
  stored and answered.
* ``GET /healthz`` — the same answer as ``/readyz``, kept for existing checks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from onboarding.runtime import Runtime
from onboarding.web.http import run_in_thread
from onboarding.web.schemas import Health, Live

#: ``/readyz`` and ``/healthz`` answer ``503`` with the same body while the database is down.
READY: dict[int | str, dict[str, Any]] = {
    503: {"model": Health, "description": "The database is unreachable."},
}


def routes(get_rt: Callable[[], Runtime]) -> APIRouter:
    router = APIRouter()

    @router.get("/livez", tags=["health"], response_model=Live)
    async def livez() -> Response:
        """Liveness: the process answers (nothing else is checked)."""
        return JSONResponse({"status": "ok"})

    @router.get("/readyz", tags=["health"], response_model=Health, responses=READY)
    async def readyz() -> Response:
        """Readiness: the database is reachable; the broker's state is reported."""
        return await run_in_thread(_health, get_rt())

    @router.get("/healthz", tags=["health"], response_model=Health, responses=READY)
    async def healthz() -> Response:
        """The readiness answer, under the name earlier versions served."""
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
