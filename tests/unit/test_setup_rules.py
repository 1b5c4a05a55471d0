"""The training set-up and domain rules on hand-built evidence (no TensorFlow): the learning rate the
optimizer used step by step (nanwatch/diagnosis/rates.py), a schedule that grows
(learning_rate_schedule_grows), a zero or negative rate (learning_rate_nonpositive), a finite input outside a
function's domain (domain_error), and the learning_rate_too_high / exploding_gradients decision, which must
not turn on a borderline number. Each firing case has a neighbour just outside the rule's condition."""

import itertools

import pytest

from nanwatch.diagnosis import diagnose
from nanwatch.diagnosis import dynamics as D
from nanwatch.diagnosis import rates

EXP_SCHEDULE = {"class": "ExponentialDecay", "name": "schedule", "custom": False, "takes_step": True,
                "config": {"initial_learning_rate": 0.01, "decay_steps": 1, "decay_rate": 1.5, "staircase": False,
                           "name": "ExponentialDecay"}}


def inp(mn, mx, zeros=0, negatives=0, size=64):
    return {"finite": True, "min": mn, "max": mx, "zeros": zeros, "negatives": negatives, "nan": 0, "pos_inf": 0,
            "neg_inf": 0, "size": size, "dtype": "float32"}


def first(op, phase, inputs, step=0, nan=0, pos_inf=0, code=None, line=None, layer=None):
    return {"op_type": op, "phase": phase, "layer": layer, "step": step, "dtype": "float32",
            "counts": {"nan": nan, "pos_inf": pos_inf, "neg_inf": 0, "size": 64}, "inputs": list(inputs),
            "source": {"cell": 1, "line": line, "code": code} if code else None}


def exploding_steps(n, start=7.0, factor=3.0):
    """Train step records whose loss and gradient norm grow geometrically, non-finite at step n."""
    steps = [{"step": s, "epoch": 0, "phase": "train", "loss": start * factor ** s, "metrics": {},
              "grad_norm": start * factor ** s} for s in range(n)]
    return steps + [{"step": n, "epoch": 0, "phase": "train", "loss": "inf", "metrics": {}, "grad_norm": "nan"}]


def flat_steps(n, loss=1.0):
    return [{"step": s, "epoch": 0, "phase": "train", "loss": loss * (1 - 0.01 * s), "metrics": {}, "grad_norm": 2.0}
            for s in range(n)]


def sgd(schedule=None, lr=0.01, **extra):
    return dict({"class": "SGD", "learning_rate": lr, "clipnorm": None, "schedule": schedule}, **extra)


def growing_evidence(schedule=EXP_SCHEDULE, fail=13, rate=lambda s: 0.01 * 1.5 ** s):
    return {"call": "fit", "optimizer": sgd(schedule, learning_rate_at_failure=rate(fail), iterations_at_failure=fail),
            "steps": exploding_steps(fail), "learning_rates": [[s, rate(s)] for s in range(fail + 1)],
            "first_nonfinite": first("MatMul", "forward", [inp(0.0, 1e21)], step=fail, pos_inf=14, layer="dense_1")}


# ------------------------------------------------------------------------------------------------
# the rate in force, step by step
# ------------------------------------------------------------------------------------------------
def test_rates_series_and_summary():
    points = rates.series([[0, 0.01], [8, 0.005], [16, 0.0025]])
    assert rates.rate_at(points, 0) == 0.01 and rates.rate_at(points, 10) == 0.005 and rates.rate_at(points, 99) == 0.0025
    summary = rates.summary(points, horizon=10)
    assert summary["lr_used"] == 0.01 and summary["lr_varies"] and summary["lr_min"] == 0.005
    # a hand-built dict without the series: the optimizer's rates, the one at the failure at the failing step
    points = rates.series([], {"learning_rate": 0.01, "learning_rate_at_failure": 0.64}, failing_step=20)
    assert points == [(0, 0.01), (20, 0.64)] and rates.summary(points)["lr_growth"] == pytest.approx(64)
    assert rates.series([[0, "nan"], ["x", 1]]) == []


