"""Data export: everything coexist holds for one onboarding, as one zip archive, streamed.

:func:`export_archive` checks the onboarding exists (:class:`OnboardingNotFoundError` before a
single byte) and returns an :class:`Export`, whose iteration gives the archive's bytes in
chunks: the CLI writes them to a file, the admin API streams them. Rows are read through
server-side cursors (``yield_per``) and written into the archive as they come, a few hundred
KiB at a time, so memory stays flat on an onboarding of millions of messages; the lists only
known at the end (the media manifest and the sums) are spooled to temporary files, not held in
memory.

The archive (zip, deflate; ZIP64 entries so no file has a size limit), under
``coexist-onboarding-<id>/``:

=====================  ==========================================================================
``README.txt``         what each file holds
``manifest.json``      format, onboarding id, time of export, counts per file, media totals
``onboarding.json``    the onboarding as ``coexist onboardings show --json`` gives it (no secret:
                       neither the business token nor the signup code, encrypted or not)
``messages.jsonl``     every message, every source (history, app echo, API, live), with
                       direction, status, edit and revoke state, media, and the peer's
                       identifiers (BSUID, phone, username, name), grouped by peer in time order
``contacts.jsonl``     the address book, removed contacts included, with their peer
``peers.jsonl``        every person the business exchanged with or saved
``timeline.jsonl``     the onboarding's state changes
``follow_ups.jsonl``   reminders and alert follow-ups, each with its notifications per channel
``alerts.jsonl``       operator alerts about this onboarding
``media/<sha256>``     each stored media file once (named by the sha256 of its bytes)
``media/manifest.jsonl``  one line per media file: size, content type, messages using it, and
                       ``missing`` when the file was not found in the store
``SHA256SUMS``         ``sha256sum -c`` lines for every file above (but this one)
=====================  ==========================================================================

Media bytes are read from the media store (:mod:`onboarding.media_store`), a directory or a bucket.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import zipfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import IO, Any, BinaryIO, Final

import structlog
from sqlalchemy import Executable, func, select
from sqlalchemy.orm import Session

from models import (
    Alert,
    Contact,
    FollowUp,
    MediaState,
    Message,
    Notification,
    Onboarding,
    Peer,
    Transition,
    utcnow,
)
from onboarding.media_store import MediaStore
from onboarding.read.media import content_type
from onboarding.read.messages import SHA256_HEX
from onboarding.views import alert_json, follow_up_json, iso, onboarding_detail

log = structlog.get_logger(__name__)

FORMAT: Final = "coexist-export/1"
_NO_MEDIA: Final = MediaState.NONE.value
_STORED: Final = MediaState.STORED.value
#: Message lines joined into one write of the archive's entry.
LINES_PER_WRITE: Final = 500
#: Rows fetched per round trip of the server-side cursors.
ROWS_PER_FETCH: Final = 2_000
#: The archive's bytes are handed out once this many are ready.
CHUNK_BYTES: Final = 256 * 1024
#: Media bytes copied at a time.
COPY_BYTES: Final = 1024 * 1024
#: Temporary lists (media manifest, sums) stay in memory up to this size, then go to disk.
SPOOL_BYTES: Final = 1024 * 1024


class OnboardingNotFoundError(LookupError):
    """There is no onboarding with this id: nothing to export."""

    def __init__(self, onboarding_id: int) -> None:
        super().__init__(f"no onboarding {onboarding_id}")
        self.onboarding_id = onboarding_id


@dataclass
class ExportCounts:
    """What an archive holds, as its ``manifest.json`` says."""

    messages: int = 0
    messages_by_source: Counter[str] = field(default_factory=Counter)
    messages_by_direction: Counter[str] = field(default_factory=Counter)
    messages_edited: int = 0
    messages_revoked: int = 0
    contacts: int = 0
    contacts_removed: int = 0
    peers: int = 0
    timeline: int = 0
    follow_ups: int = 0
    alerts: int = 0
    media_files: int = 0
    media_bytes: int = 0
    media_missing: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "messages": self.messages,
            "messages_by_source": dict(sorted(self.messages_by_source.items())),
            "messages_by_direction": dict(sorted(self.messages_by_direction.items())),
            "messages_edited": self.messages_edited,
            "messages_revoked": self.messages_revoked,
            "contacts": self.contacts,
            "contacts_removed": self.contacts_removed,
            "peers": self.peers,
            "timeline": self.timeline,
            "follow_ups": self.follow_ups,
            "alerts": self.alerts,
            "media_files": self.media_files,
            "media_bytes": self.media_bytes,
            "media_missing": self.media_missing,
        }


def archive_name(onboarding_id: int) -> str:
    """The archive's file name, and its top folder without ``.zip``."""
    return f"coexist-onboarding-{onboarding_id}.zip"


