"""nanwatch: the first op that produced NaN/Inf in a Keras/TensorFlow cell, and why.

Public API (a contract, see docs/design.md and docs/schema.md): `%load_ext nanwatch`, `%%nanwatch [options]`,
`%nanwatch [last|reset|show PATH|--help]`, `watch(**options)`, `Callback(**options)` (Keras),
`last_report()`, `Report`; `python -m nanwatch run NOTEBOOK.ipynb | SCRIPT.py`.
"""

from __future__ import annotations

import contextlib

from .options import Options, UsageError, from_kwargs
from .report import Report
from .session import NestedWatchError, last_report

__version__ = "0.1.0"
__all__ = ["watch", "last_report", "Report", "Options", "UsageError", "NestedWatchError", "Callback",
           "load_ipython_extension", "unload_ipython_extension"]


def __getattr__(name):
    """`nanwatch.Callback` imports Keras: only when asked for (importing nanwatch stays light)."""
    if name == "Callback":
        from .keras_callback import Callback
        return Callback
    raise AttributeError(f"module 'nanwatch' has no attribute {name!r}")


@contextlib.contextmanager
def watch(**options):
    """Watch the code in the `with` block, as `%%nanwatch` watches a cell; yields the Report.

    The run stops at the first NaN/Inf (the exception is absorbed; the block ends
    there) unless `stop=False`. Other exceptions pass through unchanged.
    """
    from .session import WatchSession
    parsed = from_kwargs(**options)
    session = WatchSession(parsed, sinks=[])
    with session:
        yield session.report


def load_ipython_extension(ipython):
    from .magics import NanwatchMagics
    ipython.register_magics(NanwatchMagics(ipython))
    try:
        from . import comm
        comm.register(ipython)
    except (ImportError, AttributeError):
        pass


def unload_ipython_extension(ipython):
    pass


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": "nanwatch"}]
