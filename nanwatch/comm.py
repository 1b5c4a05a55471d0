"""Kernel side of the sidebar protocol: comm target ``nanwatch``, versioned JSON (v=1).

The JupyterLab "NaN inspector" (labextension/src) talks to the kernel through a comm
whose target name is ``nanwatch``. Every message is a JSON object with ``"v": 1`` and
a ``"type"``.

The messages (kernel -> frontend: run_started, progress, first_nonfinite, run_finished,
snapshot, reset; frontend -> kernel: hello) are defined in nanwatch/schema.py and published as
docs/schema/comm.v1.schema.json; docs/schema.md describes them. ``progress`` is throttled: at
most one every ``min_interval`` seconds, the steps in between coalesced into the next one.

Anything else coming from a frontend (unknown type, wrong version, extra or missing
fields, not a dict) is ignored: never evaluated, never echoed.

How the two sides find each other (both orders work):

* Frontend first: the sidebar opens a comm to target ``nanwatch`` with a hello as open data
  whenever it connects to a kernel. Without nanwatch loaded, ipykernel closes that comm
  (the sidebar then shows the ``%load_ext nanwatch`` hint). With it loaded, the kernel
  answers with a snapshot, so a frontend that connects late (page reload, panel opened
  after the run) still sees every run of this kernel (the last ``MAX_RUNS``).
* Kernel first: the sidebar also registers a comm target ``nanwatch`` on each kernel
  connection. When ``%load_ext nanwatch`` runs from a JupyterLab cell (the execute request
  carries a ``cellId``), ``register`` opens a comm to that target with a snapshot as open
  data. Kernel-opened comms are live at once, so cells queued behind ``%load_ext`` by "Run
  all" still stream live updates (a hello from the frontend would wait in the shell queue
  until those cells finished). Headless runners (nbclient sends no ``cellId``) get no comm.

Limitation: comm messages from a frontend are handled on the kernel's shell channel, so a
frontend that connects while a cell is running gets its snapshot when the cell finishes.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from typing import Any, Callable

from .schema import MAX_HISTORY, MAX_PROGRESS_STEPS, MAX_RUNS, MAX_STEPS, PROTOCOL_VERSION, json_safe
from .sinks import Sink

log = logging.getLogger("nanwatch.comm")

TARGET_NAME = "nanwatch"
PROGRESS_INTERVAL_S = 0.2  # <= 5 progress messages per second


# --------------------------------------------------------------------------------------
# incoming messages

def parse_incoming(data: Any) -> dict | None:
    """Validate a frontend -> kernel message; return it, or None when it must be ignored.

    Only ``{"v": 1, "type": "hello"}`` exists in v1. The check is strict: exact keys, exact
    types (``True`` is not the integer 1), bounded size.
    """
    if not isinstance(data, dict) or len(data) != 2 or set(data) != {"v", "type"}:
        return None
    v, kind = data.get("v"), data.get("type")
    if type(v) is not int or v != PROTOCOL_VERSION:
        return None
    if not isinstance(kind, str) or kind != "hello":
        return None
    return {"v": PROTOCOL_VERSION, "type": kind}


def _message_data(msg: Any) -> Any:
    """The ``content.data`` of a Jupyter comm message, or None."""
    if not isinstance(msg, dict):
        return None
    content = msg.get("content")
    if not isinstance(content, dict):
        return None
    return content.get("data")


# --------------------------------------------------------------------------------------
# outgoing messages

def _clean(value: Any) -> Any:
    """JSON-safe deep copy: nan/inf -> strings, numpy scalars -> Python, unknown objects -> str."""
    return json.loads(json.dumps(json_safe(value), allow_nan=False, default=str))


def _trim_layers(layers: Any) -> list:
    if not isinstance(layers, list):
        return []
    out = []
    for rec in layers:
        if isinstance(rec, dict) and isinstance(rec.get("history"), list) and len(rec["history"]) > MAX_HISTORY:
            rec = dict(rec)
            rec["history"] = rec["history"][-MAX_HISTORY:]
        out.append(rec)
    return out


def _trim_report(report: dict) -> dict:
    """The sidebar's copy of a report: the last MAX_STEPS steps, the last MAX_HISTORY history entries."""
    report = dict(report)
    if isinstance(report.get("steps"), list) and len(report["steps"]) > MAX_STEPS:
        report["steps"] = report["steps"][-MAX_STEPS:]
    if "layers" in report:
        report["layers"] = _trim_layers(report["layers"])
    return report


