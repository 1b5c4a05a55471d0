"""diagnose(evidence) on realistic evidence dicts: real data profiles (profile_array on the scenario's own
arrays), real training dynamics (tests/data/dynamics, recorded from Keras runs), and first_nonfinite
records shaped as schema 1 with the op types measured by tests/tools/measure_scenarios.py (the op's input
statistics are what those ops get in the scenarios: e.g. a std denominator with one zero column).
No TensorFlow import."""

import json

import numpy as np
import pandas as pd
import pytest

from nanwatch.diagnosis import CAUSES, diagnose, info_notes
from nanwatch.diagnosis.data_checks import profile_array
from nanwatch.diagnosis.drift import training_ranges
from tests.support import DYNAMICS

DYN = DYNAMICS


def dyn(name):
    return json.loads((DYN / f"{name}.json").read_text())


def inp(mn, mx, zeros=0, size=64, name=None, op_type=None, dtype="float32", nan=0, pos_inf=0, neg_inf=0,
        negatives=None):
    d = {"name": name, "op_type": op_type, "finite": not (nan or pos_inf or neg_inf), "min": mn, "max": mx,
         "zeros": zeros, "nan": nan, "pos_inf": pos_inf, "neg_inf": neg_inf, "size": size, "dtype": dtype}
    if negatives is not None:
        d["negatives"] = negatives
    return d


def first(op, phase, inputs=(), layer=None, step=0, nan=0, pos_inf=0, neg_inf=0, size=64, code=None, line=None,
          dtype="float32", data=None):
    return {"op_type": op, "op_name": f"sequential/{layer or 'x'}/{op}", "output_slot": 0, "phase": phase,
            "layer": layer, "step": step, "epoch": 0,
            "counts": {"nan": nan, "pos_inf": pos_inf, "neg_inf": neg_inf, "size": size},
            "inputs": list(inputs), "data": data,
            "source": {"cell": 3, "line": line, "code": code} if code else None, "dtype": dtype}


def top(evidence):
    d, w = diagnose(evidence)
    return (d[0]["cause"] if d else None), d, w


def causes(items):
    return [x["cause"] for x in items]


# ------------------------------------------------------------------------------------------------
# data already non-finite
# ------------------------------------------------------------------------------------------------
def p01_evidence():
    rng = np.random.default_rng(0)
    X = rng.random((100, 10))
    X[5, 2] = np.nan
    y = rng.random(100)
    return {"call": "fit",
            "first_nonfinite": first("IteratorGetNext", "input", size=320, nan=1,
                                     data={"source": "x", "batch": 0, "rows": [5], "columns": [2], "values": ["nan"],
                                           "array_rows": [5]}),
            "data": [profile_array("X", X, "features"), profile_array("y", y, "targets")],
            "optimizer": {"class": "Adam", "learning_rate": 0.001}, "loss": {"name": "mean_squared_error"}}


def test_nan_in_input_names_row_and_column():
    cause, d, w = top(p01_evidence())
    assert cause == "nan_in_input" and d[0]["confidence"] >= 0.9
    assert "column 2 of X has 1 NaN, at row 5" in d[0]["evidence"]
    assert "SimpleImputer" in d[0]["fix"]
    assert w == []  # not repeated as a warning


def test_nan_in_target_from_a_dataframe():
    rng = np.random.default_rng(1)
    df = pd.DataFrame({"area": rng.uniform(0, 1, 200), "rooms": rng.uniform(0, 1, 200), "price": rng.uniform(0, 1, 200)})
    df.loc[17, "price"] = np.nan
    # measured (d01): check_numerics flags the Placeholder of Keras' data adapter ("Dataset_map_grab_batch")
    ev = {"call": "fit", "first_nonfinite": first("Placeholder", "input", nan=1, size=200,
                                                  data={"source": "y", "rows": [17], "columns": [0]}),
          "data": [profile_array("X", df[["area", "rooms"]], "features"), profile_array("y", df["price"], "targets")]}
    cause, d, _ = top(ev)
    assert cause == "nan_in_target"
    assert "y has 1 NaN, at row 17" in d[0]["evidence"] and "notna()" in d[0]["fix"]


def test_inf_in_input_ratio_feature_and_inf_target_from_log():
    rng = np.random.default_rng(2)
    income, debt = rng.uniform(1, 2, 128), rng.uniform(0, 1, 128)
    debt[40] = 0.0
    with np.errstate(divide="ignore"):
        X = np.stack([income, debt, income / debt], axis=1).astype("float32")
    ev = {"call": "fit", "first_nonfinite": first("Placeholder", "input", pos_inf=1, size=384),
          "data": [profile_array("X", X, "features"), profile_array("y", rng.integers(0, 2, 128), "targets")]}
    cause, d, _ = top(ev)
    assert cause == "inf_in_input" and "column 2 of X has 1 +Inf, at row 40" in d[0]["evidence"]
    price = rng.uniform(1e3, 1e4, 120)
    price[[9, 77]] = 0.0
    with np.errstate(divide="ignore"):
        y = np.log(price).astype("float32")
    ev = {"call": "fit", "first_nonfinite": first("GatherV2", "input", neg_inf=1, size=32,
                                                  data={"source": "y", "batch": 0, "rows": [9]}),
          "data": [profile_array("X", rng.uniform(0, 1, (120, 4)), "features"), profile_array("y", y, "targets")]}
    cause, d, _ = top(ev)
    assert cause == "inf_in_target" and "rows 9, 77" in d[0]["evidence"] and "log1p" in d[0]["fix"]


def test_nan_at_predict_time_seed003():
    X = np.array([[1, 2, np.nan], [3, 4, 5], [6, np.nan, 8]])
    ev = {"call": "predict", "first_nonfinite": first("IteratorGetNext", "input", nan=2, size=9),
          "data": [profile_array("X", X, "features")]}
    cause, d, _ = top(ev)
    assert cause == "nan_in_input"
    assert "column 1 of X has 1 NaN, at row 2" in d[0]["evidence"] and "column 2 of X has 1 NaN, at row 0" in d[0]["evidence"]
    assert "imputer.transform" in d[0]["fix"]


def test_nan_weights_before_predict():
    # measured (d04): the first non-finite tensor is the ReadVariableOp of out.kernel
    ev = {"call": "predict", "nan_weights": [{"layer": "out", "variable": "kernel"}],
          "first_nonfinite": first("ReadVariableOp", "forward", layer="out", nan=1, size=8),
          "data": [profile_array("x", np.random.default_rng(0).random((16, 4)), "features")]}
    cause, d, w = top(ev)
    assert cause == "nan_in_weights" and d[0]["confidence"] >= 0.9
    assert "'out'.kernel" in d[0]["evidence"] and "restore_weights" in d[0]["fix"]
    assert "TerminateOnNaN" in d[0]["fix"] and w == []


