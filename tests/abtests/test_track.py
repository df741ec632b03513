"""`cellar.track`'s background batcher against the live web server, and the CLI registration."""

import subprocess
import sys

import pytest

from cellar.abstats.track import Tracker
from cellar.client import CellarAPIError, Client
from cellar_server.abtests.models import Event
from tests.factories import mint_token

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def tracker(live_server, team, members):
    _, raw = mint_token(team, members["editor"], scopes=["experiments:write"])
    return Tracker(Client(live_server.url, raw), team="acme", interval=0.1)


def test_batches_arrive_once_each(tracker, make_test):
    test = make_test()
    for i in range(7_500):  # more than one 5,000-event batch
        tracker.track(test=test.pk, unit_id=f"u{i % 300}", name="revenue", value=i * 0.5, event_id=f"e{i}")
    tracker.track(test=test.pk, unit_id="u1", name="revenue", value=1.0, event_id="e1")  # a resend
    tracker.flush()
    assert Event.all_teams.filter(test=test).count() == 7_500
    assert tracker.sent == 7_500 and tracker.duplicates == 1


def test_a_refusal_is_raised_from_the_next_flush(tracker, make_test):
    test = make_test()
    tracker.track(test=test.pk, unit_id="u1", name="not a name", value=1)
    with pytest.raises(CellarAPIError) as err:
        tracker.flush()
    assert err.value.code == "invalid_events"
    with pytest.raises(ValueError):
        tracker.track(test=test.pk, unit_id="u1", name="converted", value=float("nan"))


def test_simulate_traffic_is_a_cli_command():
    out = subprocess.run(
        [sys.executable, "-m", "cellar.cli", "simulate-traffic", "--help"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0 and "--effect" in out.stdout
