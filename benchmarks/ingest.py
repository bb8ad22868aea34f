"""History ingestion throughput: N history messages through the real processing path.

The sandbox's generator builds a business's history (default 1,000,000 messages in chunks of
500 over 5,000 threads, as Meta would send it), each chunk is stored in the inbox exactly as the
receiver stores it, then ``onboarding.ingest.dispatch.process_delivery`` — the function the
``ingest`` queue's task runs — processes every row into PostgreSQL, in ``--workers`` processes.
Reported in
the same run, on the same rows:

* ``naive``: one ORM ``add`` + ``flush`` per message, on a sample (the obvious way);
* ``copy``: raw ``COPY`` of the same rows into the same table (the practical limit);
* ``server_copy``: the stored messages written by the server to a binary file and read back
  into the same indexed table (``COPY … TO/FROM '<file>' (FORMAT binary)``): the server's own
  limit, with no client in the way;
* ``--feed both`` (the default): the whole ingest once with the event feed off and once on,
  same rows; ``feed_on_ratio`` is the rate with the feed over the rate without;
* peak RSS of the processing workers, and the same for a run ten times smaller: flat memory
  means peak RSS does not grow with the number of messages.

``--adopters SHARE`` (default 0.2) of the users adopted a username: their business-scoped user
id comes with every message, and the threads of those Meta shows without a number carry only
it (no ``threads[].id``). The contacts sync follows the history; some contacts saved by
username only are named again with both identifiers, joining a number to a thread first seen
without one (docs/meta.md#111-business-scoped-user-ids-and-usernames).

Prints one JSON object. Needs PostgreSQL; resets the schema of a disposable database.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import secrets
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import make_url

from benchmarks._harness import check_postgres, ensure_database, exclusive_stack, reset_database
from config.logging import configure_logging
from models import Database, Message, MessageSource, Onboarding, SyncState, SyncType
from models.crypto import TokenCipher
from onboarding.ingest import dispatch as ingest
from onboarding.ingest import inbox as webhooks
from onboarding.ingest.rows import Context, Tally, message_row
from onboarding.meta.payloads import parse_delivery
from onboarding.sandbox import HistoryGenerator, HistoryProfile, NumberContext
from onboarding.sandbox.payloads import envelope
from onboarding.signup.intake import SignupBody, accept_signup
from onboarding.store import MESSAGE_COLUMNS

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/coexist_bench"
WABA, PNID, NUMBER = "102290129340398", "106540352242922", "15550783881"


def settings_for(url: str, page_size: int) -> Any:
    from config import Settings  # noqa: PLC0415

    return Settings(
        _env_file=None,
        database_url=url,
        meta_app_id="1",
        meta_app_secret=secrets.token_urlsafe(16),
        token_keys=TokenCipher.generate_key(),
        ingest_page_size=page_size,
    )


def make_onboarding(db: Database, cfg: Any) -> int:
    with db.session() as session:
        body = SignupBody.model_validate(
            {
                "code": f"AQbench{time.time_ns()}",
                "session": {
                    "type": "WA_EMBEDDED_SIGNUP",
                    "event": "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
                    "data": {"waba_id": WABA},
                },
            }
        )
        outcome = accept_signup(
            session, body, settings=cfg, cipher=TokenCipher(cfg.token_keys.get_secret_value())
        )
        onboarding = session.get_one(Onboarding, outcome.onboarding_id)
        onboarding.phone_number_id = PNID
        onboarding.display_phone_number = NUMBER
        onboarding.state = "syncing"
        for t in SyncType:
            onboarding.sync(t).state = SyncState.REQUESTED.value
        assert outcome.onboarding_id is not None
        return outcome.onboarding_id


def profile(messages: int, threads: int, chunk_size: int, adopters: float) -> HistoryProfile:
    return HistoryProfile(
        seed=11,
        total_messages=messages,
        threads=threads,
        contacts=max(threads // 5, 1),
        adopter_share=adopters,
        chunk_size=chunk_size,
        duplicate_share=0.0,
        shuffle=True,
        days=170,
        beyond_window_share=0.0,
        group_thread_share=0.0,
        media_share=0.05,
    )


def load_inbox(
    db: Database, messages: int, threads: int, chunk_size: int, adopters: float
) -> tuple[int, int]:
    """Store every chunk, then the contacts sync, as signed deliveries would be stored.

    Returns (rows, bytes).
    """
    generator = HistoryGenerator(
        profile(messages, threads, chunk_size, adopters),
        NumberContext(WABA, PNID, NUMBER, onboarded_at=time.time()),
    )
    rows = size = 0
    with db.sessionmaker() as session:
        for field, value in _deliveries(generator):
            body = json.dumps(
                envelope(WABA, field, value, int(time.time())), separators=(",", ":")
            ).encode()
            webhooks.receive(session, body)
            rows += 1
            size += len(body)
    return rows, size


def _deliveries(generator: HistoryGenerator) -> Iterator[tuple[str, dict[str, Any]]]:
    """The history chunks, then the contacts: the initial chunks and the later changes (the
    last of which name both identifiers of users first seen without a number)."""
    bsuid_only = with_number = 0
    for chunk in generator.chunks():
        for thread in chunk.threads:
            if "context" in thread:
                with_number += "id" in thread
                bsuid_only += "id" not in thread
        yield "history", generator.history_value(chunk)
    plan = generator.contacts_plan()
    for index in range(plan.initial_chunks):
        yield "smb_app_state_sync", generator.state_sync_value(generator.contact_items(index))
    base = generator.context.onboarded_at
    for change in range(plan.changes):
        item = generator.contact_change(change, base)
        yield "smb_app_state_sync", generator.state_sync_value([item])
    print(
        f"ingest: thread chunks with a number {with_number}, BSUID only {bsuid_only}; "
        f"contacts joined later {plan.joins}",
        file=sys.stderr,
        flush=True,
    )


def _worker(args: tuple[str, int, int, int, bool, bool]) -> dict[str, float]:
    url, worker, workers, page_size, history, feed = args
    configure_logging("production", "WARNING")
    # As the ingest task does (COEX_FEED_ENABLED gives ``feed``).
    db = Database(url, synchronous_commit=False, pool_size=1, feed=feed)
    cfg = settings_for(url, page_size)
    with db.engine.connect() as conn:
        ids = [
            r[0]
            for r in conn.execute(
                text(
                    "SELECT id FROM inbox WHERE status = 'pending' AND id % :n = :k"
                    # Not parsed yet: the field is told from the stored body.
                    ' AND (position(\'"field":"history"\'::bytea in body) > 0) = :history'
                    " ORDER BY id"
                ),
                {"n": workers, "k": worker, "history": history},
            )
        ]
    with db.sessionmaker() as session:  # connect before the clock starts
        session.execute(text("SELECT 1"))
    started = time.time()
    window = time.time()
    for n, delivery_id in enumerate(ids, 1):
        with db.sessionmaker() as session:
            ingest.process_delivery(session, delivery_id, settings=cfg)
        if n % 100 == 0:
            now = time.time()
            print(
                f"ingest: worker {worker}: {n} deliveries, last 100 in {now - window:.2f} s",
                file=sys.stderr,
                flush=True,
            )
            window = now
    ended = time.time()
    db.dispose()
    return {
        "seconds": ended - started,
        "started": started,
        "ended": ended,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_processing(url: str, workers: int, page_size: int, feed: bool) -> dict[str, Any]:
    """The history deliveries first (``wall_seconds``: the messages' rate), then the contacts
    sync (``contacts_seconds``), each shared among ``workers`` processes."""
    ctx = multiprocessing.get_context("spawn")
    walls = []
    history_results: list[dict[str, float]] = []
    with ctx.Pool(workers) as pool:
        for history in (True, False):
            results = pool.map(
                _worker, [(url, k, workers, page_size, history, feed) for k in range(workers)]
            )
            # From the first worker starting to process to the last one finishing.
            walls.append(max(r["ended"] for r in results) - min(r["started"] for r in results))
            if history:
                history_results = results
    return {"wall_seconds": walls[0], "contacts_seconds": walls[1], "workers": history_results}


def count_messages(db: Database) -> int:
    with db.engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM messages")).scalar_one())


def count_events(db: Database) -> dict[str, int]:
    """Feed events written, by type, and the messages their ``messages.stored`` pages list."""
    with db.engine.connect() as conn:
        counts = {
            str(t): int(n)
            for t, n in conn.execute(text("SELECT type, count(*) FROM feed_events GROUP BY type"))
        }
        listed = conn.execute(
            text(
                "SELECT coalesce(sum(json_array_length(body->'messages')), 0) FROM feed_events "
                "WHERE type = 'messages.stored'"
            )
        ).scalar_one()
    return {"events": sum(counts.values()), **counts, "messages_listed": int(listed)}


def rows_for_baselines(
    db: Database, onboarding_id: int, limit: int | None
) -> list[tuple[Any, ...]]:
    """The same message rows the processing path builds, from the stored deliveries."""
    cfg = settings_for(db.url, 1000)
    out: list[tuple[Any, ...]] = []
    with db.sessionmaker() as session:
        onboarding = session.get_one(Onboarding, onboarding_id)
        ctx = Context.of(onboarding, NUMBER, cfg)
        now = datetime.now(UTC)
        for (body,) in session.execute(text("SELECT body FROM inbox ORDER BY id")):
            for change in parse_delivery(body):
                for item in change.value.get("history", []):
                    for thread in item.get("threads", []):
                        for msg in thread["messages"]:
                            row = message_row(
                                ctx,
                                msg,
                                source=MessageSource.HISTORY,
                                thread=thread.get("id") or thread["context"]["user_id"],
                                tally=Tally(),
                                now=now,
                            )
                            if row is not None:
                                out.append(tuple(row.get(c) for c in MESSAGE_COLUMNS))
                            if limit is not None and len(out) >= limit:
                                return out
    return out


def naive_baseline(db: Database, rows: list[tuple[Any, ...]]) -> float:
    """One ORM add and flush per message (the obvious implementation)."""
    with db.engine.begin() as conn:
        conn.execute(text("DELETE FROM messages"))
    started = time.perf_counter()
    with db.session() as session:
        for values in rows:
            session.add(
                Message(**dict(zip(MESSAGE_COLUMNS, values, strict=True)), media_attempts=0)
            )
            session.flush()
    return len(rows) / (time.perf_counter() - started)


def copy_baseline(db: Database, rows: list[tuple[Any, ...]]) -> float:
    """Raw COPY of the same rows into the same table: the practical limit."""
    from psycopg.types.json import Jsonb  # noqa: PLC0415

    with db.engine.begin() as connection:
        connection.execute(text("DELETE FROM messages"))
    raw_index = MESSAGE_COLUMNS.index("raw")
    conn = db.engine.raw_connection()
    try:
        started = time.perf_counter()
        copy_sql = f"COPY messages ({', '.join(MESSAGE_COLUMNS)}) FROM STDIN"
        with conn.cursor() as cursor, cursor.copy(copy_sql) as copy:  # type: ignore[attr-defined]
            for values in rows:
                raw = values[raw_index]
                copy.write_row(
                    values
                    if raw is None
                    else (*values[:raw_index], Jsonb(raw), *values[raw_index + 1 :])
                )
        conn.commit()
        return len(rows) / (time.perf_counter() - started)
    finally:
        conn.close()


def server_copy_baseline(db: Database) -> float:
    """The server's own limit: the stored messages written by PostgreSQL to a binary file,
    the table emptied, and the file read back into the same indexed table (messages/s of the
    read). The file is under /tmp, named after the database, and emptied afterwards."""
    name = make_url(db.url).database or "bench"
    path = f"/tmp/coexist_{name}_messages.bin"  # noqa: S108 - written by the local server
    with db.engine.begin() as conn:
        rows = int(conn.execute(text("SELECT count(*) FROM messages")).scalar_one())
        conn.exec_driver_sql(f"COPY messages TO '{path}' (FORMAT binary)")
        conn.exec_driver_sql("TRUNCATE messages")
    started = time.perf_counter()
    with db.engine.begin() as conn:
        conn.exec_driver_sql(f"COPY messages FROM '{path}' (FORMAT binary)")
    seconds = time.perf_counter() - started
    with db.engine.begin() as conn:  # leave an empty file behind, not a copy of the table
        conn.exec_driver_sql(f"COPY (SELECT 1 WHERE false) TO '{path}'")
    return rows / seconds


def measure(
    url: str,
    messages: int,
    threads: int,
    chunk_size: int,
    workers: int,
    page_size: int,
    adopters: float,
    feed: bool = True,
) -> dict[str, Any]:
    reset_database(url)
    db = Database(url, feed=feed)  # the signup writes its event too
    cfg = settings_for(url, page_size)
    onboarding_id = make_onboarding(db, cfg)
    started = time.perf_counter()
    chunks, size = load_inbox(db, messages, threads, chunk_size, adopters)
    load_seconds = time.perf_counter() - started
    print(f"ingest: processing {chunks} deliveries", file=sys.stderr, flush=True)
    result = run_processing(url, workers, page_size, feed)
    stored = count_messages(db)
    return {
        "db": db,
        "onboarding_id": onboarding_id,
        "chunks": chunks,
        "bytes": size,
        "inbox_load_seconds": round(load_seconds, 2),
        "stored": stored,
        "feed": count_events(db),
        **result,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=5_000)
    parser.add_argument("--chunk-size", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--page-size", type=int, default=1000)
    parser.add_argument("--naive-sample", type=int, default=20_000)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument(
        "--adopters",
        type=float,
        default=0.2,
        metavar="SHARE",
        help="share of users who adopted a username (some shown by business-scoped id only)",
    )
    parser.add_argument(
        "--load-only",
        action="store_true",
        help="only ingest the messages (no small run, no baselines): a background load",
    )
    parser.add_argument(
        "--feed",
        choices=("on", "off", "both"),
        default="both",
        help="ingest with the event feed on, off, or both in turn on the same rows (default)",
    )
    args = parser.parse_args(argv)
    if not 0.0 <= args.adopters <= 1.0:
        parser.error("--adopters must be a share between 0 and 1")
    configure_logging("production", "WARNING")
    ensure_database(args.database_url)
    check_postgres(args.database_url)
    shape = (args.threads, args.chunk_size, args.workers, args.page_size, args.adopters)
    if args.load_only:
        with exclusive_stack(args.database_url):
            run = measure(args.database_url, args.messages, *shape, feed=args.feed != "off")
            run.pop("db").dispose()
        json.dump(
            {
                "benchmark": "ingest",
                "load_only": True,
                "messages_stored": run["stored"],
                "seconds": round(run["wall_seconds"], 2),
                "messages_per_s": round(run["stored"] / run["wall_seconds"]),
                "contacts_seconds": round(run["contacts_seconds"], 2),
            },
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
        return 0
    modes = {"on": [True], "off": [False], "both": [False, True]}[args.feed]
    with exclusive_stack(args.database_url):
        small = measure(args.database_url, max(args.messages // 10, 1000), *shape, feed=modes[-1])
        small["db"].dispose()
        runs: dict[bool, dict[str, Any]] = {}
        for feed in modes:  # the last run's rows stay for the baselines
            runs[feed] = measure(args.database_url, args.messages, *shape, feed=feed)
            if feed is not modes[-1]:
                runs[feed].pop("db").dispose()
        big = runs[modes[-1]]
        db: Database = big.pop("db")
        rows = rows_for_baselines(db, big["onboarding_id"], None)
        server_copy_rate = server_copy_baseline(db)
        copy_rate = copy_baseline(db, rows)
        naive_rate = naive_baseline(db, rows[: args.naive_sample])
        db.dispose()
    rates = {feed: run["stored"] / run["wall_seconds"] for feed, run in runs.items()}
    rate = rates[modes[-1]]
    peak = max(w["peak_rss_mb"] for w in big["workers"])
    peak_small = max(w["peak_rss_mb"] for w in small["workers"])
    ratios: dict[str, float] = {
        "vs_copy": round(rate / copy_rate, 3),
        "vs_server_copy": round(rate / server_copy_rate, 3),
        "vs_naive": round(rate / naive_rate, 1),
        "rss_big_over_small": round(peak / peak_small, 2),
    }
    goals = {
        "messages_per_s>=50000": rate >= 50_000,
        "vs_copy>=0.4": rate / copy_rate >= 0.4,
        "vs_naive>=20": rate / naive_rate >= 20,
        "rss_flat(<=1.25x)": peak / peak_small <= 1.25,
    }
    if len(rates) == 2:
        ratios["feed_on_ratio"] = round(rates[True] / rates[False], 3)
        goals["feed_on_ratio>=0.8"] = rates[True] / rates[False] >= 0.8
    report = {
        "benchmark": "ingest",
        "messages_generated": args.messages,
        "messages_stored": big["stored"],
        "chunks": big["chunks"],
        "inbox_mb": round(big["bytes"] / 2**20, 1),
        "workers": args.workers,
        "page_size": args.page_size,
        "feed": args.feed,
        "seconds": round(big["wall_seconds"], 2),
        "messages_per_s": round(rate),
        "contacts_seconds": round(big["contacts_seconds"], 2),
        "peak_rss_mb": round(peak, 1),
        "small_run": {
            "messages": small["stored"],
            "peak_rss_mb": round(peak_small, 1),
            "messages_per_s": round(small["stored"] / small["wall_seconds"]),
        },
        "feed_runs": {
            ("on" if feed else "off"): {
                "messages_stored": run["stored"],
                "seconds": round(run["wall_seconds"], 2),
                "messages_per_s": round(rates[feed]),
                "feed_events": run["feed"],
            }
            for feed, run in runs.items()
        },
        "baseline": {
            "naive_orm_messages_per_s": round(naive_rate),
            "naive_sample": min(args.naive_sample, len(rows)),
            "copy_rows_per_s": round(copy_rate),
            "server_copy_messages_per_s": round(server_copy_rate),
        },
        "ratios": ratios,
        "goals": goals,
        "worker_seconds_median": round(statistics.median(w["seconds"] for w in big["workers"]), 2),
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
