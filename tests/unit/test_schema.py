"""Schema 1 (nanwatch/schema.py): the checked-in files match the generator, real reports validate,
wrong ones do not, and the suite's schema plugin (tests/schema_validation.py) fails a session that
produced an invalid report. No TensorFlow: the real reports are the fixtures that
tests/tools/make_ts_fixtures.py recorded from real runs.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nanwatch import comm, schema
from nanwatch.report import SCHEMA_LOG_ENV, Report

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = sorted((ROOT / "labextension" / "test" / "fixtures" / "reports").glob("*.json"))


def _gen_schema():
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import gen_schema
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    return gen_schema


def _fixture(name: str) -> dict:
    return json.loads((ROOT / "labextension" / "test" / "fixtures" / "reports" / f"{name}.json").read_text())


# --- the checked-in files -------------------------------------------------------------

def test_checked_in_schema_files_are_what_the_generator_writes():
    stale = [rel for rel, text in _gen_schema().outputs().items()
             if not (ROOT / rel).exists() or (ROOT / rel).read_text(encoding="utf-8") != text]
    assert stale == [], f"run `python scripts/gen_schema.py` and commit: {stale}"


def test_generator_check_mode_reports_a_stale_file(tmp_path, monkeypatch):
    gen = _gen_schema()
    for rel, text in gen.outputs().items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    monkeypatch.setattr(gen, "ROOT", tmp_path)
    assert gen.main(["--check"]) == 0
    (tmp_path / gen.REPORT_JSON).write_text("{}\n", encoding="utf-8")
    assert gen.main(["--check"]) == 1


def test_cause_ids_are_the_diagnosis_causes_and_its_error_warning():
    from nanwatch.diagnosis import CAUSES
    assert set(schema.CAUSE_IDS) == set(CAUSES) | {"diagnosis_error"}
    assert len(schema.CAUSE_IDS) == len(set(schema.CAUSE_IDS))
    assert schema.report_json_schema()["$defs"]["CauseId"]["enum"] == list(schema.CAUSE_IDS)


def test_schemas_carry_the_limits_the_kernel_uses():
    for doc in (schema.report_json_schema(), schema.comm_json_schema()):
        assert doc["x-nanwatch-limits"] == schema.LIMITS
    assert (comm.MAX_RUNS, comm.MAX_STEPS, comm.MAX_HISTORY) == (schema.MAX_RUNS, schema.MAX_STEPS, schema.MAX_HISTORY)
    assert schema.LIMITS["MAX_HISTORY"] == 200


def test_comm_schema_lists_every_message_once():
    messages = schema.comm_json_schema()["x-nanwatch-messages"]
    assert list(messages["kernel_to_frontend"]) == ["run_started", "progress", "first_nonfinite", "run_finished",
                                                   "snapshot", "reset"]
    assert list(messages["frontend_to_kernel"]) == ["hello"]


def test_enums_are_strings_that_compare_as_their_values():
    assert schema.Status.NONFINITE == "nonfinite" and f"{schema.Mode.FAST}" == "fast"
    assert [m.value for m in schema.OpPhase] == ["input", "forward", "loss", "backward", "optimizer", "metric"]
    assert [m.value for m in schema.CallKind] == ["train", "evaluate", "predict"]
    assert [m.value for m in schema.Context] == list(schema.CONTEXTS)


def test_json_safe():
    np = pytest.importorskip("numpy")
    out = schema.json_safe({1: (float("nan"), float("inf"), -float("inf"), np.float32(2.5), np.int64(3)), "s": "x"})
    assert out == {"1": ["nan", "inf", "-inf", 2.5, 3], "s": "x"}
    assert type(out["1"][4]) is int
    json.dumps(out, allow_nan=False)


# --- validation -------------------------------------------------------------------------

@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_real_reports_and_their_messages_validate(path):
    fixture = json.loads(path.read_text())
    assert schema.validate_report(fixture["report"]) == []
    for message in fixture["messages"]:
        assert schema.validate_message(message) == [], message["type"]


def test_there_are_real_fixtures_of_each_kind():
    statuses = {_fixture(p.stem)["report"]["status"] for p in FIXTURES}
    assert {"healthy", "warning", "nonfinite"} <= statuses
    contexts = {(_fixture(p.stem)["report"]["first_nonfinite"] or {}).get("context") for p in FIXTURES}
    assert {"data", "eager"} <= contexts


def test_a_report_built_through_report_validates():
    report = Report(mode="fast", cell=3)
    report.steps = [{"step": 0, "epoch": 0, "phase": "train", "loss": float("nan"), "metrics": {"acc": 0.5},
                     "grad_norm": float("inf")}]
    report.first_nonfinite = _fixture("nan_in_model")["report"]["first_nonfinite"]
    report.diagnosis = [{"cause": "log_of_nonpositive", "confidence": 0.9, "evidence": "e", "fix": "f"}]
    assert schema.validate_report(report.finish().to_dict()) == []


@pytest.mark.parametrize("change, where", [
    (lambda d: d.update(status="broken"), "status"),
    (lambda d: d.update(mode="auto"), "mode"),
    (lambda d: d["run"].pop("watched"), "run"),
    (lambda d: d["run"].update(surprise=1), "run"),
    (lambda d: d["first_nonfinite"].update(phase="train"), "first_nonfinite/phase"),
    (lambda d: d["first_nonfinite"].update(replica="0"), "first_nonfinite/replica"),
    (lambda d: d["first_nonfinite"].update(context="replay"), "first_nonfinite/context"),
    (lambda d: d["first_nonfinite"]["counts"].pop("nan"), "first_nonfinite/counts"),
    (lambda d: d["diagnosis"][0].update(cause="gremlins"), "diagnosis/0/cause"),
    (lambda d: d["steps"].append({"step": 9, "epoch": 0, "phase": "forward", "loss": 1.0, "metrics": {},
                                  "grad_norm": None}), "steps/1/phase"),
    (lambda d: d["steps"][0].update(loss=[1.0]), "steps/0/loss"),
    (lambda d: d["steps"][0].update(loss="NaN"), "steps/0/loss"),
])
def test_a_wrong_report_is_invalid_and_the_error_says_where(change, where):
    report = copy.deepcopy(_fixture("nan_in_data")["report"])
    assert schema.validate_report(report) == []
    change(report)
    errors = schema.validate_report(report)
    assert errors and any(e.startswith(where) for e in errors), errors


def test_a_wrong_message_is_invalid():
    assert schema.validate_message({"v": 1, "type": "hello"}) == []
    assert schema.validate_message({"v": 1, "type": "hello", "code": "x"}) != []
    assert schema.validate_message({"v": 2, "type": "reset"}) != []
    assert schema.validate_message({"v": 1, "type": "eval"}) != []
    assert schema.validate_message({"v": 1, "type": "run_started", "run": {"run_id": "r", "cell": 1,
                                                                         "mode": "fast", "started": 1.0}}) != []


# --- Report.finish() logs its verdict when asked ----------------------------------------------

def test_finish_logs_one_line_per_report_when_the_variable_is_set(tmp_path, monkeypatch):
    log = tmp_path / "schema.jsonl"
    monkeypatch.setenv(SCHEMA_LOG_ENV, str(log))
    good = Report().finish()
    bad = Report()
    bad.first_nonfinite = {"op_type": "Log"}
    bad.finish()
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [(e["run_id"], e["valid"]) for e in lines] == [(good.run_id, True), (bad.run_id, False)]
    assert any("first_nonfinite" in e for e in lines[1]["errors"])


def test_finish_never_raises_when_the_log_cannot_be_written(tmp_path, monkeypatch):
    monkeypatch.setenv(SCHEMA_LOG_ENV, str(tmp_path))   # a directory: open() fails
    assert Report().finish().status == "healthy"
    monkeypatch.delenv(SCHEMA_LOG_ENV)
    assert Report().finish().status == "healthy"


def test_without_jsonschema_finish_logs_the_report_and_the_plugin_validates_it(tmp_path, monkeypatch):
    from tests.schema_validation import SchemaLog

    def no_jsonschema(report):
        raise ImportError("No module named 'jsonschema'")

    log = tmp_path / "schema.jsonl"
    monkeypatch.setenv(SCHEMA_LOG_ENV, str(log))
    monkeypatch.setattr(schema, "validate_report", no_jsonschema)
    good = Report().finish()
    bad = Report()
    bad.first_nonfinite = {"op_type": "Log"}
    bad.finish()
    monkeypatch.undo()
    assert [json.loads(line)["valid"] for line in log.read_text().splitlines()] == [None, None]
    results = SchemaLog(str(log)).read()
    assert results[good.run_id]["valid"] is True
    assert results[bad.run_id]["valid"] is False and results[bad.run_id]["errors"]


def test_restore_weights_uses_the_public_pre_nan_weights():
    class Model:
        weights = None

        def set_weights(self, w):
            self.weights = w

    report, model = Report(), Model()
    with pytest.raises(ValueError):
        report.restore_weights(model)
    report.pre_nan_weights = [1, 2]
    report.restore_weights(model)
    assert model.weights == [1, 2]
    assert "pre_nan_weights" not in report.to_dict() and "pre_nan_weights" not in report.to_dict()["run"]


# --- the pytest plugin ------------------------------------------------------------------------

@pytest.mark.parametrize("valid", [True, False])
def test_the_plugin_counts_reports_and_fails_the_session_on_an_invalid_one(tmp_path, valid):
    (tmp_path / "test_inner.py").write_text(textwrap.dedent(f"""
        from nanwatch.report import Report

        def test_makes_reports():
            Report().finish()
            r = Report()
            if not {valid}:
                r.first_nonfinite = {{"op_type": "Log"}}
            r.finish()
    """))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env.pop(SCHEMA_LOG_ENV, None)
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "tests.schema_validation", "-p",
                          "no:cacheprovider", "--rootdir", str(tmp_path), str(tmp_path / "test_inner.py")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    out = run.stdout + run.stderr
    if valid:
        assert run.returncode == 0, out
        assert "schema: 2 reports validated, 0 invalid" in out
    else:
        assert run.returncode == 1, out
        assert "schema: 2 reports validated, 1 invalid" in out
        assert "test_inner.py::test_makes_reports" in out and "first_nonfinite" in out
