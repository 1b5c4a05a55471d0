"""Training dynamics: learning rate too high vs exploding gradients, and early warnings.

Input: schema-1 `steps` records ({step, epoch, phase, loss, grad_norm}) and `layers` records
({layer, history: [{step, weight_norm, grad_norm}]}), plus the optimizer
({"class", "learning_rate", "clipnorm", ...}). Non-finite numbers may arrive as floats or as the
strings "nan"/"inf"/"-inf" (Report.to_dict makes them strings).

How the two causes differ (measured on real runs, tests/data/dynamics/*.json, recorded by
tests/tools/record_dynamics.py):
- learning rate too high (SGD(10.0) / SGD(1.0) on an MLP): the very first update is larger than
  the weights (lr * |g| / |w| = 831 and 28 at step 0; a healthy SGD(0.1) run has 1.2), so the
  weight norm jumps 7x-200x in one step *before or as* the gradient grows; loss and gradient then
  grow geometrically together (loss 727 -> 8e11 -> 2e19 ...).
- exploding gradients (ReLU SimpleRNN, SGD(0.001)): the learning rate is ordinary and the weights
  stay put (4.18 -> 4.23) while the gradient norm climbs step after step (65 -> 88 -> 112 -> 218 ->
  651 -> 1.7e17) and the loss does not improve; the recurrent layer's gradient grows most.
- a bad row (one 1e10 outlier, Adam(0.001)): the gradient jumps 1e15x on the batches holding that
  row and is back to normal on the next batch; weights do not move. Not a trend: no dynamics
  alarm (the data checks name the row).
Healthy runs (Adam MLP, CNN+BN+Dropout, LSTM, noisy small-batch SGD with momentum, SGD(0.1),
class weights 50:1, a 4-sample set fitted to loss 0.003, price targets with loss 1e11) never
reach the thresholds: their largest gradient is <= 6x its start, their loss never sustains 10x
its start.

Thresholds:
- explosion: the gradient norm reaches >= 100x its baseline (min of the first value and the
  median of the first 3) and
  stays there to the end / to the NaN, or the loss does (>= 100x baseline, sustained 3 steps).
- early warning (no NaN yet): gradient >= 1000x baseline, or rising 4+ steps in a row by >= 10x
  overall and >= 10x baseline; or loss >= 100x baseline and >= 10x baseline for the last 3 steps
  while the last gradient norm is still >= 10x its baseline (Keras logs the loss as the epoch's
  running mean, so after one bad batch the loss stays high while the per-step gradient is back).
- learning-rate signature: a weight norm multiplied >= 5x in one step before the gradient
  exploded (between neighbouring history points: a long run's history is a sample that keeps such
  a jump with the point before it, nanwatch/series.py), or (SGD) lr * |g| / |w| >= 5 at step 0, or an unusual learning rate (SGD >= 1.0,
  adaptive optimizers >= 0.1).
"""

from __future__ import annotations

import math
import statistics

from ..numfmt import TREND, fmt, num  # num is re-exported: tests and rules read numbers as dynamics.num
from . import rates
# re-exported: rules read the optimizer helpers as dynamics.optimizer_code etc.
from .optimizer_fix import (effective_rate_text, fmt_lr, lr_level, optimizer_class, optimizer_code,  # noqa: F401
                            optimizer_family, user_clip_text)

RECURRENT_HINTS = ("rnn", "lstm", "gru", "recurrent", "conv_lstm", "convlstm")
TRAIN_PHASES = (None, "train", "fit", "custom", "training")

EXPLODE_FACTOR = 100.0
EARLY_GRAD_FACTOR = 1000.0
RISING_RUN = 4
RISING_GROWTH = 10.0
LOSS_FACTOR = 100.0
LOSS_SUSTAIN = 10.0
WEIGHT_JUMP = 5.0
LR_GROWTH = 10.0   # a rate in force >= 10x the first step's is a learning-rate signature
MARGIN = 0.1       # the second of learning_rate_too_high / exploding_gradients stays this far below the first
SGD_UPDATE_RATIO = 5.0
SAMPLED_GAP = 4   # history points further apart than 4x the smallest gap were sampled apart


def finite(v) -> bool:
    v = num(v)
    return v is not None and math.isfinite(v)


def _baseline(values: list) -> float:
    """The start of a series: min(first value, median of the first 3). A run that explodes from step 1
    does not drag its own baseline up; a noisy healthy start is not read from one low value."""
    return min(values[0], statistics.median(values[:3]))


