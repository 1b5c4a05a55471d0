"""Training dynamics on real recorded runs (tests/data/dynamics/*.json, made by tests/tools/record_dynamics.py
from real Keras models on TF 2.21 / Keras 3.15) and on small synthetic series. No TensorFlow import."""

import json

import pytest

from nanwatch.diagnosis import dynamics as D
from nanwatch.diagnosis.context import Context


def candidates(evidence) -> list:
    """The dynamics' diagnosis candidates for an evidence record, as diagnose() computes them."""
    ctx = Context(evidence)
    return D.explosion_candidates(ctx.dyn, ctx.optimizer)
from tests.support import DYNAMICS

DATA = DYNAMICS
HEALTHY = ["healthy_adam_mlp", "healthy_class_imbalance", "healthy_cnn_bn_dropout", "healthy_large_loss_prices",
           "healthy_lstm", "healthy_noisy_sgd_momentum", "healthy_sgd_lr0p1", "healthy_tiny_overfit",
           "explode_rnn_relu_clipnorm", "seed001_rnn_tanh_x100"]


def load(name):
    return json.loads((DATA / f"{name}.json").read_text())


def evidence(rec, **extra):
    return dict({"steps": rec["steps"], "layers": rec["layers"], "optimizer": rec["optimizer"]}, **extra)


def keras_logs(rec):
    """The recording as nanwatch's engine streams a Keras fit: `loss` is the epoch's running mean
    (Keras 3's loss tracker), the gradient norm is per step."""
    out, total, n, epoch = [], 0.0, 0, None
    for s in rec["steps"]:
        if s["epoch"] != epoch:
            total, n, epoch = 0.0, 0, s["epoch"]
        loss = D.num(s["loss"])
        total, n = total + loss, n + 1
        out.append(dict(s, loss=total / n))
    return dict(rec, steps=out)


def prefix(rec, k):
    return rec["steps"][:k], [dict(l, history=l["history"][:k]) for l in rec["layers"]]


def first_early_warning(rec):
    for k in range(1, len(rec["steps"]) + 1):
        steps, layers = prefix(rec, k)
        w = D.early_warnings(steps, layers, rec["optimizer"])
        if w:
            return k - 1, w[0]
    return None, None


@pytest.mark.parametrize("name", HEALTHY)
def test_healthy_runs_never_alarm_at_any_step(name):
    rec = load(name)
    a = D.analyze(rec["steps"], rec["layers"], rec["optimizer"])
    assert not a["explosion"] and a["nonfinite_step"] is None
    assert candidates(evidence(rec)) == []
    step, w = first_early_warning(rec)
    assert w is None, (name, step, w)


@pytest.mark.parametrize("name", HEALTHY + ["outlier_1e10_adam"])
def test_no_alarm_with_running_mean_losses(name):
    """As Keras logs it, one bad batch keeps the epoch's mean loss high until the epoch ends."""
    rec = keras_logs(load(name))
    assert candidates(evidence(rec)) == []
    assert D.early_warnings(rec["steps"], rec["layers"], rec["optimizer"]) == []


@pytest.mark.parametrize("name,cause", [("lr_sgd10_mlp", "learning_rate_too_high"),
                                        ("lr_sgd1_deep_mlp", "learning_rate_too_high"),
                                        ("explode_rnn_relu", "exploding_gradients")])
def test_causes_hold_with_running_mean_losses(name, cause):
    rec = keras_logs(load(name))
    assert candidates(evidence(rec))[0]["cause"] == cause
    step, w = first_early_warning(rec)
    assert w is not None and w["cause"] == cause


def test_sgd_learning_rate_10_is_learning_rate_too_high():
    rec = load("lr_sgd10_mlp")  # zoo p04: SGD(10.0) on an MLP, NaN at step 9
    c = candidates(evidence(rec))
    assert [x["cause"] for x in c] == ["learning_rate_too_high", "exploding_gradients"]
    assert c[0]["confidence"] >= 0.85
    assert "SGD learning_rate=10" in c[0]["evidence"] and "831x" in c[0]["evidence"]
    # lr * |g| / |w| = 831 at step 0: bring the first update to ~10% -> 10 * 0.1 / 831 -> 0.001
    assert "keras.optimizers.SGD(learning_rate=0.001, clipnorm=1.0)" in c[0]["fix"]
    step, w = first_early_warning(rec)
    assert w["cause"] == "learning_rate_too_high" and step <= 2 < rec["stopped"]["step"]
    assert w["evidence"].startswith("Before any NaN")


def test_sgd_learning_rate_1_deep_mlp():
    rec = load("lr_sgd1_deep_mlp")  # stays finite in the recording (loss stuck at 1.8e16); fit went NaN
    c = candidates(evidence(rec))
    assert c[0]["cause"] == "learning_rate_too_high"
    assert "SGD(learning_rate=0.004, clipnorm=1.0)" in c[0]["fix"]
    # finite at the end: the final report's warning says so
    w = D.early_warnings(rec["steps"], rec["layers"], rec["optimizer"])
    assert [x["cause"] for x in w] == ["learning_rate_too_high"]


