"""Business-scoped user ids, usernames and the numbers Meta omits, in every generated webhook."""

from __future__ import annotations

import re
from typing import Any

import pytest

from onboarding.sandbox import HistoryGenerator, HistoryProfile, NumberContext
from onboarding.sandbox.profile import SECONDS_PER_DAY

BUSINESS = "15550783881"
ONBOARDED_AT = 1_780_000_000.0
WABA = "102290129340398"
CONTEXT = NumberContext(WABA, "106540352242922", BUSINESS, ONBOARDED_AT)
BSUID = re.compile(r"[A-Z]{2}\.[A-Za-z0-9]{1,128}")
PARENT_BSUID = re.compile(r"[A-Z]{2}\.ENT\.[A-Za-z0-9]{1,128}")
USERNAME = re.compile(r"[a-z0-9._]+")
ADOPTERS = {"threads": 60, "contacts": 20, "adopter_share": 0.5, "total_messages": 3000}
"""Enough adopters outside the contact book and old threads for every case to occur."""


def _generator(context: NumberContext = CONTEXT, **knobs: Any) -> HistoryGenerator:
    return HistoryGenerator(HistoryProfile(**{**ADOPTERS, **knobs}), context)


def _threads(generator: HistoryGenerator) -> list[dict[str, Any]]:
    """Every 1:1 thread of the history, merged across chunks (by user id)."""
    merged: dict[str, dict[str, Any]] = {}
    for chunk in generator.chunks():
        for thread in chunk.threads:
            if "context" in thread:
                user = thread["context"]["user_id"]
                merged.setdefault(user, {**thread, "messages": []})["messages"] += thread[
                    "messages"
                ]
    return list(merged.values())


def _hidden(generator: HistoryGenerator) -> list[dict[str, Any]]:
    return [thread for thread in _threads(generator) if "id" not in thread]


def _age_days(message: dict[str, Any]) -> float:
    return (ONBOARDED_AT - int(message["timestamp"])) / SECONDS_PER_DAY


def _all_contacts(generator: HistoryGenerator) -> list[dict[str, Any]]:
    plan = generator.contacts_plan()
    items = [item for i in range(plan.initial_chunks) for item in generator.contact_items(i)]
    return items + [generator.contact_change(j, ONBOARDED_AT) for j in range(plan.changes)]


def test_every_one_to_one_thread_names_its_user_by_bsuid() -> None:
    """Each 1:1 thread carries context.user_id, a BSUID (country, period, alphanumerics)."""
    threads = _threads(_generator(group_thread_share=0.0))

    assert threads
    assert all(BSUID.fullmatch(thread["context"]["user_id"]) for thread in threads)
    assert len({thread["context"]["user_id"] for thread in threads}) == len(threads)


def test_groups_carry_no_context() -> None:
    """Group threads (which Meta never syncs) name no user."""
    generator = _generator(group_thread_share=0.1)

    groups = [t for c in generator.chunks() for t in c.threads if "context" not in t]

    assert groups
    assert all(thread["id"].endswith("@g.us") for thread in groups)


def test_bsuid_is_stable_per_user_and_business() -> None:
    """The same user has the same BSUID on another number of the business, another elsewhere."""
    other_number = NumberContext(WABA, "106540352242999", BUSINESS, ONBOARDED_AT)
    other_business = NumberContext("102290129340999", "106540352242922", BUSINESS, ONBOARDED_AT)
    digits = "16505551234"

    ids = [_generator(c).directory.user_id(digits) for c in (CONTEXT, other_number, other_business)]

    assert ids[0] == ids[1] != ids[2]
    assert ids[0].startswith("US.")


def test_a_share_of_users_adopted_a_username() -> None:
    """About adopter_share of the threads name a username, lowercase ASCII."""
    threads = _threads(_generator(threads=400, total_messages=4000))

    usernames = [t["context"]["username"] for t in threads if "username" in t["context"]]

    assert 0.35 < len(usernames) / len(threads) < 0.65
    assert all(USERNAME.fullmatch(name) for name in usernames)


def test_no_adopters_means_every_number_shows() -> None:
    """With adopter_share 0, every thread has its id and context.wa_id, and no username."""
    threads = _threads(_generator(adopter_share=0.0))

    assert all(t["id"] == t["context"]["wa_id"] for t in threads)
    assert not any("username" in t["context"] for t in threads)


