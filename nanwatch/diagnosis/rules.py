"""One small rule per cause: evidence -> candidates {cause, confidence, evidence, fix}.

`Context` reads the evidence dict once (defensively: any key may be missing or None) and every
`rule_*` function returns a list of candidates; `nanwatch.diagnosis.diagnose` ranks them.

Confidence scale used here: 0.9+ the first non-finite op itself shows the cause (log of an input
whose min is 0, a division whose denominator has zeros, NaN rows in the data); 0.75-0.85 strong
circumstantial evidence (dynamics signatures, a constant column next to a division, an outlier
row next to an overflow); 0.3-0.6 plausible contributors.
"""

from __future__ import annotations

import math

from . import dynamics as dyn
from . import rewrite
from .data_checks import FEATURE_ROLES, TARGET_ROLES, _fmt, column_label, profile_warnings

DATA_OPS = {"Placeholder", "IteratorGetNext", "IteratorGetNextSync", "OptionalGetValue", "_Arg", "Const",
            "GatherV2", "TensorSliceDataset", "MapDataset", "BatchDatasetV2", "ParallelMapDatasetV2"}
VAR_OPS = {"ReadVariableOp", "VarHandleOp", "ResourceGather", "VariableV2", "Variable", "ResourceGatherNd"}
LOG_OPS = {"Log", "Log1p", "Xlogy", "Xlog1py"}
SQRT_OPS = {"Sqrt", "Rsqrt"}
SQRT_GRAD_OPS = {"SqrtGrad", "RsqrtGrad"}
DIV_OPS = {"RealDiv", "Div", "DivNoNan", "Reciprocal", "Inv", "Xdivy", "FloorDiv", "TruncateDiv", "FloorMod"}
EXP_OPS = {"Exp", "Expm1"}
OVERFLOW_OPS = {"MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Conv2D", "Conv1D", "Conv3D",
                "DepthwiseConv2dNative", "Square", "Mul", "AddV2", "Add", "Sum", "Mean", "Pow", "BiasAdd",
                "SquaredDifference", "Prod", "Cumsum", "Einsum", "Sub", "AddN", "L2Loss", "Exp", "Cast",
                "Conv2DBackpropInput", "Conv2DBackpropFilter", "MatMulGrad", "ResourceApplyAdam",
                "ResourceApplyGradientDescent", "AssignSubVariableOp", "AssignAddVariableOp", "Relu", "Elu",
                "Selu", "LeakyRelu", "Tanh", "Sigmoid", "Softmax", "Max", "Neg", "Abs", "Sqrt"}
EXP_LIMIT = {"float16": 11.089, "bfloat16": 88.72, "float32": 88.72, "float64": 709.78}
FLOAT16_MAX = 65504.0
GLOROT_RATIO_DIAG = 10.0   # initial kernel norm / glorot-expected norm: a diagnosis candidate
GLOROT_RATIO_WARN = 30.0   # ... and a warning even without a NaN
PROB_HINTS = ("pred", "prob", "sigmoid", "softmax", "p)", "(p", " p ", "output", "score")
STD_HINTS = ("std", "var", "moments", "sqrt", "sigma", "norm", "scale")
NORMALIZING_FIRST = {"Normalization", "Rescaling", "BatchNormalization", "LayerNormalization",
                     "Embedding", "TextVectorization", "StringLookup", "IntegerLookup", "CategoryEncoding",
                     "Hashing", "Discretization", "UnitNormalization", "GroupNormalization"}


def num(v):
    return dyn.num(v)


def cand(cause: str, confidence: float, evidence: str, fix: str) -> dict:
    return {"cause": cause, "confidence": round(float(confidence), 3), "evidence": evidence, "fix": fix}


