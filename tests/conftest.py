"""Fixtures for every folder: a real IPython shell with nanwatch loaded (`shell`), and `cell`, which runs
a cell in it with a fresh namespace and returns the report. TensorFlow is imported by the cells, not here.

Test modules import helpers by full name (`tests.support...`, `tests.scenarios...`): tests/ is a package
and pytest puts the repository root on sys.path (pyproject.toml: pythonpath).
"""

import os
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("IPYTHONDIR", tempfile.mkdtemp(prefix="nanwatch-ipython-"))
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402

from tests.support.ipython import Cell, nanwatch_shell  # noqa: E402

# every report the session makes is validated against schema 1 (tests/schema_validation.py)
pytest_plugins = ["tests.schema_validation"]


@pytest.fixture(scope="session")
def shell():
    return nanwatch_shell()


@pytest.fixture
def cell(shell):
    return Cell(shell)
