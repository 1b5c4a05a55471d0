"""Keras 3 hooks for a watched cell: fresh, un-jitted, observed step functions.

Instrumentation only reaches functions traced while the probe is on, so each
model used in the cell gets new train/test/predict functions, built here, and
its old ones back afterwards. Our step function keeps the batch it ran (for
replay and data rows), checks it for non-finite values before the step, and
returns per-variable gradient norms beside the logs (stripped before Keras
sees them). The patches live on the TensorFlow trainer class only for the
duration of the cell.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
import weakref

import numpy as np

from . import stats

_GRAD_KEY = "__nanwatch_grad_sq__"   # per-variable sum(g**2)/2, beside the logs
_OK_KEY = "__nanwatch_finite__"       # fast mode: were all gradients finite


# Traced step functions per model, kept across watched cells: re-tracing every cell would cost
# the tracing time again and, as TensorFlow keeps each retired function graph, memory per cell.
_TRACED: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
# The variables whose gradients a traced train step returns, in order (per model).
_GRAD_VARIABLES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def grad_variables(model) -> list:
    return _GRAD_VARIABLES.get(model, [])


def _session():
    from ..session import active_session
    return active_session()


def _compile_token(model, kind, flavour):
    """What a cached step function depends on: recompiling gives new loss/metric/optimizer objects."""
    return (kind, flavour, bool(getattr(model, "run_eagerly", False)), id(getattr(model, "optimizer", None)),
            id(getattr(model, "_compile_loss", None)), id(getattr(model, "_compile_metrics", None)))


def _trainer_class():
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer
    return TensorFlowTrainer


class _Callback:
    """Keras callback that tells the session which epoch it is (created lazily: needs keras)."""

    @staticmethod
    def make(session):
        import keras

        class NanwatchCallback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                session.epoch = epoch

        return NanwatchCallback()


class KerasHooks:
    """Patches `TensorFlowTrainer` for one watched cell and undoes it afterwards."""

    def __init__(self, session):
        self.session = session
        self._saved_class_attrs: dict = {}
        self._saved_models: dict = {}      # id(model) -> (model, {attr: old value})
        self._built: dict = {}             # (id(model), kind) -> our function
        self._plain: dict = {}             # (id(model), kind) -> uninstrumented function
        self._capture = threading.local()
        self.layer_of_variable: dict = {}  # id(variable) -> (layer name, variable name)
        self.models: list = []

    # --- install / uninstall ---------------------------------------------------------------
    def install(self):
        cls = _trainer_class()
        for name in ("make_train_function", "make_test_function", "make_predict_function",
                     "fit", "evaluate", "predict"):
            self._saved_class_attrs[name] = cls.__dict__.get(name)
        hooks = self

        def make(kind):
            attr = {"train": "train_function", "test": "test_function", "predict": "predict_function"}[kind]

            def make_function(model, force=False):
                key = (id(model), kind)
                if key not in self._built or force:
                    hooks._remember(model)
                    self._built[key] = hooks._build(model, kind)
                setattr(model, attr, self._built[key])
                return self._built[key]
            return make_function

        cls.make_train_function = make("train")
        cls.make_test_function = make("test")
        cls.make_predict_function = make("predict")
        for call in ("fit", "evaluate", "predict"):
            setattr(cls, call, self._wrap_call(call, self._saved_class_attrs[call]))

    def uninstall(self):
        cls = _trainer_class()
        for name, value in self._saved_class_attrs.items():
            if value is None:
                if name in cls.__dict__:
                    delattr(cls, name)
            else:
                setattr(cls, name, value)
        self._saved_class_attrs.clear()
        for model, attrs in self._saved_models.values():
            for attr, value in attrs.items():
                try:
                    object.__setattr__(model, attr, value)
                except Exception:
                    setattr(model, attr, value)
        self._saved_models.clear()
        self._built.clear()
        self._plain.clear()

    # --- per model ---------------------------------------------------------------------------
    def _remember(self, model):
        if id(model) in self._saved_models:
            return
        self._saved_models[id(model)] = (model, {
            "train_function": getattr(model, "train_function", None),
            "test_function": getattr(model, "test_function", None),
            "predict_function": getattr(model, "predict_function", None),
        })
        self.models.append(model)
        if getattr(model, "jit_compile", False) and not getattr(model, "run_eagerly", False):
            self.session.note(f"model '{model.name}' has jit_compile=True: nanwatch ran it un-jitted for this cell "
                              "(debug checks have no XLA kernels); the setting is unchanged afterwards.")
        self._map_variables(model)
        self.session.on_model(model)

    def _map_variables(self, model):
        """Each variable -> the layer the user put in the model (an RNN, not its inner cell;
        a custom layer, not the Dense inside it); nested models are opened up."""
        for layer in _user_layers(model):
            self.session.cells.user_layers.add(id(layer))
            for var in getattr(layer, "variables", []):
                self.layer_of_variable.setdefault(id(var), (layer.name, _short_name(var)))
        try:
            every = list(model._flatten_layers(include_self=False, recursive=True))
        except Exception:
            every = list(getattr(model, "layers", []))
        self.session.layer_names.update(layer.name for layer in every)

    def _wrap_call(self, call, original):
        session = self.session

        def wrapped(model, *args, **kwargs):
            try:
                bound = inspect.signature(original).bind(model, *args, **kwargs)
            except TypeError:
                return original(model, *args, **kwargs)
            arguments = bound.arguments
            callbacks = arguments.get("callbacks")
            if callbacks is None or isinstance(callbacks, (list, tuple)):
                arguments["callbacks"] = list(callbacks or []) + [_Callback.make(session)]
            self._remember(model)
            session.enter_call(model, call, arguments.get("x"), arguments.get("y"))
            try:
                return original(*bound.args, **bound.kwargs)
            finally:
                session.exit_call()

        wrapped.__name__ = call
        wrapped.__doc__ = getattr(original, "__doc__", None)
        wrapped.__wrapped__ = original
        return wrapped

    # --- the step functions ------------------------------------------------------------------
    def mode_for(self, model) -> str:
        """exact or fast for this model's steps (fast cannot serve some set-ups: say why)."""
        wanted = self.session.options.mode
        if wanted == "exact":
            return "exact"
        reason = None
        if getattr(model, "run_eagerly", False):
            reason = "the model runs eagerly (run_eagerly=True)"
        elif getattr(getattr(model, "distribute_strategy", None), "num_replicas_in_sync", 1) > 1:
            reason = "a distribution strategy with several replicas"
        if reason:
            self.session.note(f"fast mode cannot serve model '{model.name}' ({reason}): it ran in exact mode.")
            return "exact"
        return "fast"

    def _build(self, model, kind, flavour=None):
        """A step function: "exact" (every op checked), "fast" (sentinel only) or "plain" (no checks)."""
        import tensorflow as tf

        flavour = flavour or self.mode_for(model)
        hooks = self

        traced, traced_fetch = self._traced(model, kind, flavour)
        if flavour == "plain":
            return traced
        self.session.used_mode(flavour)
        session = self.session

        if kind == "predict":
            def predict_function(batches):
                outputs = None
                for data in batches:
                    out = hooks._run_step(model, kind, traced, data, flavour)
                    outputs = out if outputs is None else tf.nest.map_structure(
                        lambda a, b: tf.concat([a, b], axis=0), outputs, out)
                return outputs
            return predict_function

        def function(iterator):
            outputs = None
            for _ in range(max(1, int(getattr(model, "steps_per_execution", 1) or 1))):
                continuing = session.detection is not None and not session.options.stop
                if traced_fetch is not None and not continuing and isinstance(iterator, tf.data.Iterator):
                    try:
                        out, data = traced_fetch(iterator)
                    except tf.errors.OutOfRangeError:
                        break
                    outputs = hooks._finish_step(model, kind, session.begin_step(model, kind), out, data, flavour)
                    continue
                with session.probe_detached():
                    data = _next_batch(iterator)
                if data is None:
                    break
                outputs = hooks._run_step(model, kind, traced, data, flavour)
            if outputs is None:
                raise StopIteration
            return outputs
        return function

    def _traced(self, model, kind, flavour):
        """(step on a batch, fetch-and-step on an iterator or None): cached per model."""
        import tensorflow as tf
        from keras.src.backend.tensorflow.trainer import reduce_per_replica

        cache = _TRACED.setdefault(model, {})
        token = _compile_token(model, kind, flavour)
        if token in cache:
            return cache[token]
        step_fn = {"train": model.train_step, "test": model.test_step, "predict": model.predict_step}[kind]
        strategy = model.distribute_strategy
        sentinel = flavour == "fast"

        @tf.autograph.experimental.do_not_convert
        def one_step_on_data(data):
            with _capturing_gradients(model, skip_nonfinite=sentinel) as captured:
                outputs = strategy.run(step_fn, args=(data,))
            outputs = reduce_per_replica(outputs, strategy, reduction="concat" if kind == "predict" else "auto")
            if kind == "train" and captured.get("sq") is not None:
                outputs = dict(outputs) if isinstance(outputs, dict) else {"outputs": outputs}
                outputs[_GRAD_KEY] = captured["sq"]
                if sentinel:
                    outputs[_OK_KEY] = captured["ok"]
            return outputs

        def trace(fn):
            if getattr(model, "run_eagerly", False):
                return fn
            return tf.function(fn, reduce_retracing=True, jit_compile=False)

        on_data = one_step_on_data
        if hasattr(model, "_autoconvert_optionals"):
            on_data = model._autoconvert_optionals(on_data)

        @tf.autograph.experimental.do_not_convert
        def fetch_and_step(iterator):
            """Fast mode: the batch is fetched inside the graph, as Keras does, and handed back."""
            data = iterator.get_next()
            return on_data(data), data

        traced = trace(on_data)
        traced_fetch = trace(fetch_and_step) if flavour == "fast" and kind != "predict" else None
        if flavour != "exact":
            # Traced and run with the op callback off: no per-op checks inside, no per-op cost.
            traced = _Unchecked(traced)
            traced_fetch = _Unchecked(traced_fetch) if traced_fetch else None
        cache[token] = (traced, traced_fetch)
        return cache[token]

    def _run_step(self, model, kind, traced, data, flavour):
        """One step: run it, catch what went non-finite, record stats.

        exact: the batch is checked in numpy first, every op in the graph is checked.
        fast: nothing per op; the sentinel's verdict (gradients, loss, metrics, outputs)
        is read after the step, and only a tripped step gets the batch check and the replay.
        """
        import tensorflow as tf

        session = self.session
        step = session.begin_step(model, kind)
        fn = traced
        if session.detection is not None and not session.options.stop:
            fn, flavour = self._plain_function(model, kind), "plain"
        elif flavour == "exact":
            session.check_batch(model, kind, data, step)
        try:
            if flavour == "exact":
                with session.probe.graph_only():
                    outputs = fn(data)
            else:
                outputs = fn(data)
        except tf.errors.InvalidArgumentError as exc:
            detection = session.probe.detection_from_error(exc)
            if detection is None:
                raise
            session.on_graph_failure(model, kind, data, detection, step)  # raises NonFiniteFound when stopping
            outputs, flavour = self._plain_function(model, kind)(data), "plain"
        return self._finish_step(model, kind, step, outputs, data, flavour)

    def _finish_step(self, model, kind, step, outputs, data, flavour):
        """Statistics of a step that ran; in fast mode, the sentinel's verdict."""
        session = self.session
        outputs, grad_sq, ok = _split_extras(outputs)
        record = session.end_step(model, kind, step, outputs, grad_sq)
        if flavour == "fast":
            loss_scaled = hasattr(getattr(model, "optimizer", None), "inner_optimizer")
            reason = _sentinel_trip(kind, outputs, record, ok, loss_scaled)
            if reason and session.on_sentinel_trip(model, kind, data, step, reason,
                                                   update_skipped=ok is not None and not loss_scaled,
                                                   alarm=reason != SQUARES_OVERFLOW):
                # --no-stop: apply the skipped step unchecked, as the user's own run would have
                outputs, _, _ = _split_extras(self._plain_function(model, kind)(data))
        return outputs

    def _plain_function(self, model, kind):
        """The step without checks: for `--no-stop` after the first non-finite value, and to
        apply a step the sentinel skipped when the replay found nothing."""
        key = (id(model), kind)
        if key not in self._plain:
            self._plain[key] = self._build(model, kind, flavour="plain")
        return self._plain[key]