# ------------------------------------------------------------------------------------------------
# the op itself
# ------------------------------------------------------------------------------------------------
P02_LINE = "        loss = -tf.reduce_mean(y * tf.math.log(y_pred) + (1 - y) * tf.math.log(1 - y_pred))"


def test_log_of_zero_in_a_hand_written_bce():
    # zoo p02: sigmoid(200) == 1.0 in float32, so 1 - y_pred == 0 for all 100 rows
    ev = {"call": "custom",
          "first_nonfinite": first("Log", "loss", [inp(0.0, 0.0, zeros=100, size=100, op_type="Sub", name="sub")],
                                   neg_inf=100, size=100, code=P02_LINE, line=9)}
    cause, d, _ = top(ev)
    assert cause == "log_of_nonpositive" and d[0]["confidence"] >= 0.9
    assert "min 0" in d[0]["evidence"] and "100 zeros of 100" in d[0]["evidence"]
    assert ("line 9 becomes: `loss = -tf.reduce_mean(y * tf.math.log(tf.clip_by_value(y_pred, 1e-7, 1.0)) + "
            "(1 - y) * tf.math.log(tf.clip_by_value(1 - y_pred, 1e-7, 1.0)))`") in d[0]["fix"]
    assert "from_logits=True" in d[0]["fix"]


def test_log_of_relu_output_custom_loss():
    # d05 (measured: Log at the cell line of my_bce): the model's last layer is relu, 37 of 64 outputs are 0
    code = "    return -tf.reduce_mean(y_true * tf.math.log(y_pred) + (1 - y_true) * tf.math.log(1 - y_pred))"
    ev = {"call": "fit", "loss": {"name": "my_bce", "from_logits": None},
          "first_nonfinite": first("Log", "loss", [inp(0.0, 1.7, zeros=37, op_type="Relu", name="score/Relu")],
                                   layer=None, neg_inf=37, code=code, line=6)}
    cause, d, _ = top(ev)
    assert cause == "log_of_nonpositive"
    assert "ReLU" in d[0]["evidence"] and 'activation="sigmoid"' in d[0]["fix"]


def test_lookalike_log_of_zero_vs_nan_already_in_the_loss_input():
    """Same op (Log in the loss), same line: in one the Log made the -inf, in the other it only passed on
    a NaN that came with the data."""
    made_here = {"first_nonfinite": first("Log", "loss", [inp(0.0, 0.9, zeros=3)], neg_inf=3, code=P02_LINE)}
    rng = np.random.default_rng(0)
    X = rng.random((64, 10))
    X[11, 4] = np.nan
    passed_on = {"first_nonfinite": first("Log", "loss", [inp(0.01, 0.9, nan=1)], nan=1, code=P02_LINE),
                 "data": [profile_array("X", X, "features")]}
    assert top(made_here)[0] == "log_of_nonpositive"
    cause, d, _ = top(passed_on)
    assert cause == "nan_in_input" and "row 11" in d[0]["evidence"]
    assert "log_of_nonpositive" not in causes(d)


def test_op_rules_when_the_input_values_were_not_captured():
    """Graph failures inside a user tf.function: the engine knows the input was finite, not its values
    (d18, measured with the real engine: input 'sequential_1/energy_1/Add:0 (AddV2): finite, min -, max -')."""
    unknown = {"name": "sequential_1/energy_1/Add:0", "op_type": "AddV2", "finite": True, "min": None, "max": None}
    expect = {"Log": "log_of_nonpositive", "Sqrt": "sqrt_of_negative", "Exp": "exp_overflow"}
    for op, cause in expect.items():
        d, _ = diagnose({"first_nonfinite": first(op, "loss", [unknown], code="loss = tf.reduce_mean(tf.math.log(e))")})
        assert causes(d)[:1] == [cause] and 0.6 <= d[0]["confidence"] < 0.9, (op, d)
        assert "not captured" in d[0]["evidence"]
    d, _ = diagnose({"first_nonfinite": first("RealDiv", "forward", [dict(unknown), dict(unknown)])})
    assert causes(d)[:1] == ["division_by_zero"]
    log_fix = diagnose({"first_nonfinite": first("Log", "loss", [unknown], code="        loss = tf.reduce_mean(tf.math.log(e))")})[0][0]["fix"]
    # `e` is no probability and the line is no cross-entropy: keep it positive, do not cap it at 1
    assert "`loss = tf.reduce_mean(tf.math.log(tf.maximum(e, 1e-7)))`" in log_fix and "from_logits" not in log_fix


def test_sqrt_of_negative_in_a_custom_layer():
    # zoo p03: tf.sqrt of a Dense projection (about half its values are negative)
    ev = {"call": "fit", "first_nonfinite": first("Sqrt", "forward", [inp(-2.3, 2.1, negatives=250, size=512)],
                                                  layer="root", nan=250, size=512,
                                                  code="        return tf.sqrt(x)", line=4)}
    cause, d, _ = top(ev)
    assert cause == "sqrt_of_negative" and "-2.3" in d[0]["evidence"]
    assert "`return tf.sqrt(tf.maximum(x, 1e-12))`" in d[0]["fix"]


def test_rms_norm_without_square_gets_the_square_hint():
    # d06 (measured: Sqrt on the RMSNorm line)
    code = "        return x / tf.sqrt(tf.reduce_mean(x, axis=-1, keepdims=True) + 1e-6)"
    ev = {"first_nonfinite": first("Sqrt", "forward", [inp(-0.8, 0.9, size=64)], layer="rmsnorm", nan=30,
                                   code=code, line=5)}
    cause, d, _ = top(ev)
    assert cause == "sqrt_of_negative"
    assert "tf.reduce_mean(tf.square(x)" in d[0]["fix"]
    assert "tf.sqrt(tf.maximum(tf.reduce_mean(x, axis=-1, keepdims=True) + 1e-6, 1e-12))" in d[0]["fix"]


def p09_evidence():
    X = np.random.default_rng(9).random((32, 3)).astype("float32")
    X[:, 1] = 7.0
    code = "        return (x - tf.reduce_mean(x, 0)) / tf.math.reduce_std(x, 0)"
    return {"call": "fit", "data": [profile_array("X", X, "features")],
            "first_nonfinite": first("RealDiv", "forward",
                                     [inp(-0.5, 0.5, zeros=32, size=96, op_type="Sub"),
                                      inp(0.0, 0.29, zeros=1, size=3, op_type="Sqrt", name="standardize/reduce_std/Sqrt")],
                                     layer="standardize", nan=32, size=96, code=code, line=5)}


