"""Fast mode's check of the Keras state a user's `tf.function` step captures, in one call of our own.

After each call of the user's step, the weights and optimizer slots it writes must be finite, and a
harmful call must be undone. Reading every variable to the host (`v.numpy()`) and keeping those copies
cost 5x a small MLP's step (bench/bench_custom_loop.py). Here one traced function of ours reduces every
variable to a single all-finite flag and returns a snapshot of the values (tensors that stay on the
variables' devices; reading a resource variable shares its buffer until the next write): one scalar
crosses to the host per call, and the snapshot puts the state back when a later call turns out harmful.
"""

from __future__ import annotations


class StateGuard:
    """The all-finite flag and a snapshot of a fixed list of variables, from one traced call."""

    def __init__(self, variables: list):
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

    def read(self) -> tuple:
        """(all finite?, snapshot of the values)."""
        ok, values = self._concrete()
        return bool(ok.numpy()), values

    def restore(self, values) -> None:
        """Put the variables back to a snapshot."""
        for var, value in zip(self.variables, values):
            var.assign(value)
