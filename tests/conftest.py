"""Shared fixtures: a real IPython shell with nanwatch loaded, real TensorFlow."""

import os
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("IPYTHONDIR", tempfile.mkdtemp(prefix="nanwatch-ipython-"))
os.environ.setdefault("MPLBACKEND", "Agg")
sys.path.insert(0, os.path.dirname(__file__))

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def shell():
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


@pytest.fixture
def cell(shell):
    return Cell(shell)
