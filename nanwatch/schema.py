"""Schema 1 of the report and of the sidebar's comm messages, written once.

Python (report.py, comm.py, diagnosis), the JSON Schemas in docs/schema/ (generated from this
module by scripts/gen_schema.py) and the TypeScript sidebar (checked against those files by jest;
its cause titles generated into labextension/src/causes.ts) all take their enums, cause ids (with
their titles) and limits from here, so the copies cannot drift apart again.
Standard library only: no TensorFlow, no numpy, no jsonschema at import time. The records become
JSON Schema (and values are validated against it) in nanwatch/schema_json.py, which builds on this
module (import it for report_json_schema, comm_json_schema, validate_report, validate_message).
"""

import math
from enum import Enum
from typing import Annotated, Any, Literal, Optional as Opt, TypedDict, get_type_hints

SCHEMA_VERSION = 1
PROTOCOL_VERSION = 1


class _StrEnum(str, Enum):
    """A str enum whose members compare and serialise as their value."""

    def __str__(self) -> str:
        return self.value


def _enum(name: str, values: tuple, doc: str) -> type:
    cls = _StrEnum(name, [(v.upper(), v) for v in values])
    cls.__doc__ = doc
    return cls


Status = _enum("Status", ("healthy", "warning", "nonfinite", "error"),
               "`report.status`: what the run found; the worst wins (see Report.finish).")
Mode = _enum("Mode", ("exact", "fast"), "`report.mode`: how the run was checked (decided before `run_started`).")
OpPhase = _enum("OpPhase", ("input", "forward", "loss", "backward", "optimizer", "metric"),
                "`first_nonfinite.phase`: the part of a step the first non-finite op belongs to.")
CallKind = _enum("CallKind", ("train", "evaluate", "predict"),
                 "`steps[].phase` (key kept for schema 1): the kind of call a step belongs to.")

# `first_nonfinite.context`: where the detection came from (engine/probe.py Detection.context,
# session.py): a checked graph op, an eager op, a data batch, a constant of the cell (e.g. float("-inf")),
# non-finite weights, fast mode's sentinel.
CONTEXTS = ("graph", "eager", "data", "constant", "weights", "sentinel")

# Every `cause` id of `diagnosis[]` and `warnings[]` with its human title, in report order:
# diagnosis.CAUSES, plus the warning diagnose() emits when it cannot read its evidence (last).
# scripts/gen_schema.py writes the titles into the JSON Schemas ("x-nanwatch-cause-titles") and
# into the sidebar's labextension/src/causes.ts: a new cause is added here, id and title together.
CAUSE_TITLES = {
    "nan_in_input": "NaN in the input data",
    "inf_in_input": "Inf in the input data",
    "nan_in_target": "NaN in the targets",
    "inf_in_target": "Inf in the targets",
    "nan_in_weights": "NaN in the weights",
    "log_of_nonpositive": "Log of a non-positive value",
    "sqrt_of_negative": "Square root of a negative value",
    "division_by_zero": "Division by zero",
    "exp_overflow": "Exp overflow",
    "float16_overflow": "float16 overflow",
    "fully_masked_softmax": "Softmax over a fully masked row",
    "where_gradient_trap": "NaN gradient through a tf.where (the where trap)",
    "nondifferentiable_point": "Gradient at a non-differentiable point",
    "optimizer_epsilon_zero": "Optimizer epsilon of 0",
    "exploding_gradients": "Exploding gradients",
    "learning_rate_too_high": "Learning rate too high",
    "unscaled_input": "Unscaled input features",
    "outlier_input": "Outliers in the input",
    "placeholder_values": "Placeholder values in the data",
    "zero_variance_normalization": "Normalization of a zero-variance feature",
    "large_initial_weights": "Large initial weights",
    "outlier_target": "Outliers in the targets",
    "input_drift": "Inputs off the training range",
    "loss_expects_probabilities": "Probabilistic loss on outputs that are not probabilities",
    "probabilities_as_logits": "from_logits=True on outputs that are already probabilities",
    "rare_values_standardized": "Rarely non-zero features blown up by standardisation",
    "learning_rate_schedule_grows": "Learning-rate schedule that grows",
    "learning_rate_nonpositive": "Zero or negative learning rate",
    "domain_error": "Input outside the function's domain",
    "diagnosis_error": "The diagnosis could not run",
}
CAUSE_IDS = tuple(CAUSE_TITLES)

