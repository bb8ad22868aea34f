"""The send step: the account's state, the throughput guard, Meta's answers, idempotency keys,
and the thin task."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import select, update
from structlog.testing import capture_logs

from config import Settings
from models import (
    Alert,
    Database,
    Message,
    Onboarding,
    OnboardingState,
    Peer,
    PendingStatus,
    utcnow,
)
from models.crypto import TokenCipher
from onboarding.ingest.messages import apply_message_events
from onboarding.ingest.rows import Context
from onboarding.meta.graph import GraphClient
from onboarding.outbound import send as sending
from onboarding.outbound.guard import SendGuard
from onboarding.outbound.ledger import ClaimState, LocalSendLedger
from onboarding.outbound.send import SendOutcome, SendStatus
from onboarding.outbound.throttle import LocalTokenBucket
from onboarding.outcomes import RetryLater
from onboarding.runtime import Runtime
from onboarding.sandbox import Faults, Sandbox
from onboarding.views import counts
from tests.conftest import APP_ID, APP_SECRET
from tests.onboarding.outbound.helpers import (
    BSUID,
    TEMPLATE,
    TEXT,
    TEXT_TO_BSUID,
    TO,
    Clock,
    RedisDown,
)

S = OnboardingState
Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def throttle(clock: Clock) -> LocalTokenBucket:
    """The in-process bucket at Meta's 20/s, on the manual clock (waits take no time)."""
    return LocalTokenBucket(clock=clock, sleep=clock.sleep)


@pytest.fixture
def ledger() -> LocalSendLedger:
    return LocalSendLedger()


@pytest.fixture
def number(db: Database, subscribed: int) -> str:
    """The phone number id of the subscribed onboarding."""
    with db.sessionmaker() as session:
        pnid = session.get_one(Onboarding, subscribed).phone_number_id
    assert pnid is not None
    return pnid


def run(
    db: Database,
    graph: GraphClient,
    throttle: Any,
    ledger: Any,
    cipher: TokenCipher,
    onboarding_id: int,
    payload: Any = TEXT,
    **kw: Any,
) -> SendOutcome | RetryLater:
    """One send in its own session; a RetryLater is returned rather than raised."""
    with db.session() as session:
        try:
            return sending.send(
                session,
                graph,
                throttle,
                ledger=ledger,
                cipher=cipher,
                onboarding_id=onboarding_id,
                payload=payload,
                **kw,
            )
        except RetryLater as exc:
            return exc


def stored(db: Database, onboarding_id: int) -> list[Message]:
    with db.sessionmaker() as session:
        return list(session.scalars(select(Message).where(Message.onboarding_id == onboarding_id)))


def set_state(db: Database, onboarding_id: int, **values: Any) -> None:
    with db.session() as session:
        session.execute(update(Onboarding).where(Onboarding.id == onboarding_id).values(**values))


def alert_kinds(db: Database, onboarding_id: int) -> set[str]:
    with db.sessionmaker() as session:
        return set(session.scalars(select(Alert.kind).where(Alert.onboarding_id == onboarding_id)))


@pytest.fixture
def send(
    db: Database,
    graph: GraphClient,
    throttle: LocalTokenBucket,
    ledger: LocalSendLedger,
    cipher: TokenCipher,
    subscribed: int,
) -> Callable[..., SendOutcome | RetryLater]:
    """Send ``payload`` for the subscribed onboarding through the sandbox."""

    def go(payload: Any = TEXT, **kw: Any) -> SendOutcome | RetryLater:
        return run(db, graph, throttle, ledger, cipher, subscribed, payload, **kw)

    return go


@pytest.fixture
def wrapped(sandbox: Sandbox) -> Iterator[Callable[[Handler], GraphClient]]:
    """A Graph client whose ``messages`` calls go to ``handler`` and the rest to the sandbox."""
    clients: list[GraphClient] = []

    def build(handler: Handler) -> GraphClient:
        def route(request: httpx.Request) -> httpx.Response:
            if request.url.path.endswith("/messages"):
                return handler(request)
            return sandbox.handle(request)

        client = GraphClient(
            app_id=APP_ID, app_secret=APP_SECRET, transport=httpx.MockTransport(route)
        )
        clients.append(client)
        return client

    yield build
    for client in clients:
        client.close()


def meta_error(code: int, message: str, status: int = 400) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        error = {"message": message, "type": "OAuthException", "code": code, "fbtrace_id": "Az8"}
        return httpx.Response(status, json={"error": error})

    return handler


