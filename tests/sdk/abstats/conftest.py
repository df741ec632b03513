import json
import pathlib

import pytest

DATA = pathlib.Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def growthbook_cases() -> dict:
    return json.loads((DATA / "growthbook-assignment-cases.json").read_text())


def load_golden() -> dict:
    return json.loads((DATA / "gbstats_golden.json").read_text())
