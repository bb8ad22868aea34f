"""``GET /metrics``: Prometheus's text format (:mod:`onboarding.metrics`).

Open unless ``COEX_METRICS_TOKEN`` is set (then ``Authorization: Bearer <token>``). With
``PROMETHEUS_MULTIPROC_DIR`` set, the answer adds up what every process of this host wrote
there (the web app's and the Celery workers'); without it, this process's own counters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from onboarding.feed import push as feed_push
from onboarding.metrics import StateCollector
from onboarding.relay import run as relay_run
from onboarding.runtime import Runtime
from onboarding.web.http import bearer_ok, run_in_thread, unauthorized
from onboarding.web.openapi import errors, secured

#: The scrape as the OpenAPI document gives it.
SCRAPE = {
    "description": "Prometheus's text exposition format.",
    "content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}},
}


def routes(get_rt: Callable[[], Runtime]) -> APIRouter:
    router = APIRouter()

    @router.get(
        "/metrics",
        tags=["health"],
        response_class=Response,
        responses={
            200: SCRAPE,
            **errors(401, 503, s401="`COEX_METRICS_TOKEN` is set and was not given."),
        },
        openapi_extra=secured("MetricsToken", optional=True),
    )
    async def scrape(request: Request) -> Response:
        """Prometheus metrics of this host's processes and of the database's state."""
        r = get_rt()
        token = r.settings.metrics_token.get_secret_value()
        if token and not bearer_ok(request, token):
            return unauthorized()
        return await run_in_thread(_scrape, r)

    return router


class DeliveryLag(Collector):
    """How far the feed's push and the relay are behind, when they are on (their status, as
    ``coexist feed status`` and ``coexist relay status`` read it)."""

    def __init__(self, r: Runtime) -> None:
        self.r = r

    def collect(self) -> Iterator[GaugeMetricFamily]:
        settings = self.r.settings
        with self.r.db.sessionmaker() as session:
            pushed = feed_push.status(session, settings) if settings.feed_webhook_url else None
            relayed = relay_run.status(session, settings) if settings.relay_url else None
        if pushed is not None:
            yield GaugeMetricFamily(
                "coexist_feed_push_lag_events",
                "Feed events not yet acknowledged by the provider's receiver.",
                value=pushed["lag_events"],
            )
            yield GaugeMetricFamily(
                "coexist_feed_push_lag_seconds",
                "Age of the oldest feed event not yet acknowledged.",
                value=pushed["lag_seconds"],
            )
            yield GaugeMetricFamily(
                "coexist_feed_push_failing",
                "1 while push delivery is failing.",
                value=int(pushed["failing"]),
            )
        if relayed is not None:
            yield GaugeMetricFamily(
                "coexist_relay_backlog",
                "Stored deliveries not yet forwarded to the provider's receiver.",
                value=relayed["backlog"],
            )
            yield GaugeMetricFamily(
                "coexist_relay_failing",
                "1 while the relay is failing.",
                value=int(relayed["failing_since"] is not None),
            )


def _scrape(r: Runtime) -> Response:
    if r.settings.prometheus_multiproc_dir is not None:
        counted = CollectorRegistry()
        MultiProcessCollector(counted, path=str(r.settings.prometheus_multiproc_dir))  # type: ignore[no-untyped-call]
    else:
        counted = REGISTRY
    state = CollectorRegistry()
    state.register(StateCollector(r.db.sessionmaker))
    state.register(DeliveryLag(r))
    body = generate_latest(counted) + generate_latest(state)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
