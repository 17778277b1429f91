"""Benchmarks of the phone against baresip (``python -m bench.run``; ``--quick`` for CI)."""
