"""Writes for experiment tracking. Every write is idempotent under retry."""
