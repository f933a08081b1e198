"""Logs, metrics and health: what an operator watches. Imports no feature package."""
