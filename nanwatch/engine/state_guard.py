"""Fast mode's check of the Keras state a user's `tf.function` step captures.

After each call of the user's step, the weights and optimizer slots it writes must be finite, and a
harmful call must be undone. Reading every variable to the host (`v.numpy()`) and keeping those copies
cost 5x a small MLP's step (bench/bench_custom_loop.py). Here traced code of ours reduces every
variable, and the step's float outputs, to all-finite flags read to the host together: one read per call.

The step is traced before its first watched call; from then on the check runs inside the same call
as the step (`call`): a function of ours calls the user's traced step and then checks, so a step
costs one function call, not two (a second eager call of a small function costs ~0.2-0.4 ms, a third
of a small MLP's step). Before the step, that function copies the state into variables of ours (the
shadows), so a harmful call is put back from them (`before`). The copy is made before the step's
writes and finished before they start: keeping a read of a weight alive across its next in-place
update would instead make TensorFlow copy it into a freshly allocated buffer on every update (a
side measurement on two workers, a 4-512x3-1 MLP: 1.12x plain with the kept read, 1.08x with the
shadows). The shadows hold their copy only while a watch runs (`release`).

A step that draws its batch from an iterator it is given (`train_step(iterator)`,
the form of TensorFlow's multi-worker guide) has its body traced in our function with the iterator
wrapped (`Drawn`): the batches it draws come back with the result, so a harmful call can be replayed
on them (`Replayed`).
"""

from __future__ import annotations

import weakref
from typing import NamedTuple

from .direct_call import DirectCalls, is_iterator


