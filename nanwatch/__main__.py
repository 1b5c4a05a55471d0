"""Headless run: `python -m nanwatch run NOTEBOOK.ipynb` executes a notebook and prints its reports.

Exit status: 0 all watched runs healthy (or warnings only), 1 a NaN/Inf was found,
2 the notebook failed to run. So it can serve in CI.
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nanwatch")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="execute a notebook headless and print its nanwatch reports")
    run.add_argument("notebook")
    run.add_argument("--timeout", type=int, default=900, help="per-cell timeout in seconds")
    run.add_argument("--output", help="write the executed notebook here")
    args = parser.parse_args(argv)

    from .views.text import render_text
    try:
        notebook = run_notebook(args.notebook, timeout=args.timeout, output=args.output)
    except Exception as exc:  # nbclient's CellExecutionError carries the cell's traceback
        print(f"nanwatch: {args.notebook} failed to run:\n{exc}", file=sys.stderr)
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
