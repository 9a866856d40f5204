"""Timing scripts of `friendly` (run as `python friendly/benchmarks/<name>.py`) and what they
share (benchmarking.py)."""
