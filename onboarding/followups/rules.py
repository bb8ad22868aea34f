"""Meta's coexistence rules the reminders are about, stated once.

The scheduler stores them in a reminder's content and the renderer falls back on them; both
read them here.
"""

from __future__ import annotations

from typing import Final

#: Companions that keep working on a coexistence number once linked again.
SUPPORTED_COMPANIONS: Final = (
    "WhatsApp Web",
    "WhatsApp for Mac",
    "WhatsApp on a second phone",
    "WhatsApp on iPad",
)
#: Companions that do not: their chats show placeholders instead of messages.
UNSUPPORTED_COMPANIONS: Final = ("WhatsApp for Windows", "WearOS")
#: Meta disconnects a number whose Business app was not opened for about this many days.
INACTIVITY_DISCONNECT_DAYS: Final = 14
