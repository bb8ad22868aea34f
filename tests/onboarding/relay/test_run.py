"""The relay on the embedded database: order, field filter, retries, failing state, resume."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from freezegun import freeze_time
from sqlalchemy import select, update
from structlog.testing import capture_logs

from config import Settings
from models import Alert, Database, FeedCursor, InboxDelivery
from onboarding.ingest import dispatch
from onboarding.ingest.inbox import Received, receive, receive_many
from onboarding.relay.receiver import DELIVERY_HEADER, Receiver
from onboarding.relay.run import ALERT, CURSOR, next_attempt_at, run, status
from tests.conftest import APP_SECRET, make_settings
from tests.onboarding.deliveries import Business, envelope, signed, text, user_events
from tests.onboarding.relay.provider import ProviderReceiver

SHOP = Business(
    onboarding_id=0,
    waba_id="102290129340398",
    phone_number_id="106540352242922",
    number="16505551234",
)
T0 = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def relay_settings(settings: Settings, url: str, **values: Any) -> Settings:
    return make_settings(database_url=settings.database_url, relay_url=url, **values)


def message(n: int) -> dict[str, Any]:
    """A ``messages`` delivery: a customer's text ``n``."""
    return user_events(SHOP, text(f"wamid.in.{n}", "15550783881", 1_700_000_000 + n, f"hi {n}"))


def history(n: int) -> dict[str, Any]:
    return envelope(
        SHOP,
        "history",
        {"history": [{"metadata": {"phase": 0, "chunk_order": n, "progress": 10}, "threads": []}]},
    )


def store(db: Database, *payloads: dict[str, Any]) -> list[bytes]:
    """Store signed deliveries as the receiver does (signature and content type kept)."""
    bodies = []
    with db.session() as session:
        for payload in payloads:
            body, headers = signed(payload)
            receive(session, Received(body, headers["X-Hub-Signature-256"], "application/json"))
            bodies.append(body)
    return bodies


@pytest.fixture
def provider() -> Iterator[ProviderReceiver]:
    with ProviderReceiver() as receiver:
        yield receiver


@pytest.fixture
def client(provider: ProviderReceiver) -> Iterator[Receiver]:
    receiver = Receiver(provider.url, timeout=5)
    yield receiver
    receiver.close()


def relay(db: Database, client: Receiver, settings: Settings, **kw: Any) -> str:
    with db.session() as session:
        return run(session, client, settings, **kw).outcome


def cursor(db: Database) -> FeedCursor:
    with db.sessionmaker() as session:
        row = session.get_one(FeedCursor, CURSOR)
        session.expunge(row)
        return row


def test_deliveries_are_forwarded_in_order_byte_for_byte_with_metas_signature(
    db: Database, settings: Settings, provider: ProviderReceiver, client: Receiver
) -> None:
    """Every stored delivery reaches the receiver in order of receipt, its bytes, signature
    and content type unchanged, and tagged with its inbox id."""
    bodies = store(db, message(1), history(1), message(2))
    assert relay(db, client, relay_settings(settings, provider.url)) == "caught_up"
    got = provider.accepted()
    assert [g.body for g in got] == bodies
    assert all(g.signed_by(APP_SECRET) for g in got)
    assert {g.headers["content-type"] for g in got} == {"application/json"}
    with db.sessionmaker() as session:
        ids = list(session.scalars(select(InboxDelivery.id).order_by(InboxDelivery.id)))
    assert [int(g.headers[DELIVERY_HEADER.lower()]) for g in got] == ids


def test_a_second_run_sends_nothing_already_forwarded(
    db: Database, settings: Settings, provider: ProviderReceiver, client: Receiver
) -> None:
    """The cursor moves past what was forwarded: a later run sends only the new delivery."""
    config = relay_settings(settings, provider.url)
    store(db, message(1))
    relay(db, client, config)
    [late] = store(db, message(2))
    relay(db, client, config)
    assert [g.body for g in provider.accepted()][1:] == [late]
    assert len(provider.requests) == 2


