"""nanwatch.numfmt: the one number formatter, pinned in each of its three styles (the evidence and
fix texts of the diagnosis, the training-dynamics sentences, the report views) on the edge cases.
The expected strings are what the three formatters it replaced printed; tests of the diagnosis and
the views assert on texts built from them."""

import math

import numpy as np
import pytest

from nanwatch.numfmt import EVIDENCE, TREND, VIEW, fmt, num

NAN, INF = float("nan"), float("inf")

# value: (EVIDENCE, TREND, VIEW)
CASES = [
    (None, ("?", "?", "\u2013")),
    (True, ("1", "?", "true")),
    (False, ("0", "?", "false")),
    (0, ("0", "0", "0")),
    (7, ("7", "7", "7")),
    (12345678, ("1.23e7", "1.2e7", "12345678")),
    (5.0, ("5", "5", "5")),
    (100000.0, ("100000", "1e5", "1e+05")),
    (1234567.0, ("1.23e6", "1.2e6", "1.235e+06")),
    (NAN, ("nan", "nan", "nan")),
    (INF, ("inf", "inf", "+inf")),
    (-INF, ("-inf", "-inf", "-inf")),
    (1e10, ("1e10", "1e10", "1e+10")),
    (-2.582e9, ("-2.58e9", "-2.6e9", "-2.582e+09")),
    (0.1234567, ("0.1235", "0.123", "0.1235")),
    (1e-7, ("1e-7", "1e-7", "1e-07")),
    (5e-4, ("0.0005", "0.0005", "0.0005")),
    (1000.0, ("1000", "1e+03", "1000")),      # TREND's plain form keeps 'g''s exponent in [1e3, 1e4)
    (12345.0, ("12345", "1.2e4", "1.234e+04")),
    ("nan", ("nan", "nan", "nan")),
    ("inf", ("inf", "inf", "+inf")),
    ("-inf", ("-inf", "-inf", "-inf")),
    ("1e3", ("1e3", "1e+03", "1000")),        # EVIDENCE keeps strings as given; the others read them
    ("abc", ("abc", "?", "abc")),
    ("", ("", "?", "")),
]


@pytest.mark.parametrize("value,expected", CASES, ids=[repr(v) for v, _ in CASES])
def test_the_three_styles(value, expected):
    assert (fmt(value, EVIDENCE), fmt(value, TREND), fmt(value, VIEW)) == expected


def test_digits_override_and_numpy_scalars():
    assert fmt(0.123456, VIEW, digits=3) == "0.123"     # the run duration in the views' meta line
    assert fmt(np.float32(0.5), EVIDENCE) == "0.5" and fmt(np.int64(7), VIEW) == "7"
    assert fmt(np.float64(3e-9), TREND) == "3e-9"


def test_what_is_no_number_never_raises():
    assert fmt([1], EVIDENCE) == "?" and fmt([1], TREND) == "?" and fmt([1], VIEW) == "[1]"


def test_num_reads_report_values():
    assert num(None) is None and num(True) is None and num("abc") is None and num([1]) is None
    assert num("inf") == INF and num("-inf") == -INF and math.isnan(num("nan")) and num(" 2.5 ") == 2.5
    assert num(3) == 3.0 and isinstance(num(3), float)