def test_hidden_number_thread_has_no_id_and_no_from() -> None:
    """A thread whose number Meta omits has no id nor wa_id; its user's messages have
    from_user_id and no from, the business's have no to."""
    hidden = _hidden(_generator())

    assert hidden
    for thread in hidden:
        context = thread["context"]
        assert set(context) == {"user_id", "username"}
        for message in thread["messages"]:
            if message.get("from") == BUSINESS:
                assert "to" not in message
            else:
                assert "from" not in message
                assert message["from_user_id"] == context["user_id"]


def test_visible_users_messages_carry_both_from_and_from_user_id() -> None:
    """A user whose number shows sends with from (digits) and from_user_id."""
    threads = [t for t in _threads(_generator()) if "id" in t]

    incoming = [(t, m) for t in threads for m in t["messages"] if m["from"] != BUSINESS]

    assert incoming
    assert all(m["from"] == t["id"] and m["from_user_id"] for t, m in incoming)


def test_numbers_are_omitted_only_for_old_adopters_outside_the_contact_book() -> None:
    """A hidden number belongs to an adopter with no message in the last 30 days whose
    number is not in the contact book (Meta's rule)."""
    generator = _generator()
    people = [generator.person(slot) for slot in range(ADOPTERS["threads"])]
    by_user = {person[0].user_id: person[0] for person in people if person is not None}
    plan = generator.contacts_plan()
    book = {
        item["contact"].get("phone_number")
        for chunk in range(plan.initial_chunks)
        for item in generator.contact_items(chunk)
    }

    hidden = _hidden(generator)

    assert hidden
    for thread in hidden:
        identity = by_user[thread["context"]["user_id"]]
        assert identity.adopter
        assert identity.digits not in book
        assert min(_age_days(message) for message in thread["messages"]) >= 30


def test_adopters_with_a_recent_message_keep_their_number() -> None:
    """An adopter who wrote or was written to in the last 30 days has their number shown."""
    threads = _threads(_generator())

    recent = [
        t
        for t in threads
        if "username" in t["context"] and min(_age_days(m) for m in t["messages"]) < 30
    ]

    assert recent
    assert all(t["id"] == t["context"]["wa_id"] for t in recent)


def test_contacts_always_carry_the_user_id_and_the_username_of_adopters() -> None:
    """Every smb_app_state_sync contact has user_id; adopters' have their username."""
    generator = _generator()

    items = _all_contacts(generator)

    assert all(BSUID.fullmatch(item["contact"]["user_id"]) for item in items)
    assert any("username" in item["contact"] for item in items)


def test_contacts_saved_by_username_have_no_phone_number_then_join() -> None:
    """A contact saved by username only has no phone_number; for some, a later change names
    both its number and the same user id (the user first seen without a number is joined),
    the others stay known by user id alone."""
    generator = _generator()
    plan = generator.contacts_plan()
    initial = [item for i in range(plan.initial_chunks) for item in generator.contact_items(i)]
    no_phone = {i["contact"]["user_id"]: i for i in initial if "phone_number" not in i["contact"]}
    joins = [
        generator.contact_change(j, ONBOARDED_AT)
        for j in range(plan.edits + plan.removes, plan.changes)
    ]

    assert no_phone
    assert 0 < plan.joins == len(joins) < len(no_phone)
    for join in joins:
        before = no_phone[join["contact"]["user_id"]]
        assert join["contact"]["phone_number"].isdigit()
        assert join["contact"]["username"] == before["contact"]["username"]
        assert int(join["metadata"]["timestamp"]) > int(before["metadata"]["timestamp"])


def test_a_history_thread_without_number_is_joined_by_a_later_contact() -> None:
    """Some BSUID-only history threads belong to users a later contact change names with
    both identifiers."""
    generator = _generator()
    plan = generator.contacts_plan()
    joined = {
        generator.contact_change(j, ONBOARDED_AT)["contact"]["user_id"]
        for j in range(plan.edits + plan.removes, plan.changes)
    }

    assert joined & {thread["context"]["user_id"] for thread in _hidden(generator)}


def test_parent_user_ids_come_with_every_user_id() -> None:
    """With parent_user_ids, contexts, messages and contacts carry a US.ENT.… parent BSUID."""
    generator = _generator(parent_user_ids=True)

    threads = _threads(generator)
    contacts = _all_contacts(generator)

    assert all(PARENT_BSUID.fullmatch(t["context"]["parent_user_id"]) for t in threads)
    assert all(
        PARENT_BSUID.fullmatch(m["from_parent_user_id"])
        for t in threads
        for m in t["messages"]
        if m.get("from") != BUSINESS
    )
    assert all("parent_user_id" in item["contact"] for item in contacts)


