"""Peers: one person per onboarding, however Meta names them.

See docs/meta.md#business-scoped-user-ids.

A peer holds a BSUID, a phone number, or both, plus a parent BSUID, a username and a name.
:func:`resolve` turns the identities of a page of webhook items into peer ids in bulk: one
lookup when every identity is a peer already (the usual case, once per history chunk), else one
insert of the new peers (``ON CONFLICT DO NOTHING``), a lookup of them, and a write only where a
payload teaches something new. A payload that names both a phone number and a BSUID *joins*
them; if each already has its own peer, the two are *merged* (:func:`merge`): messages and
contacts move to the older peer (contacts: the newest change wins), the other is deleted. So
messages seen first under a number and later under a BSUID, in any order and on any worker,
end in one thread.

Where a number already belongs to a peer with another BSUID, the BSUID decides: the item goes
to the BSUID's peer and the number stays where it is.

Concurrency (PostgreSQL): writers and merges meet on one advisory lock per onboarding
(:func:`share`, :func:`exclusive`), not on the peer rows. Every writer that attaches rows to
peers holds it shared until it commits: the lookup takes it, and :func:`hold` takes it again for
each later page of a writer that commits page by page. Writers of one onboarding therefore run
side by side and write nothing to take it. A merge takes it exclusively, so it waits for the
writers still attaching messages to the peer it would delete, then moves their messages
(``messages.peer_id`` has no foreign key: its per-row check would slow the history ingest).
Anything that may merge runs in a savepoint that takes the lock shared itself: the usual
lookup's savepoint is released only when it found everything, so two workers that both merge
the same peers never wait on each other's shared lock from outside the savepoint; one of the
two is chosen by the deadlock detector, rolls its savepoint back (releasing its locks) and
retries after the other commits. A join that races another worker's insert fails on a unique
index, a merge that meets a worker's new contact fails on its foreign key, and two lockers may
deadlock: the resolution is then retried in a savepoint, at most :data:`MAX_ATTEMPTS` times.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar, cast
from uuid import uuid4

import structlog
from psycopg.errors import DeadlockDetected
from sqlalchemy import (
    CursorResult,
    String,
    Table,
    bindparam,
    delete,
    event,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from models import Contact, Message, Onboarding, Peer, UserIdChange, utcnow
from onboarding.ingest.identity import Identity
from onboarding.store import insert_for

log = structlog.get_logger(__name__)

PEERS: Table = Peer.__table__  # type: ignore[assignment]
CONTACTS: Table = Contact.__table__  # type: ignore[assignment]
MESSAGES: Table = Message.__table__  # type: ignore[assignment]
ONBOARDINGS: Table = Onboarding.__table__  # type: ignore[assignment]
#: The first key of the per-onboarding advisory lock (the second is the onboarding's id).
LOCK_CLASS = 0x70656572  # "peer"
#: Attempts of one resolution that lost a race to another worker; every retry is bounded.
MAX_ATTEMPTS = 5
#: Identifiers per ``IN (...)`` clause.
BATCH = 500
DETAILS = ("parent_user_id", "username", "name")
#: BSUID changes followed from an old BSUID to its newest (each one a change of number).
MAX_CHANGES = 10

T = TypeVar("T")


class PeerGoneError(Exception):
    """A peer looked up a moment ago was merged away by another worker: resolve again."""


@dataclass
class PeerRow:
    """A peer as read for resolution."""

    id: int
    phone: str | None
    user_id: str | None
    parent_user_id: str | None
    username: str | None
    name: str | None


_COLUMNS = [PEERS.c[f.name] for f in fields(PeerRow)]


def retried(session: Session, what: str, work: Callable[[], T]) -> T:
    """Run ``work`` in a savepoint, again (bounded) if it lost a race to another worker."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with session.begin_nested():
                return work()
        except (IntegrityError, OperationalError, PeerGoneError) as exc:
            if attempt == MAX_ATTEMPTS or not _race(exc):
                raise
            log.info("peer_race_retried", what=what, attempt=attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _race(exc: Exception) -> bool:
    """A unique violation, a deadlock, a busy SQLite file or a vanished peer: worth retrying."""
    if isinstance(exc, OperationalError):
        return isinstance(exc.orig, DeadlockDetected) or "locked" in str(exc.orig)
    return True


def resolve(
    session: Session, onboarding_id: int, identities: Sequence[Identity]
) -> list[int | None]:
    """The peer id of each identity (None where it names nobody), creating, joining and
    merging peers as needed. Not committed.

    The usual case, where every identity is a peer already with nothing new to say, costs one
    lookup, or none where this process resolved them all since the last merge (:class:`Seen`);
    anything else is settled in a savepoint, retried if it loses a race."""
    known = [i for i in identities if i.known]
    if not known:
        return [None] * len(identities)
    # PostgreSQL: the lookup's shared lock is taken in a savepoint, to be let go if what
    # follows may merge. SQLite has no such lock, and a savepoint would open a read
    # transaction whose snapshot a later write could no longer use.
    lookup = session.begin_nested() if _postgresql(session) else None
    share(session, onboarding_id)
    epoch = _epoch(session, onboarding_id)
    seen = SEEN.get(onboarding_id, epoch, known)
    misses = [i for i in known if i not in seen]
    found = _Known(
        load(session, onboarding_id, _phones(misses), _user_ids(misses), held=True)
        if misses
        else []
    )
    stored = {i: peer_id for i in misses if (peer_id := found.stored(i)) is not None}
    if len(stored) == len(set(misses)):
        if lookup is not None:
            lookup.commit()  # the shared lock is the transaction's until it ends
        _remember(session, onboarding_id, epoch, stored)
        seen.update(stored)
        return [seen[i] if i.known else None for i in identities]
    if lookup is not None:
        lookup.rollback()  # released: what follows may merge, and waits for no one it holds
    out = retried(session, "resolve", lambda: _resolve_once(session, onboarding_id, identities))
    _remember(
        session,
        onboarding_id,
        epoch,
        {i: p for i, p in zip(identities, out, strict=True) if i.known and p is not None},
    )
    return out


class Seen:
    """Peers this process resolved in committed transactions, per onboarding, good while the
    onboarding's ``peers_epoch`` is unchanged.

    A peer is deleted only by a merge, which changes the epoch in its transaction (and BSUID
    moves change it too): a writer that holds the onboarding's peers (:func:`share`) and reads
    the epoch it was kept under knows each kept peer still exists and is still the one its
    identity names. Entries are kept only once their transaction commits (a rolled-back one may
    have created the peer), and at most :attr:`MAX` of them (all dropped when full). PostgreSQL
    only: elsewhere the epoch is not read and nothing is kept.
    """

    MAX = 200_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[int, tuple[str, dict[Identity, int]]] = {}
        self._size = 0

    def get(
        self, onboarding_id: int, epoch: str | None, identities: Sequence[Identity]
    ) -> dict[Identity, int]:
        """The kept peers of those of ``identities`` this process resolved under ``epoch``."""
        with self._lock:
            kept = self._kept.get(onboarding_id)
            if kept is None or kept[0] != epoch:
                return {}
            peers = kept[1]
            return {i: peers[i] for i in identities if i in peers}

    def add(self, onboarding_id: int, epoch: str, peers: dict[Identity, int]) -> None:
        with self._lock:
            kept = self._kept.get(onboarding_id)
            if kept is None or kept[0] != epoch:
                self._size -= len(kept[1]) if kept is not None else 0
                kept = self._kept[onboarding_id] = (epoch, {})
            if self._size + len(peers) > self.MAX:
                self._kept = {onboarding_id: kept}
                self._size = len(kept[1])
                if self._size + len(peers) > self.MAX:
                    kept[1].clear()
                    self._size = 0
            before = len(kept[1])
            kept[1].update(peers)
            self._size += len(kept[1]) - before

    def clear(self) -> None:
        with self._lock:
            self._kept.clear()
            self._size = 0


SEEN = Seen()
_PENDING = "peers_seen"


def _epoch(session: Session, onboarding_id: int) -> str | None:
    """The onboarding's peers epoch, read after :func:`share` (PostgreSQL; else None)."""
    if not _postgresql(session):
        return None
    return session.scalar(
        select(ONBOARDINGS.c.peers_epoch).where(ONBOARDINGS.c.id == onboarding_id)
    )


def _remember(
    session: Session, onboarding_id: int, epoch: str | None, peers: dict[Identity, int]
) -> None:
    """Keep ``peers`` in :data:`SEEN` once the transaction commits (not from a savepoint a
    caller may yet roll back)."""
    if epoch is None or not peers or session.in_nested_transaction():
        return
    session.info.setdefault(_PENDING, []).append((onboarding_id, epoch, peers))


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    for onboarding_id, epoch, peers in session.info.pop(_PENDING, ()):
        SEEN.add(onboarding_id, epoch, peers)


@event.listens_for(Session, "after_soft_rollback")
def _rolled_back(session: Session, previous_transaction: Any) -> None:
    if not session.in_transaction():
        session.info.pop(_PENDING, None)


def new_epoch(session: Session, onboarding_id: int) -> None:
    """Peers were merged or re-keyed: what any process kept of them is no longer good."""
    session.execute(
        update(ONBOARDINGS).where(ONBOARDINGS.c.id == onboarding_id).values(peers_epoch=uuid4().hex)
    )


def _phones(identities: Sequence[Identity]) -> set[str]:
    return {i.phone for i in identities if i.phone}


def _user_ids(identities: Sequence[Identity]) -> set[str]:
    return {i.user_id for i in identities if i.user_id}


class _Known:
    """The peers of one resolution, by phone and by BSUID."""

    def __init__(self, rows: list[PeerRow]) -> None:
        self.by_phone: dict[str, PeerRow] = {}
        self.by_user: dict[str, PeerRow] = {}
        for row in rows:
            self.add(row)

    def add(self, row: PeerRow) -> None:
        if row.phone is not None:
            self.by_phone[row.phone] = row
        if row.user_id is not None:
            self.by_user[row.user_id] = row

    def stored(self, identity: Identity) -> int | None:
        """The id of the one peer this identity names, if it says nothing that peer lacks."""
        if identity.user_id is not None:
            peer = self.by_user.get(identity.user_id)
        else:
            peer = self.by_phone.get(identity.phone or "")
        if peer is None or (
            identity.phone is not None and self.by_phone.get(identity.phone) is not peer
        ):
            return None
        if any(getattr(identity, d) not in (None, getattr(peer, d)) for d in DETAILS):
            return None
        return peer.id

    def forget(self, row: PeerRow) -> None:
        for index, key in ((self.by_phone, row.phone), (self.by_user, row.user_id)):
            if key is not None and index.get(key) is row:
                del index[key]


def _resolve_once(
    session: Session, onboarding_id: int, identities: Sequence[Identity]
) -> list[int | None]:
    identities = _current(session, onboarding_id, identities)
    known = [i for i in identities if i.known]
    peers = _Known(load(session, onboarding_id, _phones(known), _user_ids(known)))
    missing = [
        i
        for i in known
        if (i.phone is None or i.phone not in peers.by_phone)
        and (i.user_id is None or i.user_id not in peers.by_user)
    ]
    if missing:
        _insert_new(session, onboarding_id, missing)
        for row in load(session, onboarding_id, _phones(missing), _user_ids(missing), held=True):
            peers.add(row)
    settled: dict[Identity, int] = {}
    out: list[int | None] = []
    for identity in identities:
        if not identity.known:
            out.append(None)
            continue
        if identity not in settled:
            settled[identity] = _settle(session, onboarding_id, identity, peers)
        out.append(settled[identity])
    return out


def _current(
    session: Session, onboarding_id: int, identities: Sequence[Identity]
) -> Sequence[Identity]:
    """The identities with each BSUID that has changed replaced by the newest one
    (:mod:`.user_ids`): one lookup, chains followed a bounded number of steps."""
    user_ids = sorted({i.user_id for i in identities if i.user_id})
    newer: dict[str, str] = {}
    for start in range(0, len(user_ids), BATCH):
        for previous, current in session.execute(
            select(UserIdChange.previous, UserIdChange.current).where(
                UserIdChange.onboarding_id == onboarding_id,
                UserIdChange.previous.in_(user_ids[start : start + BATCH]),
            )
        ):
            newer[previous] = current
    if not newer:
        return identities
    out = []
    for identity in identities:
        user_id = identity.user_id
        for _ in range(MAX_CHANGES):
            if user_id not in newer:
                break
            user_id = newer[user_id]
        out.append(replace(identity, user_id=user_id))
    return out


def _insert_new(session: Session, onboarding_id: int, identities: list[Identity]) -> None:
    """Insert a peer for every identity; those whose number or BSUID is known are skipped."""
    now = utcnow()
    rows = {
        (i.phone, i.user_id): {
            "onboarding_id": onboarding_id,
            "phone": i.phone,
            "user_id": i.user_id,
            "parent_user_id": i.parent_user_id,
            "username": i.username,
            "name": i.name,
            "created_at": now,
            "updated_at": now,
        }
        for i in identities
    }
    # A fixed order keeps two workers inserting the same peers from deadlocking.
    ordered = [rows[k] for k in sorted(rows, key=lambda k: (k[0] or "", k[1] or ""))]
    session.execute(insert_for(session, PEERS).on_conflict_do_nothing(), ordered)


def load(
    session: Session,
    onboarding_id: int,
    phones: set[str],
    user_ids: set[str],
    *,
    held: bool = False,
) -> list[PeerRow]:
    """The onboarding's peers with any of these numbers or BSUIDs; the onboarding's peers are
    held (:func:`share`) from before the lookup (``held``: the caller holds them already)."""
    if not held:
        share(session, onboarding_id)
    rows: dict[int, PeerRow] = {}

    def fetch(column: Any, keys: list[str]) -> None:
        for start in range(0, len(keys), BATCH):
            for row in session.execute(
                _lookup(session, onboarding_id, column, keys[start : start + BATCH])
            ):
                rows[row.id] = PeerRow(*row)

    fetch(PEERS.c.user_id, sorted(user_ids))
    # A number held by a peer found already is that peer's alone (it is unique): only the
    # others are looked up, usually none once every thread names its BSUID.
    fetch(PEERS.c.phone, sorted(phones - {row.phone for row in rows.values()}))
    return list(rows.values())


def _lookup(session: Session, onboarding_id: int, column: Any, keys: list[str]) -> Any:
    """The peers whose ``column`` is one of ``keys``.

    On PostgreSQL the keys are a one-parameter array joined to the table, so each is one probe
    of the unique index whatever the planner's statistics say (this lookup runs once per
    history chunk, and a new onboarding's peers are not yet analysed); elsewhere ``IN``.
    """
    query = select(*_COLUMNS).where(PEERS.c.onboarding_id == onboarding_id)
    if session.get_bind().dialect.name == "postgresql":
        array = bindparam(None, keys, type_=postgresql.ARRAY(String))
        wanted = func.unnest(array).table_valued("key").render_derived()
        query = query.join_from(PEERS, wanted, column == wanted.c.key)
    else:
        query = query.where(column.in_(keys))
    return query


def share(session: Session, onboarding_id: int) -> None:
    """Hold the onboarding's peers until the transaction ends: no merge deletes one meanwhile
    (PostgreSQL; SQLite has one writer at a time)."""
    _advisory(session, "pg_advisory_xact_lock_shared", onboarding_id)


def exclusive(session: Session, onboarding_id: int) -> None:
    """Hold the onboarding's peers alone until the transaction ends: every other writer has
    committed, and none starts, before this returns (PostgreSQL)."""
    _advisory(session, "pg_advisory_xact_lock", onboarding_id)


def _postgresql(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _advisory(session: Session, function: str, onboarding_id: int) -> None:
    if _postgresql(session):
        session.execute(select(getattr(func, function)(LOCK_CLASS, onboarding_id)))


def _settle(session: Session, onboarding_id: int, identity: Identity, peers: _Known) -> int:
    """The peer of one identity among those loaded: joined or merged as the identity says."""
    by_phone = peers.by_phone.get(identity.phone) if identity.phone else None
    by_user = peers.by_user.get(identity.user_id) if identity.user_id else None
    if by_phone is not None and by_user is not None and by_phone.id != by_user.id:
        if by_phone.user_id is not None or by_user.phone is not None:
            return by_user.id  # the number is someone else's by BSUID: the BSUID decides
        for row in (by_phone, by_user):
            peers.forget(row)
        survivor = merge(session, onboarding_id, by_phone.id, by_user.id)
        peers.add(survivor)
        return survivor.id
    peer = by_user or by_phone
    if peer is None:
        raise PeerGoneError(identity.label)  # inserted or found, then merged away meanwhile
    changes: dict[str, str] = {}
    if identity.user_id is not None and peer.user_id != identity.user_id:
        if peer.user_id is not None:
            return _own_peer(session, onboarding_id, identity, peers)
        changes["user_id"] = identity.user_id  # a join: this number's BSUID
    if identity.phone is not None and peer.phone is None:
        changes["phone"] = identity.phone  # a join: this BSUID's number
    for detail in DETAILS:
        value = getattr(identity, detail)
        if value is not None and value != getattr(peer, detail):
            changes[detail] = value
    if changes:
        _update(session, peer, changes, peers)
    return peer.id


def _own_peer(session: Session, onboarding_id: int, identity: Identity, peers: _Known) -> int:
    """A peer for a BSUID whose number belongs to a peer with another BSUID."""
    alone = Identity(
        user_id=identity.user_id,
        parent_user_id=identity.parent_user_id,
        username=identity.username,
        name=identity.name,
    )
    _insert_new(session, onboarding_id, [alone])
    rows = load(session, onboarding_id, set(), {identity.user_id or ""}, held=True)
    if not rows:
        raise PeerGoneError(identity.label)
    peers.add(rows[0])
    return rows[0].id


def _update(session: Session, peer: PeerRow, changes: dict[str, str], peers: _Known) -> None:
    """Write what an identity taught about a loaded peer (nothing is read again)."""
    result = session.execute(
        update(PEERS).where(PEERS.c.id == peer.id).values(**changes, updated_at=utcnow())
    )
    if cast("CursorResult[Any]", result).rowcount != 1:
        raise PeerGoneError(f"peer {peer.id}")  # merged away since it was loaded
    for name, value in changes.items():
        setattr(peer, name, value)
    peers.add(peer)


def merge(
    session: Session, onboarding_id: int, first: int, second: int, *, user_id: str | None = None
) -> PeerRow:
    """Merge two peers of one onboarding into the older one, which is returned.

    The onboarding's peers are held alone (:func:`exclusive`) and both rows locked; messages
    and contacts move to the survivor (of two contacts, each register keeps its newest change)
    and the other peer is deleted. The survivor keeps its identifiers and details, taking the
    other's where it has none; ``user_id`` replaces its BSUID (a user's new one). Not
    committed; :class:`PeerGoneError` if either peer was merged away meanwhile.
    """
    keep_id, drop_id = sorted((first, second))
    exclusive(session, onboarding_id)
    rows = session.execute(
        select(*_COLUMNS)
        .where(PEERS.c.id.in_((keep_id, drop_id)))
        .order_by(PEERS.c.id)
        .with_for_update()
    ).all()
    if len(rows) != 2:
        raise PeerGoneError(f"peer {first} or {second}")
    keep, drop = PeerRow(*rows[0]), PeerRow(*rows[1])
    new_epoch(session, onboarding_id)
    session.execute(
        update(MESSAGES)
        .where(MESSAGES.c.onboarding_id == onboarding_id, MESSAGES.c.peer_id == drop.id)
        .values(peer_id=keep.id)
    )
    _merge_contacts(session, keep.id, drop.id)
    session.execute(delete(PEERS).where(PEERS.c.id == drop.id))
    for f in fields(PeerRow):
        if getattr(keep, f.name) is None:
            setattr(keep, f.name, getattr(drop, f.name))
    if user_id is not None:
        keep.user_id = user_id
    values = {f.name: getattr(keep, f.name) for f in fields(PeerRow) if f.name != "id"}
    session.execute(
        update(PEERS).where(PEERS.c.id == keep.id).values(**values, updated_at=utcnow())
    )
    log.info("peers_merged", kept=keep.id, merged=drop.id)
    return keep


def _merge_contacts(session: Session, keep: int, drop: int) -> None:
    """Move the dropped peer's contact to the survivor; of two, the newest changes win."""
    found = {
        row.peer_id: row
        for row in session.execute(select(CONTACTS).where(CONTACTS.c.peer_id.in_((keep, drop))))
    }
    if drop not in found:
        return
    if keep not in found:
        session.execute(update(CONTACTS).where(CONTACTS.c.peer_id == drop).values(peer_id=keep))
        return
    old, new = found[keep], found[drop]
    values: dict[str, Any] = {"phone": old.phone or new.phone}
    if new.changed_at > old.changed_at:
        values.update(removed_at=new.removed_at, changed_at=new.changed_at)
    if new.names_changed_at is not None and (
        old.names_changed_at is None or new.names_changed_at > old.names_changed_at
    ):
        values.update(
            full_name=new.full_name,
            first_name=new.first_name,
            names_changed_at=new.names_changed_at,
        )
    session.execute(delete(CONTACTS).where(CONTACTS.c.peer_id == drop))
    session.execute(update(CONTACTS).where(CONTACTS.c.peer_id == keep).values(**values))


def hold(
    session: Session,
    onboarding_id: int,
    rows: Sequence[dict[str, Any]],
    users: dict[int, Identity],
) -> None:
    """Hold the peers that message ``rows`` name until the transaction ends, so that no merge
    deletes one before the rows are committed (a merge waits, then moves them).

    :func:`resolve` holds what it returns; a writer that commits page by page holds each later
    page again. Rows whose peer was merged away since are given their identity's peer anew;
    ``users`` maps peer ids to the identity that named them, and is kept up to date.
    """
    ids = sorted({r["peer_id"] for r in rows if r["peer_id"] is not None})
    share(session, onboarding_id)
    found: set[int] = set()
    for start in range(0, len(ids), BATCH):
        found.update(
            session.scalars(select(PEERS.c.id).where(PEERS.c.id.in_(ids[start : start + BATCH])))
        )
    gone = [i for i in ids if i not in found]
    if not gone:
        return
    renewed = dict(
        zip(gone, resolve(session, onboarding_id, [users[i] for i in gone]), strict=True)
    )
    for row in rows:
        if row["peer_id"] in renewed:
            row["peer_id"] = renewed[row["peer_id"]]
    for old, new in renewed.items():
        if new is not None:
            users[new] = users[old]
