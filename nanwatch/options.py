"""One option schema for `%%nanwatch` and `nanwatch.watch()`.

Parsed strictly: an unknown or malformed option is a UsageError and nothing runs.
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, fields

MODES = ("auto", "exact", "fast")


class UsageError(ValueError):
    """A malformed or unknown nanwatch option."""


@dataclass(frozen=True)
class Options:
    mode: str = "auto"          # auto: fast for Keras fit where it can serve, else exact
    stop: bool = True           # stop the run at the first non-finite value
    # per-layer statistics every N steps; None (default): every 10 steps while they take at most
    # 2% of the training time
    stats_every: int | None = None
    panel: bool = True          # live ipywidgets panel
    figures: bool = True        # matplotlib figures in the static report
    replay: bool = True         # replay a failing graph step eagerly for the full evidence

    def __post_init__(self):
        if self.mode not in MODES:
            raise UsageError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.stats_every is not None and (not isinstance(self.stats_every, int)
                                             or isinstance(self.stats_every, bool) or self.stats_every < 1):
            raise UsageError(f"stats_every must be a whole number >= 1, not {self.stats_every!r}")
        for name in ("stop", "panel", "figures", "replay"):
            if not isinstance(getattr(self, name), bool):
                raise UsageError(f"{name} must be True or False, not {getattr(self, name)!r}")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{message}\n\n{self.format_usage()}")

    def exit(self, status=0, message=None):
        raise UsageError(message or self.format_help())


def parser() -> argparse.ArgumentParser:
    p = _Parser(prog="%%nanwatch", add_help=False,
                description="Run the cell watched: find the first op that produced NaN/Inf, and why.")
    p.add_argument("--mode", choices=MODES, default="auto",
                   help="exact: check every op; fast: cheap sentinel, exact replay of the failing step; "
                        "auto (default): fast for Keras fit where it can serve, else exact")
    p.add_argument("--no-stop", dest="stop", action="store_false",
                   help="keep running after the first NaN/Inf (Keras fit/evaluate/predict and eager code)")
    p.add_argument("--stats-every", dest="stats_every", type=_positive_int, default=None, metavar="N",
                   help="per-layer statistics every N steps (default: every 10 steps while they take at "
                        "most 2%% of the training time)")
    p.add_argument("--no-panel", dest="panel", action="store_false", help="no live panel")
    p.add_argument("--no-figures", dest="figures", action="store_false", help="no matplotlib figures in the report")
    p.add_argument("--no-replay", dest="replay", action="store_false",
                   help="do not replay a failing graph step eagerly")
    return p


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {value}")
    return value


def parse_line(line: str) -> Options:
    """Options from the magic line, e.g. `--mode exact --no-stop`."""
    try:
        argv = shlex.split(line or "")
    except ValueError as exc:
        raise UsageError(f"cannot read the options {line!r}: {exc}") from None
    namespace = parser().parse_args(argv)
    return Options(**vars(namespace))


def from_kwargs(**kwargs) -> Options:
    """Options from `watch(**kwargs)`: the same names as the fields."""
    known = {f.name for f in fields(Options)}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise UsageError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return Options(**kwargs)


def usage() -> str:
    return parser().format_help()
