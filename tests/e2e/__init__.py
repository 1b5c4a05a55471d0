"""The example notebooks in real kernels, the JupyterLab extension (jest), the sidebar in headless Chromium."""
