"""The rules' view of a run: the evidence record read once, defensively, and the candidate shape.

Every rule module (nonfinite_sources, op_rules, growth_rules) receives a `Context` and returns
candidates made with `cand`; reading the evidence in one place means a rule never parses a raw
field itself, and a malformed field (any of them may be missing, None or of the wrong type) is
handled here or in the rule that reads it, never by raising out of `diagnose`.

Confidence scale the rules share: 0.9+ the first non-finite op itself shows the cause (log of an
input whose min is 0, a division whose denominator has zeros, NaN rows in the data); 0.75-0.85
strong circumstantial evidence (dynamics signatures, a constant column next to a division, an
outlier row next to an overflow); 0.3-0.6 plausible contributors.
"""

from __future__ import annotations

import math

from ..evidence import Evidence
from ..numfmt import num
from ..ops import DATA_SOURCE_OPS
from . import dynamics as dyn
from .data_checks import TARGET_ROLES, profile_warnings

# First layers that scale their inputs themselves: raw feature scales are then not a problem.
NORMALIZING_FIRST = {"Normalization", "Rescaling", "BatchNormalization", "LayerNormalization",
                     "Embedding", "TextVectorization", "StringLookup", "IntegerLookup", "CategoryEncoding",
                     "Hashing", "Discretization", "UnitNormalization", "GroupNormalization"}
# Layers that pass values through without weights or scaling: the "first layer" is the one after them.
PASS_THROUGH = {"InputLayer", "Reshape", "Flatten", "Permute", "RepeatVector", "Dropout", "SpatialDropout1D",
                "SpatialDropout2D", "GaussianNoise", "ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D",
                "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom", "RandomCrop", "Resizing", "CenterCrop"}


def cand(cause: str, confidence: float, evidence: str, fix: str) -> dict:
    """One diagnosis candidate, as every rule returns it."""
    return {"cause": cause, "confidence": round(float(confidence), 3), "evidence": evidence, "fix": fix}


