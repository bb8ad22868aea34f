"""The operator CLI: listings with --json, show, retry, alerts, clear refusals."""

from __future__ import annotations

import hashlib
import json
from importlib.metadata import version as package_version
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from typer.testing import CliRunner

from models import Onboarding, OnboardingState, SyncType
from models.crypto import TokenCipher
from onboarding import runtime
from onboarding.cli import app
from onboarding.ingest.dispatch import process_delivery
from onboarding.ingest.identity import Identity
from onboarding.ingest.inbox import receive
from onboarding.ingest.peers import resolve
from onboarding.media_store import MediaStore
from onboarding.runtime import Runtime
from onboarding.sandbox import Sandbox
from onboarding.web import create_app
from tests.conftest import ADMIN_TOKEN, SIGNUP_TOKEN
from tests.onboarding.read.helpers import message, onboarding

runner = CliRunner()


def test_list_json_filters_by_state(rt: Runtime, onboarding_id: int) -> None:
    """`onboardings list --state syncing --json` lists the onboarding; another state does not."""
    result = runner.invoke(app, ["onboardings", "list", "--state", "syncing", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [r["id"] for r in rows] == [onboarding_id]
    result = runner.invoke(app, ["onboardings", "list", "--state", "failed", "--json"])
    assert json.loads(result.stdout) == []


def test_unknown_state_is_a_usage_error(rt: Runtime) -> None:
    """A state that does not exist is refused with exit code 2 and the known states."""
    result = runner.invoke(app, ["onboardings", "list", "--state", "nope"])
    assert result.exit_code == 2
    assert "syncing" in result.output


def test_show_json_matches_the_status_api(rt: Runtime, onboarding_id: int) -> None:
    """`show --json` carries the contract fields and equals GET /onboardings/{id}."""
    result = runner.invoke(app, ["onboardings", "show", str(onboarding_id), "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    for key in (
        "id",
        "waba_id",
        "phone_number_id",
        "display_phone_number",
        "region",
        "state",
        "signup_completed_at",
        "sync_deadline_at",
        "sync",
        "timeline",
    ):
        assert key in shown
    assert set(shown["sync"]) == {"contacts", "history"}
    assert {"state", "request_id"} <= set(shown["sync"]["history"])
    assert {"at", "from", "to", "cause"} == set(shown["timeline"][0])
    with TestClient(create_app(rt)) as client:
        api = client.get(
            f"/onboardings/{onboarding_id}", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        ).json()
    shown.pop("sync_window_seconds_left")
    api.pop("sync_window_seconds_left")
    assert api == shown


def test_show_table_prints_the_timeline(rt: Runtime, onboarding_id: int) -> None:
    """Without --json, show prints the syncs and the timeline for a person."""
    result = runner.invoke(app, ["onboardings", "show", str(onboarding_id)])
    assert result.exit_code == 0
    assert "timeline" in result.output
    assert "token_exchanged" in result.output


def test_show_counts_peers_with_and_without_a_phone_number(rt: Runtime, onboarding_id: int) -> None:
    """`show` prints, and `show --json` returns, the peers with a number, without one (BSUID
    only) and with a username."""
    with rt.db.sessionmaker() as session:
        onboarding = session.get_one(Onboarding, onboarding_id)
        resolve(
            session,
            onboarding.id,
            [
                Identity(phone="16505550000", user_id="US.1234567890"),
                Identity(user_id="US.13491208655302741918", username="realsheenanelson"),
            ],
        )
        session.commit()
    result = runner.invoke(app, ["onboardings", "show", str(onboarding_id), "--json"])
    assert json.loads(result.stdout)["peers"] == {
        "total": 2,
        "with_phone": 1,
        "without_phone": 1,
        "with_username": 1,
    }
    result = runner.invoke(app, ["onboardings", "show", str(onboarding_id)])
    assert "peers 2: 1 with a phone number, 1 without (BSUID only), 1 with a username" in " ".join(
        result.output.split()
    )


def test_show_unknown_id_fails_clearly(rt: Runtime) -> None:
    """An unknown id exits 1 with a message; a non-number is a usage error."""
    result = runner.invoke(app, ["onboardings", "show", "999"])
    assert result.exit_code == 1
    assert "no onboarding 999" in result.output
    assert runner.invoke(app, ["onboardings", "show", "abc"]).exit_code == 2


def test_retry_refuses_when_nothing_is_left(rt: Runtime, onboarding_id: int) -> None:
    """Retrying an onboarding whose syncs are both requested is refused with the reason."""
    result = runner.invoke(app, ["onboardings", "retry", str(onboarding_id)])
    assert result.exit_code == 1
    assert "nothing to retry" in result.output


def test_retry_force_probes_an_unknown_sync(
    rt: Runtime, sandbox: Sandbox, onboarding_id: int
) -> None:
    """`retry --force` on a sync whose answer was lost probes Meta, which confirms it."""
    with rt.db.session() as session:
        onboarding = session.get_one(Onboarding, onboarding_id)
        onboarding.sync(SyncType.HISTORY).state = "unknown"
        onboarding.sync(SyncType.HISTORY).request_id = None
    refused = runner.invoke(app, ["onboardings", "retry", str(onboarding_id)])
    assert refused.exit_code == 1
    assert "--force" in refused.output
    result = runner.invoke(app, ["onboardings", "retry", str(onboarding_id), "--force"])
    assert result.exit_code == 0, result.output
    with rt.db.sessionmaker() as session:
        onboarding = session.get_one(Onboarding, onboarding_id)
        assert onboarding.sync(SyncType.HISTORY).state == "requested"
        assert onboarding.state == OnboardingState.SYNCING
    assert [s.sync_type for s in sandbox.accepted_syncs()].count("history") == 1


def test_alerts_list_json(rt: Runtime, sandbox: Sandbox) -> None:
    """An alert raised by the pipeline (a code someone else used first) is listed as JSON."""
    business = sandbox.add_business("Lucky Shrub", 1)
    signup = sandbox.complete_signup(business.waba_id)
    rt.graph.exchange_code(signup.code)
    with TestClient(create_app(rt)) as client:
        client.post(
            "/signup",
            json={"code": signup.code, "session": dict(signup.session)},
            headers={"Authorization": f"Bearer {SIGNUP_TOKEN}"},
        )
    result = runner.invoke(app, ["alerts", "list", "--json"])
    assert result.exit_code == 0
    assert [a["kind"] for a in json.loads(result.stdout)] == ["code_expired"]


def test_rotate_keys_reencrypts_with_the_newest_key(rt: Runtime, onboarding_id: int) -> None:
    """After rotation every stored token decrypts with the new key alone."""
    new_key = TokenCipher.generate_key()
    keys = f"{new_key},{rt.settings.token_keys.get_secret_value()}"
    rotated = Runtime(
        settings=rt.settings.model_copy(update={"token_keys": SecretStr(keys)}),
        db=rt.db,
        cipher=TokenCipher(keys),
        graph=rt.graph,
    )
    runtime.install(rotated)
    result = runner.invoke(app, ["db", "rotate-keys"])
    assert result.exit_code == 0, result.output
    with rt.db.sessionmaker() as session:
        onboarding = session.get_one(Onboarding, onboarding_id)
        assert TokenCipher(new_key).decrypt(onboarding.token_ciphertext or b"").startswith("EAAG")


def test_missing_configuration_is_a_clear_error() -> None:
    """Without app id, secret and token keys the CLI says which settings are missing."""
    previous = runtime.install(None)
    try:
        result = runner.invoke(app, ["onboardings", "list"], env={"COEX_META_APP_ID": ""})
    finally:
        runtime.install(previous)
    assert result.exit_code == 2
    assert "COEX_TOKEN_KEYS" in result.output


def test_inbox_list_and_replay(rt: Runtime, onboarding_id: int) -> None:
    """Quarantined deliveries are listed with their reason and can be replayed by status."""
    with rt.db.session() as session:
        intake = receive(session, b"{broken")
        process_delivery(session, intake.delivery_id, settings=rt.settings)
    listed = runner.invoke(app, ["inbox", "list", "--status", "quarantined", "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert row["id"] == intake.delivery_id
    assert "not JSON" in row["last_error"]
    replayed = runner.invoke(app, ["inbox", "replay", "--status", "quarantined"])
    assert replayed.exit_code == 0, replayed.output
    assert "replaying 1" in replayed.output
    again = json.loads(runner.invoke(app, ["inbox", "list", "--json"]).stdout)
    assert again[0]["status"] == "quarantined"  # replayed, and still not a Meta delivery
    assert again[0]["attempts"] == 2


def test_inbox_list_not_applied_shows_account_updates_for_other_wabas(
    rt: Runtime, onboarding_id: int
) -> None:
    """``inbox list --not-applied`` lists processed deliveries no onboarding took, with the
    note saying why, and leaves out those applied."""
    value = {"event": "PARTNER_ADDED", "waba_info": {"waba_id": "495709166956424"}}
    change = {"field": "account_update", "value": value}
    entry = {"id": "102290129340398", "time": 1_800_000_000, "changes": [change]}
    body = json.dumps({"object": "whatsapp_business_account", "entry": [entry]}).encode()
    settled = rt.settings.model_copy(update={"account_update_signup_grace_seconds": 0})
    with rt.db.session() as session:
        intake = receive(session, body)
        process_delivery(session, intake.delivery_id, settings=settled)
    listed = runner.invoke(app, ["inbox", "list", "--not-applied", "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.stdout)
    assert row["id"] == intake.delivery_id
    assert row["summary"]["account_update"]["not_applied"] == 1
    assert "PARTNER_ADDED for WABA 495709166956424" in row["summary"]["account_update"]["notes"][0]
    assert runner.invoke(app, ["inbox", "list", "--not-applied"]).exit_code == 0


def test_inbox_replay_needs_exactly_one_selector(rt: Runtime) -> None:
    """Replay without an id or status, or with both, is a usage error."""
    assert runner.invoke(app, ["inbox", "replay"]).exit_code == 2
    assert runner.invoke(app, ["inbox", "replay", "1", "--status", "pending"]).exit_code == 2
    assert runner.invoke(app, ["inbox", "replay", "--status", "bogus"]).exit_code == 2
    assert runner.invoke(app, ["inbox", "replay", "999"]).exit_code == 1


def test_signups_list_json_shows_recorded_signups(rt: Runtime, sandbox: Sandbox) -> None:
    """`signups list --json` lists a not-onboarded finish with its ids and an abandoned signup."""
    business = sandbox.add_business("Lucky Shrub", ["+1 650 555 1234"])
    other = sandbox.finish_other_flow(business.waba_id, "FINISH_OBO_MIGRATION")
    with TestClient(create_app(rt)) as client:
        for body in ({"code": "AQx", "session": other}, {"session": sandbox.fail_signup()}):
            client.post("/signup", json=body, headers={"Authorization": f"Bearer {SIGNUP_TOKEN}"})

    result = runner.invoke(app, ["signups", "list", "--json"])

    assert result.exit_code == 0, result.output
    rows = {r["kind"]: r for r in json.loads(result.stdout)}
    assert rows["not_onboarded"]["event"] == "FINISH_OBO_MIGRATION"
    assert rows["not_onboarded"]["waba_id"] == business.waba_id
    assert rows["not_onboarded"]["phone_number_id"] == business.phone_number_ids[0]
    assert rows["abandoned"]["error_code"] == "524126"
    abandoned = runner.invoke(app, ["signups", "list", "--kind", "abandoned", "--json"])
    assert [r["kind"] for r in json.loads(abandoned.stdout)] == ["abandoned"]


def test_signups_list_table_names_the_event(rt: Runtime) -> None:
    """`signups list` without --json prints a table naming each event."""
    with TestClient(create_app(rt)) as client:
        client.post(
            "/signup",
            json={"session": Sandbox.cancel_signup("PERMISSIONS")},
            headers={"Authorization": f"Bearer {SIGNUP_TOKEN}"},
        )

    result = runner.invoke(app, ["signups", "list"])

    assert result.exit_code == 0, result.output
    assert "CANCEL" in result.stdout
    assert "PERMISSIONS" in result.stdout


def test_signups_list_unknown_kind_is_a_usage_error(rt: Runtime) -> None:
    """A kind that does not exist is refused with exit code 2 and the known kinds."""
    result = runner.invoke(app, ["signups", "list", "--kind", "finished"])

    assert result.exit_code == 2
    assert "not_onboarded" in result.output


def test_reconcile_one_prints_each_check_as_json(
    rt: Runtime, sandbox: Sandbox, onboarding_id: int
) -> None:
    """`onboardings reconcile ID --json` reports the three checks; a drift is visible."""
    with rt.db.session() as session:
        waba_id = session.get_one(Onboarding, onboarding_id).waba_id
    sandbox.unsubscribe(waba_id)

    result = runner.invoke(app, ["onboardings", "reconcile", str(onboarding_id), "--json"])

    assert result.exit_code == 0, result.output
    [report] = json.loads(result.output)
    verdicts = {f["check"]: f["verdict"] for f in report["findings"]}
    assert verdicts == {"token": "ok", "number": "ok", "subscription": "drift"}


def test_reconcile_all_covers_every_active_onboarding(rt: Runtime, onboarding_id: int) -> None:
    """`onboardings reconcile --all` reconciles the active onboardings and prints a table."""
    result = runner.invoke(app, ["onboardings", "reconcile", "--all"])

    assert result.exit_code == 0, result.output
    assert "subscription" in result.output
    with rt.db.session() as session:
        assert session.get_one(Onboarding, onboarding_id).reconciled_at is not None


def test_reconcile_needs_an_id_or_all(rt: Runtime) -> None:
    """Neither an id nor --all (or both) is a usage error."""
    assert runner.invoke(app, ["onboardings", "reconcile"]).exit_code == 2
    assert runner.invoke(app, ["onboardings", "reconcile", "1", "--all"]).exit_code == 2


def test_reconcile_unknown_onboarding_fails(rt: Runtime) -> None:
    """An id that is no active onboarding is reported skipped with exit code 1."""
    result = runner.invoke(app, ["onboardings", "reconcile", "999", "--json"])

    assert result.exit_code == 1
    assert json.loads(result.output)[0]["skipped"] == "no such onboarding"


def test_version_prints_the_installed_version() -> None:
    """``coexist --version`` names the installed package's version and exits 0."""
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"coexist {package_version('coexist')}"


def test_relay_status_json_without_a_relay(rt: Runtime) -> None:
    """``relay status`` says the relay is off and how many stored deliveries it would have."""
    with rt.db.session() as session:
        receive(session, b'{"object":"whatsapp_business_account","entry":[]}')
    result = runner.invoke(app, ["relay", "status", "--json"])
    assert result.exit_code == 0
    state = json.loads(result.stdout)
    assert (state["enabled"], state["backlog"], state["fields"]) == (False, 1, "every field")


# -- feed push ---------------------------------------------------------------------------------


def _feed_events(rt: Runtime, n: int) -> list[str]:
    """``n`` events written to the feed; their cursors."""
    from onboarding.feed.events import EventType, emit_for  # noqa: PLC0415
    from onboarding.feed.log import Cursor, read  # noqa: PLC0415

    with rt.db.session() as session:
        for i in range(n):
            emit_for(session, EventType.SYNC_PROGRESS, None, {"n": i})
    with rt.db.sessionmaker() as session:
        return [e["cursor"] for e in read(session, Cursor(), 100).events]


def test_feed_status_json_shows_the_push_cursor_and_lag(rt: Runtime) -> None:
    """`feed status --json` reports the cursor, the lag in events and the failing state."""
    _feed_events(rt, 3)
    result = runner.invoke(app, ["feed", "status", "--json"])
    assert result.exit_code == 0, result.output
    state = json.loads(result.stdout)
    assert (state["cursor"], state["lag_events"], state["failing"]) == ("0-0", 3, False)


def test_feed_rewind_moves_the_push_cursor(rt: Runtime) -> None:
    """`feed rewind --to CURSOR` moves delivery after that event; status then shows it."""
    cursors = _feed_events(rt, 3)
    result = runner.invoke(app, ["feed", "rewind", "--to", cursors[1]])
    assert result.exit_code == 0, result.output
    assert "1 events to deliver" in result.output
    state = json.loads(runner.invoke(app, ["feed", "status", "--json"]).stdout)
    assert (state["cursor"], state["lag_events"]) == (cursors[1], 1)


@pytest.mark.parametrize(
    ("to", "code", "message"),
    [("yesterday", 2, "not a feed cursor"), ("0-999", 1, "no event of the feed is at 0-999")],
)
def test_feed_rewind_refuses_a_bad_place(rt: Runtime, to: str, code: int, message: str) -> None:
    """A malformed cursor is a usage error (2); a cursor no event has is refused (1)."""
    _feed_events(rt, 1)
    result = runner.invoke(app, ["feed", "rewind", "--to", to])
    assert result.exit_code == code
    assert message in result.output


# -- media check ---------------------------------------------------------------------------


def _stored_media(rt: Runtime, sandbox: Sandbox, content: bytes, size: int) -> str:
    """A message holding ``content`` as stored media of ``size`` bytes; its digest."""
    digest = hashlib.sha256(content).hexdigest()
    with rt.db.session() as session:
        oid = onboarding(session, sandbox, rt.settings, rt.cipher)
        message(
            session,
            oid,
            None,
            f"wamid.{digest[:8]}",
            1,
            type="image",
            media_state="stored",
            media_sha256=digest,
            media_size=size,
        )
    return digest


def test_media_check_passes_when_the_store_holds_the_stored_media(
    rt: Runtime, sandbox: Sandbox, media_store: MediaStore
) -> None:
    """A working store and every sampled object present: exit 0, the probe gone again."""
    media_store.put(b"a photo")
    _stored_media(rt, sandbox, b"a photo", 7)
    result = runner.invoke(app, ["media", "check", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["round_trip"], report["checked"], report["problems"]) == ("ok", 1, [])


def test_media_check_names_missing_and_wrong_sized_objects(
    rt: Runtime, sandbox: Sandbox, media_store: MediaStore
) -> None:
    """An object that is gone, or not the size its message recorded, is listed; exit 1."""
    gone = _stored_media(rt, sandbox, b"gone", 4)
    media_store.put(b"short")
    short = _stored_media(rt, sandbox, b"short", 500)
    result = runner.invoke(app, ["media", "check", "--json"])
    assert result.exit_code == 1
    problems = {p["sha256"]: p["problem"] for p in json.loads(result.stdout)["problems"]}
    assert problems == {gone: "missing", short: "5 bytes, the message says 500"}


def test_media_check_fails_when_the_store_cannot_be_written(rt: Runtime, tmp_path: Path) -> None:
    """A store that cannot take the probe: exit 1 with the reason."""
    (tmp_path / "not-a-dir").write_bytes(b"")
    rt.settings.media_store = str(tmp_path / "not-a-dir")
    result = runner.invoke(app, ["media", "check"])
    assert result.exit_code == 1
    assert "round trip: writing media failed" in result.output
