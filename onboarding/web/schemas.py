"""The web API's request and response models: what ``/openapi.json`` promises.

The admin API's answers are the JSON of :mod:`onboarding.views` (the CLI's ``--json``); then
come ``POST /signup``'s and the health checks' answers. They are described here so the OpenAPI
document is a real contract; a route's answer is checked against its model. The read API's
answers are :mod:`onboarding.read.schemas`, the feed's :mod:`onboarding.feed.schemas`.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from models import InboxStatus
from onboarding.web.http import MAX_ROW_ID

RowId = Field(ge=1, le=MAX_ROW_ID)


class FieldError(BaseModel):
    field: str = Field(description="The field's path, e.g. `session.data.waba_id`.")
    message: str


class Problem(BaseModel):
    """An error answer (RFC 9457 ``application/problem+json``)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(examples=["about:blank"])
    title: str = Field(examples=["Not Found"])
    status: int = Field(examples=[404])
    detail: str = Field(examples=["no onboarding 42"])
    error: str = Field(description="A stable code to branch on.", examples=["not_found"])
    errors: list[FieldError] | None = None


PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The error answers of a route: ``401``, ``422`` and ``503``, plus ``statuses``
    (documented as ``application/problem+json`` by :func:`problem_media_type`)."""
    return {
        status: {"model": Problem, "description": HTTPStatus(status).phrase}
        for status in sorted({401, 422, 503, *statuses})
    }


def export_answers() -> dict[int | str, dict[str, Any]]:
    """The data export's answers: the zip archive, streamed, or a problem (``404``: no such
    onboarding)."""
    return {
        200: {
            "description": "The zip archive of everything held for the onboarding (README, "
            '"Data rights"), streamed as it is written.',
            "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
        },
        **problems(404),
    }


def problem_media_type(document: dict[str, Any]) -> dict[str, Any]:
    """Say in ``document`` (an OpenAPI dict) that error answers are
    ``application/problem+json``, which FastAPI's ``responses`` cannot express."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            for answer in operation.get("responses", {}).values():
                content = answer.get("content", {})
                plain = content.get("application/json")
                if plain is not None and plain.get("schema") == PROBLEM_REF:
                    content["application/problem+json"] = content.pop("application/json")
    return document


class OnboardingSummary(BaseModel):
    id: int
    state: str
    waba_id: str
    phone_number_id: str | None
    display_phone_number: str | None
    region: str | None
    signup_completed_at: str | None
    sync_deadline_at: str | None
    contacts_sync: str
    history_sync: str
    last_error: str | None


class SyncStatus(BaseModel):
    sync_type: str
    state: str
    request_id: str | None
    attempts: int
    ambiguous_attempts: int
    requested_at: str | None
    next_attempt_at: str | None
    last_error: str | None
    progress: int | None
    completed_at: str | None
    phases: dict[str, dict[str, list[int]]] | None = Field(
        default=None, description="History only: chunk orders received and missing per phase."
    )


class Lifecycle(BaseModel):
    state: str
    event: str | None
    reason: str | None
    initiated_by: str | None
    since: str | None
    event_time: str | None
    paused_reason: str | None
    paused_by: str | None
    restrictions: list[dict[str, Any]]


class PeerCounts(BaseModel):
    total: int
    with_phone: int
    without_phone: int
    with_username: int


