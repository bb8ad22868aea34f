"""Following the feed from a terminal (``coexist events tail``): pages of events, one line each.

Each read is its own short transaction, so a follower never holds back the events of others
(:mod:`.log`: events become readable once every older transaction has ended).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from models import Database
from onboarding.feed.events import EventType
from onboarding.feed.log import Cursor, latest, read

#: How much of an event's data the one-line form shows.
SUMMARY_LENGTH = 120


def start(db: Database, after: Cursor | None) -> Cursor:
    """Where following begins: ``after`` if given, else after the last readable event."""
    if after is not None:
        return after
    with db.sessionmaker() as session:
        return latest(session)


def follow(
    db: Database,
    after: Cursor,
    *,
    limit: int,
    onboarding_id: int | None = None,
    types: Sequence[EventType] = (),
    interval: float = 1.0,
    polls: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[dict[str, Any]]:
    """Events after ``after``, as they become readable; a full page is followed at once by the
    next, otherwise the next read is ``interval`` seconds later. ``polls`` reads at most (None:
    until the caller stops)."""
    done = 0
    while polls is None or done < polls:
        with db.sessionmaker() as session:
            page = read(session, after, limit, onboarding_id=onboarding_id, types=types)
        done += 1
        yield from page.events
        after = page.next_cursor
        if len(page.events) < limit and (polls is None or done < polls):
            sleep(interval)


def line(event: dict[str, Any]) -> str:
    """The one-line form: time, cursor, type, onboarding, and what the data says, cut short."""
    data = event["data"]
    if event["type"] == EventType.MESSAGES_STORED:
        said = f"source={data.get('source')} count={data.get('count')}"
    else:
        said = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    if len(said) > SUMMARY_LENGTH:
        said = said[: SUMMARY_LENGTH - 1] + "…"
    onboarding = event["onboarding_id"] if event["onboarding_id"] is not None else "-"
    return (
        f"{event['occurred_at']}  {event['cursor']:>14}  {event['type']:<26}  {onboarding}  {said}"
    )
