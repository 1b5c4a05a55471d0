"""Realistic schema-1 report dicts for the view tests, built through `Report` itself.

Going through `Report.finish().to_dict()` means the views see exactly what the engine hands
them (non-finite floats as "nan"/"inf" strings, derived run counts), without TensorFlow.
The numbers imitate a small Keras MLP: a decaying loss, per-layer norms every 10 steps.
"""

from __future__ import annotations

import math

from nanwatch.report import Report

STEPS_PER_EPOCH = 96


def _steps(n: int, nan_at: int | None = None) -> list[dict]:
    out = []
    for i in range(n):
        loss = 2.0 * math.exp(-i / 150) + 0.05
        if nan_at is not None and i >= nan_at:
            loss = float("nan")
        out.append({"step": i, "epoch": i // STEPS_PER_EPOCH, "phase": "train", "loss": loss,
                    "metrics": {"accuracy": min(0.99, 0.3 + i / 500)}, "grad_norm": 1.5 / (1 + i / 50)})
    return out


def _layer(name: str, index: int, n_steps: int, nan_at: int | None, every: int = 10) -> dict:
    scale = 1.0 + (index * 37 % 101) / 10
    history = [{"step": s, "weight_norm": scale * (3 + s / 1000), "grad_norm": scale * 0.2 / (1 + s / 100),
                "activation_norm": scale * 5.0} for s in range(0, n_steps, every)]
    rec = {"layer": name, "weight_norm": history[-1]["weight_norm"], "grad_norm": history[-1]["grad_norm"],
           "activation_norm": 5.0 * scale, "min": -0.8, "max": 0.9, "mean": 0.01, "std": 0.12,
           "nan": 0, "inf": 0, "history": history}
    if nan_at is not None and index == 1:  # the culprit layer: its gradient blew up at the NaN step
        history.append({"step": nan_at, "weight_norm": rec["weight_norm"], "grad_norm": float("inf"),
                        "activation_norm": float("nan")})
        rec.update(grad_norm=float("inf"), activation_norm=float("nan"), nan=5, inf=2)
    return rec


def layer_names(n: int) -> list[str]:
    if n == 2:
        return ["hidden", "scorer"]
    return [f"block_{i // 2}_{'dense' if i % 2 == 0 else 'norm'}" for i in range(n)]


def healthy_report(n_steps: int = 384, n_layers: int = 2) -> dict:
    r = Report(mode="fast", cell=7)
    r.steps = _steps(n_steps)
    r.layers = [_layer(name, i, n_steps, None) for i, name in enumerate(layer_names(n_layers))]
    r.duration_s = 2.31
    return r.finish().to_dict()


NAN_STEP = 137


def first_nonfinite(layer: str = "scorer", op_name: str = "sequential/scorer/Log") -> dict:
    return {
        "op_type": "Log", "op_name": op_name, "output_slot": 0, "phase": "loss", "layer": layer,
        "step": NAN_STEP, "epoch": NAN_STEP // STEPS_PER_EPOCH,
        "counts": {"nan": 5, "pos_inf": 0, "neg_inf": 2, "size": 100},
        "inputs": [{"name": "sequential/scorer/Softmax:0", "op_type": "Softmax", "finite": True, "min": 0.0,
                    "max": 1.0, "zeros": 7, "nan": 0, "pos_inf": 0, "neg_inf": 0, "size": 100}],
        "data": {"source": "x", "batch": 1, "rows": [13, 14, 40], "columns": [4], "values": ["nan"],
                 "array_rows": [77, 78, 104]},
        "source": {"cell": 12, "cell_id": "a1b2c3", "line": 4, "code": "loss = -tf.reduce_mean(tf.math.log(p))",
                   "file": "<nanwatch-cell-12>", "function": "<module>"},
        "device": "/job:localhost/replica:0/task:0/device:CPU:0", "replica": None, "context": "graph",
        "replayed": True, "reproduced": True,
        "histogram": {"input": "sequential/scorer/Softmax:0", "bins": [i / 20 for i in range(21)],
                      "counts": [7, 3, 4, 6, 8, 9, 5, 4, 6, 7, 5, 4, 3, 5, 6, 4, 3, 2, 4, 5]},
    }


DIAGNOSIS = [
    {"cause": "log_of_nonpositive", "confidence": 0.9,
     "evidence": "Log got 7 exact zeros from Softmax (min 0.0) at step 137; log(0) = -inf.",
     "fix": "eps = 1e-7\nloss = -tf.reduce_mean(tf.math.log(tf.clip_by_value(p, eps, 1.0)))"},
    {"cause": "nan_in_input", "confidence": 0.2,
     "evidence": "x rows 77, 78, 104 hold NaN in column 4.",
     "fix": "X = np.nan_to_num(X)  # or drop the rows: X = X[~np.isnan(X).any(axis=1)]"},
]

WARNINGS = [{"cause": "unscaled_input", "evidence": "column 2 of x spans 0 .. 1.2e6 while the others span ±3.",
             "fix": "from sklearn.preprocessing import StandardScaler\nX = StandardScaler().fit_transform(X)"}]


def nan_report(n_layers: int = 2, nan_step: int = NAN_STEP, **first_kwargs) -> dict:
    """Training that stops at its first NaN, at `nan_step` (the last step)."""
    r = Report(mode="fast", cell=12)
    r.steps = _steps(nan_step + 1, nan_at=nan_step)
    names = layer_names(n_layers)
    r.layers = [_layer(name, i, nan_step, nan_step) for i, name in enumerate(names)]
    first = first_nonfinite(**first_kwargs)
    first.update(step=nan_step, epoch=nan_step // STEPS_PER_EPOCH)
    if n_layers != 2 and "layer" not in first_kwargs:
        first["layer"] = names[1]
    r.first_nonfinite = first
    r.diagnosis = [dict(d) for d in DIAGNOSIS]
    r.warnings = [dict(w) for w in WARNINGS]
    r.info = ["jit_compile was turned off for the watched cell (the debug ops have no XLA kernels)."]
    r.notes = ["Training stopped at the first non-finite step; weights before it are kept."]
    r.stopped = True
    r.duration_s = 1.07
    return r.finish().to_dict()