class TimelineEntry(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    at: str | None
    from_state: str | None = Field(alias="from")
    to: str
    cause: str


class AlertOut(BaseModel):
    id: int
    onboarding_id: int | None
    kind: str
    severity: str
    message: str
    raised_at: str | None
    acknowledged_at: str | None


class FollowUpOut(BaseModel):
    id: int
    onboarding_id: int
    kind: str
    series: int
    step: int
    due_at: str | None
    status: str
    sent_count: int
    sent_at: str | None
    acknowledged_at: str | None
    last_error: str | None
    content: dict[str, Any]


class OnboardingDetail(BaseModel):
    id: int
    state: str
    signup_event: str
    waba_id: str
    phone_number_id: str | None
    business_id: str | None
    other_waba_ids: list[str]
    display_phone_number: str | None
    verified_name: str | None
    region: str | None
    is_on_biz_app: bool | None
    platform_type: str | None
    signup_completed_at: str | None
    sync_deadline_at: str | None
    sync_window_seconds_left: int
    last_error: str | None
    failed_step: str | None
    has_token: bool
    erased_at: str | None = Field(
        description="When erasure of its data began (README, 'Data rights'); null: never."
    )
    last_app_activity_at: str | None
    sync: dict[str, SyncStatus]
    lifecycle: Lifecycle
    counts: dict[str, int]
    peers: PeerCounts
    follow_ups: list[FollowUpOut]
    timeline: list[TimelineEntry]
    alerts: list[AlertOut]


class InboxDeliveryOut(BaseModel):
    id: int
    status: str
    received_at: str | None
    processed_at: str | None
    fields: str | None
    waba_id: str | None
    phone_number_id: str | None
    onboarding_id: int | None
    size: int
    sha256: str
    attempts: int
    duplicates: int
    last_error: str | None
    summary: dict[str, Any] | None
    body_dropped_at: str | None = Field(
        description='When retention dropped the raw body (README, "Retention"); null: kept.'
    )


class SignupRecordOut(BaseModel):
    kind: Literal["abandoned", "not_onboarded"]
    id: int
    event: str
    received_at: str | None
    waba_id: str | None
    phone_number_id: str | None
    business_id: str | None
    asset_ids: dict[str, Any]
    current_step: str | None
    error_code: str | None
    error_message: str | None
    session_id: str | None
    reported_at: str | None
    session: dict[str, Any]


class RetryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    force: bool = Field(
        default=False, description="Probe a sync whose earlier outcome was lost, then resend."
    )
    phone_number_id: str | None = Field(
        default=None,
        pattern=r"^[0-9]{1,32}$",
        description="Use this number when the WABA has several.",
    )


class RetryAnswer(BaseModel):
    onboarding_id: int
    step: str
    message: str


class EraseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(
        default=None,
        min_length=1,
        max_length=2000,
        description="Why the data is erased (kept in the erasure record).",
        examples=["the business asked for its data to be deleted"],
    )


class ErasureOut(BaseModel):
    """An onboarding's erasure record (README, "Data rights")."""

    onboarding_id: int
    state: Literal["running", "done"]
    step: str = Field(description="The step it is at; ``done`` once finished.")
    requested_at: str
    requested_by: str = Field(description="operator, retention:disconnected or retention:failed")
    reason: str | None
    counts: dict[str, int] = Field(description="Rows (and media objects) deleted so far, per kind.")
    note: str | None = Field(description="What coexist did not do, e.g. disconnect at Meta.")
    completed_at: str | None


class ConnectLinkRequest(BaseModel):
    """An invitation to the hosted signup page for one customer of the provider."""

    model_config = ConfigDict(extra="forbid")

    ref: str = Field(
        pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description="The provider's customer reference, kept on the onboarding.",
        examples=["customer-4711"],
    )
    expires: str = Field(
        default="7d",
        pattern=r"^[0-9]{1,7}[smhd]$",
        description="How long the link works: 30m, 12h, 7d (1 minute to 90 days).",
    )


class ConnectLinkAnswer(BaseModel):
    url: str
    ref: str
    expires_at: str


class ReplayRequest(BaseModel):
    """One delivery by id, or every delivery in a status."""

    model_config = ConfigDict(extra="forbid")

    delivery_id: int | None = Field(default=None, ge=1, le=MAX_ROW_ID)
    status: InboxStatus | None = None

    @model_validator(mode="after")
    def _one_of(self) -> ReplayRequest:
        if (self.delivery_id is None) == (self.status is None):
            raise ValueError("give either delivery_id or status")
        return self


class ReplayAnswer(BaseModel):
    replayed: int
    delivery_ids: list[int]


class SignupAccepted(BaseModel):
    """``202``: an onboarding finish, recorded as an onboarding (``created`` false: the same
    signup was posted before)."""

    model_config = ConfigDict(extra="forbid")

    onboarding_id: int
    state: str
    created: bool


class SignupRecorded(BaseModel):
    """``202``: a signup recorded without an onboarding; ``message`` says why."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["recorded"]
    event: str
    onboarded: Literal[False]
    created: bool
    message: str


class SignupAbandoned(SignupRecorded):
    """``CANCEL`` and ``ERROR``: kept as an abandoned signup for support."""

    abandoned_signup_id: int


class FinishRecorded(SignupRecorded):
    """A finish of a flow coexist does not onboard, recorded with the ids it names."""

    recorded_finish_id: int


class Live(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["ok"]


class Health(BaseModel):
    """Readiness: ``503`` (with this body) only while the database is unreachable."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["ok", "degraded"]
    database: Literal["ok", "unreachable"]
    broker: Literal["ok", "unreachable", "unchecked", "eager"] = Field(
        description="`unchecked`: not a Redis broker; `eager`: tasks run in the web process."
    )
