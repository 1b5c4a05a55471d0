"""Numbers about one tensor, computed in numpy: the evidence a report quotes."""

from __future__ import annotations

import collections

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


# Weight summaries: one traced function reads every variable at once, about ten times cheaper
# per call than reading each variable eagerly into numpy. Tracing it costs 0.1-0.2 s, paid by
# the first cell that watches a model of its shape: the function takes the variables as
# arguments, so a fresh model of the same architecture (the cell run again) reuses it. The
# graph is kept small too (see _summary_function).
_READERS: "collections.OrderedDict" = collections.OrderedDict()   # variable shapes and dtypes -> reader
_READERS_KEPT = 32
_SMALL_VARIABLE = 8192   # elements: at most this many, a variable joins the segment reduction


def weight_summary(variables) -> np.ndarray | None:
    """[len(variables), 7] float64: per variable the sum, sum of squares, min and max of the
    finite values, then NaN, Inf and finite counts (min/max are +inf/-inf with no finite
    value). Run it with the op callback detached: it is nanwatch's own computation."""
    if not variables:
        return None
    handles = [_handle(v) for v in variables]
    signature = tuple((tuple(h.shape), h.dtype.name) for h in handles)
    reader = _READERS.get(signature)
    if reader is None:
        reader = _READERS[signature] = _summary_function(handles)
        while len(_READERS) > _READERS_KEPT:
            _READERS.popitem(last=False)
    _READERS.move_to_end(signature)
    rows_in_order, function = reader
    rows = function(handles).numpy()[rows_in_order]
    size, nan, finite = rows[:, 6], rows[:, 4], rows[:, 5]
    none_finite = finite == 0
    rows[none_finite, 2], rows[none_finite, 3] = np.inf, -np.inf   # empty segments hold the dtype's extremes
    return np.column_stack([rows[:, :5], size - nan - finite, finite])


def _handle(variable):
    """The TensorFlow variable under a Keras 3 variable: passed to the reader as a resource,
    it is read inside the graph, not eagerly one by one."""
    inner = getattr(variable, "value", None)
    return inner if inner is not None and hasattr(inner, "handle") else variable


def _summary_function(values):
    """(where each variable's row lands, a concrete function of the variables returning the rows
    [sum, sum of squares, min, max, NaN count, finite count, size]: small variables first, then
    large). Small variables (biases, normalisation scales, small kernels) are flattened together
    and reduced per variable with segment sums, a dozen ops in all; large ones keep their own
    reductions, which run multithreaded where a segment reduction would not (measured on the
    bench CNN: a segment reduction over all its 57k weights took 3.5 ms a call, against 0.9 ms).
    Calling a concrete function skips tf.function's retracing detector, which would otherwise
    warn the user about nanwatch's function after a few models of new shapes."""
    import tensorflow as tf

    small, large = [], []
    for index, var in enumerate(values):
        size = var.shape.num_elements()
        (small if size is not None and size <= _SMALL_VARIABLE else large).append(index)

    def flat(var):
        return tf.reshape(tf.cast(var, tf.float64), [-1])

    def statistic_rows(x, sizes, total, smallest, largest):
        """The row layout above, from `x` and reducers: whole-tensor ones give one row, segment
        ones a row per segment."""
        finite = tf.math.is_finite(x)
        kept = tf.where(finite, x, tf.zeros_like(x))
        return tf.stack([
            total(kept), total(kept * kept),
            smallest(tf.where(finite, x, tf.fill(tf.shape(x), tf.constant(np.inf, tf.float64)))),
            largest(tf.where(finite, x, tf.fill(tf.shape(x), tf.constant(-np.inf, tf.float64)))),
            total(tf.cast(tf.math.is_nan(x), tf.float64)), total(tf.cast(finite, tf.float64)),
            tf.cast(sizes, tf.float64)], axis=-1)

    def segment_rows(parts):
        sizes = tf.stack([tf.size(part) for part in parts])
        ids, n = tf.repeat(tf.range(len(parts)), sizes), len(parts)
        return statistic_rows(tf.concat(parts, axis=0), sizes,
                              lambda t: tf.math.unsorted_segment_sum(t, ids, n),
                              lambda t: tf.math.unsorted_segment_min(t, ids, n),
                              lambda t: tf.math.unsorted_segment_max(t, ids, n))

    def reduced_row(x):
        return statistic_rows(x, tf.size(x), tf.reduce_sum, tf.reduce_min, tf.reduce_max)[tf.newaxis]

    def summarise(variables):
        blocks = [segment_rows([flat(variables[i]) for i in small])] if small else []
        blocks += [reduced_row(flat(variables[i])) for i in large]
        return tf.concat(blocks, axis=0)

    rows_in_order = np.argsort(small + large)
    return rows_in_order, tf.function(summarise, autograph=False, jit_compile=False).get_concrete_function(values)


def scalar(value):
    """A one-element numeric tensor or array as a float (None otherwise)."""
    arr = to_numpy(value)
    if arr is None or arr.size != 1 or arr.dtype.kind not in "fiu":
        return None
    return float(arr.reshape(()))
