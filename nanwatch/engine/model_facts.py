"""Facts read from the objects the user built (model, optimizer, loss), for the evidence record.

Each function reads, never changes, and returns plain data (see nanwatch/evidence.py).
"""

from __future__ import annotations

import numpy as np

from . import stats

# schema.CallKind -> the Keras method that runs one step of it
STEP_METHODS = {"train": "train_step", "evaluate": "test_step", "predict": "predict_step"}


def step_method(model, kind):
    return getattr(model, STEP_METHODS[kind])


def nonfinite_weights(model, index) -> list:
    """[{layer, variable, counts}] for the model's weights that are already non-finite."""
    out = []
    for var in getattr(model, "weights", []):
        arr = stats.to_numpy(var)
        if arr is not None and not stats.all_finite(arr):
            layer, name = index.owner(var)
            out.append({"layer": layer, "variable": name, "counts": stats.counts(arr)})
    return out


def first_nonfinite_variable(models, index):
    """(layer, variable) of the first non-finite weight of the models, or None."""
    for model in models:
        for var in getattr(model, "weights", []):
            arr = stats.to_numpy(var)
            if arr is not None and not stats.all_finite(arr):
                return index.owner(var)
    return None


def nonfinite_state(models, index):
    """(layer or None, variable name) of the first non-finite weight or optimizer slot of the models."""
    for model in models:
        optimizer = getattr(model, "optimizer", None)
        for var in list(getattr(model, "weights", [])) + list(getattr(optimizer, "variables", None) or []):
            arr = stats.to_numpy(var)
            if arr is not None and not stats.all_finite(arr):
                layer, name = index.owner(var)
                return layer, name if layer is not None else getattr(var, "path", None) or name
    return None


def initial_norms(model, index) -> list:
    """[{layer, variable, norm, fan_in, fan_out}] of the kernels (rank >= 2) as they are now."""
    out = []
    for var in getattr(model, "trainable_variables", []):
        arr = stats.to_numpy(var)
        if arr is None or arr.ndim < 2:
            continue
        layer, name = index.owner(var)
        out.append({"layer": layer, "variable": name, "norm": stats.norm(arr),
                    "fan_in": int(np.prod(arr.shape[:-1])), "fan_out": int(arr.shape[-1])})
    return out


def layers_config(model) -> list:
    """[{name, class, config}] of the model's layers in order (nested models opened up)."""
    from .layer_index import user_layers
    out = []
    for layer in user_layers(model):
        try:
            config = layer.get_config()
        except Exception:
            config = {}
        out.append({"name": layer.name, "class": type(layer).__name__,
                    "config": config if isinstance(config, dict) else {}})
    return out


def optimizer_facts(optimizer) -> dict:
    inner = getattr(optimizer, "inner_optimizer", None)
    facts = {"class": type(optimizer).__name__, "learning_rate": None, "clipnorm": None, "clipvalue": None,
             "global_clipnorm": None, "loss_scale": inner is not None}
    target = inner or optimizer
    if inner is not None:
        facts["inner_class"] = type(inner).__name__
    try:
        facts["learning_rate"] = float(np.asarray(target.learning_rate))
    except Exception:
        pass
    for key in ("clipnorm", "clipvalue", "global_clipnorm"):
        facts[key] = getattr(target, key, None)
    epsilon = getattr(target, "epsilon", None)
    facts["epsilon"] = float(epsilon) if isinstance(epsilon, (int, float)) else None
    return facts


def loss_scaled(model) -> bool:
    """Mixed precision with a LossScaleOptimizer (it skips steps with Inf gradients by design)."""
    return hasattr(getattr(model, "optimizer", None), "inner_optimizer")


def loss_scale(model):
    """The LossScaleOptimizer's current dynamic scale (its initial one before it is built)."""
    optimizer = getattr(model, "optimizer", None)
    scale = stats.scalar(getattr(optimizer, "dynamic_scale", None)) if getattr(optimizer, "built", False) else None
    return scale if scale is not None else getattr(optimizer, "initial_scale", None)


