"""The `runner` fixture: the one ScenarioRunner (tests/scenarios/runner.py) every scenario test uses."""

import pytest

from tests.scenarios.runner import ScenarioRunner


@pytest.fixture(scope="session")
def runner(shell):
    return ScenarioRunner(shell)
