"""Two owners demoting each other at the same moment must leave one owner.

Locking differs between PostgreSQL (row locks) and SQLite (IMMEDIATE
transactions), so `make test` runs this on both.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from cellar_server.core.exceptions import ServiceError
from cellar_server.teams import services
from cellar_server.teams.actors import Actor
from cellar_server.teams.models import Membership, Team
from tests.factories import UserFactory, add_member

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.both_databases]


def _race(actions):
    barrier = threading.Barrier(len(actions))
    outcomes: list[str] = []

    def run(action):
        try:
            barrier.wait()
            action()
            outcomes.append("ok")
        except ServiceError as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(a,)) for a in actions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sorted(outcomes)


@pytest.mark.parametrize("attempt", range(3))
def test_two_owners_demoting_each_other_leave_one_owner(attempt):
    team = Team.objects.create(slug=f"race-{attempt}", name="Race")
    ann = add_member(team, UserFactory(username=f"ann{attempt}"), "owner")
    bob = add_member(team, UserFactory(username=f"bob{attempt}"), "owner")
    outcomes = _race(
        [
            lambda: services.membership_role_change(actor=Actor(user=ann), team=team, user_id=bob.pk, role="viewer"),
            lambda: services.membership_role_change(actor=Actor(user=bob), team=team, user_id=ann.pk, role="viewer"),
        ]
    )
    owners = Membership.all_teams.filter(team=team, role="owner").count()
    assert owners == 1, outcomes
    assert outcomes in (["last_owner", "ok"], ["ok", "owner_required"])


def test_two_owners_leaving_at_once_leave_one_owner():
    team = Team.objects.create(slug="race-leave", name="Race")
    ann = add_member(team, UserFactory(username="ann"), "owner")
    bob = add_member(team, UserFactory(username="bob"), "owner")
    outcomes = _race(
        [
            lambda: services.membership_remove(actor=Actor(user=ann), team=team, user_id=ann.pk),
            lambda: services.membership_remove(actor=Actor(user=bob), team=team, user_id=bob.pk),
        ]
    )
    assert outcomes == ["last_owner", "ok"]
    assert Membership.all_teams.filter(team=team, role="owner").count() == 1