# Limits shared by the kernel and the sidebar (exported to the JSON Schemas as "x-nanwatch-limits").
MAX_RUNS = 50             # reports kept in kernel memory (and in the sidebar) for late frontends
MAX_STEPS = 500           # step records kept per run for the sidebar (the Report keeps a bounded sample)
MAX_HISTORY = 200         # history entries kept per layer for the sidebar
MAX_PROGRESS_STEPS = 200  # step records carried by one progress message
MAX_SAVED_POINTS = 300    # steps / history points kept in a saved notebook output
LIMITS = {name: value for name, value in globals().items() if name.startswith("MAX_")}


def json_safe(value: Any) -> Any:
    """Floats JSON cannot carry (nan/inf) become strings, numpy scalars become Python, tuples lists."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if value != value else ("inf" if value > 0 else "-inf")
    return value


# the records (TypedDicts): the JSON Schemas in docs/schema/ are generated from these
def Doc(description: str = "", **keywords: Any) -> dict:  # noqa: N802 - reads as a type annotation
    """`Annotated[T, Doc("...", maxItems=...)]`: a field's description and extra JSON Schema keywords."""
    return dict(keywords, description=description) if description else dict(keywords)


Context = _enum("Context", CONTEXTS, "`first_nonfinite.context`: where the detection came from.")
CauseId = _enum("CauseId", CAUSE_IDS, "`diagnosis[].cause` and `warnings[].cause`.")


class _Counts(TypedDict):
    nan: Opt[int]
    pos_inf: Opt[int]
    neg_inf: Opt[int]
    size: Opt[int]


class Counts(_Counts, total=False):
    """Non-finite counts of the culprit tensor; null when a graph check could not count them."""
    kind: Annotated[str, Doc("from the check's message when the counts are null: 'NaN', 'Inf'...")]


class _InputHealth(TypedDict):
    name: Opt[str]
    op_type: Opt[str]
    finite: Annotated[Opt[bool], Doc("null: the input came from an unchecked fused chain")]


class InputHealth(_InputHealth, total=False):
    """One input of the culprit op. A graph check knows only name, op_type and finite."""
    min: Opt[float]
    max: Opt[float]
    mean: Opt[float]
    zeros: int
    negatives: int
    nan: int
    pos_inf: int
    neg_inf: int
    size: int
    dtype: Opt[str]
    shape: Opt[list[int]]


class _DataRows(TypedDict):
    rows: Annotated[list[int], Doc("batch rows (axis 0) holding non-finite values")]
    columns: Annotated[list[int], Doc("columns (last axis) holding non-finite values")]
    values: Annotated[list[str], Doc("the non-finite values found: 'nan', 'inf', '-inf'")]


class DataRows(_DataRows, total=False):
    """Where the non-finite values sit in the data (phase input), or the non-finite weight."""
    source: Annotated[Opt[str], Doc("'x', 'y', 'component N', or 'weights'")]
    batch: Opt[int]
    array_rows: Annotated[list[int], Doc("the same rows in the user's own array")]
    layer: Opt[str]
    variable: Opt[str]


class Consumer(TypedDict):
    """For a data origin: the op that first consumed the bad data."""
    op_type: Opt[str]
    layer: Opt[str]
    input: Opt[int]


class SourceLocation(TypedDict):
    """The line that created the op: a notebook cell (cell, cell_id) or a file."""
    cell: Opt[int]
    cell_id: Opt[str]
    line: Opt[int]
    code: Opt[str]
    file: Opt[str]
    function: Opt[str]


class _Histogram(TypedDict):
    bins: list[float]
    counts: list[int]


class Histogram(_Histogram, total=False):
    """Histogram of the finite values of the culprit (or of its first floating input)."""
    nonfinite: Annotated[int, Doc("how many values were left out as non-finite")]
    input: Annotated[str, Doc("which input, e.g. 'input:0', when not the output")]


class GradientOrigin(TypedDict):
    """For a NaN/Inf born in the backward pass: the forward op whose gradient made it."""
    op_type: Annotated[Opt[str], Doc("the forward op, e.g. 'Sqrt', 'Log'")]
    source: Annotated[Opt[SourceLocation], Doc("the line that created the forward op")]
    forward_absorbed: Annotated[bool, Doc("the forward value was itself non-finite and absorbed by a where: "
                                          "the where trap")]