def _report_run_id(report: dict) -> Any:
    run = report.get("run")
    return run.get("id") if isinstance(run, dict) else None


# --------------------------------------------------------------------------------------
# the broadcaster (a sink for the engine, and the hub of this kernel's comms)

class CommBroadcaster(Sink):
    """Keeps this kernel's runs and streams them to every connected sidebar.

    The engine calls the sink methods (``run_started``, ``step``, ``layers``,
    ``first_nonfinite``, ``run_finished``); ``step`` may be called every training step:
    progress messages are throttled to one per ``min_interval`` seconds and coalesced.
    Channels are comm-like objects with ``send(data)``, ``on_msg(cb)``, ``on_close(cb)``
    and ``close()``; the ``comm`` package's comms are such objects.
    """

    def __init__(self, *, min_interval: float = PROGRESS_INTERVAL_S, max_runs: int = MAX_RUNS,
                 clock: Callable[[], float] = time.monotonic):
        self.min_interval = float(min_interval)
        self._clock = clock
        self._lock = threading.RLock()
        self._channels: dict[str, Any] = {}
        self._runs: deque = deque(maxlen=max_runs)
        self._active: dict | None = None
        self._pending_steps: list = []
        self._layers_dirty = False
        self._last_progress = float("-inf")
        self.sent = 0  # messages sent (all channels), for tests and diagnostics

    @classmethod
    def instance(cls) -> "CommBroadcaster":
        """This kernel's broadcaster (the one ``register`` connects to the sidebars)."""
        return _broadcaster

    # ---- channels ------------------------------------------------------------------
    @property
    def channels(self) -> list:
        with self._lock:
            return list(self._channels.values())

    def attach(self, channel: Any) -> None:
        """Start streaming to ``channel`` (a comm); its incoming messages are validated."""
        key = str(getattr(channel, "comm_id", id(channel)))
        with self._lock:
            self._channels[key] = channel

        def on_msg(msg: Any, channel=channel) -> None:
            self.handle_message(channel, _message_data(msg))

        def on_close(msg: Any, key=key) -> None:
            with self._lock:
                self._channels.pop(key, None)

        channel.on_msg(on_msg)
        channel.on_close(on_close)

    def detach(self, channel: Any) -> None:
        key = str(getattr(channel, "comm_id", id(channel)))
        with self._lock:
            self._channels.pop(key, None)

    def handle_message(self, channel: Any, data: Any) -> bool:
        """Answer a valid hello with a snapshot; ignore anything else. Returns True if handled."""
        msg = parse_incoming(data)
        if msg is None:
            log.debug("nanwatch comm: ignored a malformed or unknown message")
            return False
        # only "hello" exists in v1
        self._send(channel, self.snapshot())
        return True

    def open_from_frontend(self, channel: Any, open_msg: Any) -> None:
        """Comm target callback: a sidebar opened a comm; its open data must be a hello."""
        if parse_incoming(_message_data(open_msg)) is None:
            log.debug("nanwatch comm: refused a comm whose open data is not a hello")
            try:
                channel.close()
            except Exception:  # pragma: no cover - closing a half-open comm
                pass
            return
        self.attach(channel)
        self._send(channel, self.snapshot())

    # ---- state -----------------------------------------------------------------------
    def snapshot(self) -> dict:
        with self._lock:
            active = None
            if self._active is not None:
                a = self._active
                active = {"run": a["run"], "steps": _clean(list(a["steps"])), "layers": self._active_layers(),
                          "first_nonfinite": a["first_nonfinite"], "diagnosis": a["diagnosis"]}
            return {"v": PROTOCOL_VERSION, "type": "snapshot", "runs": list(self._runs), "active": active}

    @property
    def runs(self) -> list:
        with self._lock:
            return list(self._runs)

    @property
    def active(self) -> dict | None:
        with self._lock:
            if self._active is None:
                return None
            active = dict(self._active, layers=self._active_layers())
            active.pop("layers_raw", None)
            return active

    def reset(self) -> None:
        """Forget every run of this kernel and tell the sidebars to clear (``%nanwatch reset``)."""
        with self._lock:
            self._runs.clear()
            self._active = None
            self._pending_steps = []
            self._layers_dirty = False
            self._broadcast({"v": PROTOCOL_VERSION, "type": "reset"})

    # ---- sink methods (called by the engine) ------------------------------------------
    def run_started(self, run: dict) -> None:
        run = _clean(run)
        if not isinstance(run, dict) or run.get("run_id") is None:
            log.debug("nanwatch comm: run_started without run_id ignored")
            return
        run["run_id"] = str(run["run_id"])
        with self._lock:
            self._active = {"run": run, "steps": deque(maxlen=MAX_STEPS), "layers": [],
                            "first_nonfinite": None, "diagnosis": []}
            self._pending_steps = []
            self._layers_dirty = False
            self._last_progress = float("-inf")
            self._broadcast({"v": PROTOCOL_VERSION, "type": "run_started", "run": run})

    def step(self, record: dict) -> None:
        with self._lock:
            if self._active is None:
                return
            # kept raw (a shallow copy): made JSON-safe only when sent, so a step costs little
            record = dict(record) if isinstance(record, dict) else {"step": None}
            self._active["steps"].append(record)
            self._pending_steps.append(record)
            if len(self._pending_steps) > MAX_PROGRESS_STEPS:
                del self._pending_steps[:-MAX_PROGRESS_STEPS]
            self._maybe_progress()

    def layers(self, records: list) -> None:
        """Kept raw: trimmed and made JSON-safe only when sent (at most one progress message per
        interval), not at every statistics step."""
        with self._lock:
            if self._active is None:
                return
            self._active["layers"] = None
            self._active["layers_raw"] = records
            self._layers_dirty = True
            self._maybe_progress()

    def _active_layers(self) -> list:
        """The active run's latest layer records, trimmed and JSON-safe (cleaned once per change)."""
        a = self._active
        if a["layers"] is None:
            a["layers"] = _clean(_trim_layers(a.get("layers_raw") or []))
        return a["layers"]

    def first_nonfinite(self, first: dict, diagnosis: list) -> None:
        with self._lock:
            if self._active is None:
                return
            first, diagnosis = _clean(first), _clean(diagnosis or [])
            self._active["first_nonfinite"] = first
            self._active["diagnosis"] = diagnosis
            self._flush_progress()  # what led up to it goes out first
            self._broadcast({"v": PROTOCOL_VERSION, "type": "first_nonfinite",
                             "run_id": self._active["run"]["run_id"], "first": first, "diagnosis": diagnosis})

    def run_finished(self, report: dict) -> None:
        report = _clean(report)
        if not isinstance(report, dict):
            return
        report = _trim_report(report)
        with self._lock:
            run_id = _report_run_id(report)
            # a report may arrive without run_started (e.g. `%nanwatch` replays the last report)
            for i, old in enumerate(self._runs):
                if run_id is not None and _report_run_id(old) == run_id:
                    del self._runs[i]
                    break
            self._runs.append(report)
            self._active = None
            self._pending_steps = []
            self._layers_dirty = False
            self._broadcast({"v": PROTOCOL_VERSION, "type": "run_finished", "report": report})

    # ---- internals ---------------------------------------------------------------------
    def _maybe_progress(self) -> None:
        if self._clock() - self._last_progress >= self.min_interval:
            self._flush_progress()

    def _flush_progress(self) -> None:
        if self._active is None or (not self._pending_steps and not self._layers_dirty):
            return
        msg = {"v": PROTOCOL_VERSION, "type": "progress", "run_id": self._active["run"]["run_id"],
               "steps": _clean(self._pending_steps),
               "layers": self._active_layers() if self._layers_dirty else None}
        self._pending_steps = []
        self._layers_dirty = False
        self._last_progress = self._clock()
        self._broadcast(msg)

    def _broadcast(self, msg: dict) -> None:
        for channel in self.channels:
            self._send(channel, msg)

    def _send(self, channel: Any, msg: dict) -> None:
        try:
            channel.send(msg)
            self.sent += 1
        except Exception:
            log.debug("nanwatch comm: send failed, dropping the channel", exc_info=True)
            self.detach(channel)


