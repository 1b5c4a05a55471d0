/**
 * The sidebar protocol (v=1): types, and validation of what the kernel sends.
 *
 * The messages (comm target "nanwatch") and the report are schema 1, written once in
 * nanwatch/schema.py and published as docs/schema/comm.v1.schema.json and
 * report.v1.schema.json (docs/schema.md describes them). The types below mirror those
 * files; labextension/test/schema.spec.ts fails when they drift apart (a cause id without
 * a title, a schema field this parser drops, a limit that differs).
 *
 * `parseMessage` is the only door for kernel data: it checks the envelope strictly
 * (version, type, required fields) and rebuilds every nested value into the typed shape
 * below (unknown keys dropped, wrong types -> null, lists and strings bounded). A message
 * that fails the envelope check is ignored (null). Strings stay strings: the views put
 * them in the DOM with textContent only.
 */

export const PROTOCOL_VERSION = 1;
export const COMM_TARGET = 'nanwatch';

/** A number from the kernel: NaN/Infinity arrive as the strings "nan", "inf", "-inf". */
export type Num = number | null;

export type Status = 'healthy' | 'warning' | 'nonfinite' | 'error';
export const STATUSES: readonly Status[] = ['healthy', 'warning', 'nonfinite', 'error'];

/** The run announced by run_started: mode ("exact" | "fast") is known by then. */
export interface IRunInfo {
  run_id: string;
  cell: number | null;
  cell_id: string | null;
  mode: string | null;
  started: Num;
}

export interface IStepRecord {
  step: number | null;
  epoch: number | null;
  phase: string | null;
  loss: Num;
  metrics: { [name: string]: Num };
  grad_norm: Num;
}

export interface IHistoryEntry {
  step: number | null;
  weight_norm: Num;
  grad_norm: Num;
  activation_norm: Num;
}

/** How a series (steps, a layer's history) was cut to a bounded sample (schema 1's SeriesSampling). */
export interface ISeriesSampling {
  recorded: number | null;
  kept: number | null;
  head: number | null;
  tail: number | null;
  stride: number | null;
  notable: number | null;
  notable_dropped: number | null;
}

export interface ILayerRecord {
  layer: string;
  weight_norm: Num;
  grad_norm: Num;
  activation_norm: Num;
  min: Num;
  max: Num;
  mean: Num;
  std: Num;
  nan: number | null;
  inf: number | null;
  history: IHistoryEntry[];
  /** null in reports older than bounded series, or when the kernel sent none */
  history_sampling: ISeriesSampling | null;
}

export interface ICounts {
  nan: number | null;
  pos_inf: number | null;
  neg_inf: number | null;
  size: number | null;
  /** from the check's message when the counts are unknown: "NaN", "Inf", ... */
  kind: string | null;
}

export interface IInputHealth {
  name: string | null;
  op_type: string | null;
  finite: boolean | null;
  min: Num;
  max: Num;
  zeros: number | null;
  nan: number | null;
  pos_inf: number | null;
  neg_inf: number | null;
  size: number | null;
  mean: Num;
  negatives: number | null;
  dtype: string | null;
  shape: number[] | null;
}

export interface IDataRows {
  source: string | null;
  batch: number | null;
  rows: number[];
  columns: number[];
  values: string[];
  /** the same rows in the user's own array */
  array_rows: number[];
  /** for a non-finite weight: its layer and variable */
  layer: string | null;
  variable: string | null;
}

export interface IConsumer {
  op_type: string | null;
  layer: string | null;
  input: number | null;
}

export interface IHistogram {
  bins: Num[];
  counts: number[];
  nonfinite: number | null;
  input: string | null;
}

export interface ISourceLocation {
  cell: number | null;
  cell_id: string | null;
  line: number | null;
  code: string | null;
  file: string | null;
  function: string | null;
}

/** For a NaN/Inf born in the backward pass: the forward op whose gradient made it. */
export interface IGradientOrigin {
  op_type: string | null;
  source: ISourceLocation | null;
  /** the forward value was itself non-finite and absorbed by a where: the where trap */
  forward_absorbed: boolean | null;
}

