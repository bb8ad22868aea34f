"""Deliveries processed together: plain live traffic merged per onboarded number, everything
else one by one, and nothing lost when a group fails."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from models import InboxDelivery, InboxStatus
from onboarding.ingest import batches, inbox
from onboarding.rights import erase
from onboarding.runtime import Runtime
from tests.onboarding.deliveries import Business, body_of, edit
from tests.onboarding.ingest.helpers import ago, feed, messages
from tests.onboarding.ingest.live_payloads import incoming, live_text, status, statuses
from tests.onboarding.ingest.test_statuses import WAMID, api_message


def user(n: int) -> str:
    return f"1650555{n:04d}"


def from_user(business: Business, n: int, wamid: str, body: str = "hi") -> dict[str, Any]:
    """One user's text in a delivery of its own, with the user's contact."""
    return incoming(
        business,
        live_text(wamid, ago(0.001), body, phone=user(n)),
        contacts=[{"profile": {"name": f"User {n}"}, "wa_id": user(n)}],
    )


def store(rt: Runtime, *payloads: dict[str, Any]) -> list[int]:
    """The deliveries stored in the inbox as the receiver stores them, not processed yet."""
    with rt.db.sessionmaker() as session:
        return [i.delivery_id for i in inbox.receive_many(session, [body_of(p) for p in payloads])]


def process(rt: Runtime, ids: list[int]) -> batches.BatchOutcome:
    with rt.db.sessionmaker() as session:
        return batches.process_batch(session, ids, settings=rt.settings)


def rows(rt: Runtime) -> dict[int, InboxDelivery]:
    with rt.db.sessionmaker() as session:
        return {row.id: row for row in session.scalars(select(InboxDelivery))}


def test_a_tasks_live_deliveries_are_stored_in_one_pass(rt: Runtime, business: Business) -> None:
    """Five users' messages in five deliveries are stored as live messages of five peers,
    told in one ``messages.stored`` event, and every delivery is processed."""
    ids = store(rt, *(from_user(business, n, f"wamid.B{n}") for n in range(5)))
    done = process(rt, ids)
    assert done.failed == []
    assert [o.status for o in done.outcomes] == ["processed"] * 5
    stored = messages(rt)
    assert {w: (m.source, m.thread) for w, m in stored.items()} == {
        f"wamid.B{n}": ("live", user(n)) for n in range(5)
    }
    assert len({m.peer_id for m in stored.values()}) == 5
    [event] = feed(rt, "messages.stored")
    assert event["count"] == 5
    assert {r.status for r in rows(rt).values()} == {InboxStatus.PROCESSED}


def test_a_groups_counts_are_on_its_first_delivery_and_the_others_name_it(
    rt: Runtime, business: Business
) -> None:
    """The summaries add up: the first delivery holds the group's counts, each other one
    says which delivery it was processed with, and all are filed under the onboarding."""
    ids = store(rt, *(from_user(business, n, f"wamid.S{n}") for n in range(3)))
    process(rt, ids)
    found = rows(rt)
    assert found[ids[0]].summary == {
        "messages": {"live_messages": 3, "deliveries_processed_together": 3}
    }
    assert [found[i].summary for i in ids[1:]] == [{"messages": {"processed_with": ids[0]}}] * 2
    assert {(r.fields, r.onboarding_id, r.attempts) for r in found.values()} == {
        ("messages", business.onboarding_id, 1)
    }


def test_statuses_merged_with_messages_move_their_message_forward(
    rt: Runtime, business: Business
) -> None:
    """Statuses of a sent message in two deliveries of a group end the message read."""
    api_message(rt, business)
    t = ago(0.005)
    ids = store(
        rt,
        statuses(business, status(WAMID, "read", t + 2)),
        from_user(business, 1, "wamid.M1"),
        statuses(business, status(WAMID, "delivered", t + 1)),
    )
    process(rt, ids)
    assert messages(rt)[WAMID].status == "read"
    assert "wamid.M1" in messages(rt)


def test_a_delivery_with_an_edit_goes_alone_after_the_group(
    rt: Runtime, business: Business
) -> None:
    """A user's edit depends on order, so its delivery is processed on its own (with its own
    summary) while the plain ones around it are merged."""
    first = store(rt, from_user(business, 1, "wamid.E1", "helo"))
    process(rt, first)
    ids = store(
        rt,
        from_user(business, 2, "wamid.E2"),
        incoming(business, edit("wamid.ED", user(1), ago(0.001), "wamid.E1", "hello")),
        from_user(business, 3, "wamid.E3"),
    )
    process(rt, ids)
    found = rows(rt)
    assert found[ids[0]].summary["messages"]["deliveries_processed_together"] == 2
    assert found[ids[2]].summary == {"messages": {"processed_with": ids[0]}}
    assert "processed_with" not in found[ids[1]].summary["messages"]
    assert messages(rt)["wamid.E1"].text_body == "hello"


def test_a_lone_plain_delivery_is_processed_as_a_single_one(
    rt: Runtime, business: Business
) -> None:
    """A task with one plain delivery gets the same summary as processing it alone."""
    ids = store(rt, from_user(business, 1, "wamid.L1"))
    process(rt, ids)
    assert rows(rt)[ids[0]].summary == {"messages": {"live_messages": 1}}


def test_deliveries_for_an_unknown_number_wait_and_do_not_join_a_group(
    rt: Runtime, business: Business
) -> None:
    """A delivery for a number no onboarding has waits for it, while the known number's
    deliveries are processed together."""
    stranger = Business(0, "999888777666555", "111222333444555", "15550001111")
    ids = store(
        rt,
        from_user(business, 1, "wamid.K1"),
        from_user(stranger, 2, "wamid.U2"),
        from_user(business, 3, "wamid.K3"),
    )
    process(rt, ids)
    found = rows(rt)
    assert [found[i].status for i in ids] == ["processed", InboxStatus.WAITING, "processed"]
    assert set(messages(rt)) == {"wamid.K1", "wamid.K3"}


def test_a_delivery_tried_before_goes_alone(rt: Runtime, business: Business) -> None:
    """A delivery whose earlier processing failed is not merged again: it may be what fails."""
    ids = store(rt, *(from_user(business, n, f"wamid.T{n}") for n in range(3)))
    with rt.db.session() as session:
        session.get_one(InboxDelivery, ids[1]).attempts = 1
    process(rt, ids)
    found = rows(rt)
    assert found[ids[1]].summary == {"messages": {"live_messages": 1}}
    assert found[ids[1]].attempts == 2
    assert found[ids[2]].summary == {"messages": {"processed_with": ids[0]}}


def test_a_group_that_fails_is_processed_again_one_by_one(
    rt: Runtime, business: Business, monkeypatch: pytest.MonkeyPatch
) -> None:
    """If handling the merged value raises, nothing of the group is kept half-done: each
    delivery is processed on its own and every message is stored."""

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("connection reset mid-group")

    monkeypatch.setattr(batches, "apply_message_events", broken)
    ids = store(rt, *(from_user(business, n, f"wamid.F{n}") for n in range(3)))
    done = process(rt, ids)
    assert done.failed == []
    found = rows(rt)
    assert [found[i].summary for i in ids] == [{"messages": {"live_messages": 1}}] * 3
    assert [found[i].attempts for i in ids] == [2, 2, 2]
    assert set(messages(rt)) == {f"wamid.F{n}" for n in range(3)}


def test_a_delivery_that_fails_alone_is_handed_back_for_retry(
    rt: Runtime, business: Business, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A delivery whose processing raises is named in ``failed`` for the task to retry, and
    the others of the task are processed all the same."""
    ids = store(rt, *(from_user(business, n, f"wamid.G{n}") for n in range(3)))
    with rt.db.session() as session:
        session.get_one(InboxDelivery, ids[0]).attempts = 1  # goes alone
    real = batches.process_delivery

    def failing(session: Any, delivery_id: int, **kwargs: Any) -> Any:
        if delivery_id == ids[0]:
            raise RuntimeError("worker lost its connection")
        return real(session, delivery_id, **kwargs)

    monkeypatch.setattr(batches, "process_delivery", failing)
    done = process(rt, ids)
    assert done.failed == [ids[0]]
    assert [o.status for o in done.outcomes] == ["processed", "processed"]
    assert set(messages(rt)) == {"wamid.G1", "wamid.G2"}


