"""The record of an onboarding's data erasure (:mod:`onboarding.rights.erase`)."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType
from models.onboarding import BigId


class ErasureState(enum.StrEnum):
    RUNNING = "running"
    DONE = "done"


class Erasure(Base):
    """One erasure of one onboarding's data: who asked and why, where it stands, what it deleted.

    Kept after the data is gone, with the onboarding row and its timeline, as the proof.
    """

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: One erasure per onboarding: asking again resumes it, or answers that it is done.
    onboarding_id: Mapped[int] = mapped_column(
        ForeignKey("onboardings.id", ondelete="CASCADE"), unique=True
    )
    requested_at: Mapped[datetime]
    #: ``operator`` or the retention rule that started it (``retention:disconnected``,
    #: ``retention:failed``).
    requested_by: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16), default=ErasureState.RUNNING.value, index=True)
    #: The step it is at (:data:`onboarding.rights.erase.STEPS`); ``done`` once finished.
    step: Mapped[str] = mapped_column(String(32))
    #: Rows (and media objects) deleted so far, per kind.
    counts: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    #: What coexist does not do on erasure (e.g. the number stays connected at Meta).
    note: Mapped[str | None] = mapped_column(Text)
    #: A worker holds the erasure until this time (two never run it at once).
    lease_until: Mapped[datetime | None]
    completed_at: Mapped[datetime | None]
