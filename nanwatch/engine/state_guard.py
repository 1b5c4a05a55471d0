"""Fast mode's check of the Keras state a user's `tf.function` step captures.

After each call of the user's step, the weights and optimizer slots it writes must be finite, and a
harmful call must be undone. Reading every variable to the host (`v.numpy()`) and keeping those copies
cost 5x a small MLP's step (bench/bench_custom_loop.py). Here traced code of ours reduces every
variable to a single all-finite flag and returns a snapshot of the values (tensors that stay on the
variables' devices; reading a resource variable shares its buffer until the next write): one scalar
crosses to the host per call, and the snapshot puts the state back when a later call turns out harmful.

Once the step's variables are known (after its first watched call), the check runs inside the same
call as the step (`call`): a function of ours calls the user's traced step and then checks, so a step
costs one function call, not two (a second eager call of a small function costs ~0.2-0.4 ms, a third
of a small MLP's step).
"""

from __future__ import annotations


class StateGuard:
    """The all-finite flag and a snapshot of a fixed list of variables, from one traced call."""

    def __init__(self, variables: list, step=None):
        import tensorflow as tf
        self.variables = list(variables)
        checked = [v for v in self.variables if v.dtype.is_floating]

        def check_and_snapshot():
            flags = [tf.reduce_all(tf.math.is_finite(v)) for v in checked]
            ok = tf.reduce_all(tf.stack(flags)) if flags else tf.constant(True)
            return ok, [tf.identity(v) for v in self.variables]

        traced = tf.function(check_and_snapshot, autograph=False)
        traced._nanwatch_own = True     # engine/functions.py leaves our own functions alone
        # called as a concrete function: no argument dispatch on every step (it takes none)
        self._concrete = traced.get_concrete_function()
        self._fused = None
        if step is not None:
            def step_then_check(*args, **kwargs):
                # the reads come after the step's writes: automatic control dependencies order the
                # ops on each variable as the code orders them
                return step(*args, **kwargs), check_and_snapshot()
            self._fused = tf.function(step_then_check, autograph=False)
            self._fused._nanwatch_own = True

    def read(self) -> tuple:
        """(all finite?, snapshot of the values)."""
        ok, values = self._concrete()
        return bool(ok.numpy()), values

    def call(self, args, kwargs) -> tuple:
        """The step called on `args` and checked after it, in one call: (its result, all finite?, snapshot).
        None when the arguments cannot be passed through a function of ours (then never again: the
        caller calls the step and `read`s)."""
        try:
            result, (ok, values) = self._fused(*args, **kwargs)
        except (TypeError, ValueError):   # raised while tracing ours, before anything ran
            self._fused = None
            return None
        return result, bool(ok.numpy()), values

    @property
    def fused(self) -> bool:
        return self._fused is not None

    def restore(self, values) -> None:
        """Put the variables back to a snapshot."""
        for var, value in zip(self.variables, values):
            var.assign(value)
