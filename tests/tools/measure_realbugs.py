"""Measure what raw TensorFlow does on the ported real bugs (tests/scenarios/realbugs.py), without nanwatch.

Not a test: a tool, built on tests/tools/measure_scenarios.py (`measure`: a fresh process per run, inter-op
parallelism 1, hooks before the setup cell and after the watched cell) and on the cell-line reading of
tests/tools/measure_harm.py (CHECK_READ). Per scenario, two runs:

  plain   the cell as written, with one hook: every `tf.GradientTape.gradient` target (the loss of a
          tf.function step, of an eager loop, of Keras' own train step) is counted, and the index of the
          first call whose target held NaN/Inf is kept (int64 variables and `is_finite` only: no float op is
          added). After the cell, every tf.Variable, Keras weight and compiled optimizer's
          variable (slots) left in the namespace is checked.
  check   under tf.debugging.enable_check_numerics(): the first op that raises, its type and its cell line.

    .venv/bin/python tests/tools/measure_realbugs.py [--fresh] [name ...]

By default all scenarios run in this one process (one TensorFlow import: minutes less on a loaded 2-core box);
--fresh runs each part in its own process through measure_scenarios.measure, as the other tools do.

prints one JSON line per scenario: {"name", "plain": {"loss_calls", "first_nonfinite_loss", "nonfinite_loss_calls",
"nonfinite_variables", "seconds", ...}, "check": {"op_type", "op_line", "raised", ...}}. The results are copied
into FACTS of tests/scenarios/realbugs.py.
"""

from __future__ import annotations

import json
import os
import sys

LOSS_HOOK = r'''
import tensorflow as _tf
_LOSS = {}
def _loss_vars():
    if not _LOSS:
        with _tf.init_scope():
            for _k, _v in (("calls", 0), ("first", -1), ("bad", 0)):
                _LOSS[_k] = _tf.Variable(_v, dtype=_tf.int64, trainable=False)
    return _LOSS
_orig_gradient = _tf.GradientTape.gradient
def _gradient(self, target, sources, *args, **kwargs):
    if _tf.is_tensor(target) and target.dtype.is_floating:
        c = _loss_vars()
        bad = _tf.logical_not(_tf.reduce_all(_tf.math.is_finite(target)))
        c["first"].assign(_tf.where(_tf.logical_and(bad, c["first"] < 0), c["calls"], c["first"]))
        c["bad"].assign_add(_tf.cast(bad, _tf.int64))
        c["calls"].assign_add(1)
    return _orig_gradient(self, target, sources, *args, **kwargs)
_tf.GradientTape.gradient = _gradient
'''

LOSS_READ = r'''
if _LOSS:
    out["loss_calls"] = int(_LOSS["calls"].numpy())
    out["first_nonfinite_loss"] = int(_LOSS["first"].numpy())
    out["nonfinite_loss_calls"] = int(_LOSS["bad"].numpy())
bad_vars = []
for k, v in list(ns.items()):
    values = [v] if isinstance(v, (tf.Variable, keras.Variable)) else list(getattr(v, "weights", []) or []) if isinstance(v, keras.Model) else []
    for w in values:
        a = np.asarray(w.numpy(), dtype="float64")
        if not np.isfinite(a).all():
            bad_vars.append(f"{k}:{getattr(w, 'path', None) or getattr(w, 'name', '')}")
out["nonfinite_variables"] = bad_vars[:8]
'''


def _one_process(pool: dict, names: list) -> None:
    """Every scenario in this one process (fresh namespaces, Keras session cleared between runs): the hooks are
    the same strings; enable_check_numerics is switched off again after each check run. Faster on a loaded box
    (one TensorFlow import), at the price of shared process state, which these cells do not use."""
    import re
    import time
    import traceback
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import numpy as np
    import tensorflow as tf
    import keras
    tf.config.threading.set_inter_op_parallelism_threads(1)
    hooks: dict = {}
    exec(LOSS_HOOK, hooks)
    for name in names:
        scenario, result = pool[name], {"name": name}
        for part in ("plain", "check"):
            keras.backend.clear_session()
            for v in hooks["_LOSS"].values():
                v.assign(-1 if v is hooks["_LOSS"].get("first") else 0)
            ns, out = {}, {}
            if scenario.setup:
                exec(compile(scenario.setup, "<setup>", "exec"), ns)
            if part == "check":
                tf.debugging.enable_check_numerics()
            t0 = time.time()
            try:
                exec(compile(scenario.code, "<cell>", "exec"), ns)
                out["raised"] = None
            except Exception as e:   # the check's InvalidArgumentError, or the cell's own error
                msg = str(e)
                out["raised"] = type(e).__name__
                m = re.search(r'Detected Infinity or NaN in output (\d+) of (graph|eagerly-executing) op "([^"]+)"', msg)
                if m:
                    out["op_type"], out["context"] = m.group(3), m.group(2)
                    n = re.search(r"Detected at node (\S+?)/CheckNumerics", msg) or re.search(r'op name: "?([^"\n)]+)', msg)
                    out["op_name"] = n.group(1) if n else None
                frames = [int(n) for n in re.findall(r'File "<cell>", line (\d+)', msg)]
                frames = frames or [f.lineno for f in traceback.extract_tb(e.__traceback__) if f.filename == "<cell>"]
                if frames:
                    out["op_line"] = [frames[-1], scenario.code.split("\n")[frames[-1] - 1].strip()]
                if not m:
                    out["message"] = msg[:300]
            finally:
                if part == "check":
                    tf.debugging.disable_check_numerics()
            out["seconds"] = round(time.time() - t0, 2)
            if part == "plain":
                out.update(loss_calls=int(hooks["_LOSS"]["calls"].numpy()) if hooks["_LOSS"] else 0,
                           first_nonfinite_loss=int(hooks["_LOSS"]["first"].numpy()) if hooks["_LOSS"] else -1,
                           nonfinite_loss_calls=int(hooks["_LOSS"]["bad"].numpy()) if hooks["_LOSS"] else 0)
                bad = []
                for k, v in list(ns.items()):
                    ws = [v] if isinstance(v, (tf.Variable, keras.Variable)) else (
                        list(v.weights) + list(getattr(v.optimizer, "variables", None) or [])
                        if isinstance(v, keras.Model) else [])
                    bad += [f"{k}:{getattr(w, 'path', '')}" for w in ws
                            if not np.isfinite(np.asarray(w.numpy(), dtype="float64")).all()]
                out["nonfinite_variables"] = bad[:6]
            result[part] = out
        print(json.dumps(result), flush=True)


def main(argv: list[str]) -> None:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from tests.scenarios.realbugs import FIXED, SCENARIOS

    pool = {**SCENARIOS, **FIXED}
    names = [a for a in argv if not a.startswith("--")] or list(pool)
    if "--fresh" not in argv:
        _one_process(pool, names)
        return
    from tests.tools.measure_harm import CHECK_READ
    from tests.tools.measure_scenarios import measure
    for name in names:
        plain = measure(pool[name], check=False, before=LOSS_HOOK, after=LOSS_READ)
        checked = measure(pool[name], check=True, after=CHECK_READ)
        print(json.dumps({"name": name, "plain": plain, "check": checked}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