# -- sending -------------------------------------------------------------------------------


def test_text_send_is_recorded_as_an_api_message(
    db: Database, sandbox: Sandbox, send: Callable[..., Any], subscribed: int
) -> None:
    """A text send reaches Meta once and is stored outbound, source api, under Meta's wamid."""
    outcome = send()

    [accepted] = sandbox.sent_messages()
    assert outcome == SendOutcome(SendStatus.SENT, wamid=accepted.wamid)
    [row] = stored(db, subscribed)
    assert (row.wamid, row.thread, row.direction, row.source) == (
        accepted.wamid,
        TO,
        "outbound",
        "api",
    )
    assert (row.type, row.text_body, row.status) == (
        "text",
        "Your order ships tomorrow",
        "accepted",
    )


def test_a_status_processed_while_the_send_commits_is_applied_by_the_send(
    db: Database,
    wrapped: Callable[[Handler], GraphClient],
    throttle: LocalTokenBucket,
    ledger: LocalSendLedger,
    cipher: TokenCipher,
    settings: Settings,
    subscribed: int,
) -> None:
    """Meta's delivered status, processed before the send recorded its message, is kept and
    applied as soon as the send commits: the message ends delivered, not accepted."""
    wamid = "wamid.RACE"

    def accept_and_report(request: httpx.Request) -> httpx.Response:
        with db.session() as session:  # the ingest worker, while the send waits for Meta
            onboarding = session.get_one(Onboarding, subscribed)
            value = {
                "metadata": {"phone_number_id": onboarding.phone_number_id},
                "statuses": [
                    {
                        "id": wamid,
                        "status": "delivered",
                        "timestamp": str(int(time.time())),
                        "recipient_id": TO,
                    }
                ],
            }
            kept = apply_message_events(session, Context.of(onboarding, None, settings), value)
            assert kept.counts == {"statuses_pending": 1}
        contacts = [{"input": TO, "wa_id": TO}]
        return httpx.Response(
            200,
            json={
                "messaging_product": "whatsapp",
                "contacts": contacts,
                "messages": [{"id": wamid}],
            },
        )

    outcome = run(db, wrapped(accept_and_report), throttle, ledger, cipher, subscribed)

    assert outcome == SendOutcome(SendStatus.SENT, wamid=wamid)
    [row] = stored(db, subscribed)
    assert (row.source, row.status) == ("api", "delivered")
    with db.sessionmaker() as session:
        assert session.scalars(select(PendingStatus)).all() == []


def test_api_sends_are_counted_apart_from_app_messages(
    db: Database, send: Callable[..., Any], subscribed: int
) -> None:
    """show --json's counts put API sends under messages_api (billed), not app_echoes (free)."""
    send()
    send(TEMPLATE)

    with db.sessionmaker() as session:
        figures = counts(session, subscribed)

    assert (figures["messages_api"], figures["app_echoes"], figures["messages_outbound"]) == (
        2,
        0,
        2,
    )


def test_template_send_keeps_the_template(
    db: Database, send: Callable[..., Any], subscribed: int
) -> None:
    """A template send is stored with type template and the template it sent, no text."""
    send(TEMPLATE)

    [row] = stored(db, subscribed)
    assert (row.type, row.text_body) == ("template", None)
    assert row.raw == {"template": TEMPLATE["template"]}


def test_invalid_payload_is_refused_and_nothing_sent(
    sandbox: Sandbox, send: Callable[..., Any]
) -> None:
    """A payload that is not a message is refused with the reason; Meta is not called."""
    outcome = send({"to": TO, "type": "text"})

    assert outcome.status is SendStatus.REFUSED
    assert "needs a 'text' object" in outcome.reason
    assert sandbox.call_counts()["messages"] == 0


def test_unknown_onboarding_is_refused(
    db: Database,
    graph: GraphClient,
    throttle: LocalTokenBucket,
    ledger: LocalSendLedger,
    cipher: TokenCipher,
) -> None:
    """A send for an onboarding that does not exist is refused."""
    outcome = run(db, graph, throttle, ledger, cipher, 404)

    assert outcome == SendOutcome(SendStatus.REFUSED, reason="no such onboarding")


def test_sends_are_paced_by_the_numbers_bucket(
    send: Callable[..., Any], clock: Clock, throttle: LocalTokenBucket, number: str
) -> None:
    """Three sends take one token each: the second and third wait 1/19 s for theirs."""
    for _ in range(3):
        send()

    assert clock.sleeps == [0.053, 0.053]


