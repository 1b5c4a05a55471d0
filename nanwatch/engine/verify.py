"""Fixes tried on the failing step: with the fix, does the step become finite? (issue 15, item 3)

After the run (every probe and patch removed), each of the top causes' fixes is applied to what the
run kept of the failing step, and its diagnosis entry gets `verified` ("true" | "false" | "not tried")
and `verified_how` (what was run):

- a changed hyperparameter (the fix writes `keras.optimizers.X(...)`, or a schedule): the Keras train
  step re-run eagerly from the weights before it, on the same batch, with a new optimizer built from
  the user's config and the fix's arguments, its state copied from the user's (iteration, slots). The
  model's variables are read through a StatelessScope (their writes recorded there, never applied)
  and the update is applied to copies of the weights;
- a rewritten expression: the fixed op on the failing op's recorded input values (the forward op's,
  for a gradient), forward and gradient (tf.GradientTape);
- a data fix (impute or drop the non-finite rows): the step on the batch without those rows.
A fix counts only where the unfixed version, run the same way, is non-finite: else nothing shows what
the fix did. Python's, numpy's, TensorFlow's and Keras's global random states and Keras's name counters
are put back afterwards. A time budget bounds the whole.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import inspect
import re
import time

import numpy as np

from . import verify_ops
from .verify_ops import FALSE, NOT_TRIED, TRUE
BUDGET_S = 0.25   # past this, the remaining fixes are "not tried (time budget)"
TOP = 3           # the causes whose fixes are tried, most likely first
DATA_CAUSES = ("nan_in_input", "inf_in_input", "nan_in_target", "inf_in_target")
KEEP = "<the user's own value>"
_OPT_CALL = re.compile(r"keras\.optimizers\.(?:schedules\.)?[A-Za-z_]\w*\(")
_LOSS_CALL = re.compile(r"keras\.losses\.[A-Za-z_]\w*\(")


@dataclasses.dataclass
class FailedStep:
    """What the run kept of its failing step (plain values; the model only while the report is made)."""
    model: object = None          # the Keras model whose step failed (None: custom code)
    kind: str | None = None       # schema.CallKind of that step
    batch: object = None          # the step's batch as numpy arrays (report.bad_batch)
    weights: list | None = None   # values of model.weights before the step (None: not known)
    detection: object = None      # engine Detection of the origin (op_inputs: the recorded op inputs)
    first: dict | None = None     # schema 1 first_nonfinite
    deadline: float = float("inf")   # perf_counter time after which no fix starts running

    def start_running(self):
        """Called where a fix is about to run TensorFlow (its reasons not to run are free): past the
        deadline, it is not tried. A fix started in time runs to its end."""
        if time.perf_counter() > self.deadline:
            raise OverBudget


class OverBudget(Exception):
    """The time budget for trying fixes is spent."""


def verify_fixes(diagnosis: list, failed: FailedStep, budget_s: float = BUDGET_S, top: int = TOP) -> float:
    """Set `verified` and `verified_how` on each diagnosis entry (in place); returns the seconds spent."""
    start = time.perf_counter()
    with _global_state_kept():
        for i, entry in enumerate(diagnosis):
            if i >= top:
                result = NOT_TRIED, f"not tried: only the top {top} causes' fixes are tried on the failing step"
            else:
                try:
                    failed.deadline = start + budget_s
                    result = _verify_one(entry, failed)
                except OverBudget:
                    result = NOT_TRIED, f"not tried (time budget: {budget_s:g} s for trying fixes was spent)"
                except Exception as exc:   # a fix we could not try is said so, never a failed report
                    result = NOT_TRIED, f"not tried: trying it raised {type(exc).__name__}: {exc}"[:300]
            entry["verified"], entry["verified_how"] = result
    return time.perf_counter() - start


def _verify_one(entry: dict, failed: FailedStep) -> tuple:
    """The fix's alternatives in the order its text gives them (a loss from logits, "or" the line
    rewritten): the first that makes the step finite, else the first that did not, else why not tried."""
    cause, fix = entry.get("cause"), str(entry.get("fix") or "")
    if cause in DATA_CAUSES:
        return _verify_data(failed)
    tries = []
    spec, loss = optimizer_spec(fix), loss_spec(fix)
    if spec is not None:
        tries.append((fix.find(spec["text"]), lambda: _verify_hyperparameters(failed, spec)))
    if loss is not None:
        tries.append((fix.find(loss["text"]), lambda: _verify_loss(failed, loss)))
    rewrite = verify_ops.rewrite_for(cause, fix, failed)
    if rewrite is not None:
        at = fix.find("becomes")
        tries.append((at if at >= 0 else len(fix), lambda: verify_ops.verify_rewrite(failed, *rewrite)))
    results = []
    for _, attempt in sorted(tries, key=lambda t: t[0]):
        try:
            results.append(attempt())
        except OverBudget:
            if not results:
                raise
            break
        if results[-1][0] == TRUE:
            return results[-1]
    if results:
        return next((r for r in results if r[0] == FALSE), results[0])
    return NOT_TRIED, ("not tried: this fix changes something the run did not record (the data pipeline, the "
                       "model, or code outside the failing op), so it cannot be applied to the failing step")


# --- hyperparameters ------------------------------------------------------------------------------------
def optimizer_spec(fix: str) -> dict | None:
    """The optimizer (and schedule) a fix writes, read from its code: {"class", "kwargs", "text",
    "schedule": (class, kwargs) | None}; None when the fix writes none or not with literal arguments."""
    calls, names = [], {}
    for start, call, node in _parsed_calls(_OPT_CALL, fix):
        bound = re.search(r"([A-Za-z_]\w*)\s*=$", fix[:start].rstrip())
        calls.append((call, node))
        if bound:
            names[bound.group(1)] = node
    optimizer = next(((c, n) for c, n in calls if ".schedules." not in c), None)
    schedule = next(((c, n) for c, n in calls if ".schedules." in c), None)
    if optimizer is None and schedule is None:
        return None
    out = {"class": None, "args": [], "kwargs": {}, "text": (optimizer or schedule)[0], "schedule": None}
    try:
        if schedule is not None:
            out["schedule"] = (schedule[1].func.attr, *_literal_args(schedule[1], {}))
        if optimizer is not None:
            node = optimizer[1]
            out["class"] = node.func.attr
            out["args"], out["kwargs"] = _literal_args(node, {n: "schedule" for n in names})
    except ValueError:   # an argument that is an expression (`lr * 0.1`): not read
        return None
    return out


def loss_spec(fix: str) -> dict | None:
    """The Keras loss a fix writes (`keras.losses.CategoricalCrossentropy(from_logits=True)`) with literal
    arguments: {"class", "args", "kwargs", "text"}; None when it writes none."""
    for _, call, node in _parsed_calls(_LOSS_CALL, fix):
        try:
            args, kwargs = _literal_args(node, {})
        except ValueError:
            continue
        if KEEP not in args and KEEP not in kwargs.values():
            return {"class": node.func.attr, "args": args, "kwargs": kwargs, "text": call}
    return None


def _verify_loss(failed: FailedStep, spec: dict) -> tuple:
    import keras

    why = _cannot_rerun(failed)
    if why:
        return NOT_TRIED, why
    failed.start_running()
    loss = getattr(keras.losses, spec["class"])(*spec["args"], **spec["kwargs"])
    baseline = _baseline(failed)
    if baseline is None:
        return NOT_TRIED, f"not tried: step {_step(failed)} re-run without the change was finite"
    fixed = _train_step(failed.model, failed, _copy_optimizer(failed.model.optimizer, {}), loss=loss)
    what = (f"step {_step(failed)} re-run from the weights before it, on the same batch ({_rows(failed.batch)} rows), "
            f"with the loss `{spec['text']}` (the model's layers as they are)")
    if fixed is None:
        return TRUE, f"{what}: loss, gradients, updated weights and optimizer state finite (without the change: " \
                     f"{baseline})"
    return FALSE, f"{what}: still non-finite ({fixed})"


def _parsed_calls(pattern, fix: str):
    """(start, call text, ast.Call) of each call in the fix's text whose name `pattern` matches (the match
    ends at its opening parenthesis) and that parses as Python."""
    for match in pattern.finditer(fix):
        text = _balanced(fix, match.end() - 1)
        if text is None:
            continue
        call = fix[match.start():match.end() - 1] + text
        try:
            yield match.start(), call, ast.parse(call, mode="eval").body
        except SyntaxError:
            continue


def _balanced(text: str, open_at: int) -> str | None:
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return text[open_at:i + 1]
    return None


def _literal_args(node: ast.Call, names: dict) -> tuple:
    """Literal positional and keyword arguments; a name bound to a schedule in the fix becomes "schedule",
    another name (`learning_rate=schedule`: the user's own object) keeps the user's value (KEEP)."""
    def value(arg):
        if isinstance(arg, ast.Name):
            return names.get(arg.id, KEEP)
        return ast.literal_eval(arg)
    return [value(a) for a in node.args], {k.arg: value(k.value) for k in node.keywords if k.arg}


def _verify_hyperparameters(failed: FailedStep, spec: dict) -> tuple:
    import keras

    why = _cannot_rerun(failed)
    if why:
        return NOT_TRIED, why
    model = failed.model
    optimizer = model.optimizer
    if hasattr(optimizer, "inner_optimizer"):
        return NOT_TRIED, "not tried: a LossScaleOptimizer's step is not re-run"
    failed.start_running()
    changed = _changed_optimizer(keras, optimizer, spec)
    baseline = _baseline(failed)
    if baseline is None:
        return NOT_TRIED, (f"not tried: step {_step(failed)} re-run without the change was finite "
                           "(random ops such as dropout draw anew), so the re-run cannot show what the change does")
    fixed = _train_step(model, failed, changed)
    what = (f"step {_step(failed)} re-run from the weights before it, on the same batch ({_rows(failed.batch)} rows), "
            f"with `{spec['text']}`")
    if fixed is None:
        return TRUE, f"{what}: loss, gradients, updated weights and optimizer state finite (without the change: " \
                     f"{baseline})"
    more = ""
    if fixed.startswith(("the model's outputs", "the loss")):
        more = ("; the forward pass is already non-finite at the weights before this step, so a change to this "
                "step's update cannot cure it: the change must apply from the earlier steps that made the "
                "weights (re-run the cell with it)")
    return FALSE, f"{what}: still non-finite ({fixed}){more}"


def _baseline(failed: FailedStep) -> str | None:
    """The step re-run as it was (a copy of the user's optimizer), once per failed step."""
    if not hasattr(failed, "_baseline"):
        failed._baseline = _train_step(failed.model, failed, _copy_optimizer(failed.model.optimizer, {}))
    return failed._baseline


def _changed_optimizer(keras, optimizer, spec: dict):
    """The user's optimizer with the fix's arguments (a schedule the fix builds passed as the rate)."""
    cls = getattr(keras.optimizers, spec["class"]) if spec["class"] else type(optimizer)
    kwargs = dict(spec["kwargs"])
    if spec["args"]:
        kwargs.update(inspect.signature(cls).bind_partial(*spec["args"]).arguments)
    kwargs = {k: v for k, v in kwargs.items() if v != KEEP}
    if spec["schedule"] is not None:
        name, args, skw = spec["schedule"]
        schedule_cls = getattr(keras.optimizers.schedules, name)
        schedule = schedule_cls(*args, **skw)
        if spec["class"] is None or "schedule" not in kwargs.values():
            kwargs["learning_rate"] = schedule
        kwargs = {k: (schedule if v == "schedule" else v) for k, v in kwargs.items()}
    return _copy_optimizer(optimizer, kwargs, cls=cls)


def _copy_optimizer(optimizer, changes: dict, cls=None):
    """A new optimizer from the user's config (its name kept: no name counter moves) and `changes`."""
    config = optimizer.get_config()
    if cls is not None and cls is not type(optimizer):
        config = {"name": config.get("name")}
    config.update(changes)
    return (cls or type(optimizer)).from_config(config)


def _cannot_rerun(failed: FailedStep) -> str | None:
    model = failed.model
    if model is None or failed.kind is None:
        return "not tried: the failing step is not a Keras step (a custom loop's step is not re-run)"
    if failed.kind != "train":
        return f"not tried: the failing step is {failed.kind}, which applies no update"
    if failed.weights is None:
        return "not tried: the weights before the failing step were not kept (the run went on after it)"
    if failed.batch is None:
        return "not tried: the failing step's batch was not kept"
    if getattr(getattr(model, "distribute_strategy", None), "num_replicas_in_sync", 1) > 1:
        return "not tried: a step under a distribution strategy with several replicas is not re-run"
    if _overrides(model, "train_step"):
        return "not tried: the model has its own train_step, which is not re-run"
    if getattr(model, "optimizer", None) is None:
        return "not tried: the model has no optimizer"
    return None


def _overrides(model, name: str) -> bool:
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer
    return getattr(type(model), name, None) is not getattr(TensorFlowTrainer, name)


def _train_step(model, failed: FailedStep, optimizer, batch=None, loss=None) -> str | None:
    """The Keras train step on copies: None when loss, gradients, updated weights and optimizer state are
    finite, else what was not. The user's variables are read at their pre-step values; nothing of theirs
    is written. The forward and backward pass is shared by the fixes that change only the optimizer."""
    import keras
    import tensorflow as tf

    shared = batch is None and loss is None     # the step as it ran: the same pass for every optimizer
    cache = failed.__dict__.setdefault("_passes", {})
    result = cache.get("step") if shared else None
    if result is None:
        result = _forward_backward(model, failed, batch, loss)
        if shared:
            cache["step"] = result
    problem, current, grads = result
    if problem is not None:
        return problem
    copies = [keras.Variable(t, name=f"nanwatch_copy_{i}", dtype=t.dtype) for i, t in enumerate(current)]
    optimizer.build(copies)
    _copy_state(model.optimizer, optimizer)
    optimizer.apply([g if g is not None else tf.zeros_like(c) for g, c in zip(grads, current)], copies)
    if not verify_ops.finite([c.value for c in copies]):
        return "the weights the update wrote " + verify_ops.kinds([c.value for c in copies])
    state = [v.value for v in optimizer.variables]
    if not verify_ops.finite(state):   # Adam's square of a gradient above 1.8e19 overflows its slot
        return "the optimizer state the update wrote " + verify_ops.kinds(state)
    return None


def _forward_backward(model, failed: FailedStep, batch, loss) -> tuple:
    """(what was non-finite or None, the pre-step trainable values, their gradients) of the step's forward
    and backward pass, read through a StatelessScope mapped to the pre-step values."""
    import keras
    import tensorflow as tf

    x, y, sample_weight = _unpack(failed.batch if batch is None else batch)
    values = dict(zip((id(v) for v in model.weights), failed.weights))
    trainable = list(model.trainable_variables)
    current = [tf.convert_to_tensor(values.get(id(v), v.numpy())) for v in trainable]
    mapping = list(zip(trainable, current)) + [(v, tf.convert_to_tensor(values[id(v)]))
                                               for v in model.non_trainable_variables if id(v) in values]
    with tf.GradientTape() as tape:
        tape.watch(current)
        with keras.StatelessScope(state_mapping=mapping):
            y_pred = model(x, training=True)
            if loss is None:
                loss = model.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            else:   # the fix's loss in place of the compiled one; the model's own losses (regularisers) kept
                loss = loss(y, y_pred, sample_weight=sample_weight) + sum(model.losses)
    if not verify_ops.finite(y_pred):
        return "the model's outputs " + verify_ops.kinds(y_pred), current, None
    if not verify_ops.finite(loss):
        return "the loss " + verify_ops.kinds(loss), current, None
    grads = tape.gradient(loss, current)
    if not verify_ops.finite([g for g in grads if g is not None]):
        return "the gradients " + verify_ops.kinds([g for g in grads if g is not None]), current, None
    return None, current, grads


def _copy_state(source, target):
    """The user's optimizer state (iteration, slots, in order) into the copy; the rate is the copy's own."""
    def state(opt):
        return [v for v in opt.variables if v.name not in ("learning_rate",)]
    src, dst = state(source), state(target)
    if len(src) != len(dst) or any(tuple(a.shape) != tuple(b.shape) for a, b in zip(src, dst)):
        raise ValueError("the optimizer's state does not match its copy's")
    for a, b in zip(src, dst):
        b.assign(a.value)


# --- data ----------------------------------------------------------------------------------------------
def _verify_data(failed: FailedStep) -> tuple:
    why = _cannot_rerun(failed)
    if why:
        return NOT_TRIED, why
    batch = _as_tuple(failed.batch)
    arrays = [a for a in verify_ops.flat(batch) if isinstance(a, np.ndarray) and a.dtype.kind == "f" and a.ndim]
    if not arrays:
        return NOT_TRIED, "not tried: the batch holds no float arrays"
    n = arrays[0].shape[0]
    keep = np.ones(n, bool)
    for a in arrays:
        if a.shape[0] == n:
            keep &= np.isfinite(a.reshape(n, -1)).all(axis=1)
    if keep.all() or not keep.any():
        return NOT_TRIED, f"not tried: {'no' if keep.all() else 'every'} row of the batch holds a non-finite value"
    failed.start_running()
    import tensorflow as tf
    kept = tf.nest.map_structure(lambda a: a[keep] if isinstance(a, np.ndarray) and a.ndim and a.shape[0] == n
                                 else a, batch)
    baseline = _baseline(failed)
    fixed = _train_step(failed.model, failed, _copy_optimizer(failed.model.optimizer, {}), batch=kept)
    what = (f"step {_step(failed)} re-run from the weights before it on its batch without the {n - int(keep.sum())} "
            f"row(s) holding NaN/Inf ({int(keep.sum())} of {n} rows kept)")
    if baseline is None:
        return NOT_TRIED, f"not tried: step {_step(failed)} re-run on the whole batch was finite"
    if fixed is None:
        return TRUE, f"{what}: loss, gradients, updated weights and optimizer state finite (with them: {baseline})"
    return FALSE, f"{what}: still non-finite ({fixed})"


# --- small helpers -------------------------------------------------------------------------------------
def _unpack(batch):
    from keras.utils import unpack_x_y_sample_weight
    return unpack_x_y_sample_weight(_as_tuple(batch))


def _as_tuple(batch):
    return tuple(batch) if isinstance(batch, list) else batch


def _rows(batch) -> int | None:
    for a in verify_ops.flat(_as_tuple(batch)):
        if getattr(a, "ndim", 0):
            return int(a.shape[0])
    return None


def _step(failed: FailedStep):
    return (failed.first or {}).get("step")


@contextlib.contextmanager
def _global_state_kept():
    """Python's, numpy's and TensorFlow's global random states, Keras's global seed generator and name
    counters: as they were before."""
    import copy
    import random
    from keras.src.backend.common import global_state
    from tensorflow.python.eager import context
    from tensorflow.python.ops import stateful_random_ops

    py, npr = random.getstate(), np.random.get_state()
    ctx = context.context()
    op_rng = getattr(ctx, "_rng", None)
    op_state = op_rng.getstate() if op_rng is not None else None
    generator = stateful_random_ops.global_generator
    gen_state = generator.state.numpy() if generator is not None else None
    seed_gen = global_state.get_global_attribute("global_seed_generator")
    seed_state = seed_gen.state.numpy() if seed_gen is not None else None
    uids = copy.deepcopy(global_state.get_global_attribute("object_name_uids"))
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npr)
        if op_rng is not None and getattr(ctx, "_rng", None) is op_rng:
            op_rng.setstate(op_state)
        if generator is not None:
            generator.state.assign(gen_state)
        if seed_gen is not None:
            seed_gen.state.assign(seed_state)
        if uids is not None:
            global_state.set_global_attribute("object_name_uids", uids)
