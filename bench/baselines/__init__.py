"""Baseline workers for bench.run_benchmarks; each runs as `python -m bench.baselines.NAME`."""
