"""The ten public scenarios (shared/zoo, copied as tests/zoo_scenarios.py), run for real.

Each runs once (module cache) as a real `%%nanwatch` cell; the location and the
diagnosis are checked by separate tests so a failure says which half is wrong.
"""

import pytest

from expectations import check_causes, check_location
from zoo_scenarios import SCENARIOS

_runs: dict = {}


def _run(cell, name):
    if name not in _runs:
        scenario = SCENARIOS[name]
        result, report = cell.run(scenario["code"], setup=scenario.get("setup"))
        assert result.error_in_exec is None, result.error_in_exec
        _runs[name] = report
    return _runs[name]


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_zoo_location(cell, name):
    report = _run(cell, name)
    problems = check_location(report.to_dict(), SCENARIOS[name]["expect"])
    assert not problems, f"{name}: {problems}\n{report.to_text()}"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_zoo_diagnosis(cell, name):
    report = _run(cell, name)
    problems = check_causes(report.to_dict(), SCENARIOS[name]["expect"])
    assert not problems, f"{name}: {problems}\n{report.to_text()}"
