"""Idempotent bulk writes of messages and contacts (PostgreSQL and SQLite).

Every write is an upsert on a natural key, so a redelivered webhook, a replayed inbox row or
two workers racing on the same chunk end in the same rows:

* messages on (onboarding, wamid). The first writer's thread, direction and time stay; a later
  writer only fills what is missing, except that an app echo marks the message as sent from
  the app whichever came first (so the result does not depend on arrival order). Late media
  (the later webhook with a media id) and its placeholder merge into one row in either order.
  A revoked message stays without its text whatever delivers it again.
* contacts on (onboarding, peer) as two last-write-wins registers keyed by Meta's change
  timestamp: presence (added or removed) and names (only changes that carry names), so the
  result does not depend on the order changes arrive in.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Sequence
from typing import Any

from psycopg.errors import UniqueViolation
from psycopg.types.json import Jsonb
from sqlalchemy import Column, MetaData, Table, case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from models import Contact, HistoryChunk, MediaState, Message, MessageSource
from onboarding import metrics

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
    "media_error",
    "peer_id",
)
PLACEHOLDER = "media_placeholder"
MESSAGES: Table = Message.__table__  # type: ignore[assignment]


def insert_for(session: Session, table: Any) -> Any:
    """The dialect's INSERT (with ON CONFLICT support) for ``session``'s database."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"upserts are written for PostgreSQL and SQLite, not {dialect}")


