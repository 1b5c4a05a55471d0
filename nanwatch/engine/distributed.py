"""The user's tf.function steps under a distribution strategy: a local replay, and workers that agree.

Under `MirroredStrategy` and `MultiWorkerMirroredStrategy` a custom step calls
`strategy.run(step_fn, ...)`: the replicas run in threads of their own (op callbacks are thread-local
and do not reach them) and their reductions are collectives. The replay of a failing call therefore
runs each local replica's `step_fn` in this thread, one after the other, with the strategy's `run`,
`reduce` and `gather` made local (`local_strategy()`), in the default replica context, whose
all-reduce is the identity: no replica waits on another, no worker on another, and each replica's
own values are checked (a NaN that only arrives through the all-reduce is not found there: not local).

Several workers (`cluster()`): every worker runs the same steps and holds the same mirrored weights,
but its data and outputs are its own. After each call the workers agree on the verdict in one
collective of one number (any worker harmed -> every worker replays and stops at that call); at a
failure one more collective carries each worker's finding, so every report names the worker that
made the value. The collectives are nanwatch's own group (`_GROUP_KEY`), apart from the strategy's.

That agreement after the call costs a collective's round trip per step (~1.7 ms of a 7.7 ms step on two
local workers). It is not needed for a step whose checked values are the same on every worker by
construction (`same_on_every_worker`: its outputs and the variables it writes come only from the
workers' all-reduce, constants and such variables, as in the guide's loop): a non-finite value there
is seen by every worker in the same call. What one worker alone can hold then is harm found between
calls (an eager evaluation on its own data); that flag is known before the call and is agreed by a
collective inside the same call (`Cluster.in_step_agreement`), beside the step's own work, not after it.
"""

from __future__ import annotations

import contextlib
import json
from typing import NamedTuple

from ..ops import GRAPH_WRITE_PREFIXES

_GROUP_KEY = 0x6E57            # a collective group of nanwatch's own (the strategy's keys count from 1)
_ROW = 2048                    # bytes of JSON per worker in the findings exchange
_FINDINGS_TIMEOUT = 300.0      # seconds: a worker replaying a long step is waited for, a dead one is not
SETTLE_TIMEOUT = 60.0          # seconds: a worker waits for the others' findings when its watch ends

_cached: list = [None, None]   # (server def, Cluster)


class Cluster:
    """This process's place among the workers of a multi-worker strategy."""

    def __init__(self, job: str, task: int, rank: int, size: int):
        self.job, self.task, self.rank, self.size = job, task, rank, size
        self.device = f"/job:{job}/replica:0/task:{task}/device:CPU:0"
        self._instance = 0
        self._in_step = 0          # instance keys of the agreements traced into steps (same order on all workers)
        self._settles = 0          # the watch ends agreed so far (the same count on every worker)

    def _all_reduce(self, values, merge_op: str, timeout: float = 0.0):
        import numpy as np
        import tensorflow as tf
        from tensorflow.python.ops import collective_ops
        self._instance += 1
        with tf.device(self.device):
            out = collective_ops.all_reduce_v2(tf.constant(values, tf.float32), group_size=self.size,
                                               group_key=_GROUP_KEY, instance_key=self._instance,
                                               merge_op=merge_op, timeout=timeout)
        return np.asarray(out.numpy())

    def any_harm(self, harmed: bool) -> bool:
        """One collective of one number: did any worker see harm in this call? (All call it at every call.)"""
        return bool(self._all_reduce([1.0 if harmed else 0.0], "Max")[0] > 0)

    def in_step_agreement(self):
        """A function for traced code: (this worker's flag, a float scalar) -> the largest flag of all workers,
        one collective run beside the step's ops. Its instance key is fixed in the trace: the steps that
        take one are traced in the same order on every worker, so the keys match."""
        from tensorflow.python.ops import collective_ops
        import tensorflow as tf
        self._in_step += 1
        key, size, device = (1 << 24) + self._in_step, self.size, self.device

        def agreed(flag):
            with tf.device(device):
                return collective_ops.all_reduce_v2(flag, group_size=size, group_key=_GROUP_KEY,
                                                    instance_key=key, merge_op="Max")
        return agreed

    def settle(self, mine: dict | None, wait: bool, timeout: float) -> tuple:
        """Every worker's finding held when a watch ends, exchanged through the cluster's coordination service:
        one key per worker and watch end. Not a collective: a collective that times out aborts every later
        collective of the process (the user's training too), a key that does not come in time does not.
        `wait` False: this worker's key is set, the others' not awaited (its cell raised). Returns ([finding
        or None per rank], [ranks that did not answer within `timeout` seconds])."""
        import time
        from tensorflow.python.eager import context
        ctx = context.context()
        self._settles += 1
        key = f"nanwatch/settle/{self._settles}/"
        ctx.set_config_key_value(key + str(self.rank), json.dumps(mine, default=str))
        if self._settles > 1:            # the last watch end's key: read by every worker since, or never to be
            try:
                ctx.delete_config_key_value(f"nanwatch/settle/{self._settles - 1}/{self.rank}")
            except Exception:
                pass
        found, missing = [None] * self.size, []
        found[self.rank] = mine
        deadline = time.monotonic() + timeout
        for rank in range(self.size) if wait else ():
            if rank != self.rank:
                try:
                    left = max(1, int((deadline - time.monotonic()) * 1000))
                    found[rank] = json.loads(ctx.get_config_key_value(key + str(rank), timeout_in_ms=left))
                except Exception:
                    missing.append(rank)
        return found, missing

    def findings(self, mine: dict | None) -> list:
        """One collective: every worker's finding (a small dict, or None), indexed by rank."""
        import numpy as np
        table = np.zeros((self.size, _ROW + 1), np.float32)
        if mine is not None:
            raw = json.dumps(mine, default=str).encode()[:_ROW]
            table[self.rank, 0] = len(raw)
            table[self.rank, 1:len(raw) + 1] = np.frombuffer(raw, np.uint8)
        summed = self._all_reduce(table, "Add", timeout=_FINDINGS_TIMEOUT)
        out = []
        for row in summed:
            size = int(row[0])
            try:
                out.append(json.loads(bytes(row[1:size + 1].astype(np.uint8)).decode()) if size else None)
            except ValueError:
                out.append(None)   # cut at _ROW bytes: the finding is known, its details are not
        return out


