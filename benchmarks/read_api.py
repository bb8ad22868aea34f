"""The read API on a big onboarding: a page of a thread's messages through the real web app,
against the bare keyset query the page is built on.

It builds one onboarding with ``--messages`` (1,000,000) messages over ``--threads`` (5,000)
peers, written server-side in one ``INSERT … SELECT generate_series`` (faster than ``COPY``:
no row leaves PostgreSQL), with skewed thread sizes (a few threads hold most messages, as in a
business's real history), random times over 180 days, both directions, text of varied length;
then ``VACUUM ANALYZE``. It picks ``--requests`` (2,000) random positions (a random message, so
big threads come up as often as they hold messages, and a random order) and times:

* ``api``: ``GET /v1/onboardings/{id}/threads/{peer}/messages?limit=100&order=…&after=…``
  through ``uvicorn onboarding.web:app`` on loopback, one keep-alive httpx connection, one
  request at a time (latency, not throughput);
* ``sql``: the same page's keyset query (:func:`onboarding.read.messages.page_query`) run
  directly on one connection, rows fetched: the floor the API stands on.

The two alternate request by request, so load from elsewhere on the machine weighs on both.

Also the first page and random later pages of ``GET …/threads?limit=100`` against its query
(one index probe per peer). Prints one JSON object: p50 and p99 in milliseconds of each, and
the API's p50 and p99 over the query's. Needs PostgreSQL (and Redis for the web app's health
check); resets the schema of its own database (``coexist_read_bench`` by default).
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select, text

from benchmarks._harness import (
    DEFAULT_BROKER_URL,
    StackConfig,
    check_services,
    ensure_database,
    exclusive_stack,
    reset_database,
    start_web,
)
from config.logging import configure_logging
from models import Database, Message, Onboarding, Peer, utcnow
from onboarding.read import messages, threads
from onboarding.read.pages import Order, encode, micros

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/coexist_read_bench"
#: Nothing listens here: the web app never calls the Graph API for reads.
NO_GRAPH = "http://127.0.0.1:9"


def build(db: Database, count: int, peers: int, seed: int) -> tuple[int, float]:
    """One onboarding with ``count`` messages over ``peers`` peers; its id and the seconds the
    load took."""
    with db.session() as session:
        now = utcnow()
        onboarding = Onboarding(
            code_sha256=secrets.token_hex(32),
            signup_event="FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
            session_data={},
            waba_id="102290129340398",
            phone_number_id="106540352242922",
            signup_completed_at=now,
            sync_deadline_at=now,
            state="synced",
            state_changed_at=now,
        )
        session.add(onboarding)
        session.flush()
        onboarding_id = onboarding.id
    started = time.perf_counter()
    with db.engine.begin() as conn:
        conn.execute(text("SELECT setseed(:s)"), {"s": (seed % 1000) / 1000})
        conn.execute(
            text(
                "INSERT INTO peers (onboarding_id, phone, name, created_at, updated_at) "
                "SELECT :o, (16505550000 + g)::text, 'Peer ' || g, now(), now() "
                "FROM generate_series(1, :p) g"
            ),
            {"o": onboarding_id, "p": peers},
        )
        # Thread sizes are skewed: random()^3 puts most messages in the first peers.
        conn.execute(
            text(
                "WITH p AS (SELECT array_agg(id ORDER BY id) AS ids FROM peers"
                " WHERE onboarding_id = :o) "
                "INSERT INTO messages (onboarding_id, wamid, thread, peer_id, direction, source,"
                " sent_at, type, text_body, status, media_state, media_attempts) "
                "SELECT :o, 'wamid.HBgL' || md5(g::text), 'x',"
                " p.ids[1 + floor(power(random(), 3) * :p)::int],"
                " CASE WHEN random() < 0.5 THEN 'inbound' ELSE 'outbound' END,"
                " CASE WHEN random() < 0.9 THEN 'history' ELSE 'app_echo' END,"
                " now() - random() * interval '180 days', 'text',"
                " repeat(md5(g::text), 1 + (g % 8)), 'delivered', 'none', 0"
                " FROM generate_series(1, :n) g, p"
            ),
            {"o": onboarding_id, "p": peers, "n": count},
        )
    load = time.perf_counter() - started
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE peers, messages"))
    return onboarding_id, load


def positions(
    db: Database, onboarding_id: int, requests: int, seed: int
) -> list[tuple[int, Order, messages.Position]]:
    """``requests`` random (peer, order, position) triples: random messages of the onboarding
    as the cursor each page starts after."""
    with db.sessionmaker() as session:
        rows = session.execute(
            select(Message.peer_id, Message.sent_at, Message.id)
            .where(Message.onboarding_id == onboarding_id)
            .order_by(text("random()"))
            .limit(requests)
        ).all()
    rng = random.Random(seed)
    picked: list[tuple[int, Order, messages.Position]] = []
    for peer_id, sent_at, message_id in rows:
        order: Order = "asc" if rng.random() < 0.5 else "desc"
        picked.append((peer_id, order, messages.Position(sent_at, message_id)))
    return picked


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 3),
        "p99_ms": round(p99 * 1000, 3),
    }


def timed(
    calls: list[tuple[Callable[[], int], Callable[[], int]]], warmup: int
) -> tuple[list[float], list[float], tuple[int, int]]:
    """Seconds per call of each side after ``warmup`` untimed pairs, and the rows each side
    returned in all. The sides alternate call by call, so whatever else the machine does
    weighs on both alike."""
    for first, second in calls[:warmup]:
        first()
        second()
    samples: tuple[list[float], list[float]] = ([], [])
    rows = [0, 0]
    for pair in calls:
        for side, call in enumerate(pair):
            started = time.perf_counter()
            rows[side] += call()
            samples[side].append(time.perf_counter() - started)
    return samples[0], samples[1], (rows[0], rows[1])


def compare(api: list[float], sql: list[float]) -> dict[str, Any]:
    a, s = percentiles(api), percentiles(sql)
    return {
        "api": a,
        "sql": s,
        "api_p50_over_sql_p50": round(a["p50_ms"] / s["p50_ms"], 2),
        "api_p99_over_sql_p99": round(a["p99_ms"] / s["p99_ms"], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=5_000)
    parser.add_argument("--requests", type=int, default=2_000)
    parser.add_argument("--thread-pages", type=int, default=200)
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--broker-url", default=DEFAULT_BROKER_URL)
    args = parser.parse_args(argv)
    configure_logging("production", "WARNING")
    ensure_database(args.database_url)
    check_services(args.database_url, args.broker_url)
    token = secrets.token_urlsafe(24)
    config = StackConfig(
        database_url=args.database_url,
        broker_url=args.broker_url,
        overrides={"feed_token": token},
    )
    limit = args.limit
    with exclusive_stack(args.database_url):
        reset_database(args.database_url)
        db = Database(args.database_url)
        print(f"read_api: writing {args.messages} messages", file=sys.stderr, flush=True)
        oid, load_seconds = build(db, args.messages, args.threads, args.seed)
        picked = positions(db, oid, args.requests, args.seed)
        with db.sessionmaker() as session:
            peer_count = session.scalar(
                select(func.count()).select_from(Peer).where(Peer.onboarding_id == oid)
            )
        log_dir = Path(tempfile.mkdtemp(prefix="coexist-read-bench-"))
        print(f"read_api: timing; web log in {log_dir}", file=sys.stderr, flush=True)
        with (
            start_web(config, NO_GRAPH, log_dir) as web,
            httpx.Client(
                base_url=web.url, headers={"Authorization": f"Bearer {token}"}, timeout=30
            ) as client,
            db.engine.connect() as conn,
        ):

            def api_page(peer_id: int, order: Order, after: messages.Position) -> Callable[[], int]:
                cursor = encode(messages.listing(order), micros(after.sent_at), after.id)
                url = f"/v1/onboardings/{oid}/threads/{peer_id}/messages"
                params = {"limit": str(limit), "order": order, "after": cursor}

                def call() -> int:
                    answer = client.get(url, params=params)
                    answer.raise_for_status()
                    return len(answer.json()["messages"])

                return call

            def sql_page(peer_id: int, order: Order, after: messages.Position) -> Callable[[], int]:
                query = messages.page_query(oid, peer_id, order=order, after=after, limit=limit)
                # The query reads one row past the page: it says whether another follows.
                return lambda: min(limit, len(conn.execute(query).all()))

            api_samples, sql_samples, (api_rows, sql_rows) = timed(
                [(api_page(*p), sql_page(*p)) for p in picked], args.warmup
            )
            conn.rollback()

            # Threads: the first page, then pages after random threads' positions.
            first = client.get(f"/v1/onboardings/{oid}/threads", params={"limit": str(limit)})
            first.raise_for_status()
            rng = random.Random(args.seed)
            heads = [
                threads.Position(after.sent_at, peer_id)
                for peer_id, _, after in rng.sample(picked, min(len(picked), args.thread_pages))
            ]

            def api_threads(after: threads.Position) -> Callable[[], int]:
                params = {
                    "limit": str(limit),
                    "after": encode(threads.LISTING, micros(after.last_at), after.peer_id),
                }

                def call() -> int:
                    answer = client.get(f"/v1/onboardings/{oid}/threads", params=params)
                    answer.raise_for_status()
                    return len(answer.json()["threads"])

                return call

            def sql_threads(after: threads.Position) -> Callable[[], int]:
                def call() -> int:
                    rows = conn.execute(threads.threads_query(oid, after=after, limit=limit)).all()
                    ids = [row.id for row in rows[:limit]]
                    if ids:
                        conn.execute(threads.counts_query(oid, ids)).all()
                    return len(rows)

                return call

            warm = min(args.warmup, 10)
            api_thread_samples, sql_thread_samples, _ = timed(
                [(api_threads(h), sql_threads(h)) for h in heads], warm
            )
            conn.rollback()
        db.dispose()
    assert api_rows == sql_rows, (api_rows, sql_rows)
    result = {
        "messages": args.messages,
        "threads": int(peer_count or 0),
        "load_seconds": round(load_seconds, 1),
        "limit": limit,
        "messages_page": {**compare(api_samples, sql_samples), "rows": api_rows},
        "threads_page": compare(api_thread_samples, sql_thread_samples),
        "first_threads_page_items": len(first.json()["threads"]),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
