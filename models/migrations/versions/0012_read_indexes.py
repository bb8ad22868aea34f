"""the read API's indexes: a thread's messages in time order, stored media by content hash,
an onboarding's contacts by id

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 21:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

STORED = sa.text("media_state = 'stored'")


def upgrade() -> None:
    # Stored media is named by the hex sha256 of its bytes (the file name, the last 64
    # characters of media_path); media_sha256 held Meta's, possibly base64.
    op.execute(
        "UPDATE messages SET media_sha256 = substr(media_path, length(media_path) - 63) "
        "WHERE media_state = 'stored' AND length(media_path) >= 64"
    )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        # (onboarding_id, peer_id) is a prefix of the new index: merges still find a peer's
        # messages by it.
        batch_op.drop_index("ix_messages_peer")
        batch_op.create_index(
            "ix_messages_peer_time",
            ["onboarding_id", "peer_id", "sent_at", "id"],
            unique=False,
            postgresql_include=["direction"],
        )
        batch_op.create_index(
            "ix_messages_media_stored",
            ["media_sha256"],
            unique=False,
            postgresql_where=STORED,
            sqlite_where=STORED,
        )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_contacts_onboarding_position", ["onboarding_id", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_onboarding_position")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_messages_media_stored", postgresql_where=STORED, sqlite_where=STORED
        )
        batch_op.drop_index("ix_messages_peer_time")
        batch_op.create_index("ix_messages_peer", ["onboarding_id", "peer_id"], unique=False)