def cluster() -> Cluster | None:
    """The worker cluster this process belongs to (MultiWorkerMirroredStrategy enabled its collectives
    with a cluster of two tasks or more), else None."""
    try:
        from tensorflow.python.eager import context
        server_def = getattr(context.context(), "_collective_ops_server_def", None)
    except Exception:
        return None
    if server_def is None:
        return None
    if _cached[0] is server_def:
        return _cached[1]
    ranks = []
    for job in sorted(server_def.cluster.job, key=lambda j: (j.name != "chief", j.name)):
        ranks.extend((job.name, index) for index in sorted(job.tasks))
    me = (server_def.job_name, server_def.task_index)
    found = Cluster(me[0], me[1], ranks.index(me), len(ranks)) if len(ranks) > 1 and me in ranks else None
    _cached[0], _cached[1] = server_def, found
    return found


# collectives whose output is the same on every worker (not all-to-all or reduce-scatter: a part each)
_SAME_OUTPUT = frozenset({"CollectiveReduce", "CollectiveReduceV2", "CollectiveReduceV3", "CollectiveGather",
                          "CollectiveGatherV2", "CollectiveBcastRecv", "CollectiveBcastRecvV2",
                          "CollectiveBcastSend", "CollectiveBcastSendV2"})
_READS = frozenset({"ReadVariableOp", "ResourceGather", "VariableShape", "VarIsInitializedOp"})
_CALLS = frozenset({"If", "StatelessIf", "While", "StatelessWhile", "Case", "StatelessCase", "PartitionedCall",
                    "StatefulPartitionedCall"})   # their body is another graph: what they write is not walked


class Split(NamedTuple):
    """Which of a traced step's checked values differ from worker to worker (`worker_split`)."""
    outputs_differ: bool    # a float output is the worker's own (its own loss, not all-reduced)
    local: list             # the variables it writes from a worker's own values (a metric's totals)


def worker_split(concrete) -> Split | None:
    """Which of a traced step's float outputs and written variables can differ between workers, whatever
    their data? A dataflow walk of its graph: a value is the same everywhere when it comes from a collective
    that gives every worker the whole result, a constant, a read of a variable written only from such values,
    or ops on such values; a function argument (the worker's data), a random or other stateful op, a nested
    function or a control-flow op is taken to differ. A variable written from a differing value (or with a
    differing variable in the same update, as an optimizer's slot) is local, and its reads differ in turn: the
    walk is repeated until the local set stops growing. None when a variable is passed to a nested function or
    a control-flow op (its writes there are not walked): nothing is known."""
    try:
        operations = concrete.graph.get_operations()    # in creation order: inputs before their consumers
        outputs = [t for t in concrete.outputs if t.dtype.is_floating]
        inner = {id(outside): inside.name for outside, inside in concrete.graph.captures}
        variables = {inner[id(v.handle)]: v for v in concrete.variables if id(v.handle) in inner}
    except Exception:
        return None
    local: set = set()
    while True:
        walked = _walk(operations, set(variables), local)
        if walked is None:
            return None
        same, written = walked
        if written <= local:
            break
        local |= written
    return Split(not all(same.get(t.name, False) for t in outputs),
                 [variables[name] for name in variables if name in local])