def export_archive(
    session: Session, onboarding_id: int, *, store: MediaStore, now: datetime | None = None
) -> Export:
    """The export of ``onboarding_id``, to iterate for its bytes; raises at once if there is
    no such onboarding."""
    onboarding = session.get(Onboarding, onboarding_id)
    if onboarding is None:
        raise OnboardingNotFoundError(onboarding_id)
    return Export(session, onboarding, store, now or utcnow())


class _Spool:
    """The archive's bytes as :mod:`zipfile` writes them, handed out in chunks (unseekable)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._written = 0

    def write(self, data: bytes) -> int:
        self._buffer += data
        self._written += len(data)
        return len(data)

    def tell(self) -> int:
        return self._written

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def ready(self) -> bool:
        return len(self._buffer) >= CHUNK_BYTES

    def take(self) -> bytes:
        out = bytes(self._buffer)
        self._buffer.clear()
        return out


class Export:
    """One export being written: iterate it (once) for the archive's bytes; ``counts`` and
    ``files`` (sizes by name) are complete once it is exhausted."""

    def __init__(self, session: Session, onboarding: Onboarding, store: MediaStore, now: datetime):
        self.session = session
        self.onboarding = onboarding
        self.store = store
        self.now = now
        self.root = archive_name(onboarding.id).removesuffix(".zip")
        self.counts = ExportCounts()
        self.spool = _Spool()
        self.zip = zipfile.ZipFile(self.spool, "w", compression=zipfile.ZIP_DEFLATED)
        self.sums: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
        self.files: dict[str, int] = {}

    def __iter__(self) -> Iterator[bytes]:
        """The archive's bytes, a chunk of about :data:`CHUNK_BYTES` at a time."""
        onboarding_id = self.onboarding.id
        try:
            yield from self._write_all()
            self.zip.close()
            yield self.spool.take()
        finally:
            self.sums.close()
        log.info("onboarding_exported", onboarding_id=onboarding_id, **self.counts.to_dict())

    def _write_all(self) -> Iterator[bytes]:
        oid = self.onboarding.id
        detail = onboarding_detail(self.session, self.onboarding, now=self.now)
        yield from self._file("onboarding.json", [_dumps(detail, indent=2)])
        yield from self._file("messages.jsonl", self._messages(oid))
        yield from self._file("contacts.jsonl", self._contacts(oid))
        yield from self._file("peers.jsonl", self._peers(oid))
        yield from self._file("timeline.jsonl", self._timeline(oid))
        yield from self._file("follow_ups.jsonl", self._follow_ups(oid))
        yield from self._file("alerts.jsonl", self._alerts(oid))
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as media_manifest:
            yield from self._media(oid, media_manifest)
            media_manifest.seek(0)
            yield from self._file("media/manifest.jsonl", _blocks(media_manifest))
        yield from self._file("README.txt", [_readme(oid).encode()])
        manifest = {
            "format": FORMAT,
            "onboarding_id": oid,
            "exported_at": iso(self.now),
            "counts": self.counts.to_dict(),
            "files": self.files,
        }
        yield from self._file("manifest.json", [_dumps(manifest, indent=2)])
        self.sums.seek(0)
        yield from self._file("SHA256SUMS", _blocks(self.sums), summed=False)

    # -- writing ---------------------------------------------------------------------------

    def _file(self, name: str, parts: Iterable[bytes], *, summed: bool = True) -> Iterator[bytes]:
        """Write one archive entry from ``parts`` as they come, and note its sum and size."""
        digest = hashlib.sha256()
        size = 0
        with self.zip.open(f"{self.root}/{name}", "w", force_zip64=True) as entry:
            for part in parts:
                entry.write(part)
                digest.update(part)
                size += len(part)
                if self.spool.ready():
                    yield self.spool.take()
        if summed:
            self.sums.write(f"{digest.hexdigest()}  {name}\n".encode())
            self.files[name] = size

    def _media(self, oid: int, manifest: IO[bytes]) -> Iterator[bytes]:
        """Each stored media file of the onboarding once, and its manifest line."""
        query = (
            select(
                Message.media_sha256,
                func.min(Message.media_mime).label("mime"),
                func.count().label("messages"),
            )
            .where(
                Message.onboarding_id == oid,
                Message.media_state == MediaState.STORED.value,
                Message.media_sha256.is_not(None),
            )
            .group_by(Message.media_sha256)
            .order_by(Message.media_sha256)
        )
        for sha, mime, messages in self._rows(query):
            line: dict[str, Any] = {
                "sha256": sha,
                "content_type": content_type(mime),
                "messages": messages,
            }
            name = f"media/{sha}"
            # An unreachable store ends the export (StoreUnavailable): an archive handed to a
            # business does not silently lack its files. An absent object is listed as missing.
            source = self.store.open(sha) if SHA256_HEX.fullmatch(sha) else None
            if source is None:
                log.warning("export_media_missing", onboarding_id=oid, sha256=sha[:80])
                self.counts.media_missing += 1
                line.update(file=None, size=None, missing=True)
            else:
                yield from self._file(name, source.chunks())
                self.counts.media_files += 1
                self.counts.media_bytes += self.files[name]
                line.update(file=name, size=self.files[name], missing=False)
            manifest.write(_dumps(line) + b"\n")

    # -- reading ---------------------------------------------------------------------------

    def _rows(self, query: Executable, *, core: bool = False) -> Iterator[Any]:
        """The query's rows through a server-side cursor, a fetch of rows at a time (``core``:
        plain column rows, without the ORM's loading, in the session's transaction)."""
        query = query.execution_options(yield_per=ROWS_PER_FETCH)
        if core:
            yield from self.session.connection().execute(query)
        else:
            yield from self.session.execute(query)

    def _messages(self, oid: int) -> Iterator[bytes]:
        m = Message
        query = (
            select(
                m.id,
                m.wamid,
                m.thread,
                m.peer_id,
                m.direction,
                m.source,
                m.sent_at,
                m.type,
                m.text_body,
                m.status,
                m.status_at,
                m.status_error_code,
                m.status_error_title,
                m.raw,
                m.media_state,
                m.media_id,
                m.media_mime,
                m.media_sha256,
                m.media_size,
                m.media_error,
                m.edited_at,
                m.revoked_at,
                Peer.user_id,
                Peer.phone,
                Peer.parent_user_id,
                Peer.username,
                Peer.name,
            )
            .outerjoin(Peer, Peer.id == m.peer_id)
            .where(m.onboarding_id == oid)
            # ix_messages_peer_time: each thread in time order, read off the index.
            .order_by(m.peer_id, m.sent_at, m.id)
        )
        counts = self.counts
        batch: list[bytes] = []
        for row in self._rows(query, core=True):
            line = _message(row)
            counts.messages += 1
            counts.messages_by_source[line["source"]] += 1
            counts.messages_by_direction[line["direction"]] += 1
            counts.messages_edited += line["edited"]
            counts.messages_revoked += line["revoked"]
            batch.append(_dumps(line))
            if len(batch) == LINES_PER_WRITE:
                yield b"\n".join(batch) + b"\n"
                batch.clear()
        if batch:
            yield b"\n".join(batch) + b"\n"

    def _contacts(self, oid: int) -> Iterator[bytes]:
        query = (
            select(Contact, Peer)
            .join(Peer, Peer.id == Contact.peer_id)
            .where(Contact.onboarding_id == oid)
            .order_by(Contact.id)
        )
        for contact, peer in self._rows(query):
            self.counts.contacts += 1
            self.counts.contacts_removed += contact.removed_at is not None
            yield (
                _dumps(
                    {
                        "id": contact.id,
                        "phone": contact.phone,
                        "full_name": contact.full_name,
                        "first_name": contact.first_name,
                        "removed": contact.removed_at is not None,
                        "removed_at": iso(contact.removed_at),
                        "changed_at": iso(contact.changed_at),
                        "peer": _peer(peer),
                    }
                )
                + b"\n"
            )
            self.session.expunge(contact)
            self.session.expunge(peer)

    def _peers(self, oid: int) -> Iterator[bytes]:
        query = select(Peer).where(Peer.onboarding_id == oid).order_by(Peer.id)
        for (peer,) in self._rows(query):
            self.counts.peers += 1
            yield _dumps(_peer(peer)) + b"\n"
            self.session.expunge(peer)

    def _timeline(self, oid: int) -> Iterator[bytes]:
        query = select(Transition).where(Transition.onboarding_id == oid).order_by(Transition.id)
        for (transition,) in self._rows(query):
            self.counts.timeline += 1
            yield (
                _dumps(
                    {
                        "at": iso(transition.at),
                        "from": transition.from_state,
                        "to": transition.to_state,
                        "cause": transition.cause,
                    }
                )
                + b"\n"
            )

    def _follow_ups(self, oid: int) -> Iterator[bytes]:
        query = (
            select(FollowUp)
            .where(FollowUp.onboarding_id == oid)
            .order_by(FollowUp.due_at, FollowUp.id)
        )
        for (follow_up,) in self._rows(query):
            self.counts.follow_ups += 1
            notifications = self.session.scalars(
                select(Notification)
                .where(Notification.follow_up_id == follow_up.id)
                .order_by(Notification.id)
            )
            line = follow_up_json(follow_up)
            line["notifications"] = [
                {
                    "channel": n.channel,
                    "status": n.status,
                    "attempts": n.attempts,
                    "created_at": iso(n.created_at),
                    "sent_at": iso(n.sent_at),
                    "last_error": n.last_error,
                }
                for n in notifications
            ]
            yield _dumps(line) + b"\n"

    def _alerts(self, oid: int) -> Iterator[bytes]:
        query = select(Alert).where(Alert.onboarding_id == oid).order_by(Alert.id)
        for (alert,) in self._rows(query):
            self.counts.alerts += 1
            yield _dumps(alert_json(alert)) + b"\n"


