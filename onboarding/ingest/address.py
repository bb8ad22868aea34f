"""Where to reach a person: the send path's view of peers (docs/meta.md#business-scoped-user-ids).

Meta accepts a phone number in ``to`` or a BSUID in ``recipient``, ``to`` winning when both are
given; a username adopter may have no known number, so the BSUID is the fallback.
"""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from models import Peer
from onboarding.ingest.identity import Identity, bsuid, phone
from onboarding.ingest.peers import resolve


def find(session: Session, onboarding_id: int, identifier: str) -> Peer | None:
    """The onboarding's peer known by this phone number or BSUID."""
    user_id, number = bsuid(identifier), phone(identifier)
    if user_id is None and number is None:
        return None
    conditions = []
    if user_id is not None:
        conditions.append(Peer.user_id == user_id)
    if number is not None:
        conditions.append(Peer.phone == number)
    return session.scalars(
        select(Peer).where(Peer.onboarding_id == onboarding_id, or_(*conditions)).limit(1)
    ).first()


def peer_address(
    session: Session, onboarding_id: int, identifier: str
) -> tuple[str | None, str | None]:
    """Where to send to the person ``identifier`` (a phone number or BSUID) names:
    ``(phone, bsuid)`` as far as known. Send to the phone when there is one (Meta: when both
    are given, ``to`` wins), else to the BSUID as ``recipient``."""
    found = find(session, onboarding_id, identifier)
    if found is not None:
        return found.phone, found.user_id
    return phone(identifier), bsuid(identifier)


def sent_to(
    session: Session, onboarding_id: int, *, to: str | None, recipient: str | None
) -> int | None:
    """The peer a send went to: the one known by the address used, created if new. Not
    committed. The payload's other identifier is the caller's word, not Meta's: it joins
    nothing."""
    user = Identity(phone=phone(to)) if to is not None else Identity(user_id=bsuid(recipient))
    if not user.known:
        return None
    [peer_id] = resolve(session, onboarding_id, [user])
    return peer_id
