"""Not tests: scripts that measure ground truth and record fixtures, each runnable as its docstring says."""
