"""nanwatch's own core scenarios (tests/scenarios/core.py): checked against `expect` and against raw tfdbg2.

Each runs once (the `runner` fixture); the two checks are separate tests.
"""

import pytest

from tests.scenarios import tfdbg2_oracle
from tests.scenarios.catalogue import check_location
from tests.scenarios.core import SCENARIOS


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_core_scenario(runner, name):
    report = runner.report(SCENARIOS[name])
    problems = check_location(report.to_dict(), SCENARIOS[name].expect)
    assert not problems, f"{name}: {problems}\n{report.to_text()}"


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_core_scenario_agrees_with_tfdbg2(runner, name):
    """The op nanwatch names is the op raw tfdbg2 finds first (data origins: a data op)."""
    scenario = SCENARIOS[name]
    cells = [c for c in (scenario.setup, scenario.code) if c]
    truth = tfdbg2_oracle.first_nonfinite(*cells)
    assert truth is not None, "raw tfdbg2 saw no non-finite tensor"
    first = runner.report(scenario).to_dict()["first_nonfinite"]
    assert first is not None
    if first["op_type"] is None:
        assert truth["op_type"] in tfdbg2_oracle.DATA_OPS, (truth, first)
    else:
        assert first["op_type"] == truth["op_type"], (truth, first)