def _spikes(G: list, base: float) -> list:
    """Steps where the gradient jumped >= 1000x the baseline and was back below 10x on the next step."""
    out = []
    for i in range(len(G) - 1):
        if G[i][1] >= EARLY_GRAD_FACTOR * base and G[i + 1][1] < 10 * base:
            out.append(G[i][0])
    return out


def _train_steps(steps):
    return [s for s in (steps or []) if isinstance(s, dict) and s.get("phase") in TRAIN_PHASES
            and s.get("step") is not None]


def _is_recurrent(name: str | None, cls: str | None = None) -> bool:
    text = f"{name or ''} {cls or ''}".lower()
    return any(h in text for h in RECURRENT_HINTS)


def analyze(steps, layers=None, optimizer=None, dtype_policy=None, layer_classes=None, learning_rates=None,
            failing_step=None) -> dict:
    """Numbers about the run's dynamics (JSON-safe dict). See the module docstring. `learning_rates`:
    Evidence.learning_rates, the rate in force step by step (rates.py); lr_level and the first update's
    size are read from the rates the optimizer used up to `failing_step` (first_nonfinite.step) or the first
    non-finite step record, not only the one it was built with."""
    S = _train_steps(steps)
    out = {"n_steps": len(S), "nonfinite_step": None, "loss_baseline": None, "grad_baseline": None,
           "grad_peak": None, "grad_peak_step": None, "grad_last": None, "grad_growth": None,
           "grad_last_growth": None, "loss_peak": None, "loss_last": None, "loss_growth": None,
           "loss_sustained": False, "explosion": False, "explosion_step": None, "sudden": False,
           "rising_run": 0, "rising_growth": 1.0, "weight_jump": 1.0, "weight_jump_layer": None,
           "weight_jump_step": None, "weight_jump_to": None, "update_ratio0": None, "update_ratio0_layer": None,
           "top_layer": None, "top_layer_growth": None, "top_layer_share": None, "top_layer_recurrent": False,
           "lr_level": lr_level(optimizer, effective=True), "family": optimizer_family(optimizer), "spikes": []}
    if not S:
        out.update(rates.summary(rates.series(learning_rates, optimizer)))
        return out
    mixed = str(dtype_policy or "").startswith("mixed")
    # the first non-finite step (a non-finite gradient alone is expected under mixed precision)
    for s in S:
        if not finite(s.get("loss")) and s.get("loss") is not None or \
                (not mixed and s.get("grad_norm") is not None and not finite(s.get("grad_norm"))):
            out["nonfinite_step"] = s["step"]
            break
    stop = out["nonfinite_step"]
    horizon = failing_step if failing_step is not None else stop
    points = rates.series(learning_rates, optimizer, failing_step=horizon)
    out.update(rates.summary(points, horizon=horizon if horizon is not None else S[-1]["step"]))
    if out["lr_used"] is not None:
        out["lr_level"] = lr_level(dict(optimizer or {}, learning_rate=out["lr_used"]), effective=True)
    pre = [s for s in S if stop is None or s["step"] < stop]
    L = [(s["step"], num(s.get("loss"))) for s in pre if finite(s.get("loss"))]
    G = [(s["step"], num(s.get("grad_norm"))) for s in pre if finite(s.get("grad_norm"))]

    if L:
        lb = _baseline([v for _, v in L])
        out["loss_baseline"] = lb
        out["loss_last"] = L[-1][1]
        out["loss_peak"] = max(v for _, v in L)
        if lb > 0:
            out["loss_growth"] = out["loss_last"] / lb
            tail = [v for _, v in L[-3:]]
            out["loss_sustained"] = (len(L) >= 4 and len(tail) == 3 and all(v >= LOSS_SUSTAIN * lb for v in tail)
                                     and out["loss_last"] >= LOSS_FACTOR * lb)
    if G:
        gb = _baseline([v for _, v in G])
        out["grad_baseline"] = gb
        peak_step, peak = max(G, key=lambda t: t[1])
        out["grad_peak"], out["grad_peak_step"], out["grad_last"] = peak, peak_step, G[-1][1]
        if gb > 0:
            out["grad_growth"] = peak / gb
            out["grad_last_growth"] = G[-1][1] / gb
            out["spikes"] = _spikes(G, gb)
            # the rising run at the end
            run, i = 0, len(G) - 1
            while i > 0 and G[i][1] > G[i - 1][1]:
                run, i = run + 1, i - 1
            out["rising_run"] = run
            out["rising_growth"] = G[-1][1] / G[i][1] if G[i][1] > 0 else 1.0
            # Keras reports the loss as the epoch's running mean: one bad batch keeps it high until the
            # epoch ends. The gradient norm is per step; a loss alarm needs the gradient still elevated.
            if G[-1][1] < 10 * gb:
                out["loss_sustained"] = False
            # explosion: >= 100x baseline and still there at the end (or a NaN right after)
            ends_high = G[-1][1] >= EXPLODE_FACTOR * gb
            if ends_high or out["loss_sustained"]:
                out["explosion"] = True
                first = next((st for st, v in G if v >= EXPLODE_FACTOR * gb), G[-1][0])
                out["explosion_step"] = first
                before = [v for st, v in G if st < first]
                out["sudden"] = bool(before) and before[-1] < 10 * gb and out["rising_run"] <= 1
    # weights: the largest one-step jump of a layer's weight norm up to the explosion (or the end)
    horizon = out["explosion_step"] if out["explosion_step"] is not None else (stop if stop is not None else math.inf)
    classes = layer_classes or {}
    for rec in layers or []:
        hist = [h for h in rec.get("history") or [] if h.get("step") is not None]
        name = rec.get("layer")
        W = [(h["step"], num(h.get("weight_norm"))) for h in hist if finite(h.get("weight_norm"))]
        # a long run's history is a sample (nanwatch/series.py): two points far apart in its thinned middle
        # are not one update; a jump of WEIGHT_JUMP is always kept with the point before it
        gap = min((s1 - s0 for (s0, _), (s1, _) in zip(W, W[1:]) if s1 > s0), default=1)
        for (s0, w0), (s1, w1) in zip(W, W[1:]):
            if s1 - s0 > SAMPLED_GAP * gap:
                continue
            if s1 <= horizon and w0 > 0 and w1 / w0 > out["weight_jump"]:
                out["weight_jump"], out["weight_jump_layer"], out["weight_jump_step"] = w1 / w0, name, s0
                out["weight_jump_to"] = s1
        if out["family"] == "sgd" and hist and rates.rate_at(points, hist[0]["step"]):
            h0 = hist[0]
            lr = rates.rate_at(points, h0["step"])
            g0, w0 = num(h0.get("grad_norm")), num(h0.get("weight_norm"))
            if g0 is not None and w0 and math.isfinite(g0) and w0 > 0:
                r = lr * g0 / w0
                if out["update_ratio0"] is None or r > out["update_ratio0"]:
                    out["update_ratio0"], out["update_ratio0_layer"] = r, name
        Gl = [(h["step"], num(h.get("grad_norm"))) for h in hist
              if finite(h.get("grad_norm")) and (stop is None or h["step"] < stop)]
        if len(Gl) >= 2:
            base = _baseline([v for _, v in Gl])
            growth = (Gl[-1][1] / base) if base > 0 else None
            if growth is not None and (out["top_layer_growth"] is None or growth > out["top_layer_growth"]):
                out["top_layer"], out["top_layer_growth"] = name, growth
                out["top_layer_recurrent"] = _is_recurrent(name, classes.get(name))
                out["top_layer_share"] = (Gl[-1][1] / out["grad_last"]) if out["grad_last"] else None
    return out


