"""The read API on PostgreSQL: pages come from indexes (``EXPLAIN``), never a scan of the
messages table, and keyset walks over real timestamps give every row once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Select, select, text

from models import Database, Message, Onboarding, utcnow
from onboarding.read import messages, threads
from onboarding.read.messages import Position
from onboarding.read.pages import Order

pytestmark = pytest.mark.integration

PEERS = 300
MESSAGES = 60_000
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_onboarding(db: Database, code: str) -> int:
    with db.session() as session:
        now = utcnow()
        row = Onboarding(
            code_sha256=code * 64,
            signup_event="FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
            session_data={},
            waba_id="102290129340398",
            signup_completed_at=now,
            sync_deadline_at=now,
            state_changed_at=now,
        )
        session.add(row)
        session.flush()
        return row.id


def fill(db: Database, onboarding_id: int, peers: int, count: int) -> None:
    """``count`` messages spread over ``peers`` peers, 600 to a second (so a thread has
    messages sharing their time), written in one statement."""
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO peers (onboarding_id, phone, created_at, updated_at) "
                "SELECT :o, (16505550000 + g)::text, now(), now() FROM generate_series(1, :p) g"
            ),
            {"o": onboarding_id, "p": peers},
        )
        conn.execute(
            text(
                "WITH p AS (SELECT array_agg(id ORDER BY id) AS ids FROM peers"
                " WHERE onboarding_id = :o) "
                "INSERT INTO messages (onboarding_id, wamid, thread, peer_id, direction, source,"
                " sent_at, type, text_body, media_state, media_attempts) "
                "SELECT :o, 'wamid.' || :o || '.' || g, 'x', p.ids[1 + g % :p],"
                " CASE WHEN g % 3 = 0 THEN 'outbound' ELSE 'inbound' END, 'history',"
                " :t0 + (g / 600) * interval '1 second', 'text', 'hello', 'none', 0"
                " FROM generate_series(1, :n) g, p"
            ),
            {"o": onboarding_id, "p": peers, "n": count, "t0": T0},
        )
        conn.execute(text("ANALYZE peers, messages"))


@pytest.fixture
def big(db: Database) -> tuple[int, int]:
    """An onboarding with 60,000 messages over 300 threads, next to another onboarding's
    20,000; its first peer's id."""
    other = make_onboarding(db, "b")
    fill(db, other, 100, 20_000)
    oid = make_onboarding(db, "a")
    fill(db, oid, PEERS, MESSAGES)
    with db.sessionmaker() as session:
        peer_id = session.scalar(
            text("SELECT min(id) FROM peers WHERE onboarding_id = :o"), {"o": oid}
        )
    assert peer_id is not None
    return oid, int(peer_id)


def plan(db: Database, query: Select[*tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Every node of PostgreSQL's plan for ``query``."""
    with db.engine.connect() as conn:
        compiled = query.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        raw = conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {compiled}", compiled.params).scalar()
    nodes: list[dict[str, Any]] = []
    pending = [raw[0]["Plan"]]
    while pending:
        node = pending.pop()
        nodes.append(node)
        pending += node.get("Plans", [])
    return nodes


def scans_of_messages(nodes: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [
        (n["Node Type"], n.get("Index Name")) for n in nodes if n.get("Relation Name") == "messages"
    ]


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("middle", [False, True], ids=["first-page", "middle-page"])
def test_a_message_page_is_an_index_range_read(
    db: Database, big: tuple[int, int], order: Order, middle: bool
) -> None:
    """A page of 100 of one thread's messages reads ix_messages_peer_time in the page's order:
    no Seq Scan on messages and no Sort."""
    oid, peer_id = big
    after = Position(T0 + timedelta(seconds=50), 10**6) if middle else None
    nodes = plan(db, messages.page_query(oid, peer_id, order=order, after=after, limit=100))
    scans = scans_of_messages(nodes)
    assert scans, nodes
    assert all(kind in ("Index Scan", "Index Only Scan") for kind, _ in scans), scans
    assert {index for _, index in scans} == {"ix_messages_peer_time"}
    assert "Sort" not in {n["Node Type"] for n in nodes}


def test_a_threads_page_probes_the_index_per_peer(db: Database, big: tuple[int, int]) -> None:
    """The threads list finds each peer's last message by index, never scanning messages."""
    oid, _ = big
    nodes = plan(db, threads.threads_query(oid, after=None, limit=100))
    scans = scans_of_messages(nodes)
    assert scans, nodes
    assert all(kind != "Seq Scan" for kind, _ in scans), scans
    assert "ix_messages_peer_time" in {index for _, index in scans}


def test_a_threads_counts_read_the_index_only(db: Database, big: tuple[int, int]) -> None:
    """The counts of a page's threads come from ix_messages_peer_time, not the table."""
    oid, first = big
    nodes = plan(db, threads.counts_query(oid, list(range(first, first + 100))))
    scans = scans_of_messages(nodes)
    assert scans, nodes
    assert all(kind != "Seq Scan" for kind, _ in scans), scans


def test_walking_a_thread_on_postgresql_gives_every_message_once(
    db: Database, big: tuple[int, int]
) -> None:
    """Pages of 7 in both orders, with many messages sharing a second, match the thread."""
    oid, peer_id = big
    with db.sessionmaker() as session:
        expected = list(
            session.scalars(
                select(Message.wamid)
                .where(Message.onboarding_id == oid, Message.peer_id == peer_id)
                .order_by(Message.sent_at, Message.id)
            )
        )
        orders: tuple[Order, ...] = ("asc", "desc")
        for order in orders:
            seen: list[str] = []
            after: Position | None = None
            for _ in range(len(expected)):
                found = messages.read_messages(
                    session, oid, peer_id, order=order, after=after, limit=7, media_url=str
                )
                seen += [m["wamid"] for m in found.items]
                if found.next_cursor is None:
                    break
                after = messages.after_position(found.next_cursor, order)
            assert seen == (expected if order == "asc" else expected[::-1])


def test_walking_the_threads_on_postgresql_gives_every_thread_once(
    db: Database, big: tuple[int, int]
) -> None:
    """Pages of 37 give every peer with messages once, most recent first (as an aggregate over
    all messages orders them); peers without messages, which PostgreSQL sorts first when
    descending unless told, never appear."""
    oid, _ = big
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO peers (onboarding_id, phone, created_at, updated_at) "
                "SELECT :o, (17005550000 + g)::text, now(), now() FROM generate_series(1, 5) g"
            ),
            {"o": oid},
        )
    with db.sessionmaker() as session:
        expected = [
            peer_id
            for peer_id, _ in session.execute(
                text(
                    "SELECT peer_id, max(sent_at) AS last FROM messages WHERE onboarding_id = :o"
                    " GROUP BY peer_id ORDER BY last DESC, peer_id DESC"
                ),
                {"o": oid},
            )
        ]
        seen: list[int] = []
        after: threads.Position | None = None
        for _ in range(PEERS):
            found = threads.read_threads(session, oid, after=after, limit=37)
            seen += [t["peer"]["id"] for t in found.items]
            if found.next_cursor is None:
                break
            after = threads.after_position(found.next_cursor)
    assert seen == expected
    assert len(seen) == PEERS
