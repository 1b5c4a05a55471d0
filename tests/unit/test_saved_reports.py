"""Saved reports (no TensorFlow): `%nanwatch show PATH` displays a report file as a cell's report, the
script runner's file names, exit statuses and standalone HTML page. The reports are real ones, recorded
from real runs for the sidebar's tests (labextension/test/fixtures/reports)."""

import json
from pathlib import Path

import pytest

from nanwatch.options import UsageError
from nanwatch.report import MIME_TYPE, compact
from nanwatch.schema_json import validate_report
from nanwatch.script import exit_status, html_page, report_paths, write_report

FIXTURES = Path(__file__).resolve().parents[2] / "labextension" / "test" / "fixtures" / "reports"


def recorded(name: str) -> dict:
    return json.loads((FIXTURES / f"{name}.json").read_text())["report"]


def test_show_displays_a_saved_report_as_the_cell_did(shell, tmp_path):
    report = recorded("nan_in_model")
    path = tmp_path / "saved report.json"
    path.write_text(json.dumps(report))
    result = shell.run_cell(f'%nanwatch show "{path}"')
    assert result.success, result.error_in_exec
    bundle = result.result._repr_mimebundle_()
    first = report["first_nonfinite"]
    assert first["op_type"] == "Log" and first["layer"] == "log_layer"
    html = bundle["text/html"]
    assert "Log" in html and "log_layer" in html and report["diagnosis"][0]["cause"] in html
    assert first["source"]["code"] in html                # the line's text, with no notebook open
    assert bundle["text/plain"].startswith("nanwatch: Inf found at step 0 (epoch 0): Log in layer 'log_layer'")
    assert bundle[MIME_TYPE] == compact(report)          # the payload the sidebar reads from outputs


@pytest.mark.parametrize("content, message", [
    (None, "cannot read the report"),
    ("{not json", "is not JSON"),
    (json.dumps({"cells": []}), "is not a nanwatch report"),
    (json.dumps({"schema": 1, "status": "purple"}), "does not follow report schema 1"),
])
def test_show_refuses_what_is_not_a_report(shell, tmp_path, content, message):
    from nanwatch.saved import load_report
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(UsageError, match=message):
        load_report(str(path))
    assert not shell.run_cell(f"%nanwatch show {path}").success


def test_report_paths_json_and_html_beside_it(tmp_path):
    assert report_paths("out/r.json", html=False) == ("out/r.json", None)
    assert report_paths("out/r.json", html=True) == ("out/r.json", "out/r.html")
    assert report_paths("out/r.html", html=False) == ("out/r.json", "out/r.html")
    report = recorded("healthy_fit")
    written = write_report(report, str(tmp_path / "deep" / "r.html"), figures=False)
    assert written == [str(tmp_path / "deep" / "r.json"), str(tmp_path / "deep" / "r.html")]
    assert validate_report(json.loads((tmp_path / "deep" / "r.json").read_text())) == []


@pytest.mark.parametrize("name, status", [("healthy_fit", 0), ("outlier_warning", 0), ("nan_in_model", 1),
                                          ("nan_in_data", 1)])
def test_exit_status_of_recorded_reports(name, status):
    assert exit_status(recorded(name)) == status


def test_exit_status_of_a_failed_run():
    report = dict(recorded("healthy_fit"), status="error")
    assert exit_status(report) == 2


def test_html_page_is_a_standalone_page_naming_the_op():
    page = html_page(recorded("nan_in_model"), figures=False)
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    assert "<title>nanwatch report: nonfinite, Log</title>" in page and "log_layer" in page
