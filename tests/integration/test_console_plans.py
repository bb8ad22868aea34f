"""The console's onboarding page on PostgreSQL: its thread count and latest messages come from
indexes (``EXPLAIN``), never a read of every message of the onboarding from the table."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import text

from models import Database
from onboarding.views import threads_query
from onboarding.web.console import latest_messages_query
from tests.integration.test_read_plans import fill, make_onboarding, plan, scans_of_messages

pytestmark = pytest.mark.integration


@pytest.fixture
def big(db: Database) -> int:
    """An onboarding with 60,000 messages over 300 threads next to another's 20,000, vacuumed
    as autovacuum leaves a table whose rows have settled."""
    fill(db, make_onboarding(db, "b"), 100, 20_000)
    oid = make_onboarding(db, "a")
    fill(db, oid, 300, 60_000)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE messages, peers"))
    return oid


def node_types(nodes: list[dict[str, Any]]) -> set[str]:
    return {n["Node Type"] for n in nodes}


def test_an_onboardings_threads_are_counted_without_reading_the_table(
    db: Database, big: int
) -> None:
    """The threads are probed per peer and the unnamed ones looked up, never a table scan."""
    scans = scans_of_messages(plan(db, threads_query(big)))
    assert scans, scans
    assert all(kind != "Seq Scan" for kind, _ in scans), scans


def test_the_latest_messages_are_a_backward_index_read(db: Database, big: int) -> None:
    """The page's 25 latest messages read ix_messages_onboarding_time in order, unsorted."""
    nodes = plan(db, latest_messages_query(big))
    scans = scans_of_messages(nodes)
    assert scans == [("Index Scan", "ix_messages_onboarding_time")], scans
    assert "Sort" not in node_types(nodes)
