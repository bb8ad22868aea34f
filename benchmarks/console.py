"""The operator console on a big database: the onboardings list and a 1,000,000-message
onboarding's page through the real web app, against the bare SQL those pages are built on.

It writes ``--onboardings`` (10,000) onboardings in every state (their two sync rows, a
timeline of transitions, open and acknowledged alerts, follow-ups, history syncs in progress)
and one more with ``--messages`` (1,000,000) messages over ``--peers`` (5,000) peers: its
history ledger (two phases of chunks, a few missing), contacts, media in every state,
follow-ups and a timeline. Everything is written server-side with ``INSERT … SELECT
generate_series`` (no row leaves PostgreSQL), then ``VACUUM ANALYZE``. Then, alternating call
by call so load from elsewhere on the machine weighs on both sides alike:

* ``list_page``: ``GET /console/onboardings`` (with and without a state filter) through
  ``uvicorn onboarding.web:app`` on loopback, with the session cookie a ``POST /console/login``
  gave, against the page's queries issued directly on one connection (nothing rendered);
* ``onboarding_page``: ``GET /console/onboardings/{id}`` of the big onboarding, against its
  queries likewise.

Prints one JSON object: p50 and p99 in milliseconds of each side, the page's over the SQL's,
and the size of each page. ``--iterations`` (100) timed calls of each after ``--warmup`` (5).
Needs PostgreSQL (and Redis for the web app's health check); resets the schema of its own
database (``coexist_console_bench`` by default). :mod:`benchmarks.metrics_scrape` loads the
same data.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Connection, event, text

from benchmarks._harness import (
    DEFAULT_BROKER_URL,
    StackConfig,
    WebServer,
    check_services,
    ensure_database,
    exclusive_stack,
    reset_database,
    start_web,
)
from benchmarks.read_api import percentiles
from config.logging import configure_logging
from config.settings import Settings
from models import Database, OnboardingState
from onboarding.runtime import Runtime
from onboarding.web import console

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/coexist_console_bench"
#: Nothing listens here: the console never calls the Graph API to render a page.
NO_GRAPH = "http://127.0.0.1:9"
STATES = [s.value for s in OnboardingState]
#: Messages per history chunk, as Meta sends them.
CHUNK = 500


@dataclass(frozen=True)
class Loaded:
    """What :func:`load` wrote."""

    onboardings: int
    big_id: int
    messages: int
    inbox: int
    seconds: float


def load(
    db: Database, onboardings: int, messages: int, peers: int, inbox: int = 0, seed: int = 7
) -> Loaded:
    """``onboardings`` onboardings, then one with ``messages`` messages over ``peers`` peers,
    and ``inbox`` stored deliveries (one in ten still pending); returns the big one's id."""
    started = time.perf_counter()
    with db.engine.begin() as conn:
        conn.execute(text("SELECT setseed(:s)"), {"s": (seed % 1000) / 1000})
        _onboardings(conn, onboardings)
        big_id = _big_onboarding(conn, messages, peers)
        if inbox:
            _inbox(conn, inbox, big_id)
    seconds = time.perf_counter() - started
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    return Loaded(onboardings, big_id, messages, inbox, seconds)