# --------------------------------------------------------------------------------------------
# reading the evidence
# --------------------------------------------------------------------------------------------
class Context:
    """The evidence, read once."""

    def __init__(self, evidence: dict | None):
        ev = evidence if isinstance(evidence, dict) else {}
        self.ev = ev
        self.call = ev.get("call")
        fn = ev.get("first_nonfinite")
        self.fn = fn if isinstance(fn, dict) else {}
        self.has_fn = bool(self.fn)
        self.op = self.fn.get("op_type")
        self.phase = self.fn.get("phase")
        self.layer = self.fn.get("layer")
        self.step = num(self.fn.get("step"))
        self.inputs = [i for i in (self.fn.get("inputs") or []) if isinstance(i, dict)]
        self.counts = self.fn.get("counts") or {}
        src = self.fn.get("source") or {}
        self.code = src.get("code") if isinstance(src, dict) else None
        self.line = src.get("line") if isinstance(src, dict) else None
        self.data_loc = self.fn.get("data") if isinstance(self.fn.get("data"), dict) else None
        self.dtype = str(self.fn.get("dtype") or (self.inputs[0].get("dtype") if self.inputs else "") or "")
        self.dtype_policy = ev.get("dtype_policy") or "float32"
        self.optimizer = ev.get("optimizer") if isinstance(ev.get("optimizer"), dict) else None
        self.loss = ev.get("loss") if isinstance(ev.get("loss"), dict) else None
        self.profiles = [p for p in (ev.get("data") or []) if isinstance(p, dict) and not p.get("error")]
        self.layer_cfg = _layers_config(ev.get("layers_config"))
        self.dyn = dyn.analyze(ev.get("steps"), ev.get("layers"), self.optimizer, self.dtype_policy,
                               layer_classes={k: v.get("class") for k, v in self.layer_cfg.items()})
        self._pw = None

    # ---- inputs of the culprit op ----------------------------------------------------------------
    @staticmethod
    def input_finite(i: dict) -> bool:
        if i.get("finite") is False:
            return False
        return not any((num(i.get(k)) or 0) > 0 for k in ("nan", "pos_inf", "neg_inf"))

    @property
    def inputs_finite(self) -> bool:
        return all(self.input_finite(i) for i in self.inputs)

    @property
    def made_inf(self) -> bool:
        c = self.counts
        return (num(c.get("pos_inf")) or 0) + (num(c.get("neg_inf")) or 0) > 0

    @property
    def made_nan(self) -> bool:
        return (num(self.counts.get("nan")) or 0) > 0

    def max_abs_input(self):
        vals = []
        for i in self.inputs:
            for k in ("min", "max"):
                v = num(i.get(k))
                if v is not None and math.isfinite(v):
                    vals.append(abs(v))
        return max(vals) if vals else None

    # ---- data profiles ------------------------------------------------------------------------------
    def profiles_for(self, roles) -> list:
        """Full-array profiles first, then consumed batches."""
        ps = [p for p in self.profiles if p.get("role") in roles]
        return sorted(ps, key=lambda p: (p.get("batch") is not None, p.get("batch") or 0))

    @property
    def profile_items(self) -> list:
        """profile_warnings of every profile, each tagged with its profile."""
        if self._pw is None:
            self._pw = []
            for p in self.profiles:
                for w in profile_warnings(p):
                    self._pw.append(dict(w, profile=p))
        return self._pw

    def items(self, cause: str, level: str = "warning") -> list:
        return [w for w in self.profile_items if w["cause"] == cause and w.get("level") == level]

    def first_layer_class(self) -> str | None:
        for cfg in self.layer_cfg.values():
            if cfg.get("class") and cfg.get("class") != "InputLayer":
                return cfg["class"]
        return None

    def data_is_target(self) -> bool | None:
        if not self.data_loc:
            return None
        src = str(self.data_loc.get("source") or "").lower()
        if src.startswith(("y", "target", "label", "sample_weight")):
            return True
        for p in self.profiles_for(TARGET_ROLES):
            if src and src == str(p.get("name") or "").lower():
                return True
        return False

    def is_data_op(self) -> bool:
        """The first non-finite tensor is the data itself (not an op computing on finite data, such as
        an eager standardisation in the cell that divides by a zero std)."""
        if self.op in DATA_OPS or (self.op is None and self.phase == "input"):
            return self.phase in (None, "input", "forward")
        return self.phase == "input" and not self.inputs


