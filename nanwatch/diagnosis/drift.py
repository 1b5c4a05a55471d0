"""Predict-time drift: predict inputs far outside what the model was trained on.

Seed 003's "NaN only at prediction": the prediction data was not scaled like the training data.
The engine keeps `training_ranges(profile)` of the features a model was fitted on (per model,
across cells) and, at predict time, passes it back as evidence["train_ranges"].

A column drifts when its predict values lie outside the training [min, max] by more than the
width of that range (new data a little beyond the training range is normal, a value 400 widths
away is a scaling mistake), or when its typical magnitude is >= 10x the training one.
"""

from __future__ import annotations

import math

from ..numfmt import EVIDENCE, fmt
from .data_checks import column_label

OUTSIDE_WIDTHS = 1.0     # distance beyond the range, in units of the training range width
SCALE_ORDERS = 1.0       # typical magnitude differs by >= 10x


def training_ranges(profile: dict) -> dict:
    """The per-column training statistics the drift check needs (JSON-safe)."""
    if not profile or profile.get("error"):
        return {}
    return {
        "name": profile.get("name"),
        "n_columns": profile.get("n_columns"),
        "rows": profile.get("rows"),
        "columns": [{k: c.get(k) for k in ("index", "name", "min", "max", "mean", "std", "scale", "typical")}
                    for c in profile.get("columns", [])],
    }


def _match(train_cols: list, col: dict):
    if col.get("name") is not None:
        for t in train_cols:
            if t.get("name") == col["name"]:
                return t
    for t in train_cols:
        if t.get("index") == col.get("index") and (t.get("name") is None or col.get("name") is None):
            return t
    return None


def drift_columns(train_ranges: dict, predict_profile: dict) -> list:
    """[{column, predict_min, predict_max, train_min, train_max, widths_outside, scale_ratio}]."""
    if not train_ranges or not predict_profile or predict_profile.get("error"):
        return []
    out = []
    tcols = train_ranges.get("columns") or []
    for c in predict_profile.get("columns", []):
        t = _match(tcols, c)
        if t is None or t.get("min") is None or t.get("max") is None or c.get("min") is None:
            continue
        tmin, tmax, pmin, pmax = t["min"], t["max"], c["min"], c["max"]
        width = max(tmax - tmin, 1e-12 * max(abs(tmin), abs(tmax), 1.0))
        beyond = max(tmin - pmin, pmax - tmax, 0.0)
        widths = beyond / width
        ratio = None
        if t.get("typical") and c.get("typical") and t["typical"] > 0 and c["typical"] > 0:
            ratio = c["typical"] / t["typical"]
        scale_off = ratio is not None and abs(math.log10(ratio)) >= SCALE_ORDERS
        if widths > OUTSIDE_WIDTHS or (scale_off and beyond > 0):
            out.append({"column": c, "predict_min": pmin, "predict_max": pmax, "train_min": tmin,
                        "train_max": tmax, "widths_outside": widths, "scale_ratio": ratio})
    return out


def drift_warnings(train_ranges: dict, predict_profile: dict) -> list:
    """Warnings {cause: "input_drift", evidence, fix} naming the drifting columns."""
    cols = drift_columns(train_ranges, predict_profile)
    if not cols:
        return []
    name = predict_profile.get("name") or "X"
    parts = []
    for d in cols[:4]:
        txt = (f"{column_label(d['column'])} spans {fmt(d['predict_min'], EVIDENCE)}..{fmt(d['predict_max'], EVIDENCE)}, "
               f"trained on {fmt(d['train_min'], EVIDENCE)}..{fmt(d['train_max'], EVIDENCE)}")
        if d["scale_ratio"] and abs(math.log10(d["scale_ratio"])) >= SCALE_ORDERS:
            txt += f" ({fmt(d['scale_ratio'], EVIDENCE)}x the training magnitude)"
        else:
            txt += f" ({fmt(d['widths_outside'], EVIDENCE)} range-widths outside)"
        parts.append(txt)
    more = f"; {len(cols) - 4} more columns" if len(cols) > 4 else ""
    return [{
        "cause": "input_drift",
        "evidence": f"{name} at predict time: " + "; ".join(parts) + more
                    + ": the inputs are not on the scale the model was trained on.",
        "fix": (f"Apply the training preprocessing to the new data: `{name} = scaler.transform({name})` with the "
                f"scaler fitted on the training set (never refit it on prediction data), or put "
                f"`keras.layers.Normalization` (adapted on the training data) inside the model so it travels with it."),
    }]
