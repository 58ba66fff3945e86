"""The conformance suite: every fixture layout gives the throughput it states."""

from __future__ import annotations

import pytest

from tests.conftest import FIXTURE_FILES
from training.sim.fixtures import Fixture, check, load_fixtures

FIXTURES: list[Fixture] = [f for path in FIXTURE_FILES for f in load_fixtures(path)]


def test_the_suite_is_large_enough() -> None:
    assert len(FIXTURES) >= 60


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.name)
def test_fixture(fixture: Fixture) -> None:
    outcome = check(fixture)
    assert outcome.passed, f"{fixture.description}\nexpected {sorted(fixture.expected)}\ngot {outcome.got}"
