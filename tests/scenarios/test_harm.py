"""The harm scenarios (tests/scenarios/harm.py, issue 14), run for real as `%%nanwatch` cells.

nanwatch alarms when a non-finite value reaches the training (a loss, metric or prediction, an applied
gradient, the model's or optimizer's state), not when an op merely outputs one: HEALTHY cells hold
intentional NaN/Inf that are absorbed on the way and must end `healthy`, with the absorbed origins named
in `info`; HARMFUL cells must name the origin of the value that reached the training. Each scenario runs
through the one runner (the `runner` fixture) twice: with its own options (the default mode: fast for
Keras fit/train_on_batch, exact for custom loops, which always run exact) and with `--mode exact`.
Every mode applies to every cell (a custom loop asked for exact runs exact, as it would anyway), so no
parametrisation is skipped. All of a scenario's `expect` is checked by the catalogue's checks, with one
exception: `absorbed` is not asked of a run the report says was fast, because a fast run checks no op
while the sinks stay finite (README "Two modes"): it cannot see what was absorbed on the way.
"""

import pytest

from tests.scenarios.catalogue import check_causes, check_location
from tests.scenarios.harm import SCENARIOS

pytestmark = pytest.mark.slow

MODES = {"default": None, "exact": "--no-panel --mode exact"}


@pytest.mark.parametrize("mode", sorted(MODES))
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_harm_scenario(runner, name, mode):
    report = runner.report(SCENARIOS[name], options=MODES[mode])
    data = report.to_dict()
    expect = dict(SCENARIOS[name].expect)
    if data["mode"] == "fast":
        expect.pop("absorbed", None)
    problems = check_location(data, expect) + check_causes(data, expect)
    assert not problems, f"{name} ({mode}, ran {data['mode']}): {problems}\n{report.to_text()}"
