"""Generated business data: history chunks, phases, late-media webhooks, contacts and echoes."""

from __future__ import annotations

import base64
import hashlib
import re
import time
import tracemalloc
from collections import Counter
from itertools import islice, pairwise

import pytest

from onboarding.sandbox import HistoryGenerator, HistoryProfile, NumberContext
from onboarding.sandbox.history import HISTORY_STATUSES
from onboarding.sandbox.profile import SECONDS_PER_DAY

BUSINESS = "15550783881"
ONBOARDED_AT = 1_780_000_000.0
CONTEXT = NumberContext("102290129340398", "106540352242922", BUSINESS, ONBOARDED_AT)
WAMID = re.compile(r"wamid\.[A-Za-z0-9+/]+={0,2}")


def _generator(**knobs: object) -> HistoryGenerator:
    return HistoryGenerator(HistoryProfile(**knobs), CONTEXT)  # type: ignore[arg-type]


def _age_days(message: dict[str, object]) -> float:
    return (ONBOARDED_AT - int(str(message["timestamp"]))) / SECONDS_PER_DAY


def test_same_seed_generates_identical_history() -> None:
    """Two generators with the same seed and number produce the same chunks."""
    first = [chunk.threads for chunk in _generator(seed=11).chunks()]
    second = [chunk.threads for chunk in _generator(seed=11).chunks()]

    assert first == second


def test_another_seed_generates_another_history() -> None:
    """A different seed changes the generated messages."""
    first = [message for _, message in _generator(seed=1).messages()]
    second = [message for _, message in _generator(seed=2).messages()]

    assert first != second


def test_a_chunk_is_the_same_alone_or_in_sequence() -> None:
    """Building one chunk on its own gives what iterating over all chunks gives."""
    generator = _generator(seed=5)

    in_sequence = {(c.phase, c.chunk_order): c for c in generator.chunks()}

    assert _generator(seed=5).chunk(1, 3) == in_sequence[(1, 3)]


def test_default_profile_has_several_chunks_per_phase() -> None:
    """The default 25 x 20 messages are cut into 50-message chunks in all three phases."""
    plan = _generator().plan

    assert plan.total_messages == 500
    assert all(count >= 2 for count in plan.phase_chunks)
    assert sum(plan.phase_messages) == 500


def test_chunk_orders_start_at_one_in_each_phase() -> None:
    """chunk_order counts 1, 2, ... separately in each phase."""
    keys = [(chunk.phase, chunk.chunk_order) for chunk in _generator().chunks()]

    for phase in (0, 1, 2):
        orders = [order for p, order in keys if p == phase]
        assert orders == list(range(1, len(orders) + 1))


def test_progress_rises_and_reaches_100_exactly_once_on_the_last_chunk() -> None:
    """Progress never falls over (phase, chunk_order) and is 100 only on the last chunk."""
    progress = [chunk.progress for chunk in _generator(seed=3).chunks()]

    assert progress == sorted(progress)
    assert progress.count(100) == 1
    assert progress[-1] == 100
    assert all(0 <= value <= 100 for value in progress)


def test_messages_fall_in_their_phase_day_ranges() -> None:
    """Phase 0 is days 0-1, phase 1 days 1-90 and phase 2 days 90 and older."""
    for chunk in _generator(seed=4).chunks():
        low, high = {0: (0, 1), 1: (1, 90), 2: (90, 200)}[chunk.phase]
        for message in chunk.messages():
            assert low <= _age_days(message) <= high


def test_every_message_is_before_onboarding_and_within_days() -> None:
    """Timestamps are Unix-second strings spread over the days before onboarding."""
    ages = [_age_days(message) for _, message in _generator(days=120).messages()]

    assert all(0 < age <= 120 for age in ages)
    assert max(ages) > 100


def test_beyond_window_share_lands_in_phase_2() -> None:
    """About beyond_window_share of messages are older than 180 days, all in phase 2."""
    generator = _generator(total_messages=2000, beyond_window_share=0.05)

    old = [
        chunk.phase
        for chunk in generator.chunks()
        for message in chunk.messages()
        if _age_days(message) > 180
    ]

    assert len(old) == 100
    assert set(old) == {2}


def test_no_message_is_beyond_180_days_when_days_is_shorter() -> None:
    """With days <= 180 the beyond-window share yields nothing."""
    generator = _generator(days=150, beyond_window_share=0.5)

    assert generator.plan.beyond_window == 0
    assert all(_age_days(message) <= 150 for _, message in generator.messages())


