"""Instrumentation: the probe (op callback), Keras hooks, eager replay, stack frames, stats."""
