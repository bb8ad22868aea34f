"""The hosted signup page's domain: invitation links, the hand-off they authorise, the progress.

* :mod:`.links` — signing and checking invitation links (``/connect?ref=&exp=&sig=``) and the
  watch tokens that bind a browser to the onboarding its hand-off created;
* :mod:`.service` — what the CLI, the admin API and the page call: make a link, accept a
  hand-off through the signup intake (:mod:`onboarding.signup.intake`), find what to watch;
* :mod:`.progress` — the steps and problems the page shows, read from the database.

The web side (the page, its hand-off and its event stream) is :mod:`onboarding.web.connect`.
"""
