"""One device->host read per Keras step: what nanwatch needs from a step, packed in its graph.

A step's record and the fast-mode verdict need the scalar logs (loss, metrics), the per-variable
gradient sums of squares and the sentinel's flags. Read one by one, that was 2 + one per log reads
per step (4 for a model with one metric), and on a GPU each read waits for the device. The traced
step packs them into one float64 vector, [n_logs, n_sq, n_ok, logs..., sq..., flags...], read once
(`unpack`). The log names stay on the host (per model and kind, written when the step is traced).
"""

from __future__ import annotations

import weakref

import numpy as np

PACK_KEY = "__nanwatch_pack__"
_LOG_NAMES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()   # model -> {kind: [log names]}


def pack(model, kind, logs, sq, ok):
    """In the traced step: the one vector (float64: exact for float32 logs and counts)."""
    import tensorflow as tf

    names, parts = [], []
    for name, value in (logs.items() if isinstance(logs, dict) else ()):
        dtype = getattr(value, "dtype", None)
        shape = getattr(value, "shape", None)
        if dtype is None or shape is None or not (dtype.is_floating or dtype.is_integer or dtype.is_bool):
            continue
        if shape.num_elements() != 1:
            continue   # not a scalar: the step record leaves it out
        names.append(name)
        parts.append(tf.reshape(tf.cast(value, tf.float64), [1]))
    tail = [tf.reshape(tf.cast(t, tf.float64), [-1]) for t in (sq, ok) if t is not None]
    sizes = [t.shape.num_elements() if t is not None else 0 for t in (sq, ok)]
    if any(t is not None and n is None for t, n in zip((sq, ok), sizes)):
        return None   # a dynamic size: the layout would be unknown on the host
    header = tf.constant([len(names)] + [n if t is not None else 0 for t, n in zip((sq, ok), sizes)], tf.float64)
    _LOG_NAMES.setdefault(model, {})[kind] = names
    return tf.concat([header] + parts + tail, axis=0)


def unpack(model, kind, packed):
    """(logs {name: float}, sq or None, ok as bools or None) from one read; None when the layout is
    not the one traced (the caller then reads the tensors one by one)."""
    arr = packed.numpy()   # the step's one device->host read
    n_logs, n_sq, n_ok = (int(v) for v in arr[:3])
    names = _LOG_NAMES.get(model, {}).get(kind)
    if names is None or len(names) != n_logs or arr.size != 3 + n_logs + n_sq + n_ok:
        return None
    values = arr[3:3 + n_logs]
    logs = {name: float(v) for name, v in zip(names, values)}
    sq = arr[3 + n_logs:3 + n_logs + n_sq] if n_sq else None
    ok = arr[3 + n_logs + n_sq:] > 0.5 if n_ok else None
    return logs, sq, ok


__all__ = ["PACK_KEY", "pack", "unpack"]
