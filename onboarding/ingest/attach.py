"""Message rows given their peer: who each message was exchanged with, resolved in bulk.

Echoes and late media name the user on each message (``from``/``from_user_id`` or
``to``/``to_user_id``) and in the value's ``contacts[]`` (``wa_id``, ``user_id``, ``profile``),
which joins a phone number with a BSUID (docs/meta.md#business-scoped-user-ids).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session

from onboarding.ingest import identity, peers
from onboarding.ingest.identity import Identity
from onboarding.ingest.rows import Context


def attach_peers(
    session: Session,
    ctx: Context,
    rows: Sequence[dict[str, Any]],
    messages: Sequence[dict[str, Any]],
    value: dict[str, Any],
) -> dict[int, Identity]:
    """Set each row's ``peer_id`` and ``thread`` from its message and the value's contacts;
    the identity of each peer found, for :func:`onboarding.ingest.peers.hold`.

    ``rows[i]`` was built from ``messages[i]``. One resolution for all of them."""
    contacts = identity.contacts_index(value)
    users = [identity.of_message(msg, ctx.business_number, contacts) for msg in messages]
    for row, user in zip(rows, users, strict=True):
        if user.known:
            row["thread"] = user.label
    found: dict[int, Identity] = {}
    for row, user, peer_id in zip(
        rows, users, peers.resolve(session, ctx.onboarding.id, users), strict=True
    ):
        row["peer_id"] = peer_id
        if peer_id is not None:
            found[peer_id] = user
    return found
