"""``GET /metrics``: Prometheus's text format (:mod:`onboarding.metrics`).

Open unless ``COEX_METRICS_TOKEN`` is set (then ``Authorization: Bearer <token>``). With
``PROMETHEUS_MULTIPROC_DIR`` set, the answer adds up what every process of this host wrote
there (the web app's and the Celery workers'); without it, this process's own counters.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

from onboarding.metrics import StateCollector
from onboarding.runtime import Runtime
from onboarding.web.http import bearer_ok, run_in_thread, unauthorized


def routes(get_rt: Callable[[], Runtime]) -> APIRouter:
    router = APIRouter()

    @router.get("/metrics", include_in_schema=False)
    async def scrape(request: Request) -> Response:
        """Prometheus metrics of this host's processes and of the database's state."""
        r = get_rt()
        token = r.settings.metrics_token.get_secret_value()
        if token and not bearer_ok(request, token):
            return unauthorized()
        return await run_in_thread(_scrape, r)

    return router


def _scrape(r: Runtime) -> Response:
    if r.settings.prometheus_multiproc_dir is not None:
        counted = CollectorRegistry()
        MultiProcessCollector(counted, path=str(r.settings.prometheus_multiproc_dir))  # type: ignore[no-untyped-call]
    else:
        counted = REGISTRY
    state = CollectorRegistry()
    state.register(StateCollector(r.db.sessionmaker))
    body = generate_latest(counted) + generate_latest(state)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