class StateGuard:
    """The all-finite flag of a fixed list of variables, checked in the same traced call as the step,
    and their values before that call (or a snapshot from one traced call, for a step not fused)."""

    def __init__(self, variables: list, step=None, fuse: bool = True, agreement=None, split=None):
        import tensorflow as tf
        self.variables = list(variables)
        # several workers (engine/distributed.py, `worker_split`): the variables the step writes from this
        # worker's own values, and whether its float outputs are its own; the rest is the same on every worker
        own = {id(v) for v in (split.local if split is not None else ())}
        self.local = [id(v) in own for v in self.variables]
        self.local_outputs = bool(split is not None and split.outputs_differ)
        self._shared = shared_variables = [v for v, mine in zip(self.variables, self.local) if not mine]
        self._own = local_variables = [v for v, mine in zip(self.variables, self.local) if mine]

        def check_and_snapshot():
            # one read per variable serves both; the flag is the finiteness of the sum of sums (a NaN or an
            # infinity anywhere makes it non-finite): two ops per variable, not four (each op costs ~5 us of
            # a small step). A sum can also overflow on finite values: `_finite` confirms a False exactly.
            values = [tf.convert_to_tensor(v) for v in self.variables]
            return all_finite(values), values

        def all_finite(values):
            sums = [tf.reduce_sum(t if t.dtype == tf.float32 else tf.cast(t, tf.float32))
                    for t in values if t.dtype.is_floating]
            return tf.math.is_finite(tf.add_n(sums)) if sums else tf.constant(True)

        def verdict(result, agreement_made):
            """[shared weights and slots finite, float outputs finite, any worker's flag up, this worker's own
            variables finite]: one read to the host."""
            outputs = [t for t in tf.nest.flatten(result) if isinstance(t, tf.Tensor) and t.dtype.is_floating]
            return tf.stack([all_finite([tf.convert_to_tensor(v) for v in shared_variables]), all_finite(outputs),
                             agreement_made > 0, all_finite([tf.convert_to_tensor(v) for v in local_variables])])

        traced = tf.function(check_and_snapshot, autograph=False)
        traced._nanwatch_own = True     # engine/functions.py leaves our own functions alone
        # called as a concrete function: no argument dispatch on every step (it takes none)
        self._concrete = traced.get_concrete_function()
        self._fused = self._drawing = None
        # the step is held weakly: this guard is kept per step across watches (engine/functions.py), and
        # must not keep the step (or the object whose method it is) alive
        self._step = weakref.ref(step) if step is not None else lambda: None
        step_of = self._step
        # several workers (engine/distributed.py): a flag of this worker's, agreed by all in the same call
        self._agrees = agreement is not None and step is not None and fuse
        self._flags = (tf.constant(0.0), tf.constant(1.0))

        def agreed(flag):
            return agreement(flag) if self._agrees else flag

        self._shadows = _shadows(self.variables) if step is not None and fuse else []
        shadows = self._shadows

        def kept():
            """The state as the call finds it, copied into the shadows; the step waits for the copies."""
            return [s.assign(tf.convert_to_tensor(v), read_value=False) for s, v in zip(shadows, self.variables)]

        if step is not None and fuse:
            def step_then_check(nanwatch_flag, *args, **kwargs):   # named apart from the step's own keywords
                # the check's reads come after the step's writes: automatic control dependencies order the
                # ops on each variable as the code orders them. The flag's collective is finished before the
                # step starts: run beside the step it competed with the step's own all-reduce (side
                # measurement, two workers, 4-512x3-1 MLP: +0.06x beside, +0.02x before; after the step
                # it cost a small MLP +0.19x)
                agreement_made = agreed(nanwatch_flag)
                with tf.control_dependencies(kept() + [agreement_made]):
                    result = step_of()(*args, **kwargs)
                return result, verdict(result, agreement_made)
            fused = tf.function(step_then_check, autograph=False)
            fused._nanwatch_own = True
            self._fused = DirectCalls(fused)
            if getattr(step, "python_function", None) is not None:
                def draw_step_then_check(nanwatch_flag, *args, **kwargs):
                    agreement_made = agreed(nanwatch_flag)
                    drawn: list = []
                    args, kwargs = _wrapped(args, kwargs, lambda it: Drawn(it, drawn))
                    with tf.control_dependencies(kept() + [agreement_made]):
                        # the step's own body, traced here (autograph on)
                        result = step_of().python_function(*args, **kwargs)
                    graph = tf.compat.v1.get_default_graph()
                    # a batch drawn inside a loop of the graph cannot leave it: then none is returned, and the
                    # verdict says so (a fact of this trace: another kind of argument may trace another way)
                    complete = all(getattr(t, "graph", graph) is graph
                                   for t in tf.nest.flatten(drawn, expand_composites=True))
                    checks = tf.concat([verdict(result, agreement_made), tf.constant([complete])], 0)
                    return result, checks, drawn if complete else []
                drawing = tf.function(draw_step_then_check, autograph=True)
                drawing._nanwatch_own = True
                self._drawing = DirectCalls(drawing)

    def read(self) -> tuple:
        """(all finite?, snapshot of the values)."""
        ok, values = self._concrete()
        return _finite(ok, values), values

    def call(self, args, kwargs, flag: bool = False) -> "Checked | None":
        """The step called on `args` and checked after it, in one call (`Checked`). The state before the
        call is then `before()`.
        None when the arguments cannot be passed through a function of ours (then never again: the
        caller calls the step and `read`s)."""
        drawn = None
        flag_in = self._flags[bool(flag)]
        try:
            if self._drawing is not None and draws_from_iterator(args, kwargs):
                result, verdict, drawn = self._drawing(flag_in, *args, **kwargs)
            else:
                result, verdict = self._fused(flag_in, *args, **kwargs)
        except (TypeError, ValueError):   # raised while tracing ours, before anything ran
            self._fused = self._drawing = None
            return None
        state_ok, outputs_ok, agreed, local_ok, *complete = (bool(x) for x in verdict.numpy())
        drawn = drawn if complete and complete[0] else None     # every batch the call drew kept (drawing only)
        if not outputs_ok:        # confirmed value by value, as `_finite` does for the state
            outputs_ok = _finite_outputs(result)
        return Checked(result, state_ok or _values_finite(self._shared), outputs_ok, drawn, agreed,
                       local_ok or _values_finite(self._own))

    def before(self) -> list:
        """The state as the last fused call found it (copied before its step ran)."""
        import tensorflow as tf
        return [tf.identity(s) for s in self._shadows]

    def release(self) -> None:
        """Empty the shadows (a watch ended): no copy of the user's state stays behind. The next
        fused call fills them again."""
        import tensorflow as tf
        for s in self._shadows:
            s.assign(tf.zeros([0], s.dtype), read_value=False)

    def serves(self, step) -> bool:
        """Is this the check made for `step` (not for another function that had the same id)?"""
        return self._step() is step

    @property
    def direct_calls(self) -> int:
        """Fused calls that went straight to their trace, without the function's dispatch."""
        return sum(calls.direct for calls in (self._fused, self._drawing) if calls is not None)

    @property
    def fused(self) -> bool:
        return self._fused is not None

    @property
    def splits(self) -> bool:
        """Are some of its checked values each worker's own (its outputs, or variables it writes)?"""
        return self.local_outputs or any(self.local)

    @property
    def agreeing(self) -> bool:
        """Does each call agree, among the workers, on the flag it is given?"""
        return self._agrees and self._fused is not None