export interface IFirstNonfinite {
  op_type: string | null;
  op_name: string | null;
  output_slot: number | null;
  phase: string | null;
  layer: string | null;
  /** outer layers first, e.g. "sequential/dense" */
  layer_path: string | null;
  step: number | null;
  epoch: number | null;
  counts: ICounts;
  inputs: IInputHealth[];
  data: IDataRows | null;
  consumer: IConsumer | null;
  source: ISourceLocation | null;
  dtype: string | null;
  device: string | null;
  replica: number | null;
  context: string | null;
  replayed: boolean | null;
  reproduced: boolean | null;
  histogram: IHistogram | null;
  /** null unless the value was born in a gradient */
  gradient_of: IGradientOrigin | null;
  /** "mask": the op made NaN out of an intended infinity (a fully -inf-masked row) */
  made_from: string | null;
  /** under a multi-worker strategy: the worker (task index) that made the value */
  task: number | null;
}

export type Verified = 'true' | 'false' | 'not tried';

export interface IDiagnosis {
  cause: string;
  confidence: Num;
  evidence: string | null;
  fix: string | null;
  /** the fix applied to the failing step: null in older reports */
  verified: Verified | null;
  /** what was run to verify it, or why it was not tried */
  verified_how: string | null;
}

export interface IWarning {
  cause: string;
  evidence: string | null;
  fix: string | null;
}

export interface IReport {
  schema: 1;
  status: Status;
  mode: string | null;
  run: {
    id: string;
    cell: number | null;
    started: Num;
    duration_s: Num;
    nan_to_report_s: Num;
    steps: number | null;
    epochs: number | null;
    stopped: boolean | null;
    notes: string[];
    error: string | null;
    /** false when the kernel could not watch (TensorFlow missing or too old): nothing was checked */
    watched: boolean | null;
    /** which step records `steps` kept in a long run (null in older reports) */
    step_sampling: ISeriesSampling | null;
  };
  first_nonfinite: IFirstNonfinite | null;
  diagnosis: IDiagnosis[];
  warnings: IWarning[];
  steps: IStepRecord[];
  layers: ILayerRecord[];
  info: string[];
}

export interface IActiveRun {
  run: IRunInfo;
  steps: IStepRecord[];
  layers: ILayerRecord[];
  first_nonfinite: IFirstNonfinite | null;
  diagnosis: IDiagnosis[];
}

export type KernelMessage =
  | { v: 1; type: 'run_started'; run: IRunInfo }
  | {
      v: 1;
      type: 'progress';
      run_id: string;
      steps: IStepRecord[];
      layers: ILayerRecord[] | null;
    }
  | {
      v: 1;
      type: 'first_nonfinite';
      run_id: string;
      first: IFirstNonfinite;
      diagnosis: IDiagnosis[];
    }
  | { v: 1; type: 'run_finished'; report: IReport }
  | { v: 1; type: 'snapshot'; runs: IReport[]; active: IActiveRun | null }
  | { v: 1; type: 'reset' };

export const HELLO = { v: PROTOCOL_VERSION, type: 'hello' } as const;

// ------------------------------------------------------------------------------------
// limits

// Shared with the kernel: the values of x-nanwatch-limits in docs/schema/*.schema.json.
export const MAX_RUNS = 50;
export const MAX_STEPS = 500;
export const MAX_HISTORY = 200;
// This parser's own bounds (kernel data is untrusted input here).
const MAX_STRING = 4000;
const MAX_LIST = 1000;
const MAX_LAYERS = 500;
const MAX_ROWS = 200;

// ------------------------------------------------------------------------------------
// primitive readers

type Obj = { [key: string]: unknown };

