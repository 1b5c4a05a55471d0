"""Rules for well-known NaN patterns that the engine recognises by how the value was made, not by the
op's arithmetic alone: a softmax over a row whose every entry is masked with -inf (`made_from`
"mask"), the where trap and a gradient taken at a non-differentiable point (`gradient_of`: a NaN
born in the backward pass, with the forward op whose gradient it is), and an adaptive optimizer
given `epsilon=0` (`evidence.optimizer.epsilon`).

Each names a cause that explains the first op better than its own story (a division by zero in a
gradient the user never wrote): `SUPERSEDES` lists, per cause, the op-level causes `ranking.adjust`
caps below it when it fires.
"""

from __future__ import annotations

from ..numfmt import EVIDENCE, fmt, num
from ..ops import DIV_OPS, SQRT_OPS
from . import dynamics as dyn
from . import rewrite
from .. import ops
from .context import Context, cand
from .data_checks import FEATURE_ROLES, column_label

MASK_OPS = ops.SOFTMAX_OPS
NONDIFFERENTIABLE_OPS = ops.NONDIFFERENTIABLE_OPS
# optimizers whose update divides by sqrt(v) + epsilon (or v + epsilon)
EPSILON_OPTIMIZERS = frozenset({"Adam", "AdamW", "Adamax", "Nadam", "RMSprop", "Adagrad", "Adadelta", "Lamb"})
KERAS_EPSILON = "1e-7"   # the default epsilon of every one of them in Keras 3 (Lamb: 1e-6)

# the derivative of a forward op, and where it is infinite, for evidence texts
DERIVATIVES = {
    "Log": "d/dx log(x) = 1/x is infinite at 0", "Log1p": "d/dx log1p(x) = 1/(1 + x) is infinite at -1",
    "Xlogy": "d/dy x*log(y) = x/y is infinite at y = 0", "Sqrt": "d/dx sqrt(x) = 0.5/sqrt(x) is infinite at 0",
    "Rsqrt": "d/dx rsqrt(x) = -0.5*x^-1.5 is infinite at 0",
    "EuclideanNorm": "the gradient of a norm, x/|x|, is 0/0 at the zero vector",
    "Pow": "d/dx x^p = p*x^(p-1) is infinite at 0 for p < 1", "Abs": "|x| has no derivative at 0",
    "Acos": "d/dx acos(x) = -1/sqrt(1 - x^2) is infinite at +-1",
    "Asin": "d/dx asin(x) = 1/sqrt(1 - x^2) is infinite at +-1",
    "Atanh": "d/dx atanh(x) = 1/(1 - x^2) is infinite at +-1", "Acosh": "d/dx acosh(x) is infinite at 1",
    "Lgamma": "lgamma's derivative is infinite at 0 and the negative integers",
    "Digamma": "digamma's derivative is infinite at 0 and the negative integers",
    "Atan2": "atan2(y, x) has no derivative at (0, 0)",
    "RealDiv": "d/db a/b = -a/b^2 is infinite at b = 0", "Div": "d/db a/b = -a/b^2 is infinite at b = 0",
    "Reciprocal": "d/dx 1/x = -1/x^2 is infinite at 0",
}
# the pattern fix of a forward op whose line cannot be rewritten: (the masked call, its safe value)
TEMPLATES = {"Log": ("tf.math.log", "1.0"), "Log1p": ("tf.math.log1p", "0.0"), "Sqrt": ("tf.sqrt", "1.0"),
             "Rsqrt": ("tf.math.rsqrt", "1.0"), "Reciprocal": ("tf.math.reciprocal", "1.0"),
             "Pow": ("tf.pow", "1.0"), "Acos": ("tf.acos", "0.0"), "Asin": ("tf.asin", "0.0")}
