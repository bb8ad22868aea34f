"""Peers: created once per person, joined by number and BSUID, merged, moved, addressed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import Contact, Message, Onboarding, Peer
from onboarding.ingest import address, peers, user_ids
from onboarding.ingest.identity import Identity
from onboarding.runtime import Runtime
from tests.onboarding.deliveries import Business
from tests.onboarding.ingest.bsuid_payloads import PABLO, PABLO_ID, PABLO_NEW_ID, SHEENA


@pytest.fixture
def session(rt: Runtime, business: Business) -> Iterator[Session]:
    with rt.db.sessionmaker() as s:
        yield s


def at(day: int) -> datetime:
    return datetime(2026, 11, day, tzinfo=UTC)


def message(session: Session, business: Business, wamid: str, peer_id: int | None) -> None:
    session.add(
        Message(
            onboarding_id=business.onboarding_id,
            wamid=wamid,
            thread="x",
            direction="inbound",
            source="history",
            sent_at=at(1),
            type="text",
            peer_id=peer_id,
        )
    )
    session.flush()


def contact(
    session: Session, business: Business, peer_id: int, name: str, changed: datetime, **kw: object
) -> None:
    session.add(
        Contact(
            onboarding_id=business.onboarding_id,
            peer_id=peer_id,
            full_name=name,
            changed_at=changed,
            names_changed_at=changed,
            **kw,
        )
    )
    session.flush()


def all_peers(session: Session) -> list[Peer]:
    return list(session.scalars(select(Peer).order_by(Peer.id)))


def test_each_person_gets_one_peer_however_often_named(
    session: Session, business: Business
) -> None:
    """The same number, BSUID or pair resolves to one peer; an item naming nobody to None."""
    first = peers.resolve(
        session,
        business.onboarding_id,
        [Identity(phone=PABLO), Identity(user_id=SHEENA), Identity(phone=PABLO), Identity()],
    )
    again = peers.resolve(session, business.onboarding_id, [Identity(user_id=SHEENA)])
    assert first[0] == first[2]
    assert first[3] is None
    assert again == [first[1]]
    assert len(all_peers(session)) == 2


def test_a_pair_joins_the_bsuid_to_the_peer_known_by_number(
    session: Session, business: Business
) -> None:
    """A number seen alone, then with its BSUID, stays one peer that now has both."""
    [by_phone] = peers.resolve(session, business.onboarding_id, [Identity(phone=PABLO)])
    [joined] = peers.resolve(
        session, business.onboarding_id, [Identity(phone=PABLO, user_id=PABLO_ID, username="pablo")]
    )
    assert joined == by_phone
    [peer] = all_peers(session)
    assert (peer.phone, peer.user_id, peer.username) == (PABLO, PABLO_ID, "pablo")


def test_a_pair_joins_the_number_to_the_peer_known_by_bsuid(
    session: Session, business: Business
) -> None:
    """A BSUID seen alone, then with its number, stays one peer that now has both."""
    [by_id] = peers.resolve(session, business.onboarding_id, [Identity(user_id=PABLO_ID)])
    [joined] = peers.resolve(
        session, business.onboarding_id, [Identity(phone=PABLO, user_id=PABLO_ID)]
    )
    assert joined == by_id
    assert [(p.phone, p.user_id) for p in all_peers(session)] == [(PABLO, PABLO_ID)]


def test_a_pair_merges_two_peers_moving_messages_and_the_newest_contact(
    session: Session, business: Business
) -> None:
    """Peers found under the number and under the BSUID become the older one, with all the
    messages, and one contact whose registers keep their newest changes."""
    by_phone, by_id = peers.resolve(
        session, business.onboarding_id, [Identity(phone=PABLO), Identity(user_id=PABLO_ID)]
    )
    assert by_phone is not None
    assert by_id is not None
    message(session, business, "wamid.P", by_phone)
    message(session, business, "wamid.B", by_id)
    contact(session, business, by_phone, "Pablo Old", at(2), phone=PABLO)
    contact(session, business, by_id, "Pablo Morales", at(3), removed_at=at(3))
    [survivor] = peers.resolve(
        session, business.onboarding_id, [Identity(phone=PABLO, user_id=PABLO_ID)]
    )
    assert survivor == min(by_phone, by_id)
    assert [(p.id, p.phone, p.user_id) for p in all_peers(session)] == [(survivor, PABLO, PABLO_ID)]
    assert {m.peer_id for m in session.scalars(select(Message))} == {survivor}
    session.expire_all()
    [kept] = session.scalars(select(Contact)).all()
    assert (kept.peer_id, kept.phone, kept.full_name) == (survivor, PABLO, "Pablo Morales")
    assert kept.removed_at == at(3)


def test_a_number_held_by_another_bsuid_stays_and_the_bsuid_decides(
    session: Session, business: Business
) -> None:
    """A pair whose number belongs to a peer with another BSUID goes to its own BSUID's peer."""
    [first] = peers.resolve(
        session, business.onboarding_id, [Identity(phone=PABLO, user_id=PABLO_ID)]
    )
    [other] = peers.resolve(
        session, business.onboarding_id, [Identity(phone=PABLO, user_id=SHEENA)]
    )
    assert other != first
    assert [(p.phone, p.user_id) for p in all_peers(session)] == [(PABLO, PABLO_ID), (None, SHEENA)]


