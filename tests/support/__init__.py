"""Helpers shared by the test folders. Importing this package imports nothing heavy (no TensorFlow)."""

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
REPO = TESTS.parent
DYNAMICS = TESTS / "data" / "dynamics"   # recorded by tests/tools/record_dynamics.py
