"""Onboardings, filtered by state, WABA, number and creation time, by id either way.

Ids grow with creation, so "newest first" is the primary key descending: a keyset on the id
alone, answered from the primary key or the filter's own index.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from models import Onboarding
from onboarding.read.pages import Order, Page, decode, encode, page
from onboarding.views import iso, onboarding_summary


@dataclass(frozen=True)
class Filters:
    """What ``GET /v1/onboardings`` narrows by; None means any."""

    state: str | None = None
    waba_id: str | None = None
    phone_number_id: str | None = None
    created_after: datetime | None = None


def listing(order: Order) -> str:
    return f"onboardings.{order}"


def after_id(cursor: str, order: Order) -> int:
    """The id a cursor of this order points after (:class:`~.pages.CursorError` if none)."""
    (onboarding_id,) = decode(cursor, listing(order), 1)
    return onboarding_id


def read_onboardings(
    session: Session,
    *,
    filters: Filters,
    order: Order = "desc",
    after: int | None = None,
    limit: int,
) -> Page:
    """A page of onboardings (``onboarding_summary`` plus ``created_at``) after ``after``."""
    query = select(Onboarding).options(selectinload(Onboarding.syncs))
    if filters.state is not None:
        query = query.where(Onboarding.state == filters.state)
    if filters.waba_id is not None:
        query = query.where(Onboarding.waba_id == filters.waba_id)
    if filters.phone_number_id is not None:
        query = query.where(Onboarding.phone_number_id == filters.phone_number_id)
    if filters.created_after is not None:
        query = query.where(Onboarding.created_at > filters.created_after)
    if order == "desc":
        if after is not None:
            query = query.where(Onboarding.id < after)
        query = query.order_by(Onboarding.id.desc())
    else:
        if after is not None:
            query = query.where(Onboarding.id > after)
        query = query.order_by(Onboarding.id)
    rows = list(session.scalars(query.limit(limit + 1)))
    return page(rows, limit, item, lambda row: encode(listing(order), row.id))


def item(onboarding: Onboarding) -> dict[str, Any]:
    return {**onboarding_summary(onboarding), "created_at": iso(onboarding.created_at)}
