"""The user's own `tf.function`s, called from a watched cell (custom training loops).

fast (and auto): the function is traced and run without per-op checks; after each call its
sinks are read: its outputs and the Keras state it captures (weights, optimizer slots). A
non-finite one puts the variables back as they were before the call (the update is not kept)
and replays the call eagerly on the same arguments, with the eager checks' provenance
(engine/eager_checks.py), to name the origin. exact: the function's Python body runs eagerly,
every op checked with provenance, so a value the training absorbs (a -inf mask into softmax
inside the step) is info, not an alarm. Either way a function that applies gradients is a
training step: each call is a step record. A function traced before the cell is served too.
"""

from __future__ import annotations

import weakref
from typing import NamedTuple

from . import distributed, traced_graph
from .state_guard import StateGuard, draws_from_iterator, replaying


# Across watches, per traced function (weakly held): what its variables and check are, while it is not
# retraced (tracing our check costs more than a short run's steps), and whether it applies gradients
# (a function traced in an earlier watch is not traced again: its applies are not seen again).
class Known(NamedTuple):
    """What fast mode learnt of one trace of a user's tf.function."""
    count: int              # its tracing count then (a retrace makes this stale)
    variables: list         # the Keras state it captures (weights, slots)
    collective: bool        # runs collectives: in lockstep on every worker
    guard: StateGuard       # the state check fused with its calls
    trains: bool            # updates weights as an optimizer does: a training step


_KNOWN: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_TRAINING_STEPS: "weakref.WeakSet" = weakref.WeakSet()


def _store(fn, known, step=False) -> None:
    try:
        if known is not None:
            _KNOWN[fn] = known
        if step:
            _TRAINING_STEPS.add(fn)
    except TypeError:      # not weakly referenceable: known for this watch only
        pass


class _Found(Exception):
    """Stops a replay at the first value that reaches the training."""


