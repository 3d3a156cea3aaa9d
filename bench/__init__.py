"""Benchmarks of the credit pipeline: `python -m bench.run` (or `make bench`) writes docs/benchmarks.md."""