NONDIFF_FIXES = {
    "Pow": "keep the base away from 0: `tf.pow(x + 1e-12, p)`",
    "Abs": "use a smooth |x|: `tf.sqrt(tf.square(x) + 1e-12)`",
    "Acos": "clip the argument inside (-1, 1): `tf.acos(tf.clip_by_value(x, -1.0 + 1e-6, 1.0 - 1e-6))`",
    "Asin": "clip the argument inside (-1, 1): `tf.asin(tf.clip_by_value(x, -1.0 + 1e-6, 1.0 - 1e-6))`",
    "Atanh": "clip the argument inside (-1, 1): `tf.atanh(tf.clip_by_value(x, -1.0 + 1e-6, 1.0 - 1e-6))`",
    "Acosh": "keep the argument above 1: `tf.acosh(tf.maximum(x, 1.0 + 1e-6))`",
    "Lgamma": "keep the argument away from 0: `tf.math.lgamma(tf.maximum(x, 1e-6))`",
    "Digamma": "keep the argument away from 0: `tf.math.digamma(tf.maximum(x, 1e-6))`",
    "Atan2": "keep away from (0, 0): `tf.atan2(y, x + 1e-12)`",
    "Log": "keep the argument away from 0: `tf.math.log(tf.maximum(x, 1e-7))`",
    "Log1p": "keep the argument away from -1: `tf.math.log1p(tf.maximum(x, -1.0 + 1e-7))`",
    "Xlogy": "keep y away from 0: `tf.math.xlogy(x, tf.maximum(y, 1e-7))`",
}
SQRT_LIKE = ("Sqrt", "Rsqrt", "EuclideanNorm")

# cause -> the causes it explains better, capped below it by ranking.adjust when it fires (0.85+)
SUPERSEDES = {
    "fully_masked_softmax": ("nan_in_input", "inf_in_input", "exploding_gradients"),
    "where_gradient_trap": ("division_by_zero", "log_of_nonpositive", "sqrt_of_negative"),
    "nondifferentiable_point": ("division_by_zero", "log_of_nonpositive", "sqrt_of_negative"),
    "optimizer_epsilon_zero": ("division_by_zero", "zero_variance_normalization"),
}


def _made(ctx: Context) -> str:
    """'3 NaN', '2 Inf', '3 NaN and 2 Inf' (the culprit's counts)."""
    c = ctx.counts
    nan, inf = int(num(c.get("nan")) or 0), int((num(c.get("pos_inf")) or 0) + (num(c.get("neg_inf")) or 0))
    parts = [f"{nan} NaN"] * bool(nan) + [f"{inf} Inf"] * bool(inf)
    return " and ".join(parts) or "NaN/Inf"


def _at(src: dict | None) -> str:
    """'line 5 (`d = tf.norm(x)`)', for evidence texts; '' when the line is unknown."""
    if not isinstance(src, dict) or not (src.get("line") or src.get("code")):
        return ""
    where = f"line {src['line']}" if src.get("line") else "its line"
    return f" at {where}" + (f" (`{str(src['code']).strip()}`)" if src.get("code") else "")


def _forward(ctx: Context) -> tuple:
    """(forward op type, its source dict, its code line, 'line N') of a NaN born in a gradient."""
    g = ctx.gradient_of or {}
    src = g.get("source") if isinstance(g.get("source"), dict) else None
    code = (src or {}).get("code") or ctx.code
    line = (src or {}).get("line") or ctx.line
    return str(g.get("op_type") or "the forward op"), src, code, (f"line {line}" if line else "the line")


