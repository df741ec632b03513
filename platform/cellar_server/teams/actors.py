"""Who is acting: a user, possibly through an API token. Services take an Actor."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from cellar_server.teams.models import ApiToken


@dataclass(frozen=True)
class Actor:
    user: AbstractBaseUser | None
    token: ApiToken | None = None

    @property
    def name(self) -> str:
        return self.user.get_username() if self.user is not None else "system"


SYSTEM = Actor(user=None)


def actor_from_request(request) -> Actor:
    from cellar_server.teams.models import ApiToken

    token = request.auth if isinstance(getattr(request, "auth", None), ApiToken) else None
    user = request.user if request.user.is_authenticated else None
    return Actor(user=user, token=token)