def test_empty_phases_have_no_chunks() -> None:
    """A 30-day history has no phase 2 chunk (empty phases send nothing)."""
    plan = _generator(days=30).plan

    assert plan.phase_chunks[2] == 0
    assert plan.total_chunks == plan.phase_chunks[0] + plan.phase_chunks[1]


def test_messages_per_thread_are_even() -> None:
    """Without dormant threads, each thread holds messages_per_thread messages."""
    generator = _generator(threads=10, messages_per_thread=16, dormant_thread_share=0.0)
    counts = Counter(thread for thread, _ in generator.messages())

    assert len(counts) == 10
    assert set(counts.values()) == {16}


def test_dormant_threads_have_no_message_in_the_last_30_days() -> None:
    """A dormant_thread_share of the threads is silent in the 30 days before onboarding."""
    newest: dict[str, float] = {}
    for thread, message in _generator(threads=40, dormant_thread_share=0.25).messages():
        newest[thread] = min(newest.get(thread, 1e9), _age_days(message))

    silent = [thread for thread, age in newest.items() if age >= 30]

    assert len(newest) == 40
    assert len(silent) == 10


def test_total_messages_overrides_messages_per_thread() -> None:
    """total_messages sets the size of the history whatever messages_per_thread says."""
    generator = _generator(total_messages=333, messages_per_thread=1)

    assert sum(1 for _ in generator.messages()) == 333


def test_directions_alternate_within_a_thread() -> None:
    """In each 1:1 thread, business-sent and user-sent messages alternate."""
    threads: dict[str, list[dict[str, object]]] = {}
    for thread, message in _generator(seed=9).messages():
        threads.setdefault(thread, []).append(message)

    for thread, messages in threads.items():
        if thread.endswith("@g.us"):
            continue
        ordered = sorted(messages, key=lambda m: (int(str(m["timestamp"])), str(m["id"])))
        senders = [m["from"] == BUSINESS for m in ordered]
        assert all(a != b for a, b in pairwise(senders))


def test_business_messages_have_to_and_user_messages_do_not() -> None:
    """When every number shows, business-sent entries carry to = user (digits, no +) and
    user-sent ones have no to."""
    for thread, message in _generator(group_thread_share=0, adopter_share=0).messages():
        if message["from"] == BUSINESS:
            assert message["to"] == thread
        else:
            assert "to" not in message
            assert message["from"] == thread
        assert str(message["from"]).isdigit()


def test_group_threads_have_group_ids() -> None:
    """A group_thread_share of threads have a 120363...@g.us id instead of a number."""
    threads = {thread for thread, _ in _generator(threads=20, group_thread_share=0.1).messages()}

    groups = {thread for thread in threads if thread.endswith("@g.us")}
    assert len(groups) == 2
    assert all(re.fullmatch(r"120363\d{12}@g\.us", group) for group in groups)
    assert all(thread.isdigit() or "." in thread for thread in threads - groups)


def test_type_mix_is_mostly_text_with_media_and_others() -> None:
    """Types follow the mix: mostly text, media_share placeholders, a few reactions/locations."""
    types = Counter(
        message["type"] for _, message in _generator(total_messages=4000, seed=2).messages()
    )

    assert set(types) == {"text", "media_placeholder", "reaction", "location"}
    assert 0.17 < types["media_placeholder"] / 4000 < 0.23
    assert types["text"] > types["media_placeholder"] > types["reaction"]


def test_media_placeholders_carry_no_content() -> None:
    """A media_placeholder has no media object, only its status."""
    placeholders = [
        message for _, message in _generator().messages() if message["type"] == "media_placeholder"
    ]

    assert placeholders
    for message in placeholders:
        assert set(message) <= {
            *("from", "from_user_id", "to", "id", "timestamp", "type", "history_context"),
        }


def test_history_statuses_are_meta_statuses() -> None:
    """history_context.status is one of Meta's six values."""
    statuses = {
        message["history_context"]["status"]
        for _, message in _generator(total_messages=3000).messages()
    }

    assert statuses <= set(HISTORY_STATUSES)
    assert {"READ", "DELIVERED", "SENT"} <= statuses


def test_wamids_are_unique_and_shaped_like_meta() -> None:
    """Every wamid is unique and looks like wamid.<base64>."""
    ids = [str(message["id"]) for _, message in _generator(total_messages=3000).messages()]

    assert len(set(ids)) == len(ids)
    assert all(WAMID.fullmatch(wamid) for wamid in ids)


