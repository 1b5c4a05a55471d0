"""Rules that read the training set-up the user built, beyond the first op: a learning-rate schedule that
drove the rate up until the updates overshot (`learning_rate_schedule_grows`), and a learning rate of 0 or
below (`learning_rate_nonpositive`). The rates are those the optimizer used step by step (rates.py), read
from the schedule object or the optimizer's variable, never only the constructor's argument.
"""

from __future__ import annotations

from ..numfmt import TREND, fmt, num
from . import dynamics as dyn
from .context import Context, cand

SCHEDULE_GROWTH = 10.0   # the rate in force at the failure is >= 10x the first step's
# usual upper end of the learning rate by optimizer family (dynamics.lr_level calls more "high")
USUAL_MAX = {"sgd": 0.1, "adaptive": 0.001, "other": 0.01}
FAMILY_NAMES = {"sgd": "SGD", "adaptive": "adaptive optimizers such as Adam"}


def _schedule(ctx: Context) -> dict | None:
    s = (ctx.optimizer or {}).get("schedule")
    return s if isinstance(s, dict) and s.get("class") else None


def _unbounded(s: dict) -> str | None:
    """'decay_rate=1.5 > 1: the rate is multiplied by 1.5 every 1 steps' when the config makes it grow forever."""
    cfg = s.get("config") or {}
    cls = s.get("class")
    rate = num(cfg.get("decay_rate"))
    if cls == "ExponentialDecay" and rate is not None and rate > 1:
        return (f"decay_rate={fmt(rate, TREND)} > 1: the rate is multiplied by {fmt(rate, TREND)} every "
                f"{cfg.get('decay_steps')} step{'' if cfg.get('decay_steps') == 1 else 's'}, without bound")
    if cls == "InverseTimeDecay" and rate is not None and rate < 0:
        return f"decay_rate={fmt(rate, TREND)} < 0: 1 / (1 + decay_rate * step / decay_steps) grows, then turns negative"
    return None


def _schedule_text(s: dict) -> str:
    """'`schedule` (ExponentialDecay(initial_learning_rate=0.01, decay_steps=1, decay_rate=1.5))'."""
    cfg = {k: v for k, v in (s.get("config") or {}).items() if k != "name"}
    args = ", ".join(f"{k}={v!r}" for k, v in cfg.items())
    call = f"{s['class']}({args})" if cfg or not s.get("custom") else s["class"]
    return f"`{s['name']}` ({call})" if s.get("name") else f"your {call}"


def _fix(s: dict, cap: float, family: str | None) -> str:
    cfg = s.get("config") or {}
    cls = s.get("class")
    who = f"`{s['name']}`" if s.get("name") else f"the {cls}"
    target = s.get("name") or "schedule"
    keep = f"{cls}({cfg.get('initial_learning_rate')!r}, decay_steps={cfg.get('decay_steps')!r}"
    if cls == "ExponentialDecay" and num(cfg.get("decay_rate")) is not None and num(cfg["decay_rate"]) > 1:
        main = (f"Make {who} decay: a decay_rate below 1, "
                f"`{target} = keras.optimizers.schedules.{keep}, decay_rate=0.96)`")
    elif cls == "InverseTimeDecay" and num(cfg.get("decay_rate")) is not None and num(cfg["decay_rate"]) < 0:
        main = f"Make {who} decay: a positive decay_rate, `{target} = keras.optimizers.schedules.{keep}, decay_rate=0.5)`"
    elif cls == "PiecewiseConstantDecay" and isinstance(cfg.get("values"), list):
        values = [min(v, cap) if isinstance(v, (int, float)) else v for v in cfg["values"]]
        main = (f"Keep the values of {who} below {dyn.fmt_lr(cap)}: `{target} = keras.optimizers.schedules."
                f"PiecewiseConstantDecay({cfg.get('boundaries')!r}, {values!r})`")
    elif cls == "CosineDecay" and num(cfg.get("warmup_target")) is not None:
        main = f"Warm {who} up to a lower rate: `warmup_target={dyn.fmt_lr(cap)}`"
    else:
        main = f"Keep {who} below the rate the run could take"
    return (f"{main}; or cap it: `{target} = CappedSchedule({target}, max_rate={dyn.fmt_lr(cap)})` with "
            "`class CappedSchedule(keras.optimizers.schedules.LearningRateSchedule):` whose `__call__(self, step)` "
            "returns `keras.ops.minimum(self.schedule(step), self.max_rate)`. "
            f"({dyn.fmt_lr(cap)}: the usual upper end for {FAMILY_NAMES.get(family or '', 'this optimizer')}, or the "
            "schedule's own first rate if higher).")


