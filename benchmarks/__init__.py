"""Benchmarks: they print figures and compare side by side; they assert nothing."""
