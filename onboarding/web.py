"""HTTP interface (``uvicorn onboarding.web:app``): the signup web hook, status API, health.

``POST /signup`` takes the browser's Embedded Signup hand-off (bearer ``COEX_SIGNUP_TOKEN``),
records it and answers ``202`` with the onboarding id; the code exchange is enqueued on the
``signup`` queue only after the row is committed. ``GET /onboardings/{id}`` (bearer
``COEX_ADMIN_TOKEN``) returns the same JSON as ``coexist onboardings show --json``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import math
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import redis
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from models import Onboarding
from onboarding import runtime as runtime_module
from onboarding.followups.schedule import FollowUpError, acknowledge
from onboarding.ingest.inbox import AsyncInboxWriter, Intake, receive_many
from onboarding.meta.signatures import signature_valid
from onboarding.runtime import ConfigurationError, Runtime
from onboarding.signup.intake import SignupBody, accept_signup, unstorable
from onboarding.views import follow_up_json, onboarding_detail

log = structlog.get_logger(__name__)

#: Stored deliveries are processed in tasks of at most this many (fewer broker messages).
DELIVERIES_PER_TASK = 64


def _bearer_ok(request: Request, expected: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented or not expected:
        return False
    return hmac.compare_digest(presented.strip().encode(), expected.encode())


def _unauthorized() -> JSONResponse:
    return JSONResponse(
        {"error": "unauthorized", "message": "a valid bearer token is required"},
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


def _field(loc: tuple[int | str, ...]) -> str:
    # Drop pydantic's discriminator tags ("FINISH") from the path: the field is what matters.
    parts = [
        str(p)
        for p in loc
        if p not in ("FINISH", "FINISH_WHATSAPP_BUSINESS_APP_ONBOARDING", "CANCEL", "ERROR")
    ]
    return ".".join(parts) or "body"


#: Row ids are 64-bit integers; a path id outside this range names no row.
MAX_ROW_ID = 2**63 - 1


def _not_found() -> JSONResponse:
    return JSONResponse({"error": "not_found"}, status_code=404)


def _no_constant(name: str) -> Any:
    """``NaN`` and ``Infinity`` are not JSON (Python's parser accepts them; the database not)."""
    raise ValueError(f"{name} is not a JSON value")


def _finite(literal: str) -> float:
    """A JSON number as a float; one beyond a double (``1e400``) would be stored as Infinity."""
    number = float(literal)
    if not math.isfinite(number):
        raise ValueError(f"{literal[:32]} is beyond the range of a number")
    return number


def _invalid(errors: list[dict[str, str]]) -> JSONResponse:
    return JSONResponse({"error": "invalid_body", "errors": errors}, status_code=422)


class BodyRefusedError(Exception):
    """A request body refused before it was read in full; the connection is closed after."""

    def __init__(self, status: int, error: str, **facts: Any) -> None:
        super().__init__(error)
        self.status = status
        self.body = {"error": error, **facts}


async def _read_limited(request: Request, limit: int, timeout: float) -> bytes:
    """The body, counted as it streams in: at most ``limit`` bytes within ``timeout`` seconds.

    The headers are not trusted to say how long the body is. A request carrying both
    ``Content-Length`` and ``Transfer-Encoding`` is refused (``400``): the two can frame
    different bodies (request smuggling; RFC 9112 §6.3), and the server frames by the
    chunked encoding whatever ``Content-Length`` claims. A declared length over the limit is
    refused at once, and any body is cut off the moment its bytes pass the limit (``413``),
    so nothing larger is ever buffered. A client that has not sent the whole body within
    ``timeout`` gets ``408`` (slow clients cannot hold a connection open indefinitely).
    """
    headers = request.headers
    declared = headers.get("content-length")
    if declared is not None and "transfer-encoding" in headers:
        raise BodyRefusedError(
            400, "ambiguous_framing", message="Content-Length and Transfer-Encoding together"
        )
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyRefusedError(413, "too_large", limit_bytes=limit)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyRefusedError(413, "too_large", limit_bytes=limit)
                chunks.append(chunk)
    except TimeoutError:
        raise BodyRefusedError(408, "body_timeout", timeout_seconds=timeout) from None
    return b"".join(chunks)


def create_app(rt: Runtime | None = None) -> FastAPI:
    """The web application; ``rt`` defaults to the process runtime built from settings."""

    def get_rt() -> Runtime:
        return rt or runtime_module.current()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        missing = get_rt().settings.missing_for("web")
        if missing:
            raise ConfigurationError(f"refusing to start: set {', '.join(missing)}")
        batcher.start()
        try:
            yield
        finally:
            await batcher.stop()

    batcher = IntakeBatcher(get_rt)
    app = FastAPI(
        title="coexist", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None
    )

    @app.exception_handler(OperationalError)
    async def _db_down(_: Request, exc: OperationalError) -> JSONResponse:
        log.error("database_unavailable", error=type(exc).__name__)
        return JSONResponse(
            {"error": "unavailable", "message": "database unavailable; try again"},
            status_code=503,
        )

    @app.exception_handler(BodyRefusedError)
    async def _refused(_: Request, exc: BodyRefusedError) -> JSONResponse:
        log.warning("request_body_refused", status=exc.status, error=exc.body["error"])
        return JSONResponse(exc.body, status_code=exc.status, headers={"Connection": "close"})

    @app.post("/signup", status_code=202)
    async def signup(request: Request) -> Response:
        """Embedded Signup finished (or was abandoned) in the browser."""
        r = get_rt()
        if not _bearer_ok(request, r.settings.signup_token.get_secret_value()):
            return _unauthorized()
        raw = await _read_limited(
            request, r.settings.signup_max_body_bytes, r.settings.request_body_timeout_seconds
        )
        try:
            payload: Any = json.loads(raw, parse_constant=_no_constant, parse_float=_finite)
        except RecursionError:
            return _invalid([{"field": "body", "message": "nested too deeply"}])
        except (ValueError, UnicodeDecodeError) as exc:
            return _invalid([{"field": "body", "message": f"not JSON: {exc}"}])
        if not isinstance(payload, dict):
            return _invalid([{"field": "body", "message": "expected a JSON object"}])
        problem = unstorable(payload)
        if problem is not None:
            return _invalid([{"field": problem[0], "message": problem[1]}])
        try:
            body = SignupBody.model_validate(payload)
        except ValidationError as exc:
            return _invalid(
                [
                    {"field": _field(e["loc"]), "message": e["msg"]}
                    for e in exc.errors(include_url=False, include_input=False)
                ]
            )
        return await _run_in_thread(_accept, r, body)

    @app.get("/webhooks/meta")
    async def verify_webhook(request: Request) -> Response:
        """Meta's subscription handshake: echo ``hub.challenge`` if the verify token matches."""
        params = request.query_params
        expected = get_rt().settings.webhook_verify_token.get_secret_value()
        presented = params.get("hub.verify_token", "")
        challenge = params.get("hub.challenge", "")
        if (
            params.get("hub.mode") == "subscribe"
            and expected
            and hmac.compare_digest(presented.encode(), expected.encode())
            and challenge
            and len(challenge) <= 1024
        ):
            return PlainTextResponse(challenge)
        return JSONResponse({"error": "forbidden"}, status_code=403)

    @app.post("/webhooks/meta")
    async def receive_webhook(request: Request) -> Response:
        """A signed delivery: verified, committed raw, then processed on the ingest queue."""
        r = get_rt()
        raw = await _read_limited(
            request, r.settings.webhook_max_body_bytes, r.settings.request_body_timeout_seconds
        )
        secret = r.settings.meta_app_secret.get_secret_value()
        if not signature_valid(raw, request.headers.get("x-hub-signature-256"), secret):
            log.warning("webhook_signature_invalid", size=len(raw))
            return JSONResponse({"error": "invalid_signature"}, status_code=401)
        await batcher.submit(raw)
        return PlainTextResponse("OK")

    @app.get("/onboardings/{onboarding_id}")
    async def show(onboarding_id: int, request: Request) -> Response:
        """Operator status API: the onboarding's state, syncs and timeline."""
        r = get_rt()
        if not _bearer_ok(request, r.settings.admin_token.get_secret_value()):
            return _unauthorized()
        if not 0 < onboarding_id <= MAX_ROW_ID:
            return _not_found()
        return await _run_in_thread(_show, r, onboarding_id)

    @app.post("/follow-ups/{follow_up_id}/ack")
    async def ack_follow_up(follow_up_id: int, request: Request) -> Response:
        """The provider's app reports the business did what a reminder asked (admin bearer)."""
        r = get_rt()
        if not _bearer_ok(request, r.settings.admin_token.get_secret_value()):
            return _unauthorized()
        if not 0 < follow_up_id <= MAX_ROW_ID:
            return _not_found()
        return await _run_in_thread(_ack, r, follow_up_id)

    @app.get("/healthz")
    async def healthz() -> Response:
        """Liveness and database reachability."""
        return await _run_in_thread(_health, get_rt())

    return app


async def _run_in_thread(fn: Any, *args: Any) -> Response:
    result: Response = await run_in_threadpool(fn, *args)
    return result


def _accept(r: Runtime, body: SignupBody) -> Response:
    """Record the signup; a new onboarding's exchange is enqueued once the answer is sent.

    The ``202`` never waits for the broker: the row is committed, which is the promise. While
    the broker is unreachable each enqueue costs most of a second of retries before it gives
    up; then beat's ``coexist.signup.resume`` sends the exchange within seconds, well inside
    the code's 30 s, as it does for a message the broker lost.
    """
    with r.db.sessionmaker() as session:
        outcome = accept_signup(session, body, settings=r.settings, cipher=r.cipher)
    if outcome.abandoned_signup_id is not None:
        return JSONResponse(
            {"abandoned_signup_id": outcome.abandoned_signup_id, "status": "recorded"},
            status_code=202,
        )
    start = None
    if outcome.created and outcome.onboarding_id is not None:
        start = BackgroundTask(_start_onboarding, outcome.onboarding_id)
    return JSONResponse(
        {
            "onboarding_id": outcome.onboarding_id,
            "state": outcome.state,
            "created": outcome.created,
        },
        status_code=202,
        background=start,
    )


def _start_onboarding(onboarding_id: int) -> None:
    from tasks.base import enqueue_after_commit  # noqa: PLC0415 - interfaces enqueue
    from tasks.ingest import wake_waiting  # noqa: PLC0415
    from tasks.signup import exchange_code  # noqa: PLC0415

    enqueue_after_commit(None, exchange_code, onboarding_id)
    enqueue_after_commit(None, wake_waiting, onboarding_id)


class IntakeBatcher:
    """Group commits for webhook intake: many deliveries, one transaction, one answer each.

    Each verified delivery waits here until the transaction that stores it has committed, so
    ``200`` still means "durably in the inbox"; deliveries arriving together share one
    ``INSERT`` and one commit. Their processing is enqueued after that commit, a few ids per
    task and at most every ``enqueue_every`` seconds, so the broker is not the bottleneck; a
    row whose enqueue is lost (crash, broker down) is dispatched by beat's redispatch job.
    If the database is unreachable, every delivery of the batch gets the error (Meta a 503).
    """

    def __init__(
        self,
        runtime: Callable[[], Runtime],
        max_batch: int = 128,
        max_wait: float = 0.0005,
        enqueue_every: float = 0.02,
        writers: int = 1,
    ) -> None:
        self._runtime = runtime
        self._writers = writers
        self._max_batch = max_batch
        self._max_wait = max_wait
        self._enqueue_every = enqueue_every
        self._queue: asyncio.Queue[tuple[bytes, asyncio.Future[Intake]]] | None = None
        self._pending: list[int] = []
        self._writer: AsyncInboxWriter | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._queue = asyncio.Queue()
        rt = self._runtime()
        if rt.db.dialect == "postgresql" and not rt.settings.tasks_eager:
            self._writer = AsyncInboxWriter(rt.db.url)
        # Several writers, so one batch's commit overlaps the next batch's insert.
        self._tasks = [
            *(
                asyncio.create_task(self._store_loop(), name=f"coexist-intake-{n}")
                for n in range(self._writers)
            ),
            asyncio.create_task(self._enqueue_loop(), name="coexist-intake-enqueue"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        while self._queue is not None and not self._queue.empty():
            _, future = self._queue.get_nowait()
            if not future.done():
                future.set_exception(OperationalError("shutdown", None, RuntimeError("stopping")))
        await self._flush()
        if self._writer is not None:
            await self._writer.close()

    async def submit(self, body: bytes) -> Intake:
        if self._queue is None:
            raise RuntimeError("the intake batcher is not running")
        future: asyncio.Future[Intake] = asyncio.get_running_loop().create_future()
        await self._queue.put((body, future))
        return await future

    async def _store_loop(self) -> None:
        assert self._queue is not None
        queue = self._queue
        while True:
            # Whatever queued up while the previous batch was being committed forms the next
            # one (group commit); a lone delivery waits at most ``max_wait`` for company.
            batch = [await queue.get()]
            if queue.empty() and self._max_wait > 0:
                await asyncio.sleep(self._max_wait)
            while len(batch) < self._max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            bodies = [body for body, _ in batch]
            try:
                if self._writer is not None:
                    intakes = await self._writer.write(bodies)
                else:
                    intakes = await run_in_threadpool(_store_batch, self._runtime(), bodies)
            except Exception as exc:  # every waiting request gets the failure
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self._pending.extend(i.delivery_id for i in intakes if i.status == "pending")
            if self._runtime().settings.tasks_eager:
                await self._flush()  # in-process: processed before the answer goes out
            for (_, future), intake in zip(batch, intakes, strict=True):
                if not future.done():
                    future.set_result(intake)

    async def _enqueue_loop(self) -> None:
        while True:
            await asyncio.sleep(self._enqueue_every)
            await self._flush()

    async def _flush(self) -> None:
        if not self._pending:
            return
        ids, self._pending = sorted(set(self._pending)), []
        await run_in_threadpool(_enqueue_processing, ids)


def _store_batch(r: Runtime, bodies: list[bytes]) -> list[Intake]:
    with r.db.sessionmaker() as session:
        return receive_many(session, bodies)


def _enqueue_processing(ids: list[int]) -> None:
    from tasks.base import enqueue_after_commit  # noqa: PLC0415 - interfaces enqueue
    from tasks.ingest import process_deliveries  # noqa: PLC0415

    for start in range(0, len(ids), DELIVERIES_PER_TASK):
        enqueue_after_commit(None, process_deliveries, ids[start : start + DELIVERIES_PER_TASK])


def _ack(r: Runtime, follow_up_id: int) -> Response:
    with r.db.sessionmaker() as session:
        try:
            follow_up = acknowledge(session, follow_up_id)
        except FollowUpError as exc:
            status = 404 if "no follow-up" in str(exc) else 409
            return JSONResponse({"error": "not_acknowledged", "message": str(exc)}, status)
        return JSONResponse(follow_up_json(follow_up))


def _show(r: Runtime, onboarding_id: int) -> Response:
    with r.db.sessionmaker() as session:
        onboarding = session.get(Onboarding, onboarding_id)
        if onboarding is None:
            return _not_found()
        return JSONResponse(onboarding_detail(session, onboarding))


def _health(r: Runtime) -> Response:
    """``503`` only when the database is unreachable: without it no delivery can be accepted.

    A broker outage is reported (``"status": "degraded"``) but answered ``200``: deliveries are
    still committed and answered, and beat re-dispatches them once the broker is back.
    """
    broker = _broker_health(r.settings.broker_url) if not r.settings.tasks_eager else "eager"
    try:
        with r.db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return JSONResponse(
            {"status": "degraded", "database": "unreachable", "broker": broker}, status_code=503
        )
    status = "ok" if broker in ("ok", "eager", "unchecked") else "degraded"
    return JSONResponse({"status": status, "database": "ok", "broker": broker})


def _broker_health(url: str) -> str:
    """``ok`` or ``unreachable`` for a Redis broker (half a second at most); else ``unchecked``."""
    if not url.startswith(("redis://", "rediss://")):
        return "unchecked"
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5, socket_timeout=0.5)
    try:
        client.ping()
    except redis.RedisError:
        return "unreachable"
    finally:
        client.close()
    return "ok"


def __getattr__(name: str) -> Any:
    # ``uvicorn onboarding.web:app`` builds the app from the environment on first access, so
    # importing this module (tests, the CLI) does not require a configured environment.
    if name == "app":
        return create_app()
    raise AttributeError(name)
