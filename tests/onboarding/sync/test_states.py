"""The sync request's state machine: its table, and the one writer of its state."""

from __future__ import annotations

import pytest

from models import SyncRequest, SyncState, SyncType
from onboarding.sync import states as sync_states
from onboarding.sync.states import TRANSITIONS, VERDICTS, InvalidSyncTransitionError


def row(state: SyncState) -> SyncRequest:
    return SyncRequest(onboarding_id=1, sync_type=SyncType.HISTORY.value, state=state.value)


def test_every_state_has_its_moves_listed() -> None:
    """The table names every sync state."""
    assert set(TRANSITIONS) == set(SyncState)


def test_an_illegal_transition_raises_and_changes_nothing() -> None:
    """A move the table does not allow raises and leaves the row as it was."""
    request = row(SyncState.REQUESTED)
    with pytest.raises(InvalidSyncTransitionError, match="requested -> pending"):
        sync_states.move(request, SyncState.PENDING)
    assert request.state == SyncState.REQUESTED


def test_a_move_to_the_current_state_is_no_move() -> None:
    """Moving a row to the state it is in returns False and writes nothing."""
    request = row(SyncState.STALLED)
    assert sync_states.move(request, SyncState.STALLED) is False
    assert sync_states.move(request, SyncState.REQUESTED) is True
    assert request.state == SyncState.REQUESTED


def test_history_webhooks_settle_a_sync_from_any_state() -> None:
    """Completed, completed with gaps and declined are reachable from every state."""
    for state in SyncState:
        assert VERDICTS - {state} <= TRANSITIONS[state], state


def test_webhooks_confirm_only_an_unanswered_request() -> None:
    """Webhooks make an unanswered call requested, and leave a failed one failed."""
    unknown, failed = row(SyncState.UNKNOWN), row(SyncState.FAILED)
    sync_states.confirm_accepted(unknown, "accepted: confirmed by history webhooks")
    sync_states.confirm_accepted(failed, "accepted: confirmed by history webhooks")
    assert (unknown.state, unknown.last_error) == (
        SyncState.REQUESTED,
        "accepted: confirmed by history webhooks",
    )
    assert failed.state == SyncState.FAILED