def test_the_field_filter_forwards_only_deliveries_carrying_a_chosen_field(
    db: Database, settings: Settings, provider: ProviderReceiver, client: Receiver
) -> None:
    """With ``messages`` chosen, history is passed over, whether or not the ingest worker has
    read the delivery's fields yet."""
    first, _, second = store(db, message(1), history(1), message(2))
    with db.sessionmaker() as session:  # the ingest worker has read the first two
        session.execute(
            update(InboxDelivery).where(InboxDelivery.id == 1).values(fields="messages")
        )
        session.execute(update(InboxDelivery).where(InboxDelivery.id == 2).values(fields="history"))
        session.commit()
    relay(db, client, relay_settings(settings, provider.url, relay_fields=" messages ,"))
    assert [g.body for g in provider.accepted()] == [first, second]
    assert cursor(db).event_id == 3


def test_a_delivery_with_several_fields_goes_whole_if_one_is_chosen(
    db: Database, settings: Settings, provider: ProviderReceiver, client: Receiver
) -> None:
    """Meta's batched delivery of ``history`` and ``messages`` is forwarded unchanged."""
    both = message(1)
    both["entry"].append(history(1)["entry"][0])
    [body] = store(db, both)
    relay(db, client, relay_settings(settings, provider.url, relay_fields="messages"))
    assert [g.body for g in provider.accepted()] == [body]


def test_a_body_that_is_no_meta_delivery_is_passed_over_by_a_field_filter(
    db: Database, settings: Settings, provider: ProviderReceiver, client: Receiver
) -> None:
    """A signed body with no fields cannot be chosen by one; without a filter it goes as is."""
    raw, headers = signed(b"{broken")
    with db.session() as session:
        receive(session, Received(raw, headers["X-Hub-Signature-256"], "text/plain"))
    relay(db, client, relay_settings(settings, provider.url, relay_fields="messages"))
    assert provider.requests == []
    with db.session() as session:
        session.execute(update(FeedCursor).values(tx=0, event_id=0))
    relay(db, client, relay_settings(settings, provider.url))
    [got] = provider.accepted()
    assert (got.body, got.headers["content-type"]) == (raw, "text/plain")


def test_a_delivery_stored_without_its_signature_is_never_sent(
    db: Database, settings: Settings, provider: ProviderReceiver, client: Receiver
) -> None:
    """Rows stored before signatures were kept cannot be verified by the receiver: skipped."""
    with db.session() as session:
        receive(session, signed(message(1))[0])
    [kept] = store(db, message(2))
    relay(db, client, relay_settings(settings, provider.url))
    assert [g.body for g in provider.accepted()] == [kept]


def test_a_refused_delivery_holds_back_the_later_ones_until_it_is_taken(
    db: Database, settings: Settings, client: Receiver
) -> None:
    """A 5xx stops the run at that delivery; the retry after the backoff resumes in order."""
    with ProviderReceiver(statuses=[503]) as provider:
        receiver = Receiver(provider.url, timeout=5)
        bodies = store(db, message(1), message(2), message(3))
        config = relay_settings(settings, provider.url)
        with freeze_time(T0) as clock:
            assert relay(db, receiver, config) == "failed"
            assert (cursor(db).event_id, cursor(db).attempts) == (0, 1)
            assert "HTTP 503" in (cursor(db).last_error or "")
            assert relay(db, receiver, config) == "waiting"  # 1 s backoff not over
            clock.tick(timedelta(seconds=1.5))
            assert relay(db, receiver, config) == "caught_up"
        receiver.close()
        assert [g.body for g in provider.requests] == [bodies[0], *bodies]
        assert (cursor(db).attempts, cursor(db).last_error) == (0, None)


