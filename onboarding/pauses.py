"""What stops an onboarding's API sends, and what lifts it: the one writer of pauses.

Two kinds of stop, both set from ``account_update`` (docs/meta.md#116-acting-on-account_update):

* a **pause** stops every send (``paused_reason``, ``paused_at``, ``paused_by``): a ban
  (``DISABLED_UPDATE`` with ``waba_ban_state`` ``DISABLE``), a violation, a deleted account.
  :func:`lift` ends what one event set (``REINSTATE`` a ban), with a timeline entry, and
  resolves its alert; sends resume when no other event holds the pause;
* a **restriction** stops only what Meta restricts, until its ``expiration``
  (``ACCOUNT_RESTRICTION``'s ``restriction_info[]``), each event's added to those held
  (:func:`restrict`). :data:`RESTRICTED_SENDS` maps a restriction type onto what coexist sends
  (:func:`onboarding.outbound.send.send`: ``text`` replies and ``template`` messages); a type
  not in it stops everything, and the timeline says so. The send path asks
  :func:`stopped`, which honours the expiry by itself; the beat job :func:`lift_expired` only
  writes the lift on the timeline and closes the alert.

Each change writes its feed event: ``account.paused`` when a pause or a restriction starts
(or the restrictions in force change), ``account.resumed`` when nothing stops sends any more.

The notifier's WhatsApp template channel (:mod:`onboarding.followups.channels`) sends from the
provider's own number, not from an onboarded one, so an onboarding's pause never stops it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Onboarding, utcnow
from onboarding.feed.events import EventType, emit, iso
from onboarding.meta.payloads import entry_seconds
from onboarding.states import note, raise_alert, resolve_alert

log = structlog.get_logger(__name__)

TEXT = "text"
TEMPLATE = "template"
ALL_SENDS = frozenset({TEXT, TEMPLATE})
#: What each documented restriction stops of what coexist sends. Business-initiated
#: conversations open with templates; replies inside a customer's service window are free-form
#: text. A template's category is not known when it is sent, so a utility-template restriction
#: stops every template. Adding numbers is nothing coexist does.
RESTRICTED_SENDS: dict[str, frozenset[str]] = {
    "RESTRICTED_BIZ_INITIATED_MESSAGING": frozenset({TEMPLATE}),
    "RESTRICTED_CUSTOMER_INITIATED_MESSAGING": frozenset({TEXT}),
    "RESTRICTED_UTILITY_TEMPLATES": frozenset({TEMPLATE}),
    "RESTRICTED_ADD_PHONE_NUMBER_ACTION": frozenset(),
}
RESTRICTED_ALERT = "restricted_sends"
#: The type given to an ``ACCOUNT_RESTRICTION`` whose ``restriction_info`` cannot be read: it
#: stops everything, with no expiry, until a readable event replaces it.
UNSPECIFIED = "UNSPECIFIED"
MAX_RESTRICTIONS = 20


@dataclass(frozen=True, slots=True)
class Restriction:
    """One ``restriction_info[]`` item: its type and when it expires (None: not said)."""

    type: str
    expires_at: int | None

    @property
    def sends(self) -> frozenset[str]:
        """What it stops; an unknown type stops everything."""
        return RESTRICTED_SENDS.get(self.type, ALL_SENDS)

    @property
    def known(self) -> bool:
        return self.type in RESTRICTED_SENDS

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now.timestamp()

    def describe(self) -> str:
        stops = ", ".join(sorted(self.sends)) or "nothing coexist sends"
        if not self.known:
            stops += " (unknown type: everything is paused to be safe)"
        until = _iso(self.expires_at) if self.expires_at is not None else "no expiry given"
        return f"{self.type} until {until}, stops {stops}"


def parse_restrictions(value: dict[str, Any]) -> tuple[list[Restriction], list[str]]:
    """``restriction_info`` as restrictions, and the reasons items were refused.

    Meta documents a list; a single object is read as a list of one. ``expiration`` is Unix
    seconds (an integer, or a digit string); anything else is kept as "no expiry".
    """
    info = value.get("restriction_info")
    items = [info] if isinstance(info, dict) else info if isinstance(info, list) else []
    found: list[Restriction] = []
    refused: list[str] = []
    if len(items) > MAX_RESTRICTIONS:
        refused.append(
            f"restriction_info has {len(items)} items; the first {MAX_RESTRICTIONS} read"
        )
    for item in items[:MAX_RESTRICTIONS]:
        kind = item.get("restriction_type") if isinstance(item, dict) else None
        if not isinstance(kind, str) or not kind or len(kind) > 64:
            refused.append(f"restriction_info item without a restriction_type: {item!r}"[:300])
            continue
        expiry = entry_seconds(item.get("expiration"))
        found.append(Restriction(kind, expiry))
    return found, refused


def current(onboarding: Onboarding) -> list[Restriction]:
    """The stored restrictions (expired ones included until :func:`lift_expired` runs)."""
    stored = onboarding.restrictions if isinstance(onboarding.restrictions, list) else []
    return [
        Restriction(str(item["type"]), entry_seconds(item.get("expires_at")))
        for item in stored
        if isinstance(item, dict) and item.get("type")
    ]


def stopped(
    onboarding: Onboarding, message_type: str, now: datetime | None = None
) -> tuple[str, float | None] | None:
    """Why a ``message_type`` send must wait now, and the seconds until it may (None if
    unknown); None if it may go."""
    if onboarding.paused_reason:
        return onboarding.paused_reason, None
    now = now or utcnow()
    blocking = [r for r in current(onboarding) if r.active(now) and message_type in r.sends]
    if not blocking:
        return None
    expiries = [r.expires_at for r in blocking]
    wait = (
        None
        if any(e is None for e in expiries)
        else max(e for e in expiries if e is not None) - now.timestamp()
    )
    return "ACCOUNT_RESTRICTION: " + "; ".join(r.describe() for r in blocking), wait


def pausers(onboarding: Onboarding) -> list[str]:
    """The events holding the pause (``paused_by`` is their comma-separated list)."""
    return [e for e in (onboarding.paused_by or "").split(",") if e]


def pause(
    session: Session, onboarding: Onboarding, event: str, reason: str, *, at: datetime
) -> None:
    """Stop every send for ``reason``; timeline entry and an error alert. Not committed.

    Pauses by different events add up: each must be lifted before sends resume.
    """
    held = [e for e in pausers(onboarding) if e != event]
    onboarding.paused_reason = f"{event}: {reason}"[:2000]
    onboarding.paused_at = onboarding.paused_at if held else at
    onboarding.paused_by = ",".join(sorted({*held, event[:64]}))[:64]
    note(onboarding, f"API sends paused by {event} ({reason})", at=at)
    _paused(session, onboarding, event, at=at)
    raise_alert(
        session,
        onboarding.id,
        f"paused_{event.lower()}",
        f"onboarding {onboarding.id}: API sends paused by {event} ({reason})"[:2000],
        severity="error",
        reopen=True,
    )


def lift(
    session: Session,
    onboarding: Onboarding,
    cause: str,
    *,
    at: datetime,
    paused_by: frozenset[str],
) -> bool:
    """End the pause the ``paused_by`` events set (timeline entry, their alerts resolved);
    sends resume once no other event holds it. False if none of them held it. Not committed."""
    held = pausers(onboarding)
    ending = [e for e in held if e in paused_by]
    if onboarding.paused_reason is None or not ending:
        return False
    for event in ending:
        resolve_alert(session, onboarding.id, f"paused_{event.lower()}")
    left = [e for e in held if e not in paused_by]
    if left:
        onboarding.paused_by = ",".join(left)
        onboarding.paused_reason = f"{', '.join(left)}: still paused (see the timeline)"
        note(onboarding, f"{cause}; API sends stay paused by {', '.join(left)}", at=at)
        return True
    note(onboarding, f"API sends resumed: {cause} (were paused: {onboarding.paused_reason})", at=at)
    onboarding.paused_reason = None
    onboarding.paused_at = None
    onboarding.paused_by = None
    _resumed(session, onboarding, cause, at=at)
    log.info("sends_resumed", onboarding_id=onboarding.id, cause=cause)
    return True


def restrict(
    session: Session, onboarding: Onboarding, restrictions: list[Restriction], *, at: datetime
) -> None:
    """Add ``restrictions`` to the onboarding's (timeline entries, alert). Not committed.

    Meta does not say that an event lists every restriction in force, so none is dropped
    before its expiry: a type already held takes the new expiry, others are kept. A readable
    event replaces an :data:`UNSPECIFIED` one, and lifts a full pause an earlier
    ``ACCOUNT_RESTRICTION`` set (before restrictions were read one by one).
    """
    readable = [r for r in restrictions if r.type != UNSPECIFIED]
    if readable:
        lift(
            session,
            onboarding,
            "ACCOUNT_RESTRICTION now lists its restrictions one by one",
            at=at,
            paused_by=frozenset({"ACCOUNT_RESTRICTION"}),
        )
    before = current(onboarding)
    held = {r.type: r for r in before if not (readable and r.type == UNSPECIFIED)}
    for restriction in restrictions:
        held[restriction.type] = restriction
        note(onboarding, f"ACCOUNT_RESTRICTION: {restriction.describe()}", at=at)
    live = [r for r in held.values() if r.active(at)]
    onboarding.restrictions = _stored(live)
    if not live:
        if any(r.active(at) for r in before):
            _resumed(
                session, onboarding, "ACCOUNT_RESTRICTION: every restriction has expired", at=at
            )
        resolve_alert(session, onboarding.id, RESTRICTED_ALERT)
        return
    _paused(session, onboarding, "ACCOUNT_RESTRICTION", at=at)
    summary = "; ".join(r.describe() for r in live)
    raise_alert(
        session,
        onboarding.id,
        RESTRICTED_ALERT,
        f"onboarding {onboarding.id}: Meta restricted the account: {summary}"[:2000],
        severity="error" if any(r.sends for r in live) else "warning",
        reopen=True,
    )


def lift_expired(session: Session, *, now: datetime | None = None) -> list[int]:
    """Drop restrictions past their expiry and note each lift on the timeline; the ids of the
    onboardings changed. Commits."""
    now = now or utcnow()
    changed: list[int] = []
    restricted = session.scalars(
        select(Onboarding).where(Onboarding.restrictions.is_not(None)).limit(5000)
    ).all()
    for onboarding in restricted:
        held = current(onboarding)
        expired = [r for r in held if not r.active(now)]
        if not expired:
            continue
        for restriction in expired:
            at = datetime.fromtimestamp(restriction.expires_at or now.timestamp(), tz=UTC)
            note(onboarding, f"ACCOUNT_RESTRICTION lifted: {restriction.type} expired", at=at)
        left = [r for r in held if r.active(now)]
        onboarding.restrictions = _stored(left)
        if left:
            _paused(session, onboarding, "ACCOUNT_RESTRICTION", at=now)
        else:
            resolve_alert(session, onboarding.id, RESTRICTED_ALERT, at=now)
            _resumed(
                session, onboarding, "ACCOUNT_RESTRICTION: every restriction has expired", at=now
            )
        changed.append(onboarding.id)
        log.info(
            "restrictions_expired",
            onboarding_id=onboarding.id,
            expired=[r.type for r in expired],
            left=len(left),
        )
    session.commit()
    return changed


def _paused(session: Session, onboarding: Onboarding, event: str, *, at: datetime) -> None:
    """``account.paused``: what stops sends now, after ``event`` (not committed)."""
    emit(
        session,
        EventType.ACCOUNT_PAUSED,
        onboarding,
        {
            "event": event,
            "reason": onboarding.paused_reason,
            "paused_by": pausers(onboarding),
            "restrictions": [
                {
                    "type": r.type,
                    "expires_at": iso(datetime.fromtimestamp(r.expires_at, tz=UTC))
                    if r.expires_at is not None
                    else None,
                    "stops": sorted(r.sends),
                }
                for r in current(onboarding)
                if r.active(at)
            ],
        },
        occurred_at=at,
    )


def _resumed(session: Session, onboarding: Onboarding, cause: str, *, at: datetime) -> None:
    """``account.resumed``: nothing stops sends any more (not committed)."""
    if onboarding.paused_reason or any(r.active(at) for r in current(onboarding)):
        return  # a pause or another restriction still holds
    emit(session, EventType.ACCOUNT_RESUMED, onboarding, {"cause": cause}, occurred_at=at)


def _stored(restrictions: list[Restriction]) -> list[dict[str, Any]] | None:
    """The column's value: None (SQL NULL) when nothing is restricted, so the beat job's
    query only finds onboardings with restrictions."""
    return [{"type": r.type, "expires_at": r.expires_at} for r in restrictions] or None


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat().replace("+00:00", "Z")
