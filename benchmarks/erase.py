"""The erasure of a big onboarding: time and peak memory, against plain ``DELETE``s of the same
rows.

It builds one onboarding with ``--messages`` (1,000,000) messages over ``--threads`` (5,000)
peers as the read API benchmark does (:func:`benchmarks.read_api.build`), marks ``--media``
(2,000) random messages as holding one of as many stored media files of ``--media-kib`` (4) KiB
each, written to a temporary media folder, then ``VACUUM ANALYZE``. Then:

* ``erase``: :func:`onboarding.rights.erase.request_erasure`, then
  :func:`onboarding.rights.erase.advance` run again and again until the erasure is done, as the
  ``coexist.erase.run`` task does (``COEX_ERASE_BATCH_SIZE`` rows per transaction,
  ``COEX_ERASE_BATCHES_PER_RUN`` per run), in a child process of its own: its time, the runs it
  took, and its peak resident set (``ru_maxrss``) against the same process's just before;
* ``delete``: the baseline, on a second onboarding built the same way: one
  ``DELETE … WHERE onboarding_id`` of its messages and one of its peers, in one transaction,
  no media: the floor of removing those rows from PostgreSQL.

Prints one JSON object: the seconds of each, the erasure's memory and its time over the
baseline's. Resets the schema of its own database (``coexist_erase_bench`` by default).
"""

from __future__ import annotations

import argparse
import json
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import text

from benchmarks._harness import (
    DEFAULT_BROKER_URL,
    check_services,
    ensure_database,
    exclusive_stack,
    reset_database,
)
from benchmarks.export import add_media
from benchmarks.read_api import build
from config import Settings
from config.logging import configure_logging
from models import Database
from models.crypto import TokenCipher
from onboarding.media_store import LocalMediaStore
from onboarding.rights import erase

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/coexist_erase_bench"


def settings_for(url: str, media_dir: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        meta_app_id="1",
        meta_app_secret=secrets.token_urlsafe(16),  # type: ignore[arg-type]
        token_keys=TokenCipher.generate_key(),  # type: ignore[arg-type]
        media_dir=media_dir,
    )


def run_erase(database_url: str, onboarding_id: int, media_dir: Path) -> dict[str, Any]:
    """One erasure to its end in this process: seconds, runs, counts, resident set."""
    settings = settings_for(database_url, media_dir)
    store = LocalMediaStore(media_dir)
    db = Database(database_url)
    runs = 0
    with db.sessionmaker() as session:
        session.connection()  # connected before the resident set is read
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        erasure = erase.request_erasure(session, onboarding_id, reason="benchmark")
        while erasure is not None and erasure.state != "done":
            erasure = erase.advance(session, onboarding_id, store=store, settings=settings)
            runs += 1
        seconds = time.perf_counter() - started
        counts = dict(erasure.counts) if erasure is not None else {}
    db.dispose()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "seconds": round(seconds, 2),
        "runs": runs,
        "counts": counts,
        "batch_size": settings.erase_batch_size,
        "batches_per_run": settings.erase_batches_per_run,
        "max_rss_mib_before_erase": round(rss_before / 1024, 1),
        "max_rss_mib": round(peak / 1024, 1),
        "max_rss_growth_mib": round((peak - rss_before) / 1024, 1),
    }


def erase_in_child(database_url: str, onboarding_id: int, media_dir: Path) -> dict[str, Any]:
    """:func:`run_erase` in a fresh interpreter, so its peak resident set is the erasure's."""
    argv = [sys.executable, "-m", "benchmarks.erase", "--child-erase", str(onboarding_id)]
    argv += ["--database-url", database_url, "--media-dir", str(media_dir)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the erasure failed: {done.stderr[-2000:]}")
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def run_delete(db: Database, onboarding_id: int) -> dict[str, Any]:
    """The baseline: the onboarding's messages and peers deleted in one transaction each."""
    started = time.perf_counter()
    with db.engine.begin() as conn:
        messages = conn.execute(
            text("DELETE FROM messages WHERE onboarding_id = :o"), {"o": onboarding_id}
        ).rowcount
        peers = conn.execute(
            text("DELETE FROM peers WHERE onboarding_id = :o"), {"o": onboarding_id}
        ).rowcount
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "messages": messages,
        "peers": peers,
    }


def loaded(db: Database, args: argparse.Namespace, media_dir: Path, seed: int) -> int:
    oid, _ = build(db, args.messages, args.threads, seed)
    add_media(db, oid, media_dir, args.media, args.media_kib)
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE messages"))
        conn.execute(text("VACUUM ANALYZE peers"))
    return oid


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=5_000)
    parser.add_argument("--media", type=int, default=2_000)
    parser.add_argument("--media-kib", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--broker-url", default=DEFAULT_BROKER_URL)
    parser.add_argument("--child-erase", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--media-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    configure_logging("production", "WARNING")
    if args.child_erase is not None:
        print(json.dumps(run_erase(args.database_url, args.child_erase, args.media_dir)))
        return 0
    ensure_database(args.database_url)
    check_services(args.database_url, args.broker_url)
    with exclusive_stack(args.database_url), tempfile.TemporaryDirectory() as tmp:
        media_dir = Path(tmp) / "media"
        reset_database(args.database_url)
        db = Database(args.database_url)
        print(f"erase: writing {args.messages} messages", file=sys.stderr, flush=True)
        oid = loaded(db, args, media_dir, args.seed)
        print("erase: erasing", file=sys.stderr, flush=True)
        erased = erase_in_child(args.database_url, oid, media_dir)
        left = sum(1 for p in media_dir.rglob("*") if p.is_file())
        print(f"erase: writing {args.messages} messages again", file=sys.stderr, flush=True)
        other = loaded(db, args, Path(tmp) / "media-baseline", args.seed + 1)
        print("erase: DELETE baseline", file=sys.stderr, flush=True)
        baseline = run_delete(db, other)
        db.dispose()
    counts = erased["counts"]
    assert counts.get("media", 0) + counts.get("messages", 0) == args.messages, counts
    assert counts.get("media_objects") == args.media, counts
    assert left == 0, f"{left} media files left"
    result = {
        "messages": args.messages,
        "peers": counts.get("peers", 0),
        "media_files": args.media,
        "erase": {
            "seconds": erased["seconds"],
            "messages_per_second": round(args.messages / max(erased["seconds"], 0.01)),
            "runs": erased["runs"],
            "batch_size": erased["batch_size"],
            "batches_per_run": erased["batches_per_run"],
            "counts": counts,
            "max_rss_mib_before_erase": erased["max_rss_mib_before_erase"],
            "max_rss_mib": erased["max_rss_mib"],
            "max_rss_growth_mib": erased["max_rss_growth_mib"],
        },
        "delete_baseline": baseline,
        "erase_over_delete": round(erased["seconds"] / max(baseline["seconds"], 0.01), 2),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
