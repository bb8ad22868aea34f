"""Webhook deliveries after an accepted sync, through in-process sinks."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from freezegun import freeze_time

from onboarding.sandbox import (
    Business,
    CollectingSink,
    DeliveryOptions,
    HistoryGenerator,
    HistoryProfile,
    Sandbox,
    WebhookConfig,
    WebhookDispatcher,
    verify_signature,
)

APP_SECRET = "sandbox-app-secret"
Sync = Callable[[str, str], httpx.Response]
Configure = Callable[..., WebhookDispatcher]
ORDERED = HistoryProfile(shuffle=False, duplicate_share=0.0)


def _history_metadata(sink: CollectingSink) -> list[tuple[int, int, int]]:
    return [
        (m["phase"], m["chunk_order"], m["progress"])
        for value in sink.values("history")
        if "history" in value
        for m in [value["history"][0]["metadata"]]
    ]


def test_contacts_sync_delivers_every_contact(
    configure: Configure, sink: CollectingSink, subscribed_number: str, sync: Sync
) -> None:
    """Accepting smb_app_state_sync delivers an add for every generated contact."""
    dispatcher = configure(sink=sink, profile=HistoryProfile(contacts=75, chunk_size=50))

    sync(subscribed_number, "smb_app_state_sync")

    assert dispatcher.wait_idle(5)
    items = [item for value in sink.values("smb_app_state_sync") for item in value["state_sync"]]
    added = {item["contact"]["user_id"] for item in items if item["action"] == "add"}
    assert len(added) == 75
    assert {item["type"] for item in items} == {"contact"}
    assert sink.values("history") == []


def test_contact_changes_can_arrive_before_the_contact(
    configure: Configure, sink: CollectingSink, subscribed_number: str, sync: Sync
) -> None:
    """Unshuffled, the first deliveries are later changes of contacts added afterwards."""
    profile = HistoryProfile(shuffle=False, duplicate_share=0.0, contact_out_of_order_share=0.5)
    dispatcher = configure(sink=sink, profile=profile)

    sync(subscribed_number, "smb_app_state_sync")
    dispatcher.wait_idle(5)

    values = sink.values("smb_app_state_sync")
    early = values[0]["state_sync"][0]
    initial = {
        item["contact"]["user_id"]: item
        for value in values[1:]
        for item in value["state_sync"]
        if len(value["state_sync"]) > 1
    }
    original = initial[early["contact"]["user_id"]]
    assert int(early["metadata"]["timestamp"]) > int(original["metadata"]["timestamp"])


def test_history_sync_delivers_one_envelope_per_chunk(
    configure: Configure,
    sink: CollectingSink,
    sandbox: Sandbox,
    business: Business,
    subscribed_number: str,
    sync: Sync,
) -> None:
    """Unshuffled, the history comes chunk by chunk in (phase, chunk_order) order."""
    dispatcher = configure(sink=sink, profile=ORDERED)

    sync(subscribed_number, "history")
    dispatcher.wait_idle(5)

    metadata = _history_metadata(sink)
    assert [(p, o) for p, o, _ in metadata] == sorted((p, o) for p, o, _ in metadata)
    assert [progress for *_, progress in metadata].count(100) == 1
    payload = sink.payloads("history")[0]
    assert payload["object"] == "whatsapp_business_account"
    entry = payload["entry"][0]
    assert entry["id"] == business.waba_id
    assert isinstance(entry["time"], int)
    assert entry["changes"][0]["field"] == "history"
    assert entry["changes"][0]["value"]["metadata"] == {
        "display_phone_number": "15550783881",
        "phone_number_id": subscribed_number,
    }


def test_media_follow_ups_come_after_the_history_in_messages(
    configure: Configure, sink: CollectingSink, subscribed_number: str, sync: Sync
) -> None:
    """Unshuffled, late media comes last, its typed messages (the users' in messages[], the
    business's in message_echoes[]) joining placeholders by wamid, their users in contacts[]."""
    dispatcher = configure(sink=sink, profile=ORDERED)

    sync(subscribed_number, "history")
    dispatcher.wait_idle(5)

    values = sink.values("history")
    kinds = ["history" if "history" in value else "media" for value in values]
    assert kinds == sorted(kinds)
    assert "media" in kinds
    placeholders = {
        message["id"]
        for value in values
        if "history" in value
        for thread in value["history"][0]["threads"]
        for message in thread["messages"]
        if message["type"] == "media_placeholder"
    }
    media = [value for value in values if "history" not in value]
    followed = {
        m["id"]
        for value in media
        for m in (*value.get("messages", []), *value.get("message_echoes", []))
    }
    assert followed
    assert followed <= placeholders
    assert any("message_echoes" in value for value in media)
    assert all(value["contacts"] for value in media)


def test_every_delivery_is_signed_over_its_exact_bytes(
    configure: Configure, sink: CollectingSink, subscribed_number: str, sync: Sync
) -> None:
    """X-Hub-Signature-256 is sha256=<hex HMAC> of the body keyed with the app secret."""
    dispatcher = configure(sink=sink)

    sync(subscribed_number, "smb_app_state_sync")
    sync(subscribed_number, "history")
    dispatcher.wait_idle(5)

    assert sink.received
    for delivery in sink.received:
        assert delivery.headers["Content-Type"] == "application/json"
        assert delivery.headers["X-Hub-Signature-256"].startswith("sha256=")
        assert delivery.signature_valid(APP_SECRET)
        assert not delivery.signature_valid("another-secret")


def test_reserialized_body_does_not_verify(
    configure: Configure, sink: CollectingSink, subscribed_number: str, sync: Sync
) -> None:
    """Verifying over re-encoded JSON fails: only the raw bytes carry the signature."""
    dispatcher = configure(sink=sink, profile=HistoryProfile(shuffle=False))
    sync(subscribed_number, "history")
    dispatcher.wait_idle(5)
    delivery = sink.received[0]

    reencoded = json.dumps(delivery.json(), ensure_ascii=False).encode()

    header = delivery.headers["X-Hub-Signature-256"]
    assert verify_signature(delivery.body, header, APP_SECRET)
    assert not verify_signature(reencoded, header, APP_SECRET)


def test_bodies_escape_non_ascii_in_lowercase_hex(
    configure: Configure, sink: CollectingSink, subscribed_number: str, sync: Sync
) -> None:
    """Bodies are ASCII, with names and emoji escaped like Meta's \\u00e1."""
    dispatcher = configure(sink=sink, profile=HistoryProfile(contacts=200))

    sync(subscribed_number, "smb_app_state_sync")
    dispatcher.wait_idle(5)

    bodies = b"".join(delivery.body for delivery in sink.received)
    bodies.decode("ascii")
    assert b"\\u00" in bodies
    assert b"\\u00E" not in bodies


def test_duplicates_resend_identical_bytes(
    configure: Configure, sink: CollectingSink, subscribed_number: str, sync: Sync
) -> None:
    """With duplicate_share=1 each delivery is sent twice, byte for byte."""
    profile = HistoryProfile(duplicate_share=1.0, shuffle=False)
    dispatcher = configure(sink=sink, profile=profile)

    sync(subscribed_number, "history")
    dispatcher.wait_idle(5)

    bodies = [delivery.body for delivery in sink.received]
    assert bodies[0::2] == bodies[1::2]
    assert sum(record.duplicate for record in dispatcher.records()) == len(bodies) // 2


def test_duplicate_share_resends_about_that_share(
    configure: Configure, sink: CollectingSink, subscribed_number: str, sync: Sync
) -> None:
    """About duplicate_share of the history deliveries are re-sent."""
    profile = HistoryProfile(total_messages=5000, duplicate_share=0.1)
    dispatcher = configure(sink=sink, profile=profile)

    sync(subscribed_number, "history")
    dispatcher.wait_idle(10)

    counts = Counter(delivery.body for delivery in sink.received)
    repeated = sum(1 for count in counts.values() if count == 2)
    assert 0.03 < repeated / len(counts) < 0.2
    assert max(counts.values()) == 2


def test_shuffle_reorders_but_delivers_the_same_set(
    sandbox: Sandbox, configure: Configure, subscribed_number: str, sync: Sync
) -> None:
    """A shuffled plan delivers the same bodies as the ordered one, in another order."""
    ordered, shuffled = CollectingSink(), CollectingSink()
    unshuffled = HistoryProfile(shuffle=False, duplicate_share=0.0, seed=3)
    dispatcher = configure(sink=ordered, profile=unshuffled)
    sync(subscribed_number, "history")
    dispatcher.wait_idle(5)
    business = sandbox.add_business("Second Shop", ["15550783890"])
    second = sandbox.complete_signup(business.waba_id).phone_number_id
    sandbox.configure_webhooks(
        sink=shuffled,
        profile=HistoryProfile(shuffle=True, duplicate_share=0.0, seed=3),
        delivery=DeliveryOptions(require_subscription=False),
    )
    with httpx.Client(transport=sandbox.mock_transport()) as client:
        client.post(
            f"https://graph.facebook.com/v25.0/{second}/smb_app_data",
            json={"messaging_product": "whatsapp", "sync_type": "history"},
            headers={"Authorization": f"Bearer {sandbox.issue_token(business.id)}"},
        )
    dispatcher.wait_idle(5)

    first_order = [(m[0], m[1]) for m in _history_metadata(ordered)]
    second_order = [(m[0], m[1]) for m in _history_metadata(shuffled)]
    assert sorted(second_order) == first_order
    assert second_order != sorted(second_order)


def test_declined_mode_sends_one_enveloped_2593109(
    configure: Configure, sink: CollectingSink, subscribed_number: str, sync: Sync
) -> None:
    """In declined mode the history sync yields a single envelope with error 2593109."""
    dispatcher = configure(sink=sink, mode="declined")

    sync(subscribed_number, "history")
    dispatcher.wait_idle(5)

    (payload,) = sink.payloads()
    change = payload["entry"][0]["changes"][0]
    assert change["field"] == "history"
    assert change["value"]["history"][0]["errors"][0]["code"] == 2593109
    assert sink.received[0].signature_valid(APP_SECRET)


def test_declined_mode_can_send_the_bare_value(
    configure: Configure, sink: CollectingSink, subscribed_number: str, sync: Sync
) -> None:
    """With envelope_less_decline the declined body is only the inner value."""
    dispatcher = configure(sink=sink, mode="declined", envelope_less_decline=True)

    sync(subscribed_number, "history")
    dispatcher.wait_idle(5)

    (payload,) = sink.payloads()
    assert "object" not in payload
    assert "entry" not in payload
    assert payload["messaging_product"] == "whatsapp"
    assert payload["metadata"]["phone_number_id"] == subscribed_number
    assert payload["history"][0]["errors"][0]["code"] == 2593109


def test_echoes_follow_the_history_and_reuse_some_wamids(
    configure: Configure, sink: CollectingSink, subscribed_number: str, sync: Sync
) -> None:
    """Echoes come after the history; half repeat history wamids, the rest are new."""
    dispatcher = configure(sink=sink, echoes=6, profile=HistoryProfile(echo_reuse_share=0.5))

    sync(subscribed_number, "history")
    dispatcher.wait_idle(5)

    fields = [delivery.field for delivery in sink.received]
    assert fields[-6:] == ["smb_message_echoes"] * 6
    history_ids = {
        message["id"]
        for value in sink.values("history")
        if "history" in value
        for thread in value["history"][0]["threads"]
        for message in thread["messages"]
    }
    echoes = [value["message_echoes"][0] for value in sink.values("smb_message_echoes")]
    assert sum(echo["id"] in history_ids for echo in echoes) == 3
    assert all(echo["from"] == "15550783881" and echo["type"] == "text" for echo in echoes)


def test_echo_deliveries_name_their_user_by_bsuid(
    configure: Configure, sink: CollectingSink, subscribed_number: str, sync: Sync
) -> None:
    """Each smb_message_echoes delivery lists its user in contacts[], by the echo's to_user_id."""
    dispatcher = configure(sink=sink, echoes=6, profile=HistoryProfile(echo_reuse_share=0.5))

    sync(subscribed_number, "history")
    dispatcher.wait_idle(5)

    values = sink.values("smb_message_echoes")
    assert len(values) == 6
    for value in values:
        [echo] = value["message_echoes"]
        [contact] = value["contacts"]
        assert contact["user_id"] == echo["to_user_id"]
        assert contact.get("wa_id") == echo.get("to")


def test_echoes_are_sent_in_declined_mode_too(
    configure: Configure, sink: CollectingSink, subscribed_number: str, sync: Sync
) -> None:
    """Declining history does not stop echoes."""
    dispatcher = configure(sink=sink, mode="declined", echoes=2)

    sync(subscribed_number, "history")
    dispatcher.wait_idle(5)

    assert [delivery.field for delivery in sink.received].count("smb_message_echoes") == 2


def test_emit_echoes_sends_new_echoes_now(
    sandbox: Sandbox, configure: Configure, sink: CollectingSink, subscribed_number: str
) -> None:
    """emit_echoes delivers one smb_message_echoes webhook per echo, stamped now."""
    dispatcher = configure(sink=sink)

    items = dispatcher.emit_echoes(subscribed_number, 3)
    dispatcher.wait_idle(5)

    values = sink.values("smb_message_echoes")
    assert [value["message_echoes"] for value in values] == [[item] for item in items]
    assert {item["timestamp"] for item in items} == {str(int(sandbox.now()))}
    assert len({item["id"] for item in items}) == 3


def test_emit_contact_sends_add_edit_and_remove(
    configure: Configure, sink: CollectingSink, subscribed_number: str
) -> None:
    """emit_contact sends adds and edits as action add, removes without names."""
    dispatcher = configure(sink=sink)

    added = dispatcher.emit_contact(subscribed_number, "add", full_name="Ana Lima")
    edited = dispatcher.emit_contact(subscribed_number, "edit")
    removed = dispatcher.emit_contact(subscribed_number, "remove", phone_number="16505551234")
    dispatcher.wait_idle(5)

    assert [value["state_sync"][0] for value in sink.values()] == [added, edited, removed]
    assert (added["action"], edited["action"], removed["action"]) == ("add", "add", "remove")
    assert added["contact"]["full_name"] == "Ana Lima"
    assert set(removed["contact"]) == {"phone_number", "user_id"}
    assert removed["contact"]["phone_number"] == "16505551234"


def test_emit_without_target_is_refused(sandbox: Sandbox, subscribed_number: str) -> None:
    """Emitting on demand without a configured target raises."""
    dispatcher = sandbox.configure_webhooks()
    try:
        with pytest.raises(RuntimeError, match="no webhook target"):
            dispatcher.emit_echoes(subscribed_number, 1)
    finally:
        sandbox.disable_webhooks()


def test_no_target_delivers_nothing(
    configure: Configure, subscribed_number: str, sync: Sync
) -> None:
    """With no callback_url or sink configured an accepted sync queues nothing."""
    dispatcher = configure()

    assert sync(subscribed_number, "history").status_code == 200

    assert dispatcher.wait_idle(1)
    assert dispatcher.stats()["queued"] == 0


def test_unsubscribed_waba_gets_no_webhooks(
    sandbox: Sandbox, business: Business, configure: Configure, sink: CollectingSink, sync: Sync
) -> None:
    """As on Meta, nothing reaches the app for a WABA it is not subscribed to."""
    number = sandbox.complete_signup(business.waba_id).phone_number_id
    dispatcher = configure(sink=sink)

    sync(number, "smb_app_state_sync")
    dispatcher.wait_idle(5)

    assert sink.received == []
    stats = dispatcher.stats()
    assert stats["skipped"] == stats["queued"] > 0


def test_failed_delivery_is_retried_until_accepted(
    configure: Configure, subscribed_number: str
) -> None:
    """A 500 answer is retried at once and the same bytes are then accepted."""
    sink = CollectingSink(statuses=[500, 502])
    dispatcher = configure(sink=sink)

    dispatcher.emit_echoes(subscribed_number, 1)
    dispatcher.wait_idle(5)

    assert [delivery.body for delivery in sink.received] == [sink.received[0].body] * 3
    (record,) = dispatcher.records()
    assert (record.attempts, record.delivered, record.last_status) == (3, True, 200)
    assert dispatcher.stats()["idle"]


def test_delivery_is_dropped_after_max_attempts(
    configure: Configure, subscribed_number: str
) -> None:
    """A target answering 503 forever gets max_attempts tries, then the delivery fails."""
    sink = CollectingSink(status=503)
    dispatcher = configure(sink=sink, delivery=DeliveryOptions(max_attempts=3, retry_delay=0.001))

    dispatcher.emit_echoes(subscribed_number, 2)
    dispatcher.wait_idle(5)

    stats = dispatcher.stats()
    assert (stats["queued"], stats["failed"], stats["delivered"], stats["attempts"]) == (2, 2, 0, 6)
    assert all(r.failed and r.last_status == 503 for r in dispatcher.records())


def test_raising_sink_is_retried(configure: Configure, subscribed_number: str) -> None:
    """An exception in an in-process sink counts as a failed attempt and is retried."""
    calls: list[bytes] = []

    def flaky(body: bytes, headers: dict[str, str]) -> int:
        calls.append(body)
        if len(calls) == 1:
            raise ConnectionError("receiver restarting")
        return 200

    dispatcher = configure(sink=flaky)

    dispatcher.emit_echoes(subscribed_number, 1)
    dispatcher.wait_idle(5)

    (record,) = dispatcher.records()
    assert (record.attempts, record.delivered) == (2, True)
    assert record.last_error is None
    assert record.last_status == 200


def test_backoff_is_immediate_then_grows_to_a_cap() -> None:
    """Retry 1 is immediate, then retry_delay doubles up to max_retry_delay."""
    options = DeliveryOptions(retry_delay=0.1, max_retry_delay=0.5)

    assert [options.backoff(n) for n in range(1, 7)] == [0.0, 0.1, 0.2, 0.4, 0.5, 0.5]


def test_foreground_mode_waits_for_drain(
    configure: Configure, sink: CollectingSink, subscribed_number: str, sync: Sync
) -> None:
    """With background=False nothing is sent until drain() runs in the caller's thread."""
    dispatcher = configure(sink=sink, delivery=DeliveryOptions(background=False))
    sync(subscribed_number, "smb_app_state_sync")

    assert sink.received == []
    assert dispatcher.stats()["pending_sources"] == 1

    assert dispatcher.drain(5)
    assert sink.received
    assert dispatcher.stats()["idle"]


def test_reset_drops_pending_deliveries(
    sandbox: Sandbox, configure: Configure, sink: CollectingSink, subscribed_number: str, sync: Sync
) -> None:
    """Sandbox.reset drops queued deliveries and zeroes the counters, keeping the config."""
    dispatcher = configure(sink=sink, delivery=DeliveryOptions(background=False))
    sync(subscribed_number, "history")

    sandbox.reset()
    dispatcher.drain(5)

    assert sink.received == []
    assert dispatcher.stats()["queued"] == 0
    assert sandbox.webhooks is dispatcher
    assert dispatcher.config.sink is sink


def test_concurrent_deliveries_all_arrive(
    sandbox: Sandbox,
    configure: Configure,
    sink: CollectingSink,
    subscribed_number: str,
    sync: Sync,
) -> None:
    """With max_in_flight=4 every history chunk still arrives exactly once."""
    profile = HistoryProfile(total_messages=2000, duplicate_share=0)
    dispatcher = configure(sink=sink, profile=profile, delivery=DeliveryOptions(max_in_flight=4))

    sync(subscribed_number, "history")
    assert dispatcher.wait_idle(10)

    metadata = _history_metadata(sink)
    plan = HistoryGenerator(profile, sandbox.number_context(subscribed_number)).plan
    assert len(metadata) == len(set(metadata)) == plan.total_chunks
    assert dispatcher.stats()["delivered"] == len(sink.received)


def test_follow_ups_make_media_downloadable(
    sandbox: Sandbox, configure: Configure, sink: CollectingSink, subscribed_number: str, sync: Sync
) -> None:
    """Each media id in a late-media webhook is registered with the sandbox."""
    dispatcher = configure(sink=sink)

    sync(subscribed_number, "history")
    dispatcher.wait_idle(5)

    media_ids = [
        message[message["type"]]["id"]
        for value in sink.values("history")
        if "messages" in value
        for message in value["messages"]
    ]
    assert media_ids
    assert all(sandbox.media_item(media_id) is not None for media_id in media_ids)


def test_config_refuses_two_targets() -> None:
    """A config cannot have both a callback_url and a sink."""
    with pytest.raises(ValueError, match="either callback_url or sink"):
        WebhookConfig(callback_url="http://127.0.0.1:9/hook", sink=CollectingSink())


@pytest.mark.parametrize(
    "data",
    [
        {"mode": "maybe"},
        {"echoes": -1},
        {"callback_url": "ftp://example.test/hook"},
        {"delivery": {"max_attempts": 0}},
        {"delivery": {"retries": 3}},
        {"colour": "blue"},
    ],
)
def test_config_from_dict_validates(data: dict[str, Any]) -> None:
    """Bad modes, counts, URLs and unknown keys are refused."""
    with pytest.raises(ValueError, match=r"."):
        WebhookConfig.from_dict(data)


def test_retries_run_while_freezegun_freezes_time() -> None:
    """Retry scheduling uses real time, so frozen clocks do not stall deliveries."""
    with freeze_time("2026-06-01 12:00:00"):
        sandbox = Sandbox("42", "secret")
        business = sandbox.add_business("Frozen Shop", 1)
        sandbox.complete_signup(business.waba_id)
        sink = CollectingSink(statuses=[500, 500, 500])
        options = DeliveryOptions(require_subscription=False, retry_delay=0.01)
        dispatcher = sandbox.configure_webhooks(sink=sink, delivery=options)
        try:
            dispatcher.emit_echoes(business.phone_number_ids[0], 1)

            assert dispatcher.wait_idle(5)
        finally:
            sandbox.disable_webhooks()

    assert dispatcher.stats()["attempts"] == 4
    assert dispatcher.stats()["delivered"] == 1