def rule_schedule_grows(ctx: Context) -> list:
    """learning_rate_schedule_grows: the user's schedule raised the rate >= 10x by the time the run blew up,
    to a rate that is high for the optimizer, or by a config that grows without bound."""
    s = _schedule(ctx)
    d = ctx.dyn
    if s is None or not (ctx.has_fn or d.get("explosion")):
        return []
    growth, start, used = d.get("lr_growth"), d.get("lr_start"), d.get("lr_used")
    if not growth or growth < SCHEDULE_GROWTH or used is None:
        return []
    unbounded = _unbounded(s)
    if not unbounded and d.get("lr_level", 0) < 1:
        return []   # a warmup to an ordinary rate: not this
    conf = 0.92 if unbounded else 0.88   # above learning_rate_too_high (<= 0.85): the schedule made the rate
    failing = ctx.step if ctx.step is not None else d.get("nonfinite_step")
    ev = (f"The learning-rate schedule {_schedule_text(s)} raised the rate {fmt(growth, TREND)}x: "
          f"{fmt(start, TREND)} at step {d.get('lr_start_step')}, {fmt(used, TREND)} at step {d.get('lr_used_step')}")
    ev += f" (the first non-finite value at step {int(failing)})" if failing is not None else ""
    ev += f"; {unbounded}." if unbounded else ", far above the usual range for this optimizer."
    if d.get("explosion") or d.get("loss_growth"):
        ev += " " + dyn.growth_text(d) + "."
    cap = max(start or 0.0, USUAL_MAX.get(d.get("family") or "other", 0.01))
    return [cand("learning_rate_schedule_grows", conf, ev, _fix(s, cap, d.get("family")))]


def rule_nonpositive_rate(ctx: Context) -> list:
    """learning_rate_nonpositive as a cause: a negative rate in force when the run went non-finite (the
    updates climb the loss instead of descending it)."""
    d = ctx.dyn
    if not ctx.has_fn or d.get("lr_min") is None or d["lr_min"] >= 0:
        return []
    return [cand("learning_rate_nonpositive", 0.9, _nonpositive_text(ctx), _nonpositive_fix(ctx))]


def _nonpositive_text(ctx: Context) -> str:
    d = ctx.dyn
    opt = ctx.optimizer or {}
    who = f"`{opt['name']}` ({dyn.optimizer_class(opt)})" if opt.get("name") else (dyn.optimizer_class(opt) or "the optimizer")
    if d["lr_min"] < 0:
        return (f"{who} used a negative learning rate ({fmt(d['lr_min'], TREND)}): every update moves the weights up "
                "the gradient, so the loss grows instead of falling" + (f"; {dyn.growth_text(d)}." if d.get("n_steps") else "."))
    return (f"{who} has a learning rate of 0 at every step: the weights never change, so the model does not "
            "train (the loss stays where it started).")


def _nonpositive_fix(ctx: Context) -> str:
    opt = ctx.optimizer or {}
    s = _schedule(ctx)
    if s is not None:
        return (f"Give the schedule {_schedule_text(s)} positive values (a learning rate is the step size down the "
                "gradient: > 0).")
    return f"A positive learning rate: `optimizer={dyn.optimizer_code(opt, 0.01 if dyn.optimizer_family(opt) == 'sgd' else 0.001, clip=False)}`."


def warn_nonpositive_rate(ctx: Context) -> list:
    """The warning, with or without a NaN: a rate below 0 at some step, or 0 at every step of a training run."""
    d = ctx.dyn
    if d.get("lr_min") is None or not d.get("n_steps"):
        return []
    if d["lr_min"] < 0 or (d.get("lr_used") is not None and d["lr_used"] == 0):
        return [{"cause": "learning_rate_nonpositive", "evidence": _nonpositive_text(ctx), "fix": _nonpositive_fix(ctx)}]
    return []


NO_PROGRESS_STEPS = 10   # the rate-out-of-range warning needs at least this many finite train steps


def warn_rate_out_of_range(ctx: Context) -> list:
    """A finite run whose rate is far above its optimizer's usual range (dynamics.lr_level 2, SGD's momentum
    counted) and whose loss ended no lower than it started: the updates overshoot without a NaN yet.
    Measured on the diagnosis MLP (5 epochs): Adam(1.0) ends at loss 60 from 8.9 (warned); Adam(0.3) ends at
    4.6 (not warned: it learns). The rate alone is no alarm: real programs train tiny regressions with
    Adam(1.0) or SGD(1.0) and their loss falls (tests/scenarios/realbugs.py f54, f56)."""
    d = ctx.dyn
    start, last = num(d.get("loss_baseline")), num(d.get("loss_last"))
    if d.get("nonfinite_step") is not None or (d.get("n_steps") or 0) < NO_PROGRESS_STEPS or d.get("lr_level") != 2:
        return []
    if start is None or last is None or last < start:
        return []
    opt = ctx.optimizer or {}
    lr = dyn.rate_in_force(d, opt)
    if lr is None or lr <= 0:
        return []
    family = dyn.optimizer_family(opt)
    usual = USUAL_MAX.get(family or "other", 0.01)
    cls = dyn.optimizer_class(opt) or "the optimizer"
    return [{"cause": "learning_rate_too_high",
             "evidence": (f"{cls} learning_rate={fmt(lr, TREND)}{dyn.effective_rate_text(opt, lr)} is far above the "
                          f"usual range for {FAMILY_NAMES.get(family or '', 'this optimizer')} (up to about "
                          f"{dyn.fmt_lr(usual)}), and the loss ended at {fmt(last, TREND)}, no lower than its start "
                          f"({fmt(start, TREND)}) after {d['n_steps']} steps: the updates overshoot."),
             "fix": (f"Lower the learning rate: `optimizer={dyn.optimizer_code(opt, min(lr / 10, usual), clip=False)}` "
                     f"(was {fmt(lr, TREND)}).")}]


RULES = (rule_schedule_grows, rule_nonpositive_rate)