class _FirstNonfinite(TypedDict):
    op_type: Annotated[Opt[str], Doc("null for a data or weight origin")]
    op_name: Opt[str]
    output_slot: Opt[int]
    phase: OpPhase
    layer: Opt[str]
    step: Opt[int]
    epoch: Opt[int]
    counts: Counts
    inputs: list[InputHealth]
    data: Opt[DataRows]
    source: Opt[SourceLocation]
    device: Opt[str]
    replica: Annotated[Opt[int], Doc("replica id in sync under a distribution strategy (across workers under "
                                     "a multi-worker one)")]
    context: Context
    replayed: Annotated[Opt[bool], Doc("whether a failing graph step was replayed eagerly")]
    reproduced: Annotated[Opt[bool], Doc("whether that replay reproduced the non-finite value")]
    histogram: Opt[Histogram]


class FirstNonfinite(_FirstNonfinite, total=False):
    """The causal origin of the first NaN/Inf: the op whose inputs were finite and output was not."""
    layer_path: Annotated[Opt[str], Doc("outer layers first, e.g. 'sequential/dense'")]
    consumer: Opt[Consumer]
    dtype: Opt[str]
    gradient_of: Annotated[Opt[GradientOrigin], Doc("null unless the value was born in a gradient")]
    made_from: Annotated[Opt[Literal["mask"]], Doc("'mask': the op made NaN out of an intended infinity "
                                                   "(e.g. softmax over a fully -inf-masked row)")]
    task: Annotated[Opt[int], Doc("under a multi-worker strategy: the worker (task index) that made the value, "
                                  "named in every worker's report")]


class _Diagnosis(TypedDict):
    cause: CauseId
    confidence: Annotated[float, Doc("0..1; the list is ranked, most likely first")]
    evidence: str
    fix: str


class Diagnosis(_Diagnosis, total=False):
    """A likely cause of the first non-finite value, with the evidence and a fix."""
    verified: Annotated[Literal["true", "false", "not tried"],
                        Doc("the fix applied to the failing step (engine/verify.py): 'true' the step became finite, "
                            "'false' it did not, 'not tried' (verified_how says why); absent in older reports")]
    verified_how: Annotated[str, Doc("what was run to verify the fix, or why it was not tried")]


class WarningRecord(TypedDict):
    """A problem worth fixing that did not (yet) make a NaN: data, drift, dynamics, initial weights."""
    cause: CauseId
    evidence: str
    fix: str


class SeriesSampling(TypedDict):
    """How a series (`steps`, a layer's `history`) was cut to a bounded sample: docs/design.md, long runs."""
    recorded: Annotated[int, Doc("records made in the run")]
    kept: Annotated[int, Doc("records in the sample")]
    head: Annotated[int, Doc("the first records, all kept")]
    tail: Annotated[int, Doc("the last records, all kept")]
    stride: Annotated[int, Doc("between head and tail, one record in `stride` kept (1: all)")]
    notable: Annotated[int, Doc("notable records kept for themselves (spikes and their neighbours)")]
    notable_dropped: Annotated[int, Doc("weaker notable records dropped to keep the sample bounded")]


class StepRecord(TypedDict):
    """One step (a batch) of a Keras call or a custom loop."""
    step: Opt[int]
    epoch: Opt[int]
    phase: Annotated[CallKind, Doc("the kind of call (CallKind); named `phase` in schema 1")]
    loss: Opt[float]
    metrics: dict[str, float]
    grad_norm: Opt[float]


class HistoryPoint(TypedDict):
    """One sample of a layer's norms."""
    step: Opt[int]
    weight_norm: Opt[float]
    grad_norm: Opt[float]
    activation_norm: Opt[float]


class _LayerRecord(TypedDict):
    layer: str
    weight_norm: Opt[float]
    grad_norm: Opt[float]
    activation_norm: Opt[float]
    min: Opt[float]
    max: Opt[float]
    mean: Opt[float]
    std: Opt[float]
    nan: Opt[int]
    inf: Opt[int]
    history: Annotated[list[HistoryPoint], Doc("a bounded sample of the points: see history_sampling")]