def _layers_config(raw) -> dict:
    """{layer name: {"class": ..., "config": {...}}} from a list or dict of Keras layer configs."""
    out = {}
    if isinstance(raw, dict):
        raw = [dict(v, name=k) if isinstance(v, dict) else {"name": k} for k, v in raw.items()]
    for c in raw or []:
        if not isinstance(c, dict):
            continue
        cfg = c.get("config") if isinstance(c.get("config"), dict) else {}
        name = c.get("name") or c.get("layer") or cfg.get("name")
        if name:
            out[name] = {"class": c.get("class") or c.get("class_name"), "config": cfg}
    return out


def _input_text(i: dict, idx: int) -> str:
    parts = [f"input {idx}"]
    if i.get("name"):
        parts.append(f"'{i['name']}'")
    if i.get("op_type"):
        parts.append(f"(from {i['op_type']})")
    stats = []
    for k in ("min", "max"):
        if i.get(k) is not None:
            stats.append(f"{k} {_fmt(num(i[k]))}")
    if num(i.get("zeros")):
        size = num(i.get("size"))
        stats.append(f"{int(num(i['zeros']))} zeros" + (f" of {int(size)}" if size else ""))
    if num(i.get("negatives")):
        stats.append(f"{int(num(i['negatives']))} negatives")
    return " ".join(parts) + (": " + ", ".join(stats) if stats else "")


def _stats_unknown(i: dict) -> bool:
    """The engine saw the input was finite but could not take its values (graph mode without replay)."""
    return all(num(i.get(k)) is None for k in ("min", "max")) and not num(i.get("zeros")) \
        and not num(i.get("negatives"))


UNKNOWN_CONF = 0.75
UNKNOWN_NOTE = " (its input values were not captured; the op itself can only make NaN/Inf from finite inputs this way)"


def _where(ctx: Context) -> str:
    w = f"{ctx.op}"
    if ctx.layer:
        w += f" in layer '{ctx.layer}'"
    if ctx.phase:
        w += f" ({ctx.phase})"
    if ctx.step is not None:
        w += f" at step {int(ctx.step)}"
    return w


def _line_ref(ctx: Context) -> str:
    return f"line {ctx.line}" if ctx.line else "the line"


# --------------------------------------------------------------------------------------------
# rules
# --------------------------------------------------------------------------------------------
def rule_nonfinite_data(ctx: Context) -> list:
    """NaN/Inf already in the inputs or targets."""
    out = []
    data_first = ctx.is_data_op()
    for cause in ("nan_in_input", "inf_in_input", "nan_in_target", "inf_in_target"):
        items = ctx.items(cause)
        if not items:
            continue
        full = [w for w in items if w["profile"].get("batch") is None] or items
        w = full[0]
        ev = w["evidence"]
        if ctx.data_loc and data_first:
            rows = ctx.data_loc.get("array_rows") or ctx.data_loc.get("rows")
            if rows:
                ev += f" The first non-finite value the model consumed came from {_loc_text(ctx.data_loc)}."
        if data_first:
            conf = 0.95
        elif ctx.has_fn and not ctx.inputs_finite:
            conf = 0.9
        elif ctx.has_fn:
            conf = 0.55
        else:
            conf = 0.9 if ctx.call in ("predict", "evaluate") else 0.85
        out.append(cand(cause, conf, ev, w["fix"]))
    if not out and ctx.has_fn and data_first:
        # the engine saw the data itself go non-finite but no profile covered it
        target = ctx.data_is_target()
        kind = "nan" if ctx.made_nan or not ctx.made_inf else "inf"
        cause = f"{kind}_in_{'target' if target else 'input'}"
        loc = f" at {_loc_text(ctx.data_loc)}" if ctx.data_loc else ""
        c = ctx.counts
        ev = (f"The data fed to the model is already non-finite{loc} "
              f"({int(num(c.get('nan')) or 0)} NaN, {int((num(c.get('pos_inf')) or 0) + (num(c.get('neg_inf')) or 0))} Inf "
              f"in the {ctx.op or 'input'} tensor).")
        fix = ("Clean the data before fit/predict: drop or impute the rows "
               "(`from sklearn.impute import SimpleImputer`; `X = SimpleImputer(strategy='median').fit_transform(X)`; "
               "for targets, drop the rows: `keep = np.isfinite(y).reshape(len(y), -1).all(1)`).")
        out.append(cand(cause, 0.9, ev, fix))
    return out


