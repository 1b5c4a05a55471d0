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