def test_dynamics_read_the_rate_at_the_failing_step_not_the_constructors():
    ev = growing_evidence()
    a = D.analyze(ev["steps"], [], ev["optimizer"], learning_rates=ev["learning_rates"], failing_step=13)
    assert a["lr_used"] == pytest.approx(0.01 * 1.5 ** 13) and a["lr_used_step"] == 13
    assert a["lr_level"] == 2 and a["lr_growth"] == pytest.approx(1.5 ** 13)
    # without the series the constructor's 0.01 is all there is: an ordinary rate
    assert D.analyze(ev["steps"], [], sgd())["lr_level"] == 0


# ------------------------------------------------------------------------------------------------
# learning_rate_schedule_grows
# ------------------------------------------------------------------------------------------------
def test_schedule_that_grows_is_the_cause_and_the_rate_at_the_failure_is_quoted():
    d, w = diagnose(growing_evidence())
    assert d[0]["cause"] == "learning_rate_schedule_grows" and d[0]["confidence"] >= 0.9
    assert "`schedule`" in d[0]["evidence"] and "decay_rate=1.5 > 1" in d[0]["evidence"]
    assert "1.95 at step 13" in d[0]["evidence"]           # 0.01 * 1.5**13 = 1.946
    assert "decay_rate=0.96" in d[0]["fix"] and "schedule = " in d[0]["fix"]
    lr = next(c for c in d if c["cause"] == "learning_rate_too_high")
    assert "1.95 at step 13" in lr["evidence"] and "learning_rate=0.01" not in lr["evidence"]
    clip = next(c for c in d if c["cause"] == "exploding_gradients")
    assert "learning_rate=schedule" in clip["fix"]


def test_bounded_schedule_that_climbs_to_a_high_rate():
    schedule = {"class": "PiecewiseConstantDecay", "name": "boost", "custom": False, "takes_step": True,
                "config": {"boundaries": [10, 20], "values": [0.01, 0.05, 5.0], "name": "PiecewiseConstant"}}
    ev = growing_evidence(schedule, fail=24, rate=lambda s: 0.01 if s <= 10 else 0.05 if s <= 20 else 5.0)
    ev["steps"] = exploding_steps(24, factor=1.5)
    d, _ = diagnose(ev)
    assert d[0]["cause"] == "learning_rate_schedule_grows" and d[0]["confidence"] == 0.88
    assert "[0.01, 0.05, 0.1]" in d[0]["fix"]


def test_warmup_to_an_ordinary_rate_is_not_blamed():
    warm = {"class": "CosineDecay", "name": "warm", "custom": False, "takes_step": True,
            "config": {"initial_learning_rate": 0.0, "decay_steps": 100, "warmup_target": 0.001, "warmup_steps": 20}}
    rate = lambda s: min(s, 20) * 0.001 / 20   # noqa: E731
    ev = {"call": "fit", "optimizer": dict(sgd(warm, lr=0.0), **{"class": "Adam"}),
          "steps": exploding_steps(15), "learning_rates": [[s, rate(s)] for s in range(16)],
          "first_nonfinite": first("MatMul", "forward", [inp(0.0, 1e21)], step=15, pos_inf=3)}
    causes = [c["cause"] for c in diagnose(ev)[0]]
    assert "learning_rate_schedule_grows" not in causes and "learning_rate_nonpositive" not in causes
    # the same schedule on a healthy run: nothing at all
    healthy = dict(ev, steps=flat_steps(16), first_nonfinite=None)
    assert diagnose(healthy) == ([], [])


def test_healthy_decaying_schedule_raises_nothing():
    decay = dict(EXP_SCHEDULE, config=dict(EXP_SCHEDULE["config"], decay_rate=0.9, decay_steps=10))
    ev = {"call": "fit", "optimizer": sgd(decay, lr=0.05), "steps": flat_steps(48),
          "learning_rates": [[s, 0.05 * 0.9 ** (s / 10)] for s in range(48)]}
    assert diagnose(ev) == ([], [])


