"""Cellar's pool agent: consumes `pool.<name>`, holds no database credentials."""

__version__ = "0.1.0"
