"""The benchmarks of `make bench` (bench.py runs them all and writes results.md) and the soak test of
`make soak` (soak_resume.py). Run from the repository root as modules: python -m benchmarks.bench."""
