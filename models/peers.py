"""The people an onboarding's business talks to: one *peer* per person, known by a phone
number, a business-scoped user id (BSUID), or both (docs/meta.md#business-scoped-user-ids)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, utcnow
from models.onboarding import BigId


class Peer(Base):
    """One WhatsApp user of one onboarding; messages and contacts belong to it.

    Meta gives a BSUID for every user (since April 2026) and a phone number only where the user
    shares it; a payload naming both joins them, merging two peers found under each.
    """

    __tablename__ = "peers"
    __table_args__ = (
        UniqueConstraint("onboarding_id", "user_id"),
        UniqueConstraint("onboarding_id", "phone"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    onboarding_id: Mapped[int] = mapped_column(ForeignKey("onboardings.id", ondelete="CASCADE"))
    #: The business-scoped user id (``US.13491208655302741918``); unique per onboarding.
    user_id: Mapped[str | None] = mapped_column(String(160))
    #: The user's phone number (digits), where Meta gives it; unique per onboarding.
    phone: Mapped[str | None] = mapped_column(String(64))
    #: The parent BSUID (``US.ENT.…``) of managed businesses, where Meta gives it.
    parent_user_id: Mapped[str | None] = mapped_column(String(160))
    username: Mapped[str | None] = mapped_column(String(256))
    name: Mapped[str | None] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserIdChange(Base):
    """A user's BSUID changed from ``previous`` to ``current`` (``user_id_update``,
    ``user_changed_user_id``): kept so that items still naming ``previous`` that arrive later
    reach the same peer, whatever order Meta delivers them in."""

    __tablename__ = "user_id_changes"
    __table_args__ = (UniqueConstraint("onboarding_id", "previous"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    onboarding_id: Mapped[int] = mapped_column(ForeignKey("onboardings.id", ondelete="CASCADE"))
    previous: Mapped[str] = mapped_column(String(160))
    current: Mapped[str] = mapped_column(String(160))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
