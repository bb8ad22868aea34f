"""Reconcile onboardings with Meta: run the checks, record drift, raise alerts, in batches.

:func:`reconcile` handles one onboarding in one transaction; :func:`reconcile_batch` runs it
for each id of a batch, so one onboarding's failure never stops the others; :func:`due` picks
the active onboardings whose last reconciliation is older than ``reconcile_interval_hours``,
at most ``reconcile_max_per_run``, oldest first.

A definite drift is noted on the timeline (and corrects ``is_on_biz_app``/``platform_type``);
one that matters raises an alert (``number_left_coexistence``, ``subscription_gone``,
``token_dead``, ``webhook_override_changed``). An ``unknown`` answer is reported and logged,
never recorded as a change. The onboarding's state is left to the lifecycle webhooks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from config import Settings
from config.logging import bind, register_secret
from models import Onboarding, OnboardingState, utcnow
from models.crypto import TokenCipher
from onboarding.meta.graph import GraphClient
from onboarding.reconcile import checks
from onboarding.reconcile.checks import Finding, Verdict
from onboarding.states import note, raise_alert

log = structlog.get_logger(__name__)

S = OnboardingState
#: Connected onboardings with a business token. ``reconnecting`` is left out: during Meta's
#: offboard/reconnect gap the number legitimately looks disconnected.
ACTIVE = (S.SUBSCRIBED, S.SYNCING, S.SYNCED, S.HISTORY_DECLINED)
ALERT_SEVERITY = {"token_dead": "critical", "number_left_coexistence": "error"}


@dataclass
class Report:
    """What one reconciliation found (``skipped`` or ``error`` when it could not run)."""

    onboarding_id: int
    findings: list[Finding] = field(default_factory=list)
    skipped: str | None = None
    error: str | None = None

    @property
    def drifted(self) -> bool:
        return any(f.verdict is Verdict.DRIFT for f in self.findings)

    def to_json(self) -> dict[str, Any]:
        return {
            "onboarding_id": self.onboarding_id,
            "findings": [f.to_json() for f in self.findings],
            "skipped": self.skipped,
            "error": self.error,
        }


def reconcile(
    session: Session,
    graph: GraphClient,
    *,
    settings: Settings,
    cipher: TokenCipher,
    onboarding_id: int,
    now: datetime | None = None,
) -> Report:
    """Re-read the number, the subscription and the token of one onboarding. Commits."""
    report = Report(onboarding_id)
    onboarding = session.get(Onboarding, onboarding_id)
    if onboarding is None:
        report.skipped = "no such onboarding"
        return report
    bind(onboarding_id=onboarding.id, waba_id=onboarding.waba_id)
    if onboarding.state not in ACTIVE or onboarding.token_ciphertext is None:
        report.skipped = f"not active ({onboarding.state})"
        return report
    token = cipher.decrypt(onboarding.token_ciphertext)
    register_secret(token)
    report.findings = [
        checks.token_state(graph, token),
        checks.number(graph, onboarding, token),
        checks.subscription(graph, settings, onboarding, token),
    ]
    for finding in report.findings:
        _record(session, onboarding, finding)
    onboarding.reconciled_at = now or utcnow()
    session.commit()
    return report


def _record(session: Session, onboarding: Onboarding, finding: Finding) -> None:
    if finding.verdict is Verdict.UNKNOWN:
        log.warning("reconcile_unknown", check=finding.check, detail=finding.detail)
        return
    if finding.verdict is Verdict.OK:
        return
    for column, value in finding.updates:
        setattr(onboarding, column, value)
    note(onboarding, f"reconcile: {finding.detail}")
    log.warning("reconcile_drift", check=finding.check, detail=finding.detail)
    if finding.alert is not None:
        raise_alert(
            session,
            onboarding.id,
            finding.alert,
            f"onboarding {onboarding.id}: {finding.detail}",
            severity=ALERT_SEVERITY.get(finding.alert, "warning"),
        )


def reconcile_batch(
    session: Session,
    graph: GraphClient,
    *,
    settings: Settings,
    cipher: TokenCipher,
    onboarding_ids: list[int],
) -> list[Report]:
    """Reconcile each onboarding in turn, at most ``reconcile_batch_size`` of them; one that
    fails is rolled back and reported, and the next one runs."""
    reports = []
    for onboarding_id in onboarding_ids[: settings.reconcile_batch_size]:
        try:
            report = reconcile(
                session, graph, settings=settings, cipher=cipher, onboarding_id=onboarding_id
            )
        except Exception as exc:  # one onboarding's failure must not stop the batch
            session.rollback()
            log.error("reconcile_failed", onboarding_id=onboarding_id, error=repr(exc))
            report = Report(onboarding_id, error=f"{type(exc).__name__}: {exc}")
        reports.append(report)
    return reports


def due(session: Session, *, settings: Settings, now: datetime | None = None) -> list[int]:
    """Active onboardings not reconciled within the interval, never-reconciled first."""
    now = now or utcnow()
    return list(
        session.scalars(
            select(Onboarding.id)
            .where(
                Onboarding.state.in_([s.value for s in ACTIVE]),
                Onboarding.token_ciphertext.is_not(None),
                or_(
                    Onboarding.reconciled_at.is_(None),
                    Onboarding.reconciled_at <= now - settings.reconcile_interval,
                ),
            )
            .order_by(
                Onboarding.reconciled_at.is_not(None), Onboarding.reconciled_at, Onboarding.id
            )
            .limit(settings.reconcile_max_per_run)
        )
    )


def active(session: Session, *, limit: int) -> list[int]:
    """Every active onboarding's id, oldest reconciliation first, at most ``limit``."""
    return list(
        session.scalars(
            select(Onboarding.id)
            .where(
                Onboarding.state.in_([s.value for s in ACTIVE]),
                Onboarding.token_ciphertext.is_not(None),
            )
            .order_by(
                Onboarding.reconciled_at.is_not(None), Onboarding.reconciled_at, Onboarding.id
            )
            .limit(limit)
        )
    )


def batches(ids: list[int], size: int) -> list[list[int]]:
    """``ids`` cut into lists of at most ``size``."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]