class Checked(NamedTuple):
    """One fused call of a step: its result and the verdict read after it."""
    result: object
    state_ok: bool          # the weights and slots (those the same on every worker) all finite
    outputs_ok: bool        # its float outputs all finite
    drawn: list | None      # the batches it drew from an iterator argument, or None
    agreed: bool            # the workers' agreement on the flag passed: did any worker pass True? (else the flag)
    local_ok: bool          # the variables it writes from this worker's own values all finite (True if none)


def _finite(flag, values) -> bool:
    """The traced flag, a False confirmed value by value (finite values whose sum overflowed are finite)."""
    return bool(flag.numpy()) or _values_finite(values)


def _values_finite(values) -> bool:
    import numpy as np
    import tensorflow as tf
    values = [tf.convert_to_tensor(v) for v in values]
    return all(bool(np.isfinite(t.numpy()).all()) for t in values if t.dtype.is_floating)


def _finite_outputs(result) -> bool:
    """The float tensors a call returned, checked on the host (its traced flag said no)."""
    from . import stats
    import tensorflow as tf
    return all(stats.all_finite(stats.to_numpy(t)) for t in tf.nest.flatten(result)
               if isinstance(t, tf.Tensor) and t.dtype.is_floating)


def _shadows(variables) -> list:
    """A variable of ours per variable, on its device, empty until a call copies the state in. Made as
    plain resource variables: under a strategy's scope, `tf.Variable` would make mirrored ones (and, on
    several workers, a collective to initialise them). Their shape is left open, so `release` can empty them."""
    import tensorflow as tf
    from tensorflow.python.ops import resource_variable_ops
    out = []
    with tf.init_scope():
        for v in variables:
            with tf.device(getattr(v, "device", None) or None):
                out.append(resource_variable_ops.ResourceVariable(
                    tf.zeros([0], v.dtype.base_dtype), shape=tf.TensorShape(None), trainable=False,
                    name="nanwatch_before"))
    return out


def draws_from_iterator(args, kwargs) -> bool:
    """Does the call take an iterator it draws its batch from (`train_step(iterator)`, `next` inside)?"""
    return any(is_iterator(a) for a in list(args) + list(kwargs.values()))


def _wrapped(args, kwargs, wrap) -> tuple:
    """The call's arguments with every iterator wrapped."""
    return ([wrap(a) if is_iterator(a) else a for a in args],
            {k: wrap(v) if is_iterator(v) else v for k, v in kwargs.items()})


class Drawn:
    """An iterator as the user's step sees it inside our trace: each batch it draws is kept."""

    def __init__(self, iterator, kept: list):
        self._iterator, self._kept = iterator, kept

    def __iter__(self):
        return self

    def __next__(self):
        batch = next(self._iterator)
        self._kept.append(batch)
        return batch

    def get_next(self, *args, **kwargs):
        batch = self._iterator.get_next(*args, **kwargs)
        self._kept.append(batch)
        return batch

    def __getattr__(self, name):
        return getattr(self._iterator, name)


class Replayed:
    """An iterator that gives again the batches a call drew, in order (for the eager replay of that call)."""

    def __init__(self, iterator, batches: list):
        self._iterator, self._batches = iterator, list(batches)

    def __iter__(self):
        return self

    def __next__(self):
        if not self._batches:
            raise StopIteration
        return self._batches.pop(0)

    def get_next(self, *args, **kwargs):
        return next(self)

    def __getattr__(self, name):
        return getattr(self._iterator, name)


def replaying(args, kwargs, batches) -> tuple:
    """The call's arguments with its iterator replaced by the batches it drew."""
    return _wrapped(args, kwargs, lambda it: Replayed(it, batches))
