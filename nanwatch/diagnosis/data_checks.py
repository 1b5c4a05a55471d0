"""Data forensics, the public face: profile the arrays a model is fed (`data_profile`) and turn a
profile into warnings and notes (`data_warnings`). The engine calls `profile_array` on the x/y of
fit/evaluate/predict and on consumed batches; the diagnosis reads the profiles through
`profile_warnings`. Two modules because computing the numbers (numpy, fast paths for wide and
tall arrays) and judging them (thresholds, evidence texts, fixes) change for different reasons.
"""

from __future__ import annotations

from .data_profile import FEATURE_ROLES, TARGET_ROLES, profile_array, profile_inputs
from .data_warnings import column_label, profile_warnings

__all__ = ["FEATURE_ROLES", "TARGET_ROLES", "column_label", "profile_array", "profile_inputs", "profile_warnings"]
