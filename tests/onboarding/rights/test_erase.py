"""Data erasure: an onboarding's conversations, contacts, media and secrets go; the onboarding,
its timeline and the erasure record stay."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from freezegun import freeze_time
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from config import Settings
from models import (
    Contact,
    Database,
    Erasure,
    FeedEvent,
    FollowUp,
    InboxDelivery,
    Message,
    Notification,
    Onboarding,
    Peer,
    Transition,
    utcnow,
)
from onboarding.cli import app as cli
from onboarding.feed.events import EventType
from onboarding.feed.schemas import BODIES
from onboarding.media_store import store_for
from onboarding.rights import erase
from onboarding.runtime import Runtime
from onboarding.sandbox import Sandbox
from tasks.operator import erase_onboarding
from tests.conftest import ADMIN_TOKEN
from tests.onboarding.deliveries import Business
from tests.onboarding.helpers import signup
from tests.onboarding.ingest.helpers import ago, last_summary, post
from tests.onboarding.ingest.live_payloads import incoming, live_text
from tests.onboarding.read.helpers import T0, contact, message, peer

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PHOTO = b"\xff\xd8\xff\xe0 a photo of the erased"
SHARED = b"\xff\xd8\xff\xe0 a photo both businesses received"
runner = CliRunner()


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def fill(session: Session, onboarding_id: int, tag: str, *media: bytes) -> None:
    """Messages (one per media file, plus two texts), a peer, a contact and a follow-up with
    its notification, all naming ``tag``."""
    who = peer(session, onboarding_id, phone=f"1650555{tag}", user_id=f"US.{tag}", name=tag)
    message(session, onboarding_id, who, f"w.{tag}.1", 1, text_body=f"secret of {tag}")
    message(session, onboarding_id, who, f"w.{tag}.2", 2, text_body=f"more of {tag}")
    for n, content in enumerate(media):
        message(
            session,
            onboarding_id,
            who,
            f"w.{tag}.m{n}",
            3 + n,
            type="image",
            text_body=None,
            media_state="stored",
            media_sha256=sha(content),
            media_size=len(content),
        )
    contact(session, onboarding_id, who, phone=f"1650555{tag}", full_name=f"Contact {tag}")
    follow_up = FollowUp(
        onboarding_id=onboarding_id,
        kind="companion_relink",
        series=0,
        step=0,
        due_at=T0,
        status="sent",
        attempts=1,
        sent_count=1,
        content={"reason": "onboarding"},
        created_at=T0,
    )
    session.add(follow_up)
    session.flush()
    session.add(
        Notification(follow_up_id=follow_up.id, channel="log", status="sent", created_at=T0)
    )


@pytest.fixture
def two(
    db: Database, sandbox: Sandbox, settings: Settings, cipher: Any, tmp_path: Path
) -> tuple[int, int]:
    """Two onboardings with messages, peers, contacts and follow-ups; one media file each
    and one file both hold."""
    settings.media_dir = tmp_path / "media"
    store = store_for(settings)
    for content in (PHOTO, SHARED):
        store.put(content)
    with db.session() as session:
        first = signup(session, sandbox, settings, cipher).id
        second = signup(session, sandbox, settings, cipher).id
        fill(session, first, "0001", PHOTO, SHARED)
        fill(session, second, "0002", SHARED)
    return first, second


def count(db: Database, model: Any, onboarding_id: int) -> int:
    with db.sessionmaker() as session:
        return int(
            session.scalar(
                select(func.count()).select_from(model).where(model.onboarding_id == onboarding_id)
            )
            or 0
        )


def erased(db: Database, onboarding_id: int, reason: str | None = None) -> dict[str, Any]:
    """Ask for the erasure (its run goes eagerly) and read back the record."""
    with db.sessionmaker() as session:
        erase_onboarding(session, onboarding_id, reason=reason)
    with db.sessionmaker() as session:
        record = session.scalars(select(Erasure).where(Erasure.onboarding_id == onboarding_id))
        return erase.erasure_json(record.one())


def run_to_end(db: Database, settings: Settings, onboarding_id: int) -> Erasure:
    store = store_for(settings)
    with db.sessionmaker() as session:
        for _ in range(100):
            erasure = erase.advance(session, onboarding_id, store=store, settings=settings)
            assert erasure is not None
            if erasure.state == "done":
                session.expunge(erasure)
                return erasure
    raise AssertionError("the erasure did not finish in 100 runs")


def test_erasure_deletes_the_onboardings_data_and_keeps_the_others(
    rt: Runtime, db: Database, settings: Settings, two: tuple[int, int]
) -> None:
    """Messages, peers, contacts, follow-ups and the onboarding's own media file go; the other
    onboarding's rows and the file it shares stay."""
    first, second = two
    record = erased(db, first, reason="asked by the business")
    assert record["state"] == "done"
    for model in (Message, Peer, Contact, FollowUp):
        assert count(db, model, first) == 0, model
    assert (count(db, Message, second), count(db, Peer, second)) == (3, 1)
    assert (count(db, Contact, second), count(db, FollowUp, second)) == (1, 1)
    store = store_for(settings)
    assert not store.exists(sha(PHOTO))
    assert store.exists(sha(SHARED))
    assert record["counts"]["media_objects"] == 1
    assert record["counts"]["media_shared"] == 1
    assert record["counts"]["media"] + record["counts"]["messages"] == 4


