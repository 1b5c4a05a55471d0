"""Rules that read the first non-finite op's own arithmetic: a log of a non-positive number, a
square root of a negative one, a division by zero, an exp or a float16 result past the dtype's
range. The op and its input statistics are the evidence; the fix rewrites the user's line when
`rewrite` can do it safely.
"""

from __future__ import annotations

from ..numfmt import EVIDENCE, fmt, num
from ..ops import DIV_OPS, EXP_OPS, LOG_OPS, SQRT_GRAD_OPS, SQRT_OPS
from . import rewrite
from .context import Context, cand
from .data_checks import FEATURE_ROLES, column_label

EXP_LIMIT = {"float16": 11.089, "bfloat16": 88.72, "float32": 88.72, "float64": 709.78}
FLOAT16_MAX = 65504.0
PROB_HINTS = ("pred", "prob", "sigmoid", "softmax", "p)", "(p", " p ", "output", "score")
STD_HINTS = ("std", "var", "moments", "sqrt", "sigma", "norm", "scale")
# ops whose denominator is their only input (the others divide input 0 by input 1)
ONE_INPUT_DENOMINATOR = ("Reciprocal", "Inv")

# A graph check saw the op's inputs were finite but could not take their values (no replay).
UNKNOWN_CONF = 0.75
UNKNOWN_NOTE = " (its input values were not captured; the op itself can only make NaN/Inf from finite inputs this way)"


def input_text(i: dict, idx: int) -> str:
    """'input 1 'p' (from Sigmoid): min 0, max 1, 3 zeros of 64' for evidence texts."""
    parts = [f"input {idx}"]
    if i.get("name"):
        parts.append(f"'{i['name']}'")
    if i.get("op_type"):
        parts.append(f"(from {i['op_type']})")
    stats = []
    for k in ("min", "max"):
        if i.get(k) is not None:
            stats.append(f"{k} {fmt(num(i[k]), EVIDENCE)}")
    if num(i.get("zeros")):
        size = num(i.get("size"))
        stats.append(f"{int(num(i['zeros']))} zeros" + (f" of {int(size)}" if size else ""))
    if num(i.get("negatives")):
        stats.append(f"{int(num(i['negatives']))} negatives")
    return " ".join(parts) + (": " + ", ".join(stats) if stats else "")


def stats_unknown(i: dict) -> bool:
    """The engine saw the input was finite but could not take its values (graph mode without replay)."""
    return all(num(i.get(k)) is None for k in ("min", "max")) and not num(i.get("zeros")) \
        and not num(i.get("negatives"))


def line_ref(ctx: Context) -> str:
    return f"line {ctx.line}" if ctx.line else "the line"


def rule_log(ctx: Context) -> list:
    """log_of_nonpositive: a Log/Log1p/Xlogy whose (finite) argument reached 0 (or -1) or below."""
    if ctx.op not in LOG_OPS or not ctx.inputs:
        return []
    x = ctx.inputs[1] if ctx.op in ("Xlogy", "Xlog1py") and len(ctx.inputs) > 1 else ctx.inputs[0]
    if not ctx.input_finite(x):
        return []  # the Log only passed an upstream NaN on: not its fault
    lo, zeros, negs = num(x.get("min")), num(x.get("zeros")) or 0, num(x.get("negatives")) or 0
    limit = -1.0 if ctx.op in ("Log1p", "Xlog1py") else 0.0
    bad = (lo is not None and lo <= limit) or (zeros > 0 and limit == 0.0) or negs > 0
    unknown = stats_unknown(x)
    if not bad and not unknown and not (ctx.made_inf or ctx.made_nan):
        return []
    fname = "log1p" if "1p" in ctx.op else "log"
    if unknown:
        ev = (f"{ctx.where()} turned a finite input into NaN/-Inf: its argument reached "
              f"{'-1 or less' if limit else '0 or below'}{UNKNOWN_NOTE}.")
    else:
        ev = f"{ctx.where()} got {input_text(x, 1 if x is not ctx.inputs[0] else 0)}: {fname}({'-1' if limit else '0'}) = -inf"
        if lo is not None and lo < limit:
            ev += f", {fname} of a negative number = NaN"
        ev += "."
    src_op = str(x.get("op_type") or "")
    if src_op in ("Relu", "Relu6"):
        ev += " Its input comes from a ReLU, which outputs exactly 0 for every negative pre-activation."
    code = ctx.code or ""
    handmade_ce = "log(" in code and any(h in code for h in ("1 -", "1-", "y_true", "y *", "labels"))
    # clip to 1.0 only what is known to be a probability (captured values in [0, 1], a hint in the code, and
    # in the loss an output activation that makes probabilities, when the loss configuration names it): a
    # clip to 1.0 of a ReLU output of 1.109 would change the model; the lower side alone never does
    hi = num(x.get("max"))
    loss_cfg = ctx.record.loss_config if isinstance(ctx.record.loss_config, dict) else {}
    out_act = loss_cfg.get("output_activation") if ctx.phase == "loss" else None
    if out_act in ("relu", "relu6"):
        src_op = src_op or "Relu"
    prob = (handmade_ce or any(h in code.lower() for h in PROB_HINTS)) and hi is not None and hi <= 1.0 \
        and lo is not None and lo >= 0.0 and src_op not in ("Relu", "Relu6") \
        and out_act in (None, "softmax", "sigmoid", "hard_sigmoid")
    fixed = rewrite.clip_log(code, probability=prob) if code else None
    fix = ""
    if handmade_ce:
        fix = ("Let Keras compute the cross-entropy stably from logits: drop the final activation and use "
               "`loss=keras.losses.BinaryCrossentropy(from_logits=True)` (`CategoricalCrossentropy(from_logits=True)` "
               "for softmax outputs). Or ")
    if fixed:
        fix += f"{'k' if fix else 'K'}eep the argument of the log positive; {line_ref(ctx)} becomes: `{fixed.strip()}`."
    else:
        fix += (f"{'k' if fix else 'K'}eep the argument of the log positive: `tf.math.log(tf.maximum(x, 1e-7))` "
                "(`tf.math.log(tf.clip_by_value(p, 1e-7, 1.0))` only for a value that is a probability).")
    if src_op in ("Relu", "Relu6"):
        fix += " A probability should come from `activation=\"sigmoid\"`, not `\"relu\"`."
    return [cand("log_of_nonpositive", UNKNOWN_CONF if unknown else 0.92, ev, fix)]


