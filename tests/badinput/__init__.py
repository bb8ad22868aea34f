"""Bad-input corpus: every malformed request gets its documented answer and writes nothing."""