def test_division_by_zero_with_a_constant_column():
    cause, d, w = top(p09_evidence())
    assert cause == "division_by_zero"  # zoo p09 expects division_by_zero first
    assert causes(d)[:2] == ["division_by_zero", "zero_variance_normalization"]
    assert "denominator" in d[0]["evidence"] and "1 zeros of 3" in d[0]["evidence"]
    assert "`return tf.math.divide_no_nan(x - tf.reduce_mean(x, 0), tf.math.reduce_std(x, 0))`" in d[0]["fix"]
    zv = d[1]
    assert "column 1 of X is constant (7 in all 32 rows)" in zv["evidence"] and "Normalization" in zv["fix"]


def test_lookalike_mape_zero_target_vs_zero_variance():
    """Both RealDiv with a zero denominator: a percentage loss dividing by y_true = 0 is not a
    standardisation problem."""
    code = "    return tf.reduce_mean(tf.abs(y_true - y_pred) / y_true)"
    ev = {"call": "fit", "first_nonfinite": first("RealDiv", "loss", [inp(0.0, 1.9, size=32), inp(0.0, 2.0, zeros=1, size=32)],
                                                  pos_inf=1, size=32, code=code, line=6),
          "data": [profile_array("X", np.random.default_rng(7).random((96, 3)), "features")]}
    cause, d, _ = top(ev)
    assert cause == "division_by_zero" and "zero_variance_normalization" not in causes(d)
    assert "tf.math.divide_no_nan(tf.abs(y_true - y_pred), y_true)" in d[0]["fix"]
    assert "MeanAbsolutePercentageError" in d[0]["fix"]


def test_eager_standardisation_outside_the_model():
    # d08 (measured: eager RealDiv; the fit data is then NaN in column 2)
    code = "X = (raw - tf.reduce_mean(raw, axis=0)) / tf.math.reduce_std(raw, axis=0)"
    ev = {"call": "custom", "first_nonfinite": first("RealDiv", "input", [inp(-5, 5, zeros=128, size=512),
                                                                          inp(0.0, 2.9, zeros=1, size=4, op_type="Sqrt")],
                                                     nan=128, size=512, code=code, line=4)}
    cause, d, _ = top(ev)
    assert cause == "division_by_zero" and "zero_variance_normalization" in causes(d)
    assert "X = tf.math.divide_no_nan(raw - tf.reduce_mean(raw, axis=0), tf.math.reduce_std(raw, axis=0))" in d[0]["fix"]


def test_rsqrt_of_zero_variance():
    ev = {"first_nonfinite": first("Rsqrt", "forward", [inp(0.0, 3.0, zeros=2, size=16, name="moments/variance")],
                                   layer="my_norm", pos_inf=2, size=16)}
    d, _ = diagnose(ev)
    assert causes(d)[:2] == ["division_by_zero", "zero_variance_normalization"]


def test_sqrt_gradient_at_zero():
    ev = {"first_nonfinite": first("SqrtGrad", "backward", [inp(0.0, 0.0, zeros=1, size=1), inp(1.0, 1.0, size=1)],
                                   pos_inf=1, size=1)}
    cause, d, _ = top(ev)
    assert cause == "division_by_zero" and "0.5 / sqrt(x)" in d[0]["evidence"]


def test_exp_overflow_in_a_hand_written_softmax():
    # zoo p05: Dense(2, ones) on features * 500 -> logits ~2000
    code = "        return tf.exp(z) / tf.reduce_sum(tf.exp(z), axis=-1, keepdims=True)"
    ev = {"call": "fit", "first_nonfinite": first("Exp", "forward", [inp(310.0, 2240.0, size=64)], layer="softmax",
                                                  pos_inf=64, size=64, code=code, line=5),
          "data": [profile_array("X", np.random.default_rng(5).random((32, 8)) * 500, "features")]}
    cause, d, _ = top(ev)
    assert cause == "exp_overflow" and "88.7" in d[0]["evidence"] and "2240" in d[0]["evidence"]
    assert "`return tf.nn.softmax(z, axis=-1)`" in d[0]["fix"]


def test_exp_overflow_poisson_loss_clips():
    code = "    return tf.reduce_mean(tf.exp(log_rate) - y_true * log_rate)"
    ev = {"first_nonfinite": first("Exp", "loss", [inp(150.0, 1480.0, size=64)], pos_inf=64, code=code, line=6)}
    cause, d, _ = top(ev)
    assert cause == "exp_overflow" and "tf.exp(tf.minimum(log_rate, 80.0))" in d[0]["fix"]


def test_exp_overflow_in_an_exponential_activation_names_the_layer_and_relu():
    # realbugs a01-a05 (AUTOTRAINER): Dense + Activation("exponential") chains overflow at step 0 inside fit
    layers = [{"name": "dense_1", "class": "Dense", "config": {"activation": "linear"}},
              {"name": "activation_1", "class": "Activation", "config": {"activation": "exponential"}}]
    ev = {"call": "fit", "layers_config": layers,
          "first_nonfinite": first("Exp", "forward", [inp(3.0, 140.0, size=64)], layer="activation_1", pos_inf=5,
                                   code="model.fit(X, Y, epochs=2)", line=9)}
    cause, d, _ = top(ev)
    assert cause == "exp_overflow" and "'activation_1'" in d[0]["fix"] and 'activation="relu"' in d[0]["fix"]
    # the same Exp in a layer without an exponential activation keeps the softmax / logsumexp advice
    ev["layers_config"] = [dict(layers[1], config={"activation": "linear"})]
    cause, d, _ = top(ev)
    assert cause == "exp_overflow" and 'activation="relu"' not in d[0]["fix"] and "softmax" in d[0]["fix"]


