"""A real IPython shell with nanwatch loaded, and `Cell`, which runs a cell in it and returns the report.

No TensorFlow is imported here: the cells import it when they need it.
"""


def nanwatch_shell():
    """The process's IPython shell (created once), with `%load_ext nanwatch` run in it."""
    from IPython.core.interactiveshell import InteractiveShell
    ip = InteractiveShell.instance()
    result = ip.run_cell("%load_ext nanwatch")
    assert result.success, result.error_in_exec
    return ip


class Cell:
    """Runs cells in the shell with a fresh namespace, and returns the nanwatch report."""

    def __init__(self, ip):
        self.ip = ip

    def run(self, code, setup=None, options="--no-panel"):
        import nanwatch
        from nanwatch import session
        self.ip.reset(new_session=False)
        session.reset()
        if setup:
            result = self.ip.run_cell(setup)
            assert result.success, result.error_in_exec
        result = self.ip.run_cell(f"%%nanwatch {options}\n" + code.strip("\n"))
        report = nanwatch.last_report()
        return result, report
