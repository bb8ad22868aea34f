"""webhook inbox, messages, contacts, history ledger

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 09:43:26.089748
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from models.base import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contacts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "onboarding_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("phone", sa.String(length=64), nullable=False),
        sa.Column("full_name", sa.String(length=512), nullable=True),
        sa.Column("first_name", sa.String(length=256), nullable=True),
        sa.Column("removed_at", UTCDateTime(), nullable=True),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.Column("names_changed_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["onboarding_id"],
            ["onboardings.id"],
            name=op.f("fk_contacts_onboarding_id_onboardings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
        sa.UniqueConstraint("onboarding_id", "phone", name=op.f("uq_contacts_onboarding_id_phone")),
    )
    op.create_table(
        "dropped_messages",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "onboarding_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("wamid", sa.String(length=191), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["onboarding_id"],
            ["onboardings.id"],
            name=op.f("fk_dropped_messages_onboarding_id_onboardings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dropped_messages")),
        sa.UniqueConstraint(
            "onboarding_id", "wamid", name=op.f("uq_dropped_messages_onboarding_id_wamid")
        ),
    )
    op.create_table(
        "history_chunks",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "onboarding_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("phase", sa.Integer(), nullable=False),
        sa.Column("chunk_order", sa.Integer(), nullable=False),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("messages", sa.Integer(), nullable=False),
        sa.Column("dropped_out_of_window", sa.Integer(), nullable=False),
        sa.Column("dropped_group", sa.Integer(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["onboarding_id"],
            ["onboardings.id"],
            name=op.f("fk_history_chunks_onboarding_id_onboardings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_history_chunks")),
        sa.UniqueConstraint(
            "onboarding_id",
            "phase",
            "chunk_order",
            name=op.f("uq_history_chunks_onboarding_id_phase_chunk_order"),
        ),
    )
    op.create_table(
        "inbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("fields", sa.String(length=256), nullable=True),
        sa.Column("waba_id", sa.String(length=32), nullable=True),
        sa.Column("phone_number_id", sa.String(length=32), nullable=True),
        sa.Column(
            "onboarding_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("dispatched_at", UTCDateTime(), nullable=True),
        sa.Column("processed_at", UTCDateTime(), nullable=True),
        sa.Column(
            "summary",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.ForeignKeyConstraint(
            ["onboarding_id"],
            ["onboardings.id"],
            name=op.f("fk_inbox_onboarding_id_onboardings"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inbox")),
        sa.UniqueConstraint("sha256", name=op.f("uq_inbox_sha256")),
    )
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_inbox_onboarding_id"), ["onboarding_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_inbox_phone_number_id"), ["phone_number_id"], unique=False
        )
        batch_op.create_index("ix_inbox_status_received", ["status", "received_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_inbox_waba_id"), ["waba_id"], unique=False)

    op.create_table(
        "messages",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "onboarding_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("wamid", sa.String(length=191), nullable=False),
        sa.Column("thread", sa.String(length=64), nullable=False),
        sa.Column("direction", sa.String(length=8), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("text_body", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=True),
        sa.Column(
            "raw",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("media_state", sa.String(length=16), server_default="none", nullable=False),
        sa.Column("media_id", sa.String(length=64), nullable=True),
        sa.Column("media_mime", sa.String(length=128), nullable=True),
        sa.Column("media_sha256", sa.String(length=128), nullable=True),
        sa.Column("media_size", sa.Integer(), nullable=True),
        sa.Column("media_path", sa.String(length=512), nullable=True),
        sa.Column("media_error", sa.Text(), nullable=True),
        sa.Column("media_id_at", UTCDateTime(), nullable=True),
        sa.Column("media_attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("edited_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["onboarding_id"],
            ["onboardings.id"],
            name=op.f("fk_messages_onboarding_id_onboardings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("onboarding_id", "wamid", name=op.f("uq_messages_onboarding_id_wamid")),
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.create_index(
            "ix_messages_media_awaiting",
            ["id"],
            unique=False,
            postgresql_where=sa.text("media_state = 'awaiting_media'"),
            sqlite_where=sa.text("media_state = 'awaiting_media'"),
        )
        batch_op.create_index("ix_messages_thread", ["onboarding_id", "thread"], unique=False)

    with op.batch_alter_table("sync_requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("first_webhook_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("last_webhook_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("completed_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sync_requests", schema=None) as batch_op:
        batch_op.drop_column("completed_at")
        batch_op.drop_column("last_webhook_at")
        batch_op.drop_column("first_webhook_at")

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_thread")
        batch_op.drop_index(
            "ix_messages_media_awaiting",
            postgresql_where=sa.text("media_state = 'awaiting_media'"),
            sqlite_where=sa.text("media_state = 'awaiting_media'"),
        )

    op.drop_table("messages")
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_inbox_waba_id"))
        batch_op.drop_index("ix_inbox_status_received")
        batch_op.drop_index(batch_op.f("ix_inbox_phone_number_id"))
        batch_op.drop_index(batch_op.f("ix_inbox_onboarding_id"))

    op.drop_table("inbox")
    op.drop_table("history_chunks")
    op.drop_table("dropped_messages")
    op.drop_table("contacts")
