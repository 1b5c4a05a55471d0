"""Sinks: what a view receives from a watched run (the live panel, the sidebar's comm).

A sink overrides the hooks it needs; the others do nothing. The run calls them in this
order: `run_started` once (when the run's mode is known), `step` per step, `layers` when
per-layer statistics were taken, `first_nonfinite` when the origin is found (again with the
diagnosis at the end), `run_finished` once with the report (schema 1). A sink that raises is
noted in the report and the run goes on: a view must never break the user's training.
"""

from __future__ import annotations


class Sink:
    """Base class of the views fed by a run. Every hook is optional."""

    def run_started(self, run: dict) -> None:
        """{run_id, cell, cell_id, mode, started}: mode is the one the run's steps use."""

    def step(self, record: dict) -> None:
        """One step record (schema 1 `steps[]`), possibly every training step: keep it cheap."""

    def layers(self, records: list) -> None:
        """The latest per-layer records (schema 1 `layers`), with their histories."""

    def first_nonfinite(self, first: dict, diagnosis: list) -> None:
        """The origin of the first non-finite value; `diagnosis` is empty until the run ends."""

    def run_finished(self, report: dict) -> None:
        """The complete report (`Report.to_dict()`)."""


class SinkSet:
    """Dispatches each hook to every sink; a failing sink is reported through `note`, never raised."""

    HOOKS = ("run_started", "step", "layers", "first_nonfinite", "run_finished")

    def __init__(self, sinks, note):
        self.sinks = list(sinks)
        self._note = note

    def emit(self, hook: str, *args) -> None:
        for sink in self.sinks:
            method = getattr(sink, hook, None)
            if method is None:
                continue
            try:
                method(*args)
            except Exception as exc:  # a view must never break the user's run
                self._note(f"view {type(sink).__name__}.{hook} failed: {exc!r}"[:300])