def rule_fully_masked_softmax(ctx: Context) -> list:
    """fully_masked_softmax: a softmax (or a reduction) made NaN out of a row whose every entry is a -inf mask."""
    traced = ctx.made_from == "mask"
    neg_inf = sum(num(i.get("neg_inf")) or 0 for i in ctx.inputs)
    other = sum((num(i.get("nan")) or 0) + (num(i.get("pos_inf")) or 0) for i in ctx.inputs)
    seen = ctx.op in MASK_OPS and ctx.made_nan and neg_inf > 0 and not other
    if not traced and not seen:
        return []
    conf = (0.95 if ctx.op in MASK_OPS else 0.9) if traced else 0.85
    size = next((num(i.get("size")) for i in ctx.inputs if num(i.get("neg_inf"))), None)
    held = f" (its input holds {int(neg_inf)} -inf" + (f" of {int(size)})" if size else ")") if neg_inf else ""
    softmax = ctx.op in MASK_OPS
    ev = (f"{ctx.where()} made {_made(ctx)} out of -inf{held}: "
          + ("a softmax over a row whose every entry is -inf is exp(-inf - (-inf)) / 0 = NaN. " if softmax else
             "a reduction over a row whose every entry is -inf subtracts -inf from -inf = NaN. ")
          + ("The engine traced the -inf to a mask (an intended infinity, e.g. `float(\"-inf\")` where a tf.where "
             "masks padding): some row has every position masked, e.g. a fully padded sequence in the batch."
             if traced else "The -inf looks like a mask: a row with every position masked (a fully padded sequence)."))
    big = "-1e4" if ctx.dtype.replace("tf.", "") == "float16" else "-1e9"
    fixed = rewrite.finite_mask(ctx.code, big) if ctx.code else None
    if fixed:
        fix = f"Mask with a large negative number instead of -inf, so a fully masked row stays finite; " \
              f"{'line ' + str(ctx.line) if ctx.line else 'the line'} becomes: `{fixed.strip()}`."
    else:
        at = (f" on the line that masks what {'line ' + str(ctx.line) if ctx.line else 'this line'} takes "
              f"(`{ctx.code.strip()}`)") if ctx.code else ""
        fix = (f"Make sure no row is fully masked: where the scores are masked, use a large negative number instead "
               f"of -inf, `scores = tf.where(mask, scores, {big})` in place of `float(\"-inf\")`{at}, or let Keras "
               f"mask: `keras.layers.Softmax(axis=-1)(scores, mask=mask)` (it adds a large negative itself).")
    fix += (" If a fully masked row is a sequence that is all padding, skip those sequences: "
            "`keep = (tokens != 0).any(axis=1)`; `tokens, labels = tokens[keep], labels[keep]`.")
    if big == "-1e4":
        fix += " (-1e9 overflows float16 back to -inf: under mixed precision use -1e4.)"
    return [cand("fully_masked_softmax", conf, ev, fix)]


def rule_where_gradient_trap(ctx: Context) -> list:
    """where_gradient_trap: a gradient NaN whose forward value was non-finite and absorbed by a tf.where."""
    g = ctx.gradient_of
    if not g or g.get("forward_absorbed") is not True:
        return []
    fwd, src, code, line = _forward(ctx)
    deriv = DERIVATIVES.get(fwd, f"the derivative of {fwd} is not finite there")
    ev = (f"{ctx.where()} made {_made(ctx)} in the backward pass, in the gradient of {fwd}{_at(src)}. The forward "
          f"value of {fwd} was itself non-finite and a tf.where absorbed it, so the forward pass stayed finite; but "
          f"the gradient of a where flows into both branches: the branch it did not pick gets 0, times the gradient "
          f"of {fwd} there ({deriv}), and 0 * inf = NaN (the where trap).")
    fixed = rewrite.double_where(code, fwd) if code else None
    if fixed:
        fix = (f"Mask the input of {fwd} too, not only its output (the double where), so {fwd} never sees the bad "
               f"values; {line} becomes: `{fixed.strip()}`.")
    else:
        call, safe = TEMPLATES.get(fwd, (f"<{fwd}>", "1.0"))
        fix = (f"Mask the input of {fwd} too, not only its output (the double where), so {fwd} never sees the bad "
               f"values: `tf.where(cond, {call}(tf.where(cond, x, {safe})), 0.0)` in place of "
               f"`tf.where(cond, {call}(x), 0.0)`" + (f" ({line}: `{code.strip()}`)." if code else "."))
    if fwd in DIV_OPS or fwd in ("Reciprocal", "Inv"):
        fix += " For a division, `tf.math.divide_no_nan(a, b)` does it in one op: 0, with a 0 gradient, where b is 0."
    return [cand("where_gradient_trap", 0.96, ev, fix)]


