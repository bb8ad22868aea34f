"""``coexist demo``: a whole onboarding against the built-in Meta sandbox, in one process."""