def test_failures_past_the_attempt_budget_mark_the_relay_failing_with_an_alert(
    db: Database, settings: Settings
) -> None:
    """After ``relay_max_attempts`` refusals the relay is failing, raises ``relay_failing``,
    and is retried every ``relay_failing_retry_seconds``; recovery closes the alert."""
    config_values = {"relay_max_attempts": 3, "relay_failing_retry_seconds": 30}
    with ProviderReceiver(statuses=[500, 500, 500, 500]) as provider:
        receiver = Receiver(provider.url, timeout=5)
        config = relay_settings(settings, provider.url, **config_values)
        [body] = store(db, message(1))
        with freeze_time(T0) as clock:
            for wait in (0, 1, 2):
                clock.tick(timedelta(seconds=wait))
                assert relay(db, receiver, config) == "failed"
            state = cursor(db)
            assert (state.attempts, state.failing_since) == (3, T0 + timedelta(seconds=3))
            assert next_attempt_at(state, config) == T0 + timedelta(seconds=33)
            with db.sessionmaker() as session:
                [alert] = session.scalars(select(Alert).where(Alert.kind == ALERT)).all()
                assert alert.onboarding_id is None
                assert alert.severity == "error"
                assert "inbox delivery 1" in alert.message
            clock.tick(timedelta(seconds=29))
            assert relay(db, receiver, config) == "waiting"
            clock.tick(timedelta(seconds=1))
            assert relay(db, receiver, config) == "failed"  # the fourth 500
            clock.tick(timedelta(seconds=30))
            assert relay(db, receiver, config) == "caught_up"
        receiver.close()
        assert provider.accepted()[-1].body == body
        assert cursor(db).failing_since is None
        with db.sessionmaker() as session:
            alert = session.scalars(select(Alert).where(Alert.kind == ALERT)).one()
            assert alert.acknowledged_at is not None


def test_an_unreachable_receiver_is_a_failed_attempt(db: Database, settings: Settings) -> None:
    """No one listening is a failure like a 5xx: counted, the delivery kept for the retry."""
    with ProviderReceiver() as gone:
        url = gone.url
    receiver = Receiver(url, timeout=2)
    store(db, message(1))
    assert relay(db, receiver, relay_settings(settings, url)) == "failed"
    receiver.close()
    assert cursor(db).attempts == 1
    assert cursor(db).event_id == 0


def test_the_relay_resumes_from_its_cursor_after_a_restart(
    db: Database, settings: Settings, provider: ProviderReceiver
) -> None:
    """A new process (new engine, new client) continues after the last delivery forwarded."""
    config = relay_settings(settings, provider.url, relay_batch_size=1)
    store(db, message(1), message(2))
    first = Receiver(provider.url)
    assert relay(db, first, config, max_deliveries=1) == "budget"
    first.close()
    assert len(provider.requests) == 1
    restarted_db = Database(db.url)
    second = Receiver(provider.url)
    relay(restarted_db, second, config)
    second.close()
    restarted_db.dispose()
    assert [g.body for g in provider.requests] == [signed(message(n))[0] for n in (1, 2)]


def test_a_relay_started_at_latest_forwards_only_what_comes_next(
    db: Database, settings: Settings, provider: ProviderReceiver, client: Receiver
) -> None:
    """``relay_start=latest``: deliveries stored before the relay's first run are not sent."""
    config = relay_settings(settings, provider.url, relay_start="latest")
    store(db, message(1))
    relay(db, client, config)
    [new] = store(db, message(2))
    relay(db, client, config)
    assert [g.body for g in provider.accepted()] == [new]


def test_the_intake_keeps_signature_and_content_type_as_received(db: Database) -> None:
    """One body sent twice is stored once, with the headers of its first arrival."""
    body, headers = signed(message(1))
    with db.session() as session:
        receive_many(
            session,
            [
                Received(body, headers["X-Hub-Signature-256"], "application/json"),
                Received(body, None, None),
            ],
        )
    with db.sessionmaker() as session:
        row = session.scalars(select(InboxDelivery)).one()
    assert (row.signature, row.content_type) == (headers["X-Hub-Signature-256"], "application/json")


def test_a_header_longer_than_its_column_is_not_kept(db: Database) -> None:
    """A content type of 200 characters is not cut to fit: it is not kept at all."""
    body, headers = signed(message(1))
    with db.session() as session:
        receive(session, Received(body, headers["X-Hub-Signature-256"], "a/" + "b" * 200))
    with db.sessionmaker() as session:
        assert session.scalars(select(InboxDelivery.content_type)).one() is None


