"""Rewritten expressions tried on the failing op's recorded inputs (engine/verify.py's third kind of fix).

The fix a rule gives for an op of the user's code (`tf.math.log(tf.maximum(x, 1e-7))`, the double where,
an epsilon under the sqrt, `divide_no_nan`, `exp(minimum(z, 80))`) applied to the op alone, on the input
values the eager check recorded (Detection.op_inputs; the forward op's for a NaN born in its gradient):
the fixed op's output and its gradient must be finite where the op as written was not.
"""

from __future__ import annotations

import numpy as np

TRUE, FALSE, NOT_TRIED = "true", "false", "not tried"
# what the user's line shows when it writes the op (else the op is Keras's own, e.g. a loss's division)
OP_TEXT = {"Log": ("log",), "Log1p": ("log1p",), "Sqrt": ("sqrt", "norm"), "Rsqrt": ("rsqrt",),
           "Reciprocal": ("reciprocal", "/"), "RealDiv": ("/", "div"), "Exp": ("exp",)}


def _rewrites(tf):
    """(cause, op) -> [(text the fix shows, the rewritten op)] and op -> the op as written."""
    eps = 1e-7
    def double_where(f, domain, safe=1.0):
        return lambda x: tf.where(domain(x), f(tf.where(domain(x), x, safe)), 0.0)
    fixed = {
        ("log_of_nonpositive", "Log"): [("log1p", lambda x: tf.math.log1p(tf.maximum(x - 1.0, -1.0 + eps))),
                                        ("clip_by_value", lambda x: tf.math.log(tf.clip_by_value(x, eps, 1.0))),
                                        ("maximum", lambda x: tf.math.log(tf.maximum(x, eps)))],
        ("log_of_nonpositive", "Log1p"): [("maximum", lambda x: tf.math.log1p(tf.maximum(x, -1.0 + eps)))],
        ("sqrt_of_negative", "Sqrt"): [("maximum", lambda x: tf.sqrt(tf.maximum(x, 1e-12)))],
        ("sqrt_of_negative", "Rsqrt"): [("maximum", lambda x: tf.math.rsqrt(tf.maximum(x, 1e-12)))],
        ("nondifferentiable_point", "Sqrt"): [("1e-12", lambda x: tf.sqrt(x + 1e-12))],
        ("nondifferentiable_point", "Rsqrt"): [("1e-12", lambda x: tf.math.rsqrt(x + 1e-12))],
        ("where_gradient_trap", "Log"): [("where", double_where(tf.math.log, lambda x: x > 0))],
        ("where_gradient_trap", "Sqrt"): [("where", double_where(tf.sqrt, lambda x: x > 0))],
        ("where_gradient_trap", "Rsqrt"): [("where", double_where(tf.math.rsqrt, lambda x: x > 0))],
        ("where_gradient_trap", "Reciprocal"): [("where", double_where(tf.math.reciprocal, lambda x: x != 0))],
        ("division_by_zero", "RealDiv"): [("divide_no_nan", tf.math.divide_no_nan)],
        ("division_by_zero", "Reciprocal"): [("divide_no_nan", lambda x: tf.math.divide_no_nan(tf.ones_like(x), x))],
        ("exp_overflow", "Exp"): [("minimum", lambda x: tf.exp(tf.minimum(x, 80.0)))],
    }
    plain = {"Log": tf.math.log, "Log1p": tf.math.log1p, "Sqrt": tf.sqrt, "Rsqrt": tf.math.rsqrt,
             "Reciprocal": tf.math.reciprocal, "RealDiv": tf.math.divide, "Exp": tf.exp}
    return fixed, plain


def rewrite_for(cause, fix: str, failed):   # failed: verify.FailedStep
    """(op, its inputs, the fixed op, the text naming it, the op as written) for a rewrite fix, else None."""
    first = failed.first or {}
    gradient = first.get("gradient_of") or {}
    op = gradient.get("op_type") or first.get("op_type")
    import tensorflow as tf
    fixed, plain = _rewrites(tf)
    variants = fixed.get((cause, op))
    if not variants:
        return None
    text, fn = next(((t, f) for t, f in variants if t in fix), (None, None))
    if fn is None:
        return None
    inputs = tuple(getattr(failed.detection, "op_inputs", ()) or ())
    return op, inputs, fn, text, (lambda x: tf.where(x > 0, plain[op](x), 0.0)) \
        if cause == "where_gradient_trap" else plain[op]


def verify_rewrite(failed, op, inputs, fn, text, original) -> tuple:
    first = failed.first or {}
    source = (first.get("gradient_of") or {}).get("source") or first.get("source") or {}
    code = str(source.get("code") or "").lower()
    if first.get("phase") == "optimizer" or not any(t in code for t in OP_TEXT.get(op, (op.lower(),))):
        return NOT_TRIED, f"not tried: the {op} is not in your code (no line of yours to rewrite)"
    if not inputs or any(a is None for a in inputs[:_arity(op)]):
        return NOT_TRIED, f"not tried: the {op}'s input values were not recorded (a graph check without a replay)"
    args = inputs[:_arity(op)]
    failed.start_running()
    baseline = _op_check(original, args)
    where = f"{op} at line {source.get('line')}" if source.get("line") else op
    if baseline is None:
        return NOT_TRIED, f"not tried: the {where} as written is finite on its recorded inputs"
    result = _op_check(fn, args)
    what = (f"the {where} rewritten (`{text}`) on its recorded input{'s' if len(args) > 1 else ''} "
            f"({', '.join(str(int(np.size(a))) for a in args)} values)")
    if result is None:
        return TRUE, f"{what}: forward and gradient finite (as written: {baseline})"
    return FALSE, f"{what}: still non-finite ({result})"


def _arity(op: str) -> int:
    return 2 if op in ("RealDiv",) else 1


def _op_check(fn, arrays) -> str | None:
    """None when fn's output and its gradient with respect to each input are finite, else which is not."""
    import tensorflow as tf
    xs = [tf.constant(a) for a in arrays]
    with tf.GradientTape() as tape:
        for x in xs:
            tape.watch(x)
        y = fn(*xs)
        total = tf.reduce_sum(y)
    if not finite(y):
        return "forward " + kinds(y)
    grads = [g for g in tape.gradient(total, xs) if g is not None]
    if not finite(grads):
        return "gradient " + kinds(grads)
    return None


# --- small helpers, shared with verify.py ------------------------------------------------------------
def flat(value):
    import tensorflow as tf
    return tf.nest.flatten(value)



def finite(value) -> bool:
    for t in flat(value):
        arr = np.asarray(t)
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            return False
    return True



def kinds(value) -> str:
    """'(3 NaN, 2 +Inf of 64)'."""
    arrays = [np.asarray(t) for t in flat(value)]
    arrays = [a for a in arrays if a.dtype.kind == "f"]
    size = sum(a.size for a in arrays)
    parts = [(int(np.isnan(a).sum()), int(np.isposinf(a).sum()), int(np.isneginf(a).sum())) for a in arrays]
    nan, pos, neg = (sum(p[i] for p in parts) for i in range(3))
    said = [f"{n} {k}" for n, k in ((nan, "NaN"), (pos, "+Inf"), (neg, "-Inf")) if n]
    return f"({', '.join(said)} of {size})"