def _message(row: Any) -> dict[str, Any]:
    """One message line: what the read API gives, and the peer's identifiers and Meta's object.

    ``row`` is :meth:`Export._messages`' row, unpacked by position (the hot loop of an export).
    """
    (
        id_,
        wamid,
        thread,
        peer_id,
        direction,
        source,
        sent_at,
        type_,
        text_body,
        status,
        status_at,
        error_code,
        error_title,
        raw,
        media_state,
        _media_id,
        media_mime,
        media_sha256,
        media_size,
        media_error,
        edited_at,
        revoked_at,
        user_id,
        phone,
        parent_user_id,
        username,
        name,
    ) = row
    media = None
    if media_state != _NO_MEDIA or media_sha256 is not None:
        stored = media_state == _STORED and media_sha256
        media = {
            "state": media_state,
            "mime": media_mime,
            "sha256": media_sha256,
            "size": media_size,
            "error": media_error,
            "file": f"media/{media_sha256}" if stored else None,
        }
    revoked = revoked_at is not None
    return {
        "id": id_,
        "wamid": wamid,
        "thread": thread,
        "peer": {
            "id": peer_id,
            "user_id": user_id,
            "phone": phone,
            "parent_user_id": parent_user_id,
            "username": username,
            "name": name,
        },
        "source": source,
        "direction": direction,
        "sent_at": iso(sent_at),
        "type": type_,
        # A revoke removes the content for good; the newest edit gave the text.
        "text": None if revoked else text_body,
        "status": status,
        "status_at": iso(status_at),
        "status_error": (
            {"code": error_code, "title": error_title}
            if error_code is not None or error_title
            else None
        ),
        "edited": edited_at is not None,
        "edited_at": iso(edited_at),
        "revoked": revoked,
        "revoked_at": iso(revoked_at),
        "media": media,
        "raw": None if revoked else raw,
    }


