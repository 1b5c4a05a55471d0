"""pytest plugin: every report the test session produces is checked against schema 1.

Loaded from the root conftest (`pytest_plugins = ["tests.schema_validation"]`). It points
NANWATCH_SCHEMA_LOG at a fresh file before any test runs, so `Report.finish()` in this process
and in every process started from it (nbclient kernels, subprocess runs) validates its report and
appends one line {run_id, valid, errors}; a process without jsonschema (the TF 2.15 venv) logs
the report itself, validated here. The summary says how many reports were validated and lists
the invalid ones with the test that made them; any invalid report fails the session, since a
report off schema is a broken contract even when the test that made it passed.
"""

from __future__ import annotations

import json
import os
import tempfile

import pytest

LOG_ENV = "NANWATCH_SCHEMA_LOG"   # nanwatch.report.SCHEMA_LOG_ENV (not imported: loading stays cheap)
OUTSIDE = "<outside a test>"


class SchemaLog:
    """The log file and which test wrote which lines (by file offset)."""

    def __init__(self, path: str):
        self.path = path
        self.owner: list[tuple[int, str]] = []   # (offset where a test's lines start, its nodeid)
        self.results: dict | None = None

    def offset(self) -> int:
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0

    def read(self) -> dict:
        """{run_id: {"valid": bool, "errors": [...], "test": nodeid}}; a run logged twice must be valid twice."""
        runs: dict = {}
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except OSError:
            return runs
        pos = 0
        for raw in data.splitlines(keepends=True):
            start, pos = pos, pos + len(raw)
            test = next((node for off, node in reversed(self.owner) if off <= start), OUTSIDE)
            try:
                entry = json.loads(raw)
            except ValueError:   # a torn or foreign line: counted as an invalid report, not skipped
                text = raw[:200].decode("utf-8", "replace")
                entry = {"run_id": f"<unreadable line at byte {start}>", "valid": False, "errors": [text]}
            if entry.get("valid") is None and isinstance(entry.get("report"), dict):
                # logged where jsonschema is missing (the TF 2.15 venv): validated here instead
                from nanwatch.schema_json import validate_report
                errors = validate_report(entry["report"])
                entry = {"run_id": entry.get("run_id"), "valid": not errors, "errors": errors}
            run = runs.setdefault(str(entry.get("run_id")), {"valid": True, "errors": [], "test": test})
            if entry.get("valid") is not True:
                run["valid"] = False
                run["errors"] = list(entry.get("errors") or ["(no errors given)"])
                run["test"] = test
        return runs


def pytest_configure(config):
    fd, path = tempfile.mkstemp(prefix="nanwatch-schema-", suffix=".jsonl")
    os.close(fd)
    config._nanwatch_schema = SchemaLog(path)
    config._nanwatch_schema_previous = os.environ.get(LOG_ENV)
    os.environ[LOG_ENV] = path


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    log = item.config._nanwatch_schema
    log.owner.append((log.offset(), item.nodeid))
    yield
    log.owner.append((log.offset(), OUTSIDE))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session, exitstatus):
    log = session.config._nanwatch_schema
    log.results = log.read()
    if any(not r["valid"] for r in log.results.values()) and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    log = config._nanwatch_schema
    results = log.results if log.results is not None else log.read()
    invalid = {run_id: r for run_id, r in results.items() if not r["valid"]}
    line = f"schema: {len(results)} reports validated, {len(invalid)} invalid"
    terminalreporter.write_sep("-", line, red=bool(invalid), green=not invalid and bool(results))
    for run_id, r in invalid.items():
        terminalreporter.write_line(f"invalid report {run_id} (from {r['test']}):")
        for error in r["errors"][:10]:
            terminalreporter.write_line(f"    {error}")


def pytest_unconfigure(config):
    log = getattr(config, "_nanwatch_schema", None)
    if log is None:
        return
    previous = config._nanwatch_schema_previous
    if previous is None:
        os.environ.pop(LOG_ENV, None)
    else:
        os.environ[LOG_ENV] = previous
    try:
        os.unlink(log.path)
    except OSError:
        pass
