"""What the hosted page shows, read from an onboarding: steps, history per phase, problems."""

from __future__ import annotations

from datetime import UTC, datetime

from models import (
    HistoryChunk,
    Onboarding,
    OnboardingState,
    SyncRequest,
    SyncState,
    SyncType,
)
from onboarding.connect.progress import snapshot
from onboarding.runtime import Runtime
from onboarding.states import transition
from tests.onboarding.conftest import business, web
from tests.onboarding.deliveries import Business

__all__ = ["business", "web"]


def view(rt: Runtime, onboarding_id: int) -> dict[str, object]:
    with rt.db.sessionmaker() as session:
        return snapshot(session, session.get_one(Onboarding, onboarding_id))


def steps(found: dict[str, object]) -> dict[str, dict[str, object]]:
    return {s["key"]: s for s in found["steps"]}  # type: ignore[attr-defined,index]


def test_a_syncing_onboarding_shows_its_number_and_history_per_phase(
    rt: Runtime, business: Business
) -> None:
    """While history arrives the number and its name are done and history shows its progress
    and each phase's."""
    with rt.db.session() as session:
        onboarding = session.get_one(Onboarding, business.onboarding_id)
        onboarding.sync(SyncType.HISTORY).progress = 40
        for phase, progress in ((0, 100), (1, 40)):
            session.add(
                HistoryChunk(
                    onboarding_id=onboarding.id,
                    phase=phase,
                    chunk_order=1,
                    progress=progress,
                    received_at=datetime.now(UTC),
                )
            )

    found = view(rt, business.onboarding_id)

    by_key = steps(found)
    assert by_key["number"]["status"] == "done"
    assert by_key["number"]["detail"] == "+1 650-555-1234 (Lucky Shrub)"
    assert by_key["history"]["status"] == "active"
    assert by_key["history"]["detail"] == "40 %"
    assert by_key["history"]["phases"] == [
        {"phase": 0, "progress": 100, "chunks": 1},
        {"phase": 1, "progress": 40, "chunks": 1},
    ]
    assert (found["problem"], found["final"]) == (None, False)


def test_declined_history_says_what_it_means_and_ends(rt: Runtime, business: Business) -> None:
    """A declined history sync stops the history step and explains that past chats stay in
    the app."""
    with rt.db.session() as session:
        onboarding = session.get_one(Onboarding, business.onboarding_id)
        onboarding.sync(SyncType.HISTORY).state = SyncState.DECLINED.value
        transition(session, onboarding, OnboardingState.HISTORY_DECLINED, "declined")

    found = view(rt, business.onboarding_id)

    assert steps(found)["history"]["status"] == "stopped"
    assert found["problem"]["kind"] == "history_declined"  # type: ignore[index]
    assert "past chats stay only in your app" in found["problem"]["message"]  # type: ignore[index]
    assert found["final"] is True


def test_a_missed_window_asks_to_connect_again(rt: Runtime, business: Business) -> None:
    """A history request refused after the 24 h window names disconnecting and connecting
    again as the next step."""
    with rt.db.session() as session:
        onboarding = session.get_one(Onboarding, business.onboarding_id)
        onboarding.sync(SyncType.HISTORY).state = SyncState.WINDOW_MISSED.value

    found = view(rt, business.onboarding_id)

    assert found["problem"]["kind"] == "window_missed"  # type: ignore[index]
    assert "connect again" in found["problem"]["next_step"]  # type: ignore[index]
    assert {s["status"] for s in found["steps"] if s["key"] == "done"} == {"stopped"}  # type: ignore[attr-defined]


def test_an_ineligible_number_is_final_with_one_next_step(rt: Runtime) -> None:
    """A number found not to be on the Business app is final and says to check the number."""
    with rt.db.session() as session:
        onboarding = Onboarding(
            code_sha256="0" * 64,
            signup_event="FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING",
            waba_id="102290129340398",
            signup_completed_at=datetime.now(UTC),
            sync_deadline_at=datetime.now(UTC),
            state=OnboardingState.INELIGIBLE.value,
            state_changed_at=datetime.now(UTC),
        )
        onboarding.syncs = [SyncRequest(sync_type=t.value) for t in SyncType]
        session.add(onboarding)
        session.flush()
        onboarding_id = onboarding.id

    found = view(rt, onboarding_id)

    assert found["problem"]["kind"] == "ineligible"  # type: ignore[index]
    assert found["problem"]["next_step"].startswith("Check that the number")  # type: ignore[index]
    assert found["final"] is True