def test_late_media_names_users_and_puts_business_media_in_echoes() -> None:
    """A late-media webhook lists its users in contacts[], users' media in messages[] with
    from_user_id, and the business's in message_echoes[] with to_user_id."""
    generator = _generator(media_share=0.6, days=20, parent_user_ids=True, group_thread_share=0.0)
    chunks = [c for c in generator.chunks(with_media=True) if c.media]

    values = [generator.media_value(chunk) for chunk in chunks]

    echoes = [echo for value in values for echo in value.get("message_echoes", [])]
    incoming = [message for value in values for message in value.get("messages", [])]
    assert echoes
    assert incoming
    assert all(e["from"] == BUSINESS and BSUID.fullmatch(e["to_user_id"]) for e in echoes)
    assert all(PARENT_BSUID.fullmatch(e["to_parent_user_id"]) for e in echoes)
    assert all(BSUID.fullmatch(m["from_user_id"]) for m in incoming)
    for value in values:
        named = {contact["user_id"] for contact in value["contacts"]}
        used = {e["to_user_id"] for e in value.get("message_echoes", [])}
        used |= {m["from_user_id"] for m in value.get("messages", [])}
        assert used == named


def test_late_media_users_always_show_their_number() -> None:
    """Media within 14 days means a message within 30 days, so late media always name the
    user's number: contacts[] have wa_id and business media have to."""
    generator = _generator(media_share=0.6, total_messages=6000, days=60, group_thread_share=0.0)
    values = [generator.media_value(c) for c in generator.chunks(with_media=True) if c.media]

    contacts = [contact for value in values for contact in value["contacts"]]
    echoes = [echo for value in values for echo in value.get("message_echoes", [])]

    assert contacts
    assert all(contact["wa_id"].isdigit() for contact in contacts)
    assert all(echo["to"].isdigit() for echo in echoes)


def test_echo_to_a_hidden_number_has_metas_documented_shape() -> None:
    """An echo to an adopter whose number is hidden has no to, and its contact is Meta's
    documented shape: profile {name, username} and user_id, no wa_id."""
    generator = _generator()
    hidden = {thread["context"]["user_id"] for thread in _hidden(generator)}
    echoes = [generator.echo(sequence, int(ONBOARDED_AT) + 60) for sequence in range(200)]

    to_hidden = [echo for echo in echoes if echo["to_user_id"] in hidden]
    contacts = generator.echoes_value(to_hidden)["contacts"]

    assert to_hidden
    assert all(
        set(echo) == {"from", "to_user_id", "id", "timestamp", "type", "text"} for echo in to_hidden
    )
    assert all(set(contact) == {"profile", "user_id"} for contact in contacts)
    assert all(set(contact["profile"]) == {"name", "username"} for contact in contacts)


@pytest.mark.parametrize("sequence", range(40))
def test_echoes_name_their_user_and_omit_a_hidden_number(sequence: int) -> None:
    """An smb_message_echoes value lists the user in contacts[]; the echo has to_user_id, and
    to only when the user's number shows."""
    generator = _generator()

    echo = generator.echo(sequence, int(ONBOARDED_AT) + 60)
    value = generator.echoes_value([echo])

    [contact] = value["contacts"]
    assert contact["user_id"] == echo["to_user_id"]
    assert contact["profile"]["name"]
    assert ("to" in echo) == ("wa_id" in contact)
    if "to" in echo:
        assert echo["to"] == contact["wa_id"]


def test_history_echoes_carry_the_users_ids() -> None:
    """Echoes repeating history texts keep their wamid and gain to_user_id and contacts[]."""
    generator = _generator()

    echoes = generator.history_echoes(20)
    value = generator.echoes_value(echoes)

    assert len(echoes) == 20
    assert all(BSUID.fullmatch(echo["to_user_id"]) for echo in echoes)
    assert {c["user_id"] for c in value["contacts"]} == {e["to_user_id"] for e in echoes}


@pytest.mark.parametrize(
    ("name", "value"),
    [("adopter_share", 1.5), ("username_contact_share", -0.1), ("parent_user_ids", "yes")],
)
def test_identity_knobs_are_checked(name: str, value: object) -> None:
    """Identity shares outside [0, 1] and a non-boolean parent_user_ids are refused."""
    with pytest.raises(ValueError, match=name):
        HistoryProfile(**{name: value})  # type: ignore[arg-type]
