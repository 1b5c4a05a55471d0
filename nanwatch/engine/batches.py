"""A Keras batch checked before its step: non-finite values in the data are the origin
(phase input), reported with the batch rows, columns and the rows of the user's arrays."""

from __future__ import annotations

import dataclasses
import time

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


def pipeline_data_error(exc, probe, events, call: dict) -> None:
    """A check inside the input pipeline failed while a batch was fetched (a `PyDataset` or generator
    serving NaN/Inf: Keras feeds it through `tf.data.Dataset.from_generator`, so the check that fails
    is on its `PyFunc`, before any step). Reported as the data: phase input, the batch index (batches
    already consumed), and, when the user's dataset can be indexed (`PyDataset`, `keras.utils.Sequence`),
    the batch fetched again with its rows and columns. Raises NonFiniteFound when stopping; returns
    when the error is not a data check of ours."""
    detection = probe.detection_from_error(exc)
    if detection is None or detection.where.phase != "input" or not (
            detection.context == "data" or detection.op_type in GENERATOR_OPS):
        return
    batch = int(call.get("batches", 0))
    where = dataclasses.replace(detection.where, phase="input", layer=None)
    with probe.detached():
        found = indexed_batch(call.get("x"), batch)
    if found is not None:
        index, data = found
        bad = bad_batch_detection(data, None, None, index, where)
        if bad is not None:
            events.detected(bad, bad_batch=numpy_structure(data))
            return
    kind = "NaN" if "NaN" in str(detection.kind or exc) else "Inf"
    events.detected(dataclasses.replace(detection, context="data", op_type=None, op_name=None, where=where,
                                        kind=kind, data={"source": "x", "batch": batch}))


# ops that hand a generator's batch to tf.data (Keras' PyDataset and generator adapters)
GENERATOR_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})
MAX_SCAN_SECONDS = 2.0


def indexed_batch(dataset, batch: int):
    """(index, batch) of the first batch holding NaN/Inf of an indexable dataset (a `PyDataset`),
    trying `batch` first (the order Keras fetches in without shuffling), then the others in order
    within MAX_SCAN_SECONDS; None when it is not indexable or every batch tried is finite."""
    if dataset is None or isinstance(dataset, (np.ndarray, list, tuple, dict)) or not (
            hasattr(dataset, "__getitem__") and hasattr(dataset, "__len__")) or hasattr(dataset, "dtype"):
        return None
    try:
        n = len(dataset)
    except Exception:
        return None
    start = time.perf_counter()
    for index in [batch] + [i for i in range(n) if i != batch]:
        if time.perf_counter() - start > MAX_SCAN_SECONDS:
            break
        if not 0 <= index < n:
            continue
        try:
            data = dataset[index]
        except Exception:
            return None
        if any(arr is not None and not stats.all_finite(arr) for _, arr in batch_arrays(data)):
            return index, data
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
            tensor = _whole_batch(tensor)
            if not _is_float(getattr(tensor, "dtype", None)):
                continue
            name = role if len(flat) == 1 else f"{role}[{i}]"
            out.append((name, stats.to_numpy(tensor)))
    return out


def _whole_batch(value):
    """A strategy's per-replica batch (each local replica's shard, in replica order: how Keras and
    `experimental_distribute_dataset` split a global batch) as one array; any other value as it is."""
    parts = getattr(value, "values", None)
    if not isinstance(parts, tuple) or not parts or not all(hasattr(p, "numpy") for p in parts):
        return value
    arrays = [np.asarray(p.numpy()) for p in parts]
    if len(arrays) == 1:
        return arrays[0]
    if any(a.ndim == 0 for a in arrays) or len({a.shape[1:] for a in arrays}) != 1:
        return value
    return np.concatenate(arrays, axis=0)


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
        return tf.nest.map_structure(lambda t: _whole_batch(t) if not hasattr(t, "numpy") else stats.to_numpy(t), data)
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
