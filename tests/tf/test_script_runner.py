"""`python -m nanwatch run SCRIPT.py`: real small scripts, each run in a process of its own as a user
would run them (real TensorFlow, the real command line). Exit status 0 healthy, 1 NaN/Inf, 2 failed;
the report JSON is schema 1 and names the script's file, line and line text; `.html` writes a page."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nanwatch.schema_json import validate_report

REPO = Path(__file__).resolve().parents[2]

MODEL = """
import sys
import numpy as np
import keras
import tensorflow as tf

x = np.random.RandomState(0).normal(size=(64, 4)).astype("float32")
y = x.sum(axis=1, keepdims=True)
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu", name="hidden"),
                          keras.layers.Dense(1, name="out")])
"""

HEALTHY = MODEL + """
model.compile(optimizer="sgd", loss="mse")
model.fit(x, y, epochs=int(sys.argv[1]), batch_size=16, verbose=0)
print("script args", sys.argv[1:])
"""

NAN = MODEL + """

def log_loss(y_true, y_pred):
    return tf.reduce_mean(tf.math.log(y_pred - y_true))   # negative argument: NaN


model.compile(optimizer="sgd", loss=log_loss)
model.fit(x, y, epochs=2, batch_size=16, verbose=0)
print("not reached: the run stops at the first NaN")
"""

RAISING = MODEL + """
model.compile(optimizer="sgd", loss="mse")
model.fit(x, y, epochs=1, batch_size=16, verbose=0)
raise RuntimeError("the script's own bug")
"""


def run_cli(tmp_path, name, source, *options, args=()):
    script = tmp_path / name
    script.write_text(textwrap.dedent(source))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
               TF_CPP_MIN_LOG_LEVEL="3", MPLBACKEND="Agg")
    done = subprocess.run([sys.executable, "-m", "nanwatch", "run", *options, str(script), *args],
                          capture_output=True, text=True, env=env, timeout=600, cwd=str(tmp_path))
    return done, script


def line_of(script: Path, text: str) -> int:
    return next(n for n, line in enumerate(script.read_text().splitlines(), 1) if text in line)


def test_healthy_script_exits_0_with_its_arguments_and_writes_json_and_html(tmp_path):
    report_path = tmp_path / "out" / "healthy.json"
    done, _ = run_cli(tmp_path, "healthy.py", HEALTHY, "--report", str(report_path), "--html", "--mode", "fast",
                      args=("2",))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "script args ['2']" in done.stdout
    assert "nanwatch: healthy" in done.stderr
    report = json.loads(report_path.read_text())
    assert validate_report(report) == []
    assert report["status"] == "healthy" and report["mode"] == "fast"
    assert report["run"]["epochs"] == 2 and report["run"]["steps"] == 8
    page = (tmp_path / "out" / "healthy.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "nanwatch-report" in page and "<meta charset" in page


def test_nan_script_exits_1_naming_the_op_and_the_scripts_line(tmp_path):
    report_path = tmp_path / "nan.html"     # .html: the page, and the JSON beside it
    done, script = run_cli(tmp_path, "nan_loss.py", NAN, "--report", str(report_path))
    assert done.returncode == 1, done.stderr[-3000:]
    assert "not reached" not in done.stdout
    report = json.loads((tmp_path / "nan.json").read_text())
    assert validate_report(report) == []
    first = report["first_nonfinite"]
    assert report["status"] == "nonfinite" and report["run"]["stopped"]
    assert first["op_type"] == "Log" and first["phase"] == "loss" and first["step"] == 0
    source = first["source"]
    assert source["file"] == str(script) and source["cell"] is None
    assert source["line"] == line_of(script, "tf.math.log(y_pred - y_true)")
    assert source["code"] == "return tf.reduce_mean(tf.math.log(y_pred - y_true))   # negative argument: NaN"
    assert source["function"] == "log_loss"
    assert report["diagnosis"][0]["cause"] == "log_of_nonpositive"
    page = report_path.read_text()
    assert "Log" in page and "log_of_nonpositive" in page and "tf.math.log(y_pred - y_true)" in page


def test_raising_script_exits_2_with_its_traceback_and_an_error_report(tmp_path):
    report_path = tmp_path / "raising.json"
    done, _ = run_cli(tmp_path, "raising.py", RAISING, "--report", str(report_path))
    assert done.returncode == 2, done.stderr[-3000:]
    assert "RuntimeError: the script's own bug" in done.stderr      # the script's own traceback
    report = json.loads(report_path.read_text())
    assert validate_report(report) == []
    assert report["status"] == "error" and report["first_nonfinite"] is None
    assert report["run"]["error"] == "RuntimeError: the script's own bug"


@pytest.mark.parametrize("code, status", [("sys.exit(0)", 0), ("sys.exit(3)", 2)])
def test_sys_exit_zero_is_a_normal_end_and_another_code_a_failed_run(tmp_path, code, status):
    done, _ = run_cli(tmp_path, "exits.py", f"import sys\nprint('ran')\n{code}\nprint('not reached')\n")
    assert done.returncode == status, done.stderr[-3000:]
    assert done.stdout.strip() == "ran"
