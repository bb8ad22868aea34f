"""Webhook intake: verify, persist raw, then let the ingest queue process.

Meta signs each delivery with ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body,
keyed with the app secret>`` (meta-platform.md §4.6). The signature is checked on the raw bytes
before anything is parsed; a delivery that fails it is refused and leaves no trace. A signed
delivery is committed to the inbox (deduplicated by the sha256 of its bytes) before Meta gets
its ``200``; a signed body that cannot be a Meta delivery is kept as ``quarantined`` with the
reason, and still answered ``200`` since retrying cannot fix it.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import InboxDelivery, InboxStatus, utcnow
from onboarding.payloads import PayloadError, parse_delivery

log = structlog.get_logger(__name__)

SIGNATURE_PREFIX = "sha256="


def signature_valid(body: bytes, header: str | None, app_secret: str) -> bool:
    """Whether ``header`` is the HMAC-SHA256 of ``body`` with ``app_secret`` (constant time)."""
    if not header or not app_secret or not header.startswith(SIGNATURE_PREFIX):
        return False
    presented = header[len(SIGNATURE_PREFIX) :].strip().lower()
    if len(presented) != 64:
        return False
    expected = hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(presented.encode(), expected.encode())


def sign(body: bytes, app_secret: str) -> str:
    """The ``X-Hub-Signature-256`` value Meta would send for ``body``."""
    return SIGNATURE_PREFIX + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Intake:
    """What happened to a delivery at the door."""

    delivery_id: int
    status: str
    duplicate: bool


def receive(session: Session, body: bytes, *, now: datetime | None = None) -> Intake:
    """Store a signed delivery (once per distinct body) and commit. Returns its inbox row."""
    now = now or utcnow()
    digest = hashlib.sha256(body).hexdigest()
    existing = session.scalar(select(InboxDelivery.id).where(InboxDelivery.sha256 == digest))
    if existing is not None:
        return _duplicate(session, existing)
    row = InboxDelivery(sha256=digest, body=body, size=len(body), received_at=now)
    try:
        changes = parse_delivery(body)
    except PayloadError as exc:
        row.status = InboxStatus.QUARANTINED.value
        row.last_error = str(exc)
    else:
        row.status = InboxStatus.PENDING.value
        row.fields = ",".join(sorted({c.field for c in changes}))[:256]
        first = changes[0]
        row.waba_id = first.waba_id
        row.phone_number_id = first.phone_number_id
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()  # the same bytes, delivered twice at once
        again = session.scalar(select(InboxDelivery.id).where(InboxDelivery.sha256 == digest))
        if again is None:
            raise
        return _duplicate(session, again)
    if row.status == InboxStatus.QUARANTINED:
        log.warning("webhook_quarantined", delivery_id=row.id, reason=row.last_error)
    return Intake(row.id, row.status, duplicate=False)


def _duplicate(session: Session, delivery_id: int) -> Intake:
    session.execute(
        update(InboxDelivery)
        .where(InboxDelivery.id == delivery_id)
        .values(duplicates=InboxDelivery.duplicates + 1)
    )
    session.commit()
    status = session.scalar(select(InboxDelivery.status).where(InboxDelivery.id == delivery_id))
    return Intake(delivery_id, status or InboxStatus.PENDING.value, duplicate=True)