def test_no_token_in_time_is_retried_later(
    sandbox: Sandbox, send: Callable[..., Any], throttle: LocalTokenBucket, number: str
) -> None:
    """When the bucket has no token within the wait budget, the send is retried later."""
    throttle.set_rate(number, 0.1)
    throttle.try_acquire(number)

    retry = send(token_wait=1.0)

    assert isinstance(retry, RetryLater)
    assert 1.0 <= retry.countdown <= 1.25
    assert sandbox.call_counts()["messages"] == 0


# -- the account's state -------------------------------------------------------------------


def test_reconnecting_account_waits(
    db: Database, sandbox: Sandbox, send: Callable[..., Any], subscribed: int
) -> None:
    """While Meta reconnects the account, a send is retried later, and nothing goes out."""
    set_state(db, subscribed, state=S.RECONNECTING.value)

    retry = send()

    assert isinstance(retry, RetryLater)
    assert "reconnecting" in retry.reason
    assert sandbox.call_counts()["messages"] == 0


def test_pause_waits_longer_with_each_attempt(
    db: Database, send: Callable[..., Any], subscribed: int
) -> None:
    """A paused account's sends back off: 30 s on the first attempt, 120 s on the third."""
    set_state(db, subscribed, paused_reason="ACCOUNT_RESTRICTION")

    first, third = send(), send(attempt=2)

    assert isinstance(first, RetryLater)
    assert isinstance(third, RetryLater)
    assert "ACCOUNT_RESTRICTION" in first.reason
    assert 30 <= first.countdown <= 37.5
    assert 120 <= third.countdown <= 150


def test_restriction_stops_only_its_kind_of_message_until_it_expires(
    db: Database, sandbox: Sandbox, send: Callable[..., Any], subscribed: int
) -> None:
    """A business-initiated restriction holds templates back no longer than its expiry, while
    text replies still go out."""
    expires = int(time.time()) + 20
    restriction = {"type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expires_at": expires}
    set_state(db, subscribed, restrictions=[restriction])

    held, replied = send(TEMPLATE), send(TEXT)

    assert isinstance(held, RetryLater)
    assert "RESTRICTED_BIZ_INITIATED_MESSAGING" in held.reason
    assert held.countdown <= 21 * 1.25
    assert replied.status is SendStatus.SENT
    assert sandbox.call_counts()["messages"] == 1


def test_expired_restriction_no_longer_holds_sends(
    db: Database, send: Callable[..., Any], subscribed: int
) -> None:
    """A restriction past its expiry stops nothing, before any job has noted the lift."""
    restriction = {"type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expires_at": 1_700_000_000}
    set_state(db, subscribed, restrictions=[restriction])

    assert send(TEMPLATE).status is SendStatus.SENT


def test_disconnected_account_is_refused_for_good(
    db: Database, sandbox: Sandbox, send: Callable[..., Any], subscribed: int
) -> None:
    """A disconnected business has nothing to send to: the send is refused, not retried."""
    set_state(db, subscribed, state=S.DISCONNECTED.value)

    outcome = send()

    assert outcome.status is SendStatus.REFUSED
    assert "disconnected" in outcome.reason
    assert sandbox.call_counts()["messages"] == 0


@pytest.mark.parametrize("state", [S.RECEIVED, S.TOKEN_EXCHANGED, S.FAILED, S.INELIGIBLE])
def test_onboarding_not_connected_is_refused(
    db: Database, send: Callable[..., Any], subscribed: int, state: OnboardingState
) -> None:
    """An onboarding whose number is not (or no longer) on the Cloud API refuses to send."""
    set_state(db, subscribed, state=state.value)

    outcome = send()

    assert outcome.status is SendStatus.REFUSED
    assert state.value in outcome.reason


@pytest.mark.parametrize("state", sorted(sending.SENDING_STATES))
def test_every_connected_state_sends(
    db: Database, send: Callable[..., Any], subscribed: int, state: OnboardingState
) -> None:
    """Subscribed, syncing, synced, history declined and sync window missed all send."""
    set_state(db, subscribed, state=state.value)

    assert send().status is SendStatus.SENT


# -- Meta's answers ------------------------------------------------------------------------