@contextlib.contextmanager
def _capturing_gradients(model, skip_nonfinite=False):
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
    own = cls.__dict__.get("apply_gradients")
    original = cls.apply_gradients
    session = _session()
    paused = session.probe_paused if session is not None else contextlib.nullcontext
    loss_scaled = hasattr(optimizer, "inner_optimizer")

    def apply_gradients(opt, grads_and_vars, *args, **kwargs):
        pairs = list(grads_and_vars)
        if opt is not optimizer:
            return original(opt, pairs, *args, **kwargs)
        grads = [(g, v) for g, v in pairs if g is not None]
        captured["pairs"].extend(grads)
        with paused():
            dense = [_dense(g) for g, _ in grads]
            # squared norms for the statistics; finiteness on the gradients themselves (a finite
            # gradient of 1e20 has an overflowing square, and is no reason to skip a step)
            sq = tf.stack([tf.nn.l2_loss(tf.cast(g, tf.float32)) for g in dense])
            grads_finite = tf.reduce_all(tf.stack([tf.reduce_all(tf.math.is_finite(g)) for g in dense]))
            # [gradients finite, their squares finite]: Adam-family optimizers square the
            # gradient, and a finite gradient above 1.8e19 overflows there (checked on the sum)
            verdict = tf.stack([grads_finite, tf.reduce_all(tf.math.is_finite(sq))])
            ok = tf.reduce_all(verdict)
        captured["sq"], captured["ok"] = sq, verdict
        if not skip_nonfinite or loss_scaled:
            return original(opt, pairs, *args, **kwargs)

        if not getattr(opt, "built", True) and hasattr(opt, "build"):
            # Build the optimizer's variables here, as its `apply` would on this call, rather than
            # inside the cond's branch: created in a branch, each variable's initializer is a cond
            # nested in ours, and tracing that cost 0.1-0.2 s more on a fresh model's first step.
            from keras.src import backend
            with backend.name_scope(opt.name, caller=opt):
                opt.build([v for _, v in pairs])
            opt.built = True

        def update():
            original(opt, pairs, *args, **kwargs)
            return tf.constant(True)

        with paused():
            return tf.cond(ok, update, lambda: tf.constant(False))

    cls.apply_gradients = apply_gradients
    try:
        yield captured
    finally:
        if own is None:
            del cls.apply_gradients
        else:
            cls.apply_gradients = own
        _GRAD_VARIABLES[model] = [v for _, v in captured["pairs"]]


