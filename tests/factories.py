"""factory_boy factories and small builders for teams data."""

from __future__ import annotations

import factory
from django.contrib.auth import get_user_model

from cellar_server.teams import services
from cellar_server.teams.actors import SYSTEM, Actor
from cellar_server.teams.models import Membership, Team

PASSWORD = "correct-horse-battery"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):
        if create:
            obj.save()


class TeamFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Team
        django_get_or_create = ("slug",)

    slug = factory.Sequence(lambda n: f"team-{n}")
    name = factory.LazyAttribute(lambda t: t.slug.title())


def add_member(team: Team, user, role: str):
    Membership.all_teams.create(team=team, user=user, role=role)
    return user


def mint_token(team: Team, user, scopes=None, expires_in_days=90):
    return services.api_token_create(
        actor=Actor(user=user), team=team, name="test", scopes=scopes, expires_in_days=expires_in_days
    )


__all__ = ["SYSTEM", "PASSWORD", "TeamFactory", "UserFactory", "add_member", "mint_token"]