def test_meta_throughput_limit_is_retried_in_seconds(
    db: Database,
    sandbox: Sandbox,
    graph: GraphClient,
    ledger: LocalSendLedger,
    cipher: TokenCipher,
    subscribed: int,
    number: str,
) -> None:
    """Meta's 130429 is retried 1-5 s later (with jitter) and nothing is recorded."""
    sandbox.set_message_throughput(number, 1)
    unguarded = LocalTokenBucket(default_rate=1000)
    run(db, graph, unguarded, ledger, cipher, subscribed)

    retry = run(db, graph, unguarded, ledger, cipher, subscribed)

    assert isinstance(retry, RetryLater)
    assert "Rate limit hit" in retry.reason
    assert 1.0 <= retry.countdown <= 6.25
    assert len(stored(db, subscribed)) == 1


def test_pair_rate_limit_backs_off_by_powers_of_four(
    db: Database,
    wrapped: Callable[[Handler], GraphClient],
    throttle: LocalTokenBucket,
    ledger: LocalSendLedger,
    cipher: TokenCipher,
    subscribed: int,
) -> None:
    """Meta's 131056 (pair rate limit) waits 6 s, then 24 s on the next attempt."""
    graph = wrapped(meta_error(131056, "(#131056) (Business Account, Consumer Account) pair rate"))

    first = run(db, graph, throttle, ledger, cipher, subscribed)
    second = run(db, graph, throttle, ledger, cipher, subscribed, attempt=1)

    assert isinstance(first, RetryLater)
    assert isinstance(second, RetryLater)
    assert 6 <= first.countdown <= 7.5
    assert 24 <= second.countdown <= 30


def test_permanent_refusal_carries_metas_code(
    db: Database,
    wrapped: Callable[[Handler], GraphClient],
    throttle: LocalTokenBucket,
    ledger: LocalSendLedger,
    cipher: TokenCipher,
    subscribed: int,
) -> None:
    """A message Meta refuses for good (131047: the 24 h window is closed) is refused with
    Meta's code, not retried, and not stored."""
    graph = wrapped(meta_error(131047, "Re-engagement message"))

    outcome = run(db, graph, throttle, ledger, cipher, subscribed)

    assert (outcome.status, outcome.code) == (SendStatus.REFUSED, 131047)
    assert stored(db, subscribed) == []


def test_dead_token_is_refused_and_alerted(
    db: Database, cipher: TokenCipher, send: Callable[..., Any], subscribed: int
) -> None:
    """A business token Meta no longer accepts is refused (190) and raises an operator alert."""
    set_state(db, subscribed, token_ciphertext=cipher.encrypt("EAAGneverissued"))

    outcome = send()

    assert (outcome.status, outcome.code) == (SendStatus.REFUSED, 190)
    assert "send_token_invalid" in alert_kinds(db, subscribed)


