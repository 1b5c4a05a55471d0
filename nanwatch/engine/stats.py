"""Numbers about one tensor, computed in numpy: the evidence a report quotes."""

from __future__ import annotations

import weakref

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


# Per-model weight summaries: one traced function reads every variable at once, about ten
# times cheaper per call than reading each variable eagerly into numpy.
_SUMMARIES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def weight_summary(owner, variables) -> np.ndarray | None:
    """[len(variables), 7] float64: per variable the sum, sum of squares, min and max of the
    finite values, then NaN, Inf and finite counts (min/max are +inf/-inf with no finite
    value). The traced function is kept per `owner` (a model) while its variables stay the
    same. Run it with the op callback detached: it is nanwatch's own computation."""
    import tensorflow as tf

    if not variables:
        return None
    token = tuple(id(v) for v in variables)
    cached = _SUMMARIES.get(owner)
    if cached is None or cached[0] != token:
        values = list(variables)

        @tf.function(autograph=False, jit_compile=False)
        def summarise():
            rows = []
            for var in values:
                x = tf.reshape(tf.cast(tf.convert_to_tensor(var), tf.float64), [-1])
                finite = tf.math.is_finite(x)
                kept = tf.where(finite, x, tf.zeros_like(x))
                rows.append(tf.stack([
                    tf.reduce_sum(kept), tf.reduce_sum(kept * kept),
                    tf.reduce_min(tf.where(finite, x, tf.constant(np.inf, tf.float64))),
                    tf.reduce_max(tf.where(finite, x, tf.constant(-np.inf, tf.float64))),
                    tf.reduce_sum(tf.cast(tf.math.is_nan(x), tf.float64)),
                    tf.reduce_sum(tf.cast(tf.math.is_inf(x), tf.float64)),
                    tf.reduce_sum(tf.cast(finite, tf.float64))]))
            return tf.stack(rows)
        cached = (token, summarise)
        _SUMMARIES[owner] = cached
    return cached[1]().numpy()