# --------------------------------------------------------------------------------------
# module-level API

_broadcaster = CommBroadcaster()
_announced_kernels: set = set()  # kernels where register() opened a comm to the frontend


def sink() -> CommBroadcaster:
    """The kernel's broadcaster: pass it to the engine as a sink. Works (stores only) outside a kernel."""
    return _broadcaster


def reset() -> None:
    """Forget this kernel's runs and clear the sidebars (``%nanwatch reset``)."""
    _broadcaster.reset()


def _parent_metadata(kernel: Any) -> dict:
    try:
        parent = kernel.get_parent()
    except TypeError:  # pragma: no cover - older ipykernel signature
        parent = kernel.get_parent("shell")
    except Exception:
        return {}
    meta = parent.get("metadata") if isinstance(parent, dict) else None
    return meta if isinstance(meta, dict) else {}


def current_cell_id(ipython_shell: Any = None) -> str | None:
    """The notebook cell id of the cell being executed (JupyterLab sends it), or None."""
    if ipython_shell is None:
        try:
            from IPython import get_ipython
        except ImportError:  # pragma: no cover
            return None
        ipython_shell = get_ipython()
    kernel = getattr(ipython_shell, "kernel", None)
    if kernel is None:
        return None
    cell_id = _parent_metadata(kernel).get("cellId")
    return cell_id if isinstance(cell_id, str) and cell_id else None


