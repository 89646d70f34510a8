"""Benchmarks and measured figures for resilient_requests (loopback only)."""
