"""Rules for what made finite values grow until they overflowed: initial weights far above the
Glorot scale, a learning rate that overshoots or gradients that explode (read from the training
dynamics), and data whose scale or outliers explain the overflow. They look upstream of the first
op, so `ranking.adjust` lets them outrank the op's own story.
"""

from __future__ import annotations

import math

from ..numfmt import EVIDENCE, fmt, num
from ..ops import DIV_OPS, LOG_OPS, OVERFLOW_OPS, SQRT_OPS, WEIGHT_READS
from . import dynamics as dyn
from .context import Context, cand

GLOROT_RATIO_DIAG = 10.0   # initial kernel norm / glorot-expected norm: a diagnosis candidate
GLOROT_RATIO_WARN = 30.0   # ... and a warning even without a NaN


def _glorot_norm(fan_in, fan_out):
    return math.sqrt(fan_in * fan_out * 2.0 / (fan_in + fan_out))


def large_initial_weights(ctx: Context) -> list:
    """[(layer, variable, norm, expected, ratio)] for kernels far above the Glorot scale, plus
    initializers read from layers_config."""
    found = []
    for w in ctx.record.initial_weight_norms or []:
        if not isinstance(w, dict):
            continue
        var = str(w.get("variable") or "")
        if "bias" in var or "gamma" in var or "beta" in var or "moving" in var or "embedding" in var:
            continue
        n, fi, fo = num(w.get("norm")), num(w.get("fan_in")), num(w.get("fan_out"))
        if not n or not fi or not fo or fi <= 0 or fo <= 0:
            continue
        exp = _glorot_norm(fi, fo)
        ratio = n / exp
        if ratio >= GLOROT_RATIO_DIAG:
            found.append({"layer": w.get("layer"), "variable": var or "kernel", "norm": n, "expected": exp,
                          "ratio": ratio, "source": "norm"})
    if not found:
        for name, cfg in ctx.layer_cfg.items():
            init = (cfg.get("config") or {}).get("kernel_initializer")
            std = _initializer_scale(init)
            if std is not None and std >= 1.0:
                found.append({"layer": name, "variable": "kernel", "norm": None, "expected": None,
                              "ratio": None, "source": f"kernel_initializer {_init_text(init)}", "scale": std})
    return found


def _initializer_scale(init):
    """The magnitude a Keras initializer config draws at (stddev + |mean|, the uniform bound, ...)."""
    if not isinstance(init, dict):
        return None
    cls = str(init.get("class_name") or "")
    cfg = init.get("config") or {}
    if cls in ("RandomNormal", "TruncatedNormal"):
        return abs(num(cfg.get("stddev")) or 0) + abs(num(cfg.get("mean")) or 0)
    if cls == "RandomUniform":
        return max(abs(num(cfg.get("minval")) or 0), abs(num(cfg.get("maxval")) or 0))
    if cls == "Constant":
        return abs(num(cfg.get("value")) or 0)
    if cls in ("VarianceScaling",):
        return math.sqrt(abs(num(cfg.get("scale")) or 0)) if (num(cfg.get("scale")) or 0) >= 100 else None
    return None


def _init_text(init) -> str:
    if isinstance(init, dict):
        cfg = init.get("config") or {}
        args = ", ".join(f"{k}={v}" for k, v in cfg.items() if k in ("mean", "stddev", "minval", "maxval", "value", "scale"))
        return f"{init.get('class_name')}({args})"
    return str(init)


def rule_large_initial_weights(ctx: Context) -> list:
    """large_initial_weights as a cause: strongest when an early step overflowed from finite inputs."""
    found = large_initial_weights(ctx)
    if not found:
        return []
    early = ctx.step is not None and ctx.step <= 2
    overflowish = ctx.has_fn and ctx.inputs_finite and (ctx.op in OVERFLOW_OPS or ctx.made_inf)
    ratio = max((f.get("ratio") or 0) for f in found)
    config_only = all(f.get("ratio") is None for f in found)
    if ctx.has_fn:
        if early and overflowish:
            conf = 0.88 if ratio >= 100 or config_only else 0.6
        else:
            conf = 0.7 if early and (ratio >= 100 or config_only) else 0.45
    else:
        return []  # warnings come from warn_large_initial_weights
    ev = _liw_text(found)
    if ctx.has_fn:
        ev += f" The first non-finite value: {ctx.where()}"
        big = ctx.max_abs_input()
        if big is not None:
            ev += f", from finite inputs as large as {fmt(big, EVIDENCE)}"
        ev += "."
    return [cand("large_initial_weights", conf, ev, _liw_fix(found))]


