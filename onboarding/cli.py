"""Command-line interface (``coexist``): demo, migrations, sandbox and operator commands.

Every listing takes ``--json``. Exit codes: 0 done, 1 refused or failed, 2 bad arguments.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib.metadata import version as package_version
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from models import (
    Onboarding,
)
from models.crypto import TokenKeyError
from onboarding import operations, reconcile
from onboarding import runtime as runtime_module
from onboarding.connect import service as connect_service
from onboarding.connect.links import LinkError, parse_lifetime
from onboarding.feed import push as feed_push
from onboarding.feed import tail
from onboarding.feed.events import EventType
from onboarding.feed.log import MAX_LIMIT, Cursor, CursorError
from onboarding.media_store import check as media_store_check
from onboarding.media_store import store_for
from onboarding.relay import run as relay_run
from onboarding.rights.export import write_archive
from onboarding.signup.records import KINDS, list_recorded
from onboarding.views import (
    iso,
    signup_record_json,
)
from tasks.operator import erase_onboarding, replay_deliveries, retry_onboarding

if TYPE_CHECKING:
    from onboarding.demo.follow_ups import BusinessFollowUps, Reminder

app = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__)
db_app = typer.Typer(no_args_is_help=True, help="Database migrations.")
onboardings_app = typer.Typer(no_args_is_help=True, help="Inspect and retry onboardings.")
alerts_app = typer.Typer(no_args_is_help=True, help="Operator alerts.")
inbox_app = typer.Typer(no_args_is_help=True, help="Stored webhook deliveries.")
followups_app = typer.Typer(no_args_is_help=True, help="Reminders and alerts for businesses.")
events_app = typer.Typer(no_args_is_help=True, help="The event feed (README, 'The event feed').")
signups_app = typer.Typer(
    no_args_is_help=True, help="Signups recorded without an onboarding (abandoned, other flows)."
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"coexist {package_version('coexist')}")
        raise typer.Exit


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Options every command shares."""


app.add_typer(db_app, name="db")
app.add_typer(onboardings_app, name="onboardings")
app.add_typer(alerts_app, name="alerts")
app.add_typer(inbox_app, name="inbox")
app.add_typer(followups_app, name="follow-ups")
app.add_typer(signups_app, name="signups")
app.add_typer(events_app, name="events")
relay_app = typer.Typer(no_args_is_help=True, help="The relay to the provider's webhook receiver.")
app.add_typer(relay_app, name="relay")
feed_app = typer.Typer(no_args_is_help=True, help="The event feed's push delivery.")
app.add_typer(feed_app, name="feed")
data_app = typer.Typer(no_args_is_help=True, help="The business's data: export and erasure.")
app.add_typer(data_app, name="data")
media_app = typer.Typer(no_args_is_help=True, help="The media store (README, 'Media storage').")
app.add_typer(media_app, name="media")

console = Console()
err = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(value, indent=2, sort_keys=False) + "\n")


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)


@contextmanager
def _operator() -> Iterator[None]:
    """An operator's request the service layer refused: its message, exit 2 if the request was
    malformed, else 1."""
    try:
        yield
    except operations.OperatorError as exc:
        raise _fail(str(exc), 2 if isinstance(exc, operations.InvalidRequestError) else 1) from None


