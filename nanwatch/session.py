"""A watched run's lifecycle: set up, run, and always clean up; then finish the report.

`WatchSession` is the one place that turns instrumentation on (probe, Keras hooks, tape
patch) and the one place that turns it off, whatever the cell did: success, exception,
KeyboardInterrupt. The engine reports to the run's `Recorder`; the session finishes the
report (diagnosis, info) and hands it to the sinks (views, the sidebar).
"""

from __future__ import annotations

import os
import threading
import time

from . import recorder as recorder_mod
from .engine.detection import NonFiniteFound
from .engine.frames import CellMap
from .engine.layer_index import LayerIndex
from .options import Options, UsageError
from .recorder import Recorder
from .report import Report

MIN_TF = (2, 16)
_active = threading.local()
_last_report: list = [None]


def last_report() -> Report | None:
    close_abandoned()
    return _last_report[0]


def close_abandoned():
    """End the active run if its owner is gone (a nanwatch.Callback whose Keras call raised where no
    hook of ours saw it): the next run, and `last_report()`, never find it still installed."""
    current = active_session()
    if current is not None and current.close_if_abandoned is not None:
        current.close_if_abandoned()


def reset():
    _last_report[0] = None
    recorder_mod.forget_training_ranges()


def active_session():
    return getattr(_active, "session", None)


class NestedWatchError(UsageError):
    """`%%nanwatch` or `watch()` inside a run that is already watched."""