class FunctionPatch:
    """Wraps `tf.function`'s `Function.__call__` for one watched cell."""

    def __init__(self, events, probe, state, fast: bool):
        self.events = events
        self.probe = probe
        self.state = state                 # KerasStatePatch: counts gradients applied while tracing
        self.fast = fast                   # fast mode: no per-op checks in the graph, sinks checked per call
        self._state_of: dict = {}          # id(fn) -> what is known of its current trace (Known)
        self._before: dict = {}            # id(fn) -> (its check, snapshot of its variables after its last call)
        self._saved = None
        self._steps: set = set()           # ids of functions that are training steps
        self._agreeing: set = set()        # ids of steps whose workers agree inside the call (noted once)
        self._owns = False                 # a step with values of each worker's own ran agreeing in the call

    def install(self):
        from tensorflow.python.eager.polymorphic_function import polymorphic_function as pf
        cls = pf.Function
        original = cls.__call__
        patch = self

        def __call__(fn, *args, **kwargs):
            if getattr(fn, "_nanwatch_own", False) or not patch.probe.active or patch.events.in_keras_call():
                return original(fn, *args, **kwargs)
            return patch._call(original, fn, args, kwargs)

        __call__.__wrapped__ = original
        self._saved = (cls, cls.__dict__.get("__call__"))
        cls.__call__ = __call__

    def uninstall(self):
        for known in self._state_of.values():
            known.guard.release()       # the copies of the state kept to put a harmful call back
        self._before.clear()
        if self._saved is not None:
            cls, own = self._saved
            if own is None:
                del cls.__call__
            else:
                cls.__call__ = own
            self._saved = None

    def _call(self, original, fn, args, kwargs):
        import tensorflow as tf
        if not tf.executing_eagerly():
            return original(fn, *args, **kwargs)     # called while another function is traced
        if self.fast:
            return self._call_fast(original, fn, args, kwargs)
        if distributed.cluster() is not None or distributed.strategy_values(args, kwargs):
            # the Python body run eagerly would run the replicas in threads the checks do not reach, and a
            # check raising on one worker would leave the others waiting in the step's all-reduce
            applied = self.state.traced_applies
            with self.probe.detached():      # a trace made here is the one fast mode runs: no checks in it
                self._state_variables(fn, args, kwargs)
            if self.state.traced_applies > applied or self._state_of[id(fn)].trains:
                self._steps.add(id(fn))      # it applies gradients: a training step
            self.events.note(f"tf.function '{fn.__name__}' runs under a distribution strategy with several "
                             "replicas: it was watched in fast mode (checked after each call, the failing call "
                             "replayed replica by replica), not exact mode.")
            return self._call_fast(original, fn, args, kwargs)
        # exact: the function's Python body, run eagerly: every op checked, with provenance (its
        # tape.gradient calls are the steps, as in an eager loop)
        return fn.python_function(*args, **kwargs)

    def _call_fast(self, original, fn, args, kwargs):
        """Traced and run without per-op checks; then the sinks: its outputs, and the Keras state it
        captures (weights, slots). A non-finite one: the variables are put back as they were before
        the call, and the call replayed eagerly with provenance names the origin."""
        import tensorflow as tf
        from . import stats
        applied = self.state.traced_applies
        with self.probe.detached():      # a new step is traced here, with no checks in it
            self._state_variables(fn, args, kwargs)
        guard = self._state_of[id(fn)].guard
        fused = None
        cluster = distributed.cluster()
        # only a function with collectives runs in lockstep on every worker: the verdict is agreed there; harm
        # in a worker-local one (an evaluation on the chief alone) is held for the next agreement
        group = cluster if cluster is not None and self._state_of[id(fn)].collective else None
        in_step = group is not None and guard.agreeing
        # found on this worker since the last call: agreed in the call (in_step) or after it
        held = self.probe.take_held() if group is not None else None
        # the check runs in the same call as the step
        if guard.fused:
            with self.probe.detached():  # the state before the call is kept in the guard (its shadows)
                fused = guard.call(args, kwargs, flag=held is not None)
        if fused is None:                # not fused: a snapshot after each call is the state before the next
            if self._before.get(id(fn), (None,))[0] is not guard:
                with self.probe.paused():    # its first call here (or retraced): the state before it, to put back
                    self._before[id(fn)] = (guard, guard.read()[1])
            with self.probe.detached():
                result = original(fn, *args, **kwargs)
        if fused is not None:
            result, state_ok, outputs_ok, drawn, others, local_ok = fused
        else:
            state_ok = outputs_ok = drawn = None
            others, local_ok = False, True
        values = None
        in_step = in_step and fused is not None
        if in_step and id(fn) not in self._agreeing:
            self._agreeing.add(id(fn))
            self.events.note(f"tf.function '{fn.__name__}' runs on several workers and "
                             + ("its outputs and the weights it writes" if not guard.splits else
                                "the outputs and weights it makes from their all-reduce")
                             + " are the same on every worker: a non-finite one there is "
                             "seen by every worker in the same call, so they do not agree on the verdict after "
                             "each call; what one worker finds between calls is agreed inside the next call."
                             + (_OWN_VALUES.format(own=_own_values(guard)) if guard.splits else ""))
        if self.state.traced_applies > applied or fn in _TRAINING_STEPS or self._state_of[id(fn)].trains:
            self._steps.add(id(fn))
            _store(fn, None, step=True)
        if id(fn) in self._steps:
            self.events.mode_decided("fast")
        variables = self._state_variables(fn, args, kwargs)
        retraced = self._state_of[id(fn)].guard is not guard
        if retraced:                     # retraced in this call: its own check, and no state from before it
            guard = self._state_of[id(fn)].guard
            state_ok, local_ok = None, True
            in_step = False              # every worker retraced here alike: they agree after the call
        with self.probe.paused():
            if state_ok is None:
                state_ok, values = guard.read()     # one traced call: the all-finite flag and a snapshot
            if outputs_ok is None:          # not checked in the call
                outputs_ok = all(stats.all_finite(stats.to_numpy(t)) for t in tf.nest.flatten(result)
                                 if getattr(getattr(t, "dtype", None), "is_floating", False))
        # agreed in the call (in_step), the values the same on every worker were seen by every worker; a worker's
        # own values (its own loss, a metric's totals) only by itself: harm there is held for the next call
        own = in_step and guard.splits
        own_harm = own and (not local_ok or not outputs_ok and guard.local_outputs)
        bad_state = not state_ok or not local_ok and not own
        bad_output = not outputs_ok and not (own and guard.local_outputs)
        # what a worker held was agreed in the call (in_step); otherwise the workers agree after the call
        harm_elsewhere = others if in_step else \
            group is not None and group.any_harm(bad_state or bad_output or held is not None)
        if harm_elsewhere and not (bad_state or bad_output):
            bad_output = "another worker"    # harm elsewhere (or earlier, held): every worker stops at this call
        elif own_harm and not (bad_state or bad_output):
            self._own_harm(fn, args, kwargs, variables, guard, drawn, group, "a non-finite output" if not outputs_ok
                           else "non-finite values of this worker's own after the call")
        self._owns = self._owns or own
        if bad_state or bad_output:
            if fused is not None:
                before = None if retraced else guard.before()
            else:
                before = self._before.get(id(fn), (None, None))
                before = before[1] if before[0] is guard else None
            self._harm_seen(fn, args, kwargs, variables, before,
                            "non-finite weights or slots after the call" if bad_state else
                            "a non-finite output on another worker" if bad_output == "another worker" else
                            "a non-finite output", group, held, hold=cluster is not None and group is None,
                            drawn=drawn)
            if fused is None:
                with self.probe.paused():
                    values = guard.read()[1]
        if fused is None:
            self._before[id(fn)] = (guard, values)
        else:
            self._before.pop(id(fn), None)
        if id(fn) in self._steps:
            self.events.tape_step(_loss_of(result), None)
        return result

    def _state_variables(self, fn, args, kwargs) -> list:
        count = fn.experimental_get_tracing_count()
        known = self._state_of.get(id(fn))
        if known is None or known.count != count or not known.guard.serves(fn):
            known = _KNOWN.get(fn)             # from an earlier watch of the same traced function
            if known is None or known.count != count or not known.guard.serves(fn):
                concrete = _concrete(fn, args, kwargs)
                count = fn.experimental_get_tracing_count()   # traced just now if it was new
                variables = [v for v in getattr(concrete, "variables", []) if _is_keras_state(v)]
                graph_def = traced_graph.graph_def_of(concrete) if concrete is not None else None
                cluster = distributed.cluster()
                collective = concrete is not None and cluster is not None and traced_graph.has_collectives(graph_def)
                group = cluster if collective else None
                # several workers, and a step whose checked values are known to be the same on all or a worker's
                # own: no agreement after the call, only on what a worker found before it, inside the call
                # (engine/distributed.py)
                split = distributed.worker_split(concrete) if group is not None and concrete is not None else None
                agreement = group.in_step_agreement() if split is not None else None
                with self.probe.paused():          # our own traced check: neither instrumented nor checked
                    guard = StateGuard(variables, step=fn, fuse=concrete is not None, agreement=agreement,
                                       split=split)
                trains = concrete is not None and traced_graph.updates_weights(concrete, graph_def)
                known = Known(count, variables, collective, guard, trains)
                _store(fn, known)
            self.probe.eager.register_state(known.variables)
            self._state_of[id(fn)] = known
        return known.variables

    def _harm_seen(self, fn, args, kwargs, variables, before, reason, group=None, held=None, hold=False, drawn=None):
        if before is not None and len(before) == len(variables):
            with self.probe.paused():
                for var, value in zip(variables, before):
                    var.assign(value)        # the call's update is not kept: the weights as before it
        if held is not None:
            # made on this worker before this call: the origin is known (placed on its worker, if not yet)
            found, draws = [held if held.task is not None or group is None else distributed.placed(held, {}, group)], False
            self.events.note(f"found on this worker before this call of tf.function '{fn.__name__}' (between "
                             "calls, or in an earlier call's values of this worker's own); every worker stopped "
                             "at this call.")
        else:
            found, draws = self._replayed(fn, args, kwargs, variables, drawn, group)
        if group is not None:
            found = distributed.agree(group, found[0] if found else None, self.events)
        self.probe.report(found[0] if found else self._unreproduced(fn, reason, draws),
                          agreed=not hold)       # raises NonFiniteFound when stopping

    def _own_harm(self, fn, args, kwargs, variables, guard, drawn, group, reason):
        """Several workers, and a non-finite value among the values only this worker holds (its own loss, a
        metric's totals), the shared weights finite: the others did not see it, and this worker stopping alone
        would leave them waiting in the next collective. This worker puts its own variables back, finds the
        origin by a replay from the state before the call, and holds the finding: its flag goes up in the next
        call of a step, where every worker stops. This call's update of the shared weights (finite, the same
        on every worker) is kept."""
        import dataclasses
        import tensorflow as tf
        step = self.events.current_step()
        with self.probe.paused():
            after = [tf.identity(v) for v in variables]
            for var, value in zip(variables, guard.before()):
                var.assign(value)            # the replay starts from the state before the call
        found, draws = self._replayed(fn, args, kwargs, variables, drawn, group)
        with self.probe.paused():
            for var, value, mine in zip(variables, after, guard.local):
                if not mine:
                    var.assign(value)        # the shared update kept; this worker's own variables put back
        self.events.note(f"call {step} of tf.function '{fn.__name__}' made a non-finite value among the values "
                         f"this worker holds alone ({_own_values(guard)}), the weights shared by every worker "
                         "finite: this worker put its own variables back, kept the shared update, and every "
                         "worker stopped at the next call, where the workers agree.")
        detection = found[0] if found else self._unreproduced(fn, reason, draws)
        self.probe.report(dataclasses.replace(detection, step=step), agreed=False)    # held

    def _replayed(self, fn, args, kwargs, variables, drawn, group) -> tuple:
        """The call replayed eagerly on its arguments, every op checked: ([the detection placed on its replica
        and worker] or [], whether the batch was drawn inside the call and not kept, so not replayed)."""
        from .replay import restored
        replica: dict = {}
        found: list = []
        draws = draws_from_iterator(args, kwargs)
        if draws and drawn:
            args, kwargs = replaying(args, kwargs, drawn)   # the batches the call drew, given again
            draws = False
        if draws:
            self.events.note(f"tf.function '{fn.__name__}' draws its batch from an iterator inside the call, and the "
                             "batch this call drew was not kept (drawn inside a graph loop, or the step could not "
                             "be traced in nanwatch's own function), so the call was not replayed. Pass the batch "
                             f"as the argument (`for batch in dataset: {fn.__name__}(batch)`) to have the op or "
                             "the data rows named.")
            return found, draws
        with restored(variables, self.probe), distributed.local_strategy(replica), \
                self.probe.capturing(_Found) as found:
            try:
                self._outputs_reach_training(fn.python_function(*args, **kwargs))
            except _Found:
                pass
            except Exception as exc:
                self.events.note(f"the eager replay of tf.function '{fn.__name__}' raised "
                                 f"{type(exc).__name__}: {str(exc)[:200]}")
        return ([distributed.placed(found[0], replica, group)] if found and (replica or group) else found), draws

    def _unreproduced(self, fn, reason, draws):
        """The finding when the replay named no op: fast mode's sentinel, with what it saw."""
        import dataclasses
        import sys
        from .detection import Detection
        from .frames import resolve
        where = resolve(sys._getframe(3), self.probe.cells)
        if not draws:
            self.events.note(f"fast mode saw {reason} of tf.function '{fn.__name__}', but its eager replay did not "
                             "reproduce it (random ops draw anew): rerun the cell with --mode exact to pinpoint the op.")
        return Detection(context="sentinel", op_type=None, op_name=None, slot=0, kind=reason,
                         where=dataclasses.replace(where, phase="optimizer" if "weights" in reason else "forward",
                                                   layer=None))

    def settle(self, wait: bool = True):
        """The watch ends. A worker that found harm in its own values in its last step call holds it, and the
        other workers would end healthy: every worker that ran such a step (all of them, in lockstep) gives its
        finding, or none, and reads the others' (`Cluster.settle`, a minute at most). `wait` False (this
        worker's cell raised): its finding given, the others' not awaited, and its own left to its report.
        Raises NonFiniteFound when the run stops on a finding."""
        group = distributed.cluster()
        if not self._owns or group is None or not self.probe.active:
            return
        held = self.probe.held if not wait else self.probe.take_held()
        try:
            found, missing = group.settle(distributed.summary(held) if held is not None else None, wait,
                                          distributed.SETTLE_TIMEOUT)
        except Exception as exc:      # no coordination service: this worker's own finding stands
            self.events.note("the workers could not exchange their findings at the end of the watch "
                             f"({type(exc).__name__}: {str(exc)[:200]}).")
            found, missing = None, []
        if missing:
            self.events.note(f"worker rank(s) {', '.join(map(str, missing))} did not reach the end of the watch within "
                             f"{distributed.SETTLE_TIMEOUT:.0f} s of this one: a non-finite value they found in "
                             "their own values in their last step call is not in this report.")
        if not wait:
            return
        if found is None:
            origin = [held] if held is not None else []
        elif any(item is not None for item in found):
            origin = distributed.agree(group, held, self.events, found=found)
        else:
            origin = []
        if origin:
            self.probe.report(origin[0], agreed=True)

    def _outputs_reach_training(self, result):
        """The replayed call's outputs are sinks, as the traced call's are: a non-finite one names its origin."""
        import sys
        import tensorflow as tf
        frame = sys._getframe(1)
        for tensor in tf.nest.flatten(result):
            if getattr(getattr(tensor, "dtype", None), "is_floating", False):
                self.probe.eager.sink(tensor, frame)


