"""The notifier: follow-ups go out on the channels the provider chose, each exactly once.

The channels (``COEX_NOTIFY_CHANNELS``, a comma list, default ``log``) are in :mod:`.channels`
and built by :mod:`.wiring`; what a follow-up says is :mod:`.render`'s. This module owns the
state machine of a notification.

Every notification is recorded before it is sent, one :class:`~models.Notification` row per
(follow-up, channel), committed before the channel is called::

    (none) ──record──▶ sending ──ok──────────────▶ sent        (never sent again)
                          │ ────permanent / out of attempts──▶ failed
                          │ ────transient, surely not sent──▶ pending ──▶ sending …
                          │ ────transient, maybe sent───────▶ unknown ──▶ (by channel, below)
                          └──── worker died: stays sending ─▶ (by channel, below)

A row found in ``sending`` or ``unknown`` by a later run is an attempt whose outcome was lost.
What happens next depends on what a duplicate costs on that channel:

* ``log``: sent again; a second log line harms nobody.
* ``webhook``: sent again with the *same* ``webhook-id`` (the body's ``id``), so the
  provider drops the copy it already has. Receivers must deduplicate on that key.
* ``whatsapp_template``: never sent again blindly. The row becomes ``unknown``, the follow-up
  ``failed``, and an operator alert (``notification_unknown``) says to check the business's chat
  and settle it with :func:`resolve`: a duplicated WhatsApp message to a business is worse than
  a missed reminder.

Taking a row to send it again is a compare-and-set on (status, attempts): of two workers racing
on one row, one sends and the other reports ``in_flight``. A row has no lease, so a run cannot
tell a live attempt from a dead one; the task's ``acks_late`` redelivery only comes after the
broker's visibility timeout, long after any live attempt has ended.

Retries are bounded twice, one layer per concern: quick retries inside the webhook channel
(tenacity), and :class:`Notifier`'s ``max_attempts`` across runs, after which the row is
``failed`` with the reason. A transient error with attempts left raises
:class:`~onboarding.outcomes.RetryLater` once the state is committed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

import httpx
import structlog
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from config import Settings
from models import Alert, FollowUp, FollowUpKind, FollowUpStatus, Notification, Onboarding, utcnow
from onboarding import metrics
from onboarding.feed.events import EventType, emit_for, iso
from onboarding.followups.channels import (
    Channel,
    PermanentNotifyError,
    TransientNotifyError,
)
from onboarding.followups.render import RenderedFollowUp, render
from onboarding.followups.wiring import channels_from_settings
from onboarding.meta.graph import GraphClient
from onboarding.outcomes import RetryLater
from onboarding.states import raise_alert
from onboarding.store import insert_for

log = structlog.get_logger(__name__)


class NotificationStatus(StrEnum):
    """``Notification.status`` values (see the module docstring for the transitions)."""

    PENDING = "pending"  # recorded; the last attempt surely did not reach the channel
    SENDING = "sending"  # an attempt is in flight, or its worker died
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"  # the attempt's answer was lost: it may have been delivered


N = NotificationStatus


class Result(StrEnum):
    """What one channel did with one follow-up in one :meth:`Notifier.deliver` run."""

    SENT = "sent"  # delivered now
    ALREADY_SENT = "already_sent"  # delivered by an earlier run: nothing sent
    RETRY = "retry"  # transient error, attempts left: RetryLater is raised
    FAILED = "failed"  # permanent error or attempts exhausted
    UNKNOWN = "unknown"  # may have been delivered; not resent; an operator must check
    IN_FLIGHT = "in_flight"  # another worker claimed it a moment ago


@dataclass(frozen=True)
class ChannelOutcome:
    """One channel's result for one follow-up."""

    channel: str
    result: Result
    attempts: int
    reference: str | None = None
    error: str | None = None
    #: Whether the channel was called in this run.
    attempted: bool = False
    retry_after: float | None = None

    @property
    def needs_attention(self) -> bool:
        """An operator must look: the notification failed or its outcome is unknown."""
        return self.result in (Result.FAILED, Result.UNKNOWN)


# -- the notifier --------------------------------------------------------------------------


