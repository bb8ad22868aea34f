"""user_id_update: a user's new BSUID moves their peer, keeping its history."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from models import InboxDelivery
from onboarding.runtime import Runtime
from tests.onboarding.deliveries import Business, envelope
from tests.onboarding.ingest.bsuid_payloads import (
    PABLO,
    PABLO_ID,
    PABLO_NEW_ID,
    history,
    thread,
    user_id_update,
    user_text,
)
from tests.onboarding.ingest.helpers import ago, peer_of, peer_rows, post


def old_thread(business: Business, order: int = 1) -> dict[str, object]:
    return history(
        business,
        1,
        order,
        10,
        [
            thread(
                [user_text(f"wamid.{order}", ago(2), "hi", phone=None, user_id=PABLO_ID)],
                user_id=PABLO_ID,
            )
        ],
    )


def summary(rt: Runtime) -> dict[str, object] | None:
    with rt.db.sessionmaker() as session:
        rows = session.scalars(select(InboxDelivery).order_by(InboxDelivery.id)).all()
        return rows[-1].summary


def test_user_id_update_moves_the_peer_to_its_current_bsuid(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """``user_id.previous``/``.current`` give the peer its new BSUID and ``wa_id`` its number;
    the messages stay with it."""
    post(web, old_thread(business))
    post(web, user_id_update(business, PABLO_ID, PABLO_NEW_ID, wa_id=PABLO))
    assert peer_rows(rt) == [(PABLO, PABLO_NEW_ID, None)]
    assert peer_of(rt, "wamid.1") == (PABLO, PABLO_NEW_ID)
    assert summary(rt) == {"user_id_update": {"user_ids_changed": 1}}


def test_user_id_update_merges_with_a_peer_already_under_the_new_bsuid(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """Messages seen under the new BSUID before the update join the old ones in one peer."""
    post(web, old_thread(business))
    post(
        web,
        history(
            business,
            1,
            2,
            20,
            [
                thread(
                    [user_text("wamid.new", ago(1), "again", phone=None, user_id=PABLO_NEW_ID)],
                    user_id=PABLO_NEW_ID,
                )
            ],
        ),
    )
    post(web, user_id_update(business, PABLO_ID, PABLO_NEW_ID))
    assert peer_rows(rt) == [(None, PABLO_NEW_ID, None)]
    assert peer_of(rt, "wamid.1") == peer_of(rt, "wamid.new")


def test_a_repeated_user_id_update_changes_nothing_more(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """Meta's redelivery of the same update (or both signals of one change) is harmless."""
    post(web, old_thread(business))
    update = user_id_update(business, PABLO_ID, PABLO_NEW_ID)
    post(web, update)
    post(
        web,
        envelope(
            business, "user_id_update", {"user_id": {"previous": PABLO_ID, "current": PABLO_NEW_ID}}
        ),
    )
    assert peer_rows(rt) == [(None, PABLO_NEW_ID, None)]


def test_an_unusable_user_id_update_is_rejected(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """An update without a usable previous and current BSUID is rejected and counted."""
    post(
        web,
        envelope(
            business, "user_id_update", {"user_id_update": [{"user_id": {"previous": PABLO_ID}}]}
        ),
    )
    assert summary(rt) == {
        "user_id_update": {
            "rejected": 1,
            "rejected_reasons": ["user_id_update without a usable user_id.previous and .current"],
        }
    }
    assert peer_rows(rt) == []