def test_moving_a_bsuid_keeps_the_peer_and_its_history(
    session: Session, business: Business
) -> None:
    """A user's new BSUID replaces the old one on the same peer, messages untouched."""
    [peer] = peers.resolve(
        session, business.onboarding_id, [Identity(phone=PABLO, user_id=PABLO_ID)]
    )
    message(session, business, "wamid.1", peer)
    assert user_ids.move_user_id(session, business.onboarding_id, PABLO_ID, PABLO_NEW_ID) == peer
    assert [(p.id, p.user_id) for p in all_peers(session)] == [(peer, PABLO_NEW_ID)]
    assert user_ids.move_user_id(session, business.onboarding_id, PABLO_ID, PABLO_NEW_ID) == peer


def test_moving_to_a_bsuid_that_has_a_peer_merges_the_two(
    session: Session, business: Business
) -> None:
    """If the new BSUID was seen already, its peer and the old one merge under the new BSUID."""
    old, new = peers.resolve(
        session,
        business.onboarding_id,
        [Identity(phone=PABLO, user_id=PABLO_ID), Identity(user_id=PABLO_NEW_ID)],
    )
    assert old is not None
    assert new is not None
    message(session, business, "wamid.old", old)
    message(session, business, "wamid.new", new)
    survivor = user_ids.move_user_id(session, business.onboarding_id, PABLO_ID, PABLO_NEW_ID)
    assert [(p.id, p.phone, p.user_id) for p in all_peers(session)] == [
        (survivor, PABLO, PABLO_NEW_ID)
    ]
    assert {m.peer_id for m in session.scalars(select(Message))} == {survivor}


def test_a_bsuid_change_seen_first_sends_later_items_to_the_new_bsuid(
    session: Session, business: Business
) -> None:
    """A change of a BSUID never seen creates no peer, but items still naming the old BSUID
    afterwards reach the new BSUID's peer."""
    assert user_ids.move_user_id(session, business.onboarding_id, PABLO_ID, PABLO_NEW_ID) is None
    assert all_peers(session) == []
    old, new = peers.resolve(
        session,
        business.onboarding_id,
        [Identity(phone=PABLO, user_id=PABLO_ID), Identity(user_id=PABLO_NEW_ID)],
    )
    assert old == new
    assert [(p.phone, p.user_id) for p in all_peers(session)] == [(PABLO, PABLO_NEW_ID)]


def test_peer_address_prefers_the_number_and_falls_back_to_the_bsuid(
    session: Session, business: Business
) -> None:
    """The send path gets (phone, BSUID) of the person named by either identifier."""
    peers.resolve(
        session,
        business.onboarding_id,
        [Identity(phone=PABLO, user_id=PABLO_ID), Identity(user_id=SHEENA)],
    )
    assert address.peer_address(session, business.onboarding_id, PABLO_ID) == (PABLO, PABLO_ID)
    assert address.peer_address(session, business.onboarding_id, PABLO) == (PABLO, PABLO_ID)
    assert address.peer_address(session, business.onboarding_id, SHEENA) == (None, SHEENA)
    assert address.peer_address(session, business.onboarding_id, "447700900123") == (
        "447700900123",
        None,
    )
    assert address.peer_address(session, business.onboarding_id, "nonsense") == (None, None)


def test_a_race_is_retried_a_bounded_number_of_times(session: Session) -> None:
    """Work that keeps losing to a unique violation is tried MAX_ATTEMPTS times, then raises."""
    calls = []

    def lose() -> None:
        calls.append(1)
        raise IntegrityError("INSERT", {}, Exception("duplicate key"))

    with pytest.raises(IntegrityError):
        peers.retried(session, "test", lose)
    assert len(calls) == peers.MAX_ATTEMPTS


def test_kept_peers_are_good_only_under_the_epoch_they_were_kept_under() -> None:
    """Peers kept under one epoch are not handed out under another (a merge changed it)."""
    seen = peers.Seen()
    pablo, sheena = Identity(phone=PABLO), Identity(phone=SHEENA)
    seen.add(1, "a", {pablo: 10})
    assert seen.get(1, "a", [pablo, sheena]) == {pablo: 10}
    assert seen.get(1, "b", [pablo]) == {}
    assert seen.get(2, "a", [pablo]) == {}
    assert seen.get(1, None, [pablo]) == {}
    seen.add(1, "b", {sheena: 11})
    assert seen.get(1, "a", [pablo]) == {}
    assert seen.get(1, "b", [pablo, sheena]) == {sheena: 11}


def test_kept_peers_stay_within_their_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the bound, what other onboardings kept is dropped first, then the rest."""
    monkeypatch.setattr(peers.Seen, "MAX", 3)
    seen = peers.Seen()
    ids = [Identity(phone=f"1650555000{n}") for n in range(5)]
    seen.add(1, "a", {ids[0]: 1, ids[1]: 2})
    seen.add(2, "a", {ids[2]: 3, ids[3]: 4})
    assert seen.get(1, "a", ids) == {}
    assert seen.get(2, "a", ids) == {ids[2]: 3, ids[3]: 4}
    seen.add(2, "a", {ids[4]: 5})
    assert seen.get(2, "a", ids) == {ids[2]: 3, ids[3]: 4, ids[4]: 5}
    seen.add(2, "a", {ids[0]: 1})
    assert seen.get(2, "a", ids) == {ids[0]: 1}


def test_nothing_is_kept_on_sqlite(rt: Runtime, business: Business) -> None:
    """SQLite has no epoch read: every resolution looks its peers up."""
    with rt.db.sessionmaker() as session:
        peers.resolve(session, business.onboarding_id, [Identity(phone=PABLO)])
        session.commit()
        epoch = session.get_one(Onboarding, business.onboarding_id).peers_epoch
    assert epoch is not None
    assert peers.SEEN.get(business.onboarding_id, epoch, [Identity(phone=PABLO)]) == {}
