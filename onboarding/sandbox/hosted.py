"""Meta's side of the hosted signup page, offline: a stand-in JavaScript SDK and its dialog.

``GET /_sandbox/sdk.js`` defines ``FB.init`` and ``FB.login`` as Meta's SDK does (and calls
``window.fbAsyncInit``). ``FB.login`` opens ``GET /_sandbox/signup-dialog`` in a popup on the
sandbox's origin, where the "business" picks one of the sandbox's Business app numbers and
presses Connect, then Finish (or Cancel). The dialog mints a real sandbox code through the
control API (``POST /_sandbox/signups``, or ``/_sandbox/cancellations``), posts the
``WA_EMBEDDED_SIGNUP`` session-info ``message`` event to the opener as Meta does (a JSON
string, from the sandbox's origin), and hands the code to ``FB.login``'s callback.

Between Connect and Finish the business is "confirming in the app": a test can hold the code
there (advance the sandbox clock past its 30 s) to see an expired code. Meta's flow:
https://developers.facebook.com/documentation/business-messaging/whatsapp/embedded-signup/implementation
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from typing import Final

import httpx

SDK_PATH: Final = "/_sandbox/sdk.js"
DIALOG_PATH: Final = "/_sandbox/signup-dialog"
HOSTED_PATHS: Final = frozenset({SDK_PATH, DIALOG_PATH})

_SDK: Final = """/* coexist sandbox: a stand-in for Meta's JavaScript SDK (FB.init, FB.login). */
(function () {
  "use strict";
  var SANDBOX = %(origin)s;
  var settings = {};
  var pending = null;
  window.FB = {
    init: function (options) { settings = options || {}; },
    login: function (callback, options) {
      options = options || {};
      pending = callback;
      var query = new URLSearchParams({
        origin: window.location.origin,
        app_id: String(settings.appId || ""),
        version: String(settings.version || ""),
        config_id: String(options.config_id || ""),
        response_type: String(options.response_type || ""),
        extras: JSON.stringify(options.extras || {})
      });
      window.open(SANDBOX + "%(dialog)s?" + query.toString(), "coexist-sandbox-signup",
                  "width=520,height=640");
    }
  };
  window.addEventListener("message", function (event) {
    if (event.origin !== SANDBOX) { return; }
    var data = event.data;
    if (!data || typeof data !== "object" || data.sandboxSdk !== "auth" || !pending) { return; }
    var callback = pending;
    pending = null;
    callback(data.code ? {status: "connected", authResponse: {code: data.code}}
                       : {status: "unknown", authResponse: null});
  });
  if (typeof window.fbAsyncInit === "function") { window.fbAsyncInit(); }
})();
"""

_DIALOG: Final = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Embedded Signup (sandbox)</title>
<style>
body{font:15px system-ui,sans-serif;margin:24px;color:#1c1e21}
h1{font-size:18px}button{font:inherit;padding:8px 16px;margin-right:8px}
.note{color:#606770;font-size:13px}
</style></head>
<body>
<h1>Connect your WhatsApp Business app</h1>
<p class="note">coexist sandbox, standing in for Meta's Embedded Signup.
Requested: <code id="extras">%(extras)s</code></p>
<form id="pick" onsubmit="return false">
<label for="waba">Business app number</label>
<select id="waba">%(options)s</select>
<p><button id="connect" type="button">Connect</button>
<button id="cancel" type="button">Cancel</button></p>
</form>
<section id="confirm" hidden>
<p>Open the message from Facebook Business in your WhatsApp Business app, tap Connect and
confirm. Then finish here.</p>
<p><button id="finish" type="button">Finish</button></p>
</section>
<p id="status" class="note"></p>
<script>
(function () {
  "use strict";
  var params = new URLSearchParams(window.location.search);
  var opener = window.opener;
  var target = params.get("origin") || "";
  var result = null;
  function tell(session, code) {
    if (!opener) { document.getElementById("status").textContent = "no page to return to"; return; }
    opener.postMessage(JSON.stringify(session), target);
    opener.postMessage({sandboxSdk: "auth", code: code}, target);
    window.close();
  }
  function post(path, body) {
    return fetch(path, {method: "POST", headers: {"Content-Type": "application/json"},
                        body: JSON.stringify(body)}).then(function (r) {
      if (!r.ok) { throw new Error("sandbox answered " + r.status); }
      return r.json();
    });
  }
  document.getElementById("connect").addEventListener("click", function () {
    var waba = document.getElementById("waba").value;
    post("/_sandbox/signups", {waba_id: waba}).then(function (answer) {
      result = answer;
      document.getElementById("pick").hidden = true;
      document.getElementById("confirm").hidden = false;
    }).catch(function (e) { document.getElementById("status").textContent = String(e); });
  });
  document.getElementById("finish").addEventListener("click", function () {
    if (result) { tell(result.session, result.code); }
  });
  document.getElementById("cancel").addEventListener("click", function () {
    post("/_sandbox/cancellations", {current_step: "PHONE_NUMBER_SETUP"}).then(function (a) {
      tell(a.session, null);
    }).catch(function (e) { document.getElementById("status").textContent = String(e); });
  });
})();
</script>
</body></html>
"""


def sdk_script(origin: str) -> httpx.Response:
    """The stand-in SDK, bound to the sandbox's own ``origin`` (where its dialog lives)."""
    body = _SDK % {"origin": json.dumps(origin), "dialog": DIALOG_PATH}
    return httpx.Response(
        200,
        headers={
            "content-type": "text/javascript; charset=utf-8",
            "cache-control": "no-store",
            "access-control-allow-origin": "*",
        },
        content=body.encode(),
    )


def dialog_page(extras: str, numbers: Iterable[tuple[str, str]]) -> httpx.Response:
    """The signup dialog offering ``numbers`` as (WABA id, label) pairs."""
    options = "".join(
        f'<option value="{html.escape(waba_id)}">{html.escape(label)}</option>'
        for waba_id, label in numbers
    )
    body = _DIALOG % {"extras": html.escape(extras[:500]), "options": options}
    return httpx.Response(
        200,
        headers={"content-type": "text/html; charset=utf-8", "cache-control": "no-store"},
        content=body.encode(),
    )
