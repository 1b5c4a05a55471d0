"""Issue 15 part B's rules on hand-built evidence (no TensorFlow): the loss configuration against the output
activation, preprocessing inside the model, raw images, standardised rarely non-zero features, and fixes
that keep the meaning of the user's line. Each rule has a case that fires and a healthy one that does not.
The loss_config dicts are what nanwatch.engine.model_facts.loss_facts returned for the scenarios of
tests/scenarios/loss_data.py (measured)."""

import numpy as np

from nanwatch.diagnosis import diagnose, info_notes
from nanwatch.diagnosis import rewrite
from nanwatch.diagnosis.data_checks import profile_array, profile_warnings
from tests.unit.test_diagnosis_rules import causes, first, inp, top


def loss(name, activation, from_logits=False, cls=None, layer="out"):
    return {"name": name, "class": cls, "from_logits": from_logits,
            "probabilistic": name in ("binary_crossentropy", "categorical_crossentropy",
                                      "sparse_categorical_crossentropy"),
            "output_layer": layer, "output_class": "Dense", "output_activation": activation}


LAYERS = [{"name": "dense", "class": "Dense", "config": {}}, {"name": "out", "class": "Dense", "config": {}}]


# ---- loss_expects_probabilities ------------------------------------------------------------------
def l02_nan():
    # l02 measured: RealDiv in the loss, denominator min 0 (2 zeros of 32): a ReLU row of zeros over its sum
    return first("RealDiv", "loss", [inp(0.0, 3.1, zeros=3, size=96), inp(0.0, 4.015, zeros=2, size=32)], nan=6)


def test_relu_output_into_categorical_crossentropy_is_the_cause():
    ev = {"first_nonfinite": l02_nan(), "loss_config": loss("categorical_crossentropy", "relu", layer="scores"),
          "layers_config": LAYERS}
    cause, d, w = top(ev)
    assert cause == "loss_expects_probabilities" and d[0]["confidence"] >= 0.9
    assert "output layer 'scores' (activation relu)" in d[0]["evidence"]
    assert "keras.losses.CategoricalCrossentropy(from_logits=True)" in d[0]["fix"]
    assert {x["cause"]: x["confidence"] for x in d}["division_by_zero"] <= 0.5
    assert "loss_expects_probabilities" not in causes(w)   # not repeated as a warning


def test_softmax_output_division_is_not_blamed_on_the_loss_configuration():
    ev = {"first_nonfinite": l02_nan(), "loss_config": loss("categorical_crossentropy", "softmax")}
    cause, d, w = top(ev)
    assert cause == "division_by_zero" and "loss_expects_probabilities" not in causes(d) + causes(w)
    # a custom loss function is not judged
    ev["loss_config"] = dict(loss("my_loss", "relu"), from_logits=None)
    assert "loss_expects_probabilities" not in causes(diagnose(ev)[0])


def test_linear_output_into_binary_crossentropy_warns():
    d, w = diagnose({"loss_config": loss("binary_crossentropy", "linear", cls="BinaryCrossentropy")})
    assert d == [] and causes(w) == ["loss_expects_probabilities"]
    assert "keras.losses.BinaryCrossentropy(from_logits=True)" in w[0]["fix"] and "sigmoid" in w[0]["fix"]


def test_healthy_loss_configurations_do_not_warn():
    for cfg in (loss("binary_crossentropy", "sigmoid"), loss("sparse_categorical_crossentropy", "softmax"),
                loss("binary_crossentropy", "linear", from_logits=True), loss("mse", "linear"),
                loss("mse", "sigmoid"), loss("binary_crossentropy", None),   # an unknown activation
                loss("categorical_crossentropy", "my_activation")):
        assert diagnose({"loss_config": cfg}) == ([], []), cfg


# ---- probabilities_as_logits ---------------------------------------------------------------------
def test_softmax_output_with_from_logits_warns():
    cfg = loss("sparse_categorical_crossentropy", "softmax", from_logits=True, cls="SparseCategoricalCrossentropy")
    d, w = diagnose({"loss_config": cfg})
    assert causes(w) == ["probabilities_as_logits"]
    assert "SparseCategoricalCrossentropy(from_logits=False)" in w[0]["fix"] and "activation=None" in w[0]["fix"]
    assert causes(diagnose({"loss_config": dict(cfg, output_activation="sigmoid")})[1]) == ["probabilities_as_logits"]
    assert diagnose({"loss_config": dict(cfg, from_logits=False)}) == ([], [])


# ---- preprocessing inside the model ----------------------------------------------------------------
def scaled_features():
    rng = np.random.default_rng(21)
    return np.column_stack([rng.uniform(0, 1000, 256), rng.uniform(0, 100, 256), rng.uniform(0, 10, 256),
                            rng.uniform(0, 1, 256), rng.uniform(0, 1, 256)])


