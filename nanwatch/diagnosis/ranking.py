"""From the rules' candidates to the ranked diagnosis: run every rule (a failing rule never breaks
the report), add a fallback when the first op is known but no rule matched, let the upstream
cause (or a known pattern, pattern_rules.SUPERSEDES and config_rules.SUPERSEDES) outrank the op's own story (`adjust`), and
keep the best candidate per cause (`rank`).

A rule is a function `Context -> [cand(...)]` listed in the `RULES` tuple of its module; the
modules run in the order below, and candidates of equal confidence keep that order.
"""

from __future__ import annotations

from ..numfmt import EVIDENCE, fmt, num
from ..ops import OVERFLOW_OPS
from . import dynamics as dyn
from . import config_rules, domain_rules, growth_rules, nonfinite_sources, op_rules, pattern_rules, setup_rules
from .context import Context, cand

RULES = (nonfinite_sources.RULES + op_rules.RULES + domain_rules.RULES + pattern_rules.RULES + growth_rules.RULES
         + setup_rules.RULES + config_rules.RULES)
# cause -> the causes it explains better (capped at 0.5 below it when it fires at 0.85+)
SUPERSEDES = {**pattern_rules.SUPERSEDES, **config_rules.SUPERSEDES}
MIN_CONFIDENCE = 0.25   # candidates below this are not reported


def rule_fallback(ctx: Context, found: list) -> list:
    """Something to say when the first op is known but no rule matched."""
    if found or not ctx.has_fn:
        return []
    big = ctx.max_abs_input()
    if not ctx.inputs_finite:
        return [cand("nan_in_input" if ctx.phase in ("input", "forward") else "exploding_gradients", 0.3,
                     f"{ctx.where()} received inputs that were already non-finite; the origin is upstream of it.",
                     "Run with `%%nanwatch --mode exact` to walk the graph back to the op that made the first NaN.")]
    if ctx.op in OVERFLOW_OPS or ctx.made_inf:
        if ctx.phase in ("backward", "optimizer"):
            return [cand("exploding_gradients", 0.45,
                         f"{ctx.where()} overflowed from finite values as large as {fmt(big, EVIDENCE)}.",
                         f"Clip the gradients: `optimizer={dyn.optimizer_code(ctx.optimizer, num((ctx.optimizer or {}).get('learning_rate')))}`.")]
        cause = "large_initial_weights" if (ctx.step or 0) == 0 else "learning_rate_too_high"
        return [cand(cause, 0.35,
                     f"{ctx.where()} overflowed float32 from finite inputs as large as {fmt(big, EVIDENCE)}: activations "
                     f"grew beyond 3.4e38.",
                     "Check the scale of inputs and weights (Normalization as first layer, default initializers) and "
                     "lower the learning rate with `clipnorm=1.0`.")]
    return []


def run_rules(ctx: Context) -> list:
    """Every rule's candidates (a rule that raises is skipped), then the fallback if none matched."""
    found = []
    for r in RULES:
        try:
            found.extend(r(ctx))
        except Exception as exc:  # a rule must never break the report
            found.append({"cause": None, "confidence": 0.0, "evidence": f"rule {r.__name__} failed: {exc!r}",
                          "fix": ""})
    found = [c for c in found if c.get("cause")]
    found.extend(rule_fallback(ctx, found))
    return found


def adjust(ctx: Context, found: list) -> list:
    """Cross-evidence: the cause upstream of the op wins over the op's own story."""
    liw = any(c["cause"] == "large_initial_weights" and c["confidence"] >= 0.85 for c in found)
    outlier = any(c["cause"] in ("outlier_input", "outlier_target") and c["confidence"] >= 0.85 for c in found)
    unscaled = any(c["cause"] == "unscaled_input" and c["confidence"] >= 0.8 for c in found)
    lr_strong = any(c["cause"] == "learning_rate_too_high" and c["confidence"] >= 0.85 for c in found)
    data_nan = any(c["cause"] in ("nan_in_input", "inf_in_input", "nan_in_target", "inf_in_target")
                   and c["confidence"] >= 0.9 for c in found)
    weights_nan = any(c["cause"] == "nan_in_weights" and c["confidence"] >= 0.9 for c in found)
    # a known pattern (the where trap, a fully masked softmax, ...) explains the op's own story better
    superseded = {s for c in found if c["confidence"] >= 0.85 for s in SUPERSEDES.get(c["cause"], ())}
    for c in found:
        if c["cause"] in superseded:
            c["confidence"] = round(min(c["confidence"], 0.5), 3)
        if c["cause"] in ("learning_rate_too_high", "exploding_gradients"):
            if (liw and not lr_strong) or outlier:
                c["confidence"] = round(min(c["confidence"], 0.6), 3)
            elif unscaled and not lr_strong:
                c["confidence"] = round(min(c["confidence"], 0.7), 3)
        if (data_nan or weights_nan) and c["cause"] not in ("nan_in_input", "inf_in_input", "nan_in_target",
                                                            "inf_in_target", "nan_in_weights"):
            c["confidence"] = round(min(c["confidence"], 0.5), 3)
    return found


def rank(found: list) -> list:
    """The best candidate per cause, most confident first, without the ones below MIN_CONFIDENCE."""
    best = {}
    for c in found:
        cur = best.get(c["cause"])
        if cur is None or c["confidence"] > cur["confidence"]:
            best[c["cause"]] = c
    ranked = sorted(best.values(), key=lambda c: -c["confidence"])
    return [{"cause": c["cause"], "confidence": c["confidence"], "evidence": c["evidence"], "fix": c["fix"]}
            for c in ranked if c["confidence"] >= MIN_CONFIDENCE]
