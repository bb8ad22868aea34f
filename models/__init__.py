"""SQLAlchemy models, engine and sessions."""

from models.base import Base, utcnow
from models.db import Database
from models.followups import FollowUp, FollowUpKind, FollowUpStatus, Notification
from models.ingest import (
    Contact,
    Direction,
    DroppedMessage,
    HistoryChunk,
    InboxDelivery,
    InboxStatus,
    MediaState,
    Message,
    MessageSource,
)
from models.onboarding import (
    SYNC_ACCEPTED,
    SYNC_DONE,
    TRANSITIONS,
    AbandonedSignup,
    Alert,
    Onboarding,
    OnboardingState,
    SyncRequest,
    SyncState,
    SyncType,
    Transition,
)
from models.peers import Peer, UserIdChange

__all__ = [
    "SYNC_ACCEPTED",
    "SYNC_DONE",
    "TRANSITIONS",
    "AbandonedSignup",
    "Alert",
    "Base",
    "Contact",
    "Database",
    "Direction",
    "DroppedMessage",
    "FollowUp",
    "FollowUpKind",
    "FollowUpStatus",
    "HistoryChunk",
    "InboxDelivery",
    "InboxStatus",
    "MediaState",
    "Message",
    "MessageSource",
    "Notification",
    "Onboarding",
    "OnboardingState",
    "Peer",
    "SyncRequest",
    "SyncState",
    "SyncType",
    "Transition",
    "UserIdChange",
    "utcnow",
]
