"""The static report renders where no extension runs: a notebook executed in a real kernel (nbclient),
exported with nbconvert's HTMLExporter; the exported page holds the report's HTML (the op, its layer,
the cause, the cell line's text), and a saved report opened with `%nanwatch show` exports the same way.

Run: .venv/bin/pytest -q tests/e2e/test_nbconvert_export.py   (one kernel, about a minute)
"""

from __future__ import annotations

import json
import os

import pytest

from tests.e2e.test_notebooks import kernel_env

pytestmark = pytest.mark.slow

SETUP = """\
%load_ext nanwatch
import numpy as np, keras, tensorflow as tf
X = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
y = X.sum(axis=1, keepdims=True)"""

WATCHED = """\
%%nanwatch --no-panel
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="hidden"),
                          keras.layers.Lambda(lambda t: tf.math.log(t), name="log_layer"),
                          keras.layers.Dense(1, name="out")])
model.compile(optimizer="sgd", loss="mse")
model.fit(X, y, epochs=1, batch_size=16, verbose=0)"""

SAVE = """\
import nanwatch, json
open("saved.json", "w").write(nanwatch.last_report().to_json())"""

SHOW = "%nanwatch show saved.json"


def test_report_is_in_the_exported_html_page(tmp_path):
    import nbformat
    from nbconvert import HTMLExporter
    from nanwatch.__main__ import run_notebook

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src) for src in (SETUP, WATCHED, SAVE, SHOW)]
    path = tmp_path / "export_me.ipynb"
    nbformat.write(nb, path)
    saved = dict(os.environ)
    os.environ.update(kernel_env())
    try:
        executed = run_notebook(str(path), timeout=600, output=str(path), store_widget_state=False)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    report = json.loads((tmp_path / "saved.json").read_text())
    first = report["first_nonfinite"]
    assert report["status"] == "nonfinite" and first["op_type"] == "Log" and first["layer"] == "log_layer"
    cause = report["diagnosis"][0]["cause"]

    body, _ = HTMLExporter().from_notebook_node(executed)
    (tmp_path / "export_me.html").write_text(body)
    # two reports in the page: the watched cell's and the saved one shown again
    assert body.count('class="nanwatch-report nw-report-nonfinite"') == 2
    for text in ("Log", "log_layer", cause, "tf.math.log(t)", "forward"):
        assert body.count(text) >= 2, text
    assert "<style>" in body and ".nanwatch-report" in body   # the report's own style travels with it