def test_float16_overflow_vs_exp_overflow():
    # d10 (measured: MatMul in float16 under mixed_float16): 300 inputs of 250 with ones -> 75000 > 65504
    ev16 = {"dtype_policy": "mixed_float16", "layers_config": [{"name": "wide", "class": "Dense", "config": {}}],
            "first_nonfinite": first("MatMul", "forward", [inp(250.0, 250.0, size=9600, dtype="float16"),
                                                           inp(1.0, 1.0, size=1200, dtype="float16")],
                                     layer="wide", pos_inf=128, size=128, dtype="float16")}
    # kernel_initializer="ones" on 300 inputs is 12x the Glorot scale: a contributor, not the cause
    ev16["initial_weight_norms"] = [{"layer": "wide", "variable": "kernel", "norm": 34.64, "fan_in": 300, "fan_out": 4}]
    cause, d, _ = top(ev16)
    assert cause == "float16_overflow" and "65504" in d[0]["evidence"]
    assert {x["cause"]: x["confidence"] for x in d}["large_initial_weights"] <= 0.6
    assert 'keras.layers.Dense(..., name="wide", dtype="float32")' in d[0]["fix"]
    # an Exp in float16 with inputs past 11.09: the exp is the culprit, float16 the context
    ev = {"dtype_policy": "mixed_float16",
          "first_nonfinite": first("Exp", "forward", [inp(2.0, 14.0, dtype="float16")], pos_inf=3, dtype="float16")}
    d, _ = diagnose(ev)
    assert causes(d)[:2] == ["exp_overflow", "float16_overflow"] and "above 11.09 " in d[0]["evidence"]


# ------------------------------------------------------------------------------------------------
# known patterns the engine traces (pattern_rules): first_nonfinite as measured on the harm scenarios
# b01-b04 (tests/scenarios/harm.py, exact TF 2.21 runs); gradient_of / made_from as the engine sets them
# ------------------------------------------------------------------------------------------------
ATTN_CODE = "weights = tf.nn.softmax(scores, axis=-1)"


def b03_first(**over):
    """Measured (b03): a masked self-attention whose batch holds fully padded sequences."""
    fn = first("Softmax", "forward", [inp(-0.00382, 0.0029, size=4608, neg_inf=2700, negatives=3657)],
               layer="attention", nan=720, size=4608, code=ATTN_CODE, line=15)
    fn.update(made_from="mask", gradient_of=None, context="eager", replayed=True, reproduced=True)
    fn.update(over)
    return fn


def test_fully_masked_softmax_outranks_the_generic_causes():
    tokens = np.zeros((128, 12), "float32")
    tokens[::3, :4] = 7.0
    ev = {"call": "fit", "first_nonfinite": b03_first(), "optimizer": {"class": "Adam", "learning_rate": 0.001,
                                                                        "epsilon": 1e-7},
          "data": [profile_array("tokens", tokens, "features")]}
    cause, d, _ = top(ev)
    assert cause == "fully_masked_softmax" and d[0]["confidence"] >= 0.95
    assert "every entry is -inf" in d[0]["evidence"] and "2700 -inf of 4608" in d[0]["evidence"]
    assert "tf.where(mask, scores, -1e9)" in d[0]["fix"] and f"line 15 takes (`{ATTN_CODE}`)" in d[0]["fix"]
    assert "keras.layers.Softmax(axis=-1)(scores, mask=mask)" in d[0]["fix"]
    assert not {"nan_in_input", "exploding_gradients"} & set(causes(d))
    # the -inf on the softmax line itself: the line is rewritten
    code = 'weights = tf.nn.softmax(tf.where(mask, scores, float("-inf")), axis=-1)'
    ev["first_nonfinite"] = b03_first(source={"cell": 1, "line": 15, "code": code})
    d, _ = diagnose(ev)
    assert "line 15 becomes: `weights = tf.nn.softmax(tf.where(mask, scores, -1e9), axis=-1)`" in d[0]["fix"]


def test_fully_masked_softmax_is_not_hidden_by_nan_in_the_data():
    # NaN in another column of the data: the -inf the softmax got is the mask's, not the data's (the engine
    # traced it), so the data-origin cap does not apply
    X = np.random.default_rng(3).random((64, 12)).astype("float32")
    X[9, 3] = np.nan
    ev = {"call": "fit", "first_nonfinite": b03_first(), "data": [profile_array("X", X, "features")]}
    d, _ = diagnose(ev)
    assert causes(d)[0] == "fully_masked_softmax" and d[0]["confidence"] >= 0.95
    assert {x["cause"]: x["confidence"] for x in d}.get("nan_in_input", 0) < 0.9


def test_fully_masked_softmax_from_the_counts_alone_and_its_counter_examples():
    # a graph detection without made_from: NaN out, -inf (and nothing else) in
    cause, d, _ = top({"first_nonfinite": b03_first(made_from=None)})
    assert cause == "fully_masked_softmax" and d[0]["confidence"] == 0.85
    # NaN already in the softmax's input: passed on from upstream, not made from a mask
    nan_in = b03_first(made_from=None, inputs=[inp(-1.0, 1.0, size=4608, nan=12)])
    assert "fully_masked_softmax" not in causes(diagnose({"first_nonfinite": nan_in})[0])
    # a softmax that overflowed from finite inputs: no mask in sight
    finite = b03_first(made_from=None, inputs=[inp(-3.0, 4.0, size=4608)])
    assert "fully_masked_softmax" not in causes(diagnose({"first_nonfinite": finite})[0])


POISSON_CODE = "log_rate = tf.where(rate > 0, tf.math.log(rate), 0.0)"


def b04_first(**over):
    """Measured (b04): the gradient of a where-masked log, Reciprocal(rate) at the 2 rates that are 0."""
    fn = first("Reciprocal", "backward", [inp(0.0, 1.4845, zeros=2, size=32, negatives=0)], layer="rate",
               pos_inf=2, size=32, code=POISSON_CODE, line=5)
    fn.update(gradient_of={"op_type": "Log", "source": {"cell": 1, "cell_id": None, "line": 5, "code": POISSON_CODE,
                                                        "file": None, "function": "poisson_nll"},
                           "forward_absorbed": True},
              made_from=None, context="eager")
    fn.update(over)
    return fn


def test_where_gradient_trap_gives_the_double_where():
    ev = {"call": "fit", "first_nonfinite": b04_first(), "optimizer": {"class": "Adam", "learning_rate": 0.001}}
    cause, d, _ = top(ev)
    assert cause == "where_gradient_trap" and d[0]["confidence"] >= 0.95
    assert "gradient of Log at line 5" in d[0]["evidence"] and "0 * inf = NaN" in d[0]["evidence"]
    assert "line 5 becomes: `log_rate = tf.where(rate > 0, tf.math.log(tf.where(rate > 0, rate, 1.0)), 0.0)`" \
        in d[0]["fix"]
    # the op's own story stays, below it
    assert {x["cause"]: x["confidence"] for x in d}["division_by_zero"] <= 0.5
    # a line the rewrite cannot take: the pattern, naming the line
    code = "log_rate = masked_log(rate)"
    src = {"cell": 1, "line": 5, "code": code}
    ev["first_nonfinite"] = b04_first(source=src,
                                      gradient_of={"op_type": "Log", "source": src, "forward_absorbed": True})
    d, _ = diagnose(ev)
    assert d[0]["cause"] == "where_gradient_trap"
    assert "`tf.where(cond, tf.math.log(tf.where(cond, x, 1.0)), 0.0)`" in d[0]["fix"] and code in d[0]["fix"]


