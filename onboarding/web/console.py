"""The operator console, ``/console``: server-rendered pages over the same service layer as
the CLI and the admin API (:mod:`onboarding.operations`, :mod:`tasks.operator`).

* onboardings: state, a live countdown of the 24 h window, a progress bar per sync, alerts;
* one onboarding: syncs, the history chunk ledger as a picture (received and missing chunks
  per phase), counts, latest messages and contacts, follow-ups, alerts, the timeline, retry;
* the inbox by status (quarantined, failed...), with replay of one delivery or all of a status;
* the feed: push delivery's cursor, lag and failures, and the relay's backlog.

Security: login with the admin token gives a signed session cookie (:mod:`.console_auth`);
every action is a ``POST`` carrying the session's CSRF token from the same origin; every value
is HTML-escaped by the templates (message texts and contact names come from strangers), and a
Content-Security-Policy allows only the console's own script and stylesheet.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import Select, select
from sqlalchemy.orm import Session, selectinload
from starlette.concurrency import run_in_threadpool

from models import (
    Alert,
    Contact,
    InboxStatus,
    Message,
    Onboarding,
    OnboardingState,
    Peer,
    SyncType,
    utcnow,
)
from onboarding import operations
from onboarding.feed import push as feed_push
from onboarding.ingest.history import chunk_phases
from onboarding.relay import run as relay_run
from onboarding.runtime import Runtime
from onboarding.views import iso
from onboarding.web import console_auth
from onboarding.web.http import MAX_ROW_ID
from tasks.operator import replay_deliveries, retry_onboarding

HERE = Path(__file__).parent
STATIC = HERE / "static"
templates = Jinja2Templates(
    env=Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
)
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
#: Inbox statuses an operator acts on, first the ones that need it.
INBOX_TABS = ("quarantined", "failed", "orphaned", "pending", "processed")
#: Onboardings one list page shows (older ones are on the next pages).
PAGE = 200


def routes(get_rt: Callable[[], Runtime]) -> APIRouter:  # noqa: C901 - one closure per page
    router = APIRouter(prefix="/console", include_in_schema=False)

    def gate(request: Request) -> console_auth.ConsoleSession | None:
        return console_auth.read(_token(get_rt()), request.cookies.get(console_auth.COOKIE))

    def acting(request: Request, form: dict[str, Any]) -> console_auth.ConsoleSession | None:
        """The session of a POST that is allowed to act: logged in, same origin, CSRF token."""
        session = gate(request)
        if session is None or not _same_origin(request):
            return None
        if not console_auth.csrf_ok(_token(get_rt()), session, form.get("csrf")):
            return None
        return session

    def page(
        request: Request, name: str, session: console_auth.ConsoleSession | None, **context: Any
    ) -> Response:
        csrf = console_auth.csrf_token(_token(get_rt()), session) if session else None
        notice = request.query_params.get("notice", "")[:300]
        answer = templates.TemplateResponse(
            request, f"console/{name}.html", {"csrf": csrf, "notice": notice, **context}
        )
        answer.headers.update(SECURITY_HEADERS)
        return answer

    @router.get("")
    async def home() -> Response:
        return RedirectResponse("/console/onboardings", status_code=303)

    @router.get("/login")
    async def login_form(request: Request) -> Response:
        return page(request, "login", None, error=None)

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = dict(await request.form())
        token = _token(get_rt())
        presented = str(form.get("token") or "")
        if not token or not _equal(presented, token) or not _same_origin(request):
            answer = page(request, "login", None, error="That is not the admin token.")
            answer.status_code = 401
            return answer
        value, _ = console_auth.issue(token)
        answer = RedirectResponse("/console/onboardings", status_code=303)
        answer.set_cookie(
            console_auth.COOKIE,
            value,
            max_age=console_auth.SESSION_SECONDS,
            path="/console",
            httponly=True,
            samesite="strict",
            secure=_secure(request, get_rt()),
        )
        return answer

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        form = dict(await request.form())
        if acting(request, form) is None:
            return _forbidden()
        answer = RedirectResponse("/console/login", status_code=303)
        answer.delete_cookie(console_auth.COOKIE, path="/console")
        return answer

    @router.get("/onboardings")
    async def onboardings(
        request: Request, state: str | None = None, before: str | None = None
    ) -> Response:
        session = gate(request)
        if session is None:
            return _to_login()
        chosen = state if state in {s.value for s in OnboardingState} else None
        below = _row_id(before)
        rows, older = await run_in_threadpool(_listing, get_rt(), chosen, below)
        states = [s.value for s in OnboardingState]
        older_url = None
        if older is not None:
            older_url = "?" + urlencode({**({"state": chosen} if chosen else {}), "before": older})
        return page(
            request,
            "onboardings",
            session,
            rows=rows,
            states=states,
            state=chosen,
            older_url=older_url,
            paged=below is not None,
        )

    @router.get("/onboardings/{onboarding_id}")
    async def onboarding(request: Request, onboarding_id: int) -> Response:
        session = gate(request)
        if session is None:
            return _to_login()
        if not 0 < onboarding_id <= MAX_ROW_ID:
            return _missing()
        found = await run_in_threadpool(_detail, get_rt(), onboarding_id)
        if found is None:
            return _missing()
        return page(request, "onboarding", session, **found)

    @router.post("/onboardings/{onboarding_id}/retry")
    async def retry(request: Request, onboarding_id: int) -> Response:
        form = dict(await request.form())
        if acting(request, form) is None:
            return _forbidden()
        notice = await run_in_threadpool(_retry, get_rt(), onboarding_id, bool(form.get("force")))
        return _back(f"/console/onboardings/{onboarding_id}", notice)

    @router.get("/inbox")
    async def inbox(request: Request, status: str = "quarantined") -> Response:
        session = gate(request)
        if session is None:
            return _to_login()
        chosen = status if status in {s.value for s in InboxStatus} else "quarantined"
        rows = await run_in_threadpool(_inbox, get_rt(), chosen)
        return page(request, "inbox", session, rows=rows, status=chosen, statuses=INBOX_TABS)

    @router.get("/feed")
    async def feed(request: Request) -> Response:
        session = gate(request)
        if session is None:
            return _to_login()
        states = await run_in_threadpool(_feed_states, get_rt())
        return page(request, "feed", session, **states)

    @router.post("/inbox/replay")
    async def replay_status(request: Request) -> Response:
        form = dict(await request.form())
        if acting(request, form) is None:
            return _forbidden()
        status = str(form.get("status") or "")
        notice = await run_in_threadpool(_replay, get_rt(), None, status)
        return _back("/console/inbox", notice, status=status)

    @router.post("/inbox/{delivery_id}/replay")
    async def replay_one(request: Request, delivery_id: int) -> Response:
        form = dict(await request.form())
        if acting(request, form) is None:
            return _forbidden()
        notice = await run_in_threadpool(_replay, get_rt(), delivery_id, None)
        return _back("/console/inbox", notice)

    return router


def _token(r: Runtime) -> str:
    return r.settings.admin_token.get_secret_value()


def _equal(presented: str, expected: str) -> bool:
    return hmac.compare_digest(presented.encode(), expected.encode())


def _same_origin(request: Request) -> bool:
    """A form posted from this origin (or by a client that sends no ``Origin`` at all)."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