def test_relu_rnn_is_exploding_gradients_not_learning_rate():
    rec = load("explode_rnn_relu")  # SGD(0.001): loss flat ~600 while the gradient climbs, NaN at step 15
    a = D.analyze(rec["steps"], rec["layers"], rec["optimizer"])
    assert a["nonfinite_step"] == 15 and a["top_layer"] == "rnn" and a["top_layer_recurrent"]
    assert a["weight_jump"] < 1.1 and a["rising_run"] >= 5
    c = candidates(evidence(rec))
    assert [x["cause"] for x in c] == ["exploding_gradients", "learning_rate_too_high"]
    assert c[0]["confidence"] >= 0.8 > c[1]["confidence"]
    assert "layer 'rnn'" in c[0]["evidence"] and "grew 2.6e15x over 14 steps" in c[0]["evidence"]
    assert "keras.optimizers.SGD(learning_rate=0.001, clipnorm=1.0)" in c[0]["fix"] and "LSTM" in c[0]["fix"]
    step, w = first_early_warning(rec)
    assert w["cause"] == "exploding_gradients" and step < 15


def test_bad_row_spikes_are_not_a_dynamics_alarm():
    rec = load("outlier_1e10_adam")  # one 1e10 row: gradient 1e15x on its batches, normal in between
    a = D.analyze(rec["steps"], rec["layers"], rec["optimizer"])
    assert a["spikes"] == [1, 4, 9] and not a["explosion"]
    assert candidates(evidence(rec)) == []
    assert D.early_warnings(rec["steps"], rec["layers"], rec["optimizer"]) == []


def test_lookalike_lr_too_high_vs_bad_row_ending_in_nan():
    """Same symptom (gradient 1e15x its start, then NaN), different causes."""
    lr = load("lr_sgd10_mlp")
    bad = load("outlier_1e10_adam")
    # the bad-row run as the engine would see it if Adam's grad**2 overflowed on the first spike
    steps = bad["steps"][:2] + [dict(bad["steps"][2], loss="nan", grad_norm="nan")]
    layers = [dict(l, history=l["history"][:3]) for l in bad["layers"]]
    cb = candidates({"steps": steps, "layers": layers, "optimizer": bad["optimizer"]})
    cl = candidates(evidence(lr))
    assert cl[0]["cause"] == "learning_rate_too_high"
    assert cb[0]["cause"] == "exploding_gradients" and cb[0]["confidence"] <= 0.5  # sudden: points at a batch
    assert "one-step jump" in cb[0]["evidence"]


def test_adam_lr_5_transient_warns_live_then_recovers():
    rec = load("lr_adam5_mlp")  # Adam(5.0): loss 3.7 -> 9.3e4 at step 1, recovers to 2.2 (finite)
    step, w = first_early_warning(rec)
    assert step == 1 and w["cause"] == "learning_rate_too_high"
    assert D.early_warnings(rec["steps"], rec["layers"], rec["optimizer"]) == []  # the final state is fine


# ------------------------------------------------------------------------------------------------
# synthetic edge cases
# ------------------------------------------------------------------------------------------------
def test_mixed_precision_skipped_steps_are_not_nan():
    steps = [{"step": i, "loss": 0.7 - 0.01 * i, "grad_norm": ("inf" if i in (0, 1) else 1.0)} for i in range(20)]
    a = D.analyze(steps, [], {"class": "LossScaleOptimizer", "learning_rate": 0.001}, "mixed_float16")
    assert a["nonfinite_step"] is None
    assert D.early_warnings(steps, [], {"class": "LossScaleOptimizer", "learning_rate": 0.001}, "mixed_float16") == []
    # in float32 the same Inf gradient is the first non-finite step
    assert D.analyze(steps, [], None, "float32")["nonfinite_step"] == 0


def test_large_but_flat_loss_is_fine_and_strings_are_parsed():
    steps = [{"step": i, "epoch": 0, "phase": "train", "loss": 1.4e11 * (1 - 0.001 * i), "grad_norm": "1.5e6"}
             for i in range(50)]
    assert D.early_warnings(steps) == [] and candidates({"steps": steps}) == []


def test_loss_diverging_without_gradient_records():
    steps = [{"step": i, "loss": 2.0 * (3.0 ** i), "grad_norm": None} for i in range(8)]
    w = D.early_warnings(steps, None, {"class": "SGD", "learning_rate": 2.0})
    assert [x["cause"] for x in w] == ["learning_rate_too_high"]
    assert "loss diverging" in w[0]["evidence"]


def test_eval_steps_and_garbage_are_ignored():
    steps = [{"step": i, "phase": "eval", "loss": 10.0 ** i} for i in range(10)] + [None, "x", {"loss": 1}]
    assert D.analyze(steps)["n_steps"] == 0 and D.early_warnings(steps) == []
    assert candidates({}) == [] and candidates({"steps": None, "layers": None}) == []


def test_learning_rate_literals_are_floats_keras_accepts():
    assert D.fmt_lr(10 * 0.1) == "1.0" and D.fmt_lr(0.0012) == "0.001" and D.fmt_lr(4.3e-5) == "4e-05"
    assert D.lr_level({"class": "SGD", "learning_rate": 10.0}) == 2
    assert D.lr_level({"class": "Adam", "learning_rate": 0.001}) == 0
    assert D.lr_level({"class": "Adam", "learning_rate": 0.5}) == 2
    # mixed precision wraps the optimizer: judge (and rewrite) the inner one
    lso = {"class": "LossScaleOptimizer", "inner_class": "SGD", "learning_rate": 10.0, "loss_scale": True}
    assert D.optimizer_family(lso) == "sgd" and D.lr_level(lso) == 2
    assert D.optimizer_code(lso, 1.0) == "keras.optimizers.SGD(learning_rate=1.0, clipnorm=1.0)"
