"""Chaos tests: the real stack with parts of it broken on purpose (see docs/reliability.md)."""
