"""Diagnosis: evidence -> ranked causes with fixes (schema 1 `diagnosis`) and `warnings`.

    diagnosis, warnings = diagnose(evidence)

`evidence` is what the engine gathered (every key optional):
  call, first_nonfinite, data (profiles from data_checks.profile_array), steps, layers, optimizer,
  loss, nan_weights, dtype_policy, fp16_skipped_steps, train_ranges, initial_weight_norms, layers_config.

- `diagnosis` explains a first non-finite value: ranked [{cause, confidence, evidence, fix}]; it is
  empty when the run stayed finite (then anything worth saying is a warning).
- `warnings` are [{cause, evidence, fix}]: data problems (NaN/Inf/outliers/placeholders/unscaled
  features), predict-time drift, training dynamics heading for NaN, huge initial weights. Causes
  already in the diagnosis are not repeated.
- `info_notes(evidence)` gives low-priority notes (constant columns, raw 0..255 images, heavy tails,
  skipped float16 steps) for Report.info; they never change the status.

Healthy runs give ([], []): see tests/test_diagnosis_rules.py and the FALSE_ALARMS scenarios.
Nothing here imports TensorFlow.
"""

from __future__ import annotations

from . import data_checks, drift, dynamics, rules
from .data_checks import profile_array, profile_inputs, profile_warnings
from .drift import drift_warnings, training_ranges

__all__ = ["diagnose", "info_notes", "profile_array", "profile_inputs", "profile_warnings", "training_ranges",
           "drift_warnings", "CAUSES"]

CAUSES = ("nan_in_input", "inf_in_input", "nan_in_target", "inf_in_target", "nan_in_weights",
          "log_of_nonpositive", "sqrt_of_negative", "division_by_zero", "exp_overflow", "float16_overflow",
          "exploding_gradients", "learning_rate_too_high", "unscaled_input", "outlier_input",
          "placeholder_values", "zero_variance_normalization", "large_initial_weights",
          # extensions (DESIGN.md allows extending): outliers in the targets, predict-time drift
          "outlier_target", "input_drift")

MIN_CONFIDENCE = 0.25


def _rank(found: list) -> list:
    best = {}
    for c in found:
        cur = best.get(c["cause"])
        if cur is None or c["confidence"] > cur["confidence"]:
            best[c["cause"]] = c
    ranked = sorted(best.values(), key=lambda c: -c["confidence"])
    return [{"cause": c["cause"], "confidence": c["confidence"], "evidence": c["evidence"], "fix": c["fix"]}
            for c in ranked if c["confidence"] >= MIN_CONFIDENCE]


def _data_warnings(ctx: rules.Context) -> list:
    """One warning per cause and role, from the full arrays when profiled, else from batches."""
    out, seen = [], set()
    items = sorted(ctx.profile_items, key=lambda w: w["profile"].get("batch") is not None)
    normalizes = ctx.first_layer_class() in rules.NORMALIZING_FIRST
    for w in items:
        if w.get("level") != "warning":
            continue
        if w["cause"] == "unscaled_input" and normalizes:
            continue
        key = (w["cause"], w["profile"].get("role", "").replace("batch_", ""), w["profile"].get("name"))
        if key in seen or any(k[0] == w["cause"] and k[1] == key[1] for k in seen):
            continue
        seen.add(key)
        out.append({"cause": w["cause"], "evidence": w["evidence"], "fix": w["fix"]})
    return out


def diagnose(evidence: dict) -> tuple:
    """(diagnosis, warnings) in schema-1 form. Never raises on malformed evidence."""
    try:
        ctx = rules.Context(evidence)
    except Exception as exc:  # evidence too broken to read: say so rather than fail the report
        return [], [{"cause": "diagnosis_error", "evidence": f"could not read the evidence: {exc!r}", "fix": ""}]
    diagnosis = []
    if ctx.has_fn:
        diagnosis = _rank(rules.adjust(ctx, rules.run_rules(ctx)))
    warnings = _data_warnings(ctx)
    # predict-time drift
    tr = ctx.ev.get("train_ranges")
    if tr and ctx.call in ("predict", "evaluate", None):
        # the predict inputs: the last full-array features profile (a cell may fit, then predict)
        for p in reversed(ctx.profiles_for(data_checks.FEATURE_ROLES)):
            if p.get("batch") is None:
                warnings.extend(drift.drift_warnings(tr, p))
                break
    if not ctx.has_fn:
        early = dynamics.early_warnings(ctx.ev.get("steps"), ctx.ev.get("layers"), ctx.optimizer,
                                        ctx.dtype_policy, {k: v.get("class") for k, v in ctx.layer_cfg.items()})
        outlier = [w for w in warnings if w["cause"] in ("outlier_input", "outlier_target")]
        if early and outlier and (ctx.dyn.get("sudden") or ctx.dyn.get("spikes")):
            # a gradient that jumps on one batch is that batch's data, not an optimisation problem
            outlier[0]["evidence"] += (" Training shows it: " + _jump_text(ctx.dyn) + ".")
            early = []
        warnings.extend(early)
    if any(w["cause"] == "input_drift" for w in warnings):
        # predict inputs off the training scale: the drift warning says it better than "unscaled"
        warnings = [w for w in warnings if w["cause"] != "unscaled_input"]
    warnings.extend(rules.warn_large_initial_weights(ctx))
    in_diag = {d["cause"] for d in diagnosis}
    out, seen = [], set()
    for w in warnings:
        if w["cause"] in in_diag or (w["cause"], w["evidence"]) in seen:
            continue
        seen.add((w["cause"], w["evidence"]))
        out.append(w)
    return diagnosis, out


def _jump_text(a: dict) -> str:
    if a.get("spikes"):
        return (f"the gradient norm jumped >1000x its start on step{'s' if len(a['spikes']) > 1 else ''} "
                f"{', '.join(map(str, a['spikes'][:5]))} and fell back on the next")
    g, b = a.get("grad_peak"), a.get("grad_baseline")
    if g and b:
        return f"the gradient norm jumped {dynamics.fmt(g / b)}x in one step (step {a.get('grad_peak_step')})"
    return "the gradient norm jumped in one step"


def info_notes(evidence: dict) -> list:
    """Low-priority notes (strings) for Report.info."""
    try:
        ctx = rules.Context(evidence)
    except Exception:
        return []
    notes, seen = [], set()
    for w in ctx.profile_items:
        if w.get("level") != "info":
            continue
        text = f"{w['evidence']} {w['fix']}"
        if text not in seen:
            seen.add(text)
            notes.append(text)
    skipped = dynamics.num(ctx.ev.get("fp16_skipped_steps"))
    if skipped:
        notes.append(f"Mixed precision: the loss scaler skipped {int(skipped)} step(s) with Inf gradients and "
                     f"lowered its scale; this is expected and not an error.")
    return notes