class _Unchecked:
    """Calls a step function with the op callback off: tracing adds no per-op checks, and
    running it pays no per-op callback cost (TF sends every eager op through Python while
    any op callback is registered)."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, data):
        session = _session()
        if session is None:
            return self.fn(data)
        with session.probe_detached():
            return self.fn(data)


def _split_extras(outputs):
    """(logs, per-variable gradient sum of squares / 2, all-finite flag) from a step's outputs."""
    if isinstance(outputs, dict) and (_GRAD_KEY in outputs or _OK_KEY in outputs):
        outputs = dict(outputs)
        return outputs, outputs.pop(_GRAD_KEY, None), outputs.pop(_OK_KEY, None)
    return outputs, None, None


SQUARES_OVERFLOW = "finite gradients whose squares overflow float32"


def _sentinel_trip(kind, outputs, record, ok, loss_scaled) -> str | None:
    """Why the fast-mode sentinel trips on this step's results (None: healthy)."""
    if ok is not None and not loss_scaled:
        grads_finite, squares_finite = (bool(v) for v in stats.to_numpy(ok))
        if not grads_finite:
            return "non-finite gradients"
        if not squares_finite:
            return SQUARES_OVERFLOW
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


def _user_layers(model) -> list:
    """The layers of a model as its author listed them, nested models opened up."""
    import keras
    out = []
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.Model):
            out.extend(_user_layers(layer))
        else:
            out.append(layer)
    return out


def _dense(grad):
    import tensorflow as tf
    if isinstance(grad, tf.IndexedSlices):
        return grad.values
    return grad


def _short_name(var) -> str:
    name = getattr(var, "name", "") or ""
    return name.split("/")[-1].split(":")[0]


def _next_batch(iterator):
    import tensorflow as tf
    if isinstance(iterator, (tf.data.Iterator, tf.distribute.DistributedIterator)):
        optional = iterator.get_next_as_optional()
        if not optional.has_value():
            return None
        return optional.get_value()
    try:
        return next(iterator)
    except (StopIteration, tf.errors.OutOfRangeError):
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
            dtype = getattr(tensor, "dtype", None)
            if dtype is None or not getattr(dtype, "is_floating", False):
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


__all__ = ["KerasHooks", "batch_arrays", "grad_variables", "match_rows"]
