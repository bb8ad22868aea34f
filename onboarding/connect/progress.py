"""What the business sees on the hosted page while its onboarding runs, read from the database.

:func:`snapshot` turns an onboarding's state, sync requests, history chunks and stored messages
into the steps the page draws, in plain words, and, when the onboarding stopped, one problem with
its one next step. The stream (:mod:`onboarding.web.connect`) sends a snapshot each time it
changes. Nothing here writes.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import (
    Contact,
    HistoryChunk,
    MediaState,
    Message,
    Onboarding,
    OnboardingState,
    SyncState,
    SyncType,
)

S = OnboardingState
Status = Literal["waiting", "active", "done", "stopped"]

#: States reached once the code was exchanged.
_EXCHANGED: Final = frozenset(
    {
        S.TOKEN_EXCHANGED,
        S.SUBSCRIBED,
        S.SYNCING,
        S.SYNCED,
        S.INELIGIBLE,
        S.HISTORY_DECLINED,
        S.SYNC_WINDOW_MISSED,
        S.DISCONNECTED,
        S.RECONNECTING,
    }
)
_SUBSCRIBED: Final = frozenset(
    {S.SUBSCRIBED, S.SYNCING, S.SYNCED, S.HISTORY_DECLINED, S.DISCONNECTED, S.RECONNECTING}
)
_ACCEPTED: Final = frozenset(
    {SyncState.REQUESTED, SyncState.COMPLETED, SyncState.COMPLETED_WITH_GAPS, SyncState.STALLED}
)
_HISTORY_DONE: Final = frozenset({SyncState.COMPLETED, SyncState.COMPLETED_WITH_GAPS})

#: The problems a business can meet, each with its one next step.
PROBLEMS: Final[dict[str, tuple[str, str]]] = {
    "code_expired": (
        "The connection took too long to reach us: Meta's signup code only works for 30 seconds.",
        "Start again: press the button and go through the steps once more.",
    ),
    "ineligible": (
        "This number cannot be connected: it is not on the WhatsApp Business app, or it is "
        "not eligible here.",
        "Check that the number you chose is your WhatsApp Business app number, then start "
        "again or contact us.",
    ),
    "history_declined": (
        "You chose not to share your chat history. New messages will still arrive here; your "
        "past chats stay only in your app.",
        "Nothing to do. To share history later, disconnect in the app and connect again.",
    ),
    "window_missed": (
        "Your history could not be requested within the 24 hours Meta allows after connecting.",
        "Disconnect in the app (Settings > Account > Business Platform) and connect again.",
    ),
    "failed": (
        "Something went wrong on our side while connecting your number.",
        "We have been alerted and will contact you; you can keep using your app meanwhile.",
    ),
    "disconnected": (
        "Your number was disconnected from the platform.",
        "Connect again with the link you were sent.",
    ),
}


def snapshot(session: Session, onboarding: Onboarding) -> dict[str, Any]:
    """The page's view of ``onboarding``: ``steps``, ``problem`` and whether it is ``final``."""
    state = S(onboarding.state)
    contacts_row = onboarding.sync(SyncType.CONTACTS)
    history_row = onboarding.sync(SyncType.HISTORY)
    contacts_state = SyncState(contacts_row.state)
    history_state = SyncState(history_row.state)
    problem = _problem(state, history_state)
    stopped = problem is not None
    steps: list[dict[str, Any]] = []

    def add(key: str, label: str, status: Status, detail: str = "", **extra: Any) -> None:
        if stopped and status in ("waiting", "active"):
            status = "stopped"
        steps.append({"key": key, "label": label, "status": status, "detail": detail, **extra})

    exchanged = state in _EXCHANGED
    add(
        "exchanged",
        "Signup code exchanged",
        "done" if exchanged else "active",
        "your authorisation was exchanged with Meta" if exchanged else "",
    )
    number = onboarding.display_phone_number
    if number:
        name = onboarding.verified_name or "no verified name"
        add("number", "Number found", "done", f"{number} ({name})", number=number, name=name)
    else:
        add("number", "Number found", "active" if exchanged else "waiting")
    add(
        "subscribed",
        "Messages connected",
        "done" if state in _SUBSCRIBED else "waiting",
        "new messages now reach us" if state in _SUBSCRIBED else "",
    )
    contacts = _count(session, Contact, onboarding.id)
    if contacts_state in _ACCEPTED:
        add("contacts", "Contacts", "done", f"{contacts} contacts synced", count=contacts)
    else:
        add("contacts", "Contacts", "active" if state in _SUBSCRIBED else "waiting")
    phases = _phases(session, onboarding.id)
    if history_state is SyncState.DECLINED:
        add("history", "Chat history", "stopped", "not shared", progress=0, phases=phases)
    elif history_state in _HISTORY_DONE:
        add("history", "Chat history", "done", "100 %", progress=100, phases=phases)
    elif history_state in _ACCEPTED:
        progress = history_row.progress
        add("history", "Chat history", "active", f"{progress} %", progress=progress, phases=phases)
    else:
        add("history", "Chat history", "waiting", progress=0, phases=phases)
    stored, waiting = _media(session, onboarding.id)
    if waiting:
        add("media", "Photos and files", "active", f"{stored} stored, {waiting} on their way")
    elif history_state in _HISTORY_DONE:
        add("media", "Photos and files", "done", f"{stored} stored")
    else:
        add("media", "Photos and files", "waiting", f"{stored} stored" if stored else "")
    done = state is S.SYNCED
    add("done", "All set", "done" if done else "waiting")
    answer: dict[str, Any] = {
        "onboarding_id": onboarding.id,
        "state": onboarding.state,
        "steps": steps,
        "problem": None,
        "final": done or (stopped and state is not S.RECONNECTING),
    }
    if problem is not None:
        message, next_step = PROBLEMS[problem]
        answer["problem"] = {"kind": problem, "message": message, "next_step": next_step}
    return answer