def _runtime() -> runtime_module.Runtime:
    try:
        return runtime_module.current()
    except (runtime_module.ConfigurationError, TokenKeyError) as exc:
        raise _fail(str(exc), 2) from None


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply database migrations (the ``release`` process)."""
    rt = _runtime()
    rt.db.upgrade(revision)
    console.print(f"database at revision {rt.db.current_revision()}")


@db_app.command("rotate-keys")
def db_rotate_keys() -> None:
    """Re-encrypt stored tokens and codes with the newest key in COEX_TOKEN_KEYS.

    Run after putting a new key first; once it reports done, the old keys can be removed.
    """
    rt = _runtime()
    rotated = 0
    with rt.db.session() as session:
        for onboarding in session.scalars(select(Onboarding)).yield_per(500):
            if onboarding.token_ciphertext:
                onboarding.token_ciphertext = rt.cipher.rotate(onboarding.token_ciphertext)
                rotated += 1
            if onboarding.code_ciphertext:
                onboarding.code_ciphertext = rt.cipher.rotate(onboarding.code_ciphertext)
                rotated += 1
    console.print(f"re-encrypted {rotated} secrets with the newest key")


@onboardings_app.command("list")
def onboardings_list(
    state: Annotated[str | None, typer.Option(help="Only onboardings in this state.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    as_json: JsonFlag = False,
) -> None:
    """List onboardings, newest first."""
    rt = _runtime()
    with rt.db.sessionmaker() as session, _operator():
        rows = operations.list_onboardings(session, state=state, limit=limit)
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "state", "waba", "number", "region", "contacts", "history", "deadline")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["state"],
            r["waba_id"],
            r["display_phone_number"] or r["phone_number_id"] or "-",
            r["region"] or "-",
            r["contacts_sync"],
            r["history_sync"],
            r["sync_deadline_at"],
        )
    console.print(table)


@onboardings_app.command("show")
def onboardings_show(onboarding_id: int, as_json: JsonFlag = False) -> None:
    """Show one onboarding: number, syncs, alerts and its timeline."""
    rt = _runtime()
    with rt.db.sessionmaker() as session, _operator():
        detail = operations.show_onboarding(session, onboarding_id)
    if as_json:
        _print_json(detail)
        return
    print_detail(detail)


def print_detail(detail: dict[str, Any]) -> None:
    console.print(
        f"[bold]onboarding {detail['id']}[/bold]  state [bold]{detail['state']}[/bold]  "
        f"WABA {detail['waba_id']}  number {detail['display_phone_number'] or '-'} "
        f"({detail['phone_number_id'] or '-'})  region {detail['region'] or '-'}"
    )
    console.print(
        f"signup {detail['signup_completed_at']}  sync deadline {detail['sync_deadline_at']}"
        f"  ({detail['sync_window_seconds_left'] // 3600} h left)"
    )
    syncs = Table("sync", "state", "request_id", "attempts", "last error")
    for label, s in detail["sync"].items():
        syncs.add_row(
            label, s["state"], s["request_id"] or "-", str(s["attempts"]), s["last_error"] or ""
        )
    console.print(syncs)
    peers = detail["peers"]
    console.print(
        f"peers {peers['total']}: {peers['with_phone']} with a phone number, "
        f"{peers['without_phone']} without (BSUID only), {peers['with_username']} with a username"
    )
    timeline = Table("at", "from", "to", "cause", title="timeline")
    for t in detail["timeline"]:
        timeline.add_row(t["at"], t["from"] or "-", t["to"], t["cause"])
    console.print(timeline)
    if detail["alerts"]:
        alerts = Table("kind", "severity", "message", title="alerts")
        for a in detail["alerts"]:
            alerts.add_row(a["kind"], a["severity"], a["message"])
        console.print(alerts)


@onboardings_app.command("retry")
def onboardings_retry(
    onboarding_id: int,
    force: Annotated[
        bool, typer.Option("--force", help="Probe a sync whose earlier outcome was lost.")
    ] = False,
    phone_number_id: Annotated[
        str | None, typer.Option(help="Use this number when the WABA has several.")
    ] = None,
) -> None:
    """Resume a failed or stuck onboarding at the step it stopped."""
    rt = _runtime()
    with rt.db.sessionmaker() as session, _operator():
        plan = retry_onboarding(
            session,
            onboarding_id,
            settings=rt.settings,
            force=force,
            phone_number_id=phone_number_id,
        )
    console.print(f"onboarding {onboarding_id}: {plan.message}")


@onboardings_app.command("reconcile")
def onboardings_reconcile(
    onboarding_id: Annotated[int | None, typer.Argument(help="One onboarding.")] = None,
    every: Annotated[
        bool, typer.Option("--all", help="Every active onboarding (COEX_RECONCILE_MAX_PER_RUN).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Re-read from Meta what a missed webhook would have told (number, subscription, token)."""
    if (onboarding_id is None) == (not every):
        raise _fail("give an onboarding id or --all, not both", 2)
    rt = _runtime()
    reports: list[reconcile.Report] = []
    with rt.db.sessionmaker() as session:
        if onboarding_id is not None:
            ids = [onboarding_id]
        else:
            ids = reconcile.active(session, limit=rt.settings.reconcile_max_per_run)
        for batch in reconcile.batches(ids, rt.settings.reconcile_batch_size):
            reports += reconcile.reconcile_batch(
                session, rt.graph, settings=rt.settings, cipher=rt.cipher, onboarding_ids=batch
            )
    if as_json:
        _print_json([r.to_json() for r in reports])
    else:
        table = Table("onboarding", "check", "verdict", "detail")
        for report in reports:
            if report.skipped:
                table.add_row(str(report.onboarding_id), "-", "skipped", report.skipped)
            if report.error:
                table.add_row(str(report.onboarding_id), "-", "error", report.error)
            for f in report.findings:
                table.add_row(str(report.onboarding_id), f.check, f.verdict.value, f.detail)
        console.print(table)
    if any(r.error or (onboarding_id is not None and r.skipped) for r in reports):
        raise typer.Exit(1)


