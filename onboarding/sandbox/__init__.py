"""A faithful fake of the Meta Graph API endpoints coexist uses: the sandbox.

Use it in-process through ``httpx.MockTransport`` (:meth:`Sandbox.mock_transport`) or as a real
HTTP server (:class:`SandboxServer`), seeded with :meth:`Sandbox.add_business`, driven with
:meth:`Sandbox.complete_signup` and the ``/_sandbox/`` control API, and perturbed with
:class:`Faults`. See :mod:`.facade` for the modelled endpoints and :mod:`.control` for the control
API. After an accepted sync, :meth:`Sandbox.configure_webhooks` makes it deliver Meta's
``history``, ``smb_app_state_sync`` and ``smb_message_echoes`` webhooks (:mod:`.webhooks`),
generated from a :class:`HistoryProfile` (:mod:`.history`), and serve the synced media.
"""

from onboarding.sandbox.facade import Sandbox
from onboarding.sandbox.faults import ENDPOINTS, FaultRule, Faults
from onboarding.sandbox.history import GeneratedChunk, HistoryGenerator
from onboarding.sandbox.injection import DroppedResponse
from onboarding.sandbox.media_items import MediaItem
from onboarding.sandbox.numbers import format_display_number, normalize_digits
from onboarding.sandbox.profile import HistoryPlan, HistoryProfile, NumberContext
from onboarding.sandbox.records import (
    AcceptedSync,
    Business,
    NumberSpec,
    SeededNumber,
    SentMessage,
    SignupResult,
    SyncListener,
)
from onboarding.sandbox.server import SandboxServer, serve_forever
from onboarding.sandbox.signing import sign_body, verify_signature
from onboarding.sandbox.sinks import CollectingSink, DeliveryRecord, ReceivedWebhook, Sink
from onboarding.sandbox.webhook_config import DeliveryOptions, WebhookConfig
from onboarding.sandbox.webhooks import WebhookDispatcher

__all__ = [
    "ENDPOINTS",
    "AcceptedSync",
    "Business",
    "CollectingSink",
    "DeliveryOptions",
    "DeliveryRecord",
    "DroppedResponse",
    "FaultRule",
    "Faults",
    "GeneratedChunk",
    "HistoryGenerator",
    "HistoryPlan",
    "HistoryProfile",
    "MediaItem",
    "NumberContext",
    "NumberSpec",
    "ReceivedWebhook",
    "Sandbox",
    "SandboxServer",
    "SeededNumber",
    "SentMessage",
    "SignupResult",
    "Sink",
    "SyncListener",
    "WebhookConfig",
    "WebhookDispatcher",
    "format_display_number",
    "normalize_digits",
    "serve_forever",
    "sign_body",
    "verify_signature",
]
