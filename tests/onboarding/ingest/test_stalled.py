"""The stalled-sync watchdog: history requested, no webhook in time."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient
from freezegun import freeze_time

from models import (
    SyncState,
    utcnow,
)
from onboarding.ingest import stalled
from onboarding.runtime import Runtime
from tests.onboarding.deliveries import (
    Business,
    chunk,
    text,
)
from tests.onboarding.ingest.helpers import USER, ago, detail, post


def test_history_without_webhooks_is_stalled_then_revived(
    web: TestClient, rt: Runtime, business: Business
) -> None:
    """A requested history sync with no webhook in time is stalled; a late chunk revives it."""
    with freeze_time(utcnow() + timedelta(hours=2)), rt.db.session() as session:
        assert stalled.watch_stalled(session, settings=rt.settings) == 1
    assert detail(rt, business)["sync"]["history"]["state"] == SyncState.STALLED
    post(web, chunk(business, 1, 1, 10, {USER: [text("wamid.late", USER, ago(2), "late")]}))
    assert detail(rt, business)["sync"]["history"]["state"] == SyncState.REQUESTED
