"""The single scenario runner: a catalogue scenario (tests/scenarios/catalogue.py) as a real `%%nanwatch` cell.

`ScenarioRunner(shell).report(scenario)` runs the setup cell plainly, then the scenario's cell under
`%%nanwatch {options}` (the scenario's own options unless given), in a fresh namespace of that IPython
shell, and returns nanwatch's report. Each (scenario, options) runs once per runner, so the tests
that check different halves of one run (location, diagnosis, agreement with tfdbg2) share it; a cell
that raises fails the caller and is not kept. Global Keras state a scenario may set (d10/f03 set the
mixed_float16 policy) is reset before and after each run, as the scenarios share one shell.

The `runner` fixture (tests/scenarios/conftest.py) is one per test session.
"""

from __future__ import annotations

from tests.scenarios.catalogue import Scenario
from tests.support.ipython import Cell


def reset_keras():
    """Undo global Keras state a scenario may set: the dtype policy and the session's names and graphs."""
    import keras
    keras.mixed_precision.set_global_policy("float32")
    keras.backend.clear_session()


class ScenarioRunner:
    def __init__(self, shell):
        self.cell = Cell(shell)
        self._reports: dict = {}

    def run(self, scenario: Scenario, options: str | None = None):
        """Run it now (no cache): (IPython's ExecutionResult, the report)."""
        reset_keras()
        try:
            return self.cell.run(scenario.code, setup=scenario.setup, options=options or scenario.options)
        finally:
            reset_keras()

    def report(self, scenario: Scenario, options: str | None = None):
        """The report of the scenario's run with these options, run on first request."""
        key = (scenario.catalogue, scenario.name, options or scenario.options)
        if key not in self._reports:
            result, report = self.run(scenario, options)
            assert result.error_in_exec is None, result.error_in_exec
            self._reports[key] = report
        return self._reports[key]