def rule_sqrt(ctx: Context) -> list:
    """sqrt_of_negative (Sqrt, Rsqrt, a fractional Pow of a negative base), and the division by zero
    hidden in rsqrt(0) and in the gradient of sqrt at 0."""
    out = []
    if ctx.op in SQRT_OPS and ctx.inputs and ctx.input_finite(ctx.inputs[0]):
        x = ctx.inputs[0]
        lo, zeros, negs = num(x.get("min")), num(x.get("zeros")) or 0, num(x.get("negatives")) or 0
        code = ctx.code or ""
        fixed = rewrite.guard_sqrt(code) if code else None
        unknown = stats_unknown(x)
        if (lo is not None and lo < 0) or negs > 0 or (unknown and ctx.op == "Sqrt"):
            ev = (f"{ctx.where()} made NaN from a finite input: the square root of a negative number{UNKNOWN_NOTE}."
                  if unknown else
                  f"{ctx.where()} got {input_text(x, 0)}: the square root of a negative number is NaN.")
            fix = (f"{line_ref(ctx).capitalize()} becomes: `{fixed.strip()}`." if fixed else
                   "Guard the argument: `tf.sqrt(tf.maximum(v, 1e-12))`.")
            if "reduce_mean(" in code and "square" not in code.lower() and "**" not in code:
                fix += (" If this is an RMS / standard deviation, square first: "
                        "`tf.sqrt(tf.reduce_mean(tf.square(x), axis=-1, keepdims=True) + 1e-6)`.")
            out.append(cand("sqrt_of_negative", UNKNOWN_CONF if unknown else 0.92, ev, fix))
        elif ctx.op == "Rsqrt" and ((lo is not None and lo == 0) or zeros > 0):
            ev = f"{ctx.where()} got {input_text(x, 0)}: rsqrt(0) = 1/sqrt(0) = inf."
            fix = (f"{line_ref(ctx).capitalize()} becomes: `{fixed.strip()}`." if fixed else
                   "Add an epsilon: `tf.math.rsqrt(v + 1e-6)`.")
            out.append(cand("division_by_zero", 0.85, ev, fix))
            out.extend(_zero_variance(ctx, 0.75, "the rsqrt of a variance"))
    if ctx.op == "Pow" and len(ctx.inputs) > 1 and ctx.inputs_finite:
        base, expo = ctx.inputs[0], ctx.inputs[1]
        lo = num(base.get("min"))
        e_lo, e_hi = num(expo.get("min")), num(expo.get("max"))
        fractional = e_lo is not None and e_hi is not None and (e_lo != int(e_lo) or e_hi != int(e_hi))
        if lo is not None and lo < 0 and fractional and ctx.made_nan:
            out.append(cand("sqrt_of_negative", 0.85,
                            f"{ctx.where()}: a negative base (min {fmt(lo, EVIDENCE)}) raised to a fractional power "
                            f"({fmt(e_lo, EVIDENCE)}) is NaN.",
                            "Raise only non-negative values: `tf.pow(tf.maximum(x, 0.0), p)` or "
                            "`tf.sign(x) * tf.pow(tf.abs(x), p)`."))
    if ctx.op in SQRT_GRAD_OPS:
        out.append(cand("division_by_zero", 0.8,
                        f"{ctx.where()}: the gradient of sqrt is 0.5 / sqrt(x), infinite where sqrt(x) = 0 "
                        f"(e.g. an RMSE or a norm of an all-zero vector).",
                        "Keep the argument away from 0: `tf.sqrt(v + 1e-12)` (or `tf.norm` with an epsilon: "
                        "`tf.sqrt(tf.reduce_sum(tf.square(x)) + 1e-12)`)."))
    return out


