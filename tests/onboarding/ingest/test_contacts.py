"""Contacts from smb_app_state_sync: the newest change wins."""

from __future__ import annotations

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
from tests.onboarding.ingest.helpers import ago, detail, post


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
