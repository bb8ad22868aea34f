"""What the demo's onboarding ended with: typed counts, the expected end, and a table of it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Final

from rich.table import Table
from sqlalchemy import select

from models import HistoryChunk, SyncState
from onboarding.runtime import Runtime
from onboarding.sandbox import HistoryPlan

PHASES: Final = (0, 1, 2)


@dataclass(frozen=True, slots=True)
class PhaseSummary:
    """One history phase: chunks expected from the sandbox's plan, received, and messages."""

    phase: int
    chunks_expected: int
    chunks_received: int
    messages: int
    """Messages stored from this phase's chunks (the ``history_chunks`` ledger)."""
    missing: tuple[int, ...]
    """``chunk_order``s the plan has but coexist never received."""


@dataclass(frozen=True, slots=True)
class ContactCounts:
    active: int
    removed: int


@dataclass(frozen=True, slots=True)
class PeerCounts:
    """The people the webhooks named: with a phone number, BSUID only, with a username."""

    total: int
    with_phone: int
    without_phone: int
    with_username: int


@dataclass(frozen=True, slots=True)
class MessageCounts:
    total: int
    """Every stored message: history plus app echoes that repeat no history message."""
    inbound: int
    outbound: int
    app_echoes: int
    planned: int
    """Messages in the sandbox's history, out-of-window and group ones included."""


@dataclass(frozen=True, slots=True)
class MediaCounts:
    stored: int
    skipped_too_old: int
    awaiting: int
    expired: int
    failed: int


@dataclass(frozen=True, slots=True)
class DroppedCounts:
    out_of_window: int
    group: int


