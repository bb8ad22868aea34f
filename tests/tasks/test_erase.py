"""The erasure tasks: a run hands over to a fresh one until the erasure is done, and beat's
sweep starts the erasures the rules make due."""

from __future__ import annotations

from freezegun import freeze_time
from sqlalchemy import func, select

from config.celery import celery_config
from models import Erasure, Message, Onboarding, utcnow
from onboarding.rights import erase
from onboarding.runtime import Runtime
from onboarding.sandbox import Sandbox
from tasks import erase as erase_tasks
from tests.conftest import make_settings
from tests.onboarding.helpers import signup
from tests.onboarding.read.helpers import message, peer


def _onboarding_with_messages(rt: Runtime, sandbox: Sandbox, count: int) -> int:
    with rt.db.session() as session:
        onboarding = signup(session, sandbox, rt.settings, rt.cipher)
        who = peer(session, onboarding.id, phone="16505550001")
        for n in range(count):
            message(session, onboarding.id, who, f"w.{n}", n)
        return onboarding.id


def test_a_run_hands_over_to_the_next_until_the_erasure_is_done(
    rt: Runtime, sandbox: Sandbox
) -> None:
    """With one row per batch and one batch per run, one enqueued run still ends done."""
    oid = _onboarding_with_messages(rt, sandbox, 5)
    rt.settings = make_settings(
        database_url=rt.settings.database_url, erase_batch_size=1, erase_batches_per_run=1
    )
    with rt.db.sessionmaker() as session:
        erase.request_erasure(session, oid)

    erase_tasks.run.delay(oid)

    with rt.db.sessionmaker() as session:
        assert session.scalars(select(Erasure.state)).one() == "done"
        assert session.scalar(select(func.count()).select_from(Message)) == 0


def test_the_sweep_erases_what_the_failure_rule_makes_due(rt: Runtime, sandbox: Sandbox) -> None:
    """A signup failed longer ago than the setting's days is erased by beat's sweep."""
    oid = _onboarding_with_messages(rt, sandbox, 2)
    rt.settings = make_settings(database_url=rt.settings.database_url, erase_after_failure_days=3)
    with freeze_time("2026-01-01"), rt.db.session() as session:
        onboarding = session.get_one(Onboarding, oid)
        onboarding.state, onboarding.state_changed_at = "failed", utcnow()

    with freeze_time("2026-01-05"):
        erase_tasks.sweep.delay()

    with rt.db.sessionmaker() as session:
        record = session.scalars(select(Erasure)).one()
        assert (record.state, record.requested_by) == ("done", "retention:failed")
        assert session.scalar(select(func.count()).select_from(Message)) == 0


def test_beat_runs_the_sweep_every_minute_on_the_followups_queue() -> None:
    """Beat runs coexist.erase.sweep every minute; erasure tasks go to ``followups``."""
    conf = celery_config(make_settings())

    entry = conf["beat_schedule"]["erase-onboardings"]
    assert (entry["task"], entry["schedule"]) == ("coexist.erase.sweep", 60.0)
    assert conf["task_routes"]["coexist.erase.*"] == {"queue": "followups"}
