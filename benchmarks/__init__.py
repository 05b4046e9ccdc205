"""Benchmarks and their yardsticks (``classic_loop``): run from the repo root; not installed."""
