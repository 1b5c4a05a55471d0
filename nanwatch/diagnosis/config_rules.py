"""Rules and warnings read from what the user configured: the compiled loss against the output
layer's activation (`evidence.loss_config`), the model's preprocessing against the data's range,
and data standardised in a way that blows rare values up. Warnings come before training goes
wrong (in the manner of UMLAUT, Schoop et al., CHI 2021: checks of a model's set-up, each with a
fix); the rules rank these set-ups as the cause when the first NaN is what they predict.

The loss rules have no numeric threshold (a loss expects probabilities or logits; an activation makes
probabilities or not); the raw-image warning reuses data_warnings' measured image note (typical >= 100,
max <= 255) and rare_values_standardized its RARE_Z. Healthy counter-examples: tests/scenarios/loss_data.py
(l11-l15), the healthy trainings of tests/scenarios/diagnosis.py, tests/unit/test_loss_data_rules.py.
"""

from __future__ import annotations

import math

from ..ops import DIV_OPS, LOG_OPS, WEIGHT_READS
from .context import Context, cand

# Activations whose outputs are probabilities (what a loss without from_logits expects)
PROBABILITY_ACTIVATIONS = frozenset({"softmax", "sigmoid", "hard_sigmoid"})
# Activations known not to make probabilities (anything else, a custom one, is not judged)
NON_PROBABILITY_ACTIVATIONS = frozenset({"linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu",
                                         "swish", "tanh", "softplus", "exponential", "mish"})
# the loss function's name -> its class, for fixes that name the user's loss object
LOSS_CLASSES = {"binary_crossentropy": "BinaryCrossentropy", "categorical_crossentropy": "CategoricalCrossentropy",
                "sparse_categorical_crossentropy": "SparseCategoricalCrossentropy",
                "binary_focal_crossentropy": "BinaryFocalCrossentropy",
                "categorical_focal_crossentropy": "CategoricalFocalCrossentropy"}

# cause -> the causes it explains better (ranking.adjust caps them at 0.5 when it fires at 0.85+)
SUPERSEDES = {
    "loss_expects_probabilities": ("division_by_zero", "log_of_nonpositive"),
    "rare_values_standardized": ("exploding_gradients", "learning_rate_too_high", "exp_overflow",
                                 "large_initial_weights", "unscaled_input", "outlier_input"),
}


def _loss(ctx: Context) -> dict:
    raw = ctx.record.loss_config
    return raw if isinstance(raw, dict) else {}


def _loss_code(loss: dict, from_logits: bool) -> str:
    cls = loss.get("class") or LOSS_CLASSES.get(loss.get("name") or "")
    return f"keras.losses.{cls}(from_logits={from_logits})" if cls else f"from_logits={from_logits}"


def _output(loss: dict) -> str:
    layer = loss.get("output_layer")
    return f"output layer '{layer}' (activation {loss.get('output_activation')})" if layer else \
        f"the output (activation {loss.get('output_activation')})"


def expects_probabilities(loss: dict) -> bool:
    """A probabilistic loss without from_logits fed by an activation that does not make probabilities."""
    return bool(loss.get("probabilistic")) and loss.get("from_logits") is False \
        and loss.get("output_activation") in NON_PROBABILITY_ACTIVATIONS


def logits_given_probabilities(loss: dict) -> bool:
    """A loss built with from_logits=True fed by softmax/sigmoid outputs."""
    return bool(loss.get("probabilistic")) and loss.get("from_logits") is True \
        and loss.get("output_activation") in PROBABILITY_ACTIVATIONS


def _expects_text(loss: dict) -> tuple:
    name = loss.get("class") or loss.get("name")
    categorical = "categorical" in (loss.get("name") or "")
    ev = (f"The loss {name} reads the model's outputs as probabilities (from_logits=False), but {_output(loss)} "
          f"does not make probabilities: Keras clips them to [1e-7, 1 - 1e-7]"
          + (" after dividing each row by its sum (0/0 for a row of zeros)" if categorical else "")
          + ", so the gradient is zero or wrong wherever they fall outside.")
    act = "softmax" if categorical else "sigmoid"
    fix = (f"Give the loss the raw scores: an output layer without activation and "
           f"`model.compile(loss={_loss_code(loss, True)}, ...)`; or make them probabilities: "
           f"`activation=\"{act}\"` on the output layer.")
    return ev, fix


def rule_loss_expects_probabilities(ctx: Context) -> list:
    """loss_expects_probabilities: the first NaN is in the loss, computed by a probabilistic loss
    from outputs that are not probabilities (a ReLU row of zeros divided by its sum)."""
    loss = _loss(ctx)
    if not ctx.has_fn or ctx.phase != "loss" or not expects_probabilities(loss) or ctx.upstream_nonfinite:
        return []
    if ctx.op not in DIV_OPS | LOG_OPS and not ctx.made_nan:
        return []
    ev, fix = _expects_text(loss)
    return [cand("loss_expects_probabilities", 0.93, f"{ctx.where()} made the first non-finite value. " + ev, fix)]


