"""Contacts from smb_app_state_sync: the newest change wins."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from models import (
    Contact,
)
from onboarding.runtime import Runtime
from tests.onboarding.deliveries import (
    Business,
    contacts,
)
from tests.onboarding.ingest.bsuid_payloads import (
    PABLO,
    PABLO_ID,
    SHEENA,
    state_contact,
    state_sync,
)
from tests.onboarding.ingest.helpers import ago, detail, peer_rows, post


def test_contacts_last_write_wins_under_reordering(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """An older change arriving after a newer one does not overwrite it; removal is kept."""
    post(web, contacts(business, ("add", "16505551111", ago(2), "Pablo Morales New")))
    post(web, contacts(business, ("add", "16505551111", ago(3), "Pablo Old")))
    post(
        web,
        contacts(
            business,
            ("add", "12125557890", ago(4), "Ana"),
            ("remove", "12125557890", ago(1), None),
        ),
    )
    post(web, contacts(business, ("add", "12125557890", ago(1.5), "Ana Late")))
    with rt.db.sessionmaker() as session:
        rows = {c.phone: c for c in session.scalars(select(Contact))}
    assert rows["16505551111"].full_name == "Pablo Morales New"
    assert rows["12125557890"].removed_at is not None
    # Names and presence are separate registers: the later name stays, the removal too.
    assert rows["12125557890"].full_name == "Ana Late"
    counts = detail(rt, business)["counts"]
    assert (counts["contacts"], counts["contacts_removed"]) == (1, 1)


def test_a_contact_without_a_phone_number_is_kept_under_its_bsuid(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A contact Meta sends with ``user_id`` and no ``phone_number`` is stored, its peer
    carrying the username."""
    post(
        web,
        state_sync(
            business,
            state_contact(
                ago(1),
                phone=None,
                user_id=SHEENA,
                name="Sheena Nelson",
                username="realsheenanelson",
            ),
        ),
    )
    with rt.db.sessionmaker() as session:
        stored = session.scalars(select(Contact)).one()
        assert (stored.phone, stored.full_name) == (None, "Sheena Nelson")
    assert peer_rows(rt) == [(None, SHEENA, "realsheenanelson")]
    assert detail(rt, business)["counts"]["contacts"] == 1


@pytest.mark.parametrize("joined_first", [True, False])
def test_contacts_by_number_and_by_bsuid_merge_when_joined_and_the_newest_wins(
    web: TestClient, rt: Runtime, business: Business, joined_first: bool
) -> None:
    """A contact saved by number, one by BSUID and one naming both end as one contact of one
    peer, with the newest change's name, in either order."""
    by_number = contacts(business, ("add", PABLO, ago(3), "Pablo Old"))
    by_id = state_sync(
        business, state_contact(ago(2), phone=None, user_id=PABLO_ID, name="Pablo Morales")
    )
    joined = state_sync(business, state_contact(ago(4), phone=PABLO, user_id=PABLO_ID, name="P"))
    for payload in [joined, by_id, by_number] if joined_first else [by_number, by_id, joined]:
        post(web, payload)
    with rt.db.sessionmaker() as session:
        stored = session.scalars(select(Contact)).one()
        assert (stored.phone, stored.full_name, stored.removed_at) == (PABLO, "Pablo Morales", None)
    assert peer_rows(rt) == [(PABLO, PABLO_ID, None)]


def test_a_contact_naming_nobody_is_rejected(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A contact with neither phone_number nor user_id is rejected and stores nothing."""
    item = state_contact(ago(1), phone=None, user_id="not a bsuid")
    post(web, state_sync(business, item))
    with rt.db.sessionmaker() as session:
        assert session.scalars(select(Contact)).all() == []
    assert peer_rows(rt) == []
