"""The read API's answers as models: the OpenAPI schema of ``/v1/onboardings…``.

Each model mirrors one ``*_json`` function of this package (and a page, ``{"<items>": [...],
"next_cursor": ...}``, of each listing). Extra keys are refused, so a field added to an answer
but not here fails the test that validates real answers against ``/openapi.json``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from models import MediaState


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


def next_cursor() -> Any:
    """The ``next_cursor`` field every page has."""
    return Field(description="Pass as `after` for the next page; null on the last page.")


class OnboardingItem(Answer):
    """One onboarding of ``GET /v1/onboardings``: ``coexist onboardings list``'s line and when
    it was created."""

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
    created_at: str | None


class OnboardingPage(Answer):
    onboardings: list[OnboardingItem]
    next_cursor: str | None = next_cursor()


class PeerOut(Answer):
    """Who the business talks to: any of the identifiers may be missing."""

    id: int
    phone: str | None
    user_id: str | None = Field(description="Meta's business-scoped user id (BSUID).")
    username: str | None
    name: str | None


class LastMessage(Answer):
    wamid: str
    sent_at: str | None
    direction: str = Field(examples=["inbound", "outbound"])
    type: str
    text: str | None = Field(description="At most 200 characters; null once revoked.")


class ThreadCounts(Answer):
    messages: int
    inbound: int
    outbound: int


class ThreadOut(Answer):
    peer: PeerOut
    last_message: LastMessage
    counts: ThreadCounts


class ThreadPage(Answer):
    threads: list[ThreadOut]
    next_cursor: str | None = next_cursor()


class MediaOut(Answer):
    state: MediaState
    mime: str | None
    sha256: str | None
    size: int | None
    error: str | None
    url: str | None = Field(description="`/v1/media/{sha256}` once the bytes are stored.")


class MessageOut(Answer):
    id: int
    wamid: str
    peer_id: int
    source: str = Field(examples=["history", "app_echo", "api", "live"])
    direction: str = Field(examples=["inbound", "outbound"])
    status: str | None
    sent_at: str | None
    type: str
    text: str | None = Field(description="The newest edit's text, or a caption; null once revoked.")
    edited: bool
    edited_at: str | None
    revoked: bool
    revoked_at: str | None
    media: MediaOut | None = Field(description="null: the message has no media.")


class MessagePage(Answer):
    messages: list[MessageOut]
    next_cursor: str | None = next_cursor()


class ContactOut(Answer):
    id: int
    phone: str | None
    full_name: str | None
    first_name: str | None
    removed: bool
    removed_at: str | None
    changed_at: str | None
    peer: PeerOut


class ContactPage(Answer):
    contacts: list[ContactOut]
    next_cursor: str | None = next_cursor()