def test_the_onboarding_its_timeline_and_the_record_are_kept_without_secrets(
    rt: Runtime, db: Database, two: tuple[int, int]
) -> None:
    """The onboarding row stays with ``erased_at`` and its timeline; its token is gone."""
    first, _ = two
    erased(db, first, reason="asked")
    with db.sessionmaker() as session:
        onboarding = session.get_one(Onboarding, first)
        assert onboarding.erased_at is not None
        assert onboarding.token_ciphertext is None
        assert onboarding.code_ciphertext is None
        assert onboarding.session_data == {}
        assert count(db, Transition, first) > 0
        record = session.scalars(select(Erasure)).one()
        assert (record.requested_by, record.reason, record.step) == ("operator", "asked", "done")
        assert record.completed_at is not None


def test_the_done_erasure_emits_one_onboarding_erased_event_with_its_counts(
    rt: Runtime, db: Database, two: tuple[int, int]
) -> None:
    """``onboarding.erased`` carries who asked, why and the counts, once."""
    first, _ = two
    record = erased(db, first, reason="asked")
    erased(db, first, reason="asked")
    with db.sessionmaker() as session:
        events = session.scalars(
            select(FeedEvent).where(FeedEvent.type == "onboarding.erased")
        ).all()
    assert len(events) == 1
    assert events[0].onboarding_id == first
    assert events[0].body["counts"] == record["counts"]
    assert (events[0].body["requested_by"], events[0].body["reason"]) == ("operator", "asked")
    BODIES[EventType.ONBOARDING_ERASED].model_validate(events[0].body)


def test_erasing_twice_is_a_no_op_that_reports_done(
    rt: Runtime, db: Database, two: tuple[int, int]
) -> None:
    """The second request returns the same done record and deletes nothing more."""
    first, _ = two
    once = erased(db, first)
    with db.sessionmaker() as session:
        again = erase_onboarding(session, first, reason="again")
    assert again == once
    assert again["state"] == "done"


def test_feed_events_with_personal_data_are_deleted_and_state_changes_kept(
    rt: Runtime, web: TestClient, business: Business
) -> None:
    """After erasure the onboarding's ``messages.stored`` events are gone, its state changes
    are still there."""
    post(web, incoming(business, live_text("wamid.E1", ago(0.001), "my private words")))
    with rt.db.sessionmaker() as session:
        erase_onboarding(session, business.onboarding_id)
    with rt.db.sessionmaker() as session:
        types = set(
            session.scalars(
                select(FeedEvent.type).where(FeedEvent.onboarding_id == business.onboarding_id)
            )
        )
    assert "messages.stored" not in types
    assert {"onboarding.state_changed", "onboarding.erased"} <= types


def test_deliveries_after_erasure_are_not_stored_and_lose_their_body(
    rt: Runtime, web: TestClient, business: Business
) -> None:
    """A message for an erased onboarding is recorded as not applied, with the reason, and
    its raw body is dropped once processed."""
    with rt.db.sessionmaker() as session:
        erase_onboarding(session, business.onboarding_id)
    post(web, incoming(business, live_text("wamid.E2", ago(0.001), "after the erasure")))
    with rt.db.sessionmaker() as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 0
        row = session.scalars(select(InboxDelivery).order_by(InboxDelivery.id.desc())).first()
        assert row is not None
        assert (row.status, row.body, row.onboarding_id) == (
            "processed",
            b"",
            business.onboarding_id,
        )
        assert row.body_dropped_at is not None
    summary = last_summary(rt, "messages")
    assert summary["not_applied"] == 1
    assert summary["notes"] == [f"onboarding {business.onboarding_id} was erased"]


