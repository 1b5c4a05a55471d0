"""Facts read from the objects the user built (model, optimizer, loss), for the evidence record.

Each function reads, never changes, and returns plain data (see nanwatch/evidence.py).
"""

from __future__ import annotations

import sys

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
    """The optimizer as the user built it: class, rate, clipping, epsilon, momentum, weight decay, and the
    learning-rate schedule (its class, config and the user's name for it) when there is one. `learning_rate`
    is the rate in force now (at the optimizer's current iteration), not a constructor argument."""
    inner = getattr(optimizer, "inner_optimizer", None)
    facts = {"class": type(optimizer).__name__, "learning_rate": None, "clipnorm": None, "clipvalue": None,
             "global_clipnorm": None, "loss_scale": inner is not None}
    target = inner or optimizer
    if inner is not None:
        facts["inner_class"] = type(inner).__name__
    facts["learning_rate"] = current_learning_rate(optimizer)
    for key in ("clipnorm", "clipvalue", "global_clipnorm"):
        facts[key] = getattr(target, key, None)
    for key in ("epsilon", "momentum", "weight_decay"):
        value = getattr(target, key, None)
        facts[key] = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    facts["nesterov"] = getattr(target, "nesterov", None) if isinstance(getattr(target, "nesterov", None), bool) else None
    facts.update(iterations=None, schedule=None, name=None)
    try:   # an optimizer of another make (legacy tf.keras) must not break the run: these stay None
        facts.update(iterations=iterations(optimizer), schedule=schedule_facts(optimizer), name=user_name(optimizer))
    except Exception:
        pass
    return facts


def _schedule(optimizer):
    """The LearningRateSchedule (or callable) the optimizer evaluates every step, or None for a plain rate."""
    target = getattr(optimizer, "inner_optimizer", None) or optimizer
    rate = getattr(target, "_learning_rate", None)
    if rate is None or hasattr(rate, "assign") or isinstance(rate, (int, float)):
        return None
    return rate if callable(rate) else None


def schedule_facts(optimizer) -> dict | None:
    """{class, config, custom, name} of the optimizer's learning-rate schedule; None without one."""
    schedule = _schedule(optimizer)
    if schedule is None:
        return None
    module = type(schedule).__module__ or ""
    try:
        raw = schedule.get_config()
    except Exception:   # a custom schedule need not define get_config
        raw = {}
    config = {k: v for k, v in (raw or {}).items()
              if isinstance(v, (int, float, str, bool)) or (isinstance(v, (list, tuple)) and len(v) <= 32)}
    return {"class": type(schedule).__name__, "config": config, "name": user_name(schedule),
            "custom": not module.startswith("keras."), "takes_step": _takes_step(schedule)}


def _takes_step(schedule) -> bool:
    """A LearningRateSchedule is called with the iteration; any other callable with no argument."""
    return any(c.__name__ == "LearningRateSchedule" for c in type(schedule).__mro__)


def _iteration_counter(optimizer):
    """The variable that counts the optimizer's updates (a LossScaleOptimizer's inner one's)."""
    target = getattr(optimizer, "inner_optimizer", None) or optimizer
    return getattr(target, "_iterations", None) if hasattr(target, "_iterations") else getattr(target, "iterations", None)


def iterations(optimizer) -> int | None:
    """The optimizer's update count now (the step its schedule is evaluated at)."""
    value = stats.scalar(_iteration_counter(optimizer))
    return int(value) if value is not None else None


def put_back_iterations(optimizer, value) -> None:
    """Set the optimizer's update count back to `value` (a step stopped before its update may have
    counted itself already); nothing when `value` is None or the count is unchanged."""
    if value is None or iterations(optimizer) == value:
        return
    _iteration_counter(optimizer).assign(value)


def current_learning_rate(optimizer) -> float | None:
    """The rate the next update uses (a schedule evaluated at the current iteration, a callback's value)."""
    target = getattr(optimizer, "inner_optimizer", None) or optimizer
    try:
        rate = target.learning_rate
        return float(np.asarray(rate.numpy() if hasattr(rate, "numpy") else rate))
    except Exception:
        return None


SCHEDULE_POINTS = 256   # at most this many steps' rates are evaluated and kept (vectorised schedules)
SCHEDULE_CALLS = 48     # ... and this many when the schedule takes one step per call (a warmup's tf.cond)


def _sample(steps: list, limit: int) -> list:
    """At most `limit` of the sorted steps: the first, the last quarter's worth, evenly spaced between."""
    if len(steps) <= limit:
        return steps
    tail = steps[-(limit // 4):]
    head = steps[:-(limit // 4)]
    stride = -(-len(head) // (limit - len(tail)))
    return sorted(set(head[::stride] + tail))


def schedule_rates(optimizer, steps: list) -> list:
    """[[iteration, rate]] of the optimizer's schedule at these iterations: in one vectorised call when the
    schedule takes a vector (at most SCHEDULE_POINTS), else one call per point (at most SCHEDULE_CALLS:
    measured 1.3 s for 257 calls of a CosineDecay with warmup, 61 ms for one vectorised call over 257 points).
    [] without a schedule or when it cannot be evaluated."""
    schedule = _schedule(optimizer)
    if schedule is None or not steps or not _takes_step(schedule):
        return []
    steps = _sample(sorted(set(int(s) for s in steps)), SCHEDULE_POINTS)
    import tensorflow as tf
    try:
        values = np.asarray(schedule(tf.constant(steps, dtype=tf.int64)), dtype=float).reshape(-1)
        if values.shape != (len(steps),):
            raise ValueError("not elementwise")
    except Exception:
        steps = _sample(steps, SCHEDULE_CALLS)
        try:
            values = np.array([float(np.asarray(schedule(tf.constant(s, dtype=tf.int64)))) for s in steps])
        except Exception:
            return []
    return [[s, float(v)] for s, v in zip(steps, values)]


def user_name(obj) -> str | None:
    """The name the user's top-level code (a notebook cell or a script: module __main__) gives this object."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_globals.get("__name__") == "__main__":
            for space in (frame.f_locals, frame.f_globals):
                for name, value in list(space.items()):
                    if value is obj and not name.startswith("_"):
                        return name
        frame = frame.f_back
    return None


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