def _walk(operations, variables: set, local: set):
    """One pass: ({tensor name: same on every worker?}, {variables written from a differing value}), or None
    when a variable goes into a nested function or control flow. `local`: variables known to differ."""
    import tensorflow as tf
    same: dict = {}
    root: dict = {}          # a resource tensor -> the captured resource it passes on (Identity)
    written: set = set()
    for op in operations:
        resources = [root.get(t.name, t.name) for t in op.inputs if t.dtype == tf.resource]
        data = [same.get(t.name, False) for t in op.inputs if t.dtype != tf.resource]
        if op.type in ("Identity", "IdentityN") and resources:
            root.update((t.name, r) for t, r in zip(op.outputs, resources))
        if op.type == "Const" or op.type in _SAME_OUTPUT:
            result = [True] * len(op.outputs)
        elif op.type in _READS:
            result = [all(data) and not local.intersection(resources)] * len(op.outputs)
        elif resources:          # a write, or another use of a resource (an iterator's next batch)
            if op.type in _CALLS and variables.intersection(resources):
                return None
            if op.type.startswith(GRAPH_WRITE_PREFIXES) and (not all(data) or local.intersection(resources)):
                written.update(variables.intersection(resources))
            result = [False] * len(op.outputs)
        elif op.type == "IdentityN":
            result = data
        elif op.type == "Placeholder" or _is_stateful(op):
            result = [False] * len(op.outputs)
        else:
            result = [all(data)] * len(op.outputs)
        same.update(zip((t.name for t in op.outputs), result))
    return same, written


def same_on_every_worker(concrete) -> bool:
    """Are a traced step's float outputs and the variables it writes the same on every worker, whatever each
    worker's data (`worker_split`: nothing differs)? A wrong True would let one worker stop alone."""
    split = worker_split(concrete)
    return split is not None and not split.outputs_differ and not split.local


def _is_stateful(op) -> bool:
    try:
        return bool(op.op_def.is_stateful)
    except Exception:
        return True


def strategy_values(args, kwargs) -> bool:
    """Is the call given a strategy's per-replica values, or its distributed iterator (several replicas)?"""
    import tensorflow as tf
    from tensorflow.python.distribute import values
    for leaf in tf.nest.flatten((list(args), dict(kwargs))):
        if isinstance(leaf, values.DistributedValues):
            return True
        strategy = getattr(leaf, "_strategy", None)
        if hasattr(leaf, "get_next") and getattr(strategy, "num_replicas_in_sync", 1) > 1:
            return True
    return False


@contextlib.contextmanager
def local_strategy(where: dict):
    """Inside: `strategy.run` runs each local replica's fn in this thread, in turn, in the default replica
    context (its all-reduce is the identity); `reduce` and `gather` return the local value. `where` gets
    the replicas: {"devices": this worker's replica devices, "replica": the local index being run}."""
    from tensorflow.python.distribute import distribute_lib, distribute_utils
    base, strategy_cls = distribute_lib.StrategyBase, distribute_lib.Strategy
    saved = [(cls, name, cls.__dict__[name]) for cls, name in
             ((base, "run"), (base, "reduce"), (strategy_cls, "gather")) if name in cls.__dict__]
    original_run = base.__dict__["run"]

    def run(self, fn, args=(), kwargs=None, options=None):
        try:
            devices = list(self.extended.worker_devices)
        except Exception:
            devices = []
        if len(devices) < 1 or not getattr(self, "num_replicas_in_sync", 1) > 1:
            return original_run(self, fn, args, kwargs, options)
        import tensorflow as tf
        outs = []
        where["devices"] = devices
        for i, device in enumerate(devices):
            where["replica"] = i
            with tf.device(device), _default_replica_context():
                outs.append(fn(*distribute_utils.select_replica(i, args),
                               **distribute_utils.select_replica(i, kwargs or {})))
        return outs[0] if len(outs) == 1 else distribute_utils.regroup(outs)

    def local_value(self, reduce_op, value, axis=None):
        """This worker's replicas reduced here (eager ops, so a non-finite part stays traceable)."""
        import tensorflow as tf
        parts = getattr(value, "values", None)
        if not isinstance(parts, tuple):
            return value
        if axis is not None:
            parts = [tf.reduce_sum(part, axis=axis) for part in parts]
        total = tf.add_n(list(parts)) if len(parts) > 1 else parts[0]
        mean = "MEAN" in str(reduce_op).upper()
        return total / len(parts) if mean and len(parts) > 1 else total

    def local_gather(self, value, axis):
        import tensorflow as tf
        parts = getattr(value, "values", None)
        return tf.concat(list(parts), axis=axis) if isinstance(parts, tuple) else value

    base.run, base.reduce, strategy_cls.gather = run, local_value, local_gather
    try:
        yield where
    finally:
        for cls, name, value in saved:
            setattr(cls, name, value)


