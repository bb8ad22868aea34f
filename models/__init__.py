"""SQLAlchemy models, engine and sessions."""

from models.base import Base, utcnow
from models.db import Database
from models.erasure import Erasure, ErasureState
from models.feed import FeedCursor, FeedEvent
from models.followups import FollowUp, FollowUpKind, FollowUpStatus, Notification
from models.ingest import (
    ChangeKind,
    Contact,
    Direction,
    DroppedMessage,
    HistoryChunk,
    InboxDelivery,
    InboxStatus,
    MediaState,
    Message,
    MessageChange,
    MessageSource,
    PendingStatus,
)
from models.onboarding import (
    SYNC_ACCEPTED,
    SYNC_DONE,
    TRANSITIONS,
    AbandonedSignup,
    Alert,
    Onboarding,
    OnboardingState,
    RecordedFinish,
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
    "ChangeKind",
    "Contact",
    "Database",
    "Direction",
    "DroppedMessage",
    "Erasure",
    "ErasureState",
    "FeedCursor",
    "FeedEvent",
    "FollowUp",
    "FollowUpKind",
    "FollowUpStatus",
    "HistoryChunk",
    "InboxDelivery",
    "InboxStatus",
    "MediaState",
    "Message",
    "MessageChange",
    "MessageSource",
    "Notification",
    "Onboarding",
    "OnboardingState",
    "Peer",
    "PendingStatus",
    "RecordedFinish",
    "SyncRequest",
    "SyncState",
    "SyncType",
    "Transition",
    "UserIdChange",
    "utcnow",
]
