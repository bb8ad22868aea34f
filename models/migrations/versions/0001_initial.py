"""onboardings, timeline, abandoned signups, syncs, alerts

Revision ID: 0001
Revises:
Create Date: 2026-11-26 08:33:18.868477
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from models.base import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "abandoned_signups",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("current_step", sa.String(length=128), nullable=True),
        sa.Column("error_code", sa.String(length=64), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.Column("session_id", sa.String(length=128), nullable=True),
        sa.Column("reported_at", UTCDateTime(), nullable=True),
        sa.Column(
            "session_data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_abandoned_signups")),
    )
    with op.batch_alter_table("abandoned_signups", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_abandoned_signups_session_id"), ["session_id"], unique=False
        )

    op.create_table(
        "onboardings",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("code_sha256", sa.String(length=64), nullable=False),
        sa.Column("code_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("signup_event", sa.String(length=64), nullable=False),
        sa.Column(
            "session_data",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("waba_id", sa.String(length=32), nullable=False),
        sa.Column("phone_number_id", sa.String(length=32), nullable=True),
        sa.Column("business_id", sa.String(length=32), nullable=True),
        sa.Column("display_phone_number", sa.String(length=32), nullable=True),
        sa.Column("verified_name", sa.String(length=256), nullable=True),
        sa.Column("region", sa.String(length=2), nullable=True),
        sa.Column("is_on_biz_app", sa.Boolean(), nullable=True),
        sa.Column("platform_type", sa.String(length=32), nullable=True),
        sa.Column("signup_completed_at", UTCDateTime(), nullable=False),
        sa.Column("sync_deadline_at", UTCDateTime(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("state_changed_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("failed_step", sa.String(length=32), nullable=True),
        sa.Column("token_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("last_app_activity_at", UTCDateTime(), nullable=True),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_onboardings")),
        sa.UniqueConstraint("code_sha256", name=op.f("uq_onboardings_code_sha256")),
    )
    with op.batch_alter_table("onboardings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_onboardings_phone_number_id"), ["phone_number_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_onboardings_state"), ["state"], unique=False)
        batch_op.create_index(batch_op.f("ix_onboardings_waba_id"), ["waba_id"], unique=False)

    op.create_table(
        "alerts",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "onboarding_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("raised_at", UTCDateTime(), nullable=False),
        sa.Column("acknowledged_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["onboarding_id"],
            ["onboardings.id"],
            name=op.f("fk_alerts_onboarding_id_onboardings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("onboarding_id", "kind", name=op.f("uq_alerts_onboarding_id_kind")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index("ix_alerts_open", ["acknowledged_at"], unique=False)

    op.create_table(
        "onboarding_transitions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "onboarding_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("from_state", sa.String(length=32), nullable=True),
        sa.Column("to_state", sa.String(length=32), nullable=False),
        sa.Column("cause", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["onboarding_id"],
            ["onboardings.id"],
            name=op.f("fk_onboarding_transitions_onboarding_id_onboardings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_onboarding_transitions")),
    )
    with op.batch_alter_table("onboarding_transitions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_onboarding_transitions_onboarding_id"), ["onboarding_id"], unique=False
        )

    op.create_table(
        "sync_requests",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "onboarding_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("sync_type", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("ambiguous_attempts", sa.Integer(), nullable=False),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("intent_at", UTCDateTime(), nullable=True),
        sa.Column("requested_at", UTCDateTime(), nullable=True),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("progress", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["onboarding_id"],
            ["onboardings.id"],
            name=op.f("fk_sync_requests_onboarding_id_onboardings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sync_requests")),
        sa.UniqueConstraint(
            "onboarding_id", "sync_type", name=op.f("uq_sync_requests_onboarding_id_sync_type")
        ),
    )


def downgrade() -> None:
    op.drop_table("sync_requests")
    with op.batch_alter_table("onboarding_transitions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_onboarding_transitions_onboarding_id"))

    op.drop_table("onboarding_transitions")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_open")

    op.drop_table("alerts")
    with op.batch_alter_table("onboardings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_onboardings_waba_id"))
        batch_op.drop_index(batch_op.f("ix_onboardings_state"))
        batch_op.drop_index(batch_op.f("ix_onboardings_phone_number_id"))

    op.drop_table("onboardings")
    with op.batch_alter_table("abandoned_signups", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_abandoned_signups_session_id"))

    op.drop_table("abandoned_signups")