def test_reactions_point_at_a_message_of_the_same_thread() -> None:
    """A reaction's message_id is the wamid of another message in its thread."""
    threads: dict[str, set[str]] = {}
    reactions: list[tuple[str, str]] = []
    for thread, message in _generator(total_messages=3000, seed=8).messages():
        threads.setdefault(thread, set()).add(str(message["id"]))
        if message["type"] == "reaction":
            reactions.append((thread, message["reaction"]["message_id"]))

    assert reactions
    assert all(target in threads[thread] for thread, target in reactions)


def test_follow_ups_exist_only_for_media_within_14_days() -> None:
    """Every recent placeholder has a typed late-media message with its wamid; older ones none."""
    generator = _generator(total_messages=3000, seed=6)
    recent: set[str] = set()
    followed: set[str] = set()
    for chunk in generator.chunks(with_media=True):
        for message in chunk.messages():
            if message["type"] == "media_placeholder" and _age_days(message) <= 14:
                recent.add(str(message["id"]))
        followed |= {str(item["id"]) for item in (*chunk.media_messages, *chunk.media_echoes)}

    assert recent
    assert followed == recent


def test_follow_up_message_has_the_typed_media_object() -> None:
    """A late-media message names its type and carries mime_type, sha256 and the media id."""
    chunk = _generator(seed=6).chunk(0, 1, with_media=True)
    message, item = chunk.media_messages[0], chunk.media[0]

    kind = message["type"]
    assert kind in {"image", "document", "audio", "video"}
    assert message[kind]["id"] == item.media_id
    assert message[kind]["mime_type"] == item.mime_type
    assert message[kind]["sha256"] == item.sha256
    assert message["id"] == item.wamid
    assert "to" not in message
    assert "history_context" not in message


def test_media_sha256_is_hex_of_the_served_bytes() -> None:
    """The sha256 field is lowercase hex of the medium's bytes, a few KB long."""
    item = _generator(seed=6).chunk(0, 1, with_media=True).media[0]

    content = item.content()
    assert 1024 <= len(content) == item.file_size <= 8192
    assert item.sha256 == hashlib.sha256(content).hexdigest()


def test_media_sha256_can_be_base64() -> None:
    """sha256_encoding='base64' gives the base64 digest, as forwarded payloads show."""
    item = _generator(seed=6, sha256_encoding="base64").chunk(0, 1, with_media=True).media[0]

    assert item.sha256 == base64.b64encode(hashlib.sha256(item.content()).digest()).decode()


def test_history_value_has_meta_shape() -> None:
    """The history value nests phase, chunk_order and progress above the threads."""
    generator = _generator()
    chunk = generator.chunk(1, 2)

    value = generator.history_value(chunk)

    assert value["messaging_product"] == "whatsapp"
    assert value["metadata"] == {
        "display_phone_number": BUSINESS,
        "phone_number_id": CONTEXT.phone_number_id,
    }
    assert value["history"][0]["metadata"] == {
        "phase": 1,
        "chunk_order": 2,
        "progress": chunk.progress,
    }
    assert value["history"][0]["threads"] == list(chunk.threads)


def test_threads_are_grouped_and_sorted_oldest_first() -> None:
    """A thread appears once per chunk, its messages in timestamp order."""
    for chunk in _generator(seed=12).chunks():
        ids = [thread.get("id") or thread["context"]["user_id"] for thread in chunk.threads]
        assert len(ids) == len(set(ids))
        for thread in chunk.threads:
            stamps = [int(message["timestamp"]) for message in thread["messages"]]
            assert stamps == sorted(stamps)


def test_declined_value_carries_error_2593109() -> None:
    """The declined value is one history item with the 2593109 error and Meta's texts."""
    value = _generator().declined_value()

    error = value["history"][0]["errors"][0]
    assert error["code"] == 2593109
    assert error["title"] == error["message"]
    assert error["error_data"] == {"details": "History sharing is turned off by the business"}


def test_contacts_cover_every_contact_with_names() -> None:
    """Initial items add each contact once with full and first names."""
    generator = _generator(contacts=120, chunk_size=50)
    plan = generator.contacts_plan()

    items = [
        item for chunk in range(plan.initial_chunks) for item in generator.contact_items(chunk)
    ]

    assert plan.initial_chunks == 3
    assert len({item["contact"]["user_id"] for item in items}) == 120
    assert all(item["action"] == "add" and item["type"] == "contact" for item in items)
    assert all(
        item["contact"]["full_name"].startswith(item["contact"]["first_name"]) for item in items
    )
    assert all(item["metadata"]["timestamp"].isdigit() for item in items)


