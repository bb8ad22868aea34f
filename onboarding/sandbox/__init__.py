"""A faithful fake of the Meta Graph API endpoints coexist uses: the sandbox.

Use it in-process through ``httpx.MockTransport`` (:meth:`Sandbox.mock_transport`) or as a real
HTTP server (:class:`SandboxServer`), seeded with :meth:`Sandbox.add_business`, driven with
:meth:`Sandbox.complete_signup` and the ``/_sandbox/`` control API, and perturbed with
:class:`Faults`. See :mod:`.facade` for the modelled endpoints and :mod:`.control` for the control
API. After an accepted sync, :meth:`Sandbox.configure_webhooks` makes it deliver Meta's
``history``, ``smb_app_state_sync`` and ``smb_message_echoes`` webhooks (:mod:`.webhooks`),
generated from a :class:`HistoryProfile` (:mod:`.history`), and serve the synced media.

The modules, each importing only those above it (this ``__init__`` only re-exports):

===================  ===========================================================================
``errors``           the Graph error reply (:class:`~.errors.GraphReplyError`) and its envelope
``faults``           the fault configuration (:class:`Faults`, :class:`FaultRule`)
``records``          immutable records handed to callers (businesses, signups, syncs, sends)
``numbers``          E.164 digits and Graph's display format
``profile``          what is generated and for whom: profile, number context, history plan
``payloads``         the shapes of the webhook values and their envelope
``media_items``      generated media and their bytes
``identities``       who users are to Meta: business-scoped user ids, usernames, visible numbers
``layout``           where each history message sits: phase, thread, direction, age
``contacts``         generated contacts, their initial sync, edits, removes and joins
``history``          the generated history, late-media webhooks and echoes
``signing``          webhook body bytes and ``X-Hub-Signature-256``
``sinks``            delivery targets (in-process, HTTP) and delivery outcome records
``webhook_config``   what the webhooks deliver and how (config, delivery options)
``delivery_plan``    the ordered, signed deliveries of one sync
``webhooks``         the dispatcher: queue, workers, retries, counters
``throughput``       per-number send throughput and the record of accepted sends
``injection``        the faults drawn for one call, dropped responses
``world``            the state: app and rules, businesses, WABAs, numbers, codes, tokens, clock
``webhook_routing``  where a delivery goes: the number's override, the WABA's, the app's callback
``signups``          the browser half of Embedded Signup
``hosted``           the stand-in JavaScript SDK and signup dialog of the hosted page
``routes``           a request's route and parameters, answer shapes
``auth``             code exchange, token and ``appsecret_proof`` checks
``token_debug``      ``debug_token``: what Meta knows of a token
``nodes``            the number and WABA nodes and their fields
``waba_edges``       ``phone_numbers`` (paged) and ``subscribed_apps``
``messages``         the Cloud API send
``number_edges``     ``smb_app_data``, ``register``/``deregister``, ``messages``
``media``            media registration, the media node and the download URL
``graph``            the Graph dispatch: authentication, ownership, node or edge
``control``          the ``/_sandbox/`` control API
``facade``           :class:`Sandbox`: the state, the faults and the webhooks behind one front
``server``           :class:`SandboxServer`: the sandbox over real HTTP
===================  ===========================================================================
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