def test_normalization_inside_the_model_silences_unscaled_input():
    ev = {"call": "fit", "data": [profile_array("X", scaled_features(), "features")],
          "layers_config": [{"name": "input_layer", "class": "InputLayer"}, {"name": "normalization", "class": "Normalization"},
                            {"name": "dense", "class": "Dense"}]}
    assert diagnose(ev) == ([], [])
    # a layer that only reshapes may come first
    ev["layers_config"].insert(1, {"name": "reshape", "class": "Reshape"})
    assert diagnose(ev) == ([], [])
    # without it, the scale warning stays
    ev["layers_config"] = [{"name": "dense", "class": "Dense"}]
    assert causes(diagnose(ev)[1]) == ["unscaled_input"]


def test_exp_overflow_does_not_quote_features_the_model_normalises():
    fn = first("Exp", "loss", [inp(-3.0, 120.0)], pos_inf=2)
    base = {"first_nonfinite": fn, "data": [profile_array("X", scaled_features(), "features")]}
    _, d, _ = top(dict(base, layers_config=[{"name": "normalization", "class": "Normalization"}]))
    assert "unscaled" not in d[0]["evidence"]
    _, d, _ = top(dict(base, layers_config=[{"name": "dense", "class": "Dense"}]))
    assert "unscaled" in d[0]["evidence"]


def pixels():
    return np.random.default_rng(8).integers(0, 256, (64, 12, 12, 3), dtype="uint8")


def test_raw_pixels_into_a_model_without_rescaling_warn():
    ev = {"call": "fit", "data": [profile_array("X", pixels(), "features")],
          "layers_config": [{"name": "conv2d", "class": "Conv2D"}, {"name": "dense", "class": "Dense"}]}
    d, w = diagnose(ev)
    assert d == [] and causes(w) == ["unscaled_input"]
    assert "layer 'conv2d' (Conv2D)" in w[0]["evidence"] and "Rescaling(1.0 / 255)" in w[0]["fix"]
    assert not any("Rescaling" in n for n in info_notes(ev))   # said once, as the warning


def test_raw_pixels_into_a_rescaling_model_are_healthy():
    ev = {"call": "fit", "data": [profile_array("X", pixels(), "features")],
          "layers_config": [{"name": "rescaling", "class": "Rescaling"}, {"name": "conv2d", "class": "Conv2D"}]}
    assert diagnose(ev) == ([], [])
    assert not any("Rescaling" in n for n in info_notes(ev))
    # no model in sight (custom code): the note only, as before
    ev.pop("layers_config")
    assert diagnose(ev) == ([], []) and any("Rescaling" in n for n in info_notes(ev))


# ---- rare_values_standardized ----------------------------------------------------------------------
def standard_scaled(raw):
    std = raw.std(0)
    return (raw - raw.mean(0)) / np.where(std == 0, 1, std)


def rare_pixels():
    """The pixels of tests/scenarios/loss_data.py l06 (same seed and layout)."""
    rng = np.random.default_rng(25)
    n, d = 3000, 784
    raw = np.zeros((n, d), "float32")
    central = rng.choice(d, 150, replace=False)
    raw[:, central] = (rng.random((n, 150)) < 0.2) * rng.uniform(0.5, 1.0, (n, 150))
    border = np.setdiff1d(np.arange(d), central)[:200]
    raw[rng.integers(0, n), border] = 1.0
    return raw


def test_standardised_rare_pixels_outrank_the_overflow_they_cause():
    # l06 measured: Exp in layer 'sampling' (forward) at step 29, inputs up to 182.7
    fn = first("Exp", "forward", [inp(-40.0, 182.7)], layer="sampling", step=29, pos_inf=3)
    ev = {"call": "fit", "first_nonfinite": fn, "data": [profile_array("X", standard_scaled(rare_pixels()), "features")]}
    cause, d, _ = top(ev)
    assert cause == "rare_values_standardized", d
    assert "200 columns of X" in d[0]["evidence"] and "row " in d[0]["evidence"]
    assert "MinMaxScaler" in d[0]["fix"] or "/ 255" in d[0]["fix"]
    assert {x["cause"]: x["confidence"] for x in d}["exp_overflow"] <= 0.5
    # and an overflow in Adam (the case): ranked above exploding_gradients
    ev["first_nonfinite"] = first("Square", "optimizer", [inp(-3e19, 3e19)], pos_inf=4)
    cause, d, _ = top(ev)
    assert cause == "rare_values_standardized"
    assert all(x["confidence"] <= 0.5 for x in d if x["cause"] == "exploding_gradients")


