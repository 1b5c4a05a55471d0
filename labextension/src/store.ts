/**
 * Per-notebook state of the NaN inspector.
 *
 * One `NotebookState` per open notebook document (key chosen by the plugin), fed only by
 * validated protocol messages (see protocol.ts). Applying a message is idempotent, so
 * the same event arriving on two comms (the kernel-opened one and the frontend-opened
 * one) changes nothing the second time. Nothing here touches the DOM or JupyterLab.
 */

import {
  IDiagnosis,
  IFirstNonfinite,
  ILayerRecord,
  IReport,
  IRunInfo,
  IStepRecord,
  KernelMessage,
  MAX_RUNS,
  MAX_STEPS,
  Status
} from './protocol';

/** How the sidebar reaches the notebook's kernel. */
export type ConnectionState =
  | 'no-kernel' // the notebook has no kernel (or it is shutting down)
  | 'connecting' // hello sent, no answer yet (the kernel may be busy)
  | 'connected' // nanwatch answered
  | 'not-loaded' // the kernel refused the comm: nanwatch is not loaded there
  | 'restarting' // kernel restart: runs cleared, reconnect when idle
  | 'files'; // not a notebook: the reports opened from files (reportfile.ts)

export type RunStatus = Status | 'running';

export interface IRunEntry {
  id: string;
  cell: number | null;
  mode: string | null;
  started: number | null;
  /** The final report, when the run finished. */
  report: IReport | null;
  /** Live data while running (from run_started/progress/first_nonfinite). */
  steps: IStepRecord[];
  layers: ILayerRecord[];
  first: IFirstNonfinite | null;
  diagnosis: IDiagnosis[];
}

export interface INotebookState {
  key: string;
  label: string;
  connection: ConnectionState;
  /** Oldest first. */
  runs: IRunEntry[];
  /** The run the user picked; null follows the newest. */
  selected: string | null;
}

export function runStatus(entry: IRunEntry): RunStatus {
  if (entry.report) {
    return entry.report.status;
  }
  return 'running';
}

/** False for a finished run the kernel could not watch (its status says nothing about NaN). */
export function runWatched(entry: IRunEntry): boolean {
  return !(entry.report && entry.report.run.watched === false);
}

/** The first non-finite event of a run, final or live. */
export function runFirst(entry: IRunEntry): IFirstNonfinite | null {
  return entry.report ? entry.report.first_nonfinite : entry.first;
}

export function runDiagnosis(entry: IRunEntry): IDiagnosis[] {
  return entry.report ? entry.report.diagnosis : entry.diagnosis;
}

export function runSteps(entry: IRunEntry): IStepRecord[] {
  return entry.report ? entry.report.steps : entry.steps;
}

export function runLayers(entry: IRunEntry): ILayerRecord[] {
  return entry.report ? entry.report.layers : entry.layers;
}

/** Number of steps run so far (final count when finished). */
export function runStepCount(entry: IRunEntry): number {
  if (entry.report && entry.report.run.steps !== null) {
    return entry.report.run.steps;
  }
  let max = -1;
  for (const s of entry.steps) {
    if (s.step !== null && s.step > max) {
      max = s.step;
    }
  }
  return max >= 0 ? max + 1 : entry.steps.length;
}

function stepKey(s: IStepRecord): string {
  return `${s.phase ?? ''}|${s.epoch ?? ''}|${s.step ?? ''}`;
}

function entryFromReport(report: IReport): IRunEntry {
  return {
    id: report.run.id,
    cell: report.run.cell,
    mode: report.mode,
    started: report.run.started,
    report,
    steps: [],
    layers: [],
    first: null,
    diagnosis: []
  };
}

function entryFromRun(run: IRunInfo): IRunEntry {
  return {
    id: run.run_id,
    cell: run.cell,
    mode: run.mode,
    started: run.started,
    report: null,
    steps: [],
    layers: [],
    first: null,
    diagnosis: []
  };
}

function appendSteps(entry: IRunEntry, steps: IStepRecord[]): boolean {
  if (!steps.length) {
    return false;
  }
  const seen = new Set(entry.steps.map(stepKey));
  let changed = false;
  for (const s of steps) {
    const k = stepKey(s);
    if (!seen.has(k)) {
      seen.add(k);
      entry.steps.push(s);
      changed = true;
    }
  }
  if (entry.steps.length > MAX_STEPS) {
    entry.steps.splice(0, entry.steps.length - MAX_STEPS);
  }
  return changed;
}

export type StoreListener = (key: string) => void;

/** The per-notebook store: a map from notebook key to its state. */
export class InspectorStore {
  private _states = new Map<string, INotebookState>();
  private _listeners = new Set<StoreListener>();

  /** Called with the notebook key after every change. Returns an unsubscribe function. */
  subscribe(listener: StoreListener): () => void {
    this._listeners.add(listener);
    return () => this._listeners.delete(listener);
  }

  get keys(): string[] {
    return [...this._states.keys()];
  }

  has(key: string): boolean {
    return this._states.has(key);
  }

  get(key: string): INotebookState | undefined {
    return this._states.get(key);
  }