def _loc_text(loc: dict) -> str:
    """'X row 5, column 2 (batch 0)' when the rows of the user's array are known, else
    'row 6 of batch 4 of y'."""
    src = loc.get("source") or "the data"
    cols = list(dict.fromkeys(loc.get("columns") or []))[:5]
    col_txt = f", column{'s' if len(cols) > 1 else ''} {', '.join(map(str, cols))}" if cols else ""
    arows = list(dict.fromkeys(loc.get("array_rows") or []))[:5]
    rows = list(dict.fromkeys(loc.get("rows") or []))[:5]
    batch = loc.get("batch")
    if arows:
        txt = f"{src} row{'s' if len(arows) > 1 else ''} {', '.join(map(str, arows))}{col_txt}"
        return txt + (f" (batch {batch})" if batch is not None else "")
    if rows:
        where = f" of batch {batch}" if batch is not None else ""
        return f"row{'s' if len(rows) > 1 else ''} {', '.join(map(str, rows))}{where} of {src}{col_txt}"
    return src + (f" (batch {batch})" if batch is not None else "")


def rule_nan_weights(ctx: Context) -> list:
    nw = [w for w in (ctx.ev.get("nan_weights") or []) if isinstance(w, dict)]
    if not nw and not (ctx.op in VAR_OPS and ctx.phase in (None, "forward", "input", "loss")):
        return []
    if nw:
        names = ", ".join(f"'{w.get('layer')}'.{w.get('variable') or 'weights'}" for w in nw[:4])
        more = f" and {len(nw) - 4} more" if len(nw) > 4 else ""
        conf = 0.95 if (not ctx.has_fn or ctx.op in VAR_OPS or not ctx.inputs_finite) else 0.85
        ev = f"Weights were already non-finite before this cell ran: {names}{more}."
        layer = nw[0].get("layer")
    else:
        conf = 0.85
        layer = ctx.layer
        var = (ctx.data_loc or {}).get("variable") or (ctx.fn.get("variable") if isinstance(ctx.fn.get("variable"), str) else None)
        what = f"'{layer}'.{var}" if layer and var else (f"layer '{layer}'" if layer else "a weight")
        ev = (f"The first non-finite tensor is a variable read ({ctx.op} of {what}): the weights were "
              f"NaN/Inf before this step.")
    if ctx.call == "predict" or ctx.call == "evaluate":
        ev += f" {ctx.call}() only reads them."
    fix = (f"The model's weights are corrupted (most likely by an earlier run that went NaN). Rebuild the model "
           f"or reload good weights: `model.load_weights(\"last_good.weights.h5\")`; right after a NaN run use "
           f"`nanwatch.last_report().restore_weights(model)`; during training add "
           f"`keras.callbacks.TerminateOnNaN()` so a NaN step does not overwrite them"
           + (f" (layer '{layer}')" if layer else "") + ".")
    return [cand("nan_in_weights", conf, ev, fix)]


