"""Benchmarks: scripts that run coexist's real processes and print one JSON object.

Run them as modules from the project root (``python -m benchmarks.signup_latency``). The
process harness in :mod:`benchmarks._harness` is shared with ``tests/integration``.
"""
