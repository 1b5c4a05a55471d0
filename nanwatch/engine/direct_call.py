"""Calls of nanwatch's own `tf.function`s (the fused step and check, engine/state_guard.py) that go
straight to the traced graph the function chose before for the same kind of arguments.

A `tf.function` call first finds its trace for the arguments (TensorFlow hashes and compares the
arguments' and captures' types on every call): ~0.4 ms on this machine, a third of a small MLP's
step (bench/bench_custom_loop.py), paid on every call. Here the first call with a kind of arguments
goes through the function (tracing, dispatch, a first call's variable creation: all TensorFlow's);
later calls with the same kind call the concrete function it used. The kind is a cheap key: each
tensor's dtype and shape (and device, for a strategy's per-replica values), each Python scalar's type
and value, and the identity of an iterator (held weakly), with the calling context TensorFlow's own
dispatch keys on (a strategy's scope, a replica's context, ...); any other argument gives no key and
the call goes through the function, as before.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict

_KEPT = 8      # kinds of arguments remembered per function (a last, smaller batch is a second kind)


class DirectCalls:
    """One function's concrete functions by kind of arguments."""

    def __init__(self, function):
        self.function = function
        # key -> [concrete function, weak refs the key needs, the tensors in its input order (None: not asked yet)]
        self._concrete: OrderedDict = OrderedDict()
        self.direct = 0        # calls that went straight to a trace

    def __call__(self, *args, **kwargs):
        refs: list = []
        key = self._key(args, kwargs, refs)
        if key is not None:
            hit = self._concrete.get(key)
            if hit is not None and all(ref() is not None for ref in hit[1]):
                self.direct += 1
                concrete = hit[0]
                if hit[2] is None:
                    hit[2] = _flat_in_input_order(concrete, args, kwargs)
                if hit[2]:
                    # the tensors straight in: the concrete function's own binding of the arguments (~0.1 ms
                    # on this machine) gives the same list, checked on this kind's first direct call
                    return concrete._call_flat(_tensors(args, kwargs), concrete.captured_inputs)
                return concrete(*args, **kwargs)
        result = self.function(*args, **kwargs)
        if key is not None:
            try:      # a lookup now: the call above traced it if it was new
                concrete = self.function.get_concrete_function(*args, **kwargs)
            except Exception:     # the call ran: its result stands, only the shortcut is not taken
                return result
            self._concrete[key] = [concrete, refs, None]
            while len(self._concrete) > _KEPT:
                self._concrete.popitem(last=False)
        return result

    @staticmethod
    def _key(args, kwargs, refs: list):
        """The call's kind with its calling context, or None: go through the function (also while
        `tf.config.run_functions_eagerly(True)` has functions run as Python)."""
        import tensorflow as tf
        if tf.config.functions_run_eagerly():
            return None
        key = call_key((args, kwargs), refs)
        context = _calling_context() if key is not None else None
        return None if context is None else (context, key)


def _calling_context():
    """What besides the arguments makes a `tf.function` choose another trace: the context TensorFlow's
    own dispatch keys on (in a strategy's scope or a replica's, the device, a SavedModel export, ...).
    None when TensorFlow no longer has it where we look (then no call is made directly)."""
    try:
        from tensorflow.python.eager.polymorphic_function import function_context
        return function_context.make_function_context()
    except Exception:
        return None


def _tensors(args, kwargs) -> list:
    """The call's tensors, composites (a strategy's per-replica values, an iterator) taken apart."""
    import tensorflow as tf
    return [t for t in tf.nest.flatten((args, kwargs), expand_composites=True) if isinstance(t, tf.Tensor)]


def _flat_in_input_order(concrete, args, kwargs) -> bool:
    """Are the call's tensors, taken apart in `_tensors`' order, the very inputs the concrete function
    binds them to (same objects, same order)? Else (a numpy batch converted, another order, a
    TensorFlow without these internals) its calls bind the arguments themselves."""
    try:
        from tensorflow.python.eager.polymorphic_function import function_type_utils
        bound = function_type_utils.canonicalize_function_inputs(args, kwargs, concrete.function_type)
        expected = concrete.function_type.unpack_inputs(bound)
        mine = _tensors(args, kwargs)
        return hasattr(concrete, "_call_flat") and len(expected) == len(mine) \
            and all(a is b for a, b in zip(expected, mine))
    except Exception:       # an internal API that moved: the public call
        return False


def call_key(value, refs: list):
    """The kind of a call's arguments as a `tf.function` traces them, or None when it is not cheap to
    tell (the call then goes through the function). `refs` collects weak references to the objects
    the key names by identity."""
    import numpy as np
    import tensorflow as tf
    if isinstance(value, (tuple, list)):
        parts = tuple(call_key(v, refs) for v in value)
        return None if None in parts else (type(value), parts)
    if isinstance(value, dict):
        parts = tuple((k, call_key(v, refs)) for k, v in sorted(value.items(), key=lambda kv: repr(kv[0])))
        return None if any(p is None for _, p in parts) else (type(value), parts)
    if isinstance(value, tf.Tensor):       # (a tf.Variable is no tf.Tensor: no key)
        if not hasattr(value, "numpy"):
            return None                    # a symbolic tensor: not an eager call
        return ("tensor", value.dtype, tuple(value.shape))
    if isinstance(value, np.ndarray):
        return ("array", value.dtype.str, value.shape)
    if value is None or isinstance(value, (bool, int, float, str)):
        return ("value", type(value), value)
    values = getattr(value, "values", None)
    if type(value).__name__ == "PerReplica" and isinstance(values, tuple):
        parts = tuple(("tensor", v.dtype, tuple(v.shape), v.device) if isinstance(v, tf.Tensor) else None
                      for v in values)
        return None if None in parts else (type(value), parts)
    if is_iterator(value):                # this one
        try:
            refs.append(weakref.ref(value))
        except TypeError:
            return None
        return ("iterator", type(value), id(value))
    return None


def is_iterator(value) -> bool:
    """An iterator a step draws its batch from (`tf.data`'s or a strategy's distributed one)."""
    return hasattr(value, "get_next") and hasattr(value, "__next__")
