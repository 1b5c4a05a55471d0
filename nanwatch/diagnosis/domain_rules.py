"""domain_error: the first op got a finite input outside the domain of its function (acos/asin of |x| > 1,
atanh of |x| >= 1, acosh of x < 1, a negative base to a fractional power, lgamma/digamma at a pole: 0 or a
negative integer). Typically a value that is in the domain in exact arithmetic and rounds out of it in
float32: the cosine similarity of two identical vectors comes out as 1.0000001, and acos of it is NaN.

The log of a non-positive number keeps its own id (`log_of_nonpositive`, op_rules.py) and the square root
of a negative one too (`sqrt_of_negative`). The fix clips the argument into the domain on the user's line
(`rewrite.wrap_calls`), which leaves every legitimate value as it was.
"""

from __future__ import annotations

from ..numfmt import EVIDENCE, fmt, num
from . import rewrite
from .context import Context, cand

# op type -> (the function as the user writes it, the domain in words, the call names the rewrite wraps,
#             the clip that keeps the argument inside: {lib: template with {arg}})
# acos/asin/atanh are clipped 1e-7 inside [-1, 1]: at +-1 their derivative is infinite, so a clip to exactly
# +-1 would trade the NaN in the forward pass for one in the gradient (nondifferentiable_point).
_INSIDE = {"tf": "tf.clip_by_value({arg}, -1.0 + 1e-7, 1.0 - 1e-7)",
           "keras.ops": "keras.ops.clip({arg}, -1.0 + 1e-7, 1.0 - 1e-7)",
           "np": "np.clip({arg}, -1.0 + 1e-7, 1.0 - 1e-7)"}
DOMAINS = {
    "Acos": ("acos", "[-1, 1]", {"acos", "arccos"}, _INSIDE),
    "Asin": ("asin", "[-1, 1]", {"asin", "arcsin"}, _INSIDE),
    "Atanh": ("atanh", "(-1, 1)", {"atanh", "arctanh"}, _INSIDE),
    "Acosh": ("acosh", "[1, inf)", {"acosh", "arccosh"}, {lib: lib + ".maximum({arg}, 1.0)" for lib in _INSIDE}),
    "Lgamma": ("lgamma", "x > 0 or a non-integer (poles at 0, -1, -2, ...)", {"lgamma"},
               {lib: lib + ".maximum({arg}, 1e-6)" for lib in _INSIDE}),
    "Digamma": ("digamma", "x > 0 or a non-integer (poles at 0, -1, -2, ...)", {"digamma"},
                {lib: lib + ".maximum({arg}, 1e-6)" for lib in _INSIDE}),
}
# ops whose domain is bounded on both sides by +-1
UNIT_OPS = ("Acos", "Asin", "Atanh")


def _outside(op: str, lo, hi, zeros: float, negatives: float) -> bool | None:
    """Whether the input statistics show values outside the op's domain (None: not captured)."""
    if lo is None or hi is None:
        return None
    if op in UNIT_OPS:
        return lo < -1 or hi > 1 or (op == "Atanh" and (lo <= -1 or hi >= 1))
    if op == "Acosh":
        return lo < 1
    return lo <= 0 and (zeros > 0 or negatives > 0)   # lgamma/digamma: a pole is 0 or a negative integer


def _stats(x: dict) -> str:
    lo, hi = num(x.get("min")), num(x.get("max"))
    text = f"min {fmt(lo, EVIDENCE)}, max {fmt(hi, EVIDENCE)}"
    if lo is not None and hi is not None and max(abs(lo), abs(hi)) < 2:
        text += f" (max {hi!r})" if hi > 1 else (f" (min {lo!r})" if lo < -1 else "")
    return text


def rule_domain(ctx: Context) -> list:
    """domain_error: a finite input outside the function's domain (see the module docstring)."""
    if ctx.op == "Pow":
        return _rule_pow(ctx)
    if ctx.op not in DOMAINS or not ctx.inputs or not ctx.input_finite(ctx.inputs[0]):
        return []
    name, domain, calls, clip = DOMAINS[ctx.op]
    x = ctx.inputs[0]
    lo, hi = num(x.get("min")), num(x.get("max"))
    outside = _outside(ctx.op, lo, hi, num(x.get("zeros")) or 0, num(x.get("negatives")) or 0)
    if outside is False or (outside is None and not (ctx.made_nan or ctx.made_inf)):
        return []
    conf = 0.93 if outside else 0.75
    if outside:
        ev = f"{ctx.where()} got a finite input outside the domain of {name}, {domain}: {_stats(x)}."
        if ctx.op in UNIT_OPS and max(abs(lo), abs(hi)) < 1 + 1e-5:
            ev += (" It is outside by a rounding error only: a cosine (or a correlation) computed in float32 can "
                   "come out as 1.0000001, e.g. the cosine similarity of two identical vectors.")
    else:
        ev = (f"{ctx.where()} made NaN/Inf from a finite input: its argument left the domain of {name}, {domain} "
              "(its input values were not captured).")
    code = ctx.code or ""
    fixed = rewrite.wrap_calls(code, calls, lambda arg, lib: clip[lib].format(arg=arg)) if code else None
    line = f"line {ctx.line}" if ctx.line else "the line"
    if fixed:
        fix = f"Clip the argument into the domain; {line} becomes: `{fixed.strip()}`."
    else:
        fix = (f"Clip the argument into the domain before {name}: `tf.{name}({clip['tf'].format(arg='x')})`"
               + (f" ({line}: `{code.strip()}`)" if code else "") + ".")
    if ctx.op in UNIT_OPS:
        fix += (" Legitimate values are unchanged; the 1e-7 margin keeps the gradient finite too (the derivative "
                f"of {name} is infinite at +-1).")
    return [cand("domain_error", conf, ev, fix)]


def _rule_pow(ctx: Context) -> list:
    """A negative base raised to a fractional power is NaN."""
    if len(ctx.inputs) < 2 or not ctx.inputs_finite or not ctx.made_nan:
        return []
    base, expo = ctx.inputs[0], ctx.inputs[1]
    lo = num(base.get("min"))
    e_lo, e_hi = num(expo.get("min")), num(expo.get("max"))
    if lo is None or lo >= 0 or e_lo is None or e_hi is None or (e_lo == int(e_lo) and e_hi == int(e_hi)):
        return []
    ev = (f"{ctx.where()}: a negative base (min {fmt(lo, EVIDENCE)}) raised to a fractional power "
          f"({fmt(e_lo, EVIDENCE)}) is outside the domain of a real power: NaN.")
    code = ctx.code or ""
    fixed = rewrite.wrap_calls(code, {"pow", "power"}, lambda arg, lib: f"{lib}.maximum({arg}, 0.0)") if code else None
    line = f"line {ctx.line}" if ctx.line else "the line"
    if fixed:
        fix = f"Raise only non-negative values; {line} becomes: `{fixed.strip()}`."
    else:
        fix = ("Raise only non-negative values: `tf.pow(tf.maximum(x, 0.0), p)`, or keep the sign: "
               "`tf.sign(x) * tf.pow(tf.abs(x), p)`" + (f" ({line}: `{code.strip()}`)" if code else "") + ".")
    return [cand("domain_error", 0.9, ev, fix)]


RULES = (rule_domain,)
