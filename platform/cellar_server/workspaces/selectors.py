"""Reads for workspaces."""

from __future__ import annotations

from django.contrib.auth import get_user_model


def user_for_hub_name(name: str):
    """The active Cellar user a hub user name stands for (hub names are Cellar user names)."""
    if not name:
        return None
    return get_user_model().objects.filter(username=name, is_active=True).first()