def test_connection_refused_is_retried_and_frees_the_key(
    db: Database,
    sandbox: Sandbox,
    wrapped: Callable[[Handler], GraphClient],
    graph: GraphClient,
    throttle: LocalTokenBucket,
    ledger: LocalSendLedger,
    cipher: TokenCipher,
    subscribed: int,
) -> None:
    """A send that never left is retried later, and its key can be sent afterwards."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    payload = {**TEXT, "idempotency_key": "order-7"}
    retry = run(db, wrapped(refuse), throttle, ledger, cipher, subscribed, payload)
    outcome = run(db, graph, throttle, ledger, cipher, subscribed, payload)

    assert isinstance(retry, RetryLater)
    assert outcome.status is SendStatus.SENT
    assert len(sandbox.sent_messages()) == 1


def test_failing_bucket_frees_the_key(
    db: Database,
    graph: GraphClient,
    ledger: LocalSendLedger,
    cipher: TokenCipher,
    subscribed: int,
) -> None:
    """A bucket that fails (Redis down) before the call leaves the key free to send later."""
    payload = {**TEXT, "idempotency_key": "order-7"}

    with pytest.raises(redis.ConnectionError):
        run(db, graph, RedisDown(), ledger, cipher, subscribed, payload)

    assert ledger.claim(subscribed, "order-7").state is ClaimState.NEW


# -- idempotency ---------------------------------------------------------------------------


def test_same_key_twice_sends_once(
    db: Database, sandbox: Sandbox, send: Callable[..., Any], subscribed: int
) -> None:
    """A redelivered send with the same idempotency key reports the first wamid, sends nothing."""
    payload = {**TEXT, "idempotency_key": "order-7"}

    first, second = send(payload), send(payload)

    assert first.status is SendStatus.SENT
    assert second == SendOutcome(SendStatus.ALREADY_SENT, wamid=first.wamid)
    assert len(sandbox.sent_messages()) == 1
    assert len(stored(db, subscribed)) == 1


def test_redelivery_records_a_send_whose_commit_was_lost(
    db: Database, send: Callable[..., Any], ledger: LocalSendLedger, subscribed: int
) -> None:
    """If the first run died after the send but before its commit, the redelivery stores it."""
    ledger.claim(subscribed, "order-7")
    ledger.mark_sent(subscribed, "order-7", "wamid.HBgLsent", 1_780_000_000.0)

    outcome = send({**TEXT, "idempotency_key": "order-7"})

    assert outcome.status is SendStatus.ALREADY_SENT
    [row] = stored(db, subscribed)
    assert row.wamid == "wamid.HBgLsent"
    assert row.sent_at.timestamp() == 1_780_000_000.0


def test_lost_answer_with_a_key_is_unknown_and_never_resent(
    db: Database, sandbox: Sandbox, send: Callable[..., Any], subscribed: int
) -> None:
    """A send whose answer was dropped is unknown, alerted, and its retry sends nothing."""
    sandbox.set_faults(Faults.only("messages", drop_after_apply=1.0, seed=1))
    payload = {**TEXT, "idempotency_key": "order-7"}

    first = send(payload)
    sandbox.set_faults(None)
    second = send(payload)

    assert first.status is SendStatus.UNKNOWN
    assert second.status is SendStatus.UNKNOWN
    assert len(sandbox.sent_messages()) == 1
    assert stored(db, subscribed) == []
    assert "send_outcome_unknown" in alert_kinds(db, subscribed)


def test_lost_answer_without_a_key_is_retried(sandbox: Sandbox, send: Callable[..., Any]) -> None:
    """Without a key a send is at least once: a dropped answer is retried (it may duplicate)."""
    sandbox.set_faults(Faults.only("messages", drop_after_apply=1.0, seed=1))

    retry = send()

    assert isinstance(retry, RetryLater)
    assert "may have been sent" in retry.reason


def test_key_in_flight_elsewhere_waits_for_its_lease(
    send: Callable[..., Any], ledger: LocalSendLedger, sandbox: Sandbox, subscribed: int
) -> None:
    """A key another worker is sending right now makes this run retry after the lease."""
    ledger.claim(subscribed, "order-7")

    retry = send({**TEXT, "idempotency_key": "order-7"}, intent_lease=60.0)

    assert isinstance(retry, RetryLater)
    assert 55 <= retry.countdown <= 75
    assert sandbox.call_counts()["messages"] == 0


def test_key_whose_worker_died_mid_send_is_unknown(
    send: Callable[..., Any], ledger: LocalSendLedger, sandbox: Sandbox, subscribed: int
) -> None:
    """An intent older than the lease (its worker died) is unknown: not sent again."""
    ledger.claim(subscribed, "order-7")

    outcome = send({**TEXT, "idempotency_key": "order-7"}, intent_lease=0.0)

    assert outcome.status is SendStatus.UNKNOWN
    assert sandbox.call_counts()["messages"] == 0


# -- the task ------------------------------------------------------------------------------


def test_task_sends_and_records(
    rt: Runtime, db: Database, sandbox: Sandbox, subscribed: int
) -> None:
    """The send_message task sends through the runtime's guard and stores the message."""
    from tasks.sending import send_message  # noqa: PLC0415 - registering it at collection
    # time would change the task list tests/tasks/test_base.py pins

    send_message.delay(subscribed, {**TEXT, "idempotency_key": "order-7"})
    send_message.delay(subscribed, {**TEXT, "idempotency_key": "order-7"})

    assert len(sandbox.sent_messages()) == 1
    assert [row.source for row in stored(db, subscribed)] == ["api"]


def test_task_retries_when_redis_is_down(rt: Runtime, sandbox: Sandbox, subscribed: int) -> None:
    """With the guard's Redis unreachable the task asks to run again later; nothing is sent."""
    from tasks.sending import send_message  # noqa: PLC0415 - see test_task_sends_and_records

    rt.send_guard = SendGuard(RedisDown(), LocalSendLedger())
    with capture_logs() as logs:
        send_message.delay(subscribed, TEXT)

    [retry] = [e for e in logs if e["event"] == "task_retry_left_to_sweeper"]
    assert "Redis unavailable" in retry["reason"]
    assert sandbox.call_counts()["messages"] == 0


