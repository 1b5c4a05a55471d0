"""The engine's one interface to the run: what the probe, the Keras hooks, the tape patch and
the step investigation tell it, and the two things they ask.

Modelled on tfdbg2's `BaseMonitor` (debug_events_monitors.py: one callback per kind of debug
event) and Keras's `Callback` (no-op hooks a subclass overrides). The engine imports nothing
above `nanwatch.engine`; the run (`nanwatch.recorder.Recorder`) implements this class. Hooks
that report a non-finite value may raise `NonFiniteFound` to stop the user's code there.

Names: `call` is the user's API ("fit", "evaluate", "predict"); `kind` is what a step does,
schema.CallKind ("train", "evaluate", "predict"); a detection's phase is schema.OpPhase.
"""

from __future__ import annotations


class RunEvents:
    """No-op defaults: a subclass overrides what it records."""

    # --- what the engine asks ----------------------------------------------------------------
    def checks_on(self) -> bool:
        """False once a non-finite value was recorded and the run goes on (`--no-stop`): steps
        then run unchecked, as the user's own run would."""
        return True

    def in_keras_call(self) -> bool:
        """Inside Keras fit/evaluate/predict: a `tape.gradient` there is Keras's, not a custom loop's."""
        return False

    def current_step(self) -> int:
        """The step being run (a custom loop's: the steps completed so far)."""
        return 0

    # --- what the engine tells ---------------------------------------------------------------
    def note(self, text: str) -> None:
        """Something the user should read in the report (a setting changed for the cell, a limit)."""

    def model_seen(self, model) -> None:
        """First sight of a Keras model in this cell; its layers are in the run's LayerIndex."""

    def optimizer_seen(self, optimizer) -> None:
        """An optimizer applies gradients outside Keras fit (a custom loop, eager or traced): its
        facts (rate, schedule, epsilon, clipping) as for a compiled model's optimizer."""

    def call_started(self, model, call: str, x, y, weights: dict | None = None) -> None:
        """`model.fit/evaluate/predict` begins, with the arrays (or dataset) the user passed, and
        `weights`: {"sample_weight", "class_weight"} as given (None when absent).
        May raise NonFiniteFound (weights already non-finite)."""

    def call_ended(self, model, call: str) -> None:
        """That call returned or raised."""

    def epoch_started(self, epoch: int) -> None:
        """Keras began epoch `epoch` (0-based)."""

    def mode_decided(self, mode: str) -> None:
        """A Keras step function of this mode ("exact" | "fast") was built for the cell."""

    def step_started(self, model, kind: str) -> int:
        """A Keras step is about to run; returns its step number (train steps count across calls,
        evaluate/predict steps are batch indices within the call)."""
        return 0

    def step_ended(self, model, kind: str, step: int, logs, grad_norms) -> dict | None:
        """A step ran: its logs (Keras's dict of loss and metrics) and the per-variable gradient
        norms (numpy, or None). Returns the step record (None at predict)."""
        return None

    def tape_step(self, loss, grad_norm) -> None:
        """A custom loop's `tape.gradient` completed, eagerly, outside Keras: one step."""

    def detected(self, detection, bad_batch=None) -> None:
        """The first non-finite value, seen directly (eager check, batch check, weight read).
        May raise NonFiniteFound."""

    def step_failed(self, failure) -> None:
        """A Keras step went non-finite (graph check or sentinel), investigated (StepFailure).
        May raise NonFiniteFound."""
