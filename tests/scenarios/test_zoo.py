"""The ten public scenarios (tests/scenarios/zoo.py), run for real.

Each runs once (the `runner` fixture) as a real `%%nanwatch` cell; the location and the
diagnosis are checked by separate tests so a failure says which half is wrong.
"""

import pytest

from tests.scenarios.catalogue import check_causes, check_location
from tests.scenarios.zoo import SCENARIOS


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_zoo_location(runner, name):
    report = runner.report(SCENARIOS[name])
    problems = check_location(report.to_dict(), SCENARIOS[name].expect)
    assert not problems, f"{name}: {problems}\n{report.to_text()}"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_zoo_diagnosis(runner, name):
    report = runner.report(SCENARIOS[name])
    problems = check_causes(report.to_dict(), SCENARIOS[name].expect)
    assert not problems, f"{name}: {problems}\n{report.to_text()}"
