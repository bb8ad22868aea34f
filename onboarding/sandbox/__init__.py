"""A faithful fake of the Meta Graph API endpoints coexist uses: the sandbox.

Use it in-process through ``httpx.MockTransport`` (:meth:`Sandbox.mock_transport`) or as a real
HTTP server (:class:`SandboxServer`), seeded with :meth:`Sandbox.add_business`, driven with
:meth:`Sandbox.complete_signup` and the ``/_sandbox/`` control API, and perturbed with
:class:`Faults`. See :mod:`.model` for the modelled endpoints and :mod:`.control` for the control
API.
"""

from onboarding.sandbox.faults import ENDPOINTS, FaultRule, Faults
from onboarding.sandbox.model import (
    DroppedResponse,
    Sandbox,
    format_display_number,
    normalize_digits,
)
from onboarding.sandbox.records import (
    AcceptedSync,
    Business,
    NumberSpec,
    SeededNumber,
    SignupResult,
    SyncListener,
)
from onboarding.sandbox.server import SandboxServer, serve_forever

__all__ = [
    "ENDPOINTS",
    "AcceptedSync",
    "Business",
    "DroppedResponse",
    "FaultRule",
    "Faults",
    "NumberSpec",
    "Sandbox",
    "SandboxServer",
    "SeededNumber",
    "SignupResult",
    "SyncListener",
    "format_display_number",
    "normalize_digits",
    "serve_forever",
]
