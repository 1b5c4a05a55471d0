"""Where an op was created: its Keras layer, its phase, and the notebook cell line.

Read from the live Python stack at op creation (graph trace time or eager
execution), innermost frame first. Graph op names alone cannot give the layer
as the user named it (`sequential_1/magnitude_1` vs `magnitude`) nor the cell
line, so we take both from the frames.
"""

from __future__ import annotations

import linecache
import os
import sys
from dataclasses import dataclass

_SEP = os.sep

# (path fragment, phase), tried on each frame from the innermost outwards.
# ("keras/src/..." also matches legacy tf_keras's "tf_keras/src/...")
_PATH_PHASES = (
    (f"{_SEP}tensorflow{_SEP}python{_SEP}data{_SEP}", "input"),
    (f"keras{_SEP}src{_SEP}optimizers{_SEP}", "optimizer"),
    (f"{_SEP}tensorflow{_SEP}python{_SEP}eager{_SEP}backprop.py", "backward"),
    (f"{_SEP}tensorflow{_SEP}python{_SEP}eager{_SEP}imperative_grad.py", "backward"),
    (f"{_SEP}tensorflow{_SEP}python{_SEP}ops{_SEP}gradients_util.py", "backward"),
    (f"keras{_SEP}src{_SEP}metrics{_SEP}", "metric"),
    (f"keras{_SEP}src{_SEP}losses{_SEP}", "loss"),
)
_FUNC_PHASES = {"compute_metrics": "metric", "compute_loss": "loss", "_compute_loss": "loss"}

_LIBRARY_MARKERS = tuple(f"{_SEP}{name}{_SEP}" for name in (
    "tensorflow", "keras", "tf_keras", "nanwatch", "site-packages", "dist-packages", "IPython",
    "ipykernel", "numpy", "absl", "optree", "tree"))


@dataclass(frozen=True)
class Where:
    """Where an op was made. Frozen: a refined copy is made with `dataclasses.replace`."""
    layer: str | None
    layer_path: str | None   # e.g. "sequential/dense" (outer layers first)
    phase: str
    source: dict | None      # {cell, cell_id, line, code, file, function}
    scope: str | None = None  # eager gradient ops: the name scope of the forward op


class CellMap:
    """Maps code object filenames to notebook cells (execution count and cell id)."""

    def __init__(self):
        self.files: dict[str, int] = {}      # filename -> execution count
        self.cell_ids: dict[int, str] = {}   # execution count -> cell id
        self.shell = None

    def cell_of(self, filename: str):
        if filename in self.files:
            return self.files[filename]
        shell = self.shell
        if shell is not None:
            number = getattr(getattr(shell, "compile", None), "_filename_map", {}).get(filename)
            if number is not None:
                return number
        if filename.startswith("<ipython-input-"):
            try:
                return int(filename.split("-")[2])
            except (IndexError, ValueError):
                return None
        return None


def _is_library(filename: str) -> bool:
    return any(marker in filename for marker in _LIBRARY_MARKERS) or filename.startswith("<frozen")


def _keras_layer_classes() -> tuple:
    """Keras 3's Layer, and legacy tf_keras's when it is loaded (TF_USE_LEGACY_KERAS=1)."""
    found = []
    for module_name in ("keras.src.layers.layer", "tf_keras.src.engine.base_layer"):
        cls = getattr(sys.modules.get(module_name), "Layer", None)
        if cls is not None:
            found.append(cls)
    return tuple(found)


def resolve(frame, cells: CellMap, tape_active: bool = False, user_layers=frozenset()) -> Where:
    """Walk the stack from `frame` outwards. `user_layers`: ids of the layers users put in their
    models (nested models opened): an op inside an RNN's cell or a custom block's sublayer is
    named after that layer."""
    layer_cls = _keras_layer_classes()
    phase = None
    layers: list = []
    source = None
    fallback_source = None
    autograph_map = None
    scope = None
    while frame is not None:
        code = frame.f_code
        filename = code.co_filename
        lineno = frame.f_lineno
        if "__autograph_generated_file" in filename:
            if autograph_map is None:
                autograph_map = _autograph_source_map()
            origin = autograph_map.get((filename, lineno))
            if origin is not None:
                filename, lineno = origin[0], origin[1]
        if phase is None:
            for fragment, name in _PATH_PHASES:
                if fragment in filename:
                    phase = name
                    break
            else:
                phase = _FUNC_PHASES.get(code.co_name) if "keras" in filename else None
        if scope is None and code.co_name == "_gradient_function" and "backprop" in filename:
            scope = frame.f_locals.get("forward_pass_name_scope")
        if layer_cls and code.co_name in ("call", "__call__"):
            owner = frame.f_locals.get("self")
            if isinstance(owner, layer_cls) and (not layers or layers[-1] is not owner):
                layers.append(owner)
        if source is None:
            cell = cells.cell_of(filename)
            if cell is not None:
                source = _source(filename, lineno, code.co_name, cell, cells)
            elif fallback_source is None and not _is_library(filename):
                fallback_source = _source(filename, lineno, code.co_name, None, cells)
        frame = frame.f_back
    if phase is None:
        phase = "forward" if layers else ("loss" if tape_active else "forward")
    leaf = next((layer for layer in layers if id(layer) in user_layers), layers[0] if layers else None)
    path = "/".join(getattr(layer, "name", "?") for layer in reversed(layers)) if layers else None
    return Where(layer=getattr(leaf, "name", None), layer_path=path, phase=phase,
                 source=source or fallback_source, scope=scope or None)


def _autograph_source_map() -> dict:
    """(generated file, line) -> (original file, line, function) for code autograph converted."""
    try:
        import threading
        from tensorflow.python.util import tf_stack
        return tf_stack._source_mapper_stacks[threading.get_ident()][-1].get_effective_source_map()
    except Exception:
        return {}


def _source(filename, lineno, function, cell, cells: CellMap) -> dict:
    return {
        "cell": cell,
        "cell_id": cells.cell_ids.get(cell) if cell is not None else None,
        "line": int(lineno),
        "code": linecache.getline(filename, lineno).strip(),
        "file": None if cell is not None else filename,
        "function": function,
    }


def layer_from_scope(op_name: str | None, layer_names) -> str | None:
    """`gradient_tape/sequential_1/root_1/Sqrt/SqrtGrad` -> `root` (innermost known layer)."""
    if not op_name:
        return None
    found = None
    for part in op_name.split("/"):
        base = part
        if base not in layer_names and "_" in base and base.rsplit("_", 1)[1].isdigit():
            base = base.rsplit("_", 1)[0]
        if base in layer_names:
            found = base
    return found
