"""The reconcile tasks: beat's sweep hands out bounded batches that reconcile due onboardings."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import select

from config.celery import celery_config
from models import Onboarding
from onboarding.runtime import Runtime
from onboarding.sandbox import Sandbox
from onboarding.web import create_app
from tasks import reconcile as reconcile_tasks
from tests.conftest import SIGNUP_TOKEN, make_settings


def _onboard(rt: Runtime, sandbox: Sandbox, count: int) -> None:
    with TestClient(create_app(rt)) as client:
        for i in range(count):
            business = sandbox.add_business(f"Shop {i}", [f"+1 650 555 12{i:02d}"])
            signup = sandbox.complete_signup(business.waba_id)
            response = client.post(
                "/signup",
                json={"code": signup.code, "session": dict(signup.session)},
                headers={"Authorization": f"Bearer {SIGNUP_TOKEN}"},
            )
            assert response.status_code == 202


def test_sweep_reconciles_every_due_onboarding_in_batches(rt: Runtime, sandbox: Sandbox) -> None:
    """Three due onboardings with a batch size of 2 are all reconciled by one sweep."""
    _onboard(rt, sandbox, 3)
    rt.settings = make_settings(database_url=rt.settings.database_url, reconcile_batch_size=2)

    reconcile_tasks.sweep.delay()

    with rt.db.session() as session:
        stamps = session.scalars(select(Onboarding.reconciled_at)).all()
    assert len(stamps) == 3
    assert all(stamp is not None for stamp in stamps)


def test_beat_runs_the_sweep_hourly_on_the_followups_queue() -> None:
    """Beat runs coexist.reconcile.sweep every hour; reconcile tasks go to ``followups``."""
    conf = celery_config(make_settings())

    entry = conf["beat_schedule"]["reconcile-onboardings"]
    assert (entry["task"], entry["schedule"]) == ("coexist.reconcile.sweep", 3600.0)
    assert conf["task_routes"]["coexist.reconcile.*"] == {"queue": "followups"}
