"""Reuse the onboarding fixtures (``web``, ``business``) and count rows."""

from __future__ import annotations

from sqlalchemy import func, select

from onboarding.runtime import Runtime
from tests.onboarding.conftest import business, web

__all__ = ["business", "count", "web"]


def count(rt: Runtime, model: type) -> int:
    """How many rows ``model`` has."""
    with rt.db.sessionmaker() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)