class Context:
    """The evidence (an `Evidence` or a dict of its fields), read once."""

    def __init__(self, evidence: Evidence | dict | None):
        record = Evidence.from_mapping(evidence)
        self.record = record
        self.call = record.call
        fn = record.first_nonfinite
        self.fn = fn if isinstance(fn, dict) else {}
        self.has_fn = bool(self.fn)
        self.op = self.fn.get("op_type")
        self.phase = self.fn.get("phase")
        self.layer = self.fn.get("layer")
        self.step = num(self.fn.get("step"))
        self.inputs = [i for i in (self.fn.get("inputs") or []) if isinstance(i, dict)]
        self.counts = self.fn.get("counts") or {}
        src = self.fn.get("source") or {}
        self.code = src.get("code") if isinstance(src, dict) else None
        self.line = src.get("line") if isinstance(src, dict) else None
        self.data_loc = self.fn.get("data") if isinstance(self.fn.get("data"), dict) else None
        # how the engine saw the value made: in the gradient of a forward op, or out of a -inf mask
        grad = self.fn.get("gradient_of")
        self.gradient_of = grad if isinstance(grad, dict) else None
        self.made_from = self.fn.get("made_from") if isinstance(self.fn.get("made_from"), str) else None
        self.dtype = str(self.fn.get("dtype") or (self.inputs[0].get("dtype") if self.inputs else "") or "")
        self.dtype_policy = record.dtype_policy or "float32"
        self.optimizer = record.optimizer if isinstance(record.optimizer, dict) else None
        self.profiles = [p for p in (record.data or []) if isinstance(p, dict) and not p.get("error")]
        self.train_ranges = record.train_ranges
        self.layer_cfg = read_layers_config(record.layers_config)
        self.layer_classes = {k: v.get("class") for k, v in self.layer_cfg.items()}
        # the one analysis of the training dynamics: rules and early warnings all read this
        self.dyn = dyn.analyze(record.steps, record.layers, self.optimizer, self.dtype_policy,
                               layer_classes=self.layer_classes, learning_rates=record.learning_rates,
                               failing_step=self.step if self.call in ("fit", None) else None)
        self._profile_items = None

    # ---- inputs of the culprit op ----------------------------------------------------------------
    @staticmethod
    def input_finite(i: dict) -> bool:
        if i.get("finite") is False:
            return False
        return not any((num(i.get(k)) or 0) > 0 for k in ("nan", "pos_inf", "neg_inf"))

    @property
    def inputs_finite(self) -> bool:
        return all(self.input_finite(i) for i in self.inputs)

    @property
    def upstream_nonfinite(self) -> bool:
        """An input of the op was already non-finite, other than an intended infinity (a -inf mask the
        engine saw the op make NaN from: then the op, not what fed it, is the story)."""
        return not self.inputs_finite and self.made_from != "mask"

    @property
    def made_inf(self) -> bool:
        c = self.counts
        return (num(c.get("pos_inf")) or 0) + (num(c.get("neg_inf")) or 0) > 0

    @property
    def made_nan(self) -> bool:
        return (num(self.counts.get("nan")) or 0) > 0

    def max_abs_input(self):
        vals = []
        for i in self.inputs:
            for k in ("min", "max"):
                v = num(i.get(k))
                if v is not None and math.isfinite(v):
                    vals.append(abs(v))
        return max(vals) if vals else None

    # ---- data profiles ------------------------------------------------------------------------------
    def profiles_for(self, roles) -> list:
        """Full-array profiles first, then consumed batches."""
        ps = [p for p in self.profiles if p.get("role") in roles]
        return sorted(ps, key=lambda p: (p.get("batch") is not None, p.get("batch") or 0))

    @property
    def profile_items(self) -> list:
        """profile_warnings of every profile, each tagged with its profile."""
        if self._profile_items is None:
            self._profile_items = [dict(w, profile=p) for p in self.profiles for w in profile_warnings(p)]
        return self._profile_items

    def items(self, cause: str, level: str = "warning") -> list:
        return [w for w in self.profile_items if w["cause"] == cause and w.get("level") == level]

    # ---- the model -------------------------------------------------------------------------------
    def first_layer_class(self) -> str | None:
        for cfg in self.layer_cfg.values():
            if cfg.get("class") and cfg.get("class") not in PASS_THROUGH:
                return cfg["class"]
        return None

    def first_layer_name(self) -> str | None:
        for name, cfg in self.layer_cfg.items():
            if cfg.get("class") and cfg.get("class") not in PASS_THROUGH:
                return name
        return None

    @property
    def first_layer_normalizes(self) -> bool:
        """The model's first layer scales its inputs (Normalization, Rescaling, Embedding, ...),
        unless that layer is where the values overflowed (a BatchNormalization's variance of
        wei-scale inputs): then it did not protect the model from their scale."""
        if self.first_layer_class() not in NORMALIZING_FIRST:
            return False
        return not (self.has_fn and self.layer is not None and self.layer == self.first_layer_name())

    # ---- where the first non-finite value came from ------------------------------------------------
    def data_is_target(self) -> bool | None:
        if not self.data_loc:
            return None
        src = str(self.data_loc.get("source") or "").lower()
        if src.startswith(("y", "target", "label", "sample_weight")):
            return True
        for p in self.profiles_for(TARGET_ROLES):
            if src and src == str(p.get("name") or "").lower():
                return True
        return False

    def is_data_op(self) -> bool:
        """The first non-finite tensor is the data itself (not an op computing on finite data, such as
        an eager standardisation in the cell that divides by a zero std)."""
        if self.op in DATA_SOURCE_OPS or (self.op is None and self.phase == "input"):
            return self.phase in (None, "input", "forward")
        return self.phase == "input" and not self.inputs

    def where(self) -> str:
        """'Log in layer 'scorer' (loss) at step 3': the first non-finite op, for evidence texts."""
        w = f"{self.op}"
        if self.layer:
            w += f" in layer '{self.layer}'"
        if self.phase:
            w += f" ({self.phase})"
        if self.step is not None:
            w += f" at step {int(self.step)}"
        return w


def read_layers_config(raw) -> dict:
    """{layer name: {"class": ..., "config": {...}}} from the evidence's `layers_config`.

    The engine gives a list of {"name", "class", "config"} (class = type(layer).__name__,
    config = layer.get_config()), in model order; a dict {name: {...}} and Keras' own
    {"class_name", "config": {"name"}} entries are read too. Anything else is ignored."""
    out = {}
    if isinstance(raw, dict):
        raw = [dict(v, name=k) if isinstance(v, dict) else {"name": k} for k, v in raw.items()]
    if not isinstance(raw, (list, tuple)):
        return out
    for c in raw:
        if not isinstance(c, dict):
            continue
        cfg = c.get("config") if isinstance(c.get("config"), dict) else {}
        name = c.get("name") or c.get("layer") or cfg.get("name")
        if name:
            out[name] = {"class": c.get("class") or c.get("class_name"), "config": cfg}
    return out