def test_the_inbox_rows_of_the_onboarding_lose_their_body(
    rt: Runtime, web: TestClient, business: Business
) -> None:
    """A delivery stored before the erasure keeps its metadata but not its raw body."""
    post(web, incoming(business, live_text("wamid.E3", ago(0.001), "before the erasure")))
    record = erased(rt.db, business.onboarding_id)
    with rt.db.sessionmaker() as session:
        rows = session.scalars(
            select(InboxDelivery).where(InboxDelivery.onboarding_id == business.onboarding_id)
        ).all()
    assert rows
    assert all(r.body == b"" and r.body_dropped_at is not None for r in rows)
    assert all(r.size > 0 for r in rows)
    assert record["counts"]["inbox"] == len(rows)


def test_a_crash_midway_and_a_rerun_end_as_an_uninterrupted_run(
    db: Database, settings: Settings, two: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure after some batches leaves the erasure running; running it again finishes it
    with the same counts as one run that never failed."""
    first, _ = two
    settings.erase_batch_size = 1
    with db.sessionmaker() as session:
        erase.request_erasure(session, first)
    real = erase._apply
    calls = {"n": 0}

    def crash_on_the_fourth(*args: Any, **kwargs: Any) -> int:
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("worker died")
        return real(*args, **kwargs)

    monkeypatch.setattr(erase, "_apply", crash_on_the_fourth)
    with db.sessionmaker() as session, pytest.raises(RuntimeError):
        erase.advance(session, first, store=store_for(settings), settings=settings)
    with db.sessionmaker() as session:
        midway = session.scalars(select(Erasure)).one()
        assert (midway.state, midway.lease_until) == ("running", None)
    monkeypatch.setattr(erase, "_apply", real)
    done = run_to_end(db, settings, first)
    assert done.counts == {
        "contacts": 1,
        "follow_ups": 1,
        "media": 2,
        "media_objects": 1,
        "media_shared": 1,
        "messages": 2,
        "notifications": 1,
        "peers": 1,
    }
    assert not store_for(settings).exists(sha(PHOTO))
    assert store_for(settings).exists(sha(SHARED))


def test_an_erasure_held_by_another_worker_is_left_alone(
    db: Database, settings: Settings, two: tuple[int, int]
) -> None:
    """While another run holds the lease, a second run deletes nothing."""
    first, _ = two
    with db.sessionmaker() as session:
        erasure = erase.request_erasure(session, first)
        erasure.lease_until = utcnow() + timedelta(minutes=5)
        session.commit()
        erase.advance(session, first, store=store_for(settings), settings=settings)
    assert count(db, Message, first) == 4


def test_the_cli_refuses_without_yes_when_not_interactive(
    rt: Runtime, two: tuple[int, int]
) -> None:
    """Without ``--yes`` and without a terminal, nothing is erased and the message says why."""
    first, _ = two
    result = runner.invoke(cli, ["data", "erase", str(first)])
    assert result.exit_code == 2
    assert "pass --yes" in result.output
    assert count(rt.db, Message, first) == 4


def test_the_cli_erases_with_yes_and_prints_the_record(rt: Runtime, two: tuple[int, int]) -> None:
    """``coexist data erase ID --yes --json`` prints the done record."""
    first, _ = two
    result = runner.invoke(
        cli, ["data", "erase", str(first), "--yes", "--reason", "asked", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert '"onboarding_id"' in result.output
    assert count(rt.db, Message, first) == 0


def test_the_cli_answers_an_unknown_onboarding_with_exit_1(rt: Runtime) -> None:
    """An id with no onboarding is an error naming it."""
    result = runner.invoke(cli, ["data", "erase", "999", "--yes"])
    assert result.exit_code == 1
    assert "no onboarding 999" in result.output


def test_the_admin_api_erases_and_answers_the_record(
    rt: Runtime, web: TestClient, two: tuple[int, int]
) -> None:
    """``POST /v1/admin/onboardings/{id}/erase`` answers 202 with the record."""
    first, _ = two
    answer = web.post(
        f"/v1/admin/onboardings/{first}/erase", json={"reason": "asked"}, headers=ADMIN
    )
    assert answer.status_code == 202
    assert (answer.json()["onboarding_id"], answer.json()["reason"]) == (first, "asked")
    assert count(rt.db, Message, first) == 0


def test_the_admin_api_answers_an_unknown_onboarding_with_404(rt: Runtime, web: TestClient) -> None:
    """An unknown id is a ``not_found`` problem."""
    answer = web.post("/v1/admin/onboardings/999/erase", headers=ADMIN)
    assert (answer.status_code, answer.json()["error"]) == (404, "not_found")


# -- the automatic rules -------------------------------------------------------------------


def ended(db: Database, onboarding_id: int, state: str, *, event: str | None = None) -> None:
    with db.session() as session:
        onboarding = session.get_one(Onboarding, onboarding_id)
        onboarding.state = state
        onboarding.state_changed_at = utcnow()
        onboarding.lifecycle_event = event


def test_no_automatic_erasure_unless_set(
    db: Database, settings: Settings, two: tuple[int, int]
) -> None:
    """With neither rule set, a long-disconnected onboarding is not erased."""
    first, _ = two
    with freeze_time("2026-01-01"):
        ended(db, first, "disconnected", event="PARTNER_REMOVED")
    with freeze_time("2027-01-01"), db.sessionmaker() as session:
        assert erase.sweep(session, settings=settings) == []


def test_a_partner_removed_onboarding_is_erased_after_the_days(
    db: Database, settings: Settings, two: tuple[int, int]
) -> None:
    """Disconnected by ``PARTNER_REMOVED``: due once the days have passed, not a second before."""
    first, _ = two
    settings.erase_after_disconnect_days = 30
    with freeze_time("2026-01-01 00:00:00"):
        ended(db, first, "disconnected", event="PARTNER_REMOVED")
    with freeze_time("2026-01-30 23:59:59"), db.sessionmaker() as session:
        assert erase.sweep(session, settings=settings) == []
    with freeze_time("2026-01-31 00:00:00"), db.sessionmaker() as session:
        assert erase.sweep(session, settings=settings) == [first]
        record = session.scalars(select(Erasure)).one()
        assert record.requested_by == "retention:disconnected"
        assert record.reason == "disconnected for more than 30 days"


def test_a_disconnection_other_than_partner_removed_is_not_erased(
    db: Database, settings: Settings, two: tuple[int, int]
) -> None:
    """An account deleted or banned is not what the disconnect rule erases."""
    first, _ = two
    settings.erase_after_disconnect_days = 1
    with freeze_time("2026-01-01"):
        ended(db, first, "disconnected", event="ACCOUNT_DELETED")
    with freeze_time("2026-03-01"), db.sessionmaker() as session:
        assert erase.sweep(session, settings=settings) == []


@pytest.mark.parametrize("state", ["failed", "code_expired", "ineligible"])
def test_a_failed_signup_is_erased_after_the_days(
    db: Database, settings: Settings, two: tuple[int, int], state: str
) -> None:
    """A signup that failed is due once ``COEX_ERASE_AFTER_FAILURE_DAYS`` have passed."""
    first, _ = two
    settings.erase_after_failure_days = 7
    with freeze_time("2026-01-01"):
        ended(db, first, state)
    with freeze_time("2026-01-07 23:00"), db.sessionmaker() as session:
        assert erase.sweep(session, settings=settings) == []
    with freeze_time("2026-01-08 00:00"), db.sessionmaker() as session:
        assert erase.sweep(session, settings=settings) == [first]
        assert session.scalars(select(Erasure.requested_by)).one() == "retention:failed"


def test_the_sweep_starts_at_most_its_limit_per_tick(
    db: Database, settings: Settings, two: tuple[int, int]
) -> None:
    """With a limit of one, two due onboardings take two ticks."""
    first, second = two
    settings.erase_after_failure_days = 1
    settings.erase_sweep_limit = 1
    with freeze_time("2026-01-01"):
        ended(db, first, "failed")
        ended(db, second, "failed")
    with freeze_time("2026-02-01"), db.sessionmaker() as session:
        assert erase.sweep(session, settings=settings) == [first]
        assert session.scalar(select(func.count()).select_from(Erasure)) == 1


def test_the_sweep_resumes_running_erasures(
    db: Database, settings: Settings, two: tuple[int, int]
) -> None:
    """A running erasure nobody holds is handed out again."""
    first, _ = two
    with db.sessionmaker() as session:
        erase.request_erasure(session, first)
        assert erase.sweep(session, settings=settings) == [first]
