"""IPython magics: `%%nanwatch [options]` runs a cell watched; `%nanwatch` manages state and shows
saved reports (`%nanwatch show PATH`).

The cell body is compiled under a name IPython knows (its CachingCompiler), padded
with one blank line for the magic line, so line N of the code object is line N of
the notebook cell and tracebacks and creation stacks point at the right line.
"""

from __future__ import annotations

import ast
import sys

from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from . import session as session_mod
from .engine.frames import CellMap
from .options import UsageError, parse_line, usage

_LINE_HELP = """%nanwatch           show the last report
%nanwatch last      show the last report
%nanwatch reset     forget past reports (and clear the sidebar for this kernel)
%nanwatch show PATH show a report saved as JSON (python -m nanwatch run SCRIPT.py --report PATH)
%nanwatch --help    this help, and the options of %%nanwatch
"""


@magics_class
class NanwatchMagics(Magics):
    def __init__(self, shell):
        super().__init__(shell)
        self.cells = CellMap()
        self.cells.shell = shell
        self._running_cell_id = None
        shell.events.register("pre_run_cell", self._cell_starts)
        shell.events.register("post_run_cell", self._cell_ran)

    def _cell_starts(self, info=None):
        """The notebook's id of the cell about to run (for jump-to-line in the sidebar)."""
        self._running_cell_id = getattr(info, "cell_id", None)

    def _cell_ran(self, result=None):
        number = getattr(result, "execution_count", None)
        if number is not None and self._running_cell_id:
            self.cells.cell_ids[number] = self._running_cell_id

    @line_magic
    def nanwatch(self, line=""):
        command = line.strip()
        if command in ("", "last"):
            report = session_mod.last_report()
            if report is None:
                print("nanwatch: no watched run yet in this kernel. Put %%nanwatch on a training cell.")
                return None
            return report
        if command == "reset":
            session_mod.reset()
            _comm_reset()
            print("nanwatch: reports forgotten.")
            return None
        if command.split(None, 1)[0:1] == ["show"]:
            from .saved import load_report
            path = command[4:].strip()
            if len(path) >= 2 and path[0] == path[-1] and path[0] in "'\"":
                path = path[1:-1]
            if not path:
                raise UsageError("%nanwatch show PATH: the path of a report saved as JSON")
            return load_report(path)
        if command in ("--help", "-h", "help"):
            print(_LINE_HELP + "\n" + usage())
            return None
        raise UsageError(f"unknown %nanwatch command {command!r}\n\n{_LINE_HELP}")

    @cell_magic("nanwatch")
    def nanwatch_cell(self, line, cell):
        __tracebackhide__ = True
        options = parse_line(line)          # a usage error here runs nothing
        shell = self.shell
        number = _current_cell_number(shell)
        if self._running_cell_id:
            self.cells.cell_ids[number] = self._running_cell_id
        code = shell.transform_cell(cell)
        filename = shell.compile.cache("\n" + code, number=number, raw_code="\n" + cell)
        self.cells.files[filename] = number
        tree = shell.compile.ast_parse("\n" + code, filename=filename)
        last_expr = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last_expr = ast.Expression(tree.body.pop().value)
        sinks = _sinks(options)
        watch = session_mod.WatchSession(options, cells=self.cells, cell=number, sinks=sinks)
        result = None
        try:
            with watch:
                exec(shell.compile(tree, filename, "exec"), shell.user_global_ns, shell.user_ns)
                if last_expr is not None:
                    result = eval(shell.compile(last_expr, filename, "eval"), shell.user_global_ns, shell.user_ns)
        finally:
            _show(watch.report)
        return result


def _current_cell_number(shell) -> int:
    """The In[N] of the running cell: the number IPython cached the calling cell's code under.

    (IPython 9 bumps `execution_count` when a cell starts, older ones when it ends.)
    """
    known = getattr(shell.compile, "_filename_map", {})
    frame = sys._getframe(1)
    while frame is not None:
        number = known.get(frame.f_code.co_filename)
        if number is not None:
            return number
        frame = frame.f_back
    return shell.execution_count


def _sinks(options) -> list:
    sinks = []
    if options.panel:
        try:
            from .views.panel import make_panel_or_none
            panel = make_panel_or_none()
        except ImportError:
            panel = None
        if panel is not None:
            panel.display()
            sinks.append(panel)
    try:
        from .comm import CommBroadcaster
        sinks.append(CommBroadcaster.instance())
    except (ImportError, AttributeError):
        pass
    return sinks


def _comm_reset():
    try:
        from . import comm
        comm.reset()
    except (ImportError, AttributeError):
        pass


def _show(report):
    from IPython.display import display
    display(report)