def test_contact_edits_rename_with_a_later_timestamp() -> None:
    """An edit re-adds a known user with another name and a later timestamp."""
    generator = _generator(contacts=40)
    initial = {item["contact"]["user_id"]: item for item in generator.contact_items(0)}

    edit = generator.contact_change(0, ONBOARDED_AT)

    before = initial[edit["contact"]["user_id"]]
    assert edit["action"] == "add"
    assert edit["contact"]["full_name"] != before["contact"]["full_name"]
    assert int(edit["metadata"]["timestamp"]) > int(before["metadata"]["timestamp"])


def test_contact_removes_omit_names() -> None:
    """Removes carry only the phone number (when it shows) and the user id."""
    generator = _generator(contacts=40)
    plan = generator.contacts_plan()
    changes = range(plan.edits, plan.edits + plan.removes)

    removes = [generator.contact_change(j, ONBOARDED_AT) for j in changes]

    assert len(removes) == plan.removes == 2
    assert all(
        item["action"] == "remove" and set(item["contact"]) <= {"phone_number", "user_id"}
        for item in removes
    )


def test_history_echoes_repeat_business_texts_of_the_history() -> None:
    """Echoes made from the history reuse business-sent 1:1 text wamids."""
    generator = _generator(seed=3)
    history = {str(message["id"]): message for _, message in generator.messages()}

    echoes = generator.history_echoes(3)

    assert len(echoes) == 3
    for echo in echoes:
        original = history[echo["id"]]
        assert (echo["from"], echo["to"]) == (BUSINESS, original["to"])
        assert echo["text"] == original["text"]


def test_new_echoes_have_fresh_wamids() -> None:
    """A new echo's wamid is not in the history."""
    generator = _generator(seed=3)
    history = {str(message["id"]) for _, message in generator.messages()}

    echo = generator.echo(0, int(ONBOARDED_AT) + 5)

    assert echo["id"] not in history
    assert echo["timestamp"] == str(int(ONBOARDED_AT) + 5)
    assert echo["type"] == "text"
    assert echo["to"].isdigit()


def test_million_message_profile_is_planned_without_generating() -> None:
    """A 1,000,000-message profile counts its chunks at once and builds any chunk alone."""
    started = time.perf_counter()
    generator = _generator(total_messages=1_000_000, chunk_size=50)

    plan = generator.plan
    last_phase, last_order = 2, plan.phase_chunks[2]
    last = generator.chunk(last_phase, last_order)
    middle = generator.chunk(1, plan.phase_chunks[1] // 2)

    assert plan.total_chunks == 20_000
    assert sum(1 for _ in plan.chunk_keys()) == 20_000
    assert last.progress == 100
    assert middle.message_count == 50
    assert time.perf_counter() - started < 2.0


def test_streaming_a_large_history_keeps_memory_small() -> None:
    """Iterating 10,000 messages chunk by chunk peaks under 1 MB (holding them takes ~9 MB)."""
    generator = _generator(total_messages=10_000, seed=1)

    tracemalloc.start()
    try:
        count = sum(chunk.message_count for chunk in generator.chunks())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert count == 10_000
    assert peak < 1_000_000


def test_million_message_stream_is_lazy() -> None:
    """The first messages of a 1,000,000-message history arrive without building the rest."""
    started = time.perf_counter()

    first = list(islice(_generator(total_messages=1_000_000).messages(), 200))

    assert len(first) == 200
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    "knobs",
    [
        {"chunk_size": 0},
        {"media_share": 1.5},
        {"days": 0},
        {"phase_weights": (0.0, 0.0, 0.0)},
        {"media_share": 0.8, "other_types_share": 0.3},
        {"threads": 0, "total_messages": 10},
        {"sha256_encoding": "hex64"},
    ],
)
def test_invalid_profiles_are_refused(knobs: dict[str, object]) -> None:
    """Out-of-range knobs raise ValueError."""
    with pytest.raises(ValueError, match=r"."):
        HistoryProfile(**knobs)  # type: ignore[arg-type]


def test_profile_json_round_trips() -> None:
    """A profile survives to_dict and from_dict."""
    profile = HistoryProfile(seed=4, total_messages=10, phase_weights=(1.0, 1.0, 0.0))

    assert HistoryProfile.from_dict(profile.to_dict()) == profile


def test_profile_from_dict_refuses_unknown_keys() -> None:
    """An unknown profile key is an error."""
    with pytest.raises(ValueError, match="unknown profile keys"):
        HistoryProfile.from_dict({"messages": 3})