def test_where_gradient_trap_outranks_log_of_nonpositive():
    # the gradient of a where-masked x ** p with respect to p multiplies by log(x): Log in the backward pass
    code = "y = tf.where(x > 0, tf.pow(x, p), 0.0)"
    fn = first("Log", "backward", [inp(0.0, 2.0, zeros=3, size=16)], layer="power", neg_inf=3, size=16, code=code,
               line=4)
    fn["gradient_of"] = {"op_type": "Pow", "source": {"cell": 2, "line": 4, "code": code}, "forward_absorbed": True}
    cause, d, _ = top({"first_nonfinite": fn})
    assert cause == "where_gradient_trap"
    assert "`y = tf.where(x > 0, tf.pow(tf.where(x > 0, x, 1.0), p), 0.0)`" in d[0]["fix"]
    assert {x["cause"]: x["confidence"] for x in d}["log_of_nonpositive"] <= 0.5


def test_where_gradient_trap_counter_examples():
    # no where absorbed the forward value: not the trap (and a division is no non-differentiable point)
    fn = b04_first(gradient_of={"op_type": "RealDiv", "source": None, "forward_absorbed": False})
    assert top({"first_nonfinite": fn})[0] == "division_by_zero"
    # no gradient_of at all: the op's own story, as before
    assert top({"first_nonfinite": b04_first(gradient_of=None)})[0] == "division_by_zero"


TRIPLET_CODE = "ap_distance = tf.norm(anchor - positive, axis=-1)"


def norm_first(**over):
    """A triplet loss whose anchor and positive embed identically: SqrtGrad at a norm of 0 (b05's shape)."""
    fn = first("SqrtGrad", "backward", [inp(0.0, 2.31, zeros=2, size=40), inp(-0.025, 0.025, size=40)],
               layer="distance", pos_inf=2, size=40, code=TRIPLET_CODE, line=5)
    fn["gradient_of"] = {"op_type": "Sqrt", "source": {"cell": 1, "line": 5, "code": TRIPLET_CODE, "function": "call"},
                         "forward_absorbed": False}
    fn.update(over)
    return fn


def test_nondifferentiable_point_puts_an_epsilon_under_the_sqrt():
    cause, d, _ = top({"call": "fit", "first_nonfinite": norm_first()})
    assert cause == "nondifferentiable_point" and d[0]["confidence"] >= 0.93
    assert "gradient of Sqrt at line 5" in d[0]["evidence"] and "forward value of Sqrt was finite" in d[0]["evidence"]
    assert "line 5 becomes: `ap_distance = tf.sqrt(tf.reduce_sum(tf.square(anchor - positive), axis=-1) + 1e-12)`" \
        in d[0]["fix"]
    assert {x["cause"]: x["confidence"] for x in d}["division_by_zero"] <= 0.5
    # the forward line unknown: a template, and the where trap named as the other possibility
    d, _ = diagnose({"first_nonfinite": norm_first(source=None, gradient_of={"op_type": "Sqrt", "source": None,
                                                                             "forward_absorbed": False})})
    assert d[0]["cause"] == "nondifferentiable_point" and d[0]["confidence"] == 0.9
    assert "where trap" in d[0]["evidence"] and "tf.sqrt(tf.reduce_sum(tf.square(d), axis=-1) + 1e-12)" in d[0]["fix"]
    # acos at +-1 (a cosine similarity of identical vectors): a clip
    fn = first("Mul", "backward", [inp(-1.0, 1.0, size=8), inp(-0.5, 0.5, size=8)], nan=2, size=8)
    fn["gradient_of"] = {"op_type": "Acos", "source": {"cell": 1, "line": 3, "code": "angle = tf.acos(cos)"},
                         "forward_absorbed": False}
    cause, d, _ = top({"first_nonfinite": fn})
    assert cause == "nondifferentiable_point" and "tf.clip_by_value(x, -1.0 + 1e-6, 1.0 - 1e-6)" in d[0]["fix"]


def test_nondifferentiable_point_counter_examples():
    # a smooth forward op: no such point (and the where trap is the other rule)
    fn = norm_first(gradient_of={"op_type": "MatMul", "source": None, "forward_absorbed": False})
    assert "nondifferentiable_point" not in causes(diagnose({"first_nonfinite": fn})[0])
    trap = norm_first(gradient_of={"op_type": "Sqrt", "source": None, "forward_absorbed": True})
    assert causes(diagnose({"first_nonfinite": trap})[0])[:1] == ["where_gradient_trap"]
    # no gradient_of: the SqrtGrad's own story, as before (test_sqrt_gradient_at_zero)
    assert top({"first_nonfinite": norm_first(gradient_of=None)})[0] == "division_by_zero"


def b01_evidence(**optimizer):
    """Measured (b01): Adam(epsilon=0.0) and a one-hot column of an unused category (always 0)."""
    rng = np.random.default_rng(201)
    df = pd.DataFrame({"size": rng.uniform(0, 1, 160), "colour": rng.choice(["red", "green", "blue"], 160)})
    df["colour"] = pd.Categorical(df["colour"], categories=["red", "green", "blue", "black"])
    X = pd.get_dummies(df, columns=["colour"], dtype="float32").astype("float32")
    fn = first("RealDiv", "optimizer", [inp(-1.73e-05, 9.59e-06, zeros=43, size=80, negatives=15, name="input:0"),
                                        inp(0.0, 0.01728, zeros=43, size=80, negatives=0, name="input:1")],
               nan=43, size=80, code="model.fit(X, y, epochs=2, batch_size=32, verbose=0)", line=11)
    opt = {"class": "Adam", "learning_rate": 0.0010000000474974513, "clipnorm": None, "clipvalue": None,
           "global_clipnorm": None, "loss_scale": False, "epsilon": 0.0}
    opt.update(optimizer)
    return {"call": "fit", "first_nonfinite": fn, "optimizer": opt, "data": [profile_array("X", X, "features")]}


