"""Benchmark scripts (run as ``python benchmarks/NAME.py``); a package so that they
import their shared helpers as ``benchmarks.common`` ahead of any other module of
that name."""