@contextlib.contextmanager
def _default_replica_context():
    """The default replica context, whatever strategy scope the caller is in (the replay runs a replica's
    fn outside its strategy's threads)."""
    from tensorflow.python.distribute import distribute_lib
    try:
        mode = distribute_lib._get_default_replica_mode()
        distribute_lib._push_per_thread_mode(mode)
    except Exception:
        yield
        return
    try:
        yield
    finally:
        distribute_lib._pop_per_thread_mode()


def placed(detection, where: dict, group: Cluster | None):
    """The replay's detection with the replica that made it (the device of the value, else the replica
    being run when it was found): its device, its replica id in sync and, on a cluster, its worker."""
    import dataclasses
    devices = [_canonical(d) for d in where.get("devices", [])]
    device = _canonical(detection.device) if detection.device else None
    local = devices.index(device) if device in devices else where.get("replica", 0)
    device = device or (devices[local] if local < len(devices) else group.device if group else None)
    if group is None:
        return dataclasses.replace(detection, device=device, replica=local)
    return dataclasses.replace(detection, device=device, task=group.task,
                               replica=group.rank * max(len(devices), 1) + local)


def _canonical(device: str) -> str:
    try:
        from tensorflow.python.framework import device_spec
        return device_spec.DeviceSpecV2.from_string(device).to_string()
    except Exception:
        return device


def agree(group: Cluster, local, events, found: list | None = None) -> list:
    """Every worker's finding, exchanged in one collective (or `found`, exchanged already); [the origin's
    detection] for this worker's report (its own when it made the value), or [] when no worker's replay
    found one."""
    found = group.findings(summary(local) if local is not None else None) if found is None else found
    # the earliest step first (a finding held from an earlier call), then the lowest rank
    ranks = sorted((rank for rank, item in enumerate(found) if item is not None),
                   key=lambda rank: (found[rank].get("step") is None, found[rank].get("step") or 0, rank))
    if not ranks:
        events.note(f"no worker's replay found where the non-finite value was made ({group.size} workers).")
        return []
    origin = found[ranks[0]]
    if len(ranks) > 1:
        events.note("several workers made a non-finite value in this step: "
                    + ", ".join(f"task {found[r].get('task')} ({found[r].get('device')})" for r in ranks)
                    + f"; the report names the first, task {origin.get('task')}.")
    if ranks[0] == group.rank:
        return [local]
    events.note(f"the non-finite value was made on worker task {origin.get('task')} ({origin.get('device')}), "
                f"found by that worker's replay; this worker (task {group.task}) "
                + ("received it through the strategy's all-reduce (its own replay found no value made here)."
                   if origin.get("step") is None else f"stopped with it (found there in step {origin['step']}, "
                   "in that worker's own values or between its calls)."))
    return [from_summary(origin)]


_WHERE_KEYS = ("layer", "layer_path", "phase", "source", "scope")
_KEYS = ("context", "op_type", "op_name", "slot", "dtype", "kind", "counts", "inputs", "data", "consumer",
         "gradient_of", "device", "notes", "gradient_of_op", "made_from", "task", "replica", "histogram", "step")


def summary(detection) -> dict:
    """A detection as JSON for the other workers: what their reports show (the culprit array stays here)."""
    out = {key: getattr(detection, key) for key in _KEYS}
    out["notes"] = list(out["notes"])
    out["where"] = {key: getattr(detection.where, key) for key in _WHERE_KEYS}
    for dropped in ("histogram", "inputs", "data", "notes", "gradient_of_op", "consumer"):   # least needed first
        if len(json.dumps(out, default=str)) <= _ROW:
            return out
        out[dropped] = [] if dropped in ("inputs", "notes") else None
    if out["where"].get("source"):   # a very long line of code
        out["where"]["source"] = dict(out["where"]["source"], code=str(out["where"]["source"].get("code"))[:200])
    return out if len(json.dumps(out, default=str)) <= _ROW else {k: out[k] for k in ("context", "op_type", "task",
                                                                                     "replica", "device")}


def from_summary(item: dict):
    from .detection import Detection
    from .frames import Where
    fields = {key: item.get(key) for key in _KEYS}
    fields["notes"] = tuple(fields["notes"] or ())
    fields["inputs"] = list(fields["inputs"] or [])
    fields["gradient_of"] = bool(fields["gradient_of"])
    fields["slot"] = fields["slot"] or 0
    where = item.get("where") or {}
    where = dict({key: where.get(key) for key in _WHERE_KEYS}, phase=where.get("phase") or "forward")
    return Detection(where=Where(**where), **fields)
