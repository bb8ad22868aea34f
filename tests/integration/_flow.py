"""Driving an onboarding's webhooks through the real stack, and the oracle its counts meet.

Shared by the ingestion tests and the chaos tests: the sandbox's generated business onboarded
over HTTP, its signed deliveries posted to the web app as Meta posts them, and the counts of
``GET /onboardings/{id}`` that every delivery must end in. Every expected count comes from an
oracle that applies Meta's and coexist's rules (1:1 threads only, 180-day window, late
media within 14 days, last contact change wins) to what the sandbox's generator produced,
never from what coexist stored.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import select

from benchmarks._harness import BrokerClient, CoexistApi, WebServer, describe, poll_until
from models import Database, InboxDelivery, InboxStatus
from onboarding.meta.payloads import digits
from onboarding.sandbox import (
    CollectingSink,
    DeliveryOptions,
    HistoryGenerator,
    HistoryProfile,
    ReceivedWebhook,
    Sandbox,
    SignupResult,
    WebhookDispatcher,
)
from tests.onboarding.deliveries import Business

DAY = 86_400
HISTORY_WINDOW_DAYS = 180
MEDIA_CUTOFF_DAYS = 14
HISTORY_DONE = frozenset({"completed", "completed_with_gaps"})
SETTLE_TIMEOUT = 60.0
#: How often a test that relies on beat's ingest watchdog sends it.
WATCHDOG_EVERY = 2.0
#: The generated business most flows onboard. A few hundred messages: 14 chunks over phases
#: 0, 1 and 2 (some beyond 180 days), a quarter media of every age, a quarter of the deliveries
#: sent twice, all shuffled; 24 contacts of which 3 are edited and 3 removed, some changes ahead
#: of the initial sync. No group threads (the chaos tests with two workers have them).
PROFILE = HistoryProfile(
    seed=5,
    contacts=24,
    threads=12,
    messages_per_thread=25,
    days=200.0,
    group_thread_share=0.0,
    media_share=0.25,
    chunk_size=25,
    duplicate_share=0.25,
    shuffle=True,
    contact_edit_share=0.125,
    contact_remove_share=0.125,
)
#: App echoes sent after the history; half repeat a business-sent history message.
ECHOES = 4
#: Deliveries the sandbox sends itself are retried quickly when refused.
DELIVERY = DeliveryOptions(max_attempts=6, retry_delay=0.1, max_retry_delay=1.0)


# -- the oracle ----------------------------------------------------------------------------


def is_one_to_one(thread: str) -> bool:
    """A 1:1 thread names its user: by number, or by BSUID where Meta omits the number (the
    generator's name for it); a group's id is a group JID (``…@g.us``)."""
    return not thread.endswith("@g.us")


def expected_counts(
    generator: HistoryGenerator, signed_up_at: float, *, echoes: int, contacts_at: float
) -> dict[str, int]:
    """The ``counts`` of ``GET /onboardings/{id}`` once everything the sandbox sends is in."""
    business = generator.context.display_phone_number
    window_start = signed_up_at - HISTORY_WINDOW_DAYS * DAY
    media_cutoff = signed_up_at - MEDIA_CUTOFF_DAYS * DAY
    messages: dict[str, tuple[str, str]] = {}  # wamid -> (thread, direction)
    out: Counter[str] = Counter()
    for thread, message in generator.messages():
        if not is_one_to_one(thread):
            out["dropped_group"] += 1
            continue
        sent_at = int(message["timestamp"])
        if sent_at < window_start:
            out["dropped_out_of_window"] += 1
            continue
        outbound = message.get("from") == business
        messages[message["id"]] = (thread, "outbound" if outbound else "inbound")
        if message["type"] == "media_placeholder":
            out["media_stored" if sent_at >= media_cutoff else "media_skipped_too_old"] += 1
    reused = generator.history_echoes(round(echoes * generator.profile.echo_reuse_share))
    fresh = [generator.echo(sequence, 0) for sequence in range(echoes - len(reused))]
    for echo in (*reused, *fresh):
        messages.setdefault(echo["id"], (echo.get("to") or echo["to_user_id"], "outbound"))
    directions = Counter(direction for _, direction in messages.values())
    contacts = final_contacts(generator, contacts_at)
    return {
        "messages": len(messages),
        "threads": len({thread for thread, _ in messages.values()}),
        "messages_inbound": directions["inbound"],
        "messages_outbound": directions["outbound"],
        "app_echoes": len({echo["id"] for echo in (*reused, *fresh)}),
        "messages_api": 0,
        "messages_live": 0,
        "media_stored": out["media_stored"],
        "media_awaiting": 0,
        "media_skipped_too_old": out["media_skipped_too_old"],
        "media_expired": 0,
        "media_failed": 0,
        "contacts": sum(not removed for removed in contacts.values()),
        "contacts_removed": sum(contacts.values()),
        "history_chunks": sum(generator.plan.phase_chunks),
        "dropped_out_of_window": out["dropped_out_of_window"],
        "dropped_group": out["dropped_group"],
        "edits_pending": 0,
        "revokes_pending": 0,
        "statuses_pending": 0,
    }


def final_contacts(generator: HistoryGenerator, contacts_at: float) -> dict[str, bool]:
    """Person (BSUID) -> removed, after every contact change the sandbox sends, newest winning.

    Contacts are kept per person, whether they name a phone number, a BSUID or both (a later
    change naming both joins a contact first saved by username)."""
    plan = generator.contacts_plan()
    items = [item for i in range(plan.initial_chunks) for item in generator.contact_items(i)]
    items += [generator.contact_change(change, contacts_at) for change in range(plan.changes)]
    latest: dict[str, tuple[int, bool]] = {}
    for item in items:
        person, changed_at = item["contact"]["user_id"], int(item["metadata"]["timestamp"])
        if person not in latest or changed_at > latest[person][0]:
            latest[person] = (changed_at, item["action"] == "remove")
    return {person: removed for person, (_, removed) in latest.items()}


def generator_for(
    sandbox: Sandbox, detail: Mapping[str, Any], profile: HistoryProfile
) -> HistoryGenerator:
    """The generator behind the webhooks the sandbox sends for ``detail``'s number."""
    return HistoryGenerator(profile, sandbox.number_context(detail["phone_number_id"]))


def signed_up_at(detail: Mapping[str, Any]) -> float:
    """The onboarding's recorded signup time (the 180-day window and 14-day cut-off end here)."""
    return datetime.fromisoformat(detail["signup_completed_at"]).timestamp()


def contacts_accepted_at(sandbox: Sandbox, phone_number_id: str) -> float:
    """When Meta (the sandbox) accepted the contacts sync: edits are timed after it."""
    [sync] = [
        s for s in sandbox.accepted_syncs(phone_number_id) if s.sync_type == "smb_app_state_sync"
    ]
    return sync.accepted_at


def oracle_for(
    sandbox: Sandbox, detail: Mapping[str, Any], profile: HistoryProfile, *, echoes: int
) -> dict[str, int]:
    """The expected counts of ``detail``'s onboarding, whose webhooks used ``profile``."""
    return expected_counts(
        generator_for(sandbox, detail, profile),
        signed_up_at(detail),
        echoes=echoes,
        contacts_at=contacts_accepted_at(sandbox, detail["phone_number_id"]),
    )


# -- driving the stack ---------------------------------------------------------------------


def callback(web: WebServer) -> str:
    return f"{web.url}/webhooks/meta"


def finished_signup(sandbox: Sandbox) -> SignupResult:
    """A business with one Business app number that has just finished Embedded Signup."""
    business = sandbox.add_business("Lucky Shrub")
    return sandbox.complete_signup(business.waba_id)


def start_onboarding(api: CoexistApi, signup: SignupResult) -> int:
    response = api.post_signup(signup.session, signup.code)
    assert response.status_code == 202, response.text
    onboarding_id: int = response.json()["onboarding_id"]
    return onboarding_id


def onboarded_business(api: CoexistApi, sandbox: Sandbox) -> Business:
    """An onboarding through Embedded Signup with both syncs requested (no webhooks sent)."""
    signup = finished_signup(sandbox)
    onboarding_id = start_onboarding(api, signup)
    detail = api.wait_for_onboarding(onboarding_id)
    number = digits(detail["display_phone_number"])
    assert number is not None
    return Business(onboarding_id, signup.waba_id, signup.phone_number_id, number)


def post_all(meta: httpx.Client, deliveries: Iterable[ReceivedWebhook]) -> None:
    """POST each delivery's exact bytes and headers (signature included) to /webhooks/meta."""
    for delivery in deliveries:
        headers = dict(delivery.headers)
        response = meta.post("/webhooks/meta", content=delivery.body, headers=headers)
        assert response.status_code == 200, response.text


def collect_deliveries(
    sandbox: Sandbox, api: CoexistApi, profile: HistoryProfile, *, echoes: int
) -> tuple[int, list[ReceivedWebhook]]:
    """Onboard a business whose webhooks (from ``profile``) the sandbox hands to the caller."""
    sink = CollectingSink()
    dispatcher = sandbox.configure_webhooks(
        sink=sink, profile=profile, echoes=echoes, delivery=DeliveryOptions(background=False)
    )
    onboarding_id = start_onboarding(api, finished_signup(sandbox))
    api.wait_for_onboarding(onboarding_id)  # both syncs accepted: every delivery is queued
    assert dispatcher.drain(30.0)
    assert dispatcher.stats()["delivered"] == len(sink.received) > 0
    return onboarding_id, list(sink.received)


def inbox(db: Database) -> Counter[str]:
    """Stored deliveries per status."""
    with db.sessionmaker() as session:
        return Counter(session.scalars(select(InboxDelivery.status)))


def wait_for_inbox(db: Database, status: InboxStatus, count: int) -> None:
    """Until ``count`` deliveries are stored, all of them with ``status``."""
    poll_until(
        lambda: inbox(db),
        lambda statuses: statuses == Counter({status.value: count}),
        what=f"{count} deliveries {status.value}",
        timeout=SETTLE_TIMEOUT,
    )


def settled(
    api: CoexistApi,
    db: Database,
    onboarding_id: int,
    dispatcher: WebhookDispatcher | None = None,
    beat: BrokerClient | None = None,
    *,
    timeout: float = SETTLE_TIMEOUT,
) -> dict[str, Any]:
    """The onboarding once every delivery is in and processed and no media is awaited.

    With ``beat``, the ingest watchdog is sent every few seconds, as beat does every 5 minutes.
    """
    last_watchdog = time.monotonic()

    def snapshot() -> tuple[dict[str, Any], Counter[str], bool]:
        nonlocal last_watchdog
        if beat is not None and time.monotonic() - last_watchdog >= WATCHDOG_EVERY:
            beat.send("coexist.ingest.watchdog")
            last_watchdog = time.monotonic()
        idle = dispatcher is None or bool(dispatcher.stats()["idle"])
        return api.onboarding(onboarding_id), inbox(db), idle

    def done(snap: tuple[dict[str, Any], Counter[str], bool]) -> bool:
        detail, statuses, idle = snap
        return (
            idle
            and set(statuses) == {InboxStatus.PROCESSED.value}
            and detail["sync"]["history"]["state"] in HISTORY_DONE
            and detail["counts"]["media_awaiting"] == 0
        )

    detail, _, _ = poll_until(
        snapshot,
        done,
        what=f"onboarding {onboarding_id}: history ingested, media settled",
        timeout=timeout,
        interval=0.3,
        describe=lambda snap: f"{describe(snap[0])}; counts {snap[0]['counts']}; inbox {snap[1]}",
    )
    return detail
