/* The hosted signup page: launch Embedded Signup, hand its code over at once, show progress. */
(function () {
  "use strict";
  var root = document.getElementById("connect");
  if (!root) { return; }
  var cfg = root.dataset;
  var link = new URLSearchParams({ref: cfg.ref, exp: cfg.exp, sig: cfg.sig}).toString();
  var button = document.getElementById("start");
  var statusLine = document.getElementById("status");
  var code = null;
  var session = null;
  var sent = false;
  var ignored = 0;
  var stream = null;

  function say(text) { statusLine.textContent = text; }

  function showProblem(message, next) {
    document.getElementById("problem-message").textContent = message;
    document.getElementById("problem-next").textContent = next;
    document.getElementById("problem").hidden = false;
  }

  /* Session info comes only from Facebook (and, when configured, the sandbox standing in). */
  function trusted(origin) {
    if (cfg.sandboxOrigin && origin === cfg.sandboxOrigin) { return true; }
    var url;
    try { url = new URL(origin); } catch (e) { return false; }
    if (url.protocol !== "https:" || url.port !== "") { return false; }
    return url.hostname === "www.facebook.com" || url.hostname === "web.facebook.com" ||
      url.hostname.slice(-13) === ".facebook.com";
  }

  window.addEventListener("message", function (event) {
    if (!trusted(event.origin)) {
      ignored += 1;
      document.body.dataset.ignoredMessages = String(ignored);
      return;
    }
    var data = event.data;
    if (typeof data === "string") {
      try { data = JSON.parse(data); } catch (e) { return; }
    }
    if (!data || typeof data !== "object" || data.type !== "WA_EMBEDDED_SIGNUP") { return; }
    session = data;
    if (data.event === "CANCEL" || data.event === "ERROR") {
      handOff(null);
    } else if (code) {
      handOff(code);
    }
  });

  function loggedIn(response) {
    var auth = response && response.authResponse;
    if (auth && auth.code) {
      code = auth.code;
      if (session && session.event !== "CANCEL" && session.event !== "ERROR") { handOff(code); }
      else { say("Finishing…"); waitForSession(); }
    } else if (!session) {
      say("The signup was closed before it finished.");
      button.disabled = false;
    }
  }

  function waitForSession() {
    window.setTimeout(function () {
      if (!sent) {
        say("Meta did not tell us which account you connected.");
        showProblem("The signup did not finish.", "Start again: press the button once more.");
        button.disabled = false;
      }
    }, 5000);
  }

  function handOff(withCode) {
    if (sent) { return; }
    sent = true;
    say("Sending your signup…");
    var body = {session: session};
    if (withCode) { body.code = withCode; }
    fetch("/connect/handoff?" + link, {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify(body),
      credentials: "same-origin"
    }).then(function (answer) {
      return answer.json().then(function (json) { return {status: answer.status, json: json}; });
    }).then(function (result) {
      var json = result.json;
      if (result.status !== 202) {
        say("We could not take your signup: " + (json.detail || result.status));
        showProblem("The signup was not accepted.", "Start again, or ask for a new link.");
        sent = false;
        button.disabled = false;
        return;
      }
      if (json.abandoned_signup_id) {
        say("You left the signup before it finished. Nothing was connected.");
        showProblem("The signup was cancelled.", "Start again when you are ready.");
        root.dataset.abandoned = String(json.abandoned_signup_id);
        sent = false;
        session = null;
        code = null;
        button.disabled = false;
        return;
      }
      if (!json.watch) {
        say("Your signup was received.");
        return;
      }
      root.dataset.onboarding = String(json.onboarding_id);
      say("Connected. Here is what happens next:");
      follow(json.watch);
    }).catch(function () {
      sent = false;
      say("We could not reach the server. Check your connection and start again.");
      button.disabled = false;
    });
  }

  function follow(watch) {
    stream = new EventSource("/connect/events?" + link + "&watch=" + encodeURIComponent(watch));
    stream.addEventListener("progress", function (event) {
      var view = JSON.parse(event.data);
      draw(view);
      if (view.final) { stream.close(); }
    });
    stream.addEventListener("gone", function () { stream.close(); say("This signup is gone."); });
  }

  function draw(view) {
    var list = document.getElementById("steps");
    list.hidden = false;
    while (list.firstChild) { list.removeChild(list.firstChild); }
    view.steps.forEach(function (step) {
      var item = document.createElement("li");
      item.dataset.step = step.key;
      item.dataset.status = step.status;
      item.className = step.status;
      var label = document.createElement("span");
      label.className = "label";
      label.textContent = step.label;
      item.appendChild(label);
      if (step.detail) {
        var detail = document.createElement("span");
        detail.className = "detail";
        detail.textContent = step.detail;
        item.appendChild(detail);
      }
      if (step.key === "history" && step.status !== "stopped") {
        var bar = document.createElement("progress");
        bar.max = 100;
        bar.value = step.progress || 0;
        item.appendChild(bar);
        (step.phases || []).forEach(function (phase) {
          var p = document.createElement("span");
          p.className = "phase";
          p.textContent = "part " + (phase.phase + 1) + ": " + phase.progress + " %";
          item.appendChild(p);
        });
      }
      list.appendChild(item);
    });
    if (view.problem) {
      say("The connection stopped.");
      showProblem(view.problem.message, view.problem.next_step);
      root.dataset.problem = view.problem.kind;
      if (view.problem.kind === "code_expired") {
        sent = false;
        session = null;
        code = null;
        button.disabled = false;
      }
    }
    if (view.state === "synced") { say("All set: your WhatsApp Business app is connected."); }
  }

  button.addEventListener("click", function () {
    button.disabled = true;
    code = null;
    session = null;
    sent = false;
    if (stream) { stream.close(); stream = null; }
    document.getElementById("problem").hidden = true;
    document.getElementById("steps").hidden = true;
    say("Follow the steps in the Facebook window.");
    window.FB.login(loggedIn, {
      config_id: cfg.configId,
      response_type: "code",
      override_default_response_type: true,
      extras: JSON.parse(cfg.extras)
    });
  });

  window.fbAsyncInit = function () {
    window.FB.init({appId: cfg.appId, autoLogAppEvents: true, xfbml: false,
                    version: cfg.graphVersion});
    button.disabled = false;
    say("Ready when you are.");
  };
})();
