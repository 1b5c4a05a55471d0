"""Tests that need no TensorFlow in the test process (TensorFlow may run in a kernel they start)."""
