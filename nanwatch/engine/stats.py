"""Numbers about one tensor, computed in numpy: the evidence a report quotes."""

from __future__ import annotations

import numpy as np


def to_numpy(value):
    """An eager tensor, variable or array as a numpy array (None if it cannot be)."""
    try:
        if hasattr(value, "numpy"):
            value = value.numpy()
        return np.asarray(value)
    except Exception:
        return None


def is_float_array(arr) -> bool:
    return arr is not None and arr.dtype.kind == "f"


def all_finite(arr) -> bool:
    if not is_float_array(arr) or arr.size == 0:
        return True
    return bool(np.isfinite(arr).all())


def counts(arr) -> dict:
    """NaN / +Inf / -Inf counts and size."""
    if not is_float_array(arr):
        return {"nan": 0, "pos_inf": 0, "neg_inf": 0, "size": int(getattr(arr, "size", 0) or 0)}
    return {
        "nan": int(np.isnan(arr).sum()),
        "pos_inf": int(np.isposinf(arr).sum()),
        "neg_inf": int(np.isneginf(arr).sum()),
        "size": int(arr.size),
    }


def health(arr, name: str = "", op_type: str | None = None) -> dict:
    """finite? min, max (over finite values), zeros, negatives, and the non-finite counts."""
    out = {"name": name, "op_type": op_type, "dtype": None, "shape": None, "finite": True,
           "min": None, "max": None, "mean": None, "zeros": 0, "negatives": 0}
    if arr is None:
        out.update(counts(np.zeros(0)))
        return out
    out["dtype"] = str(arr.dtype)
    out["shape"] = list(arr.shape)
    out.update(counts(arr))
    if arr.dtype.kind in "fiub" and arr.size:
        values = arr.astype(np.float64, copy=False)
        finite = values[np.isfinite(values)]
        out["finite"] = bool(finite.size == values.size)
        if finite.size:
            out["min"] = float(finite.min())
            out["max"] = float(finite.max())
            out["mean"] = float(finite.mean())
        out["zeros"] = int((values == 0).sum())
        out["negatives"] = int((values < 0).sum())
    return out


def histogram(arr, bins: int = 20) -> dict | None:
    """Histogram of the finite values, with the non-finite ones counted apart."""
    if not is_float_array(arr) or arr.size == 0:
        return None
    values = arr.astype(np.float64, copy=False).ravel()
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return {"bins": [], "counts": [], "nonfinite": int(values.size)}
    try:
        hist, edges = np.histogram(finite, bins=bins)
    except ValueError:  # a range too wide for equal float bins (values near 1e38)
        hist, edges = np.histogram(finite, bins=np.unique(np.quantile(finite, np.linspace(0, 1, bins + 1))))
    return {"bins": [float(e) for e in edges], "counts": [int(c) for c in hist],
            "nonfinite": int(values.size - finite.size)}


def nonfinite_cells(arr, limit: int = 20) -> dict | None:
    """Rows (axis 0) and columns (last axis) holding non-finite values, and what they hold."""
    if not is_float_array(arr) or arr.size == 0:
        return None
    bad = ~np.isfinite(arr)
    if not bad.any():
        return None
    if arr.ndim == 0:
        return {"rows": [], "columns": [], "values": [_label(arr.item())]}
    flat_rows = bad.reshape(arr.shape[0], -1).any(axis=1)
    rows = [int(r) for r in np.flatnonzero(flat_rows)[:limit]]
    columns: list = []
    values: list = []
    if arr.ndim >= 2:
        cols = bad.reshape(-1, arr.shape[-1]).any(axis=0)
        columns = [int(c) for c in np.flatnonzero(cols)[:limit]]
    for idx in zip(*np.nonzero(bad)):
        values.append(_label(arr[idx]))
        if len(values) >= limit:
            break
    return {"rows": rows, "columns": columns, "values": values}


def _label(value) -> str:
    value = float(value)
    if np.isnan(value):
        return "nan"
    return "inf" if value > 0 else "-inf"


def norm(arr) -> float | None:
    if arr is None or arr.dtype.kind != "f" or arr.size == 0:
        return None
    return float(np.sqrt(np.sum(np.square(arr.astype(np.float64)))))