# ------------------------------------------------------------------------------------------------
# learning_rate_nonpositive
# ------------------------------------------------------------------------------------------------
def test_negative_rate_explains_the_explosion_without_advice_to_keep_it():
    ev = {"call": "fit", "optimizer": sgd(lr=-0.05, name="opt"), "steps": exploding_steps(11),
          "first_nonfinite": first("Square", "loss", [inp(6e17, 3.6e25)], step=11, pos_inf=30)}
    d, _ = diagnose(ev)
    assert d[0]["cause"] == "learning_rate_nonpositive" and "`opt`" in d[0]["evidence"] and "-0.05" in d[0]["evidence"]
    assert "learning_rate=0.01" in d[0]["fix"]
    assert all("learning_rate=-0.05" not in c["fix"] for c in d)
    ev["optimizer"] = sgd(lr=0.05)
    assert "learning_rate_nonpositive" not in [c["cause"] for c in diagnose(ev)[0]]


def test_zero_rate_warns_and_a_warmup_from_zero_does_not():
    ev = {"call": "fit", "optimizer": dict(sgd(lr=0.0), **{"class": "Adam"}), "steps": flat_steps(16),
          "learning_rates": [[0, 0.0]]}
    d, w = diagnose(ev)
    assert d == [] and [x["cause"] for x in w] == ["learning_rate_nonpositive"]
    assert "learning_rate=0.001" in w[0]["fix"]
    ev["learning_rates"] = [[0, 0.0], [1, 5e-5], [2, 1e-4]]
    assert diagnose(ev) == ([], [])


# ------------------------------------------------------------------------------------------------
# domain_error
# ------------------------------------------------------------------------------------------------
def test_acos_of_a_cosine_that_rounds_above_one():
    ev = {"first_nonfinite": first("Acos", "loss", [inp(0.2, 1.0000001192092896)], nan=6,
                                   code="        angle = tf.acos(cos)", line=12)}
    d, _ = diagnose(ev)
    assert d[0]["cause"] == "domain_error" and d[0]["confidence"] >= 0.9
    assert "rounding error" in d[0]["evidence"] and "1.0000001192092896" in d[0]["evidence"]
    assert "line 12 becomes: `angle = tf.acos(tf.clip_by_value(cos, -1.0 + 1e-7, 1.0 - 1e-7))`" in d[0]["fix"]
    # inside the domain and nothing made: not a domain error
    inside = {"first_nonfinite": first("Acos", "loss", [inp(-0.5, 0.99)])}
    assert "domain_error" not in [c["cause"] for c in diagnose(inside)[0]]


def test_other_domains():
    asin = diagnose({"first_nonfinite": first("Asin", "forward", [inp(-1.5, 0.3)], nan=2,
                                              code="y = keras.ops.arcsin(x)", line=3)})[0]
    assert asin[0]["cause"] == "domain_error" and "keras.ops.clip(x, -1.0 + 1e-7, 1.0 - 1e-7)" in asin[0]["fix"]
    lgamma = diagnose({"first_nonfinite": first("Lgamma", "loss", [inp(0.0, 4.0, zeros=3)], pos_inf=3)})[0]
    assert lgamma[0]["cause"] == "domain_error" and "poles" in lgamma[0]["evidence"]
    assert diagnose({"first_nonfinite": first("Lgamma", "loss", [inp(0.5, 4.0)], pos_inf=3)})[0][0]["cause"] != "domain_error"
    power = diagnose({"first_nonfinite": first("Pow", "forward", [inp(-2.0, 3.0), inp(1.5, 1.5)], nan=4,
                                               code="z = tf.pow(x, 1.5)", line=4)})[0]
    assert [c["cause"] for c in power][:2] == ["domain_error", "sqrt_of_negative"]
    assert "tf.pow(tf.maximum(x, 0.0), 1.5)" in power[0]["fix"]
    integer = diagnose({"first_nonfinite": first("Pow", "forward", [inp(-2.0, 3.0), inp(2.0, 2.0)], nan=4)})[0]
    assert "domain_error" not in [c["cause"] for c in integer]
    # the log keeps its own id
    log = diagnose({"first_nonfinite": first("Log", "loss", [inp(0.0, 1.0, zeros=2)], pos_inf=2)})[0]
    assert log[0]["cause"] == "log_of_nonpositive" and "domain_error" not in [c["cause"] for c in log]


