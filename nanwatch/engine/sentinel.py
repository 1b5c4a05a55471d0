"""Fast mode's sentinel in a Keras train step: the gradients the step applies, their squared norms,
and an all-finite verdict with the update under `tf.cond(all finite)`; then, on the host, why a
step's verdict trips (None: healthy)."""

from __future__ import annotations

import contextlib
import weakref

import numpy as np

from . import stats
from .probe import paused_current
from .step_failure import WEIGHTS_WRITTEN

SQUARES_OVERFLOW = "finite gradients whose squares overflow float32"
# The variables whose gradients a traced train step returns, in order (per model).
_GRAD_VARIABLES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def grad_variables(model) -> list:
    return _GRAD_VARIABLES.get(model, [])


@contextlib.contextmanager
def capturing_gradients(model, skip_nonfinite=False):
    """While `train_step` is traced, take the gradients it applies: their squared norms
    (one fused `l2_loss` each), and with `skip_nonfinite` the fast-mode sentinel: the
    update runs under `tf.cond(all finite)`, so a non-finite step leaves weights and
    optimizer state as they were. A LossScaleOptimizer skips such steps itself."""
    import tensorflow as tf

    captured: dict = {"pairs": [], "sq": None, "ok": None}
    optimizer = getattr(model, "optimizer", None)
    if optimizer is None:
        yield captured
        return
    cls = type(optimizer)
    own = cls.__dict__.get("apply")
    original = cls.apply       # apply_gradients calls it; a custom train_step may call it directly
    scaled = hasattr(optimizer, "inner_optimizer")
    # weights the step writes outside the update (BatchNormalization's moving statistics): read here,
    # before the step's forward pass, checked with the update's and put back with them
    forward_written = [v for v in getattr(model, "non_trainable_variables", [])
                       if "float" in str(getattr(v, "dtype", ""))] if skip_nonfinite and not scaled else []
    forward_before = [tf.identity(v.value) for v in forward_written]

    def guarded(ok, run_update, weights, copies, grads_finite):
        """The update under `tf.cond(ok)`, then the weights it wrote (every copy `copies` names):
        non-finite (Adam with epsilon 0 divides 0 by 0 on a gradient that is finite) puts the
        step's weights back. Returns the verdict [gradients finite, squares finite, written
        finite]; `grads_finite` is only computed on a skipped step (a healthy step pays one check)."""
        def update():
            before = [tf.identity(v.value) for v in weights]
            run_update()
            with paused_current():
                sums = []
                for v in weights + forward_written:
                    for copy in copies(v):
                        with tf.device(copy.device):   # one scalar per device crosses, not the weights
                            sums.append(tf.reduce_sum(tf.cast(copy, tf.float32)))
                written_finite = tf.math.is_finite(tf.add_n(sums))

            def put_back():
                for var, value in zip(weights + forward_written, before + forward_before):
                    var.assign(value)
                return tf.constant([True, True, False])
            return tf.cond(written_finite, lambda: tf.constant([True, True, True]), put_back)

        def skipped():
            return tf.stack([grads_finite(), tf.constant(False), tf.constant(True)])

        with paused_current():
            return tf.cond(ok, update, skipped)

    def apply(opt, grads, trainable_variables=None):
        if trainable_variables is None:
            trainable_variables = getattr(opt, "_trainable_variables", [])
        pairs = list(zip(grads, trainable_variables))
        if opt is not optimizer:
            return original(opt, grads, trainable_variables)
        grads = [(g, v) for g, v in pairs if g is not None]
        replica = tf.distribute.get_replica_context()
        # any strategy but the default one merges to update (MirroredStrategy on one device too)
        distributed = replica is not None and tf.distribute.has_strategy()
        with paused_current():
            dense = [_dense(g) for g, _ in grads]
            # squared norms for the statistics; their sum is finite exactly when every gradient is
            # finite and no square overflows float32 (Adam-family optimizers square the gradient,
            # and a finite gradient above 1.8e19 overflows there): the one check of a healthy step
            sq = tf.stack([tf.nn.l2_loss(tf.cast(g, tf.float32)) for g in dense])
            ok = tf.math.is_finite(tf.reduce_sum(sq))

        def grads_finite():
            """Whether the gradients themselves are finite (a finite gradient of 1e20 has an
            overflowing square, which is no NaN): asked only once `ok` is false."""
            return tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(g)) for g in dense]))
        if not skip_nonfinite or scaled:
            captured["pairs"].extend(grads)
            with paused_current():   # a LossScaleOptimizer skips such steps itself: the verdict is for the record
                captured["sq"], captured["ok"] = sq, tf.stack([ok, ok])
            return original(opt, [g for g, _ in pairs], [v for _, v in pairs])
        weights = [v for _, v in grads]

        if not getattr(opt, "built", True) and hasattr(opt, "build"):
            # Build the optimizer's variables here, as its `apply` would on this call, rather than
            # inside the cond's branch: created in a branch, each variable's initializer is a cond
            # nested in ours, and tracing that cost 0.1-0.2 s more on a fresh model's first step.
            from keras.src import backend
            with backend.name_scope(opt.name, caller=opt):
                opt.build([v for _, v in pairs])
            opt.built = True

        if distributed:
            # Each replica has its own verdict on its own gradients; the optimizer applies in a
            # cross-replica merge. The verdicts are combined there, once, and the cond is taken there
            # (a cond in a replica's context around a merge_call is not supported), so every replica
            # skips or every replica applies: the mirrored weights cannot diverge.
            return replica.merge_call(merged, args=(sq, [g for g, _ in pairs], pairs, grads))
        captured["pairs"].extend(grads)
        captured["sq"] = sq
        captured["ok"] = guarded(ok, lambda: original(opt, [g for g, _ in pairs], [v for _, v in pairs]),
                                 weights, lambda v: [v.value], grads_finite)
        return captured["ok"][2]

    def merged(distribution, sq, all_grads, pairs, grads):
        """In the cross-replica merge, once per step: the replicas' verdicts and squares combined,
        the update run on every replica or on none. `all_grads`: each replica's gradients (PerReplica);
        `pairs` and `grads` (with a gradient) give the weights, the same on every replica."""
        weights = [v for _, v in grads]
        all_vars = [v for _, v in pairs]
        local_sq = distribution.experimental_local_results(sq)
        with paused_current():
            per_replica = tf.stack([tf.math.is_finite(tf.reduce_sum(s)) for s in local_sq])
            # the replicas' gradient norms summed, per variable: the applied (summed) gradient's norm
            # when the replicas' gradients point the same way, an upper bound of it otherwise
            norm = tf.add_n([tf.sqrt(2.0 * s) for s in local_sq])
            captured["sq"] = 0.5 * tf.square(norm)
        captured["pairs"].extend(grads)

        def grads_finite():
            local = [distribution.experimental_local_results(g) for g in all_grads if g is not None]
            return tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(_dense(part)))
                                           for parts in local for part in parts]))

        def run_update():
            distribution.extended.call_for_each_replica(original, args=(optimizer, all_grads, all_vars))
        flags = guarded(tf.reduce_all(per_replica), run_update, weights,
                        lambda v: distribution.experimental_local_results(v.value), grads_finite)
        with paused_current():
            # [gradients finite, squares finite, written finite, each replica's own verdict...]
            captured["ok"] = tf.concat([flags, per_replica], axis=0)
        return flags[2]

    cls.apply = apply
    try:
        yield captured
    finally:
        if own is None:
            del cls.apply
        else:
            cls.apply = own
        _GRAD_VARIABLES[model] = [v for _, v in captured["pairs"]]


