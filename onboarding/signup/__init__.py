"""From the browser's hand-off to a subscribed number: the first minutes of an onboarding.

* :mod:`.intake` — ``POST /signup``'s body, validated and recorded (one onboarding per code);
* :mod:`.records` — signups that start no onboarding (abandoned, or finished in a flow coexist
  does not onboard), kept once per body and listed for operators;
* :mod:`.handoff` — the code exchange (the code dies 30 s after signup), number resolution,
  ``subscribed_apps``; and the list of signups whose exchange must be sent again;
* :mod:`.eligibility` — the region policy applied to the number;
* :mod:`.routing` — subscribing the WABA without removing the provider's webhook override, and
  taking back coexist's own override when the onboarding ends.
"""