@pytest.mark.parametrize(
    "value",
    [
        {"messages": [{"type": "system", "system": {"body": "changed"}}]},
        {"messages": [{"type": "revoke", "id": "wamid.X"}]},
        {"messages": {"not": "a list"}},
        {"statuses": [], "something_new": 1},
    ],
)
def test_only_plain_live_traffic_is_merged(value: dict[str, Any]) -> None:
    """System messages, edits and revokes, malformed lists and unknown keys are not plain."""
    assert not batches.plain(value)


def test_a_merged_value_keeps_every_list_in_order() -> None:
    """Contacts, messages, statuses and errors of each value follow one another; the first
    value's metadata stays."""
    a = {"metadata": {"phone_number_id": "1"}, "messages": [{"id": 1}], "contacts": [{"c": 1}]}
    b = {"metadata": {"phone_number_id": "1"}, "messages": [{"id": 2}], "statuses": [{"s": 1}]}
    assert batches.merged([a, b]) == {
        "metadata": {"phone_number_id": "1"},
        "contacts": [{"c": 1}],
        "messages": [{"id": 1}, {"id": 2}],
        "statuses": [{"s": 1}],
    }


def test_deliveries_for_an_erased_onboarding_are_not_stored_together(
    rt: Runtime, business: Business
) -> None:
    """Live traffic for an erased onboarding goes through dispatch one by one: recorded as
    not applied, nothing stored, the raw bodies dropped."""
    with rt.db.session() as session:
        erase.request_erasure(session, business.onboarding_id)
    ids = store(rt, *(from_user(business, n, f"wamid.X{n}") for n in range(3)))
    process(rt, ids)
    found = rows(rt)
    assert messages(rt) == {}
    for delivery_id in ids:
        assert found[delivery_id].summary["messages"]["not_applied"] == 1
        assert (found[delivery_id].body, found[delivery_id].body_dropped_at is None) == (b"", False)