def _zero_variance(ctx: Context, conf: float, what: str) -> list:
    """zero_variance_normalization, when a constant column or a std-like denominator is in sight."""
    const = []
    for p in ctx.profiles_for(FEATURE_ROLES):
        for c in p.get("columns", []):
            if c.get("constant"):
                const.append((p, c))
    code = (ctx.code or "").lower()
    den = ctx.inputs[1] if ctx.op not in ONE_INPUT_DENOMINATOR + ("Rsqrt",) and len(ctx.inputs) > 1 else \
        (ctx.inputs[0] if ctx.inputs else {})
    den_text = f"{den.get('name') or ''} {den.get('op_type') or ''}".lower()
    std_like = any(h in code for h in STD_HINTS) or any(h in den_text for h in STD_HINTS)
    if not const and not std_like:
        return []
    if const:
        p, c = const[0]
        more = f" ({len(const)} constant columns)" if len(const) > 1 else ""
        ev = (f"{column_label(c)} of {p.get('name') or 'the data'} is constant ({fmt(c.get('min'), EVIDENCE)} in all "
              f"{p.get('rows_profiled')} rows){more}: its std is 0, and {what} divides by it.")
        conf = max(conf, 0.8)
    else:
        ev = f"The denominator looks like a standard deviation ({what}); a constant feature (or batch) has std 0."
    fix = ("Standardise with a guard for zero variance: `keras.layers.Normalization()` (adapted on the training "
           "data) or `sklearn.preprocessing.StandardScaler` both handle std 0; by hand use "
           "`(x - mean) / (std + 1e-7)`; or drop constant columns: `X = X[:, X.std(0) > 0]`.")
    return [cand("zero_variance_normalization", conf, ev, fix)]


def rule_division(ctx: Context) -> list:
    """division_by_zero: a division whose finite denominator holds zeros (or tiny values), with
    zero_variance_normalization when the denominator looks like a standard deviation."""
    if ctx.op not in DIV_OPS or not ctx.inputs:
        return []
    if not ctx.inputs_finite:
        return []
    den = ctx.inputs[0] if ctx.op in ONE_INPUT_DENOMINATOR or len(ctx.inputs) < 2 else ctx.inputs[1]
    if ctx.op == "Xdivy" and len(ctx.inputs) > 1:
        den = ctx.inputs[1]
    lo, hi = num(den.get("min")), num(den.get("max"))
    zeros = num(den.get("zeros")) or 0
    has_zero = zeros > 0 or (lo is not None and hi is not None and lo <= 0 <= hi and (lo == 0 or hi == 0))
    tiny = lo is not None and hi is not None and min(abs(lo), abs(hi)) < 1e-30
    if has_zero:
        conf = 0.92
        ev = f"{ctx.where()}: the denominator ({input_text(den, ctx.inputs.index(den))}) is 0"
        ev += " -> x/0 = inf, 0/0 = NaN."
    elif tiny or ctx.made_inf or ctx.made_nan:
        conf = 0.7 if tiny else 0.55
        ev = f"{ctx.where()}: the denominator ({input_text(den, ctx.inputs.index(den))}) is (nearly) 0."
    elif stats_unknown(den):
        conf = UNKNOWN_CONF
        ev = f"{ctx.where()} made NaN/Inf from finite inputs: its denominator reached 0{UNKNOWN_NOTE}."
    else:
        return []
    code = ctx.code or ""
    hint = None
    for h in ("reduce_std", "std", "y_true", "sum", "norm"):
        if h in code:
            hint = h
            break
    fixed = rewrite.safe_divide(code, hint) if code else None
    if fixed:
        fix = f"Divide safely; {line_ref(ctx)} becomes: `{fixed.strip()}` (0 where the denominator is 0)."
    else:
        fix = "Divide safely: `tf.math.divide_no_nan(a, b)` (0 where b is 0), or add an epsilon: `a / (b + 1e-7)`."
    if "y_true" in code and ctx.phase == "loss":
        fix += (" For a percentage error use the built-in `keras.losses.MeanAbsolutePercentageError()`, "
                "which clips the denominator.")
    out = [cand("division_by_zero", conf, ev, fix)]
    out.extend(_zero_variance(ctx, 0.7, "the standardisation"))
    return out