def _onboardings(conn: Connection, count: int) -> None:
    # States cycle through every value; deadlines spread over the 24 h before and after now.
    conn.execute(
        text(
            "INSERT INTO onboardings (code_sha256, signup_event, session_data, waba_id,"
            " phone_number_id, display_phone_number, verified_name, signup_completed_at,"
            " sync_deadline_at, state, state_changed_at, peers_epoch, created_at, updated_at) "
            "SELECT md5('code' || g) || md5('c' || g),"
            " 'FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING', '{}',"
            " (102290000000000 + g)::text, (106540000000000 + g)::text,"
            " '+1 650-555-' || lpad((g % 10000)::text, 4, '0'), 'Business ' || g,"
            " now() - interval '1 day' + g * interval '1 second',"
            " now() + (random() * 48 - 24) * interval '1 hour',"
            " (CAST(:states AS text[]))[1 + g % cardinality(CAST(:states AS text[]))],"
            " now(), md5(g::text), now(), now()"
            " FROM generate_series(1, :n) g"
        ),
        {"n": count, "states": STATES},
    )
    # Two sync rows each; a third of the history syncs are in progress.
    conn.execute(
        text(
            "INSERT INTO sync_requests (onboarding_id, sync_type, state, attempts,"
            " ambiguous_attempts, progress, requested_at, updated_at) "
            "SELECT o.id, t.sync_type,"
            " CASE WHEN o.state IN ('syncing', 'synced') THEN"
            "  CASE WHEN t.sync_type = 'history' AND o.id % 3 = 0 THEN 'requested'"
            "  ELSE 'completed' END"
            " ELSE 'pending' END,"
            " 1, 0,"
            " CASE WHEN o.state IN ('syncing', 'synced') AND t.sync_type = 'history'"
            "  THEN (o.id * 7) % 101 ELSE 0 END,"
            " now(), now()"
            " FROM onboardings o, (VALUES ('smb_app_state_sync'), ('history')) t(sync_type)"
        )
    )
    conn.execute(
        text(
            "INSERT INTO onboarding_transitions (onboarding_id, at, from_state, to_state, cause) "
            "SELECT o.id, now() - (4 - s) * interval '1 minute',"
            " CASE WHEN s = 1 THEN NULL ELSE 'received' END,"
            " CASE WHEN s = 1 THEN 'received' ELSE o.state END, 'benchmark step ' || s"
            " FROM onboardings o, generate_series(1, 3) s"
        )
    )
    # One onboarding in seven has an alert; one in three of those is acknowledged.
    conn.execute(
        text(
            "INSERT INTO alerts (onboarding_id, kind, severity, message, raised_at,"
            " acknowledged_at) "
            "SELECT o.id, 'history_stalled', 'warning', 'No history webhook for 2 h',"
            " now() - interval '1 hour',"
            " CASE WHEN o.id % 3 = 0 THEN now() ELSE NULL END"
            " FROM onboardings o WHERE o.id % 7 = 0"
        )
    )
    conn.execute(
        text(
            "INSERT INTO follow_ups (onboarding_id, kind, series, step, due_at, status,"
            " attempts, sent_count, content, created_at) "
            "SELECT o.id, 'relink', 0, s, now() + s * interval '1 day',"
            " CASE WHEN s = 0 THEN 'sent' ELSE 'scheduled' END, 0, 0, '{}', now()"
            " FROM onboardings o, generate_series(0, 2) s WHERE o.id % 4 = 0"
        )
    )