function isObj(x: unknown): x is Obj {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** A string, truncated to a sane length; anything else -> null. */
export function str(x: unknown, max = MAX_STRING): string | null {
  if (typeof x !== 'string') {
    return null;
  }
  return x.length > max ? x.slice(0, max) + '…' : x;
}

/** A number; "nan"/"inf"/"-inf" strings become NaN/±Infinity; anything else -> null. */
export function num(x: unknown): Num {
  if (typeof x === 'number') {
    return x;
  }
  if (typeof x === 'string') {
    const s = x.trim().toLowerCase();
    if (s === 'nan') {
      return NaN;
    }
    if (s === 'inf' || s === '+inf' || s === 'infinity') {
      return Infinity;
    }
    if (s === '-inf' || s === '-infinity') {
      return -Infinity;
    }
  }
  return null;
}

/** A finite integer (counts, indices); anything else -> null. */
export function int(x: unknown): number | null {
  return typeof x === 'number' && Number.isInteger(x) ? x : null;
}

function bool(x: unknown): boolean | null {
  return typeof x === 'boolean' ? x : null;
}

function list<T>(x: unknown, item: (v: unknown) => T | null, max = MAX_LIST): T[] {
  if (!Array.isArray(x)) {
    return [];
  }
  const src = x.length > max ? x.slice(x.length - max) : x;
  const out: T[] = [];
  for (const v of src) {
    const parsed = item(v);
    if (parsed !== null) {
      out.push(parsed);
    }
  }
  return out;
}

function valueText(x: unknown): string | null {
  if (typeof x === 'string') {
    return str(x, 200);
  }
  if (typeof x === 'number' || typeof x === 'boolean') {
    return String(x);
  }
  if (x === null) {
    return 'null';
  }
  return null;
}

// ------------------------------------------------------------------------------------
// structure readers (null when the value cannot be that structure at all)

export function readRunInfo(x: unknown): IRunInfo | null {
  if (!isObj(x)) {
    return null;
  }
  const id = str(x.run_id, 200);
  if (!id) {
    return null;
  }
  return {
    run_id: id,
    cell: int(x.cell),
    cell_id: str(x.cell_id, 200),
    mode: str(x.mode, 50),
    started: num(x.started)
  };
}

export function readStep(x: unknown): IStepRecord | null {
  if (!isObj(x)) {
    return null;
  }
  const metrics: { [name: string]: Num } = {};
  if (isObj(x.metrics)) {
    let n = 0;
    for (const [k, v] of Object.entries(x.metrics)) {
      if (n++ >= 50) {
        break;
      }
      metrics[k.slice(0, 100)] = num(v);
    }
  }
  return {
    step: int(x.step),
    epoch: int(x.epoch),
    phase: str(x.phase, 50),
    loss: num(x.loss),
    metrics,
    grad_norm: num(x.grad_norm)
  };
}

function readHistory(x: unknown): IHistoryEntry | null {
  if (!isObj(x)) {
    return null;
  }
  return {
    step: int(x.step),
    weight_norm: num(x.weight_norm),
    grad_norm: num(x.grad_norm),
    activation_norm: num(x.activation_norm)
  };
}

export function readSampling(x: unknown): ISeriesSampling | null {
  if (!isObj(x)) {
    return null;
  }
  return {
    recorded: int(x.recorded),
    kept: int(x.kept),
    head: int(x.head),
    tail: int(x.tail),
    stride: int(x.stride),
    notable: int(x.notable),
    notable_dropped: int(x.notable_dropped)
  };
}

export function readLayer(x: unknown): ILayerRecord | null {
  if (!isObj(x)) {
    return null;
  }
  const layer = str(x.layer, 300);
  if (layer === null) {
    return null;
  }
  return {
    layer,
    weight_norm: num(x.weight_norm),
    grad_norm: num(x.grad_norm),
    activation_norm: num(x.activation_norm),
    min: num(x.min),
    max: num(x.max),
    mean: num(x.mean),
    std: num(x.std),
    nan: int(x.nan),
    inf: int(x.inf),
    history: list(x.history, readHistory, MAX_HISTORY),
    history_sampling: readSampling(x.history_sampling)
  };
}

function readCounts(x: unknown): ICounts {
  const o = isObj(x) ? x : {};
  return {
    nan: int(o.nan),
    pos_inf: int(o.pos_inf),
    neg_inf: int(o.neg_inf),
    size: int(o.size),
    kind: str(o.kind, 50)
  };
}

function readInput(x: unknown): IInputHealth | null {
  if (!isObj(x)) {
    return null;
  }
  return {
    name: str(x.name, 300),
    op_type: str(x.op_type, 100),
    finite: bool(x.finite),
    min: num(x.min),
    max: num(x.max),
    zeros: int(x.zeros),
    nan: int(x.nan),
    pos_inf: int(x.pos_inf),
    neg_inf: int(x.neg_inf),
    size: int(x.size),
    mean: num(x.mean),
    negatives: int(x.negatives),
    dtype: str(x.dtype, 50),
    shape: Array.isArray(x.shape) ? list(x.shape, int, 32) : null
  };
}

function readData(x: unknown): IDataRows | null {
  if (!isObj(x)) {
    return null;
  }
  return {
    source: str(x.source, 200),
    batch: int(x.batch),
    rows: list(x.rows, int, MAX_ROWS),
    columns: list(x.columns, int, MAX_ROWS),
    values: list(x.values, valueText, MAX_ROWS),
    array_rows: list(x.array_rows, int, MAX_ROWS),
    layer: str(x.layer, 300),
    variable: str(x.variable, 300)
  };
}

function readConsumer(x: unknown): IConsumer | null {
  if (!isObj(x)) {
    return null;
  }
  return { op_type: str(x.op_type, 200), layer: str(x.layer, 300), input: int(x.input) };
}

function readHistogram(x: unknown): IHistogram | null {
  if (!isObj(x)) {
    return null;
  }
  return {
    bins: list(x.bins, num, 200),
    counts: list(x.counts, int, 200),
    nonfinite: int(x.nonfinite),
    input: str(x.input, 100)
  };
}

export function readSource(x: unknown): ISourceLocation | null {
  if (!isObj(x)) {
    return null;
  }
  const line = int(x.line);
  return {
    cell: int(x.cell),
    cell_id: str(x.cell_id, 200),
    line: line !== null && line >= 1 ? line : null,
    code: str(x.code, 1000),
    file: str(x.file, 500),
    function: str(x.function, 200)
  };
}

function readGradientOrigin(x: unknown): IGradientOrigin | null {
  if (!isObj(x)) {
    return null;
  }
  return { op_type: str(x.op_type, 200), source: readSource(x.source), forward_absorbed: bool(x.forward_absorbed) };
}

export function readFirst(x: unknown): IFirstNonfinite | null {
  if (!isObj(x)) {
    return null;
  }
  return {
    op_type: str(x.op_type, 200),
    op_name: str(x.op_name, 500),
    output_slot: int(x.output_slot),
    phase: str(x.phase, 50),
    layer: str(x.layer, 300),
    layer_path: str(x.layer_path, 1000),
    step: int(x.step),
    epoch: int(x.epoch),
    counts: readCounts(x.counts),
    inputs: list(x.inputs, readInput, 50),
    data: readData(x.data),
    consumer: readConsumer(x.consumer),
    source: readSource(x.source),
    dtype: str(x.dtype, 50),
    device: str(x.device, 200),
    replica: int(x.replica),
    context: str(x.context, 50),
    replayed: bool(x.replayed),
    reproduced: bool(x.reproduced),
    histogram: readHistogram(x.histogram),
    gradient_of: readGradientOrigin(x.gradient_of),
    made_from: str(x.made_from, 50),
    task: int(x.task)
  };
}

export function readDiagnosis(x: unknown): IDiagnosis | null {
  if (!isObj(x)) {
    return null;
  }
  const cause = str(x.cause, 100);
  if (!cause) {
    return null;
  }
  return {
    cause,
    confidence: num(x.confidence),
    evidence: str(x.evidence),
    fix: str(x.fix),
    verified:
      x.verified === 'true' || x.verified === 'false' || x.verified === 'not tried' ? x.verified : null,
    verified_how: str(x.verified_how)
  };
}

function readWarning(x: unknown): IWarning | null {
  if (!isObj(x)) {
    return null;
  }
  const cause = str(x.cause, 100);
  if (!cause) {
    return null;
  }
  return { cause, evidence: str(x.evidence), fix: str(x.fix) };
}

/** A schema-1 report, or null when it is not one (wrong schema, no run id, bad status). */
export function readReport(x: unknown): IReport | null {
  if (!isObj(x) || x.schema !== 1 || !isObj(x.run)) {
    return null;
  }
  const status = x.status;
  if (typeof status !== 'string' || !(STATUSES as readonly string[]).includes(status)) {
    return null;
  }
  const id = str(x.run.id, 200);
  if (!id) {
    return null;
  }
  const run = x.run;
  return {
    schema: 1,
    status: status as Status,
    mode: str(x.mode, 50),
    run: {
      id,
      cell: int(run.cell),
      started: num(run.started),
      duration_s: num(run.duration_s),
      nan_to_report_s: num(run.nan_to_report_s),
      steps: int(run.steps),
      epochs: int(run.epochs),
      stopped: bool(run.stopped),
      notes: list(run.notes, v => str(v), 50),
      error: str(run.error),
      watched: bool(run.watched),
      step_sampling: readSampling(run.step_sampling)
    },
    first_nonfinite: readFirst(x.first_nonfinite),
    diagnosis: list(x.diagnosis, readDiagnosis, 50),
    warnings: list(x.warnings, readWarning, 50),
    steps: list(x.steps, readStep, MAX_STEPS),
    layers: list(x.layers, readLayer, MAX_LAYERS),
    info: list(x.info, v => str(v), 50)
  };
}

function readActive(x: unknown): IActiveRun | null {
  if (!isObj(x)) {
    return null;
  }
  const run = readRunInfo(x.run);
  if (!run) {
    return null;
  }
  return {
    run,
    steps: list(x.steps, readStep, MAX_STEPS),
    layers: list(x.layers, readLayer, MAX_LAYERS),
    first_nonfinite: readFirst(x.first_nonfinite),
    diagnosis: list(x.diagnosis, readDiagnosis, 50)
  };
}

/**
 * Validate one kernel -> frontend message. Returns the typed message, or null when the
 * message must be ignored (not an object, wrong version, unknown type, missing or
 * malformed required fields).
 */
export function parseMessage(data: unknown): KernelMessage | null {
  if (!isObj(data) || data.v !== PROTOCOL_VERSION || typeof data.type !== 'string') {
    return null;
  }
  switch (data.type) {
    case 'run_started': {
      const run = readRunInfo(data.run);
      return run ? { v: 1, type: 'run_started', run } : null;
    }
    case 'progress': {
      const runId = str(data.run_id, 200);
      if (!runId || !Array.isArray(data.steps)) {
        return null;
      }
      if (data.layers !== null && data.layers !== undefined && !Array.isArray(data.layers)) {
        return null;
      }
      return {
        v: 1,
        type: 'progress',
        run_id: runId,
        steps: list(data.steps, readStep, MAX_STEPS),
        layers: Array.isArray(data.layers) ? list(data.layers, readLayer, MAX_LAYERS) : null
      };
    }
    case 'first_nonfinite': {
      const runId = str(data.run_id, 200);
      const first = readFirst(data.first);
      if (!runId || !first || !Array.isArray(data.diagnosis)) {
        return null;
      }
      return {
        v: 1,
        type: 'first_nonfinite',
        run_id: runId,
        first,
        diagnosis: list(data.diagnosis, readDiagnosis, 50)
      };
    }
    case 'run_finished': {
      const report = readReport(data.report);
      return report ? { v: 1, type: 'run_finished', report } : null;
    }
    case 'snapshot': {
      if (!Array.isArray(data.runs)) {
        return null;
      }
      if (data.active !== null && !isObj(data.active)) {
        return null;
      }
      const active = data.active === null ? null : readActive(data.active);
      if (data.active !== null && active === null) {
        return null;
      }
      return {
        v: 1,
        type: 'snapshot',
        runs: list(data.runs, readReport, MAX_RUNS),
        active
      };
    }
    case 'reset':
      return { v: 1, type: 'reset' };
    default:
      return null;
  }
}