def rule_exp(ctx: Context) -> list:
    """exp_overflow: Exp/Expm1 of finite inputs past the dtype's limit (88.72 in float32)."""
    if ctx.op not in EXP_OPS or not ctx.inputs or not ctx.inputs_finite:
        return []
    x = ctx.inputs[0]
    hi = num(x.get("max"))
    dt = str(x.get("dtype") or ctx.dtype or "float32").replace("tf.", "")
    limit = EXP_LIMIT.get(dt, 88.72)
    unknown = stats_unknown(x)
    if (hi is None or hi <= limit) and not ctx.made_inf and not unknown:
        return []
    if hi is None:
        ev = f"{ctx.where()} overflowed from a finite input: exp(x) is inf above {limit:.4g} in {dt}{UNKNOWN_NOTE}."
    else:
        ev = (f"{ctx.where()} got inputs up to {fmt(hi, EVIDENCE)}: exp(x) overflows {dt} above {limit:.4g} "
              f"(exp({fmt(hi, EVIDENCE)}) = inf).")
    unscaled = ctx.items("unscaled_input")
    if unscaled and not ctx.first_layer_normalizes:
        ev += " The features feeding it are unscaled: " + unscaled[0]["evidence"]
    code = ctx.code or ""
    fixed = rewrite.stable_exp(code) if code else None
    activation = ((ctx.layer_cfg.get(ctx.layer) or {}).get("config") or {}).get("activation") if ctx.layer else None
    if activation == "exponential":
        # a Keras layer's own exponential activation (AUTOTRAINER's models): the layer is the fix's place
        fix = (f"Layer '{ctx.layer}' applies `activation=\"exponential\"`, which overflows {dt} once its input passes "
               f"{limit:.4g}; give it `activation=\"relu\"` (or another activation that does not grow "
               f"exponentially), or normalise the layer's inputs (a `keras.layers.BatchNormalization()` before it).")
        return [cand("exp_overflow", UNKNOWN_CONF if hi is None else 0.92, ev, fix)]
    if fixed:
        fix = f"{line_ref(ctx).capitalize()} becomes: `{fixed.strip()}`."
    else:
        fix = ("Use the stable built-ins: `tf.nn.softmax(z, axis=-1)` instead of exp(z)/sum(exp(z)), "
               "`keras.ops.logsumexp(z)` for log(sum(exp(z))), or subtract the max first: "
               "`tf.exp(z - tf.reduce_max(z, axis=-1, keepdims=True))`.")
    if "softmax" not in fix and "logsumexp" not in fix:
        fix += (" If this is a softmax or log-sum-exp written by hand, use `tf.nn.softmax` / "
                "`keras.ops.logsumexp` instead; if it is a rate, predict its log and keep the loss on the log scale.")
    return [cand("exp_overflow", UNKNOWN_CONF if hi is None else 0.92, ev, fix)]


def rule_float16(ctx: Context) -> list:
    """float16_overflow: an op computing in float16 made Inf from finite inputs below 65504."""
    dt = ctx.dtype.replace("tf.", "")
    in16 = dt == "float16" or any(str(i.get("dtype") or "").endswith("float16") for i in ctx.inputs)
    if not in16 or not ctx.made_inf or not ctx.inputs_finite:
        return []
    big = ctx.max_abs_input()
    if big is not None and big >= FLOAT16_MAX:
        return []
    conf = 0.85 if ctx.op in EXP_OPS else 0.9
    layer = f" in layer '{ctx.layer}'" if ctx.layer else ""
    ev = (f"{ctx.op}{layer} ({ctx.phase or 'forward'}) computes in float16 (policy {ctx.dtype_policy}): its inputs "
          f"are finite (largest |x| {fmt(big, EVIDENCE)}) but its result exceeds float16's max 65504 -> inf.")
    cfg = ctx.layer_cfg.get(ctx.layer or "", {})
    cls = cfg.get("class") or "Dense"
    fix = (f"Keep this layer in float32: `keras.layers.{cls}(..., name=\"{ctx.layer or 'layer'}\", dtype=\"float32\")`, "
           "or scale its inputs down (e.g. `keras.layers.Rescaling(1.0 / 255)` / `keras.layers.Normalization()` first), "
           "or train in float32: `keras.mixed_precision.set_global_policy(\"float32\")`.")
    return [cand("float16_overflow", conf, ev, fix)]


# In the order they run (ties in confidence keep it).
RULES = (rule_log, rule_sqrt, rule_division, rule_exp, rule_float16)
