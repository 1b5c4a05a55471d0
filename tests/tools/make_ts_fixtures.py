"""Write labextension/test/fixtures/reports/*.json from real watched runs (needs TensorFlow).

    .venv/bin/python tests/tools/make_ts_fixtures.py [--out DIR]

Each scenario runs as a `%%nanwatch --no-panel` cell in a real IPython shell with nanwatch
loaded, while a recording channel is attached to the kernel's CommBroadcaster (the sidebar's
sink). A fixture holds the cell, the report (`Report.to_dict()`) and every comm message the
broadcaster sent for that cell, ending with the snapshot a late sidebar would get. The jest
spec labextension/test/schema.spec.ts parses them; tests/unit/test_schema.py validates them
against docs/schema/. Rerun this when the engine's output changes, and commit the result.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "labextension" / "test" / "fixtures" / "reports"

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("IPYTHONDIR", tempfile.mkdtemp(prefix="nanwatch-ipython-"))
os.environ.setdefault("MPLBACKEND", "Agg")

SETUP = """
import numpy as np, tensorflow as tf, keras
keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)
X = rng.normal(size=(64, 4)).astype("float32")
y = (X[:, :1] > 0).astype("float32")
def mlp():
    m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu", name="hidden"),
                          keras.layers.Dense(1, activation="sigmoid", name="out")])
    m.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return m
"""

# name: (magic options, cell code)
SCENARIOS = {
    "healthy_fit": ("--stats-every 2", "model = mlp()\nmodel.fit(X, y, epochs=2, batch_size=16, verbose=0)"),
    "nan_in_data": ("", "X_bad = X.copy()\nX_bad[5, 2] = np.nan\nmodel = mlp()\n"
                        "model.fit(X_bad, y, epochs=2, batch_size=16, verbose=0, shuffle=False)"),
    "nan_in_model": ("", """
class LogLayer(keras.layers.Layer):
    def call(self, x):
        return tf.math.log(x * 0.0)   # log(0) = -inf
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="hidden"), LogLayer(name="log_layer"),
                          keras.layers.Dense(1, name="out")])
model.compile(optimizer="adam", loss="mse")
model.fit(X, y, epochs=1, batch_size=16, verbose=0)
"""),
    "tape_loop": ("", """
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, name="out")])
opt = keras.optimizers.SGD(0.01)
for step in range(4):
    with tf.GradientTape() as tape:
        pred = model(X)
        loss = tf.reduce_mean(tf.sqrt(pred + 8.0 - 4.0 * step))   # negative from step 2 on
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))
"""),
    "outlier_warning": ("", "X_out = X.copy()\nX_out[7, 1] = 1e10\nmodel = mlp()\n"
                            "model.fit(X_out, y, epochs=1, batch_size=16, verbose=0)"),
    "predict_nan_rows": ("", "model = mlp()\nX_new = X[:20].copy()\nX_new[[3, 11], 1] = np.nan\n"
                             "model.predict(X_new, batch_size=8, verbose=0)"),
}


class Recorder:
    """A comm-like channel (send / on_msg / on_close / close) that keeps what it is sent."""

    comm_id = "make-ts-fixtures"

    def __init__(self):
        self.sent: list = []
        self._on_msg = None

    def send(self, data=None, metadata=None, buffers=None):
        self.sent.append(json.loads(json.dumps(data, allow_nan=False)))   # strict JSON, as on the wire

    def on_msg(self, callback):
        self._on_msg = callback

    def on_close(self, callback):
        pass

    def close(self, *args, **kwargs):
        pass

    def hello(self):
        """What a sidebar does when it connects: the broadcaster answers with a snapshot."""
        self._on_msg({"content": {"comm_id": self.comm_id, "data": {"v": 1, "type": "hello"}}})


def run(names: list[str], out: Path) -> list[Path]:
    from IPython.core.interactiveshell import InteractiveShell
    import nanwatch
    from nanwatch import comm, session
    ip = InteractiveShell.instance()
    assert ip.run_cell("%load_ext nanwatch").success
    channel = Recorder()
    comm.sink().attach(channel)
    written = []
    for name in names:
        options, code = SCENARIOS[name]
        ip.reset(new_session=False)
        session.reset()
        comm.reset()
        assert ip.run_cell(SETUP).success
        channel.sent.clear()
        # a cell id, as JupyterLab sends one: the fixtures then carry source.cell_id and run.cell_id
        result = ip.run_cell(f"%%nanwatch --no-panel {options}\n{code.strip()}", store_history=True,
                             cell_id=f"fixture-{name}")
        if result.error_in_exec is not None:
            raise RuntimeError(f"{name}: the cell raised {result.error_in_exec!r}")
        channel.hello()
        report = nanwatch.last_report()
        import tensorflow as tf
        import keras
        fixture = {"scenario": name, "cell": f"%%nanwatch --no-panel {options}".strip() + "\n" + code.strip(),
                   "made_with": {"tensorflow": tf.__version__, "keras": keras.__version__,
                                 "python": sys.version.split()[0]},
                   "report": report.to_dict(), "messages": list(channel.sent)}
        path = out / f"{name}.json"
        path.write_text(json.dumps(fixture, indent=1, allow_nan=False) + "\n", encoding="utf-8")
        kinds = [m["type"] for m in channel.sent]
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}: {report.status}, "
              f"{len(report.steps)} steps, messages {kinds}")
        written.append(path)
    comm.sink().detach(channel)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("scenario", nargs="*", help=f"default: all of {', '.join(SCENARIOS)}")
    args = parser.parse_args(argv)
    unknown = set(args.scenario) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    args.out.mkdir(parents=True, exist_ok=True)
    run(args.scenario or list(SCENARIOS), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
