"""Benchmarks (not part of the test run); see docs/PERFORMANCE.md for the commands and the figures."""