  /** Create (or return) the state of a notebook. */
  add(key: string, label: string): INotebookState {
    let state = this._states.get(key);
    if (!state) {
      state = { key, label, connection: 'no-kernel', runs: [], selected: null };
      this._states.set(key, state);
      this._emit(key);
    }
    return state;
  }

  remove(key: string): void {
    if (this._states.delete(key)) {
      this._emit(key);
    }
  }

  setLabel(key: string, label: string): void {
    const state = this._states.get(key);
    if (state && state.label !== label) {
      state.label = label;
      this._emit(key);
    }
  }

  setConnection(key: string, connection: ConnectionState): void {
    const state = this._states.get(key);
    if (state && state.connection !== connection) {
      state.connection = connection;
      this._emit(key);
    }
  }

  /** Forget a notebook's runs (kernel restart, kernel change, reset). */
  clearRuns(key: string): void {
    const state = this._states.get(key);
    if (state && (state.runs.length || state.selected !== null)) {
      state.runs = [];
      state.selected = null;
      this._emit(key);
    }
  }

  /** Pick a run to show (null: follow the newest). */
  select(key: string, runId: string | null): void {
    const state = this._states.get(key);
    if (!state) {
      return;
    }
    const id = runId !== null && state.runs.some(r => r.id === runId) ? runId : null;
    if (state.selected !== id) {
      state.selected = id;
      this._emit(key);
    }
  }

  /** Add a finished run's report (a saved report file), and select it. Not a kernel message: the
   * connection state is left as it is. */
  addReport(key: string, report: IReport): boolean {
    const state = this._states.get(key);
    if (!state) {
      return false;
    }
    this._apply(state, { v: 1, type: 'run_finished', report });
    state.selected = report.run.id;
    this._emit(key);
    return true;
  }

  /** The run the view shows: the selected one, else the newest. */
  current(key: string): IRunEntry | null {
    const state = this._states.get(key);
    if (!state || !state.runs.length) {
      return null;
    }
    if (state.selected !== null) {
      const r = state.runs.find(e => e.id === state.selected);
      if (r) {
        return r;
      }
    }
    return state.runs[state.runs.length - 1];
  }

  /** Apply one validated kernel message to a notebook's state. Returns true if it changed. */
  apply(key: string, msg: KernelMessage): boolean {
    const state = this._states.get(key);
    if (!state) {
      return false;
    }
    const changed = this._apply(state, msg);
    if (state.connection !== 'connected') {
      state.connection = 'connected';
      this._emit(key);
      return true;
    }
    if (changed) {
      this._emit(key);
    }
    return changed;
  }

  private _apply(state: INotebookState, msg: KernelMessage): boolean {
    const runs = state.runs;
    const find = (id: string) => runs.find(r => r.id === id);
    switch (msg.type) {
      case 'snapshot': {
        const next: IRunEntry[] = msg.runs.map(entryFromReport);
        if (msg.active && !next.some(r => r.id === msg.active!.run.run_id)) {
          const live = entryFromRun(msg.active.run);
          appendSteps(live, msg.active.steps);
          live.layers = msg.active.layers;
          live.first = msg.active.first_nonfinite;
          live.diagnosis = msg.active.diagnosis;
          next.push(live);
        }
        // dedupe by id (keep the last), cap
        const byId = new Map<string, IRunEntry>();
        for (const r of next) {
          byId.delete(r.id);
          byId.set(r.id, r);
        }
        state.runs = [...byId.values()].slice(-MAX_RUNS);
        if (state.selected !== null && !state.runs.some(r => r.id === state.selected)) {
          state.selected = null;
        }
        return true;
      }
      case 'run_started': {
        if (find(msg.run.run_id)) {
          return false; // already known (duplicate, or already finished)
        }
        // the kernel has one active run: an older one still "running" here lost its end
        state.runs = runs.filter(r => r.report !== null);
        state.runs.push(entryFromRun(msg.run));
        if (state.runs.length > MAX_RUNS) {
          state.runs.splice(0, state.runs.length - MAX_RUNS);
        }
        state.selected = null; // follow the new run
        return true;
      }
      case 'progress': {
        const entry = find(msg.run_id);
        if (!entry || entry.report) {
          return false; // unknown or finished run: late or duplicate progress
        }
        let changed = appendSteps(entry, msg.steps);
        if (msg.layers !== null) {
          entry.layers = msg.layers;
          changed = true;
        }
        return changed;
      }
      case 'first_nonfinite': {
        const entry = find(msg.run_id);
        if (!entry || entry.report) {
          return false;
        }
        entry.first = msg.first;
        entry.diagnosis = msg.diagnosis;
        return true;
      }
      case 'run_finished': {
        const report = msg.report;
        const i = runs.findIndex(r => r.id === report.run.id);
        const entry = entryFromReport(report);
        if (i >= 0) {
          runs[i] = entry;
        } else {
          runs.push(entry);
          if (runs.length > MAX_RUNS) {
            runs.splice(0, runs.length - MAX_RUNS);
          }
        }
        return true;
      }
      case 'reset': {
        const had = runs.length > 0;
        state.runs = [];
        state.selected = null;
        return had;
      }
      default:
        return false;
    }
  }

  private _emit(key: string): void {
    for (const l of [...this._listeners]) {
      try {
        l(key);
      } catch (e) {
        console.error('nanwatch: store listener failed', e);
      }
    }
  }
}