def _secure(request: Request, r: Runtime) -> bool:
    return request.url.scheme == "https" or r.settings.environment == "production"


def _to_login() -> Response:
    return RedirectResponse("/console/login", status_code=303)


def _forbidden() -> Response:
    return HTMLResponse(
        "<p>Refused: log in again and use the console's own buttons.</p>",
        status_code=403,
        headers=SECURITY_HEADERS,
    )


def _missing() -> Response:
    return HTMLResponse("<p>No such onboarding.</p>", status_code=404, headers=SECURITY_HEADERS)


def _back(path: str, notice: str, **params: str) -> Response:
    return RedirectResponse(f"{path}?{urlencode({**params, 'notice': notice})}", status_code=303)


def _window_left(deadline: datetime, now: datetime) -> str:
    seconds = int((deadline - now).total_seconds())
    if seconds <= 0:
        return "window closed"
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d} left"


def _row_id(value: str | None) -> int | None:
    """A row id from a query parameter; None when absent or not a usable id."""
    if value is None or not value.isdigit() or len(value) > 19:
        return None
    number = int(value)
    return number if 0 < number <= MAX_ROW_ID else None


def _listing(
    r: Runtime, state: str | None, before: int | None = None
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of onboardings, newest first (below the id ``before`` if given), and the id the
    next page starts below (None: this is the last page)."""
    now = utcnow()
    with r.db.sessionmaker() as session:
        query = (
            select(Onboarding)
            .options(selectinload(Onboarding.syncs))
            .order_by(Onboarding.id.desc())
            .limit(PAGE + 1)
        )
        if state:
            query = query.where(Onboarding.state == state)
        if before is not None:
            query = query.where(Onboarding.id < before)
        onboardings = list(session.scalars(query))
        older = onboardings[PAGE - 1].id if len(onboardings) > PAGE else None
        onboardings = onboardings[:PAGE]
        alerts = _open_alerts(session, [o.id for o in onboardings])
        rows = []
        for o in onboardings:
            history = o.sync(SyncType.HISTORY)
            rows.append(
                {
                    "id": o.id,
                    "state": o.state,
                    "waba_id": o.waba_id,
                    "verified_name": o.verified_name,
                    "display_phone_number": o.display_phone_number,
                    "phone_number_id": o.phone_number_id,
                    "sync_deadline_at": iso(o.sync_deadline_at),
                    "window_left": _window_left(o.sync_deadline_at, now),
                    "contacts_sync": o.sync(SyncType.CONTACTS).state,
                    "history_sync": history.state,
                    "history_progress": history.progress or 0,
                    "alerts": alerts.get(o.id, 0),
                }
            )
        return rows, older


def _open_alerts(session: Session, ids: list[int]) -> dict[int, int]:
    counts: dict[int, int] = {}
    if not ids:
        return counts
    for onboarding_id in session.scalars(
        select(Alert.onboarding_id).where(
            Alert.onboarding_id.in_(ids), Alert.acknowledged_at.is_(None)
        )
    ):
        if onboarding_id is not None:
            counts[onboarding_id] = counts.get(onboarding_id, 0) + 1
    return counts


def _detail(r: Runtime, onboarding_id: int) -> dict[str, Any] | None:
    with r.db.sessionmaker() as session:
        try:
            detail = operations.show_onboarding(session, onboarding_id)
        except operations.NotFoundError:
            return None
        phases = []
        for phase, found in sorted(chunk_phases(session, onboarding_id).items()):
            received, missing = set(found["received"]), set(found["missing"])
            orders = sorted(received | missing)
            cells = [(order, order in received) for order in orders]
            phases.append((phase, {**found, "cells": cells}))
        return {
            "d": detail,
            "phases": phases,
            "messages": _latest_messages(session, onboarding_id),
            "contacts": _contacts(session, onboarding_id),
        }


def latest_messages_query(onboarding_id: int, limit: int = 25) -> Select[Message, Peer]:
    """An onboarding's latest messages across its threads, with their peers: a backward read
    of ``ix_messages_onboarding_time``, however many messages the onboarding holds."""
    return (
        select(Message, Peer)
        .outerjoin(Peer, Peer.id == Message.peer_id)
        .where(Message.onboarding_id == onboarding_id)
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(limit)
    )


def _latest_messages(session: Session, onboarding_id: int, limit: int = 25) -> list[dict[str, Any]]:
    rows = session.execute(latest_messages_query(onboarding_id, limit)).all()
    return [
        {
            "sent_at": iso(m.sent_at),
            "peer": (p.name or p.username or p.phone or p.user_id) if p else m.thread,
            "direction": m.direction,
            "source": m.source,
            "text": m.text_body or (f"[{m.type}]" if m.type != "text" else ""),
            "media": m.media_state if m.media_state != "none" else "",
        }
        for m, p in rows
    ]


def _contacts(session: Session, onboarding_id: int, limit: int = 25) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Contact, Peer)
        .join(Peer, Peer.id == Contact.peer_id)
        .where(Contact.onboarding_id == onboarding_id, Contact.removed_at.is_(None))
        .order_by(Contact.id)
        .limit(limit)
    ).all()
    return [
        {
            "name": c.full_name or c.first_name or p.name or "(no name)",
            "address": p.phone or p.user_id or "",
        }
        for c, p in rows
    ]


def _retry(r: Runtime, onboarding_id: int, force: bool) -> str:
    with r.db.sessionmaker() as session:
        try:
            plan = retry_onboarding(session, onboarding_id, settings=r.settings, force=force)
        except operations.OperatorError as exc:
            return f"Retry refused: {exc}"
    return f"Retrying: {plan.message}"


def _inbox(r: Runtime, status: str) -> list[dict[str, Any]]:
    with r.db.sessionmaker() as session:
        return operations.list_inbox(session, status=status, limit=500)


def _feed_states(r: Runtime) -> dict[str, Any]:
    with r.db.sessionmaker() as session:
        return {
            "push": feed_push.status(session, r.settings),
            "relay": relay_run.status(session, r.settings),
        }


def _replay(r: Runtime, delivery_id: int | None, status: str | None) -> str:
    with r.db.sessionmaker() as session:
        try:
            ids = replay_deliveries(session, delivery_id=delivery_id, status=status or None)
        except operations.OperatorError as exc:
            return f"Replay refused: {exc}"
    return f"Replaying {len(ids)} deliveries."
