"""Headless runs, so nanwatch can serve in CI and batch jobs.

`python -m nanwatch run NOTEBOOK.ipynb` executes a notebook and prints the reports of its watched cells.
`python -m nanwatch run [options] SCRIPT.py [script args]` runs a Python script as one watched run
(the options of `%%nanwatch`, before the script; what follows the script is the script's), prints the
report and, with `--report PATH`, writes it as JSON (schema 1; HTML beside it with `--html` or a PATH
ending in .html).

Exit status: 0 healthy (or warnings only), 1 a NaN/Inf was found, 2 the notebook or script failed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .report import MIME_TYPE


def reports_in(notebook) -> list:
    """The report dicts a notebook's outputs hold, in cell order."""
    found = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if MIME_TYPE in data:
                payload = data[MIME_TYPE]
                found.append(json.loads(payload) if isinstance(payload, str) else payload)
    return found


def run_notebook(path: str, timeout: int = 900, output: str | None = None, store_widget_state: bool = True):
    import nbformat
    from nbclient import NotebookClient

    # The kernel must be this Python (with nanwatch and TensorFlow), not whatever "python" is on PATH.
    os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": os.path.dirname(os.path.abspath(path))}},
                            store_widget_state=store_widget_state)
    client.execute()
    if output:
        nbformat.write(notebook, output)
    return notebook


def _parser() -> argparse.ArgumentParser:
    from .options import parser as options_parser
    parser = argparse.ArgumentParser(prog="python -m nanwatch")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", parents=[options_parser()], usage=_RUN_USAGE,
                         help="run a notebook or a Python script watched and print the report(s)")
    run.add_argument("target", metavar="NOTEBOOK.ipynb | SCRIPT.py")
    run.add_argument("args", nargs=argparse.REMAINDER, help="the script's own arguments")
    run.add_argument("--report", metavar="PATH", help="script: write the report as JSON here (schema 1)")
    run.add_argument("--html", action="store_true", help="script: also write the report as HTML beside it")
    run.add_argument("--timeout", type=int, default=900, help="notebook: per-cell timeout in seconds")
    run.add_argument("--output", help="notebook: write the executed notebook here")
    return parser


_RUN_USAGE = ("python -m nanwatch run NOTEBOOK.ipynb [--timeout S] [--output PATH]\n"
              "       python -m nanwatch run [--mode M] [--no-stop] [--stats-every N] [--no-figures] [--no-replay]\n"
              "                              [--report PATH] [--html] SCRIPT.py [script args ...]")


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.target.endswith(".ipynb"):
        if args.args:   # the notebook form takes its options after the notebook too
            after = argparse.ArgumentParser(prog="python -m nanwatch run NOTEBOOK.ipynb")
            after.add_argument("--timeout", type=int, default=args.timeout)
            after.add_argument("--output", default=args.output)
            args.__dict__.update(vars(after.parse_args(args.args)))
        return run_notebook_command(args)
    return run_script_command(args)


def run_script_command(args) -> int:
    from dataclasses import fields

    from .options import Options
    from .script import EXIT_FAILED, exit_status, run_script, write_report
    from .views.text import render_text

    options = Options(**{f.name: getattr(args, f.name) for f in fields(Options) if f.name != "panel"},
                      panel=False)
    if not os.path.isfile(args.target):
        print(f"nanwatch: no such script: {args.target}", file=sys.stderr)
        return EXIT_FAILED
    report = run_script(args.target, args.args, options, reraise=False).to_dict()
    print(render_text(report), file=sys.stderr)
    if args.report:
        for path in write_report(report, args.report, html=args.html, figures=options.figures):
            print(f"nanwatch: report written to {path}", file=sys.stderr)
    return exit_status(report)


def run_notebook_command(args) -> int:
    from .views.text import render_text
    try:
        notebook = run_notebook(args.target, timeout=args.timeout, output=args.output)
    except Exception as exc:  # nbclient's CellExecutionError carries the cell's traceback
        print(f"nanwatch: {args.target} failed to run:\n{exc}", file=sys.stderr)
        return 2
    reports = reports_in(notebook)
    for number, report in enumerate(reports, 1):
        print(f"--- report {number} of {len(reports)} ---")
        print(render_text(report))
    if not reports:
        print("nanwatch: the notebook has no %%nanwatch cell.")
    found = any(r.get("status") == "nonfinite" for r in reports)
    print(f"nanwatch: {len(reports)} watched run(s); "
          f"{'NaN/Inf found' if found else 'no NaN/Inf'}.")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
