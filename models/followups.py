"""Follow-ups: reminders and alerts coexist sends to the business or the provider."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType
from models.onboarding import BigId


class FollowUpKind(enum.StrEnum):
    COMPANION_RELINK = "companion_relink"
    APP_OPEN = "app_open_heartbeat"
    ALERT = "alert"


class FollowUpStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    SENT = "sent"
    ACKNOWLEDGED = "acknowledged"
    CANCELLED = "cancelled"
    FAILED = "failed"


class FollowUp(Base):
    """One reminder or alert, due at a time, sent once, acknowledged by the business."""

    __tablename__ = "follow_ups"
    __table_args__ = (
        UniqueConstraint("onboarding_id", "kind", "series", "step"),
        Index("ix_follow_ups_due", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    onboarding_id: Mapped[int] = mapped_column(ForeignKey("onboardings.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    #: Relink: one series per (re)connection. Heartbeat: the activity it counts from (epoch s).
    #: Alert: the alert's id.
    series: Mapped[int] = mapped_column(default=0)
    #: Position in the series' schedule.
    step: Mapped[int] = mapped_column(default=0)
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default=FollowUpStatus.SCHEDULED.value)
    attempts: Mapped[int] = mapped_column(default=0)
    sent_count: Mapped[int] = mapped_column(default=0)
    sent_at: Mapped[datetime | None]
    acknowledged_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    #: What the reminder says (subject, text, facts); the notifier renders it per channel.
    content: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    created_at: Mapped[datetime]


class Notification(Base):
    """One delivery of a follow-up on one channel, recorded before it is sent: a redelivered
    job finds it and does not notify twice."""

    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("follow_up_id", "channel"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    follow_up_id: Mapped[int] = mapped_column(ForeignKey("follow_ups.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))  # sending, sent, failed, unknown
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    #: Provider or Meta reference (HTTP status, message id) and the last error.
    reference: Mapped[str | None] = mapped_column(String(256))
    last_error: Mapped[str | None] = mapped_column(Text)