@pytest.mark.parametrize("url", ["ftp://provider.example/x", "provider.example/x", "http://"])
def test_a_relay_url_that_is_no_http_url_is_refused_at_start(url: str) -> None:
    """``COEX_RELAY_URL`` must be an http(s) URL with a host."""
    with pytest.raises(ValueError, match="relay_url"):
        make_settings(relay_url=url)


def test_relay_fields_must_be_webhook_field_names() -> None:
    """A field list with something that is no field name is refused; spaces are trimmed."""
    with pytest.raises(ValueError, match="relay_fields"):
        make_settings(relay_fields="messages,history;drop")
    assert make_settings(relay_fields=" messages , history ").relay_field_set == {
        "messages",
        "history",
    }
    assert make_settings().relay_field_set is None


def test_the_ingest_worker_reading_a_delivery_does_not_change_its_place(
    db: Database, settings: Settings, provider: ProviderReceiver, client: Receiver
) -> None:
    """Processing (which updates the row) leaves the delivery where it was in relay order."""
    bodies = store(db, message(1), message(2))
    with db.session() as session:
        dispatch.process_delivery(session, 2, settings=settings)
    relay(db, client, relay_settings(settings, provider.url))
    assert [g.body for g in provider.accepted()] == bodies


def test_status_shows_the_held_delivery_the_error_and_the_backlog(
    db: Database, settings: Settings
) -> None:
    """An operator sees where the relay stands, and no credential of the receiver's URL."""
    with ProviderReceiver(status=502) as provider:
        url = provider.url.replace("http://", "http://user:secret@") + "?token=secret"
        receiver = Receiver(url, timeout=5)
        config = relay_settings(settings, url, relay_fields="messages")
        store(db, message(1), message(2))
        with freeze_time(T0):
            relay(db, receiver, config)
            with db.sessionmaker() as session:
                state = status(session, config)
        receiver.close()
    assert state["enabled"] is True
    assert "secret" not in str(state)
    assert state["fields"] == ["messages"]
    assert (state["cursor"], state["backlog"], state["attempts"]) == (
        {"tx": 0, "inbox_id": 0},
        2,
        1,
    )
    assert state["next_attempt_at"] == (T0 + timedelta(seconds=1)).isoformat()
    assert "HTTP 502" in state["last_error"]


def test_a_step_holds_a_few_mib_of_bodies_and_the_next_step_takes_the_rest(
    db: Database, settings: Settings, provider: ProviderReceiver, client: Receiver
) -> None:
    """Large deliveries are forwarded over several steps, in order, none left behind."""
    big = [message(n) for n in range(3)]
    for n, payload in enumerate(big):
        payload["entry"][0]["changes"][0]["value"]["padding"] = "x" * (3 * 1024 * 1024) + str(n)
    bodies = store(db, *big)
    with capture_logs() as logs:
        relay(db, client, relay_settings(settings, provider.url))
    assert [g.body for g in provider.accepted()] == bodies
    assert [e["forwarded"] for e in logs if e["event"] == "relay_step"] == [1, 2, 3]


def test_a_delivery_whose_body_was_dropped_is_passed_over(
    db: Database, settings: Settings, provider: ProviderReceiver, client: Receiver
) -> None:
    """A row emptied by erasure (or retention) before the relay took it is not forwarded
    empty: the relay passes over it and forwards the rest."""
    first, _, third = store(db, message(1), message(2), message(3))
    with db.session() as session:
        second_id = sorted(session.scalars(select(InboxDelivery.id)))[1]
        session.execute(
            update(InboxDelivery)
            .where(InboxDelivery.id == second_id)
            .values(body=b"", body_dropped_at=T0)
        )
    assert relay(db, client, relay_settings(settings, provider.url)) == "caught_up"
    assert [g.body for g in provider.accepted()] == [first, third]
