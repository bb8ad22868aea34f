"""What Meta's webhooks deliver: the raw inbox, and the messages, contacts and history ledger
built from it."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, JSONType
from models.feed import CurrentTx
from models.onboarding import BigId


class InboxStatus(enum.StrEnum):
    PENDING = "pending"
    PROCESSED = "processed"
    WAITING = "waiting_for_onboarding"
    QUARANTINED = "quarantined"
    ORPHANED = "orphaned"


class InboxDelivery(Base):
    """One signed webhook delivery, stored raw before anything else happens.

    ``tx`` is the writing transaction's id (0 on SQLite), as for the feed's events: the relay
    reads the inbox in ``(tx, id)`` order below the oldest running transaction, so a batch that
    took its ids early and commits late is never passed over (:mod:`onboarding.relay.log`).
    """

    __tablename__ = "inbox"
    __table_args__ = (
        Index("ix_inbox_status_received", "status", "received_at"),
        Index("ix_inbox_position", "tx", "id"),
        # The retention sweep's candidates: processed rows that still hold their body.
        Index(
            "ix_inbox_body_kept",
            "received_at",
            postgresql_where=text("status = 'processed' AND body_dropped_at IS NULL"),
            sqlite_where=text("status = 'processed' AND body_dropped_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    #: The writing transaction's id, set by the database (0 for rows older than the relay).
    tx: Mapped[int] = mapped_column(BigInteger, server_default=CurrentTx())
    #: sha256 of the raw body: Meta's redeliveries of the same bytes are stored once.
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int]
    received_at: Mapped[datetime]
    #: Meta's ``X-Hub-Signature-256`` as received: the relay forwards it with the raw bytes.
    signature: Mapped[str | None] = mapped_column(String(128))
    #: The ``Content-Type`` the delivery came with (None: absent or longer than the column).
    content_type: Mapped[str | None] = mapped_column(String(128))
    status: Mapped[str] = mapped_column(String(32), default=InboxStatus.PENDING.value)
    #: The ``field``s the delivery carries, comma separated (for operators' listings).
    fields: Mapped[str | None] = mapped_column(String(256))
    waba_id: Mapped[str | None] = mapped_column(String(32), index=True)
    phone_number_id: Mapped[str | None] = mapped_column(String(32), index=True)
    onboarding_id: Mapped[int | None] = mapped_column(
        ForeignKey("onboardings.id", ondelete="SET NULL"), index=True
    )
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    #: Redeliveries of the same bytes Meta made (each answered 200 without storing twice).
    duplicates: Mapped[int] = mapped_column(default=0)
    dispatched_at: Mapped[datetime | None]
    processed_at: Mapped[datetime | None]
    #: What processing found, per field (counts, ignored fields, expected errors).
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    #: When retention dropped the raw body (``body`` is then empty; ``size`` and ``sha256``
    #: still describe it). Such a row can no longer be replayed or relayed.
    body_dropped_at: Mapped[datetime | None]


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class MessageSource(enum.StrEnum):
    HISTORY = "history"
    APP_ECHO = "app_echo"
    API = "api"
    #: Users' messages to an onboarded number, from the ``messages`` webhook after signup.
    LIVE = "live"


class MediaState(enum.StrEnum):
    NONE = "none"
    AWAITING = "awaiting_media"
    STORED = "stored"
    SKIPPED_TOO_OLD = "skipped_too_old"
    EXPIRED = "expired"
    FAILED = "failed"


class Message(Base):
    """A 1:1 message of the business, from history, an app echo, the API or live traffic."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("onboarding_id", "wamid"),
        # A thread is a peer: its messages are found (and moved by a merge) by this index, and
        # read a page at a time in time order (the read API's keyset, ``onboarding.read``);
        # ``direction`` rides along so a thread's counts are an index-only scan on PostgreSQL.
        Index(
            "ix_messages_peer_time",
            "onboarding_id",
            "peer_id",
            "sent_at",
            "id",
            postgresql_include=["direction"],
        ),
        # An onboarding's latest messages across its threads (the console's onboarding page).
        Index("ix_messages_onboarding_time", "onboarding_id", "sent_at", "id"),
        # Stored media by content hash (``GET /v1/media/{sha256}``).
        Index(
            "ix_messages_media_stored",
            "media_sha256",
            postgresql_where=text("media_state = 'stored'"),
            sqlite_where=text("media_state = 'stored'"),
        ),
        # Only media still to fetch is looked up by state; a partial index keeps inserts cheap.
        Index(
            "ix_messages_media_awaiting",
            "id",
            postgresql_where=text("media_state = 'awaiting_media'"),
            sqlite_where=text("media_state = 'awaiting_media'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    onboarding_id: Mapped[int] = mapped_column(ForeignKey("onboardings.id", ondelete="CASCADE"))
    wamid: Mapped[str] = mapped_column(String(191))
    #: The customer's number (digits), else their BSUID, as the message named them.
    thread: Mapped[str] = mapped_column(String(160))
    #: The person the message was exchanged with (:class:`models.peers.Peer`). No foreign key:
    #: its per-row check would slow the history ingest. Writers hold the onboarding's peers
    #: (:func:`onboarding.ingest.peers.share`) and a merge waits for them, so it moves their
    #: messages, never orphans them.
    peer_id: Mapped[int | None] = mapped_column(BigId)
    direction: Mapped[str] = mapped_column(String(8))
    source: Mapped[str] = mapped_column(String(16))
    sent_at: Mapped[datetime]
    type: Mapped[str] = mapped_column(String(32))
    text_body: Mapped[str | None] = mapped_column(Text)
    #: History's ``history_context.status``, ``accepted`` for an API send, then the newest status
    #: Meta's ``statuses[]`` webhooks gave (:mod:`onboarding.ingest.statuses`).
    status: Mapped[str | None] = mapped_column(String(16))
    #: The ``timestamp`` of the status webhook that set ``status``.
    status_at: Mapped[datetime | None]
    #: The error of a ``failed`` status (``errors[0]``), kept even if Meta later says delivered.
    status_error_code: Mapped[int | None]
    status_error_title: Mapped[str | None] = mapped_column(Text)
    #: The message object as Meta sent it, for types other than text.
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    media_state: Mapped[str] = mapped_column(
        String(16), default=MediaState.NONE.value, server_default=MediaState.NONE.value
    )
    media_id: Mapped[str | None] = mapped_column(String(64))
    media_mime: Mapped[str | None] = mapped_column(String(128))
    #: Meta's sha256 of the media (hex or base64, as sent); once the media is stored, the
    #: lowercase hex sha256 of the stored bytes, which is also its file name.
    media_sha256: Mapped[str | None] = mapped_column(String(128))
    media_size: Mapped[int | None]
    media_path: Mapped[str | None] = mapped_column(String(512))
    media_error: Mapped[str | None] = mapped_column(Text)
    #: When the media id arrived: Meta's media ids die 7 days later.
    media_id_at: Mapped[datetime | None]
    media_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    edited_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Contact(Base):
    """A contact of the business's app address book, one per peer; last write (by Meta's
    timestamp) wins."""

    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("onboarding_id", "peer_id"),
        # The read API pages an onboarding's contacts by id (stable when a merge moves one).
        Index("ix_contacts_onboarding_position", "onboarding_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    onboarding_id: Mapped[int] = mapped_column(ForeignKey("onboardings.id", ondelete="CASCADE"))
    #: Like a message's, a peer's contact is moved, never deleted with it by a merge.
    peer_id: Mapped[int] = mapped_column(ForeignKey("peers.id"))
    #: The number the contact was saved under, if Meta gave it (username adopters may not).
    phone: Mapped[str | None] = mapped_column(String(64))
    full_name: Mapped[str | None] = mapped_column(String(512))
    first_name: Mapped[str | None] = mapped_column(String(256))
    removed_at: Mapped[datetime | None]
    #: ``metadata.timestamp`` of the newest change applied (decides ``removed_at``).
    changed_at: Mapped[datetime]
    #: Timestamp of the newest change that carried names (removals carry none).
    names_changed_at: Mapped[datetime | None]


class HistoryChunk(Base):
    """Ledger of history chunks received: completion and gaps are computed from it."""

    __tablename__ = "history_chunks"
    __table_args__ = (UniqueConstraint("onboarding_id", "phase", "chunk_order"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    onboarding_id: Mapped[int] = mapped_column(ForeignKey("onboardings.id", ondelete="CASCADE"))
    phase: Mapped[int]
    chunk_order: Mapped[int]
    progress: Mapped[int]
    messages: Mapped[int] = mapped_column(default=0)
    dropped_out_of_window: Mapped[int] = mapped_column(default=0)
    dropped_group: Mapped[int] = mapped_column(default=0)
    received_at: Mapped[datetime]


class DroppedMessage(Base):
    """A history message coexist does not keep (a group chat's, or one older than the history
    window), so that a late-media webhook announcing it later — or earlier — is not stored."""

    __tablename__ = "dropped_messages"
    __table_args__ = (UniqueConstraint("onboarding_id", "wamid"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    onboarding_id: Mapped[int] = mapped_column(ForeignKey("onboardings.id", ondelete="CASCADE"))
    wamid: Mapped[str] = mapped_column(String(191))
    reason: Mapped[str] = mapped_column(String(32))


class ChangeKind(enum.StrEnum):
    EDIT = "edit"
    REVOKE = "revoke"


class MessageChange(Base):
    """An edit or revoke that came before the message it changes, kept until that message is
    stored (by a history chunk, an app echo or late media) and then applied and removed."""

    __tablename__ = "message_changes"
    __table_args__ = (
        UniqueConstraint("onboarding_id", "wamid"),
        Index("ix_message_changes_original", "onboarding_id", "original_wamid"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    onboarding_id: Mapped[int] = mapped_column(ForeignKey("onboardings.id", ondelete="CASCADE"))
    #: The edit's or revoke's own message id.
    wamid: Mapped[str] = mapped_column(String(191))
    original_wamid: Mapped[str] = mapped_column(String(191))
    kind: Mapped[str] = mapped_column(String(8))
    #: An edit's new text or caption (None: the edit carried none, or a revoke).
    text_body: Mapped[str | None] = mapped_column(Text)
    #: The webhook's ``timestamp`` of the change.
    changed_at: Mapped[datetime]
    received_at: Mapped[datetime]


class PendingStatus(Base):
    """A status webhook for a message not stored yet (its API send still committing, its echo
    or history chunk on the way), kept until that message is stored and then applied and
    removed (:mod:`onboarding.ingest.statuses`)."""

    __tablename__ = "pending_statuses"
    __table_args__ = (
        UniqueConstraint("onboarding_id", "wamid", "status"),
        Index("ix_pending_statuses_received", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    onboarding_id: Mapped[int] = mapped_column(ForeignKey("onboardings.id", ondelete="CASCADE"))
    #: The message the status is about (the status's ``id``).
    wamid: Mapped[str] = mapped_column(String(191))
    status: Mapped[str] = mapped_column(String(16))
    #: The status webhook's ``timestamp``.
    status_at: Mapped[datetime]
    error_code: Mapped[int | None]
    error_title: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime]