def test_optimizer_epsilon_zero_outranks_division_and_zero_variance():
    cause, d, _ = top(b01_evidence())
    assert cause == "optimizer_epsilon_zero" and d[0]["confidence"] >= 0.95
    assert "Adam with epsilon=0" in d[0]["evidence"] and "43 zeros of 80" in d[0]["evidence"]
    assert "colour_black" in d[0]["evidence"]
    assert "`optimizer=keras.optimizers.Adam(learning_rate=0.001, epsilon=1e-7)`" in d[0]["fix"]
    conf = {x["cause"]: x["confidence"] for x in d}
    assert conf["division_by_zero"] <= 0.5 and conf.get("zero_variance_normalization", 0) <= 0.5
    # b02: RMSprop; under a LossScaleOptimizer the fix keeps the wrapper
    assert "keras.optimizers.RMSprop(" in top(b01_evidence(**{"class": "RMSprop"}))[1][0]["fix"]
    ev = b01_evidence(**{"class": "LossScaleOptimizer", "inner_class": "Adam", "loss_scale": True})
    assert "keras.mixed_precision.LossScaleOptimizer(keras.optimizers.Adam(" in top(ev)[1][0]["fix"]
    # epsilon unread (None) in an Adam-family optimizer whose update divided by zeros: still the cause
    cause, d, _ = top(b01_evidence(epsilon=None))
    assert cause == "optimizer_epsilon_zero" and d[0]["confidence"] == 0.85


def test_optimizer_epsilon_zero_counter_examples():
    # Keras's default epsilon: the division's own story, as before
    assert top(b01_evidence(epsilon=1e-7))[0] == "division_by_zero"
    # no epsilon to blame: SGD has none
    assert "optimizer_epsilon_zero" not in causes(diagnose(b01_evidence(**{"class": "SGD", "epsilon": None}))[0])
    # epsilon 0 but the NaN is not in the optimizer's update
    ev = b01_evidence()
    ev["first_nonfinite"] = dict(ev["first_nonfinite"], phase="loss")
    assert "optimizer_epsilon_zero" not in causes(diagnose(ev)[0])


@pytest.mark.parametrize("fn", [
    {"op_type": "SqrtGrad", "phase": "backward", "gradient_of": "Sqrt"},
    {"op_type": "Mul", "phase": "backward", "gradient_of": {"op_type": None, "source": "line 3", "forward_absorbed": 1}},
    {"op_type": "Softmax", "made_from": ["mask"], "inputs": [{"neg_inf": "many"}], "counts": {"nan": "x"}},
    {"op_type": "RealDiv", "phase": "optimizer", "inputs": [{}, None]},
])
def test_malformed_pattern_evidence_never_raises(fn):
    d, w = diagnose({"first_nonfinite": fn, "optimizer": {"class": "Adam", "epsilon": "zero"}})
    assert isinstance(d, list) and isinstance(w, list)


# ------------------------------------------------------------------------------------------------
# dynamics, weights, data quality behind an overflow
# ------------------------------------------------------------------------------------------------
def lr_evidence():
    rec = dyn("lr_sgd10_mlp")  # zoo p04 as a recorded run: SGD(10.0), NaN at step 9
    rng = np.random.default_rng(4)
    X = rng.random((256, 10)).astype("float32")
    return {"call": "fit", "steps": rec["steps"], "layers": rec["layers"], "optimizer": rec["optimizer"],
            "data": [profile_array("X", X, "features"), profile_array("y", X.sum(1, keepdims=True) * 5, "targets")],
            "first_nonfinite": first("MatMul", "forward", [inp(0.0, 3.1e18, size=2048), inp(-2e17, 4e18, size=64)],
                                     layer="dense_1", step=9, pos_inf=32, size=32)}


def outlier_evidence():
    rec = dyn("outlier_1e10_adam")
    rng = np.random.default_rng(7)
    X = rng.random((100, 1)) * 10
    y = 2 * X + 1 + rng.normal(size=(100, 1))
    X[0, 0] = 1e10  # after y, as in seed 004
    # the run as the engine sees it when Adam's grad**2 overflows on the first batch holding row 0
    steps = rec["steps"][:2] + [dict(rec["steps"][2], loss="nan", grad_norm="nan")]
    layers = [dict(l, history=l["history"][:3]) for l in rec["layers"]]
    return {"call": "fit", "steps": steps, "layers": layers, "optimizer": rec["optimizer"],
            "data": [profile_array("X", X, "features"), profile_array("y", y, "targets")],
            "first_nonfinite": first("Square", "optimizer", [inp(-2.7e19, 3.1e19, size=10)], layer="dense",
                                     step=1, pos_inf=10, size=10,
                                     data={"source": "x", "batch": 0, "rows": [0], "array_rows": [0]})}


def test_learning_rate_too_high_with_recorded_dynamics():
    cause, d, w = top(lr_evidence())
    assert cause == "learning_rate_too_high" and d[0]["confidence"] >= 0.85
    assert "keras.optimizers.SGD(learning_rate=0.001, clipnorm=1.0)" in d[0]["fix"]
    assert "exploding_gradients" in causes(d)


def test_lookalike_learning_rate_vs_bad_input_row():
    lr_cause, _, _ = top(lr_evidence())
    cause, d, w = top(outlier_evidence())
    assert (lr_cause, cause) == ("learning_rate_too_high", "outlier_input")
    assert d[0]["confidence"] >= 0.9
    assert "1e10 at row 0" in d[0]["evidence"] and "RobustScaler" in d[0]["fix"]
    assert "learning_rate_too_high" not in causes(d)[:1]
    others = {x["cause"]: x["confidence"] for x in d}
    assert others.get("exploding_gradients", 0) <= 0.6


def test_exploding_gradients_in_a_relu_rnn():
    rec = dyn("explode_rnn_relu")  # d11 recorded; fit under check_numerics: MatMul_1 in the rnn's while body
    rng = np.random.default_rng(11)
    X = rng.random((64, 50, 1)).astype("float32")
    ev = {"call": "fit", "steps": rec["steps"], "layers": rec["layers"], "optimizer": rec["optimizer"],
          "data": [profile_array("X", X, "features"), profile_array("y", X.sum(1), "targets")],
          "layers_config": [{"name": "rnn", "class": "SimpleRNN", "config": {"activation": "relu"}}],
          "first_nonfinite": first("MatMul", "forward", [inp(0.0, 2.1e37, size=256), inp(-3e4, 2.6e4, size=256)],
                                   layer="rnn", step=15, pos_inf=40, size=256)}
    cause, d, w = top(ev)
    assert cause == "exploding_gradients" and d[0]["confidence"] >= 0.8
    assert "'rnn'" in d[0]["evidence"] and "clipnorm=1.0" in d[0]["fix"] and "learning_rate=0.001" in d[0]["fix"]
    assert causes(d)[1] == "learning_rate_too_high"