def _peer(peer: Peer) -> dict[str, Any]:
    return {
        "id": peer.id,
        "user_id": peer.user_id,
        "phone": peer.phone,
        "parent_user_id": peer.parent_user_id,
        "username": peer.username,
        "name": peer.name,
        "created_at": iso(peer.created_at),
        "updated_at": iso(peer.updated_at),
    }


def _dumps(value: Any, *, indent: int | None = None) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=indent, default=str).encode()


def _blocks(source: IO[bytes] | BinaryIO) -> Iterator[bytes]:
    """``source``'s bytes, :data:`COPY_BYTES` at a time."""
    return iter(partial(source.read, COPY_BYTES), b"")


def write_archive(chunks: Iterable[bytes], out: IO[bytes]) -> int:
    """Write the archive's chunks to ``out``; the bytes written."""
    written = 0
    for chunk in chunks:
        out.write(chunk)
        written += len(chunk)
    return written


def _readme(onboarding_id: int) -> str:
    return f"""coexist data export of onboarding {onboarding_id} ({FORMAT})

manifest.json       format, time of export, counts per file, file sizes
onboarding.json     the onboarding: number, WABA, states, syncs, counts, follow-ups, timeline,
                    alerts (no business token or signup code)
messages.jsonl      one JSON object per line: every message of every source (history,
                    app_echo, api, live), direction, status, edit and revoke state, media, and
                    the peer's identifiers (BSUID user_id, phone, username, name)
contacts.jsonl      the business's address book, removed contacts included, with their peer
peers.jsonl         every person the business exchanged with or saved
timeline.jsonl      the onboarding's state changes
follow_ups.jsonl    reminders and alert follow-ups, with their notifications per channel
alerts.jsonl        operator alerts about this onboarding
media/<sha256>      each stored media file once, named by the sha256 of its bytes
media/manifest.jsonl  per media file: size, content type, messages using it, missing or not
SHA256SUMS          check every file with: sha256sum -c SHA256SUMS
"""
