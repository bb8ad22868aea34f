"""peers: one person per onboarding, known by phone number and/or BSUID

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 21:40:00.000000

Messages and contacts now belong to a peer. Existing rows knew people only by phone number:
every distinct thread and contact phone of an onboarding becomes a peer with that number, and
the new ``peer_id`` columns are filled from it. Contacts become unique per (onboarding, peer).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from models.base import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BIG = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "peers",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("onboarding_id", BIG, nullable=False),
        sa.Column("user_id", sa.String(length=160), nullable=True),
        sa.Column("phone", sa.String(length=64), nullable=True),
        sa.Column("parent_user_id", sa.String(length=160), nullable=True),
        sa.Column("username", sa.String(length=256), nullable=True),
        sa.Column("name", sa.String(length=512), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["onboarding_id"],
            ["onboardings.id"],
            name=op.f("fk_peers_onboarding_id_onboardings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_peers")),
        sa.UniqueConstraint("onboarding_id", "phone", name=op.f("uq_peers_onboarding_id_phone")),
        sa.UniqueConstraint(
            "onboarding_id", "user_id", name=op.f("uq_peers_onboarding_id_user_id")
        ),
    )
    op.create_table(
        "user_id_changes",
        sa.Column("id", BIG, autoincrement=True, nullable=False),
        sa.Column("onboarding_id", BIG, nullable=False),
        sa.Column("previous", sa.String(length=160), nullable=False),
        sa.Column("current", sa.String(length=160), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["onboarding_id"],
            ["onboardings.id"],
            name=op.f("fk_user_id_changes_onboarding_id_onboardings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_id_changes")),
        sa.UniqueConstraint(
            "onboarding_id", "previous", name=op.f("uq_user_id_changes_onboarding_id_previous")
        ),
    )
    # Every number an onboarding's messages or contacts name becomes a peer.
    op.execute(
        "INSERT INTO peers (onboarding_id, phone, created_at, updated_at) "
        "SELECT onboarding_id, phone, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM ("
        " SELECT onboarding_id, thread AS phone FROM messages WHERE thread <> ''"
        " UNION SELECT onboarding_id, phone FROM contacts) AS named"
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.alter_column(
            "thread", existing_type=sa.String(length=64), type_=sa.String(length=160)
        )
        batch_op.add_column(sa.Column("peer_id", BIG, nullable=True))
        # A thread is a peer now: the peer index replaces the thread index (no more indexes
        # to maintain on the history ingest than before).
        batch_op.drop_index("ix_messages_thread")
        batch_op.create_index("ix_messages_peer", ["onboarding_id", "peer_id"], unique=False)
    op.execute(
        "UPDATE messages SET peer_id = (SELECT peers.id FROM peers"
        " WHERE peers.onboarding_id = messages.onboarding_id AND peers.phone = messages.thread)"
        " WHERE thread <> ''"
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("peer_id", BIG, nullable=True))
    op.execute(
        "UPDATE contacts SET peer_id = (SELECT peers.id FROM peers"
        " WHERE peers.onboarding_id = contacts.onboarding_id AND peers.phone = contacts.phone)"
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.alter_column("peer_id", existing_type=BIG, nullable=False)
        batch_op.alter_column("phone", existing_type=sa.String(length=64), nullable=True)
        batch_op.drop_constraint("uq_contacts_onboarding_id_phone", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_contacts_onboarding_id_peer_id"), ["onboarding_id", "peer_id"]
        )
        batch_op.create_foreign_key(
            batch_op.f("fk_contacts_peer_id_peers"),
            "peers",
            ["peer_id"],
            ["id"],
        )


def downgrade() -> None:
    # Contacts known only by BSUID have no number to fall back to: they cannot be kept.
    op.execute("DELETE FROM contacts WHERE phone IS NULL")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_constraint("fk_contacts_peer_id_peers", type_="foreignkey")
        batch_op.drop_constraint("uq_contacts_onboarding_id_peer_id", type_="unique")
        batch_op.create_unique_constraint(
            "uq_contacts_onboarding_id_phone", ["onboarding_id", "phone"]
        )
        batch_op.alter_column("phone", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_column("peer_id")
    # Threads named by a BSUID may be longer than the old column.
    op.execute("UPDATE messages SET thread = substr(thread, 1, 64) WHERE length(thread) > 64")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index("ix_messages_peer")
        batch_op.create_index("ix_messages_thread", ["onboarding_id", "thread"], unique=False)
        batch_op.drop_column("peer_id")
        batch_op.alter_column(
            "thread", existing_type=sa.String(length=160), type_=sa.String(length=64)
        )
    op.drop_table("user_id_changes")
    op.drop_table("peers")