def test_task_states_the_reliability_contract() -> None:
    """send_message acks late, has time limits, finite retries and backoff, like every task."""
    from tasks.sending import send_message  # noqa: PLC0415 - see test_task_sends_and_records

    assert send_message.name == "coexist.send.send_message"
    assert send_message.acks_late
    assert send_message.reject_on_worker_lost
    assert send_message.ignore_result
    assert 0 < send_message.soft_time_limit < send_message.time_limit
    assert send_message.max_retries == 25
    assert send_message.retry_backoff


# -- addressing by business-scoped user id -------------------------------------------------


def test_bsuid_send_goes_to_the_recipient_and_is_recorded_under_it(
    db: Database, sandbox: Sandbox, send: Callable[..., Any], subscribed: int
) -> None:
    """A payload naming only a BSUID is sent with recipient and stored on that address."""
    outcome = send(TEXT_TO_BSUID)

    assert outcome.status is SendStatus.SENT
    [sent] = sandbox.sent_messages()
    assert sent.to == BSUID
    [row] = stored(db, subscribed)
    assert (row.wamid, row.thread) == (outcome.wamid, BSUID)


def test_keyed_send_records_the_address_in_the_ledger(
    send: Callable[..., Any], ledger: LocalSendLedger, subscribed: int
) -> None:
    """The ledger remembers that a keyed send went to the BSUID through recipient."""
    send({**TEXT_TO_BSUID, "idempotency_key": "order-9"})

    assert ledger.claim(subscribed, "order-9").address == ("recipient", BSUID)


def test_bsuid_refusal_131062_says_to_send_by_phone_number(
    db: Database, sandbox: Sandbox, send: Callable[..., Any], subscribed: int
) -> None:
    """An authentication template to a BSUID is refused for good with 131062 and a reason
    saying to send it by phone number."""
    template = {**TEMPLATE, "template": {"name": "auth_code", "language": {"code": "en_US"}}}
    del template["to"]

    outcome = send({**template, "recipient": BSUID})

    assert (outcome.status, outcome.code) == (SendStatus.REFUSED, 131062)
    assert "phone number" in (outcome.reason or "")
    assert sandbox.sent_messages() == []
    assert stored(db, subscribed) == []


def test_longest_bsuid_is_recorded_whole_beside_its_thread(
    db: Database, send: Callable[..., Any], subscribed: int
) -> None:
    """A BSUID longer than the thread column is sent and recorded: whole in raw.recipient."""
    longest = "US." + "7" * 128

    outcome = send({**TEXT_TO_BSUID, "recipient": longest})

    assert outcome.status is SendStatus.SENT
    [row] = stored(db, subscribed)
    assert row.raw == {"recipient": longest}
    assert longest.startswith(row.thread)


def test_bsuid_send_to_a_peer_known_by_number_goes_to_the_number(
    db: Database, sandbox: Sandbox, send: Callable[..., Any], subscribed: int
) -> None:
    """A payload naming a BSUID whose peer has a phone number is sent to that number
    (Meta's ``to`` wins) and recorded in that peer's thread."""
    with db.session() as session:
        session.add(Peer(onboarding_id=subscribed, user_id=BSUID, phone="16505551234"))
    outcome = send(TEXT_TO_BSUID)

    assert outcome.status is SendStatus.SENT
    [sent] = sandbox.sent_messages()
    assert sent.to == "16505551234"
    [row] = stored(db, subscribed)
    with db.sessionmaker() as session:
        peer = session.get_one(Peer, row.peer_id)
    assert (row.thread, peer.user_id, peer.phone) == ("16505551234", BSUID, "16505551234")


def test_send_to_a_new_bsuid_creates_its_peer_without_joining_anything(
    db: Database, send: Callable[..., Any], subscribed: int
) -> None:
    """A send to a BSUID coexist has not seen makes a peer known by that BSUID alone."""
    send(TEXT_TO_BSUID)

    [row] = stored(db, subscribed)
    with db.sessionmaker() as session:
        peers = list(session.scalars(select(Peer).where(Peer.onboarding_id == subscribed)))
    assert [(p.id, p.user_id, p.phone) for p in peers] == [(row.peer_id, BSUID, None)]


def test_a_send_for_an_erased_onboarding_is_refused(
    db: Database, subscribed: int, send: Callable[..., SendOutcome | RetryLater]
) -> None:
    """Nothing is sent for an onboarding whose data was erased: the send is refused, saying so."""
    set_state(db, subscribed, erased_at=utcnow())
    outcome = send()
    assert isinstance(outcome, SendOutcome)
    assert (outcome.status, outcome.reason) == (
        SendStatus.REFUSED,
        f"onboarding {subscribed} was erased",
    )
    assert stored(db, subscribed) == []