def _problem(state: OnboardingState, history: SyncState) -> str | None:
    if state is S.CODE_EXPIRED:
        return "code_expired"
    if state is S.INELIGIBLE:
        return "ineligible"
    if state is S.HISTORY_DECLINED or history is SyncState.DECLINED:
        return "history_declined"
    if state is S.SYNC_WINDOW_MISSED or history is SyncState.WINDOW_MISSED:
        return "window_missed"
    if state is S.FAILED:
        return "failed"
    if state is S.DISCONNECTED:
        return "disconnected"
    return None


def _count(session: Session, model: type[Contact], onboarding_id: int) -> int:
    return int(
        session.scalar(select(func.count(model.id)).where(model.onboarding_id == onboarding_id))
        or 0
    )


def _phases(session: Session, onboarding_id: int) -> list[dict[str, int]]:
    """Each history phase (0: the last day, 1: 90 days, 2: 180 days) with its latest progress."""
    rows = session.execute(
        select(HistoryChunk.phase, func.max(HistoryChunk.progress), func.count(HistoryChunk.id))
        .where(HistoryChunk.onboarding_id == onboarding_id)
        .group_by(HistoryChunk.phase)
        .order_by(HistoryChunk.phase)
    ).all()
    return [{"phase": int(p), "progress": int(m), "chunks": int(n)} for p, m, n in rows]


def _media(session: Session, onboarding_id: int) -> tuple[int, int]:
    rows = dict(
        session.execute(
            select(Message.media_state, func.count(Message.id))
            .where(
                Message.onboarding_id == onboarding_id,
                Message.media_state.in_([MediaState.STORED.value, MediaState.AWAITING.value]),
            )
            .group_by(Message.media_state)
        ).all()
    )
    return int(rows.get(MediaState.STORED.value, 0)), int(rows.get(MediaState.AWAITING.value, 0))
