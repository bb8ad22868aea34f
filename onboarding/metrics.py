"""Prometheus metrics: what happened (counters, in every process) and where things stand (read
from the database when ``/metrics`` is scraped).

Counters and histograms are incremented where the thing happens: webhook deliveries at the door
and after processing, messages stored by source, the code exchange's latency, Graph API calls
by endpoint and outcome, media downloads, follow-ups sent, throughput-guard waits. Celery's
prefork workers are separate processes: with ``PROMETHEUS_MULTIPROC_DIR`` set (the same empty
directory for the web app and the workers of one host, wiped before they start), each process
writes its values there and ``/metrics`` on the web app adds them up (prometheus-client's
multiprocess mode). The gauges (inbox backlog, onboardings by state, near their sync deadline,
and the feed's lag) are read by :class:`StateCollector` at scrape time, so they are right
whichever process changed them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import InboxDelivery, InboxStatus, Onboarding, OnboardingState, utcnow

DELIVERIES = Counter(
    "coexist_webhook_deliveries",
    "Meta webhook deliveries by outcome: stored or duplicate at the door, refused (bad "
    "signature, too large...), then processed, quarantined or parked after processing.",
    ["outcome"],
)
MESSAGES = Counter("coexist_messages_ingested", "Message rows written, by source.", ["source"])
CODE_EXCHANGE = Histogram(
    "coexist_code_exchange_seconds",
    "From the signup's hand-off to the business token (Meta's code lives 30 s).",
    buckets=(0.5, 1, 2, 3, 5, 8, 13, 20, 30, 60),
)
GRAPH_CALLS = Counter(
    "coexist_graph_calls",
    "Graph API calls by endpoint and outcome (ok, the Graph error code, or transport).",
    ["endpoint", "outcome"],
)
MEDIA = Counter("coexist_media_downloads", "Media downloads settled, by outcome.", ["outcome"])
MEDIA_STORE_UNAVAILABLE = Counter(
    "coexist_media_store_unavailable",
    "Media downloaded but not kept because the media store could not be reached (retried).",
)
FOLLOW_UPS = Counter("coexist_follow_ups_sent", "Follow-ups sent, by channel.", ["channel"])
GUARD_WAITS = Counter(
    "coexist_throughput_guard_waits",
    "Sends the throughput guard held back (per number and per recipient).",
    ["reason"],
)

#: An onboarding this close to its sync deadline with a sync not yet requested is at risk.
DEADLINE_RISK = timedelta(hours=6)
#: Onboarding states in which the syncs may still be requested.
BEFORE_SYNC = (
    OnboardingState.RECEIVED,
    OnboardingState.TOKEN_EXCHANGED,
    OnboardingState.SUBSCRIBED,
)


class StateCollector(Collector):
    """Gauges read from the database at each scrape (one short transaction)."""

    def __init__(self, sessions: Callable[[], Session]) -> None:
        self.sessions = sessions

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = utcnow()
        with self.sessions() as session:
            by_state = dict(
                session.execute(
                    select(Onboarding.state, func.count()).group_by(Onboarding.state)
                ).all()
            )
            at_risk = session.scalar(
                select(func.count())
                .select_from(Onboarding)
                .where(
                    Onboarding.state.in_([s.value for s in BEFORE_SYNC]),
                    Onboarding.sync_deadline_at > now,
                    Onboarding.sync_deadline_at <= now + DEADLINE_RISK,
                )
            )
            backlog = dict(
                session.execute(
                    select(InboxDelivery.status, func.count()).group_by(InboxDelivery.status)
                ).all()
            )
            oldest = session.scalar(
                select(func.min(InboxDelivery.received_at)).where(
                    InboxDelivery.status == InboxStatus.PENDING.value
                )
            )
        states = GaugeMetricFamily("coexist_onboardings", "Onboardings by state.", labels=["state"])
        for state in OnboardingState:
            states.add_metric([state.value], by_state.get(state.value, 0))
        yield states
        yield GaugeMetricFamily(
            "coexist_onboardings_near_sync_deadline",
            "Onboardings within 6 h of their 24 h sync deadline with the syncs not requested.",
            value=at_risk or 0,
        )
        inbox = GaugeMetricFamily(
            "coexist_inbox", "Stored deliveries by status.", labels=["status"]
        )
        for status in InboxStatus:
            inbox.add_metric([status.value], backlog.get(status.value, 0))
        yield inbox
        age = (now - oldest).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "coexist_inbox_oldest_pending_seconds",
            "Age of the oldest delivery not yet processed (the ingest lag).",
            value=max(0.0, age),
        )
