"""Rules for NaN/Inf that entered the computation from outside: the data (inputs, targets) and
weights that were already non-finite. No op made them, so the fix is upstream of the model.
"""

from __future__ import annotations

from ..numfmt import num
from ..ops import WEIGHT_READS
from .context import Context, cand


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
                ev += f" The first non-finite value the model consumed came from {location_text(ctx.data_loc)}."
        if data_first:
            conf = 0.95
        elif ctx.has_fn and ctx.upstream_nonfinite:
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
        loc = f" at {location_text(ctx.data_loc)}" if ctx.data_loc else ""
        c = ctx.counts
        ev = (f"The data fed to the model is already non-finite{loc} "
              f"({int(num(c.get('nan')) or 0)} NaN, {int((num(c.get('pos_inf')) or 0) + (num(c.get('neg_inf')) or 0))} Inf "
              f"in the {ctx.op or 'input'} tensor).")
        fix = ("Clean the data before fit/predict: drop or impute the rows "
               "(`from sklearn.impute import SimpleImputer`; `X = SimpleImputer(strategy='median').fit_transform(X)`; "
               "for targets, drop the rows: `keep = np.isfinite(y).reshape(len(y), -1).all(1)`).")
        out.append(cand(cause, 0.9, ev, fix))
    return out


def location_text(loc: dict) -> str:
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
    """Weights already non-finite before the cell's first step, or a variable read as the first op."""
    nw = [w for w in (ctx.record.nan_weights or []) if isinstance(w, dict)]
    if not nw and not (ctx.op in WEIGHT_READS and ctx.phase in (None, "forward", "input", "loss")):
        return []
    if nw:
        names = ", ".join(f"'{w.get('layer')}'.{w.get('variable') or 'weights'}" for w in nw[:4])
        more = f" and {len(nw) - 4} more" if len(nw) > 4 else ""
        conf = 0.95 if (not ctx.has_fn or ctx.op in WEIGHT_READS or ctx.upstream_nonfinite) else 0.85
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


# In the order they run (ties in confidence keep it).
RULES = (rule_nonfinite_data, rule_nan_weights)