def test_large_initial_weights_vs_outlier_row():
    """Same first op (Adam's Square overflowing at step 0), different upstream cause."""
    # d13 (measured: adam/Square, optimizer phase): RandomNormal(stddev=50) kernels in 6 Dense(64) layers
    norms = [{"layer": "dense", "variable": "kernel", "norm": 50 * (32 * 64) ** 0.5, "fan_in": 32, "fan_out": 64}] + \
            [{"layer": f"dense_{i}", "variable": "kernel", "norm": 50 * 64.0, "fan_in": 64, "fan_out": 64}
             for i in range(1, 6)]
    X = np.random.default_rng(13).random((64, 32)).astype("float32")
    ev = {"call": "fit", "initial_weight_norms": norms,
          "optimizer": {"class": "Adam", "learning_rate": 0.001},
          "data": [profile_array("X", X, "features"), profile_array("y", X[:, :1], "targets")],
          "layers_config": [{"name": "dense", "class": "Dense", "config": {
              "kernel_initializer": {"class_name": "RandomNormal", "config": {"mean": 0.0, "stddev": 50.0}}}}],
          "first_nonfinite": first("Square", "optimizer", [inp(-4e20, 5e20, size=2048)], layer="dense_1", step=0,
                                   pos_inf=2048, size=2048)}
    cause, d, _ = top(ev)
    assert cause == "large_initial_weights" and d[0]["confidence"] >= 0.85
    assert "400x the Glorot scale" in d[0]["evidence"] and 'kernel_initializer="glorot_uniform"' in d[0]["fix"]
    assert top(outlier_evidence())[0] == "outlier_input"


def test_large_initial_weights_from_the_config_alone_is_a_warning():
    ev = {"call": "fit", "layers_config": [{"name": "unstable", "class": "Dense", "config": {
        "kernel_initializer": {"class_name": "RandomNormal", "config": {"mean": 10.0, "stddev": 5.0}}}}]}
    d, w = diagnose(ev)
    assert d == [] and causes(w) == ["large_initial_weights"] and "RandomNormal(mean=10.0, stddev=5.0)" in w[0]["evidence"]


def test_unscaled_input_behind_an_overflow_with_an_ordinary_lr():
    rng = np.random.default_rng(16)
    X = np.column_stack([rng.uniform(500, 5000, 200), rng.integers(1, 7, 200)]).astype("float32")
    ev = {"call": "fit", "optimizer": {"class": "SGD", "learning_rate": 0.01},
          "data": [profile_array("X", X, "features")],
          "first_nonfinite": first("MatMul", "backward", [inp(-3e30, 4e30, size=32), inp(-1e9, 1e9, size=32)],
                                   layer="dense", step=3, pos_inf=4, size=32)}
    cause, d, _ = top(ev)
    assert cause == "unscaled_input" and "column 0 of X" in d[0]["evidence"]
    assert "Normalization" in d[0]["fix"]
    # with Normalization as the model's first layer the scale is handled: not blamed
    ev["layers_config"] = [{"name": "normalization", "class": "Normalization", "config": {}}]
    assert "unscaled_input" not in causes(diagnose(ev)[0])


# ------------------------------------------------------------------------------------------------
# warnings without NaN
# ------------------------------------------------------------------------------------------------
def test_seed004_outlier_without_nan_is_a_warning():
    ev = outlier_evidence()
    ev = {k: v for k, v in ev.items() if k != "first_nonfinite"}
    ev["steps"], ev["layers"] = dyn("outlier_1e10_adam")["steps"], dyn("outlier_1e10_adam")["layers"]
    d, w = diagnose(ev)
    assert d == [] and causes(w) == ["outlier_input"]


def test_bad_batch_jump_is_told_with_the_outlier_not_as_exploding_gradients():
    """Zoo p07 through the real engine: the run ended right after the batch holding the 1e10 row, so the
    dynamics alone look like a sudden explosion; with the outlier in the data it is the outlier's story."""
    ev = outlier_evidence()
    rec = dyn("outlier_1e10_adam")
    ev = {k: v for k, v in ev.items() if k != "first_nonfinite"}
    ev["steps"], ev["layers"] = rec["steps"][:2], [dict(l, history=l["history"][:2]) for l in rec["layers"]]
    d, w = diagnose(ev)
    assert d == [] and causes(w) == ["outlier_input"]
    assert "jumped" in w[0]["evidence"] and "step 1" in w[0]["evidence"]
    # without the outlier in sight, the same dynamics do warn
    ev["data"] = []
    assert causes(diagnose(ev)[1]) == ["exploding_gradients"]


def test_data_location_text():
    ev = {"first_nonfinite": first(None, "input", nan=1, data={"source": "y", "batch": 4, "rows": [6, 6], "columns": [0]}),
          "data": []}
    d, _ = diagnose(ev)
    assert d[0]["cause"] == "nan_in_target" and "row 6 of batch 4 of y, column 0" in d[0]["evidence"]


def test_placeholder_values_warning_d03():
    rng = np.random.default_rng(3)
    X = rng.uniform(0, 1, (200, 4)).astype("float32")
    X[rng.choice(200, 12, replace=False), 1] = -999.0
    d, w = diagnose({"call": "fit", "data": [profile_array("X", X, "features")]})
    assert d == [] and causes(w) == ["placeholder_values"] and "-999 12 times" in w[0]["evidence"]


def test_predict_drift_after_scaled_training_d14():
    rng = np.random.default_rng(14)
    raw = np.column_stack([rng.uniform(1000, 3000, 200), rng.uniform(0.1, 0.3, 200)])
    tr = training_ranges(profile_array("x", (raw - raw.mean(0)) / raw.std(0), "features"))
    new = np.array([[1500.0, 0.15], [2500.0, 0.25]])
    d, w = diagnose({"call": "predict", "train_ranges": tr, "data": [profile_array("new", new, "features")]})
    assert d == [] and "input_drift" in causes(w)
    drift = next(x for x in w if x["cause"] == "input_drift")
    assert "column 0" in drift["evidence"] and "scaler.transform(new)" in drift["fix"]


def test_drift_when_one_cell_fits_then_predicts():
    rng = np.random.default_rng(14)
    raw = np.column_stack([rng.uniform(1000, 3000, 200), rng.uniform(0.1, 0.3, 200)])
    fit_profile = profile_array("X", (raw - raw.mean(0)) / raw.std(0), "features")
    new = np.array([[1500.0, 0.15], [2500.0, 0.25]])
    ev = {"call": "predict", "train_ranges": training_ranges(fit_profile),
          "data": [fit_profile, profile_array("y", rng.random(200), "targets"), profile_array("X", new, "features")]}
    d, w = diagnose(ev)
    assert causes(w) == ["input_drift"]  # the predict X is also "unscaled"; drift says it better


