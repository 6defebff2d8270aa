"""Benchmarks of what users wait on: serving (the project against two peers) and the pipeline.

`make bench` runs everything and writes bench/RESULTS.md and bench/results.json;
`make bench-smoke` runs a few seconds per server so the harness cannot rot (CI, via
tests/test_bench_smoke.py). The machine is shared and has two cores: every comparison is made
between servers measured in the same run, interleaved, over several rounds, and reported as
medians and ratios.
"""