def _liw_text(found: list) -> str:
    parts = []
    for f in found[:3]:
        if f.get("ratio"):
            parts.append(f"'{f['layer']}'.{f['variable']} starts with norm {fmt(f['norm'], EVIDENCE)}, "
                         f"{fmt(f['ratio'], EVIDENCE)}x the Glorot scale ({fmt(f['expected'], EVIDENCE)})")
        else:
            parts.append(f"'{f['layer']}' uses {f['source']}")
    more = f"; {len(found) - 3} more layers" if len(found) > 3 else ""
    return "Initial weights far too large: " + "; ".join(parts) + more + "."


def _liw_fix(found: list) -> str:
    names = ", ".join(f"'{f['layer']}'" for f in found[:3])
    return (f"Use the Keras default initializer for {names}: `kernel_initializer=\"glorot_uniform\"` "
            f"(or `\"he_normal\"` before ReLU), or a small `keras.initializers.RandomNormal(stddev=0.05)`.")


def rule_dynamics(ctx: Context) -> list:
    """learning_rate_too_high / exploding_gradients from the steps and layer histories."""
    if not ctx.has_fn and not ctx.dyn.get("explosion"):
        return []
    cands = dyn.explosion_candidates(ctx.dyn, ctx.optimizer)
    if not cands and ctx.has_fn and ctx.phase in ("backward", "optimizer") and ctx.inputs_finite \
            and ctx.op in OVERFLOW_OPS and not large_initial_weights(ctx):
        # an overflow in the gradients with no history to read: clipping is the safe bet
        big = ctx.max_abs_input()
        lr = num((ctx.optimizer or {}).get("learning_rate"))
        cands = [cand("exploding_gradients", 0.5,
                      f"{ctx.where()} overflowed from finite gradient values as large as {fmt(big, EVIDENCE)}.",
                      f"Clip the gradients: `optimizer={dyn.optimizer_code(ctx.optimizer, lr, clip=True)}`.")]
    return cands


def rule_data_quality(ctx: Context) -> list:
    """Outliers / unscaled inputs / placeholders promoted to causes when the run went non-finite
    (or its dynamics exploded) in a way they explain."""
    if not ctx.has_fn and not ctx.dyn.get("explosion"):
        return []
    overflowish = (not ctx.has_fn) or (ctx.inputs_finite and ctx.op not in LOG_OPS | SQRT_OPS | DIV_OPS
                                       and ctx.op not in WEIGHT_READS and not ctx.is_data_op())
    if not overflowish:
        return []
    out = []
    d = ctx.dyn
    spikes = d.get("spikes") or []
    for cause in ("outlier_input", "outlier_target"):
        items = ctx.items(cause)
        if not items:
            continue
        w = items[0]
        conf = 0.85
        rows = {o["row"] for c in w["profile"].get("columns", []) for o in c.get("outliers", [])}
        if ctx.data_loc and rows & set(ctx.data_loc.get("array_rows") or ctx.data_loc.get("rows") or []):
            conf = 0.93
        ev = w["evidence"]
        if spikes:
            ev += f" The gradient norm jumped >1000x on steps {', '.join(map(str, spikes[:5]))} and fell back: single batches."
        elif d.get("sudden"):
            ev += " The gradient norm jumped in one step, not gradually: one batch."
        if ctx.has_fn:
            ev += f" First non-finite: {ctx.where()}"
            big = ctx.max_abs_input()
            ev += f", from finite inputs as large as {fmt(big, EVIDENCE)}." if big is not None else "."
        out.append(cand(cause, conf, ev, w["fix"]))
    if not ctx.first_layer_normalizes:
        for w in ctx.items("unscaled_input")[:1]:
            conf = 0.8 if d.get("lr_level", 0) == 0 else 0.55
            ev = w["evidence"]
            if ctx.has_fn:
                ev += f" First non-finite: {ctx.where()}."
            out.append(cand("unscaled_input", conf, ev, w["fix"]))
    for w in ctx.items("placeholder_values")[:1]:
        out.append(cand("placeholder_values", 0.6, w["evidence"], w["fix"]))
    return out


def warn_large_initial_weights(ctx: Context) -> list:
    """The warning, with or without a NaN: kernels >= 30x the Glorot scale, or initializers of scale >= 1."""
    found = [f for f in large_initial_weights(ctx) if (f.get("ratio") or 0) >= GLOROT_RATIO_WARN
             or (f.get("scale") or 0) >= 1.0]
    if not found:
        return []
    return [{"cause": "large_initial_weights", "evidence": _liw_text(found), "fix": _liw_fix(found)}]


# In the order they run (ties in confidence keep it).
RULES = (rule_large_initial_weights, rule_dynamics, rule_data_quality)