def test_live_learning_rate_warning_before_nan():
    rec = dyn("lr_sgd10_mlp")
    ev = {"call": "fit", "steps": rec["steps"][:4], "optimizer": rec["optimizer"],
          "layers": [dict(l, history=l["history"][:4]) for l in rec["layers"]]}
    d, w = diagnose(ev)
    assert d == [] and causes(w) == ["learning_rate_too_high"]


# ------------------------------------------------------------------------------------------------
# healthy runs: nothing at all (false-alarm suite, evidence side)
# ------------------------------------------------------------------------------------------------
def healthy(name, X, y, rec, **extra):
    ev = {"call": "fit", "data": [profile_array("X", X, "features"), profile_array("y", y, "targets")],
          "optimizer": rec["optimizer"], "steps": rec["steps"], "layers": rec["layers"], "nan_weights": [],
          "dtype_policy": "float32", "fp16_skipped_steps": 0, "first_nonfinite": None,
          "initial_weight_norms": rec.get("initial_weight_norms")}
    ev.update(extra)
    return ev


def _healthy_cases():
    r = np.random.default_rng(0)
    X16 = r.random((64, 16, 16, 1)).astype("float32")
    imgs = r.integers(0, 256, (64, 12, 12, 3), dtype="uint8")
    df = pd.DataFrame({"city": r.choice(["paris", "oslo", "rome", "lima", "kyiv"], 300, p=[.6, .3, .07, .02, .01]),
                       "age": r.uniform(0, 1, 300), "bias": 1.0})
    onehot = pd.get_dummies(df, columns=["city"], dtype="float32")
    Xp = r.uniform(0, 1, (256, 5)).astype("float32")
    yield "cnn_bn_dropout", healthy("cnn", X16, r.integers(0, 3, 64), dyn("healthy_cnn_bn_dropout"))
    yield "lstm", healthy("lstm", r.random((64, 12, 3)), r.random((64, 1)), dyn("healthy_lstm"))
    mp = dyn("healthy_adam_mlp")
    mp_steps = [dict(s, grad_norm="inf") if s["step"] in (0, 1) else s for s in mp["steps"]]
    yield "mixed_precision", healthy("mp", r.random((128, 16)), r.integers(0, 2, 128), dict(mp, steps=mp_steps),
                                     dtype_policy="mixed_float16", fp16_skipped_steps=2,
                                     optimizer={"class": "LossScaleOptimizer", "learning_rate": 0.001})
    yield "class_imbalance", healthy("imb", r.normal(size=(400, 10)), (r.random(400) < 0.01).astype("float32"),
                                     dyn("healthy_class_imbalance"))
    yield "tiny_dataset", healthy("xor", np.array([[0, 0], [0, 1], [1, 0], [1, 1]], "float32"),
                                  np.array([0, 1, 1, 0], "float32"), dyn("healthy_tiny_overfit"))
    yield "large_finite_loss", healthy("prices", Xp, 2e5 + 3e5 * Xp[:, :1] + r.normal(0, 2e4, (256, 1)),
                                       dyn("healthy_large_loss_prices"))
    yield "onehot_bias_dataframe", healthy("onehot", onehot, r.integers(0, 2, 300), dyn("healthy_adam_mlp"))
    yield "raw_uint8_images", healthy("imgs", imgs, r.integers(0, 2, 64), dyn("healthy_cnn_bn_dropout"))
    yield "noisy_sgd_momentum", healthy("sgd", r.normal(size=(512, 20)), r.normal(size=(512, 1)),
                                        dyn("healthy_noisy_sgd_momentum"))
    yield "sgd_lr_0p1", healthy("sgd1", r.random((256, 8)), r.random((256, 1)), dyn("healthy_sgd_lr0p1"))
    yield "constant_batch_batchnorm", healthy("p06", np.ones((100, 10), "float32") * 5, r.random((100, 1)),
                                              dyn("healthy_adam_mlp"),
                                              layers_config=[{"name": "batch_normalization",
                                                              "class": "BatchNormalization", "config": {}}])
    yield "saturated_sigmoid_all_zero_targets", healthy("f09", np.full((64, 10), 20.0, "float32"),
                                                        np.zeros((64, 1), "float32"), dyn("healthy_adam_mlp"))


@pytest.mark.parametrize("name,ev", list(_healthy_cases()), ids=[n for n, _ in _healthy_cases()])
def test_healthy_training_gives_no_diagnosis_and_no_warnings(name, ev):
    assert diagnose(ev) == ([], []), name


def test_info_notes_are_not_alarms():
    cases = dict(_healthy_cases())
    # skipped float16 steps are the session's info line (tests/tf/test_reliability.py), not a data note
    assert not any("skipped" in n for n in info_notes(cases["mixed_precision"]))
    assert any("Rescaling" in n for n in info_notes(cases["raw_uint8_images"]))
    assert any("constant" in n for n in info_notes(cases["onehot_bias_dataframe"]))


# ------------------------------------------------------------------------------------------------
# contract
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ev", [None, {}, {"first_nonfinite": {}}, {"data": None, "steps": None},
                                {"first_nonfinite": {"op_type": "Log", "inputs": [{"min": "nan"}], "counts": None}},
                                {"first_nonfinite": {"op_type": "RealDiv", "inputs": [None, 3]}, "data": [None, 1]},
                                {"optimizer": "adam", "loss": "mse", "layers_config": "x", "nan_weights": [None]},
                                {"steps": [{"step": "a", "loss": "b"}], "layers": [{"history": [{"step": None}]}]}])
def test_malformed_evidence_never_raises(ev):
    d, w = diagnose(ev)
    assert isinstance(d, list) and isinstance(w, list)


def test_schema_of_every_item():
    evs = [p01_evidence(), p09_evidence(), lr_evidence(), outlier_evidence()]
    for ev in evs:
        d, w = diagnose(ev)
        json.dumps([d, w], allow_nan=False)
        assert d, ev
        for x in d:
            assert set(x) == {"cause", "confidence", "evidence", "fix"} and x["cause"] in CAUSES
            assert 0.0 <= x["confidence"] <= 1.0 and isinstance(x["confidence"], float)
            assert x["evidence"] and x["fix"] and any(ch.isdigit() for ch in x["evidence"])
        assert [x["confidence"] for x in d] == sorted((x["confidence"] for x in d), reverse=True)
        assert len({x["cause"] for x in d}) == len(d)
        for x in w:
            assert set(x) == {"cause", "evidence", "fix"} and x["cause"] in CAUSES
