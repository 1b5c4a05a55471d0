"""Numbers as text, in one place: the diagnosis' evidence, its training-dynamics sentences and the
report views each print numbers in their own established style (tests and users read those
strings), and this module is the one implementation of all three.

    fmt(1e10, EVIDENCE) -> "1e10"     fmt(12345.0, TREND) -> "1.2e4"     fmt(12345.0, VIEW) -> "1.234e+04"

`num` reads a number the way reports carry it: non-finite floats may arrive as the strings
"nan" / "inf" / "-inf" (JSON cannot hold them). Standard library only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


def num(value: Any) -> float | None:
    """A float from a number or a numeric string ("nan", "inf", "-inf", "1e3" included); None for
    None, bools and anything else that is no number."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Style:
    """How one family of texts prints numbers. Every knob is one difference between the styles in use."""

    digits: int                 # significant digits of the plain ('g') form
    missing: str                # the text for None (and for what is no number, when unparsed="missing")
    pos_inf: str = "inf"        # the text for +inf ("+inf" in the views' tables)
    bools: str = "number"       # "number": True prints as 1; "missing": as `missing`; "word": "true"/"false"
    strings: str = "parse"      # "keep": strings are printed as given; "parse": "nan", "1e3" are read as numbers
    unparsed: str = "missing"   # a value that is no number: "missing" -> `missing`, "str" -> str(value)
    exact_ints: bool = False    # Python ints print in full (12345678 -> "12345678")
    int_below: float = 0.0      # integral values below this magnitude print as integers (100000.0 -> "100000")
    sci_outside: tuple | None = None  # (lo, hi): a nonzero |x| outside [lo, hi) always takes the exponent form
    sci_digits: int | None = None     # significant digits of that exponent form, written compactly (2.6e9, 1e-7)
    compact_plain_exponent: bool = False  # when the plain form comes out as 1.235e+06, rewrite it compactly


def fmt(value: Any, style: Style, digits: int | None = None) -> str:
    """`value` as text in `style`; `digits` overrides the style's significant digits."""
    if value is None:
        return style.missing
    if isinstance(value, bool):
        if style.bools == "word":
            return "true" if value else "false"
        if style.bools == "missing":
            return style.missing
        value = int(value)
    if isinstance(value, str) and style.strings == "keep":
        return value
    if isinstance(value, int) and style.exact_ints:
        return str(value)
    x = num(value)
    if x is None:
        return str(value) if style.unparsed == "str" else style.missing
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return style.pos_inf if x > 0 else "-inf"
    if abs(x) < style.int_below and x == int(x):
        return str(int(x))
    if style.sci_outside is not None and x != 0:
        lo, hi = style.sci_outside
        if not lo <= abs(x) < hi:
            return _compact_exponent(x, style.sci_digits or style.digits)
    text = f"{x:.{digits or style.digits}g}"
    if style.compact_plain_exponent and "e" in text:
        text = _compact_exponent(x, style.sci_digits or style.digits)
    return text


def _compact_exponent(x: float, digits: int) -> str:
    """1e+10 -> '1e10', 2.582e+09 -> '2.58e9' (at 3 digits), 1e-07 -> '1e-7'."""
    text = f"{x:.{digits}g}"
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    return f"{mantissa}e{int(exponent)}"


# Evidence and fixes of the diagnosis: 4 digits, integers as integers, exponents compact at 3 digits
# (1e10, 2.58e9, 0.1235, 5); strings are already text.
EVIDENCE = Style(digits=4, missing="?", strings="keep", int_below=1e6, sci_digits=3, compact_plain_exponent=True)

# The training-dynamics sentences (growth factors, losses, learning rates): 3 digits between 1e-3
# and 1e4, 2-digit compact exponents outside (1.2e4, 3e-5).
TREND = Style(digits=3, missing="?", bools="missing", sci_outside=(1e-3, 1e4), sci_digits=2)

# The report views (text, HTML, live panel): 4 digits, "+inf", "–" for a missing value, ints in full,
# text that is no number shown as it is.
VIEW = Style(digits=4, missing="\u2013", pos_inf="+inf", bools="word", unparsed="str", exact_ints=True)
