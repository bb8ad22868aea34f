"""The data export of a big onboarding: time and peak memory, against ``COPY`` of the same rows.

It builds one onboarding with ``--messages`` (1,000,000) messages over ``--threads`` (5,000)
peers as the read API benchmark does (:func:`benchmarks.read_api.build`: one server-side
``INSERT … SELECT generate_series``, skewed threads, text of varied length), marks
``--media`` (200) random messages as holding one of as many stored media files of
``--media-kib`` (64) KiB each, written to a temporary media folder, then ``VACUUM ANALYZE``.

Then, one after the other:

* ``export``: :func:`onboarding.rights.export.export_archive` written to a file, as
  ``coexist data export`` does (server-side cursors, zip entries written as rows come), in a
  child process of its own: its time, and its peak resident set (``ru_maxrss``) against the
  same process's resident set just before the export, once coexist is imported and the
  database connected (the growth is what the export itself holds);
* ``copy``: the baseline, ``COPY (SELECT row_to_json(…) FROM messages JOIN peers …) TO STDOUT``
  of the same messages with their peer's identifiers, streamed to a file by psycopg: the
  floor of reading those rows out of PostgreSQL as JSON text, with no archive and no media.

Prints one JSON object: the seconds, bytes and rows of each, the export's memory, and the
export's time over the baseline's. Resets the schema of its own database
(``coexist_export_bench`` by default).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.engine import make_url

from benchmarks._harness import (
    DEFAULT_BROKER_URL,
    check_services,
    ensure_database,
    exclusive_stack,
    reset_database,
)
from benchmarks.read_api import build
from config.logging import configure_logging
from models import Database, SyncRequest, SyncState, SyncType, utcnow
from onboarding.media_store import LocalMediaStore
from onboarding.rights.export import export_archive, write_archive

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/coexist_export_bench"

#: The baseline: the same messages, with the peer's identifiers, one JSON object per row.
COPY_SQL = """
COPY (
    SELECT row_to_json(r) FROM (
        SELECT m.id, m.wamid, m.thread, m.peer_id, m.direction, m.source, m.sent_at, m.type,
               m.text_body, m.status, m.status_at, m.status_error_code, m.status_error_title,
               m.raw, m.media_state, m.media_id, m.media_mime, m.media_sha256, m.media_size,
               m.media_error, m.edited_at, m.revoked_at,
               p.user_id, p.phone, p.parent_user_id, p.username, p.name
        FROM messages m LEFT JOIN peers p ON p.id = m.peer_id
        WHERE m.onboarding_id = {oid}
        ORDER BY m.peer_id, m.sent_at, m.id
    ) r
) TO STDOUT
"""


def add_syncs(db: Database, onboarding_id: int) -> None:
    """Both syncs requested and done, as on a synced onboarding (its detail reads them)."""
    with db.session() as session:
        now = utcnow()
        for sync_type in SyncType:
            session.add(
                SyncRequest(
                    onboarding_id=onboarding_id,
                    sync_type=sync_type.value,
                    state=SyncState.COMPLETED.value,
                    requested_at=now,
                    completed_at=now,
                    progress=100,
                )
            )


def add_media(db: Database, onboarding_id: int, media_dir: Path, files: int, kib: int) -> int:
    """``files`` stored media of ``kib`` KiB each, one per random message; the bytes written."""
    digests = []
    for n in range(files):
        content = os.urandom(kib * 1024 - 16) + n.to_bytes(16, "big")
        digests.append(LocalMediaStore(media_dir).put(content))
    with db.engine.begin() as conn:
        conn.execute(
            text(
                "WITH picked AS (SELECT id, row_number() OVER () AS n FROM (SELECT id FROM messages"
                " WHERE onboarding_id = :o ORDER BY random() LIMIT :k) s) "
                "UPDATE messages m SET media_state = 'stored', type = 'image',"
                " media_mime = 'image/jpeg', media_size = :size,"
                " media_sha256 = (CAST(:digests AS text[]))[picked.n]"
                " FROM picked WHERE m.id = picked.id"
            ),
            {"o": onboarding_id, "k": files, "size": kib * 1024, "digests": digests},
        )
    return files * kib * 1024


def run_export(database_url: str, onboarding_id: int, media_dir: Path, out: Path) -> dict[str, Any]:
    """One export to ``out`` in this process: seconds, bytes, counts, resident set."""
    db = Database(database_url)
    with db.sessionmaker() as session, out.open("wb") as file:
        session.connection()  # connected before the resident set is read
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        export = export_archive(session, onboarding_id, store=LocalMediaStore(media_dir))
        written = write_archive(export, file)
        seconds = time.perf_counter() - started
    db.dispose()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "seconds": round(seconds, 2),
        "bytes": written,
        "messages": export.counts.messages,
        "media_files": export.counts.media_files,
        "max_rss_mib_before_export": round(rss_before / 1024, 1),
        "max_rss_mib": round(peak / 1024, 1),
        "max_rss_growth_mib": round((peak - rss_before) / 1024, 1),
    }


def export_in_child(
    database_url: str, onboarding_id: int, media_dir: Path, out: Path
) -> dict[str, Any]:
    """:func:`run_export` in a fresh interpreter, so its peak resident set is the export's."""
    argv = [sys.executable, "-m", "benchmarks.export", "--child-export", str(onboarding_id)]
    argv += ["--database-url", database_url, "--media-dir", str(media_dir), "--out", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the export failed: {done.stderr[-2000:]}")
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def run_copy(database_url: str, onboarding_id: int, out: Path) -> dict[str, Any]:
    """The baseline: ``COPY … TO STDOUT`` of the same rows as JSON, streamed to ``out``."""
    url = make_url(database_url).set(drivername="postgresql")
    started = time.perf_counter()
    rows = 0
    with (
        psycopg.connect(url.render_as_string(hide_password=False)) as conn,
        conn.cursor() as cursor,
        out.open("wb") as file,
        cursor.copy(COPY_SQL.format(oid=int(onboarding_id))) as copy,
    ):
        for block in copy:
            file.write(block)
            rows += bytes(block).count(b"\n")
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "bytes": out.stat().st_size,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--threads", type=int, default=5_000)
    parser.add_argument("--media", type=int, default=200)
    parser.add_argument("--media-kib", type=int, default=64)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--database-url", default=DEFAULT_URL)
    parser.add_argument("--broker-url", default=DEFAULT_BROKER_URL)
    parser.add_argument("--child-export", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--media-dir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    configure_logging("production", "WARNING")
    if args.child_export is not None:
        answer = run_export(args.database_url, args.child_export, args.media_dir, args.out)
        print(json.dumps(answer))
        return 0
    ensure_database(args.database_url)
    check_services(args.database_url, args.broker_url)
    with exclusive_stack(args.database_url), tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        media_dir = work / "media"
        reset_database(args.database_url)
        db = Database(args.database_url)
        print(f"export: writing {args.messages} messages", file=sys.stderr, flush=True)
        oid, load_seconds = build(db, args.messages, args.threads, args.seed)
        add_syncs(db, oid)
        media_bytes = add_media(db, oid, media_dir, args.media, args.media_kib)
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE messages"))
        print("export: exporting", file=sys.stderr, flush=True)
        exported = export_in_child(args.database_url, oid, media_dir, work / "export.zip")
        print("export: COPY baseline", file=sys.stderr, flush=True)
        baseline = run_copy(args.database_url, oid, work / "copy.jsonl")
        db.dispose()
    assert exported["messages"] == baseline["rows"] == args.messages, (exported, baseline)
    result = {
        "messages": args.messages,
        "media_files": args.media,
        "media_bytes": media_bytes,
        "load_seconds": round(load_seconds, 1),
        "export": {
            "seconds": exported["seconds"],
            "archive_bytes": exported["bytes"],
            "messages_per_second": round(args.messages / exported["seconds"]),
            "max_rss_mib_before_export": exported["max_rss_mib_before_export"],
            "max_rss_mib": exported["max_rss_mib"],
            "max_rss_growth_mib": exported["max_rss_growth_mib"],
        },
        "copy_baseline": {
            "seconds": baseline["seconds"],
            "bytes": baseline["bytes"],
            "rows": baseline["rows"],
        },
        "export_over_copy": round(exported["seconds"] / baseline["seconds"], 2),
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
