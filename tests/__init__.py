"""nanwatch's tests, a package so that its modules import each other by full name (`tests.support...`).

  unit/       no TensorFlow in the test process (tests/unit/test_no_tensorflow.py keeps it so)
  tf/         real TensorFlow in the test process; tf/isolated_runs.py runs what needs a process of its own
  scenarios/  the scenario catalogues (one format: scenarios/catalogue.py), their single runner
              (scenarios/runner.py, the `runner` fixture) and the tests that run them
  e2e/        example notebooks in real kernels, the JupyterLab extension (jest), the sidebar in Chromium
  tools/      not tests: the scripts that measured the ground truth and recorded data/dynamics
  support/    helpers shared by the folders (IPython shell, sample reports, paths)
  data/       recorded fixtures (data/dynamics: real training dynamics, made by tools/record_dynamics.py)
"""