class WatchSession:
    """Context manager for one watched run."""

    def __init__(self, options: Options, cells: CellMap | None = None, cell: int | None = None, sinks=()):
        self.options = options
        self.cells = cells or CellMap()
        self.report = Report(mode="exact", cell=cell, figures=options.figures)   # "fast" once Keras steps ran fast
        self.layers = LayerIndex()
        self.recorder = Recorder(options, self.report, self.layers, sinks,
                                 cell_id=self.cells.cell_ids.get(cell) if cell is not None else None)
        self.probe = None
        self.hooks = None
        self.state = None
        self.functions = None
        self.tape = None
        self.tf = None
        # set by an owner that may lose track of its run (nanwatch.Callback): ends the run when the
        # owner is gone; called before any new run starts
        self.close_if_abandoned = None

    def note(self, text: str):
        self.recorder.note(text)

    # --- lifecycle ---------------------------------------------------------------------------
    def __enter__(self):
        close_abandoned()
        if active_session() is not None:
            raise NestedWatchError("nanwatch is already watching this run: %%nanwatch / watch() cannot be nested")
        _active.session = self
        try:
            self._setup()
        except BaseException:
            self._cleanup()
            _active.session = None
            raise
        return self

    def _setup(self):
        try:
            import tensorflow as tf
        except ImportError:
            self.note("TensorFlow is not installed: the cell ran unwatched.")
            self.report.watched = False
            return
        version = tuple(int(p) for p in tf.__version__.split(".")[:2] if p.isdigit())
        if version < MIN_TF:
            self.note(f"TensorFlow {tf.__version__} is older than {MIN_TF[0]}.{MIN_TF[1]}, which nanwatch "
                      "needs: the cell ran unwatched.")
            self.report.watched = False
            return
        from .engine.layer_stats import LayerStatistics
        from .engine.probe import Probe
        from .engine.tape import TapePatch
        self.tf = tf
        self.probe = Probe(self.cells, self.layers, self.recorder)
        self.recorder.attach(self.probe, LayerStatistics(self.layers, self.options.stats_every, self.probe.detached))
        if _legacy_keras():
            self.note("legacy tf.keras (TF_USE_LEGACY_KERAS=1): exact mode only, through the op checks; not "
                      "supported there: fast mode, the per-step statistics, the eager replay (counts and input "
                      "values), data rows in your arrays, and rebuilding a tf.keras model's train function cached "
                      "before this cell (create or compile the model in the watched cell).")
        else:
            try:
                from .engine.keras_hooks import KerasHooks
                from .engine.keras_state import KerasStatePatch
                self.hooks = KerasHooks(self.recorder, self.probe, self.options, self.cells, self.layers)
                self.hooks.install()
                self.state = KerasStatePatch(self.probe)
                self.state.install()
                from .engine.functions import FunctionPatch
                self.functions = FunctionPatch(self.recorder, self.probe, self.state, fast=self.options.mode != "exact")
                self.functions.install()
            except ImportError:
                self.hooks = None
        self.tape = TapePatch(self.recorder, self.probe)
        self.tape.install(tf)
        if self.options.figures:
            _import_figures()
        self.probe.install()

    def __exit__(self, exc_type, exc, tb):
        __tracebackhide__ = True
        suppress = False
        try:
            if exc is not None:
                suppress = self._on_exception(exc)
        finally:
            self._cleanup()
            _active.session = None
            self._finish()
        return suppress

    def _on_exception(self, exc) -> bool:
        if isinstance(exc, NonFiniteFound):
            self.report.stopped = True
            return True
        if self.probe is not None and self.tf is not None and isinstance(exc, self.tf.errors.InvalidArgumentError):
            detection = self.probe.detection_from_error(exc)
            if detection is not None:
                self.recorder.graph_error(detection)
                self.report.stopped = True
                return True
        if isinstance(exc, KeyboardInterrupt):
            self.report.error = "interrupted (KeyboardInterrupt)"
        else:
            self.report.error = f"{type(exc).__name__}: {exc}"[:2000]
        return False

    def _cleanup(self):
        """Absolute: no op callback, no patched method, no directory left behind."""
        for part in (self.probe, self.hooks, self.state, self.functions, self.tape):
            if part is None:
                continue
            try:
                part.uninstall()
            except Exception as exc:  # keep undoing the rest; say what failed
                self.note(f"cleanup step {type(part).__name__}.uninstall failed: {exc!r}")

    # --- the end ------------------------------------------------------------------------------------
    def _finish(self):
        try:
            self._complete_report()
        finally:
            self.recorder.release_gc()

    def _complete_report(self):
        report, evidence = self.report, self.recorder.evidence
        if self.functions is not None:
            try:   # several workers: a finding held after the last step call, exchanged (a cell that raised: not awaited)
                self.functions.settle(wait=not self.report.error)
            except NonFiniteFound:
                pass
        if self.probe is not None:
            held = self.probe.take_held()
            if held is not None:   # several workers: found after this worker's last step call
                self.note("found on this worker after its last tf.function step call: the other workers were not "
                          "stopped by it.")
                try:
                    self.recorder.detected(held)
                except NonFiniteFound:
                    pass
            self.recorder.left_over(self.probe.eager.left_over())
            self.recorder.check_final_state(self.layers.models + (self.state.models if self.state else []))
        report.info.extend(self._info())
        evidence.first_nonfinite, evidence.steps, evidence.layers = report.first_nonfinite, list(report.steps), report.layers
        self.recorder.complete_evidence()
        try:
            from .diagnosis import diagnose, info_notes
            report.diagnosis, report.warnings = diagnose(evidence)
            report.info.extend(info_notes(evidence))
        except ImportError:
            pass
        except Exception as exc:
            self.note(f"the diagnosis failed: {type(exc).__name__}: {exc}"[:300])
        self._verify_fixes(report)
        report.finish()
        if self.recorder.t_detected is not None:
            report.nan_to_report_s = round(time.perf_counter() - self.recorder.t_detected, 3)
        _last_report[0] = report
        if report.first_nonfinite is not None:
            self.recorder.publish("first_nonfinite", report.first_nonfinite, report.diagnosis)
        self.recorder.publish("run_finished", report.to_dict())

    def _verify_fixes(self, report):
        """Each top cause's fix tried on the failing step, on copies (engine/verify.py): `verified`."""
        try:
            if not report.diagnosis or self.probe is None:
                return
            from .engine.verify import FailedStep, verify_fixes
            model, kind = self.recorder.failed_step or (None, None)
            weights = report.pre_nan_weights
            if weights is None and model is not None and report.stopped:
                with self.probe.paused():
                    weights = model.get_weights()   # the run stopped at the failing step: not updated
            verify_fixes(report.diagnosis, FailedStep(model, kind, report.bad_batch, weights, self.recorder.detection,
                                                      report.first_nonfinite))
        except Exception as exc:
            self.note(f"the fixes could not be tried on the failing step: {type(exc).__name__}: {exc}"[:300])
        finally:
            self.recorder.failed_step = self.recorder.last_step = None   # no model kept alive by the run

    def _info(self) -> list:
        info = []
        probe = self.probe
        if self.options.mode in ("auto", "fast") and "fast" not in self.recorder.modes and probe is not None \
                and (probe.eager_ops_checked or probe.graph_ops_instrumented):
            info.append("custom code (no Keras fit/evaluate/predict step) ran in exact mode: every op checked; "
                        "fast mode serves Keras steps")
        if probe is not None:
            info.append(f"checked {probe.graph_ops_instrumented} graph ops and {probe.eager_ops_checked} "
                        "eager op runs")
            info.extend(probe.eager.absorbed_info())
        skipped = self.recorder.evidence.fp16_skipped_steps
        if skipped:
            info.append(f"LossScaleOptimizer skipped {skipped} step(s) with Inf gradients (by design, not an alarm): "
                        "Inf gradients absorbed by the LossScaleOptimizer's all-finite check")
        return info


def _import_figures():
    """matplotlib's first import takes about a second: paid before the training, not between the
    first NaN and its report (issue 14 asks <= 1 s for that)."""
    try:
        from .views import figures  # noqa: F401
    except ImportError:
        pass


def _legacy_keras() -> bool:
    return os.environ.get("TF_USE_LEGACY_KERAS", "").lower() in ("1", "true", "yes")
