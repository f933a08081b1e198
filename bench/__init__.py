"""Benchmarks: measured over loopback against the service under its production configuration."""
