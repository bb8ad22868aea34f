"""Idempotent bulk writes of messages and contacts (PostgreSQL and SQLite).

Every write is an upsert on a natural key, so a redelivered webhook, a replayed inbox row or
two workers racing on the same chunk end in the same rows:

* messages on (onboarding, wamid). The first writer's thread, direction and time stay; a later
  writer only fills what is missing, except that an app echo marks the message as sent from
  the app whichever came first (so the result does not depend on arrival order). A media
  follow-up and its placeholder merge into one row in either order.
* contacts on (onboarding, phone) as two last-write-wins registers keyed by Meta's change
  timestamp: presence (added or removed) and names (only changes that carry names), so the
  result does not depend on the order changes arrive in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import case, func
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from models import Contact, MediaState, Message, MessageSource

MESSAGE_COLUMNS = (
    "onboarding_id",
    "wamid",
    "thread",
    "direction",
    "source",
    "sent_at",
    "type",
    "text_body",
    "status",
    "raw",
    "media_state",
    "media_id",
    "media_mime",
    "media_sha256",
    "media_id_at",
)
PLACEHOLDER = "media_placeholder"


def _insert(session: Session, table: Any) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"upserts are written for PostgreSQL and SQLite, not {dialect}")


def upsert_messages(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Insert or merge message rows (dicts keyed by :data:`MESSAGE_COLUMNS`). Not committed."""
    if not rows:
        return
    table = Message.__table__
    stmt = _insert(session, table)
    new = stmt.excluded
    old = table.c
    stmt = stmt.on_conflict_do_update(
        index_elements=[old.onboarding_id, old.wamid],
        set_={
            # A follow-up may arrive first without its thread; the placeholder knows it.
            "thread": case((old.thread == "", new.thread), else_=old.thread),
            # Seen both in history and as an echo: it was sent from the app, whatever came first.
            "source": case(
                (new.source == MessageSource.APP_ECHO.value, new.source), else_=old.source
            ),
            "type": case((old.type == PLACEHOLDER, new.type), else_=old.type),
            "raw": case((old.type == PLACEHOLDER, new.raw), else_=func.coalesce(old.raw, new.raw)),
            "text_body": func.coalesce(old.text_body, new.text_body),
            "status": func.coalesce(old.status, new.status),
            "media_state": case(
                (old.media_state == MediaState.NONE.value, new.media_state),
                else_=old.media_state,
            ),
            "media_id": func.coalesce(old.media_id, new.media_id),
            "media_mime": func.coalesce(old.media_mime, new.media_mime),
            "media_sha256": func.coalesce(old.media_sha256, new.media_sha256),
            "media_id_at": func.coalesce(old.media_id_at, new.media_id_at),
        },
    )
    session.execute(stmt, [{c: row.get(c) for c in MESSAGE_COLUMNS} for row in rows])


def upsert_contacts(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Apply contact changes, newest timestamp winning. Not committed.

    One statement cannot touch a row twice, so changes to the same phone within a batch are
    applied in rounds, oldest first (a removal after an edit keeps the edited name).
    """
    if not rows:
        return
    rounds: list[list[dict[str, Any]]] = []
    seen: dict[tuple[int, str], int] = {}
    for row in sorted(rows, key=lambda r: r["changed_at"]):
        key = (row["onboarding_id"], row["phone"])
        n = seen.get(key, -1) + 1
        seen[key] = n
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(row)
    table = Contact.__table__
    for batch in rounds:
        stmt = _insert(session, table)
        new, old = stmt.excluded, table.c
        newer = new.changed_at > old.changed_at
        newer_names = (new.names_changed_at.is_not(None)) & (
            (old.names_changed_at.is_(None)) | (new.names_changed_at > old.names_changed_at)
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[old.onboarding_id, old.phone],
            set_={
                "removed_at": case((newer, new.removed_at), else_=old.removed_at),
                "changed_at": case((newer, new.changed_at), else_=old.changed_at),
                "full_name": case((newer_names, new.full_name), else_=old.full_name),
                "first_name": case((newer_names, new.first_name), else_=old.first_name),
                "names_changed_at": case(
                    (newer_names, new.names_changed_at), else_=old.names_changed_at
                ),
            },
        )
        session.execute(stmt, batch)
