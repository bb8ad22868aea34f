"""Connecting on the real stack keeps the provider's WABA webhook override."""

from __future__ import annotations

import pytest

from benchmarks._harness import CoexistApi, ManagedProcess
from models import Database, Onboarding
from onboarding.sandbox import Sandbox

pytestmark = pytest.mark.integration


def test_real_worker_keeps_a_providers_override_on_connect(
    api: CoexistApi, worker: ManagedProcess, sandbox: Sandbox, db: Database
) -> None:
    """A WABA the provider already subscribed with an override keeps it through the worker's
    connect step (no empty-body POST), and the timeline on PostgreSQL says it was kept."""
    business = sandbox.add_business("Lucky Shrub", ["+1 650 555 1400"])
    sandbox.set_webhook_override(business.waba_id, "https://provider.example/wa", "provider-vt")
    signup = sandbox.complete_signup(business.waba_id)
    response = api.post_signup(signup.session, signup.code)
    assert response.status_code == 202, response.text

    detail = api.wait_for_onboarding(response.json()["onboarding_id"])

    assert detail["state"] == "syncing"
    assert sandbox.webhook_override(business.waba_id) == (
        "https://provider.example/wa",
        "provider-vt",
    )
    with db.sessionmaker() as session:
        causes = [t.cause for t in session.get_one(Onboarding, detail["id"]).transitions]
    assert any("override https://provider.example/wa is kept" in cause for cause in causes)