class Notifier:
    """Delivers follow-ups on its channels, recording each notification before it is sent."""

    def __init__(
        self,
        channels: Sequence[Channel],
        *,
        max_attempts: int = 5,
        retry_countdown: float = 60.0,
        max_countdown: float = 3600.0,
    ) -> None:
        names = [c.name for c in channels]
        if not names:
            raise ValueError("a notifier needs at least one channel")
        if len(set(names)) != len(names):
            raise ValueError(f"notify channels must be distinct, got {names}")
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.channels = list(channels)
        self.max_attempts = max_attempts
        self.retry_countdown = retry_countdown
        self.max_countdown = max_countdown

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        graph: GraphClient | None = None,
        *,
        http: httpx.Client | None = None,
    ) -> Notifier:
        """The channels ``COEX_NOTIFY_CHANNELS`` names; ValueError if one lacks its settings."""
        channels = channels_from_settings(settings, graph, http=http)
        return cls(channels, max_attempts=settings.notify_max_attempts)

    def close(self) -> None:
        """Close every channel."""
        for channel in self.channels:
            channel.close()

    def __enter__(self) -> Notifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- delivery ------------------------------------------------------------------------

    def deliver(self, session: Session, follow_up: FollowUp | int) -> list[ChannelOutcome]:
        """Send ``follow_up`` on every channel that carries its kind, once each. Commits.

        Returns one :class:`ChannelOutcome` per channel. Raises :class:`RetryLater` (state already
        committed) when a channel hit a transient error and has attempts left.
        """
        row = self._load(session, follow_up)
        if row is None:
            return []
        with structlog.contextvars.bound_contextvars(
            onboarding_id=row.onboarding_id, follow_up_id=row.id
        ):
            return self._deliver(session, row)

    def _deliver(self, session: Session, row: FollowUp) -> list[ChannelOutcome]:
        if row.status in (FollowUpStatus.CANCELLED, FollowUpStatus.ACKNOWLEDGED):
            log.info("follow_up_not_sent", status=row.status, kind=row.kind)
            return []
        if row.status == FollowUpStatus.SENT:
            # Sent on every channel it had; a channel configured since does not resend it.
            done = session.scalars(
                select(Notification).where(Notification.follow_up_id == row.id)
            ).all()
            log.info("follow_up_already_sent", channels=[n.channel for n in done])
            return [
                ChannelOutcome(n.channel, Result.ALREADY_SENT, n.attempts, n.reference)
                for n in done
            ]
        channels = [c for c in self.channels if c.carries(row.kind)]
        if not channels:
            row.status = FollowUpStatus.CANCELLED.value
            row.last_error = f"no configured notify channel carries {row.kind} follow-ups"
            session.commit()
            log.warning("follow_up_not_sent", kind=row.kind, reason=row.last_error)
            return []
        onboarding = session.get_one(Onboarding, row.onboarding_id)
        alert = session.get(Alert, row.series) if row.kind == FollowUpKind.ALERT else None
        message = render(row, onboarding, alert=alert)
        outcomes = [self._deliver_one(session, row, message, channel) for channel in channels]
        self._settle(session, row, [c.name for c in channels], outcomes)
        retry = [o for o in outcomes if o.result is Result.RETRY]
        if retry:
            raise RetryLater(
                "; ".join(f"{o.channel}: {o.error}" for o in retry),
                self._countdown(retry),
            )
        return outcomes

    @staticmethod
    def _load(session: Session, follow_up: FollowUp | int) -> FollowUp | None:
        if isinstance(follow_up, FollowUp):
            session.refresh(follow_up)
            return follow_up
        row = session.get(FollowUp, follow_up, populate_existing=True)
        if row is None:
            log.warning("follow_up_missing", follow_up_id=follow_up)
        return row

    def _deliver_one(
        self, session: Session, follow_up: FollowUp, message: RenderedFollowUp, channel: Channel
    ) -> ChannelOutcome:
        row, fresh = _record(session, follow_up.id, channel.name)
        if not fresh:
            decided = self._claim(session, row, channel)
            if decided is not None:
                return decided
        message = replace(message, key=f"coexist-notification-{row.id}")
        try:
            delivery = channel.send(message)
        except TransientNotifyError as exc:
            return self._transient(session, row, channel, exc)
        except PermanentNotifyError as exc:
            return _finish(session, row, N.FAILED, exc.message, attempted=True)
        row.status = N.SENT.value
        row.sent_at = utcnow()
        row.reference = delivery.reference[:256]
        row.last_error = None
        session.commit()
        metrics.FOLLOW_UPS.labels(channel.name).inc()
        log.info(
            "notification_sent",
            channel=channel.name,
            reference=row.reference,
            attempts=row.attempts,
        )
        return ChannelOutcome(
            channel.name, Result.SENT, row.attempts, row.reference, attempted=True
        )

    def _claim(
        self, session: Session, row: Notification, channel: Channel
    ) -> ChannelOutcome | None:
        """Decide what to do with an existing row; None when this run claimed it to send."""
        status = N(row.status)
        if status is N.SENT:
            log.info("notification_already_sent", channel=channel.name, reference=row.reference)
            return ChannelOutcome(channel.name, Result.ALREADY_SENT, row.attempts, row.reference)
        if status is N.FAILED:
            return ChannelOutcome(channel.name, Result.FAILED, row.attempts, error=row.last_error)
        lost = status in (N.SENDING, N.UNKNOWN) and row.attempts > 0
        if lost and not channel.resend_when_unknown:
            reason = row.last_error if status is N.UNKNOWN else None
            return _finish(
                session,
                row,
                N.UNKNOWN,
                reason
                or "an earlier attempt was interrupted before its outcome was recorded; not "
                "resent, since the message may have been delivered",
            )
        if row.attempts >= self.max_attempts:
            return _finish(
                session,
                row,
                N.FAILED,
                f"gave up after {row.attempts} attempts: {row.last_error or 'outcome unknown'}",
            )
        claimed = session.execute(
            update(Notification)
            .where(
                Notification.id == row.id,
                Notification.status == row.status,
                Notification.attempts == row.attempts,
            )
            .values(status=N.SENDING.value, attempts=row.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        session.commit()
        session.refresh(row)
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return ChannelOutcome(channel.name, Result.IN_FLIGHT, row.attempts)
        if lost:
            log.warning(
                "notification_resending",
                channel=channel.name,
                attempts=row.attempts,
                reason="an earlier attempt's outcome was lost; same idempotency key",
            )
        return None

    def _transient(
        self, session: Session, row: Notification, channel: Channel, exc: TransientNotifyError
    ) -> ChannelOutcome:
        if exc.maybe_sent and not channel.resend_when_unknown:
            return _finish(
                session,
                row,
                N.UNKNOWN,
                f"the message may have been delivered ({exc.message}); not resent",
                attempted=True,
            )
        if row.attempts >= self.max_attempts:
            return _finish(
                session,
                row,
                N.FAILED,
                f"gave up after {row.attempts} attempts: {exc.message}",
                attempted=True,
            )
        row.status = (N.UNKNOWN if exc.maybe_sent else N.PENDING).value
        row.last_error = exc.message
        session.commit()
        log.warning(
            "notification_retry",
            channel=channel.name,
            attempts=row.attempts,
            maybe_sent=exc.maybe_sent,
            error=exc.message,
        )
        return ChannelOutcome(
            channel.name,
            Result.RETRY,
            row.attempts,
            error=exc.message,
            attempted=True,
            retry_after=exc.retry_after,
        )

    def _settle(
        self,
        session: Session,
        follow_up: FollowUp,
        channels: list[str],
        outcomes: list[ChannelOutcome],
    ) -> None:
        """Fold the channels' rows into the follow-up's status, counts and error. Commits."""
        rows = session.scalars(
            select(Notification)
            .where(Notification.follow_up_id == follow_up.id, Notification.channel.in_(channels))
            .execution_options(populate_existing=True)
        ).all()
        sent = [r for r in rows if r.status == N.SENT]
        if any(o.attempted for o in outcomes):
            follow_up.attempts += 1
        follow_up.sent_count = len(sent)
        if sent and follow_up.sent_at is None:
            follow_up.sent_at = min(r.sent_at or utcnow() for r in sent)
        errors = [
            f"{o.channel}: {o.error}"
            for o in outcomes
            if o.error and o.result not in (Result.SENT, Result.ALREADY_SENT)
        ]
        open_ = (FollowUpStatus.SCHEDULED, FollowUpStatus.FAILED)
        pending = any(o.result in (Result.RETRY, Result.IN_FLIGHT) for o in outcomes)
        if follow_up.status in open_:
            if len(sent) == len(channels):
                follow_up.status = FollowUpStatus.SENT.value
                emit_for(
                    session,
                    EventType.FOLLOW_UP_SENT,
                    follow_up.onboarding_id,
                    {
                        "follow_up_id": follow_up.id,
                        "kind": follow_up.kind,
                        "channels": sorted(channels),
                        "due_at": iso(follow_up.due_at),
                        "sent_at": iso(follow_up.sent_at),
                    },
                )
            elif not pending and any(o.needs_attention for o in outcomes):
                follow_up.status = FollowUpStatus.FAILED.value
        follow_up.last_error = "; ".join(errors)[:4000] or None
        if follow_up.kind != FollowUpKind.ALERT:
            # Alerts about alerts would loop: an alert follow-up's own failure is only logged.
            for outcome in outcomes:
                if outcome.needs_attention:
                    raise_alert(
                        session,
                        follow_up.onboarding_id,
                        f"notification_{outcome.result.value}",
                        f"{follow_up.kind} follow-up {follow_up.id} on {outcome.channel}: "
                        f"{outcome.error}",
                        severity="error" if outcome.result is Result.UNKNOWN else "warning",
                    )
        session.commit()

    def _countdown(self, retry: list[ChannelOutcome]) -> float:
        hinted = [o.retry_after for o in retry if o.retry_after is not None]
        attempts = max(o.attempts for o in retry)
        backoff = self.retry_countdown * 2.0 ** max(0, attempts - 1)
        return float(min(self.max_countdown, max([backoff, *hinted])))


def _record(session: Session, follow_up_id: int, channel: str) -> tuple[Notification, bool]:
    """Get or create the (follow-up, channel) row; a new row is ``sending``, attempt 1.

    Committed before anything is sent: a redelivered job finds it and does not notify twice.
    True when this call created it.
    """
    now = utcnow()
    created = session.execute(
        insert_for(session, Notification.__table__)
        .values(
            follow_up_id=follow_up_id,
            channel=channel,
            status=N.SENDING.value,
            attempts=1,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["follow_up_id", "channel"])
        .returning(Notification.id)
    ).scalar_one_or_none()
    session.commit()
    row = session.scalars(
        select(Notification)
        .where(Notification.follow_up_id == follow_up_id, Notification.channel == channel)
        .execution_options(populate_existing=True)
    ).one()
    return row, created is not None


def _finish(
    session: Session,
    row: Notification,
    status: NotificationStatus,
    error: str,
    *,
    attempted: bool = False,
) -> ChannelOutcome:
    """Park ``row`` as ``failed`` or ``unknown`` with the reason (committed) and say so."""
    row.status = status.value
    row.last_error = error
    session.commit()
    event = "notification_unknown" if status is N.UNKNOWN else "notification_failed"
    log.error(event, channel=row.channel, attempts=row.attempts, error=error)
    result = Result.UNKNOWN if status is N.UNKNOWN else Result.FAILED
    return ChannelOutcome(row.channel, result, row.attempts, error=error, attempted=attempted)


def resolve(session: Session, follow_up_id: int, channel: str, *, delivered: bool) -> Notification:
    """An operator settles a notification that is ``unknown`` or ``failed``. Commits.

    ``delivered=True``: the business did get it (seen in its chat); it is ``sent`` and never
    sent again. ``delivered=False``: it did not; it goes back to ``pending`` with its attempts
    reset, so the next run sends it. Either way a ``failed`` follow-up is scheduled again, so
    the next run settles it.
    """
    row = session.scalars(
        select(Notification).where(
            Notification.follow_up_id == follow_up_id, Notification.channel == channel
        )
    ).one_or_none()
    if row is None:
        raise ValueError(f"follow-up {follow_up_id} has no {channel} notification")
    if row.status not in (N.UNKNOWN, N.FAILED):
        raise ValueError(
            f"follow-up {follow_up_id} on {channel} is {row.status}; only unknown or failed "
            "notifications are resolved by hand"
        )
    if delivered:
        row.status = N.SENT.value
        row.sent_at = utcnow()
        row.reference = "confirmed by an operator"
    else:
        row.status = N.PENDING.value
        row.attempts = 0
    follow_up = session.get_one(FollowUp, follow_up_id)
    if follow_up.status == FollowUpStatus.FAILED:
        follow_up.status = FollowUpStatus.SCHEDULED.value
    session.commit()
    log.info(
        "notification_resolved", follow_up_id=follow_up_id, channel=channel, delivered=delivered
    )
    return row