def _early_alarm(a: dict) -> str | None:
    """Why the run looks like it is heading for NaN (None when it does not)."""
    gb = a.get("grad_baseline")
    if gb and a.get("grad_last") is not None:
        if a["grad_last"] >= EARLY_GRAD_FACTOR * gb:
            return "grad"
        if a["rising_run"] >= RISING_RUN and a["rising_growth"] >= RISING_GROWTH and a["grad_last"] >= 10 * gb:
            return "grad"
    if a.get("loss_sustained"):
        return "loss"
    return None


def _lr_signs(a: dict) -> list:
    signs = []
    if a["weight_jump"] >= WEIGHT_JUMP:
        signs.append(f"the weight norm of '{a['weight_jump_layer']}' jumped {fmt(a['weight_jump'], TREND)}x in one update "
                     f"(step {a['weight_jump_step']} to {a.get('weight_jump_to') or a['weight_jump_step'] + 1})")
    if a.get("update_ratio0") is not None and a["update_ratio0"] >= SGD_UPDATE_RATIO:
        signs.append(f"the first update lr*|g| was {fmt(a['update_ratio0'], TREND)}x the weight norm of "
                     f"'{a['update_ratio0_layer']}'")
    if a["lr_level"] == 2:
        signs.append("the learning rate is far above the usual range for this optimizer")
    if (a.get("lr_growth") or 0) >= LR_GROWTH:
        signs.append(f"the learning rate grew {fmt(a['lr_growth'], TREND)}x during the run (from "
                     f"{fmt(a['lr_start'], TREND)} at step {a['lr_start_step']} to {fmt(a['lr_used'], TREND)} at step "
                     f"{a['lr_used_step']})")
    return signs


