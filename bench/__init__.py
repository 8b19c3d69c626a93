"""The benchmark harness: run_benchmarks (with baselines/) and the soak test."""