def verdict_reason(kind, outputs, record, ok, scaled) -> str | None:
    """Why the fast-mode sentinel trips on this step's results (None: healthy)."""
    if ok is not None and not scaled:
        flags = [bool(v) for v in stats.to_numpy(ok)]
        grads_finite, squares_finite = flags[:2]
        if not grads_finite:
            return "non-finite gradients"
        if not squares_finite:
            return SQUARES_OVERFLOW
        if len(flags) > 2 and not flags[2]:
            return WEIGHTS_WRITTEN
    if kind == "predict":
        import tensorflow as tf
        for value in tf.nest.flatten(outputs):
            if not stats.all_finite(stats.to_numpy(value)):
                return "non-finite outputs"
        return None
    if record is not None:
        values = [record.get("loss")] + list(record.get("metrics", {}).values())
        if any(v is not None and not np.isfinite(v) for v in values):
            return "a non-finite loss or metric"
    return None


def replica_verdicts(strategy, outputs):
    """In the traced step, under a strategy: whether each replica's own step outputs (its loss and
    metrics, before they are reduced across replicas) are all finite, one flag per replica."""
    import tensorflow as tf

    leaves = [strategy.experimental_local_results(v) for v in tf.nest.flatten(outputs)]
    flags = []
    for r in range(strategy.num_replicas_in_sync):
        parts = [tf.reduce_all(tf.math.is_finite(local[r])) for local in leaves
                 if r < len(local) and getattr(local[r], "dtype", None) is not None and local[r].dtype.is_floating]
        flags.append(tf.reduce_all(tf.stack(parts)) if parts else tf.constant(True))
    return tf.stack(flags)


def replicas_to_replay(model, ok, logs_finite=None) -> list:
    """The replicas whose shard a tripped step's replay tries, in order: those whose own verdict
    failed first (the sentinel's flags after the third, and each replica's logs), then the others;
    [None] on one replica. The others are tried too: a replay on a finite shard finds nothing."""
    n = getattr(getattr(model, "distribute_strategy", None), "num_replicas_in_sync", 1)
    if n <= 1:
        return [None]
    own = [True] * n
    flags = [bool(v) for v in stats.to_numpy(ok)] if ok is not None else []
    if len(flags) >= 3 + n:
        own = flags[3:3 + n]
    logs = stats.to_numpy(logs_finite) if logs_finite is not None else None
    if logs is not None and logs.size == n:
        own = [a and bool(b) for a, b in zip(own, logs)]
    return [r for r in range(n) if not own[r]] + [r for r in range(n) if own[r]]


def _dense(grad):
    import tensorflow as tf
    if isinstance(grad, tf.IndexedSlices):
        return grad.values
    return grad