def _clip_code(optimizer: dict | None, a: dict) -> str:
    """The optimizer with clipnorm, keeping the user's learning rate: their schedule by name, the first rate
    when it changed during the run, else the rate."""
    schedule = (optimizer or {}).get("schedule") if isinstance((optimizer or {}).get("schedule"), dict) else None
    if schedule and schedule.get("name"):
        return optimizer_code(optimizer, None, clip=True, lr_code=schedule["name"])
    if a.get("lr_varies") and a.get("lr_start") is not None:
        return optimizer_code(optimizer, a["lr_start"], clip=True)
    lr = rate_in_force(a, optimizer)
    return optimizer_code(optimizer, lr, clip=True)


def rate_in_force(a: dict, optimizer: dict | None) -> float | None:
    """The rate the updates used (from the rates step by step), else the optimizer's rate."""
    return num(a.get("lr_used")) if a.get("lr_used") is not None else num((optimizer or {}).get("learning_rate"))


def _clip_fix(optimizer: dict | None, a: dict, new_lr, advice: str, extra: str = "") -> str:
    """Clip the gradients; when the user's optimizer clips already, say so and lower the rate instead."""
    own = user_clip_text(optimizer)
    if own:
        return (f"Your optimizer clips already ({own}) and the gradients still grew: lower the learning rate, "
                f"keeping the clip: `optimizer={optimizer_code(optimizer, new_lr)}`{extra}.")
    return f"{advice}: `optimizer={_clip_code(optimizer, a)}`{extra}."


def _suggest_lr(optimizer: dict | None, a: dict) -> float | None:
    lr = rate_in_force(a, optimizer)
    if lr is None or not math.isfinite(lr) or lr <= 0:
        return None
    factor = 0.1
    r = a.get("update_ratio0")
    if r and r > 1:
        factor = min(0.1, 0.1 / r)   # bring the first update to ~10% of the weight norm
    new = lr * factor
    if a["family"] == "adaptive":
        new = min(new, 1e-3)
    return new


def growth_text(a: dict) -> str:
    parts = []
    if a.get("grad_baseline") and a.get("grad_peak") is not None:
        steps = (a["grad_peak_step"] or 0)
        parts.append(f"gradient norm grew {fmt(a['grad_peak'] / a['grad_baseline'], TREND)}x over {steps} "
                     f"step{'' if steps == 1 else 's'} "
                     f"(from {fmt(a['grad_baseline'], TREND)} to {fmt(a['grad_peak'], TREND)} at step {a['grad_peak_step']})")
    if a.get("loss_baseline") and a.get("loss_peak") is not None and a["loss_peak"] > 3 * a["loss_baseline"]:
        parts.append(f"loss went from {fmt(a['loss_baseline'], TREND)} to {fmt(a['loss_peak'], TREND)}")
    if a.get("nonfinite_step") is not None:
        parts.append(f"non-finite at step {a['nonfinite_step']}")
    return "; ".join(parts)


def explosion_candidates(a: dict, optimizer: dict | None) -> list:
    """learning_rate_too_high / exploding_gradients from an `analyze` result, when the run exploded."""
    exploded = a["explosion"] or (a["nonfinite_step"] is not None and (
        (a["rising_run"] >= 3 and (a["rising_growth"] or 1) >= 5) or (a["rising_run"] >= 2 and (a["rising_growth"] or 1) >= 10)))
    if not exploded or (a.get("lr_min") is not None and a["lr_min"] < 0):
        return []   # a negative rate climbs the loss: setup_rules.rule_nonpositive_rate says so
    return _classify(a, optimizer, post_nan=a["nonfinite_step"] is not None)


def _lr_text(a: dict, optimizer: dict | None) -> tuple:
    """(the rate the updates used, 'SGD learning_rate=0.01' or 'SGD learning rate 2.9 at step 13 (0.01 at
    step 0)' when it changed during the run)."""
    cls = optimizer_class(optimizer) or "optimizer"
    lr = rate_in_force(a, optimizer)
    if lr is None:
        return None, "the learning rate"
    if a.get("lr_varies") and a.get("lr_start") is not None:
        return lr, (f"{cls} learning rate {fmt(lr, TREND)} at step {a['lr_used_step']} ({fmt(a['lr_start'], TREND)} "
                    f"at step {a['lr_start_step']}){effective_rate_text(optimizer, lr)}")
    return lr, f"{cls} learning_rate={fmt(lr, TREND)}{effective_rate_text(optimizer, lr)}"


