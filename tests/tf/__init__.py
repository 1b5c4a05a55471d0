"""Tests with real TensorFlow in the test process."""
