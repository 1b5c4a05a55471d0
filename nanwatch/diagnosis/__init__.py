"""Diagnosis: evidence -> ranked causes with fixes (schema 1 `diagnosis`) and `warnings`.

    diagnosis, warnings = diagnose(evidence)

`evidence` is the engine's `nanwatch.evidence.Evidence` record, or a dict of its fields (every
field optional): call, first_nonfinite, data (profiles from data_checks.profile_array), steps,
layers, optimizer, nan_weights, initial_weight_norms, layers_config, dtype_policy, train_ranges,
learning_rates (the rate in force per train step: diagnosis/rates.py).

- `diagnosis` explains a first non-finite value: ranked [{cause, confidence, evidence, fix}]; it is
  empty when the run stayed finite (then anything worth saying is a warning).
- `warnings` are [{cause, evidence, fix}]: data problems (NaN/Inf/outliers/placeholders/unscaled
  features), predict-time drift, training dynamics heading for NaN, huge initial weights. Causes
  already in the diagnosis are not repeated.
- `info_notes(evidence)` gives low-priority notes from the data profiles (constant columns, raw
  0..255 images, heavy tails) for Report.info; they never change the status.

The pieces: `context` reads the evidence once; the rules live in `nonfinite_sources` (bad data or
weights), `op_rules` (the first op's own arithmetic), `pattern_rules` (known patterns the engine
traces: a fully masked softmax, the where trap, a non-differentiable point, an optimizer epsilon of 0),
`growth_rules` (what made values overflow), `domain_rules` (an input outside its function's domain),
`setup_rules` (the training set-up: a learning-rate schedule that grows, a rate of 0 or below) and
`config_rules` (the loss against the output activation, raw images, standardised rare features: what the
user configured);
`ranking` runs them and ranks the candidates. docs/causes.md lists every cause and what triggers it;
docs/recipes/add-a-cause-rule.md says how to add one. Healthy runs give ([], []): see
tests/unit/test_diagnosis_rules.py and the FALSE_ALARMS scenarios. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from ..numfmt import TREND, fmt
from ..schema import CAUSE_IDS
from . import config_rules, drift, dynamics, growth_rules, ranking, setup_rules
from .context import Context
from .data_checks import FEATURE_ROLES, profile_array, profile_inputs, profile_warnings
from .drift import drift_warnings, training_ranges

__all__ = ["diagnose", "info_notes", "profile_array", "profile_inputs", "profile_warnings", "training_ranges",
           "drift_warnings", "CAUSES"]

# The causes a rule or warning can name (schema 1's cause ids, written once in nanwatch.schema);
# "diagnosis_error" is only the warning diagnose() gives when it cannot read its evidence.
CAUSES = tuple(c for c in CAUSE_IDS if c != "diagnosis_error")


def diagnose(evidence) -> tuple:
    """(diagnosis, warnings) in schema-1 form, for an `Evidence` or a dict of its fields. Never raises
    on malformed evidence."""
    try:
        ctx = Context(evidence)
    except Exception as exc:  # evidence too broken to read: say so rather than fail the report
        return [], [{"cause": "diagnosis_error", "evidence": f"could not read the evidence: {exc!r}", "fix": ""}]
    diagnosis = []
    if ctx.has_fn:
        diagnosis = ranking.rank(ranking.adjust(ctx, ranking.run_rules(ctx)))
    warnings = _data_warnings(ctx)
    # predict-time drift
    if ctx.train_ranges and ctx.call in ("predict", "evaluate", None):
        # the predict inputs: the last full-array features profile (a cell may fit, then predict)
        for p in reversed(ctx.profiles_for(FEATURE_ROLES)):
            if p.get("batch") is None:
                warnings.extend(drift.drift_warnings(ctx.train_ranges, p))
                break
    if not ctx.has_fn:
        early = dynamics.early_warnings(ctx.record.steps, ctx.record.layers, ctx.optimizer, ctx.dtype_policy,
                                        ctx.layer_classes, analysis=ctx.dyn)
        outlier = [w for w in warnings if w["cause"] in ("outlier_input", "outlier_target")]
        if early and outlier and (ctx.dyn.get("sudden") or ctx.dyn.get("spikes")):
            # a gradient that jumps on one batch is that batch's data, not an optimisation problem
            outlier[0]["evidence"] += (" Training shows it: " + _jump_text(ctx.dyn) + ".")
            early = []
        warnings.extend(early)
    if any(w["cause"] == "input_drift" for w in warnings):
        # predict inputs off the training scale: the drift warning says it better than "unscaled"
        warnings = [w for w in warnings if w["cause"] != "unscaled_input"]
    warnings.extend(growth_rules.warn_large_initial_weights(ctx))
    warnings.extend(config_rules.config_warnings(ctx))
    warnings.extend(setup_rules.warn_nonpositive_rate(ctx))
    if not any(w["cause"] == "learning_rate_too_high" for w in warnings):
        warnings.extend(setup_rules.warn_rate_out_of_range(ctx))
    in_diag = {d["cause"] for d in diagnosis}
    out, seen = [], set()
    for w in warnings:
        if w["cause"] in in_diag or (w["cause"], w["evidence"]) in seen:
            continue
        seen.add((w["cause"], w["evidence"]))
        out.append(w)
    return diagnosis, out


def _data_warnings(ctx: Context) -> list:
    """One warning per cause and role, from the full arrays when profiled, else from batches."""
    out, seen = [], set()
    items = sorted(ctx.profile_items, key=lambda w: w["profile"].get("batch") is not None)
    normalizes = ctx.first_layer_normalizes
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


def _jump_text(a: dict) -> str:
    if a.get("spikes"):
        return (f"the gradient norm jumped >1000x its start on step{'s' if len(a['spikes']) > 1 else ''} "
                f"{', '.join(map(str, a['spikes'][:5]))} and fell back on the next")
    g, b = a.get("grad_peak"), a.get("grad_baseline")
    if g and b:
        return f"the gradient norm jumped {fmt(g / b, TREND)}x in one step (step {a.get('grad_peak_step')})"
    return "the gradient norm jumped in one step"


def info_notes(evidence) -> list:
    """Low-priority notes (strings) from the data profiles, for Report.info. The session writes its own
    line about steps a LossScaleOptimizer skipped."""
    try:
        ctx = Context(evidence)
    except Exception:
        return []
    notes, seen = [], set()
    for w in ctx.profile_items:
        if w.get("level") != "info":
            continue
        if w["cause"] == "unscaled_input" and ctx.layer_cfg:
            continue   # the model is known: it rescales them, or config_rules warns (raw_input_warnings)
        text = f"{w['evidence']} {w['fix']}"
        if text not in seen:
            seen.add(text)
            notes.append(text)
    return notes
