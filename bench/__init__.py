"""Benchmarks: Titan against the stock tools it builds on. See bench/README.md."""
