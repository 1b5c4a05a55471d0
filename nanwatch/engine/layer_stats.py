"""Per-layer statistics every N steps: weight norms and ranges (one traced read of every
weight) and gradient norms (from the step), within a time budget by default.

Per-layer statistics read every weight (about a millisecond even for a small model, as
TensorFlow pays ~10 us per op): by default they are taken every 10 steps only while they
have cost at most BUDGET of the cell's training time so far (measured: 5-10% on a small CNN
without the budget). An explicit --stats-every N is followed exactly.
"""

from __future__ import annotations

import time

import numpy as np

from . import stats
from .sentinel import grad_variables

DEFAULT_EVERY = 10
BUDGET = 0.02   # share of training time per-layer statistics may take (unless --stats-every)


class LayerStatistics:
    def __init__(self, layers, every: int | None, detached):
        self.layers = layers              # LayerIndex
        self.every = every                # --stats-every N, or None for the budgeted default
        self.detached = detached          # context manager: nanwatch's own reads, neither instrumented nor checked
        self._variables: dict = {}        # id(model) -> [(variable, layer)] for this call
        self._started = None              # perf_counter at the first statistics
        self._spent = 0.0                 # seconds spent on statistics (after the first call)
        self._calls = 0

    def forget_variables(self, model):
        """A model may have grown since the last call: list its variables again."""
        self._variables.pop(id(model), None)

    def due(self, step: int) -> bool:
        if step % (self.every or DEFAULT_EVERY):
            return False
        if self.every:
            return True
        now = time.perf_counter()
        if self._started is None:
            self._started = now
            return True
        return self._spent <= BUDGET * (now - self._started)

    def take(self, model, step, grad_norms, note) -> list:
        """The layer records (schema 1 `layers`) at this step, each with its history `point` in place of
        the history; [] if none could be read."""
        started = time.perf_counter()
        records = self._records(model, step, grad_norms, note)
        if self._calls:   # the first call may trace the reading function: not a steady cost
            self._spent += time.perf_counter() - started
        self._calls += 1
        return records

    def _variables_by_layer(self, model) -> list:
        """[(trainable variable, its layer)], listed once per model and call: Keras walks every
        layer to answer `trainable_variables`, too slow to repeat every N steps."""
        cached = self._variables.get(id(model))
        if cached is None:
            mapping = self.layers.layer_of_variable
            cached = [(var, mapping[id(var)][0]) for var in getattr(model, "trainable_variables", [])
                      if id(var) in mapping and "float" in str(getattr(var, "dtype", ""))]
            self._variables[id(model)] = cached
        return cached

    def _records(self, model, step, grad_norms, note) -> list:
        by_layer: dict = {}
        pairs = self._variables_by_layer(model)
        try:
            with self.detached():
                summary = stats.weight_summary([var for var, _ in pairs])
        except Exception as exc:
            note(f"per-layer weight statistics failed: {type(exc).__name__}: {exc}"[:300])
            summary, pairs = None, []
        for (_, layer), row in zip(pairs, summary if summary is not None else []):
            entry = by_layer.setdefault(layer, {"g2": None, "min": None, "max": None,
                                                "sum": 0.0, "sq": 0.0, "n": 0, "nan": 0, "inf": 0})
            _accumulate(entry, row)
        if grad_norms is not None:
            mapping = self.layers.layer_of_variable
            for var, gnorm in zip(grad_variables(model), grad_norms):
                layer, _ = mapping.get(id(var), (None, None))
                if layer in by_layer:
                    by_layer[layer]["g2"] = (by_layer[layer]["g2"] or 0.0) + float(gnorm) ** 2
        records = []
        for layer, e in by_layer.items():
            mean = e["sum"] / e["n"] if e["n"] else None
            std = float(np.sqrt(max(e["sq"] / e["n"] - mean * mean, 0.0))) if e["n"] else None
            point = {"step": step, "weight_norm": float(np.sqrt(e["sq"])),
                     "grad_norm": float(np.sqrt(e["g2"])) if e["g2"] is not None else None,
                     "activation_norm": None}
            # the recorder keeps each layer's history (a bounded series) and puts it in the record
            records.append({"layer": layer, "weight_norm": point["weight_norm"], "grad_norm": point["grad_norm"],
                            "activation_norm": None, "min": e["min"], "max": e["max"], "mean": mean, "std": std,
                            "nan": e["nan"], "inf": e["inf"], "point": point})
        return records


def _accumulate(entry, row):
    """Add one variable's weight summary row (stats.weight_summary) to its layer's entry."""
    total, sumsq, lo, hi, nan, inf, finite = (float(v) for v in row)
    entry["nan"] += int(nan)
    entry["inf"] += int(inf)
    if finite:
        entry["sum"] += total
        entry["sq"] += sumsq
        entry["n"] += int(finite)
        entry["min"] = lo if entry["min"] is None else min(entry["min"], lo)
        entry["max"] = hi if entry["max"] is None else max(entry["max"], hi)