def register(ipython_shell: Any) -> bool:
    """Register the ``nanwatch`` comm target in this kernel (called by ``%load_ext nanwatch``).

    No-op outside a Jupyter kernel (plain IPython, scripts): returns False. Idempotent.
    When called from a JupyterLab cell (the request carries a ``cellId``), also opens a comm
    to the frontend's ``nanwatch`` target, once per kernel, so an already-connected sidebar
    starts listening at once; headless runners (no ``cellId``) get no comm.
    """
    kernel = getattr(ipython_shell, "kernel", None)
    if kernel is None:
        return False
    try:
        import comm as comm_pkg
        manager = comm_pkg.get_comm_manager()
        manager.register_target(TARGET_NAME, _broadcaster.open_from_frontend)
    except Exception:
        log.warning("nanwatch: could not register the comm target; the sidebar will not update", exc_info=True)
        return False
    key = id(kernel)
    if key not in _announced_kernels and "cellId" in _parent_metadata(kernel):
        _announced_kernels.add(key)
        try:
            channel = comm_pkg.create_comm(target_name=TARGET_NAME, data=_broadcaster.snapshot())
            _broadcaster.attach(channel)
        except Exception:
            log.debug("nanwatch comm: could not open a comm to the frontend", exc_info=True)
    return True


__all__ = ["CommBroadcaster", "PROTOCOL_VERSION", "TARGET_NAME", "current_cell_id", "parse_incoming",
           "register", "reset", "sink"]