def rule_log(ctx: Context) -> list:
    if ctx.op not in LOG_OPS or not ctx.inputs:
        return []
    x = ctx.inputs[1] if ctx.op in ("Xlogy", "Xlog1py") and len(ctx.inputs) > 1 else ctx.inputs[0]
    if not ctx.input_finite(x):
        return []  # the Log only passed an upstream NaN on: not its fault
    lo, zeros, negs = num(x.get("min")), num(x.get("zeros")) or 0, num(x.get("negatives")) or 0
    limit = -1.0 if ctx.op in ("Log1p", "Xlog1py") else 0.0
    bad = (lo is not None and lo <= limit) or (zeros > 0 and limit == 0.0) or negs > 0
    unknown = _stats_unknown(x)
    if not bad and not unknown and not (ctx.made_inf or ctx.made_nan):
        return []
    fname = "log1p" if "1p" in ctx.op else "log"
    if unknown:
        ev = (f"{_where(ctx)} turned a finite input into NaN/-Inf: its argument reached "
              f"{'-1 or less' if limit else '0 or below'}{UNKNOWN_NOTE}.")
    else:
        ev = f"{_where(ctx)} got {_input_text(x, 1 if x is not ctx.inputs[0] else 0)}: {fname}({'-1' if limit else '0'}) = -inf"
        if lo is not None and lo < limit:
            ev += f", {fname} of a negative number = NaN"
        ev += "."
    src_op = str(x.get("op_type") or "")
    if src_op in ("Relu", "Relu6"):
        ev += " Its input comes from a ReLU, which outputs exactly 0 for every negative pre-activation."
    code = ctx.code or ""
    handmade_ce = "log(" in code and any(h in code for h in ("1 -", "1-", "y_true", "y *", "labels"))
    prob = handmade_ce or any(h in code.lower() for h in PROB_HINTS)
    fixed = rewrite.clip_log(code, probability=prob) if code else None
    if fixed:
        fix = f"Keep the argument of the log positive; {_line_ref(ctx)} becomes: `{fixed.strip()}`."
    else:
        fix = ("Keep the argument of the log positive: `tf.math.log(tf.clip_by_value(p, 1e-7, 1.0))` for a "
               "probability, `tf.math.log(tf.maximum(x, 1e-7))` otherwise.")
    if handmade_ce:
        fix += (" Better: let Keras compute the cross-entropy stably from logits: drop the final "
                "`activation=\"sigmoid\"` and use `loss=keras.losses.BinaryCrossentropy(from_logits=True)` "
                "(`CategoricalCrossentropy(from_logits=True)` for softmax outputs).")
    if src_op in ("Relu", "Relu6"):
        fix += " A probability should come from `activation=\"sigmoid\"`, not `\"relu\"`."
    return [cand("log_of_nonpositive", UNKNOWN_CONF if unknown else 0.92, ev, fix)]


