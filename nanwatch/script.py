"""A Python script as one watched run: `python -m nanwatch run SCRIPT.py [args]`.

The script runs as `__main__` (runpy) inside a `WatchSession`, with the magic's engine and options;
its frames are a real file's, so the report names the script's file, line and line text. The report
is written as JSON (schema 1) and, on request, as a self-contained HTML page beside it.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import traceback

from .options import Options

# process exit status of a watched run (the headless notebook runner uses the same)
EXIT_HEALTHY, EXIT_NONFINITE, EXIT_FAILED = 0, 1, 2


def run_script(path: str, args=(), options: Options | None = None, reraise: bool = True):
    """Run the script at `path` watched, with `sys.argv` = [path, *args]; return its Report.

    `sys.exit(0)` (or no code) ends the script normally; another exit code is a failed run. The
    script's own exception passes through, unless `reraise=False`: then its traceback is printed to
    stderr and the report (status "error") returned, as the command line wants it.
    """
    from .session import WatchSession

    path = os.path.abspath(path)
    session = WatchSession(options or Options(panel=False), sinks=[])
    saved_argv, saved_path0 = sys.argv, sys.path[0] if sys.path else None
    sys.argv = [path, *args]
    if sys.path:
        sys.path[0] = os.path.dirname(path)   # as `python SCRIPT.py` sets it
    kept = None   # the script's globals live until the run's end, as a cell's do in the notebook
    try:
        with session:
            try:
                kept = runpy.run_path(path, run_name="__main__")
            except SystemExit as exc:
                if exc.code not in (None, 0):
                    raise
    except BaseException:
        if reraise:
            raise
        traceback.print_exc()
    finally:
        sys.argv = saved_argv
        if sys.path and saved_path0 is not None:
            sys.path[0] = saved_path0
    del kept
    return session.report


def exit_status(report: dict) -> int:
    """1: a harmful NaN/Inf was found; 2: the run failed; 0: healthy (or warnings only)."""
    if report.get("status") == "nonfinite":
        return EXIT_NONFINITE
    if report.get("status") == "error":
        return EXIT_FAILED
    return EXIT_HEALTHY


def report_paths(path: str, html: bool) -> tuple[str, str | None]:
    """(JSON path, HTML path or None) for `--report PATH [--html]`: a PATH ending in .html gets its
    JSON beside it (same name, .json)."""
    root, ext = os.path.splitext(path)
    if ext.lower() in (".html", ".htm"):
        return root + ".json", path
    return path, (root + ".html" if html else None)


def html_page(report: dict, figures: bool = True) -> str:
    """The static report as a standalone page (the notebook's HTML view, with a title and charset)."""
    from .views.html import esc, render_html
    first = report.get("first_nonfinite") or {}
    title = f"nanwatch report: {report.get('status')}" + (f", {first.get('op_type')}" if first.get("op_type") else "")
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title></head>\n<body>\n{render_html(report, figures=figures)}\n</body></html>\n")


def write_report(report: dict, path: str, html: bool = False, figures: bool = True) -> list[str]:
    """Write the report JSON (and HTML); return the paths written."""
    json_path, html_path = report_paths(path, html)
    written = []
    for target, text in ((json_path, json.dumps(report, indent=1)),
                         (html_path, html_page(report, figures) if html_path else None)):
        if target is None:
            continue
        os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
        with open(target, "w", encoding="utf-8") as f:
            f.write(text)
        written.append(target)
    return written