def _classify(a: dict, optimizer: dict | None, post_nan: bool) -> list:
    """The two stories of an explosion, the stronger first and the other at least MARGIN below it, so that
    noise in one run (a borderline 'sudden' jump, a weight norm sampled or not) cannot swap them: a
    learning-rate signature leads; without one, a rate already high for the optimizer leads unless the layer
    whose gradient grew most is recurrent; otherwise exploding gradients lead."""
    out = []
    signs = _lr_signs(a)
    growth = growth_text(a)
    lr, lr_txt = _lr_text(a, optimizer)
    new_lr = _suggest_lr(optimizer, a)
    strong = len(signs)
    layer_txt = ""
    if a.get("top_layer") and a.get("top_layer_growth"):
        layer_txt = f"; layer '{a['top_layer']}' grew most ({fmt(a['top_layer_growth'], TREND)}x)"
    lower = {
        "cause": "learning_rate_too_high",
        "fix": (f"Lower the learning rate (and clip): `optimizer={optimizer_code(optimizer, new_lr)}`"
                + ("" if new_lr is None else f" (was {fmt(lr, TREND)})") + "."),
    }
    if strong:
        conf = 0.85 if strong >= 2 else 0.75
        out.append(dict(lower, confidence=conf,
                        evidence=f"{lr_txt}: {'; '.join(signs)}; {growth}: updates overshoot, loss and gradients grow together."))
        out.append({
            "cause": "exploding_gradients", "confidence": 0.4,
            "evidence": f"{growth}{layer_txt}.",
            "fix": _clip_fix(optimizer, a, new_lr, "Clip gradients"),
        })
    elif a["lr_level"] >= 1 and not a.get("top_layer_recurrent"):
        out.append(dict(lower, confidence=0.6,
                        evidence=(f"{lr_txt} is high for this optimizer and no layer history shows the gradients "
                                  f"growing on their own; {growth}.")))
        out.append({
            "cause": "exploding_gradients", "confidence": 0.45,
            "evidence": f"{growth}{layer_txt}.",
            "fix": _clip_fix(optimizer, a, new_lr, "Clip the gradients"),
        })
    else:
        conf = 0.8
        if a.get("top_layer_recurrent"):
            conf = 0.85
        if a.get("sudden"):
            conf = 0.5  # a one-batch jump from a normal gradient: look at that batch's data first
        rec = ""
        if a.get("top_layer_recurrent"):
            rec = (f"; for the recurrent layer '{a['top_layer']}' prefer `keras.layers.LSTM`/`GRU` or "
                   f"`activation=\"tanh\"`")
        sudden = " A sudden one-step jump: check that batch's rows for extreme values." if a.get("sudden") else ""
        out.append({
            "cause": "exploding_gradients", "confidence": conf,
            "evidence": (f"{growth}{layer_txt}, while {lr_txt} is ordinary and the weights barely moved "
                         f"(largest one-step weight change {fmt(a['weight_jump'], TREND)}x).{sudden}"),
            "fix": _clip_fix(optimizer, a, new_lr, "Clip the gradients, keep the learning rate", rec),
        })
        out.append({
            "cause": "learning_rate_too_high",
            "confidence": round(min(0.5 if a["lr_level"] == 1 else 0.3, conf - MARGIN), 3),
            "evidence": f"{lr_txt}; {growth}.",
            "fix": f"A smaller learning rate also helps: `optimizer={optimizer_code(optimizer, new_lr)}`.",
        })
    return out


def early_warnings(steps, layers=None, optimizer=None, dtype_policy=None, layer_classes=None, analysis=None,
                   learning_rates=None) -> list:
    """Warnings {cause, evidence, fix} while the run is still finite (none on healthy runs).
    `analysis`: the `analyze` result of these same arguments, when the caller has it already."""
    a = analysis if analysis is not None else analyze(steps, layers, optimizer, dtype_policy, layer_classes,
                                                      learning_rates)
    if a["nonfinite_step"] is not None:
        return []
    why = _early_alarm(a)
    if why is None:
        return []
    cands = _classify(a, optimizer, post_nan=False)
    best = max(cands, key=lambda c: c["confidence"])
    head = ("loss diverging: " if why == "loss" else "gradient norm rising fast: ") + \
        (f"loss {fmt(a['loss_last'], TREND)} is {fmt(a['loss_growth'], TREND)}x its start ({fmt(a['loss_baseline'], TREND)}); "
         if why == "loss" and a.get("loss_growth") else "")
    return [{"cause": best["cause"], "evidence": "Before any NaN: " + head + best["evidence"], "fix": best["fix"]}]