@alerts_app.command("list")
def alerts_list(
    onboarding_id: Annotated[int | None, typer.Option("--onboarding")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List alerts raised for operators (deadline near, window missed, failures)."""
    rt = _runtime()
    with rt.db.sessionmaker() as session, _operator():
        rows = operations.list_alerts(session, onboarding_id=onboarding_id)
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "onboarding", "kind", "severity", "raised", "message")
    for a in rows:
        table.add_row(
            str(a["id"]),
            str(a["onboarding_id"] or "-"),
            a["kind"],
            a["severity"],
            a["raised_at"],
            a["message"],
        )
    console.print(table)


@relay_app.command("status")
def relay_status(as_json: JsonFlag = False) -> None:
    """Where the relay stands: target, cursor, backlog, failures (README, "Where coexist sits")."""
    rt = _runtime()
    with rt.db.sessionmaker() as session:
        state = relay_run.status(session, rt.settings)
    if as_json:
        _print_json(state)
        return
    for name, value in state.items():
        console.print(f"{name}: {value}")


@media_app.command("check")
def media_check(
    sample: Annotated[
        int, typer.Option(min=0, max=100_000, help="Newest stored media to look for.")
    ] = 100,
    as_json: JsonFlag = False,
) -> None:
    """Put, read back and delete a probe in the media store, then check that the newest stored
    media is there with its size. Exit 1 on any problem."""
    rt = _runtime()
    with rt.db.sessionmaker() as session:
        report = media_store_check.check(session, store_for(rt.settings), sample=sample)
    if as_json:
        _print_json(report)
    else:
        console.print(f"store: {report['store']}")
        console.print(f"round trip: {report['round_trip']}")
        console.print(f"stored media checked: {report['checked']}")
        for item in report["problems"]:
            console.print(f"{item['sha256']} (message {item['message_id']}): {item['problem']}")
    if report["round_trip"] != "ok" or report["problems"]:
        raise typer.Exit(1)


@signups_app.command("list")
def signups_list(
    kind: Annotated[
        str | None, typer.Option(help="Only `abandoned` or `not_onboarded` signups.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    as_json: JsonFlag = False,
) -> None:
    """List signups that started no onboarding, newest first: abandoned, or not onboarded here."""
    if kind is not None and kind not in KINDS:
        raise _fail(f"unknown kind {kind!r}; known: {', '.join(KINDS)}", 2)
    rt = _runtime()
    with rt.db.sessionmaker() as session:
        rows = [signup_record_json(r) for r in list_recorded(session, kind=kind, limit=limit)]
    if as_json:
        _print_json(rows)
        return
    table = Table("kind", "id", "event", "received", "waba", "step / error", "session")
    for r in rows:
        table.add_row(
            r["kind"],
            str(r["id"]),
            r["event"],
            r["received_at"],
            r["waba_id"] or "-",
            r["current_step"] or r["error_code"] or "-",
            r["session_id"] or "-",
        )
    console.print(table)


@app.command("connect-link")
def connect_link(
    ref: Annotated[str, typer.Option("--ref", help="The provider's customer reference.")],
    expires: Annotated[str, typer.Option("--expires", help="30m, 12h, 7d (up to 90d).")] = "7d",
    as_json: JsonFlag = False,
) -> None:
    """Print an invitation link to the hosted signup page (README, "The hosted signup page")."""
    try:
        made = connect_service.create_link(_runtime().settings, ref, parse_lifetime(expires))
    except LinkError as exc:
        raise _fail(str(exc), 2) from None
    if as_json:
        expires_at = datetime.fromtimestamp(made.invitation.expires_at, UTC)
        _print_json({"url": made.url, "ref": ref, "expires_at": iso(expires_at)})
    else:
        sys.stdout.write(made.url + "\n")


@app.command("demo")
def demo(
    flaky: Annotated[
        bool, typer.Option("--flaky", help="Inject 5xx and dropped answers on smb_app_data.")
    ] = False,
    declined: Annotated[
        bool,
        typer.Option("--declined", help="The business has turned history sharing off."),
    ] = False,
    messages: Annotated[
        int,
        typer.Option("--messages", min=1, max=1_000_000, help="Messages in the chat history."),
    ] = 2_000,
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=1.0, help="Seconds to wait for the syncs and webhooks."),
    ] = 60.0,
    as_json: JsonFlag = False,
) -> None:
    """Run a whole onboarding against the built-in Meta sandbox, in-process, on SQLite.

    Signup, the sync trigger, then the contacts and chat history Meta's webhooks bring in,
    with progress per history phase and a summary. Exits 1 if the flow did not end as
    expected: synced, or history_declined with --declined.
    """
    from onboarding.demo.run import run_demo  # noqa: PLC0415 - starts servers
    from onboarding.demo.summary import summary_table  # noqa: PLC0415

    result = run_demo(
        console=err if as_json else console,
        flaky=flaky,
        declined=declined,
        messages=messages,
        timeout=timeout,
    )
    if as_json:
        _print_json(
            {
                "onboarding": result.onboarding,
                "accepted_syncs": result.accepted_syncs,
                "register_calls": result.register_calls,
                "seconds": result.seconds,
                "summary": result.summary.to_dict(),
                "feed": result.feed,
                "follow_ups": result.follow_ups.to_dict() if result.follow_ups else None,
            }
        )
    else:
        print_detail(result.onboarding)
        console.print(summary_table(result.summary))
        per_type: dict[str, int] = {}
        for accepted in result.accepted_syncs:
            per_type[accepted["sync_type"]] = per_type.get(accepted["sync_type"], 0) + 1
        console.print(
            f"sandbox accepted smb_app_data: {per_type or 'none'}; /register calls: "
            f"{result.register_calls}; {result.seconds} s"
        )
        if result.summary.declined and result.ok:
            console.print(
                "the business declined to share its chat history (error 2593109): "
                "contacts are in, no messages will come"
            )
        if result.feed is not None:
            feed = result.feed
            kinds = ", ".join(f"{k} {n}" for k, n in feed["events_by_type"].items())
            console.print(
                f"the provider's app received the feed: {feed['events']} events in "
                f"{feed['requests']} signed requests ({feed['signatures_verified']} signatures "
                f"verified, {feed['refused']} refused, {feed['duplicate_batches']} repeated), "
                f"{feed['messages']} messages; {kinds}"
            )
        if result.follow_ups is not None:
            _print_demo_follow_ups(result.follow_ups)
    if not result.ok:
        raise _fail("; ".join(result.problems))


def _print_demo_follow_ups(told: BusinessFollowUps) -> None:
    """What the demo's business is told and when (``coexist demo``)."""

    def when(reminders: Sequence[Reminder]) -> str:
        return "; ".join(
            f"{r.due_at:%Y-%m-%d %H:%M} UTC {r.status}"
            + (f" ({', '.join(r.sent_on)})" if r.sent_on else "")
            for r in reminders
        )

    console.print(f"the business is told: companion relink reminders {when(told.relink)}")
    console.print(f"app-open (heartbeat) reminders {when(told.heartbeat)}")
    for words in (told.first, told.heartbeat_text):
        if words is None:
            continue
        simulated = (
            " [dim](simulated: the clock set to its due date)[/dim]" if words.simulated else ""
        )
        console.print(f"[bold]{words.subject}[/bold], {words.at:%Y-%m-%d %H:%M} UTC{simulated}")
        console.print(words.text, markup=False)


@app.command("sandbox")
def sandbox(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535)] = 8081,
    app_id: Annotated[
        str | None, typer.Option(help="Meta app id (default COEX_META_APP_ID).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for reproducible ids and faults.")] = None,
) -> None:
    """Serve the Meta sandbox over HTTP (Graph API and the /_sandbox/ control API).

    The app secret is COEX_META_APP_SECRET; point workers at it with COEX_META_GRAPH_URL.
    """
    from config import get_settings  # noqa: PLC0415
    from onboarding.sandbox import Sandbox, serve_forever  # noqa: PLC0415

    settings = get_settings()
    secret = settings.meta_app_secret.get_secret_value()
    app_id = app_id or settings.meta_app_id
    if not app_id or not secret:
        raise _fail("set COEX_META_APP_ID and COEX_META_APP_SECRET (the sandbox's app)", 2)
    err.print(f"Meta sandbox for app {app_id} on http://{host}:{port} (control: /_sandbox)")
    serve_forever(Sandbox(app_id=app_id, app_secret=secret, seed=seed), host, port)