def rule_nondifferentiable_point(ctx: Context) -> list:
    """nondifferentiable_point: a finite forward value whose gradient is not (sqrt or a norm at 0, ...)."""
    g = ctx.gradient_of
    if not g or g.get("forward_absorbed") is True:
        return []
    fwd, src, code, line = _forward(ctx)
    if fwd not in NONDIFFERENTIABLE_OPS:
        return []
    known = src is not None
    deriv = DERIVATIVES.get(fwd, "its derivative is infinite there")
    ev = (f"{ctx.where()} made {_made(ctx)} in the backward pass, in the gradient of {fwd}{_at(src)}: "
          + (f"the forward value of {fwd} was finite, but " if known else "")
          + f"{fwd} is not differentiable at the values it got ({deriv})")
    if fwd in SQRT_LIKE:
        ev += "; e.g. the norm or distance of an all-zero vector (two identical embeddings, a zero difference)"
    ev += "."
    if not known:
        ev += (f" (The forward line of {fwd} was not found; if a tf.where masks its output, this is the where trap: "
               "mask its input too.)")
    if fwd in SQRT_LIKE:
        fixed = rewrite.epsilon_norm(code) if code else None
        fix = (f"Put an epsilon under the square root; {line} becomes: `{fixed.strip()}`." if fixed else
               "Put an epsilon under the square root: `tf.sqrt(tf.reduce_sum(tf.square(d), axis=-1) + 1e-12)` in "
               "place of `tf.norm(d, axis=-1)`, `tf.sqrt(v + 1e-12)` in place of `tf.sqrt(v)`"
               + (f" ({line}: `{code.strip()}`)." if code else "."))
    else:
        fixed = rewrite.clip_log(code, probability=False) if code and fwd in ("Log", "Log1p") else None
        fix = (f"Keep the argument away from the point; {line} becomes: `{fixed.strip()}`." if fixed else
               f"At {line}" + (f" (`{code.strip()}`)" if code else "") + ", "
               + NONDIFF_FIXES.get(fwd, f"keep the input of {fwd} away from the point where its derivative is infinite")
               + ".")
    return [cand("nondifferentiable_point", 0.93 if known else 0.9, ev, fix)]


def _zero_feature(ctx: Context) -> str:
    """' The zero gradients come from column 4 (colour_black) of X, always 0.' when a profile shows one."""
    for p in ctx.profiles_for(FEATURE_ROLES):
        for c in p.get("columns", []):
            if c.get("constant") and num(c.get("min")) == 0:
                return (f" The zero gradients come from {column_label(c)} of {p.get('name') or 'the data'}, which is "
                        f"0 in every row: the weights it feeds never get a gradient.")
    return ""


def rule_optimizer_epsilon_zero(ctx: Context) -> list:
    """optimizer_epsilon_zero: an adaptive optimizer with epsilon 0 divided 0 by sqrt(0) in its update."""
    if ctx.phase != "optimizer" or not ctx.optimizer:
        return []
    cls = str(dyn.optimizer_class(ctx.optimizer) or "")
    eps = num(ctx.optimizer.get("epsilon"))
    division = ctx.op in DIV_OPS or ctx.op in SQRT_OPS
    den = (ctx.inputs[1] if len(ctx.inputs) > 1 and ctx.op not in ("Reciprocal", "Inv", "Rsqrt") else
           (ctx.inputs[0] if ctx.inputs else {}))
    zeros = int(num(den.get("zeros")) or 0) if division else 0
    if eps is not None and eps <= 0:
        conf = 0.95 if division else 0.88
    elif eps is None and cls in EPSILON_OPTIMIZERS and division:
        conf = 0.85 if zeros else 0.7
    else:
        return []
    size = num(den.get("size"))
    shown = f"epsilon={fmt(eps, EVIDENCE)}" if eps is not None else "an epsilon that could not be read"
    ev = (f"{ctx.where()}: the optimizer is {cls or 'adaptive'} with {shown}. Its update divides by sqrt(v) + "
          f"epsilon, and v (its running mean of squared gradients) is exactly 0 for every weight that has had only "
          f"zero gradients so far")
    ev += (f" ({zeros} zeros" + (f" of {int(size)}" if size else "") + " in the denominator here)" if zeros else "")
    ev += ": 0 / 0 = NaN, written into the weights." + _zero_feature(ctx)
    lr = num(ctx.optimizer.get("learning_rate"))
    args = (f"learning_rate={dyn.fmt_lr(lr)}, " if lr is not None and lr > 0 else "..., ") + f"epsilon={KERAS_EPSILON}"
    code = f"keras.optimizers.{cls or 'Adam'}({args})"
    if str(ctx.optimizer.get("class") or "").lower() == "lossscaleoptimizer":
        code = f"keras.mixed_precision.LossScaleOptimizer({code})"
    fix = (f"Give the optimizer its epsilon back: `optimizer={code}` ({KERAS_EPSILON} is Keras's default: "
           f"leaving `epsilon` out does the same).")
    return [cand("optimizer_epsilon_zero", conf, ev, fix)]


# In the order they run (ties in confidence keep it).
RULES = (rule_fully_masked_softmax, rule_where_gradient_trap, rule_nondifferentiable_point,
         rule_optimizer_epsilon_zero)
