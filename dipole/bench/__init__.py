"""Benchmark suites, the resumable runner and its backends, sweeps, tables, statistics and the quickstart."""
