"""A Keras batch checked before its step: non-finite values in the data are the origin
(phase input), reported with the batch rows, columns and the rows of the user's arrays."""

from __future__ import annotations

import dataclasses

import numpy as np

from . import stats
from .detection import Detection


def bad_batch_detection(data, x, y, batch: int, where) -> Detection | None:
    """A Detection for the first float component of `data` holding NaN/Inf (None if finite).
    `x`, `y`: what the user passed to the call, to find the rows of their arrays."""
    for name, arr in batch_arrays(data):
        if arr is None or stats.all_finite(arr):
            continue
        cells = stats.nonfinite_cells(arr) or {}
        user = component(y if name.startswith("y") else x, name)
        rows = cells.get("rows")
        array_rows = match_rows(arr[rows], user) if user is not None and rows else []
        return Detection(context="data", op_type=None, op_name=None, slot=0,
                         where=dataclasses.replace(where, phase="input", layer=None),
                         dtype=str(arr.dtype), counts=stats.counts(arr), histogram=stats.histogram(arr),
                         output=arr, data=dict(cells, source=name, batch=batch, array_rows=array_rows))
    return None


def batch_arrays(data) -> list:
    """[(name, numpy array)] for the float tensors in a Keras batch (x, y, sample_weight)."""
    import tensorflow as tf
    if not isinstance(data, (tuple, list)):
        data = (data,)
    roles = ("x", "y", "sample_weight")
    out = []
    for role, part in zip(roles, data):
        if part is None:
            continue
        flat = tf.nest.flatten(part)
        for i, tensor in enumerate(flat):
            if not _is_float(getattr(tensor, "dtype", None)):
                continue
            name = role if len(flat) == 1 else f"{role}[{i}]"
            out.append((name, stats.to_numpy(tensor)))
    return out


def match_rows(batch_rows: np.ndarray, user_array) -> list:
    """Rows of the user's array equal (NaN-equal) to the given batch rows."""
    try:
        arr = np.asarray(user_array).astype(batch_rows.dtype)
    except Exception:
        return []
    if arr.ndim == 0 or arr.shape[1:] != batch_rows.shape[1:]:
        return []
    flat = arr.reshape(arr.shape[0], -1)
    found = []
    for row in batch_rows.reshape(batch_rows.shape[0], -1):
        bad = ~np.isfinite(row)
        candidates = np.flatnonzero((~np.isfinite(flat[:, bad])).all(axis=1)) if bad.any() else np.arange(flat.shape[0])
        for idx in candidates:
            other = flat[idx]
            same = (np.isnan(other) & np.isnan(row)) | (other == row)
            if same.all():
                found.append(int(idx))
                break
    return found


def numpy_structure(data):
    """A batch (nested tensors) as numpy arrays, for `report.bad_batch`."""
    try:
        import tensorflow as tf
        return tf.nest.map_structure(lambda t: stats.to_numpy(t) if hasattr(t, "numpy") else t, data)
    except Exception:
        return data


def component(value, name: str):
    """The part of the user's x/y that a batch component came from: `x[1]` -> value[1]."""
    if value is None or "[" not in name:
        return value
    try:
        import tensorflow as tf
        flat = tf.nest.flatten(value)
        return flat[int(name.split("[", 1)[1].rstrip("]"))]
    except Exception:
        return None


def _is_float(dtype) -> bool:
    """A TensorFlow float dtype, or a numpy one (train_on_batch hands the user's arrays as they are)."""
    if dtype is None:
        return False
    if hasattr(dtype, "is_floating"):
        return bool(dtype.is_floating)
    return getattr(dtype, "kind", None) == "f"
