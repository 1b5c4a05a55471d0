"""Views of a nanwatch report: plain text, static HTML, matplotlib figures, the live panel.

Views only read report dicts (schema 1, `Report.to_dict()`) or live sink events; they never
reach back into the engine. Nothing is imported here so that `views.text` stays cheap: the
HTML view pulls in matplotlib only for figures, and only `views.panel` needs ipywidgets.
"""
