"""Real numerical bugs written by others (tests/scenarios/realbugs.py, issue 15 item 6), run for real.

Every ported program runs once as a `%%nanwatch` cell (the `runner` fixture). For each: the catalogue's
checks of its `expect` (detection where raw TensorFlow went non-finite, `healthy` where it did not, and the
origin and cause where nanwatch gets them), then its score (tests/tools/realbug_rates.py `score`) must be
the one recorded in FACTS[name]["nanwatch"]: docs/real-bugs.md's table and rates are those scores, so a
change in what nanwatch says about a real bug, better or worse, fails here until FACTS and the doc follow.
The fixed programs must be healthy.
"""

import pytest

from tests.scenarios.catalogue import check_causes, check_location
from tests.scenarios.realbugs import FACTS, FIXED, SCENARIOS
from tests.tools.realbug_rates import rates, score

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_real_bug(runner, name):
    scenario = SCENARIOS[name]
    report = runner.report(scenario)
    data = report.to_dict()
    problems = check_location(data, scenario.expect) + check_causes(data, scenario.expect)
    assert not problems, f"{name}: {problems}\n{report.to_text()}"
    assert score(data, FACTS[name]) == FACTS[name]["nanwatch"], report.to_text()


@pytest.mark.parametrize("name", list(FIXED))
def test_fixed_program_is_healthy(runner, name):
    report = runner.report(FIXED[name])
    data = report.to_dict()
    problems = check_location(data, FIXED[name].expect) + check_causes(data, FIXED[name].expect)
    assert not problems, f"{name}: {problems}\n{report.to_text()}"


def _report(status="nonfinite", op="Log", code="y = tf.math.log(p)", layer=None, cause="log_of_nonpositive",
            fix="use from_logits=True"):
    return {"status": status, "first_nonfinite": {"op_type": op, "layer": layer, "source": {"code": code}},
            "diagnosis": [{"cause": cause, "fix": fix}] if cause else []}


def test_score_needs_the_op_and_its_line_or_layer():
    facts = {"ops": {"Log"}, "line": "tf.math.log(p)", "causes": {"log_of_nonpositive"}, "fix_words": ("from_logits",)}
    assert score(_report(), facts) == {"detected": True, "localised": True, "cause": True, "fix_location": True}
    assert score(_report(code="z = p * 2"), facts)["localised"] is False
    assert score(_report(op="Mul"), facts)["localised"] is False
    assert score(_report(op="Mul"), facts)["fix_location"] is False      # a right fix at the wrong place
    assert score(_report(cause="exp_overflow"), facts)["cause"] is False
    assert score(_report(fix="lower the learning rate"), facts)["fix_location"] is False
    assert score(_report(status="warning"), facts) == dict.fromkeys(("detected", "localised", "cause", "fix_location"), False)
    keras_facts = {"ops": {"Exp"}, "layer": "activation_1", "causes": {"exp_overflow"}, "fix_words": ("activation",)}
    assert score(_report(op="Exp", code="model.fit(X, Y)", layer="activation_1"), keras_facts)["localised"] is True
    assert score(_report(op="Exp", code="model.fit(X, Y)", layer="activation"), keras_facts)["localised"] is False


def test_rates_count_reproducing_bugs_and_healthy_fixes():
    facts = {"a": {"reproduces": True}, "b": {"reproduces": True}, "c": {"reproduces": False}, "f": {"fixed": True}}
    yes = dict.fromkeys(("detected", "localised", "cause", "fix_location", "healthy"), True)
    no = dict.fromkeys(yes, False)
    r = rates({"a": yes, "b": dict(no, detected=True), "c": yes, "f": yes}, facts)
    assert (r["ported"], r["reproducing"], r["detected"], r["localised"], r["fixed_healthy"]) == (3, 2, 2, 1, 1)


def test_every_scenario_has_its_facts():
    assert set(FACTS) == set(SCENARIOS) | set(FIXED)
    assert len(SCENARIOS) >= 15 and len(FIXED) >= 3
    for name, facts in FACTS.items():
        assert facts.get("fixed", False) == (name in FIXED), name
        if facts.get("reproduces"):
            assert {"ops", "causes", "fix_words", "nanwatch"} <= set(facts) and ("line" in facts or "layer" in facts), name
