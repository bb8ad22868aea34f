"""Benchmarks: scripts that measure coexist against the real services and print one JSON object.

Run them as modules from the project root (``python -m benchmarks.signup_latency``). The
process harness in :mod:`benchmarks._harness` is shared with ``tests/integration``.
"""