# ------------------------------------------------------------------------------------------------
# learning_rate_too_high vs exploding_gradients: never a tie, never a borderline number's choice
# ------------------------------------------------------------------------------------------------
def analysis(**over):
    a = D.analyze([], [], sgd())
    a.update({"explosion": True, "nonfinite_step": 5, "rising_run": 3, "rising_growth": 50.0, "grad_baseline": 1.0,
              "grad_peak": 1e6, "grad_peak_step": 4, "loss_baseline": 1.0, "loss_peak": 1e8})
    a.update(over)
    return a


@pytest.mark.parametrize("level,recurrent,sudden,jump,growth", list(itertools.product(
    (0, 1, 2), (False, True), (False, True), (1.0, 6.0), (None, 20.0))))
def test_the_two_stories_are_at_least_a_margin_apart(level, recurrent, sudden, jump, growth):
    a = analysis(lr_level=level, top_layer_recurrent=recurrent, top_layer="rnn" if recurrent else "dense",
                 top_layer_growth=10.0, sudden=sudden, weight_jump=jump, weight_jump_layer="dense",
                 weight_jump_step=0, lr_growth=growth, lr_start=0.01, lr_start_step=0, lr_used=0.2, lr_used_step=4)
    confidences = sorted((c["confidence"] for c in D.explosion_candidates(a, sgd())), reverse=True)
    assert len(confidences) == 2 and confidences[0] - confidences[1] >= D.MARGIN - 1e-9


def test_a_sudden_jump_does_not_swap_the_stories():
    """Measured before this rule: one unseeded SGD(0.3) MLP cell gave exploding_gradients 0.8 /
    learning_rate_too_high 0.5 in one run and a 0.5 / 0.5 tie in the next (the 'sudden' flag flipped).
    A rate already high for the optimizer, no learning-rate signature, a dense layer: the same order either way."""
    orders = set()
    for sudden in (False, True):
        cands = D.explosion_candidates(analysis(lr_level=1, sudden=sudden), sgd(lr=0.3))
        orders.add(tuple(c["cause"] for c in sorted(cands, key=lambda c: -c["confidence"])))
    assert orders == {("learning_rate_too_high", "exploding_gradients")}
    # an ordinary rate: exploding gradients lead, sudden or not
    orders = {tuple(c["cause"] for c in sorted(D.explosion_candidates(analysis(lr_level=0, sudden=s), sgd()),
                                               key=lambda c: -c["confidence"])) for s in (False, True)}
    assert orders == {("exploding_gradients", "learning_rate_too_high")}


def test_two_rising_steps_into_a_nan_are_an_explosion():
    """Measured before: an unseeded ReLU SimpleRNN cell that went NaN after 3 steps (gradient 121 -> 292 ->
    4082) had no dynamics story and the fallback named learning_rate_too_high (0.35); its other runs,
    NaN after 5-6 steps, named exploding_gradients (0.8). Now all of them read the same story."""
    steps = [{"step": s, "phase": "train", "loss": l, "grad_norm": g}
             for s, (l, g) in enumerate([(638.0, 121.2), (623.0, 291.6), (418.5, 4081.7), ("inf", "nan")])]
    ev = {"call": "fit", "optimizer": sgd(lr=0.001), "steps": steps,
          "first_nonfinite": first("Square", "loss", [inp(-1e20, 1e20)], step=3, pos_inf=4)}
    d, _ = diagnose(ev)
    assert d[0]["cause"] == "exploding_gradients"