def test_standardised_rare_pixels_warn_before_any_nan():
    d, w = diagnose({"call": "fit", "data": [profile_array("X", standard_scaled(rare_pixels()), "features")]})
    assert d == [] and "rare_values_standardized" in causes(w)


def test_healthy_standardised_columns_do_not_fire():
    rng = np.random.default_rng(0)
    for raw in (rng.normal(size=(200_000, 3)), rng.exponential(size=(200_000, 3)),
                rng.lognormal(size=(100_000, 3)), (rng.random((100_000, 3)) < 0.001) * 1.0,
                rare_pixels()):    # the rare pixels left in 0..1 (l14)
        data = standard_scaled(raw) if raw.shape[1] == 3 else raw
        items = profile_warnings(profile_array("X", data, "features"))
        assert "rare_values_standardized" not in causes(items), raw[:2]


# ---- fixes that keep the meaning -------------------------------------------------------------------
D05_LINE = "    return -tf.reduce_mean(y_true * tf.math.log(y_pred) + (1 - y_true) * tf.math.log(1 - y_pred))"


def test_log_fix_does_not_clip_a_non_probability_to_one():
    # issue 15: a ReLU output of 1.109 into a hand-written cross-entropy was clipped to [1e-7, 1.0]
    fn = first("Log", "loss", [inp(0.0, 1.109, zeros=37, op_type="Relu", name="score/Relu")], neg_inf=37,
               code=D05_LINE, line=6)
    _, d, _ = top({"first_nonfinite": fn})
    fix = d[0]["fix"]
    assert "1.0)" not in fix and "tf.maximum(y_pred, 1e-7)" in fix
    assert fix.index("from_logits=True") < fix.index("tf.maximum")    # the stable loss comes first
    # values in [0, 1] behind a probability hint keep the two-sided clip
    fn = first("Log", "loss", [inp(0.0, 0.98, zeros=3, op_type="Sigmoid")], neg_inf=3, code=D05_LINE, line=6)
    assert "tf.clip_by_value(y_pred, 1e-7, 1.0)" in top({"first_nonfinite": fn})[1][0]["fix"]


def test_log_of_one_plus_x_becomes_log1p():
    assert rewrite.clip_log("    s = tf.math.log(1 + x)", probability=False) == \
        "    s = tf.math.log1p(tf.maximum(x, -1.0 + 1e-7))"
    assert rewrite.clip_log("s = keras.ops.log(x + 1.0) * 2", probability=False) == \
        "s = keras.ops.log1p(keras.ops.maximum(x, -1.0 + 1e-7)) * 2"
    assert rewrite.clip_log("s = tf.math.log(x)", probability=False) == "s = tf.math.log(tf.maximum(x, 1e-7))"


# ---- sample_weight and class_weight ---------------------------------------------------------------
def test_nonfinite_sample_and_class_weights_warn():
    weights = {"sample_weight": {"nan": 2, "inf": 0, "negative": 0, "size": 96, "rows": [4, 17]},
               "class_weight": {"0": 1.0, "1": float("inf")}}
    d, w = diagnose({"loss_config": dict(loss("binary_crossentropy", "sigmoid"), weights=weights)})
    assert causes(w) == ["nan_in_target", "inf_in_target"]
    assert "sample_weight has 2 NaN (rows 4, 17)" in w[0]["evidence"] and "class 1 is Inf" in w[1]["evidence"]
    healthy = {"sample_weight": {"nan": 0, "inf": 0, "negative": 0, "size": 96, "rows": []},
               "class_weight": {"0": 1.0, "1": 50.0}}
    assert diagnose({"loss_config": dict(loss("binary_crossentropy", "sigmoid"), weights=healthy)}) == ([], [])


def test_log_fix_reads_the_output_activation():
    """d05 measured: the Log's input is the model's ReLU output, min 0, max 0.6189 in the failing batch (no
    producer op captured): in [0, 1] by chance; the loss configuration says it is a ReLU, not a probability."""
    fn = first("Log", "loss", [inp(0.0, 0.6189, zeros=53, name="input:0")], neg_inf=53, code=D05_LINE, line=6)
    relu = {"name": "my_bce", "class": None, "from_logits": None, "probabilistic": False,
            "output_layer": "score", "output_class": "Dense", "output_activation": "relu"}
    fix = top({"first_nonfinite": fn, "loss_config": relu})[1][0]["fix"]
    assert "tf.maximum(y_pred, 1e-7)" in fix and "1.0)" not in fix and 'activation="sigmoid"' in fix
    fix = top({"first_nonfinite": fn, "loss_config": dict(relu, output_activation="sigmoid")})[1][0]["fix"]
    assert "tf.clip_by_value(y_pred, 1e-7, 1.0)" in fix