_OWN_VALUES = (" Its {own} are each worker's own: a non-finite one there is checked in the call by that worker "
               "alone, which puts its own variables back and raises its flag at the next call, where every worker "
               "stops (the workers stop one call later than the call that made the value; that call's update of "
               "the shared weights, finite, is kept).")


def _own_values(guard) -> str:
    """What of a step's checked values is each worker's own, in words."""
    names = [getattr(v, "name", "?").split(":")[0] for v, mine in zip(guard.variables, guard.local) if mine]
    parts = (["float outputs"] if guard.local_outputs else []) + (
        [f"variables {', '.join(names[:4])}" + (f" and {len(names) - 4} more" if len(names) > 4 else "")]
        if names else [])
    return " and ".join(parts)


def _concrete(fn, args, kwargs):
    try:
        return fn.get_concrete_function(*args, **kwargs)
    except Exception:
        return None


def _is_keras_state(variable) -> bool:
    """A variable of a Keras layer or optimizer (paths such as 'dense/kernel', 'adam/m'), not a user's own."""
    name = getattr(variable, "name", "") or ""
    return "/" in name


def _loss_of(result):
    """The loss a training step returned: its first float scalar (None if there is none)."""
    import tensorflow as tf
    from . import stats
    for value in tf.nest.flatten(result):
        if getattr(getattr(value, "dtype", None), "is_floating", False):
            scalar = stats.scalar(value)
            if scalar is not None:
                return scalar
    return None