@dataclass(frozen=True, slots=True)
class WebhookCounts:
    delivered: int
    failed: int


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """What the demo's onboarding ended with, and whether that was the expected end."""

    expected_state: str
    onboarding_state: str
    contacts_sync: str
    history_sync: str
    timed_out: bool
    problems: tuple[str, ...]
    """Why the flow did not reach its expected end; empty when it did."""
    contacts: ContactCounts
    threads: int
    peers: PeerCounts
    phases: tuple[PhaseSummary, ...]
    messages: MessageCounts
    media: MediaCounts
    dropped: DroppedCounts
    webhooks: WebhookCounts
    sync_window_seconds_left: int
    seconds: float

    @property
    def ok(self) -> bool:
        """Whether the flow reached its expected end state."""
        return not self.problems

    @property
    def declined(self) -> bool:
        """Whether the business declined to share its history."""
        return self.history_sync == SyncState.DECLINED.value

    @property
    def messages_history(self) -> int:
        """Messages stored from history chunks, all phases."""
        return sum(p.messages for p in self.phases)

    @property
    def gaps(self) -> dict[str, list[int]]:
        """Missing ``chunk_order``s per phase (empty when none is missing)."""
        return {str(p.phase): list(p.missing) for p in self.phases if p.missing}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form printed by ``coexist demo --json`` under ``summary``."""
        messages = asdict(self.messages)
        return {
            "ok": self.ok,
            "expected_state": self.expected_state,
            "onboarding_state": self.onboarding_state,
            "syncs": {"contacts": self.contacts_sync, "history": self.history_sync},
            "timed_out": self.timed_out,
            "problems": list(self.problems),
            "contacts": asdict(self.contacts),
            "threads": self.threads,
            "peers": asdict(self.peers),
            "messages": {
                "per_phase": {str(p.phase): p.messages for p in self.phases},
                "history": self.messages_history,
                "total": messages["total"],
                "inbound": messages["inbound"],
                "outbound": messages["outbound"],
                "app_echoes": messages["app_echoes"],
                "planned": messages["planned"],
            },
            "chunks": {
                str(p.phase): {"expected": p.chunks_expected, "received": p.chunks_received}
                for p in self.phases
            },
            "media": asdict(self.media),
            "dropped": asdict(self.dropped),
            "gaps": self.gaps,
            "webhooks": asdict(self.webhooks),
            "sync_window_seconds_left": self.sync_window_seconds_left,
            "seconds": self.seconds,
        }


def ledger(rt: Runtime, onboarding_id: int) -> dict[int, tuple[int, list[int]]]:
    """Per phase, from the ``history_chunks`` ledger: messages stored and chunk_orders seen."""
    with rt.db.sessionmaker() as session:
        rows = session.execute(
            select(HistoryChunk.phase, HistoryChunk.chunk_order, HistoryChunk.messages)
            .where(HistoryChunk.onboarding_id == onboarding_id)
            .order_by(HistoryChunk.phase, HistoryChunk.chunk_order)
        ).all()
    out: dict[int, tuple[int, list[int]]] = {}
    for phase, chunk_order, messages in rows:
        stored, orders = out.get(phase, (0, []))
        out[phase] = (stored + messages, [*orders, chunk_order])
    return out


def summarize(
    detail: Mapping[str, Any],
    *,
    per_phase: Mapping[int, tuple[int, list[int]]],
    plan: HistoryPlan,
    planned_contacts: int,
    dispatcher_stats: Mapping[str, Any],
    expected_state: str,
    expected_history: str,
    timed_out: bool,
    seconds: float,
) -> DemoSummary:
    """Fold the final status, the ledger and the sandbox's plan into a :class:`DemoSummary`.

    The expected end: the onboarding in ``expected_state``, the history sync in
    ``expected_history``, the contacts sync accepted, every planned chunk and contact stored,
    no media awaiting download and no delivery given up, before the timeout.
    """
    counts = detail["counts"]
    history_state = detail["sync"]["history"]["state"]
    declined = history_state == SyncState.DECLINED
    phases = []
    for phase in PHASES:
        stored, orders = per_phase.get(phase, (0, []))
        expected = 0 if declined else plan.phase_chunks[phase]
        missing = sorted(set(range(1, expected + 1)) - set(orders))
        phases.append(PhaseSummary(phase, expected, len(orders), stored, tuple(missing)))
    problems = []
    if timed_out:
        problems.append("timed out before the flow ended")
    if detail["state"] != expected_state:
        problems.append(f"onboarding ended {detail['state']}, expected {expected_state}")
    if history_state != expected_history:
        problems.append(f"history sync ended {history_state}, expected {expected_history}")
    contacts_state = detail["sync"]["contacts"]["state"]
    if contacts_state != SyncState.REQUESTED:
        problems.append(f"contacts sync ended {contacts_state}, expected requested")
    stored_contacts = counts["contacts"] + counts["contacts_removed"]
    if stored_contacts < planned_contacts:
        problems.append(f"{stored_contacts} of the {planned_contacts} contacts stored")
    if any(p.missing for p in phases):
        gaps = {p.phase: list(p.missing) for p in phases if p.missing}
        problems.append(f"history chunks never received: {gaps}")
    if counts["media_awaiting"]:
        problems.append(f"{counts['media_awaiting']} media still awaiting download")
    if dispatcher_stats["failed"]:
        problems.append(f"{dispatcher_stats['failed']} webhook deliveries given up by Meta")
    return DemoSummary(
        expected_state=expected_state,
        onboarding_state=detail["state"],
        contacts_sync=detail["sync"]["contacts"]["state"],
        history_sync=history_state,
        timed_out=timed_out,
        problems=tuple(problems),
        contacts=ContactCounts(counts["contacts"], counts["contacts_removed"]),
        peers=PeerCounts(**detail["peers"]),
        threads=counts["threads"],
        phases=tuple(phases),
        messages=MessageCounts(
            total=counts["messages"],
            inbound=counts["messages_inbound"],
            outbound=counts["messages_outbound"],
            app_echoes=counts["app_echoes"],
            planned=0 if declined else plan.total_messages,
        ),
        media=MediaCounts(
            stored=counts["media_stored"],
            skipped_too_old=counts["media_skipped_too_old"],
            awaiting=counts["media_awaiting"],
            expired=counts["media_expired"],
            failed=counts["media_failed"],
        ),
        dropped=DroppedCounts(counts["dropped_out_of_window"], counts["dropped_group"]),
        webhooks=WebhookCounts(int(dispatcher_stats["delivered"]), int(dispatcher_stats["failed"])),
        sync_window_seconds_left=int(detail["sync_window_seconds_left"]),
        seconds=seconds,
    )


def summary_table(summary: DemoSummary) -> Table:
    """The summary as a two-column table, for ``coexist demo``."""
    title = "history declined by the business" if summary.declined else "what came in"
    table = Table("", "", title=title, show_header=False)
    outcome = f"[green]{summary.onboarding_state}[/green]"
    if not summary.ok:
        outcome = f"[red]{summary.onboarding_state}[/red] (expected {summary.expected_state})"
    table.add_row("onboarding", outcome)
    table.add_row("syncs", f"contacts {summary.contacts_sync}, history {summary.history_sync}")
    table.add_row("contacts", f"{summary.contacts.active} ({summary.contacts.removed} removed)")
    table.add_row("threads", str(summary.threads))
    table.add_row(
        "peers",
        f"{summary.peers.total} ({summary.peers.with_phone} with a phone number, "
        f"{summary.peers.without_phone} BSUID only, {summary.peers.with_username} with a username)",
    )
    if summary.declined:
        table.add_row("history", "none: sharing turned off in the Business app (2593109)")
    for p in summary.phases:
        if summary.declined:
            break
        table.add_row(
            f"messages phase {p.phase}",
            f"{p.messages} ({p.chunks_received}/{p.chunks_expected} chunks)",
        )
    table.add_row(
        "messages",
        f"{summary.messages.total} ({summary.messages_history} from history, "
        f"{summary.messages.inbound} in, {summary.messages.outbound} out, "
        f"{summary.messages.app_echoes} app echoes)",
    )
    table.add_row(
        "media",
        f"{summary.media.stored} stored, {summary.media.skipped_too_old} skipped (too old), "
        f"{summary.media.awaiting} awaiting, {summary.media.expired} expired, "
        f"{summary.media.failed} failed",
    )
    table.add_row(
        "dropped",
        f"{summary.dropped.out_of_window} older than 180 days, "
        f"{summary.dropped.group} in group chats",
    )
    gaps = summary.gaps
    table.add_row("gaps", ", ".join(f"phase {k}: {v}" for k, v in gaps.items()) or "none")
    table.add_row(
        "webhooks",
        f"{summary.webhooks.delivered} delivered, {summary.webhooks.failed} given up",
    )
    left = summary.sync_window_seconds_left
    table.add_row("24 h window left", f"{left // 3600} h {left % 3600 // 60:02d} min")
    table.add_row("elapsed", f"{summary.seconds} s" + (" (timed out)" if summary.timed_out else ""))
    for problem in summary.problems:
        table.add_row("[red]problem[/red]", problem)
    return table
