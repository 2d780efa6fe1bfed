"""Benchmarks. Run one with `make bench-NAME` (or `python -m bench.NAME` from the repo root):
each prints a ratio against a raw baseline measured in the same run."""
