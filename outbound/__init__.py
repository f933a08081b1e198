"""Outbound calls that are not dialled at once: scheduled calls, campaigns with calling windows,
pacing and retries, and the do-not-call list (docs/outbound.md)."""