class LayerRecord(_LayerRecord, total=False):
    """The latest statistics of one layer's weights and gradients, with their history."""
    history_sampling: Annotated[SeriesSampling, Doc("which points `history` kept (absent in older reports)")]


class _RunSummary(TypedDict):
    id: str
    cell: Annotated[Opt[int], Doc("the cell's execution count")]
    started: Annotated[float, Doc("time.time() at the start")]
    duration_s: Opt[float]
    nan_to_report_s: Annotated[Opt[float], Doc("from the failing step to the complete report")]
    steps: int
    epochs: int
    stopped: bool
    notes: list[str]
    error: Opt[str]
    watched: Annotated[bool, Doc("false when TensorFlow is missing or too old: nothing was checked")]


class RunSummary(_RunSummary, total=False):
    """`report.run`: the run as a whole."""
    step_sampling: Annotated[SeriesSampling, Doc("which step records `steps` kept (absent in older reports)")]


class Report(TypedDict):
    """`Report.to_dict()`: what one watched run found. Every key is always present."""
    schema: Literal[1]
    status: Status
    mode: Mode
    run: RunSummary
    first_nonfinite: Opt[FirstNonfinite]
    diagnosis: Annotated[list[Diagnosis], Doc("ranked, most likely first; empty when the run stayed finite")]
    warnings: list[WarningRecord]
    steps: Annotated[list[StepRecord], Doc("a bounded sample of the step records, every anomaly whole: see "
                                           "run.step_sampling")]
    layers: list[LayerRecord]
    info: Annotated[list[str], Doc("worth knowing, not alarms (never change the status)")]


# comm messages (target "nanwatch"): kernel -> frontend, then frontend -> kernel
class RunInfo(TypedDict):
    """The run as announced by `run_started` (Sink.run_started's payload)."""
    run_id: str
    cell: Opt[int]
    cell_id: Annotated[Opt[str], Doc("the notebook cell's id (JupyterLab sends it), else null")]
    mode: Mode
    started: float


class ActiveRun(TypedDict):
    """The run in progress, in a snapshot."""
    run: RunInfo
    steps: Annotated[list[StepRecord], Doc("", maxItems=MAX_STEPS)]
    layers: list[LayerRecord]
    first_nonfinite: Opt[FirstNonfinite]
    diagnosis: list[Diagnosis]


class _Message(TypedDict):
    """Every message carries the protocol version."""
    v: Literal[1]


class RunStartedMessage(_Message):
    """A run started."""
    type: Literal["run_started"]
    run: RunInfo


class ProgressMessage(_Message):
    """Steps since the last progress message (throttled, coalesced); layers null when unchanged."""
    type: Literal["progress"]
    run_id: str
    steps: Annotated[list[StepRecord], Doc("", maxItems=MAX_PROGRESS_STEPS)]
    layers: Opt[list[LayerRecord]]


class FirstNonfiniteMessage(_Message):
    """The origin was found (diagnosis empty), and again at the end with the diagnosis."""
    type: Literal["first_nonfinite"]
    run_id: str
    first: FirstNonfinite
    diagnosis: list[Diagnosis]


class RunFinishedMessage(_Message):
    """The complete report (its last MAX_STEPS steps and MAX_HISTORY history points per layer)."""
    type: Literal["run_finished"]
    report: Report


class SnapshotMessage(_Message):
    """Every kept run of this kernel, oldest first, and the run in progress: the answer to hello."""
    type: Literal["snapshot"]
    runs: Annotated[list[Report], Doc("", maxItems=MAX_RUNS)]
    active: Opt[ActiveRun]


class ResetMessage(_Message):
    """`%nanwatch reset`: the sidebars forget this kernel's runs."""
    type: Literal["reset"]


class HelloMessage(_Message):
    """Frontend -> kernel, the only one: the kernel answers with a snapshot."""
    type: Literal["hello"]


KERNEL_MESSAGES = (RunStartedMessage, ProgressMessage, FirstNonfiniteMessage, RunFinishedMessage,
                   SnapshotMessage, ResetMessage)
FRONTEND_MESSAGES = (HelloMessage,)
MESSAGE_TYPES = {get_type_hints(m)["type"].__args__[0]: m for m in KERNEL_MESSAGES + FRONTEND_MESSAGES}