# Keras losses that read the model's outputs as probabilities unless built with from_logits=True
PROBABILISTIC_LOSSES = frozenset({
    "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
    "binary_focal_crossentropy", "categorical_focal_crossentropy"})
LOSS_ALIASES = {"bce": "binary_crossentropy", "cce": "categorical_crossentropy",
                "scce": "sparse_categorical_crossentropy"}


def loss_facts(model) -> dict | None:
    """{name, class, from_logits, probabilistic, output_layer, output_activation, output_class} of a
    compiled single-loss model: the loss as the user configured it, against the activation of the
    layer that makes the output (what `from_logits` has to agree with). None without a loss."""
    loss = getattr(model, "loss", None)
    if loss is None or isinstance(loss, (list, tuple, dict)):
        return None
    facts = {"name": None, "class": None, "from_logits": None, "probabilistic": False}
    if isinstance(loss, str):
        facts["name"], facts["from_logits"] = loss, False
    elif callable(loss) and not hasattr(loss, "get_config"):
        facts["name"] = getattr(loss, "__name__", None)
        facts["from_logits"] = False if facts["name"] in PROBABILISTIC_LOSSES else None
    else:
        facts["class"] = type(loss).__name__
        try:
            config = loss.get_config() or {}
        except Exception:
            config = {}
        fn = getattr(loss, "fn", None)
        facts["name"] = getattr(fn, "__name__", None) or config.get("name")
        from_logits = config.get("from_logits", getattr(loss, "from_logits", None))
        facts["from_logits"] = bool(from_logits) if isinstance(from_logits, (bool, int)) else None
    facts["name"] = LOSS_ALIASES.get(facts["name"], facts["name"])
    facts["probabilistic"] = facts["name"] in PROBABILISTIC_LOSSES
    facts.update(output_facts(model))
    return facts


def output_facts(model) -> dict:
    """The layer that makes a single-output model's output, its class and its activation's name
    ("softmax", "sigmoid", "linear", "relu", ...; an Activation or Softmax layer counts as one)."""
    outputs = getattr(model, "outputs", None) or []
    layer = None
    if len(outputs) == 1:
        history = getattr(outputs[0], "_keras_history", None)
        layer = getattr(history, "operation", None) or (history[0] if isinstance(history, tuple) else None)
    layers = getattr(model, "layers", None) or []
    if layer is None and layers and len(outputs) <= 1:
        layer = layers[-1]
    if layer is None:
        return {}
    cls = type(layer).__name__
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", None) if activation is not None else None
    if cls == "Softmax":
        name = "softmax"
    elif activation is None and cls not in ("Dense", "Conv1D", "Conv2D", "Conv3D", "EinsumDense"):
        name = None    # not known: a custom layer or a layer without an activation argument
    return {"output_layer": getattr(layer, "name", None), "output_class": cls, "output_activation": name}


def weight_facts(weights: dict) -> dict:
    """The non-finite or negative entries of `sample_weight` (rows) and `class_weight` (classes) given
    to fit/evaluate: {"sample_weight": {nan, inf, negative, rows}, "class_weight": {class: weight}}."""
    out = {}
    sw = weights.get("sample_weight")
    arr = stats.to_numpy(sw) if sw is not None else None
    if arr is not None and arr.dtype.kind in "fiu" and arr.size:
        flat = arr.reshape(arr.shape[0], -1).astype(np.float64) if arr.ndim else arr.reshape(1, 1)
        bad = ~np.isfinite(flat) | (flat < 0)
        out["sample_weight"] = {"nan": int(np.isnan(flat).sum()), "inf": int(np.isinf(flat).sum()),
                                "negative": int((flat < 0).sum()), "size": int(flat.size),
                                "rows": [int(i) for i in np.flatnonzero(bad.any(axis=1))[:5]]}
    cw = weights.get("class_weight")
    if isinstance(cw, dict):
        out["class_weight"] = {str(k): float(v) for k, v in cw.items() if isinstance(v, (int, float, np.number))}
    return out
