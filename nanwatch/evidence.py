"""The evidence record: what a watched run gathered for the diagnosis, as one typed record.

The recorder (`nanwatch.recorder`) produces it, in one place; the diagnosis
(`nanwatch.diagnosis`) reads it. TensorFlow-free, plain data: numbers, strings, lists and
dicts, so a test can build one by hand and `diagnose` accepts a dict of the same fields.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass
class Evidence:
    """Every field is optional; each is read by the diagnosis (nanwatch/diagnosis/context.py),
    except `fp16_skipped_steps`, which the session reports as info."""

    # The Keras call that ran last in the cell: "fit" | "evaluate" | "predict" | None (custom code).
    call: str | None = None
    # schema 1 `first_nonfinite` (None while the run is finite)
    first_nonfinite: dict | None = None
    # data_checks.profile_array profiles of the arrays given to fit/evaluate/predict, each with "call"
    data: list = field(default_factory=list)
    # schema 1 `steps` and `layers`
    steps: list = field(default_factory=list)
    layers: list = field(default_factory=list)
    # {class, inner_class?, name, learning_rate, clipnorm, clipvalue, global_clipnorm, loss_scale, epsilon,
    #  momentum, nesterov, weight_decay, iterations, schedule: {class, config, name, custom, takes_step} | None,
    #  and once a value went non-finite: learning_rate_at_failure, iterations_at_failure}
    # (engine/model_facts.optimizer_facts; learning_rate is the rate in force when the model was first seen)
    optimizer: dict | None = None
    # weights non-finite before the cell's first step: [{layer, variable, counts}]
    nan_weights: list = field(default_factory=list)
    # kernels' norms before the first step: [{layer, variable, norm, fan_in, fan_out}]
    initial_weight_norms: list = field(default_factory=list)
    # the model's layers as built: [{name, class, config}] (Keras `get_config()` of each layer)
    layers_config: list = field(default_factory=list)
    # Keras dtype policy name, e.g. "mixed_float16"
    dtype_policy: str | None = None
    # steps a LossScaleOptimizer skipped (its scale went down)
    fp16_skipped_steps: int = 0
    # at predict: the training features' ranges (drift.training_ranges), kept per model by the recorder
    train_ranges: dict | None = None
    # the compiled loss against the output layer (engine/model_facts.loss_facts): {name, class,
    # from_logits, probabilistic, output_layer, output_class, output_activation}
    loss_config: dict | None = None
    # the learning rate in force at train steps: [[step, rate], ...] in step order; every step (at most
    # model_facts.SCHEDULE_POINTS) under a schedule, else the steps where the rate was read (the first step,
    # each epoch's first step: a callback such as ReduceLROnPlateau changes it there, the failing step)
    learning_rates: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_mapping(cls, mapping) -> "Evidence":
        """From a dict of the same fields (tests, old callers); unknown keys are ignored and
        malformed values left for the diagnosis to read defensively."""
        if isinstance(mapping, Evidence):
            return mapping
        if not isinstance(mapping, dict):
            return cls()
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in mapping.items() if k in known and v is not None}
        return cls(**values)


FIELDS = tuple(f.name for f in fields(Evidence))