def rule_sqrt(ctx: Context) -> list:
    out = []
    if ctx.op in SQRT_OPS and ctx.inputs and ctx.input_finite(ctx.inputs[0]):
        x = ctx.inputs[0]
        lo, zeros, negs = num(x.get("min")), num(x.get("zeros")) or 0, num(x.get("negatives")) or 0
        code = ctx.code or ""
        fixed = rewrite.guard_sqrt(code) if code else None
        unknown = _stats_unknown(x)
        if (lo is not None and lo < 0) or negs > 0 or (unknown and ctx.op == "Sqrt"):
            ev = (f"{_where(ctx)} made NaN from a finite input: the square root of a negative number{UNKNOWN_NOTE}."
                  if unknown else
                  f"{_where(ctx)} got {_input_text(x, 0)}: the square root of a negative number is NaN.")
            fix = (f"{_line_ref(ctx).capitalize()} becomes: `{fixed.strip()}`." if fixed else
                   "Guard the argument: `tf.sqrt(tf.maximum(v, 1e-12))`.")
            if "reduce_mean(" in code and "square" not in code.lower() and "**" not in code:
                fix += (" If this is an RMS / standard deviation, square first: "
                        "`tf.sqrt(tf.reduce_mean(tf.square(x), axis=-1, keepdims=True) + 1e-6)`.")
            out.append(cand("sqrt_of_negative", UNKNOWN_CONF if unknown else 0.92, ev, fix))
        elif ctx.op == "Rsqrt" and ((lo is not None and lo == 0) or zeros > 0):
            ev = f"{_where(ctx)} got {_input_text(x, 0)}: rsqrt(0) = 1/sqrt(0) = inf."
            fix = (f"{_line_ref(ctx).capitalize()} becomes: `{fixed.strip()}`." if fixed else
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
                            f"{_where(ctx)}: a negative base (min {_fmt(lo)}) raised to a fractional power "
                            f"({_fmt(e_lo)}) is NaN.",
                            "Raise only non-negative values: `tf.pow(tf.maximum(x, 0.0), p)` or "
                            "`tf.sign(x) * tf.pow(tf.abs(x), p)`."))
    if ctx.op in SQRT_GRAD_OPS:
        out.append(cand("division_by_zero", 0.8,
                        f"{_where(ctx)}: the gradient of sqrt is 0.5 / sqrt(x), infinite where sqrt(x) = 0 "
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
    den = ctx.inputs[1] if ctx.op not in ("Reciprocal", "Inv", "Rsqrt") and len(ctx.inputs) > 1 else \
        (ctx.inputs[0] if ctx.inputs else {})
    den_text = f"{den.get('name') or ''} {den.get('op_type') or ''}".lower()
    std_like = any(h in code for h in STD_HINTS) or any(h in den_text for h in STD_HINTS)
    if not const and not std_like:
        return []
    if const:
        p, c = const[0]
        more = f" ({len(const)} constant columns)" if len(const) > 1 else ""
        ev = (f"{column_label(c)} of {p.get('name') or 'the data'} is constant ({_fmt(c.get('min'))} in all "
              f"{p.get('rows_profiled')} rows){more}: its std is 0, and {what} divides by it.")
        conf = max(conf, 0.8)
    else:
        ev = f"The denominator looks like a standard deviation ({what}); a constant feature (or batch) has std 0."
    fix = ("Standardise with a guard for zero variance: `keras.layers.Normalization()` (adapted on the training "
           "data) or `sklearn.preprocessing.StandardScaler` both handle std 0; by hand use "
           "`(x - mean) / (std + 1e-7)`; or drop constant columns: `X = X[:, X.std(0) > 0]`.")
    return [cand("zero_variance_normalization", conf, ev, fix)]


def rule_division(ctx: Context) -> list:
    if ctx.op not in DIV_OPS or not ctx.inputs:
        return []
    if not ctx.inputs_finite:
        return []
    den = ctx.inputs[0] if ctx.op in ("Reciprocal", "Inv") or len(ctx.inputs) < 2 else ctx.inputs[1]
    if ctx.op == "Xdivy" and len(ctx.inputs) > 1:
        den = ctx.inputs[1]
    lo, hi = num(den.get("min")), num(den.get("max"))
    zeros = num(den.get("zeros")) or 0
    has_zero = zeros > 0 or (lo is not None and hi is not None and lo <= 0 <= hi and (lo == 0 or hi == 0))
    tiny = lo is not None and hi is not None and min(abs(lo), abs(hi)) < 1e-30
    if has_zero:
        conf = 0.92
        ev = f"{_where(ctx)}: the denominator ({_input_text(den, ctx.inputs.index(den))}) is 0"
        ev += " -> x/0 = inf, 0/0 = NaN."
    elif tiny or ctx.made_inf or ctx.made_nan:
        conf = 0.7 if tiny else 0.55
        ev = f"{_where(ctx)}: the denominator ({_input_text(den, ctx.inputs.index(den))}) is (nearly) 0."
    elif _stats_unknown(den):
        conf = UNKNOWN_CONF
        ev = f"{_where(ctx)} made NaN/Inf from finite inputs: its denominator reached 0{UNKNOWN_NOTE}."
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
        fix = f"Divide safely; {_line_ref(ctx)} becomes: `{fixed.strip()}` (0 where the denominator is 0)."
    else:
        fix = "Divide safely: `tf.math.divide_no_nan(a, b)` (0 where b is 0), or add an epsilon: `a / (b + 1e-7)`."
    if "y_true" in code and ctx.phase == "loss":
        fix += (" For a percentage error use the built-in `keras.losses.MeanAbsolutePercentageError()`, "
                "which clips the denominator.")
    out = [cand("division_by_zero", conf, ev, fix)]
    out.extend(_zero_variance(ctx, 0.7, "the standardisation"))
    return out


def rule_exp(ctx: Context) -> list:
    if ctx.op not in EXP_OPS or not ctx.inputs or not ctx.inputs_finite:
        return []
    x = ctx.inputs[0]
    hi = num(x.get("max"))
    dt = str(x.get("dtype") or ctx.dtype or "float32").replace("tf.", "")
    limit = EXP_LIMIT.get(dt, 88.72)
    unknown = _stats_unknown(x)
    if (hi is None or hi <= limit) and not ctx.made_inf and not unknown:
        return []
    if hi is None:
        ev = f"{_where(ctx)} overflowed from a finite input: exp(x) is inf above {limit:.4g} in {dt}{UNKNOWN_NOTE}."
    else:
        ev = (f"{_where(ctx)} got inputs up to {_fmt(hi)}: exp(x) overflows {dt} above {limit:.4g} "
              f"(exp({_fmt(hi)}) = inf).")
    unscaled = ctx.items("unscaled_input")
    if unscaled:
        ev += " The features feeding it are unscaled: " + unscaled[0]["evidence"]
    code = ctx.code or ""
    fixed = rewrite.stable_exp(code) if code else None
    if fixed:
        fix = f"{_line_ref(ctx).capitalize()} becomes: `{fixed.strip()}`."
    else:
        fix = ("Use the stable built-ins: `tf.nn.softmax(z, axis=-1)` instead of exp(z)/sum(exp(z)), "
               "`keras.ops.logsumexp(z)` for log(sum(exp(z))), or subtract the max first: "
               "`tf.exp(z - tf.reduce_max(z, axis=-1, keepdims=True))`.")
    if "softmax" not in fix and "logsumexp" not in fix:
        fix += (" If this is a softmax or log-sum-exp written by hand, use `tf.nn.softmax` / "
                "`keras.ops.logsumexp` instead; if it is a rate, predict its log and keep the loss on the log scale.")
    return [cand("exp_overflow", UNKNOWN_CONF if hi is None else 0.92, ev, fix)]


def rule_float16(ctx: Context) -> list:
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
          f"are finite (largest |x| {_fmt(big)}) but its result exceeds float16's max 65504 -> inf.")
    cfg = ctx.layer_cfg.get(ctx.layer or "", {})
    cls = cfg.get("class") or "Dense"
    fix = (f"Keep this layer in float32: `keras.layers.{cls}(..., name=\"{ctx.layer or 'layer'}\", dtype=\"float32\")`, "
           "or scale its inputs down (e.g. `keras.layers.Rescaling(1.0 / 255)` / `keras.layers.Normalization()` first), "
           "or train in float32: `keras.mixed_precision.set_global_policy(\"float32\")`.")
    return [cand("float16_overflow", conf, ev, fix)]


def _glorot_norm(fan_in, fan_out):
    return math.sqrt(fan_in * fan_out * 2.0 / (fan_in + fan_out))


def large_initial_weights(ctx: Context) -> list:
    """[(layer, variable, norm, expected, ratio)] for kernels far above the Glorot scale, plus
    initializers read from layers_config."""
    found = []
    for w in ctx.ev.get("initial_weight_norms") or []:
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
        ev += f" The first non-finite value: {_where(ctx)}"
        big = ctx.max_abs_input()
        if big is not None:
            ev += f", from finite inputs as large as {_fmt(big)}"
        ev += "."
    return [cand("large_initial_weights", conf, ev, _liw_fix(found))]


def _liw_text(found: list) -> str:
    parts = []
    for f in found[:3]:
        if f.get("ratio"):
            parts.append(f"'{f['layer']}'.{f['variable']} starts with norm {_fmt(f['norm'])}, "
                         f"{_fmt(f['ratio'])}x the Glorot scale ({_fmt(f['expected'])})")
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
    cands = dyn.candidates(ctx.ev)
    if not cands and ctx.has_fn and ctx.phase in ("backward", "optimizer") and ctx.inputs_finite \
            and ctx.op in OVERFLOW_OPS and not large_initial_weights(ctx):
        # an overflow in the gradients with no history to read: clipping is the safe bet
        big = ctx.max_abs_input()
        lr = num((ctx.optimizer or {}).get("learning_rate"))
        cands = [cand("exploding_gradients", 0.5,
                      f"{_where(ctx)} overflowed from finite gradient values as large as {_fmt(big)}.",
                      f"Clip the gradients: `optimizer={dyn._optimizer_code(ctx.optimizer, lr, clip=True)}`.")]
    return cands


def rule_data_quality(ctx: Context) -> list:
    """Outliers / unscaled inputs / placeholders promoted to causes when the run went non-finite
    (or its dynamics exploded) in a way they explain."""
    if not ctx.has_fn and not ctx.dyn.get("explosion"):
        return []
    overflowish = (not ctx.has_fn) or (ctx.inputs_finite and ctx.op not in LOG_OPS | SQRT_OPS | DIV_OPS
                                       and ctx.op not in VAR_OPS and not ctx.is_data_op())
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
            ev += f" First non-finite: {_where(ctx)}"
            big = ctx.max_abs_input()
            ev += f", from finite inputs as large as {_fmt(big)}." if big is not None else "."
        out.append(cand(cause, conf, ev, w["fix"]))
    if ctx.first_layer_class() not in NORMALIZING_FIRST:
        for w in ctx.items("unscaled_input")[:1]:
            conf = 0.8 if d.get("lr_level", 0) == 0 else 0.55
            ev = w["evidence"]
            if ctx.has_fn:
                ev += f" First non-finite: {_where(ctx)}."
            out.append(cand("unscaled_input", conf, ev, w["fix"]))
    for w in ctx.items("placeholder_values")[:1]:
        out.append(cand("placeholder_values", 0.6, w["evidence"], w["fix"]))
    return out


def rule_fallback(ctx: Context, found: list) -> list:
    """Something to say when the first op is known but no rule matched."""
    if found or not ctx.has_fn:
        return []
    big = ctx.max_abs_input()
    if not ctx.inputs_finite:
        return [cand("nan_in_input" if ctx.phase in ("input", "forward") else "exploding_gradients", 0.3,
                     f"{_where(ctx)} received inputs that were already non-finite; the origin is upstream of it.",
                     "Run with `%%nanwatch --mode exact` to walk the graph back to the op that made the first NaN.")]
    if ctx.op in OVERFLOW_OPS or ctx.made_inf:
        if ctx.phase in ("backward", "optimizer"):
            return [cand("exploding_gradients", 0.45,
                         f"{_where(ctx)} overflowed from finite values as large as {_fmt(big)}.",
                         f"Clip the gradients: `optimizer={dyn._optimizer_code(ctx.optimizer, num((ctx.optimizer or {}).get('learning_rate')))}`.")]
        cause = "large_initial_weights" if (ctx.step or 0) == 0 else "learning_rate_too_high"
        return [cand(cause, 0.35,
                     f"{_where(ctx)} overflowed float32 from finite inputs as large as {_fmt(big)}: activations "
                     f"grew beyond 3.4e38.",
                     "Check the scale of inputs and weights (Normalization as first layer, default initializers) and "
                     "lower the learning rate with `clipnorm=1.0`.")]
    return []


RULES = (rule_nonfinite_data, rule_nan_weights, rule_log, rule_sqrt, rule_division, rule_exp, rule_float16,
         rule_large_initial_weights, rule_dynamics, rule_data_quality)


def run_rules(ctx: Context) -> list:
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
    for c in found:
        if c["cause"] in ("learning_rate_too_high", "exploding_gradients"):
            if (liw and not lr_strong) or outlier:
                c["confidence"] = round(min(c["confidence"], 0.6), 3)
            elif unscaled and not lr_strong:
                c["confidence"] = round(min(c["confidence"], 0.7), 3)
        if (data_nan or weights_nan) and c["cause"] not in ("nan_in_input", "inf_in_input", "nan_in_target",
                                                            "inf_in_target", "nan_in_weights"):
            c["confidence"] = round(min(c["confidence"], 0.5), 3)
    return found


def warn_large_initial_weights(ctx: Context) -> list:
    found = [f for f in large_initial_weights(ctx) if (f.get("ratio") or 0) >= GLOROT_RATIO_WARN
             or (f.get("scale") or 0) >= 1.0]
    if not found:
        return []
    return [{"cause": "large_initial_weights", "evidence": _liw_text(found), "fix": _liw_fix(found)}]