@inbox_app.command("list")
def inbox_list(
    status: Annotated[str | None, typer.Option(help="Only deliveries in this status.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    not_applied: Annotated[
        bool,
        typer.Option(
            "--not-applied",
            help="Only processed deliveries no onboarding took (e.g. account_update for a "
            "WABA coexist does not onboard); the summary says why.",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """List stored webhook deliveries, newest first."""
    rt = _runtime()
    with rt.db.sessionmaker() as session, _operator():
        rows = operations.list_inbox(session, status=status, not_applied=not_applied, limit=limit)
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "status", "received", "fields", "onboarding", "size", "attempts", "error")
    for r in rows:
        table.add_row(
            str(r["id"]),
            r["status"],
            r["received_at"],
            r["fields"] or "-",
            str(r["onboarding_id"] or "-"),
            str(r["size"]),
            str(r["attempts"]),
            (r["last_error"] or _first_note(r["summary"]))[:60],
        )
    console.print(table)


def _first_note(summary: dict[str, Any] | None) -> str:
    """The first note of a processed delivery's summary (why it was not applied...)."""
    for entry in (summary or {}).values():
        notes = entry.get("notes") if isinstance(entry, dict) else None
        if isinstance(notes, list) and notes:
            return str(notes[0])
    return ""


@inbox_app.command("replay")
def inbox_replay(
    delivery_id: Annotated[
        int | None, typer.Argument(help="One delivery to process again.")
    ] = None,
    status: Annotated[
        str | None, typer.Option(help="Replay every delivery in this status instead.")
    ] = None,
) -> None:
    """Process stored deliveries again (idempotent): one by id, or all in a status."""
    if (delivery_id is None) == (status is None):
        raise _fail("give either a delivery ID or --status", 2)
    rt = _runtime()
    with rt.db.sessionmaker() as session, _operator():
        ids = replay_deliveries(session, delivery_id=delivery_id, status=status)
    console.print(f"replaying {len(ids)} deliveries")


@data_app.command("export")
def data_export(
    onboarding_id: Annotated[int, typer.Argument(min=1, help="The onboarding to export.")],
    out: Annotated[
        Path,
        typer.Option("--out", dir_okay=False, help="The zip archive to write (replaced)."),
    ],
    as_json: JsonFlag = False,
) -> None:
    """Write everything coexist holds for one onboarding to one zip archive (README, "Data
    rights"): messages, contacts, peers, media with sha256 sums, timeline, follow-ups."""
    rt = _runtime()
    partial = out.with_name(f".{out.name}.partial")
    with rt.db.sessionmaker() as session, _operator():
        export = operations.export_onboarding(session, onboarding_id, store=store_for(rt.settings))
        try:
            with partial.open("wb") as file:
                written = write_archive(export, file)
            partial.replace(out)
        except BaseException:
            partial.unlink(missing_ok=True)  # nothing half-written is left behind
            raise
    counts = export.counts.to_dict()
    if as_json:
        _print_json({"file": str(out), "bytes": written, "counts": counts})
        return
    console.print(
        f"onboarding {onboarding_id} exported to {out} ({written} bytes): "
        f"{counts['messages']} messages, {counts['contacts']} contacts, {counts['peers']} peers, "
        f"{counts['media_files']} media files ({counts['media_missing']} missing), "
        f"{counts['timeline']} timeline entries, {counts['follow_ups']} follow-ups"
    )


@data_app.command("erase")
def data_erase(
    onboarding_id: Annotated[int, typer.Argument(min=1, help="The onboarding to erase.")],
    reason: Annotated[
        str | None, typer.Option("--reason", help="Why (kept in the erasure record).")
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Do not ask for confirmation (needed when not a TTY).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Erase one onboarding's messages, contacts, peers, media and secrets (README, "Data
    rights"); the onboarding, its timeline and the erasure record are kept. Runs in the
    background; running it again shows where it stands."""
    if not yes:
        if not sys.stdin.isatty():
            raise _fail(
                f"erasing onboarding {onboarding_id} cannot be undone: pass --yes to confirm", 2
            )
        if not typer.confirm(
            f"Erase all data of onboarding {onboarding_id}? This cannot be undone."
        ):
            raise _fail("not erased", 1)
    rt = _runtime()
    with rt.db.sessionmaker() as session, _operator():
        record = erase_onboarding(session, onboarding_id, reason=reason)
    if as_json:
        _print_json(record)
        return
    counts = ", ".join(f"{k} {v}" for k, v in record["counts"].items()) or "nothing yet"
    console.print(
        f"onboarding {onboarding_id}: erasure {record['state']} (step {record['step']}; "
        f"deleted: {counts})"
    )
    if record["note"]:
        console.print(f"note: {record['note']}")


@followups_app.command("list")
def follow_ups_list(
    due: Annotated[bool, typer.Option("--due", help="Only scheduled ones that are due.")] = False,
    onboarding_id: Annotated[int | None, typer.Option("--onboarding")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 200,
    as_json: JsonFlag = False,
) -> None:
    """List follow-ups (relink and app-open reminders, alerts), soonest first."""
    rt = _runtime()
    with rt.db.sessionmaker() as session, _operator():
        rows = operations.list_follow_ups(
            session, due=due, onboarding_id=onboarding_id, limit=limit
        )
    if as_json:
        _print_json(rows)
        return
    table = Table("id", "onboarding", "kind", "step", "due", "status", "sent")
    for r in rows:
        table.add_row(
            str(r["id"]),
            str(r["onboarding_id"]),
            r["kind"],
            str(r["step"]),
            r["due_at"],
            r["status"],
            str(r["sent_count"]),
        )
    console.print(table)


@followups_app.command("ack")
def follow_ups_ack(follow_up_id: int) -> None:
    """Acknowledge a follow-up: the business did it; the rest of its series is cancelled."""
    rt = _runtime()
    with rt.db.sessionmaker() as session, _operator():
        follow_up = operations.acknowledge_follow_up(session, follow_up_id)
    console.print(f"follow-up {follow_up['id']} ({follow_up['kind']}) acknowledged")


@events_app.command("tail")
def events_tail(
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep reading new events until interrupted.")
    ] = False,
    onboarding_id: Annotated[
        int | None, typer.Option("--onboarding", min=1, help="Only this onboarding's events.")
    ] = None,
    types: Annotated[
        list[str] | None,
        typer.Option("--type", help="Only events of this type (repeatable)."),
    ] = None,
    after: Annotated[
        str | None,
        typer.Option(
            help="Start after this cursor (an event's `cursor`, or a page's `next_cursor`). "
            "Default: the start of the feed, or with --follow its end."
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            min=1, max=MAX_LIMIT, help="Events per read (without --follow: the most printed)."
        ),
    ] = 100,
    interval: Annotated[
        float, typer.Option(min=0.1, max=60.0, help="Seconds between reads with --follow.")
    ] = 1.0,
    polls: Annotated[
        int | None,
        typer.Option(min=1, help="With --follow, stop after this many reads (default: never)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object (the event's envelope) per line.")
    ] = False,
) -> None:
    """Print the feed's events, oldest first; with --follow, new ones as they come.

    Without --follow, the events after --after (or from the start), at most --limit, then the
    cursor to continue from (on stderr).
    """
    wanted: list[EventType] = []
    for value in types or []:
        try:
            wanted.append(EventType(value))
        except ValueError:
            known = ", ".join(t.value for t in EventType)
            raise _fail(f"unknown event type {value[:64]!r}; known: {known}", 2) from None
    cursor = None
    if after is not None:
        try:
            cursor = Cursor.decode(after)
        except CursorError as exc:
            raise _fail(str(exc), 2) from None
    rt = _runtime()
    start = tail.start(rt.db, cursor) if follow else (cursor or Cursor())
    events = tail.follow(
        rt.db,
        start,
        limit=limit,
        onboarding_id=onboarding_id,
        types=wanted,
        interval=interval,
        polls=polls if follow else 1,
    )
    last: str | None = None
    try:
        for event in events:
            sys.stdout.write((json.dumps(event) if as_json else tail.line(event)) + "\n")
            sys.stdout.flush()
            last = event["cursor"]
    except KeyboardInterrupt:
        pass
    err.print(f"next cursor: {last or start.encode()}")


@feed_app.command("status")
def feed_status(as_json: JsonFlag = False) -> None:
    """Where push delivery stands: cursor, pending batch, lag, failing state."""
    rt = _runtime()
    with rt.db.sessionmaker() as session:
        state = feed_push.status(session, rt.settings)
    if as_json:
        _print_json(state)
        return
    table = Table("field", "value", title="feed push")
    pending = state["pending"]
    rows = {
        "receiver": state["url"] or "off (COEX_FEED_WEBHOOK_URL is empty)",
        "cursor": state["cursor"],
        "pending batch": (
            f"{pending['webhook_id']} ({pending['attempts']} failed attempts)" if pending else "-"
        ),
        "lag": f"{state['lag_events']} events, {state['lag_seconds']} s",
        "failing since": state["failing_since"] or "-",
        "last error": state["last_error"] or "-",
        "delivered at": state["delivered_at"] or "-",
    }
    for name, value in rows.items():
        table.add_row(name, str(value))
    console.print(table)


@feed_app.command("rewind")
def feed_rewind(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="`start`, `latest`, or an event's cursor (delivery resumes after that event).",
        ),
    ],
) -> None:
    """Move push delivery to another place in the feed; clears the failing state."""
    rt = _runtime()
    with rt.db.sessionmaker() as session:
        try:
            target = feed_push.place(session, to)
        except CursorError as exc:
            raise _fail(f"{exc}; give start, latest or a cursor such as 812-4031", 2) from None
        try:
            moved = feed_push.rewind(session, target)
        except feed_push.RewindError as exc:
            raise _fail(str(exc)) from None
        session.commit()
    console.print(
        f"push cursor moved from {moved.previous.encode()} to {moved.cursor.encode()}; "
        f"{moved.ahead} events to deliver"
    )


def main() -> None:
    app()