def upsert_messages(session: Session, rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert or merge message rows (dicts keyed by :data:`MESSAGE_COLUMNS`). Not committed.

    On PostgreSQL the rows are streamed with ``COPY`` into a session-local staging table and
    merged with one ``INSERT … SELECT … ON CONFLICT``; elsewhere the new ones are inserted and
    the others merged, each as one executemany. Either way a wamid repeated within the batch
    is merged once (first wins). Returns the rows whose wamid was not stored before (the feed
    tells of those only), in their order.
    """
    if not rows:
        return []
    unique: dict[str, dict[str, Any]] = {}
    for row in rows:
        unique.setdefault(row["wamid"], row)
    for source, count in Counter(row["source"] for row in unique.values()).items():
        metrics.MESSAGES.labels(source).inc(count)
    if session.get_bind().dialect.name == "postgresql":
        return _copy_upsert(session, list(unique.values()))
    # Rows new to the table are inserted (and named by RETURNING); the others are merged.
    table = Message.__table__
    params = [{c: row.get(c) for c in MESSAGE_COLUMNS} for row in unique.values()]
    fresh = insert_for(session, table).on_conflict_do_nothing(
        index_elements=[table.c.onboarding_id, table.c.wamid]
    )
    inserted = set(session.execute(fresh.returning(table.c.wamid), params).scalars())
    stored = [p for p in params if p["wamid"] not in inserted]
    if stored:
        session.execute(_merge(insert_for(session, table)), stored)
    return [row for wamid, row in unique.items() if wamid in inserted]


def _merge(stmt: Any) -> Any:
    table = Message.__table__
    new = stmt.excluded
    old = table.c
    return stmt.on_conflict_do_update(
        index_elements=[old.onboarding_id, old.wamid],
        set_={
            # Late media may arrive first without its thread; the placeholder knows it.
            "thread": case((old.thread == "", new.thread), else_=old.thread),
            # Seen both in history and as an echo: it was sent from the app, whatever came first.
            "source": case(
                (new.source == MessageSource.APP_ECHO.value, new.source), else_=old.source
            ),
            "type": case((old.type == PLACEHOLDER, new.type), else_=old.type),
            "raw": case((old.type == PLACEHOLDER, new.raw), else_=func.coalesce(old.raw, new.raw)),
            # A revoked message's content is gone for everyone: a redelivery does not bring it back.
            "text_body": case(
                (old.revoked_at.is_not(None), None),
                else_=func.coalesce(old.text_body, new.text_body),
            ),
            "status": func.coalesce(old.status, new.status),
            "media_state": case(
                (old.media_state == MediaState.NONE.value, new.media_state),
                else_=old.media_state,
            ),
            "media_id": func.coalesce(old.media_id, new.media_id),
            "media_mime": func.coalesce(old.media_mime, new.media_mime),
            "media_sha256": func.coalesce(old.media_sha256, new.media_sha256),
            "media_id_at": func.coalesce(old.media_id_at, new.media_id_at),
            "media_error": func.coalesce(old.media_error, new.media_error),
            # Late media may name nobody; the placeholder's thread knows its peer.
            "peer_id": func.coalesce(old.peer_id, new.peer_id),
        },
    )


_STAGE = Table(
    "coexist_messages_stage",
    MetaData(),
    *(Column(c.name, c.type) for c in Message.__table__.c if c.name in MESSAGE_COLUMNS),
)
_STAGE_TYPES = [
    "bigint",
    "text",
    "text",
    "text",
    "text",
    "timestamptz",
    "text",
    "text",
    "text",
    "jsonb",
    "text",
    "text",
    "text",
    "text",
    "timestamptz",
    "text",
    "bigint",
]


def _copy_upsert(session: Session, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """PostgreSQL: COPY the page straight into ``messages``; if any wamid is already there,
    roll that back and merge the page instead. Returns the rows inserted (all of them when
    the COPY went through; those the merge inserted rather than updated otherwise).

    Most history pages are new messages, and COPY is the fastest way in. A page that repeats
    a stored wamid (a redelivered chunk, an echo, late media) fails the unique index
    inside a savepoint and takes the ``INSERT … ON CONFLICT`` merge. No lookup precedes the
    COPY: its cost would grow with the table.
    """
    connection = session.connection()
    dbapi = connection.connection.dbapi_connection
    assert dbapi is not None
    values = [_copy_values(row) for row in rows]
    with dbapi.cursor() as cursor:  # type: ignore[attr-defined]
        cursor.execute("SAVEPOINT coexist_copy")
        try:
            with cursor.copy(_COPY_MESSAGES) as copy:
                copy.set_types(_STAGE_TYPES)
                for value in values:
                    copy.write_row(value)
        except UniqueViolation:
            cursor.execute("ROLLBACK TO SAVEPOINT coexist_copy")
            inserted = _stage_merge(connection, cursor, values)
            return [row for row in rows if row["wamid"] in inserted]
        cursor.execute("RELEASE SAVEPOINT coexist_copy")
    return rows


def _copy_values(row: dict[str, Any]) -> tuple[Any, ...]:
    raw = row.get("raw")
    return (
        *(row.get(c) for c in MESSAGE_COLUMNS[:9]),
        None if raw is None else Jsonb(raw),
        *(row.get(c) for c in MESSAGE_COLUMNS[10:]),
    )


def _stage_merge(connection: Any, cursor: Any, values: list[tuple[Any, ...]]) -> set[str]:
    """Merge the page through the staging table; the wamids the merge inserted."""
    info = connection.connection.info
    if not info.get(_STAGE.name):
        cursor.execute(_CREATE_STAGE)
        info[_STAGE.name] = True
    with cursor.copy(_COPY_STAGE) as copy:
        copy.set_types(_STAGE_TYPES)
        for value in values:
            copy.write_row(value)
    cursor.execute(_merge_sql())
    inserted = {wamid for wamid, new in cursor.fetchall() if new}
    cursor.execute(f"TRUNCATE {_STAGE.name}")
    return inserted


_COPY_MESSAGES = f"COPY messages ({', '.join(MESSAGE_COLUMNS)}) FROM STDIN"


_CREATE_STAGE = (
    f"CREATE TEMP TABLE IF NOT EXISTS {_STAGE.name} ON COMMIT DELETE ROWS AS "  # noqa: S608
    f"SELECT {', '.join(MESSAGE_COLUMNS)} FROM messages WITH NO DATA"
)
_COPY_STAGE = f"COPY {_STAGE.name} ({', '.join(MESSAGE_COLUMNS)}) FROM STDIN"


@functools.cache
def _merge_sql() -> str:
    """The INSERT … SELECT … ON CONFLICT statement, compiled once for PostgreSQL. It returns
    each row's wamid and whether it was inserted (a row the statement inserted has no
    ``xmax``; one it updated has the updating transaction's)."""
    statement = _merge(
        postgresql.insert(MESSAGES).from_select(
            list(MESSAGE_COLUMNS),
            select(*(_STAGE.c[c] for c in MESSAGE_COLUMNS)),
            include_defaults=False,
        )
    )
    dialect: Any = postgresql.dialect()  # type: ignore[no-untyped-call]
    compiled = statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    return f"{compiled} RETURNING messages.wamid, messages.xmax = 0"


def upsert_contacts(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """Apply contact changes, newest timestamp winning. Not committed.

    One statement cannot touch a row twice, so changes to the same peer within a batch are
    applied in rounds, oldest first (a removal after an edit keeps the edited name).
    """
    if not rows:
        return
    rounds: list[list[dict[str, Any]]] = []
    seen: dict[tuple[int, int], int] = {}
    for row in sorted(rows, key=lambda r: r["changed_at"]):
        key = (row["onboarding_id"], row["peer_id"])
        n = seen.get(key, -1) + 1
        seen[key] = n
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(row)
    table = Contact.__table__
    for batch in rounds:
        stmt = insert_for(session, table)
        new, old = stmt.excluded, table.c
        newer = new.changed_at > old.changed_at
        newer_names = (new.names_changed_at.is_not(None)) & (
            (old.names_changed_at.is_(None)) | (new.names_changed_at > old.names_changed_at)
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[old.onboarding_id, old.peer_id],
            set_={
                "phone": func.coalesce(new.phone, old.phone),
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


def upsert_chunk(session: Session, row: dict[str, Any]) -> None:
    """Record a history chunk in the ledger; a repeat keeps the largest figures. Not committed."""
    table = HistoryChunk.__table__
    stmt = insert_for(session, table).values(**row)
    new, old = stmt.excluded, table.c

    def larger(column: str) -> Any:
        return case((old[column] > new[column], old[column]), else_=new[column])

    stmt = stmt.on_conflict_do_update(
        index_elements=[old.onboarding_id, old.phase, old.chunk_order],
        set_={
            c: larger(c) for c in ("progress", "messages", "dropped_out_of_window", "dropped_group")
        },
    )
    session.execute(stmt)