def rule_rare_values_standardized(ctx: Context) -> list:
    """rare_values_standardized: an overflow (or an exploded run) explained by standardised rarely
    non-zero features: the data profile is the root cause, the overflow in Adam or exp its symptom."""
    items = ctx.items("rare_values_standardized")
    if not items or (not ctx.has_fn and not ctx.dyn.get("explosion")):
        return []
    if ctx.has_fn and (not ctx.inputs_finite or ctx.op in WEIGHT_READS or ctx.is_data_op()):
        return []
    ev = items[0]["evidence"]
    if ctx.has_fn:
        big = ctx.max_abs_input()
        ev += f" First non-finite: {ctx.where()}" + (f", from finite values as large as {big:.4g}." if big else ".")
    return [cand("rare_values_standardized", 0.9, ev, items[0]["fix"])]


def config_warnings(ctx: Context) -> list:
    """Warnings before any NaN: the loss against the output activation, and raw image inputs into a
    model that does not normalise them."""
    out = []
    loss = _loss(ctx)
    if expects_probabilities(loss):
        ev, fix = _expects_text(loss)
        out.append({"cause": "loss_expects_probabilities", "evidence": ev, "fix": fix})
    if logits_given_probabilities(loss):
        name = loss.get("class") or loss.get("name")
        out.append({"cause": "probabilities_as_logits",
                    "evidence": (f"The loss {name} was built with from_logits=True, but {_output(loss)} already "
                                 f"makes probabilities: the loss applies {loss.get('output_activation')} a second "
                                 f"time, its gradients shrink and training stalls."),
                    "fix": (f"Either drop the output activation (`activation=None` on '{loss.get('output_layer')}') "
                            f"and keep `{_loss_code(loss, True)}`, or keep it and use `{_loss_code(loss, False)}`.")})
    out.extend(raw_input_warnings(ctx))
    out.extend(weight_warnings(loss.get("weights")))
    return out


def weight_warnings(weights) -> list:
    """NaN/Inf (or negative) sample weights and class weights: they multiply the loss of their rows."""
    if not isinstance(weights, dict):
        return []
    out = []
    sw = weights.get("sample_weight") if isinstance(weights.get("sample_weight"), dict) else {}
    cw = weights.get("class_weight") if isinstance(weights.get("class_weight"), dict) else {}
    bad_cw = {k: v for k, v in cw.items() if not math.isfinite(v) or v < 0}
    for kind in ("nan", "inf"):
        parts = []
        if sw.get(kind):
            parts.append(f"sample_weight has {sw[kind]} {'NaN' if kind == 'nan' else 'Inf'} "
                         f"(rows {', '.join(map(str, sw.get('rows') or []))})")
        cls = [k for k, v in bad_cw.items() if (math.isnan(v) if kind == "nan" else math.isinf(v))]
        if cls:
            parts.append(f"class_weight of class {', '.join(cls)} is {'NaN' if kind == 'nan' else 'Inf'}")
        if parts:
            out.append({"cause": f"{kind}_in_target",
                        "evidence": "; ".join(parts) + ": each multiplies its rows' loss, so the loss and every "
                                    "gradient become non-finite.",
                        "fix": "Give finite, non-negative weights: `sample_weight = np.nan_to_num(sample_weight, nan=1.0)`, "
                               "or compute class weights from the class counts (`n / (n_classes * counts)`), "
                               "never from an empty class."})
    return out


def raw_input_warnings(ctx: Context) -> list:
    """Raw 0..255 images into a model whose first weighted layer gets them unscaled (no Rescaling or
    Normalization before it): a warning, where without a model in sight it stays an info note."""
    if not ctx.layer_cfg or ctx.first_layer_normalizes:
        return []
    first = ctx.first_layer_name()
    for w in ctx.items("unscaled_input", level="info")[:1]:
        return [{"cause": "unscaled_input",
                 "evidence": (f"{w['evidence'][:-1]}, fed as they are to layer '{first}' "
                              f"({ctx.first_layer_class()}), which expects inputs of order 1: no Rescaling or "
                              f"Normalization comes before it. Raw pixels make large activations; training "
                              f"tends to plateau instead of converging."),
                 "fix": "Rescale the pixels in the model: `keras.layers.Rescaling(1.0 / 255)` as its first layer "
                        "(or `X = X / 255.0` before fit and predict)."}]
    return []


# In the order they run (ties in confidence keep it).
RULES = (rule_loss_expects_probabilities, rule_rare_values_standardized)
