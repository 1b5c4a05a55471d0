"""The diagnosis scenarios (tests/scenarios/diagnosis.py), run for real as `%%nanwatch` cells.

SCENARIOS: each must locate (phase/op/layer/line, when its `expect` says) and diagnose (top cause /
any cause / status) as measured with raw TensorFlow. FALSE_ALARMS: healthy trainings, no diagnosis
and no warning allowed. Each scenario runs once (the `runner` fixture); location and diagnosis are
checked by separate tests so a failure says which half is wrong.
"""

import pytest

from tests.scenarios.catalogue import check_causes, check_location
from tests.scenarios.diagnosis import FALSE_ALARMS, SCENARIOS

pytestmark = pytest.mark.slow

# Location mismatches that are engine bugs, marked strict xfail (an XPASS fails: remove the entry then).
# The three found on 2026-11-23 (d11, d12, d16) are fixed; kept empty so a new one can be marked here.
ENGINE_ISSUES: dict = {}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=ENGINE_ISSUES[n]))
                                  if n in ENGINE_ISSUES else n for n in sorted(SCENARIOS)])
def test_scenario_location(runner, name):
    report = runner.report(SCENARIOS[name])
    problems = check_location(report.to_dict(), SCENARIOS[name].expect)
    assert not problems, f"{name}: {problems}\n{report.to_text()}"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_diagnosis(runner, name):
    report = runner.report(SCENARIOS[name])
    problems = check_causes(report.to_dict(), SCENARIOS[name].expect)
    assert not problems, f"{name}: {problems}\n{report.to_text()}"


@pytest.mark.parametrize("name", sorted(FALSE_ALARMS))
def test_false_alarm(runner, name):
    report = runner.report(FALSE_ALARMS[name])
    data = report.to_dict()
    problems = check_location(data, FALSE_ALARMS[name].expect) + check_causes(data, FALSE_ALARMS[name].expect)
    assert not problems, f"{name}: {problems}\n{report.to_text()}"
