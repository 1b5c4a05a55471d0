"""Measure what raw TensorFlow does on a scenario (the ground truth for scenario expectations).

Not a test: a tool. For each scenario it starts a fresh Python (so nothing is shared between runs),
runs `setup` plainly, then runs `code` twice in fresh processes:
  1. under `tf.debugging.enable_check_numerics()` with inter-op parallelism 1 (ops run one at a time
     in topological order, so the first op that raises is the first op that produced NaN/Inf),
     the cell compiled under the file name "<cell>" so the op's creation stack names the cell line;
  2. plainly, timed, then every Keras model / weight / loss history left in the namespace is checked for
     non-finite values (did the NaN reach the user at all?).

    .venv/bin/python tests/tools/measure_scenarios.py [zoo|core|diagnosis] [name ...]

prints one JSON line per scenario. The catalogue defaults to diagnosis (its SCENARIOS and FALSE_ALARMS);
a module path (e.g. tests.scenarios.zoo) works too. The scenarios come from the catalogues through
tests/scenarios/catalogue.py (`load`), whose `truth="check_numerics"` names this measurement.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

CHILD = r'''
import json, os, re, sys, time, traceback
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np
import tensorflow as tf
import keras
tf.config.threading.set_inter_op_parallelism_threads(1)
spec = json.loads(sys.stdin.read())
exec(spec.get("before") or "")   # a measurement's own hooks (tests/tools/measure_harm.py), before the setup
ns = {}
if spec.get("setup"):
    exec(compile(spec["setup"], "<setup>", "exec"), ns)
out = {}
if spec["check"]:
    tf.debugging.enable_check_numerics()
t0 = time.time()
try:
    exec(compile(spec["code"], "<cell>", "exec"), ns)
    out["raised"] = None
except Exception as e:
    msg = str(e)
    out["raised"] = type(e).__name__
    out["traceback_cell_lines"] = [f.lineno for f in traceback.extract_tb(e.__traceback__) if f.filename == "<cell>"]
    m = re.search(r'Detected Infinity or NaN in output (\d+) of (graph|eagerly-executing) op "([^"]+)"', msg)
    if m:
        out["slot"], out["context"], out["op_type"] = int(m.group(1)), m.group(2), m.group(3)
        g = re.search(r"Graph name: \"([^\"]+)\"", msg)
        out["graph"] = g.group(1) if g else None
        n = re.search(r"Detected at node (\S+?)/CheckNumerics", msg) or re.search(r"op name: \"?([^\"\n)]+)", msg)
        out["op_name"] = n.group(1) if n else None
        for key, pat in (("dtype", r"dtype: <dtype: '(\w+)'>"), ("shape", r"shape: (\([^)]*\))"),
                         ("neg_inf", r"# of -Inf elements: (\d+)"), ("pos_inf", r"# of \+Inf elements: (\d+)"),
                         ("nan", r"# of NaN elements: (\d+)")):
            k = re.search(pat, msg)
            out[key] = k.group(1) if k else None
        lines = re.findall(r'File "<cell>", line (\d+)', msg) or re.findall(r"<cell>:(\d+)", msg)
        code_lines = spec["code"].split("\n")
        out["cell_lines"] = [(int(n), code_lines[int(n) - 1].strip()) for n in dict.fromkeys(lines)][:3]
        out["input_note"] = re.findall(r"Input tensors? \(\d+\):\s*\n(.*?)\n\n", msg, re.S)[:1]
    else:
        out["message"] = msg[:600]
out["seconds"] = round(time.time() - t0, 2)
if not spec["check"]:
    bad = []
    for k, v in list(ns.items()):
        if isinstance(v, keras.Model):
            hist = getattr(getattr(v, "history", None), "history", None) or {}
            for m, vals in hist.items():
                if not np.isfinite(np.asarray(vals, dtype="float64")).all():
                    bad.append(f"{k}.history.{m}={vals}")
            for w in v.weights:
                a = np.asarray(w.numpy(), dtype="float64") if w.dtype != "string" else None
                if a is not None and not np.isfinite(a).all():
                    bad.append(f"{k}.{w.path}")
        if isinstance(v, keras.callbacks.History):
            for m, vals in v.history.items():
                if not np.isfinite(np.asarray(vals, dtype="float64")).all():
                    bad.append(f"history.{m}={vals}")
            out["history"] = {m: [float(x) for x in vals][:12] for m, vals in v.history.items()}
        if isinstance(v, (np.ndarray, tf.Tensor)) and k in ("predictions", "loss", "y_pred", "p"):
            a = np.asarray(v, dtype="float64")
            out[f"{k}_finite"] = bool(np.isfinite(a).all())
    out["nonfinite_after"] = bad
exec(spec.get("after") or "")    # a measurement's own reading of `ns`, `out` (and `msg` when the cell raised)
print("RESULT " + json.dumps(out))
'''


def measure(scenario, check: bool, before: str = "", after: str = "") -> dict:
    """One fresh process running a catalogue Scenario (tests/scenarios/catalogue.py) under raw TensorFlow.

    `before` runs first in the child (hooks), `after` last (it reads `ns`, the cell's namespace, and adds
    to `out`, the result); tests/tools/measure_harm.py uses them.
    """
    spec = {"setup": scenario.setup or "", "code": scenario.code, "check": check, "before": before, "after": after}
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", CHILD], input=json.dumps(spec), capture_output=True,
                          text=True, env=env, timeout=300)
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": (proc.stderr or proc.stdout)[-1500:]}


def main(argv: list[str]) -> None:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from tests.scenarios.catalogue import CATALOGUES, load

    name = "diagnosis"
    if argv and (argv[0] in CATALOGUES or "." in argv[0]):
        name, argv = argv[0], argv[1:]
    pool = load(name)
    names = argv or list(pool)
    for name in names:
        checked = measure(pool[name], check=True)
        plain = measure(pool[name], check=False)
        print(json.dumps({"name": name, "check_numerics": checked, "plain": plain}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
