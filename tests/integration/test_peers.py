"""Peers on PostgreSQL: joins through the COPY path, merges, BSUID moves, and workers joining the
same person at the same time."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select

from models import (
    Contact,
    Database,
    InboxDelivery,
    InboxStatus,
    Message,
    Onboarding,
    Peer,
    SyncState,
    SyncType,
)
from models.crypto import TokenCipher
from onboarding.ingest import peers
from onboarding.ingest.dispatch import process_delivery
from onboarding.ingest.identity import Identity
from onboarding.ingest.inbox import receive
from onboarding.signup.intake import SignupBody, accept_signup
from tests.conftest import TOKEN_KEY, make_settings
from tests.onboarding.deliveries import Business, body_of, chunk, text
from tests.onboarding.ingest.bsuid_payloads import (
    PABLO,
    PABLO_ID,
    PABLO_NEW_ID,
    SHEENA,
    SHEENA_CONTACT,
    app_echoes,
    business_text,
    history,
    state_contact,
    state_sync,
    thread,
    user_id_update,
    user_text,
)

pytestmark = pytest.mark.integration

SETTINGS = make_settings()
#: Processing attempts of one delivery in the concurrent tests, as the ingest task retries.
ATTEMPTS = 10


def onboard(db: Database) -> Business:
    """A fresh onboarding with its own WABA and number, syncing."""
    waba, number_id = str(uuid.uuid4().int)[:15], str(uuid.uuid4().int)[:15]
    with db.session() as session:
        body = SignupBody.model_validate(
            {
                "code": "AQ" + uuid.uuid4().hex,
                "session": {
                    "type": "WA_EMBEDDED_SIGNUP",
                    "event": "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
                    "data": {"waba_id": waba},
                },
            }
        )
        outcome = accept_signup(session, body, settings=SETTINGS, cipher=TokenCipher(TOKEN_KEY))
        onboarding = session.get_one(Onboarding, outcome.onboarding_id)
        onboarding.phone_number_id = number_id
        onboarding.display_phone_number = "+1 555-078-3881"
        onboarding.state = "syncing"
        for kind in SyncType:
            onboarding.sync(kind).state = SyncState.REQUESTED.value
    return Business(outcome.onboarding_id, waba, number_id, "15550783881")


def deliver(db: Database, payload: dict[str, Any]) -> None:
    """Receive and process a delivery as the receiver and the ingest task do, retried as the
    task retries a failed attempt."""
    with db.sessionmaker() as session:
        delivery_id = receive(session, body_of(payload)).delivery_id
    failures: list[Exception] = []
    for _ in range(ATTEMPTS):
        with db.sessionmaker() as session:
            try:
                outcome = process_delivery(session, delivery_id, settings=SETTINGS)
            except Exception as exc:  # the task retries every failure, bounded
                failures.append(exc)
                continue
            if outcome.status == InboxStatus.PROCESSED:
                return
    with db.sessionmaker() as session:
        row = session.get_one(InboxDelivery, delivery_id)
        pytest.fail(f"delivery not processed: {row.status} {row.last_error} {failures[-1:]}")


def peer_rows(db: Database, business: Business) -> list[tuple[str | None, str | None]]:
    with db.sessionmaker() as session:
        return [
            (p.phone, p.user_id)
            for p in session.scalars(
                select(Peer).where(Peer.onboarding_id == business.onboarding_id).order_by(Peer.id)
            )
        ]


def message_peers(db: Database, business: Business) -> dict[str, int | None]:
    with db.sessionmaker() as session:
        return {
            m.wamid: m.peer_id
            for m in session.scalars(
                select(Message).where(Message.onboarding_id == business.onboarding_id)
            )
        }


def ago(days: float) -> int:
    return int(time.time() - days * 86_400)


def joining_deliveries(business: Business) -> list[dict[str, Any]]:
    """History by number, an echo by BSUID, and a contact naming both."""
    return [
        chunk(
            business, 1, 1, 10, {PABLO: [text(f"w.h{i}", PABLO, ago(5), "hi") for i in range(50)]}
        ),
        app_echoes(
            business,
            [business_text(business, "w.e", ago(0.1), "by id", phone=None, user_id=PABLO_ID)],
            [{"user_id": PABLO_ID}],
        ),
        state_sync(business, state_contact(ago(1), phone=PABLO, user_id=PABLO_ID, name="Pablo")),
    ]


@pytest.mark.parametrize("order", [(0, 1, 2), (2, 1, 0), (1, 2, 0)])
def test_a_number_and_its_bsuid_end_as_one_peer_in_any_order(
    db: Database, order: tuple[int, int, int]
) -> None:
    """History written by COPY under a number, an echo under the BSUID and a contact joining
    them give one peer holding every message and the contact."""
    business = onboard(db)
    deliveries = joining_deliveries(business)
    for index in order:
        deliver(db, deliveries[index])
    assert peer_rows(db, business) == [(PABLO, PABLO_ID)]
    owners = set(message_peers(db, business).values())
    assert len(owners) == 1
    assert None not in owners
    with db.sessionmaker() as session:
        [contact] = session.scalars(
            select(Contact).where(Contact.onboarding_id == business.onboarding_id)
        ).all()
        assert contact.peer_id in owners


def test_a_username_adopter_is_kept_with_its_bsuid_only(db: Database) -> None:
    """A thread with no number and an echo with Meta's contacts[] example give one peer with
    no phone number, its username and every message."""
    business = onboard(db)
    deliver(
        db,
        history(
            business,
            0,
            1,
            10,
            [
                thread(
                    [user_text("w.s1", ago(1), "color?", phone=None, user_id=SHEENA)],
                    user_id=SHEENA,
                )
            ],
        ),
    )
    deliver(
        db,
        app_echoes(
            business,
            [business_text(business, "w.s2", ago(0.1), "yes", phone=None, user_id=SHEENA)],
            [SHEENA_CONTACT],
        ),
    )
    with db.sessionmaker() as session:
        [peer] = session.scalars(select(Peer).where(Peer.onboarding_id == business.onboarding_id))
        assert (peer.phone, peer.user_id, peer.username) == (None, SHEENA, "realsheenanelson")
    assert set(message_peers(db, business).values()) == {peer.id}


@pytest.mark.parametrize("update_first", [False, True])
def test_user_id_update_merges_the_old_and_new_bsuid_peers(
    db: Database, update_first: bool
) -> None:
    """A user_id_update and messages under the old and the new BSUID end in one peer under
    the new BSUID, whether the update comes before or after the messages."""
    business = onboard(db)
    if update_first:
        deliver(db, user_id_update(business, PABLO_ID, PABLO_NEW_ID, wa_id=PABLO))
    for order, user_id in ((1, PABLO_ID), (2, PABLO_NEW_ID)):
        deliver(
            db,
            history(
                business,
                1,
                order,
                10 * order,
                [
                    thread(
                        [user_text(f"w.{order}", ago(2), "hi", phone=None, user_id=user_id)],
                        user_id=user_id,
                    )
                ],
            ),
        )
    deliver(db, user_id_update(business, PABLO_ID, PABLO_NEW_ID, wa_id=PABLO))
    assert peer_rows(db, business) == [(PABLO, PABLO_NEW_ID)]
    assert len(set(message_peers(db, business).values())) == 1


def run_together(jobs: list[Callable[[], None]]) -> None:
    """Start every job at the same moment on its own thread; re-raise the first failure."""
    barrier = threading.Barrier(len(jobs))
    errors: list[BaseException] = []

    def run(job: Callable[[], None]) -> None:
        barrier.wait()
        try:
            job()
        except BaseException as exc:  # handed to the test below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]


def test_workers_joining_the_same_person_at_once_leave_one_peer(db: Database) -> None:
    """Workers resolving a number alone, the BSUID alone and the pair at the same moment
    end with one peer holding both, whatever order their transactions take."""
    for _ in range(5):
        business = onboard(db)
        identities = [
            Identity(phone=PABLO),
            Identity(user_id=PABLO_ID),
            Identity(phone=PABLO, user_id=PABLO_ID),
            Identity(phone=PABLO, user_id=PABLO_ID),
        ]

        def resolve(identity: Identity, business: Business = business) -> None:
            with db.sessionmaker() as session:
                peers.resolve(session, business.onboarding_id, [identity])
                session.commit()

        run_together([lambda i=i: resolve(i) for i in identities])
        assert peer_rows(db, business) == [(PABLO, PABLO_ID)]


def test_concurrent_deliveries_joining_a_person_leave_one_peer_with_every_message(
    db: Database,
) -> None:
    """The three joining deliveries processed by three workers at once end in one peer with
    every message and the contact, none orphaned."""
    business = onboard(db)
    deliveries = joining_deliveries(business)
    run_together([lambda d=d: deliver(db, d) for d in deliveries])
    assert peer_rows(db, business) == [(PABLO, PABLO_ID)]
    owners = message_peers(db, business)
    assert len(owners) == 51
    assert len(set(owners.values())) == 1
    assert None not in owners.values()


def resolved(db: Database, business: Business, identity: Identity) -> int | None:
    with db.sessionmaker() as session:
        [peer_id] = peers.resolve(session, business.onboarding_id, [identity])
        session.commit()
        return peer_id


def test_a_peer_kept_from_an_earlier_resolution_is_not_reused_after_a_merge(
    db: Database,
) -> None:
    """This process keeps the peers it resolved; once they are merged (in any transaction)
    an identity that named the merged-away peer resolves to the survivor."""
    business = onboard(db)
    by_number = resolved(db, business, Identity(phone=PABLO))
    by_id = resolved(db, business, Identity(user_id=PABLO_ID))
    assert by_id is not None
    assert by_number is not None
    with db.sessionmaker() as session:
        epoch = session.get_one(Onboarding, business.onboarding_id).peers_epoch
    kept = peers.SEEN.get(business.onboarding_id, epoch, [Identity(user_id=PABLO_ID)])
    assert kept == {Identity(user_id=PABLO_ID): by_id}
    # Another worker's merge: this process's kept entries are not touched by it.
    with db.sessionmaker() as session:
        peers.merge(session, business.onboarding_id, by_number, by_id)
        session.commit()
    assert resolved(db, business, Identity(user_id=PABLO_ID)) == min(by_number, by_id)
    assert peer_rows(db, business) == [(PABLO, PABLO_ID)]


def test_peers_of_a_rolled_back_transaction_are_not_kept(db: Database) -> None:
    """A peer created in a transaction that rolls back is never handed out afterwards."""
    business = onboard(db)
    with db.sessionmaker() as session:
        [lost] = peers.resolve(session, business.onboarding_id, [Identity(phone=SHEENA)])
        session.rollback()
    kept = resolved(db, business, Identity(phone=SHEENA))
    assert kept is not None
    assert kept != lost
    assert peer_rows(db, business) == [(SHEENA, None)]