def _big_onboarding(conn: Connection, messages: int, peers: int) -> int:
    big_id = int(
        conn.execute(
            text(
                "INSERT INTO onboardings (code_sha256, signup_event, session_data, waba_id,"
                " phone_number_id, display_phone_number, verified_name, signup_completed_at,"
                " sync_deadline_at, state, state_changed_at, peers_epoch, created_at,"
                " updated_at) "
                "VALUES (md5('big') || md5('big onboarding'),"
                " 'FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING', '{}', '102290129340398',"
                " '106540352242922', '+1 650-555-0100', 'Big Business', now() - interval '3 h',"
                " now() + interval '21 h', 'syncing', now(), md5('big'), now(), now())"
                " RETURNING id"
            )
        ).scalar_one()
    )
    params = {"o": big_id, "p": peers, "n": messages}
    conn.execute(
        text(
            "INSERT INTO sync_requests (onboarding_id, sync_type, state, attempts,"
            " ambiguous_attempts, progress, requested_at, updated_at) "
            "VALUES (:o, 'smb_app_state_sync', 'completed', 1, 0, 0, now(), now()),"
            " (:o, 'history', 'requested', 1, 0, 87, now(), now())"
        ),
        params,
    )
    conn.execute(
        text(
            "INSERT INTO onboarding_transitions (onboarding_id, at, from_state, to_state, cause) "
            "VALUES (:o, now() - interval '3 h', NULL, 'received', 'signup'),"
            " (:o, now() - interval '3 h', 'received', 'token_exchanged', 'code exchanged'),"
            " (:o, now() - interval '3 h', 'token_exchanged', 'subscribed', 'subscribed'),"
            " (:o, now() - interval '3 h', 'subscribed', 'syncing', 'syncs requested')"
        ),
        params,
    )
    conn.execute(
        text(
            "INSERT INTO peers (onboarding_id, phone, name, created_at, updated_at) "
            "SELECT :o, (16505550000 + g)::text, 'Peer ' || g, now(), now()"
            " FROM generate_series(1, :p) g"
        ),
        params,
    )
    # Thread sizes are skewed (random()^3 puts most messages in the first peers); one message
    # in fifty carries media, in every media state.
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
            " now() - random() * interval '180 days',"
            " CASE WHEN g % 50 = 0 THEN 'image' ELSE 'text' END,"
            " CASE WHEN g % 50 = 0 THEN NULL ELSE repeat(md5(g::text), 1 + (g % 8)) END,"
            " 'delivered',"
            " CASE WHEN g % 50 <> 0 THEN 'none'"
            "  ELSE (ARRAY['stored', 'awaiting_media', 'skipped_too_old', 'expired',"
            "   'failed'])[1 + (g / 50) % 5] END,"
            " 0"
            " FROM generate_series(1, :n) g, p"
        ),
        params,
    )
    # The ledger: phase 0 (the last day) and phase 1 (older), a chunk per 500 messages, with
    # one chunk in a hundred missing.
    conn.execute(
        text(
            "INSERT INTO history_chunks (onboarding_id, phase, chunk_order, progress, messages,"
            " dropped_out_of_window, dropped_group, received_at) "
            "SELECT :o, CASE WHEN c <= 10 THEN 0 ELSE 1 END,"
            " CASE WHEN c <= 10 THEN c ELSE c - 10 END, least(100, c * 100 / :chunks), :chunk,"
            " 0, c % 2, now()"
            " FROM generate_series(1, :chunks) c WHERE c % 100 <> 37"
        ),
        {**params, "chunk": CHUNK, "chunks": max(11, messages // CHUNK)},
    )
    conn.execute(
        text(
            "INSERT INTO contacts (onboarding_id, peer_id, phone, full_name, changed_at,"
            " removed_at) "
            "SELECT :o, id, phone, 'Contact ' || phone, now(),"
            " CASE WHEN id % 20 = 0 THEN now() ELSE NULL END"
            " FROM peers WHERE onboarding_id = :o AND id % 2 = 0"
        ),
        params,
    )
    conn.execute(
        text(
            "INSERT INTO follow_ups (onboarding_id, kind, series, step, due_at, status,"
            " attempts, sent_count, content, created_at) "
            "SELECT :o, 'relink', 0, s, now() + s * interval '1 day',"
            " CASE WHEN s = 0 THEN 'sent' ELSE 'scheduled' END, 0, 0, '{}', now()"
            " FROM generate_series(0, 3) s"
        ),
        params,
    )
    conn.execute(
        text(
            "INSERT INTO alerts (onboarding_id, kind, severity, message, raised_at) "
            "VALUES (:o, 'history_gaps', 'warning', 'Chunks missing in phase 1', now())"
        ),
        params,
    )
    return big_id


def _inbox(conn: Connection, count: int, onboarding_id: int) -> None:
    """``count`` stored deliveries of ~1 KB, one in ten still pending, a few quarantined."""
    conn.execute(
        text(
            "INSERT INTO inbox (sha256, body, size, received_at, status, fields, waba_id,"
            " phone_number_id, onboarding_id, attempts, duplicates, processed_at) "
            "SELECT encode(sha256(g::text::bytea), 'hex'),"
            " convert_to(repeat(md5(g::text), 32), 'UTF8'), 1024,"
            " now() - (:n - g) * interval '100 milliseconds',"
            " CASE WHEN g % 10 = 0 THEN 'pending' WHEN g % 997 = 0 THEN 'quarantined'"
            "  ELSE 'processed' END,"
            " 'history', '102290129340398', '106540352242922', :o, 1, 0,"
            " CASE WHEN g % 10 = 0 THEN NULL ELSE now() END"
            " FROM generate_series(1, :n) g"
        ),
        {"n": count, "o": onboarding_id},
    )


def timed(
    first: Callable[[], int], second: Callable[[], int], iterations: int, warmup: int
) -> tuple[list[float], list[float], int]:
    """Seconds per call of each side, alternating call by call after ``warmup`` untimed
    pairs, and the bytes (or rows) the first side returned last."""
    for _ in range(warmup):
        first()
        second()
    samples: tuple[list[float], list[float]] = ([], [])
    size = 0
    for _ in range(iterations):
        for side, call in enumerate((first, second)):
            began = time.perf_counter()
            got = call()
            samples[side].append(time.perf_counter() - began)
            if side == 0:
                size = got
    return samples[0], samples[1], size


def compare(page: list[float], sql: list[float], page_name: str = "page") -> dict[str, Any]:
    a, s = percentiles(page), percentiles(sql)
    return {
        page_name: a,
        "sql": s,
        f"{page_name}_p50_over_sql_p50": round(a["p50_ms"] / s["p50_ms"], 2),
        f"{page_name}_p99_over_sql_p99": round(a["p99_ms"] / s["p99_ms"], 2),
    }


def add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--onboardings", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--peers", type=int, default=5_000)
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--broker-url", default=DEFAULT_BROKER_URL)


@contextmanager
def loaded_stack(
    args: argparse.Namespace, name: str, inbox: int = 0, **overrides: str
) -> Iterator[tuple[Database, Loaded, WebServer, StackConfig]]:
    """Reset the database, load the data, and serve the web app on loopback."""
    configure_logging("production", "WARNING")
    # SIGTERM unwinds like Ctrl-C, so the web app is stopped on the way out.
    signal.signal(signal.SIGTERM, _interrupt)
    ensure_database(args.database_url)
    check_services(args.database_url, args.broker_url)
    config = StackConfig(
        database_url=args.database_url, broker_url=args.broker_url, overrides=overrides
    )
    with exclusive_stack(args.database_url):
        reset_database(args.database_url)
        db = Database(args.database_url)
        try:
            print(
                f"{name}: writing {args.onboardings} onboardings and {args.messages} messages",
                file=sys.stderr,
                flush=True,
            )
            loaded = load(db, args.onboardings, args.messages, args.peers, inbox, args.seed)
            log_dir = Path(tempfile.mkdtemp(prefix=f"coexist-{name}-bench-"))
            print(f"{name}: timing; web log in {log_dir}", file=sys.stderr, flush=True)
            with start_web(config, NO_GRAPH, log_dir) as web:
                yield db, loaded, web, config
        finally:
            db.dispose()


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def login(client: httpx.Client, token: str) -> None:
    """A console session: the cookie ``POST /console/login`` sets, sent with every request.

    The cookie is ``Secure`` in production, which a client sends only over HTTPS; on loopback
    it goes in the ``Cookie`` header as a browser behind TLS would send it."""
    answer = client.post("/console/login", data={"token": token})
    value = answer.cookies.get("coexist_console")
    if answer.status_code != 303 or not value:
        raise RuntimeError(f"console login failed: {answer.status_code}")
    client.headers["Cookie"] = f"coexist_console={value}"


def runtime(config: StackConfig) -> Runtime:
    """A runtime with the web app's settings, as the web app builds its own."""
    return Runtime.build(Settings(**config.values(NO_GRAPH)))  # type: ignore[arg-type]


def captured(db: Database, run: Callable[[], object]) -> list[tuple[str, Any]]:
    """The statements (and their parameters) ``run`` sends to the database, in order."""
    statements: list[tuple[str, Any]] = []

    def record(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
    ) -> None:
        statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    return statements


def replay(conn: Connection, statements: list[tuple[str, Any]]) -> Callable[[], int]:
    """Issue ``statements`` on ``conn`` and fetch their rows, nothing else (the baseline)."""

    def call() -> int:
        rows = 0
        try:
            for statement, parameters in statements:
                rows += len(conn.exec_driver_sql(statement, parameters).all())
        finally:
            conn.rollback()
        return rows

    return call


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_options(parser)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    args = parser.parse_args(argv)
    with (
        loaded_stack(args, "console") as (db, loaded, web, config),
        httpx.Client(base_url=web.url, timeout=60) as client,
        db.engine.connect() as conn,
    ):
        login(client, config.admin_token)
        big = loaded.big_id
        r = runtime(config)
        try:
            # The baseline replays exactly what the page's handler sends to the database.
            queries = {
                "list_page": captured(r.db, lambda: console._listing(r, None)),
                "list_page_state": captured(r.db, lambda: console._listing(r, "syncing")),
                "onboarding_page": captured(r.db, lambda: console._detail(r, big)),
            }
        finally:
            r.close()

        def get(path: str, **params: str) -> Callable[[], int]:
            def call() -> int:
                answer = client.get(path, params=params)
                answer.raise_for_status()
                return len(answer.content)

            return call

        pages = {
            "list_page": get("/console/onboardings"),
            "list_page_state": get("/console/onboardings", state="syncing"),
            "onboarding_page": get(f"/console/onboardings/{big}"),
        }
        results: dict[str, Any] = {}
        for name, page in pages.items():
            print(f"console: {name}", file=sys.stderr, flush=True)
            page_samples, sql_samples, size = timed(
                page, replay(conn, queries[name]), args.iterations, args.warmup
            )
            results[name] = {
                **compare(page_samples, sql_samples),
                "queries": len(queries[name]),
                "page_bytes": size,
            }
    result = {
        "onboardings": loaded.onboardings + 1,
        "messages": loaded.messages,
        "load_seconds": round(loaded.seconds, 1),
        "iterations": args.iterations,
        **results,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
