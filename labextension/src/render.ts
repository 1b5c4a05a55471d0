/**
 * The NaN inspector's DOM, built from a notebook's state.
 *
 * Plain DOM only: every string that came from the kernel goes in with `textContent`
 * (or an attribute set by `setAttribute` for data-* values we generate), never through
 * innerHTML. No JupyterLab imports, so jest can render it in jsdom.
 */

import { CAUSE_TITLES } from './causes';
import {
  IDiagnosis,
  IFirstNonfinite,
  ILayerRecord,
  ISourceLocation,
  IStepRecord,
  IWarning,
  Num
} from './protocol';
import {
  INotebookState,
  IRunEntry,
  RunStatus,
  runDiagnosis,
  runFirst,
  runLayers,
  runStatus,
  runWatched,
  runStepCount,
  runSteps
} from './store';

export interface IRenderHandlers {
  /** The user picked a run in the list. */
  onSelectRun(runId: string): void;
  /** The user clicked a source location. */
  onJump(source: ISourceLocation): void;
  /** The user asked to copy a fix; resolves true when copied. */
  onCopy(text: string): Promise<boolean> | boolean;
}

export interface IRenderOptions {
  /** Seconds since the epoch, for the elapsed time of a running cell. */
  now?: number;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

/** The cause titles, generated from nanwatch/schema.py into causes.ts (re-exported for callers). */
export { CAUSE_TITLES };

export const STATUS_LABELS: { [s in RunStatus]: string } = {
  running: 'running',
  healthy: 'healthy',
  warning: 'warning',
  nonfinite: 'NaN',
  error: 'error'
};

// ------------------------------------------------------------------------------------
// formatting

export function fmtNum(x: Num | undefined, digits = 4): string {
  if (x === null || x === undefined) {
    return '–';
  }
  if (Number.isNaN(x)) {
    return 'NaN';
  }
  if (x === Infinity) {
    return '+Inf';
  }
  if (x === -Infinity) {
    return '−Inf';
  }
  if (Number.isInteger(x) && Math.abs(x) < 1e6) {
    return String(x);
  }
  const a = Math.abs(x);
  if (a !== 0 && (a >= 1e5 || a < 1e-3)) {
    return x.toExponential(digits > 3 ? 2 : 1);
  }
  return String(Number(x.toPrecision(digits)));
}

export function fmtDuration(seconds: Num): string {
  if (seconds === null || !Number.isFinite(seconds) || seconds < 0) {
    return '–';
  }
  if (seconds < 10) {
    return `${seconds.toFixed(1)} s`;
  }
  if (seconds < 120) {
    return `${Math.round(seconds)} s`;
  }
  const m = Math.floor(seconds / 60);
  const s = Math.round(seconds - m * 60);
  return `${m} min ${s} s`;
}

function isBad(x: Num): boolean {
  return x !== null && !Number.isFinite(x);
}

export function causeTitle(cause: string): string {
  return CAUSE_TITLES[cause] ?? cause.replace(/_/g, ' ');
}

// ------------------------------------------------------------------------------------
// DOM helpers (text only)

function el<K extends keyof HTMLElementTagNameMap>(
  doc: Document,
  tag: K,
  cls?: string,
  text?: string | null
): HTMLElementTagNameMap[K] {
  const node = doc.createElement(tag);
  if (cls) {
    node.className = cls;
  }
  if (text !== undefined && text !== null) {
    node.textContent = text;
  }
  return node;
}

function field(doc: Document, dl: HTMLElement, name: string, value: string | Node, cls?: string): void {
  const dt = el(doc, 'dt', undefined, name);
  const dd = el(doc, 'dd', cls);
  if (typeof value === 'string') {
    dd.textContent = value;
  } else {
    dd.appendChild(value);
  }
  dl.append(dt, dd);
}

function table(doc: Document, cls: string, headers: string[], rows: (string | Node)[][]): HTMLTableElement {
  const t = el(doc, 'table', cls);
  const thead = el(doc, 'thead');
  const hr = el(doc, 'tr');
  for (const h of headers) {
    hr.appendChild(el(doc, 'th', undefined, h));
  }
  thead.appendChild(hr);
  const tbody = el(doc, 'tbody');
  for (const row of rows) {
    const tr = el(doc, 'tr');
    for (const cell of row) {
      const td = el(doc, 'td');
      if (typeof cell === 'string') {
        td.textContent = cell;
      } else {
        td.appendChild(cell);
      }
      tr.appendChild(td);
    }
    tbody.appendChild(tr);
  }
  t.append(thead, tbody);
  return t;
}

/**
 * A small SVG line of `values`. Non-finite values are drawn as red dots at the top;
 * the line breaks there. Log scale when the finite values span more than 3 decades.
 */
export function sparkline(doc: Document, values: Num[], title: string, width = 90, height = 20): SVGSVGElement {
  const svg = doc.createElementNS(SVG_NS, 'svg') as SVGSVGElement;
  svg.setAttribute('class', 'nanwatch-sparkline');
  svg.setAttribute('width', String(width));
  svg.setAttribute('height', String(height));
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('role', 'img');
  const t = doc.createElementNS(SVG_NS, 'title');
  t.textContent = title;
  svg.appendChild(t);
  const finite = values.filter((v): v is number => v !== null && Number.isFinite(v));
  if (!values.length) {
    return svg;
  }
  const positive = finite.filter(v => v > 0);
  const useLog =
    positive.length === finite.length &&
    positive.length > 1 &&
    Math.max(...positive) / Math.min(...positive) > 1e3;
  const tf = (v: number) => (useLog ? Math.log10(v) : v);
  const ys = finite.map(tf);
  const lo = ys.length ? Math.min(...ys) : 0;
  const hi = ys.length ? Math.max(...ys) : 1;
  const pad = 2;
  const n = values.length;
  const xAt = (i: number) => (n === 1 ? width / 2 : pad + (i * (width - 2 * pad)) / (n - 1));
  const yAt = (v: number) =>
    hi === lo ? height / 2 : height - pad - ((tf(v) - lo) * (height - 2 * pad)) / (hi - lo);
  let segment: string[] = [];
  const flush = () => {
    if (segment.length > 1) {
      const line = doc.createElementNS(SVG_NS, 'polyline');
      line.setAttribute('points', segment.join(' '));
      line.setAttribute('class', 'nanwatch-spark-line');
      svg.appendChild(line);
    } else if (segment.length === 1) {
      const [x, y] = segment[0].split(',');
      const dot = doc.createElementNS(SVG_NS, 'circle');
      dot.setAttribute('cx', x);
      dot.setAttribute('cy', y);
      dot.setAttribute('r', '1.5');
      dot.setAttribute('class', 'nanwatch-spark-dot');
      svg.appendChild(dot);
    }
    segment = [];
  };
  values.forEach((v, i) => {
    if (v === null) {
      flush();
    } else if (!Number.isFinite(v)) {
      flush();
      const bad = doc.createElementNS(SVG_NS, 'circle');
      bad.setAttribute('cx', xAt(i).toFixed(1));
      bad.setAttribute('cy', String(pad + 1));
      bad.setAttribute('r', '2.2');
      bad.setAttribute('class', 'nanwatch-spark-bad');
      svg.appendChild(bad);
    } else {
      segment.push(`${xAt(i).toFixed(1)},${yAt(v).toFixed(1)}`);
    }
  });
  flush();
  return svg;
}

// ------------------------------------------------------------------------------------
// sections

/** The badge text: "NaN", or "Inf" when the first non-finite tensor held only infinities. */
export function statusLabel(entry: IRunEntry): string {
  if (!runWatched(entry)) {
    return 'not watched';
  }
  const status = runStatus(entry);
  const first = runFirst(entry);
  if (first && (status === 'nonfinite' || status === 'running')) {
    const c = first.counts;
    const inf = (c.pos_inf ?? 0) + (c.neg_inf ?? 0);
    return !(c.nan ?? 0) && inf > 0 ? 'Inf' : 'NaN';
  }
  return STATUS_LABELS[status];
}

function statusBadge(doc: Document, entry: IRunEntry): HTMLElement {
  const kind = !runWatched(entry) ? 'unwatched' : first(entry) ? 'nonfinite' : runStatus(entry);
  return el(doc, 'span', `nanwatch-badge nanwatch-badge-${kind}`, statusLabel(entry));
}

function first(entry: IRunEntry): boolean {
  return runFirst(entry) !== null && runStatus(entry) !== 'healthy';
}

function stepsText(n: number): string {
  return `${n} step${n === 1 ? '' : 's'}`;
}

function runDuration(entry: IRunEntry, now: number | undefined): string {
  if (entry.report) {
    return fmtDuration(entry.report.run.duration_s);
  }
  if (entry.started !== null && now !== undefined) {
    return fmtDuration(Math.max(0, now - entry.started));
  }
  return '–';
}

function cellLabel(entry: IRunEntry): string {
  if (entry.cell !== null) {
    return `Cell [${entry.cell}]`;
  }
  // a script's run (python -m nanwatch run SCRIPT.py): named after the file of its first non-finite op
  const file = runFirst(entry)?.source?.file;
  return file ? file.slice(file.lastIndexOf('/') + 1) : 'Cell [ ]';
}

function renderRunList(
  doc: Document,
  state: INotebookState,
  current: IRunEntry,
  handlers: IRenderHandlers,
  opts: IRenderOptions
): HTMLElement {
  const section = el(doc, 'section', 'nanwatch-section nanwatch-runs-section');
  section.appendChild(el(doc, 'h3', 'nanwatch-h', `Watched runs (${state.runs.length})`));
  const ul = el(doc, 'ul', 'nanwatch-runs');
  for (const entry of [...state.runs].reverse()) {
    const status = runStatus(entry);
    const li = el(doc, 'li', 'nanwatch-run');
    li.dataset.status = status;
    li.dataset.watched = String(runWatched(entry));
    li.dataset.runId = entry.id;
    if (entry === current) {
      li.classList.add('nanwatch-mod-selected');
    }
    const btn = el(doc, 'button', 'nanwatch-run-button');
    btn.type = 'button';
    btn.title = 'Show this run';
    const meta = el(doc, 'span', 'nanwatch-run-meta');
    meta.append(
      el(doc, 'span', 'nanwatch-run-duration', runDuration(entry, opts.now)),
      el(doc, 'span', 'nanwatch-run-steps', stepsText(runStepCount(entry)))
    );
    btn.append(statusBadge(doc, entry), el(doc, 'span', 'nanwatch-run-cell', cellLabel(entry)), meta);
    btn.addEventListener('click', () => handlers.onSelectRun(entry.id));
    li.appendChild(btn);
    ul.appendChild(li);
  }
  section.appendChild(ul);
  return section;
}

function sourceLabel(src: ISourceLocation): string {
  const where = src.cell !== null ? `Cell [${src.cell}]` : src.file ?? 'cell';
  return src.line !== null ? `${where}, line ${src.line}` : where;
}

/** "gradient of Sqrt (line 5)", "made from a mask", both joined; null when neither is known. */
export function originText(first: IFirstNonfinite): string | null {
  const parts: string[] = [];
  const g = first.gradient_of;
  if (g) {
    const line = g.source && g.source.line !== null ? ` (line ${g.source.line})` : '';
    parts.push(`gradient of ${g.op_type ?? 'a forward op'}${line}` +
      (g.forward_absorbed ? ', whose non-finite forward value a where absorbed' : ''));
  }
  if (first.made_from === 'mask') {
    parts.push('made from a mask (an intended -inf)');
  }
  return parts.length ? parts.join('; ') : null;
}

function renderFirst(doc: Document, first: IFirstNonfinite, handlers: IRenderHandlers): HTMLElement {
  const card = el(doc, 'section', 'nanwatch-section nanwatch-first');
  const title = el(doc, 'h3', 'nanwatch-h nanwatch-first-title');
  title.append(
    el(doc, 'span', undefined, 'First non-finite: '),
    el(doc, 'code', 'nanwatch-first-op', opLabel(first))
  );
  card.appendChild(title);

  const dl = el(doc, 'dl', 'nanwatch-fields');
  const opName =
    first.op_name !== null
      ? `${first.op_name}${first.output_slot !== null ? `:${first.output_slot}` : ''}`
      : '–';
  if (first.op_name !== null) {
    field(doc, dl, 'Op', opName, 'nanwatch-op-name');
  }
  field(doc, dl, 'Layer', first.layer ?? '–', 'nanwatch-first-layer');
  field(doc, dl, 'Phase', first.phase ?? '–', 'nanwatch-first-phase');
  const when =
    first.step !== null
      ? `step ${first.step}${first.epoch !== null ? ` (epoch ${first.epoch})` : ''}`
      : '–';
  field(doc, dl, 'When', when);
  const c = first.counts;
  const counts = el(doc, 'span', 'nanwatch-counts');
  counts.append(
    el(doc, 'span', 'nanwatch-count-nan', `NaN ${fmtNum(c.nan)}`),
    doc.createTextNode(' · '),
    el(doc, 'span', 'nanwatch-count-inf', `+Inf ${fmtNum(c.pos_inf)}`),
    doc.createTextNode(' · '),
    el(doc, 'span', 'nanwatch-count-inf', `−Inf ${fmtNum(c.neg_inf)}`),
    doc.createTextNode(c.size !== null ? ` of ${fmtNum(c.size)}` : '')
  );
  field(doc, dl, 'Counts', counts);
  if (first.device || first.replica !== null || first.task !== null) {
    const dev = [
      first.device,
      first.replica !== null ? `replica ${first.replica}` : null,
      first.task !== null ? `worker task ${first.task}` : null
    ]
      .filter(Boolean)
      .join(', ');
    field(doc, dl, 'Device', dev);
  }
  const origin = originText(first);
  if (origin) {
    field(doc, dl, 'Made by', origin, 'nanwatch-first-origin');
  }
  if (first.context) {
    const ctx =
      first.context + (first.replayed ? ' (replayed step' + (first.reproduced === false ? ', not reproduced)' : ')') : '');
    field(doc, dl, 'Traced as', ctx);
  }
  if (first.source) {
    const src = first.source;
    const box = el(doc, 'div', 'nanwatch-source');
    const link = el(doc, 'button', 'nanwatch-source-link', sourceLabel(src));
    link.type = 'button';
    link.title = 'Go to this line in the notebook';
    link.addEventListener('click', () => handlers.onJump(src));
    box.appendChild(link);
    if (src.code) {
      box.appendChild(el(doc, 'code', 'nanwatch-source-code', src.code));
    }
    field(doc, dl, 'Source', box);
  }
  card.appendChild(dl);

  if (first.inputs.length) {
    card.appendChild(el(doc, 'h4', 'nanwatch-h4', 'Inputs of the op'));
    const hasOp = first.inputs.some(i => i.op_type !== null);
    card.appendChild(
      table(
        doc,
        'nanwatch-table nanwatch-inputs',
        ['input', ...(hasOp ? ['op'] : []), 'health', 'range', 'zeros'],
        first.inputs.map(inp => {
          const bad = (inp.nan ?? 0) + (inp.pos_inf ?? 0) + (inp.neg_inf ?? 0);
          const health =
            inp.finite === true
              ? 'finite'
              : inp.finite === false
                ? bad > 0
                  ? `non-finite (${bad})`
                  : 'non-finite'
                : '–';
          const h = el(doc, 'span', inp.finite === false ? 'nanwatch-bad' : inp.finite ? 'nanwatch-good' : '', health);
          const range = inp.min === null && inp.max === null ? '–' : `${fmtNum(inp.min, 3)} … ${fmtNum(inp.max, 3)}`;
          return [inp.name ?? '–', ...(hasOp ? [inp.op_type ?? '–'] : []), h, range, fmtNum(inp.zeros)];
        })
      )
    );
  }

  if (first.data) {
    const d = first.data;
    card.appendChild(el(doc, 'h4', 'nanwatch-h4', 'Data to blame'));
    const ddl = el(doc, 'dl', 'nanwatch-fields nanwatch-data');
    if (d.source) {
      field(doc, ddl, 'Source', d.source);
    }
    if (d.batch !== null) {
      field(doc, ddl, 'Batch', String(d.batch));
    }
    field(doc, ddl, 'Rows', d.rows.length ? d.rows.join(', ') : '–', 'nanwatch-data-rows');
    field(doc, ddl, 'Columns', d.columns.length ? d.columns.join(', ') : '–', 'nanwatch-data-columns');
    if (d.values.length) {
      field(doc, ddl, 'Values', d.values.join(', '));
    }
    card.appendChild(ddl);
  }
  return card;
}

function copyButton(doc: Document, text: string, handlers: IRenderHandlers): HTMLButtonElement {
  const btn = el(doc, 'button', 'nanwatch-copy', 'Copy fix');
  btn.type = 'button';
  btn.title = 'Copy the fix to the clipboard';
  btn.addEventListener('click', () => {
    Promise.resolve(handlers.onCopy(text)).then(
      ok => {
        btn.textContent = ok ? 'Copied' : 'Copy failed';
        setTimeout(() => (btn.textContent = 'Copy fix'), 1500);
      },
      () => (btn.textContent = 'Copy failed')
    );
  });
  return btn;
}

function renderFix(doc: Document, text: string, handlers: IRenderHandlers): HTMLElement {
  const fix = el(doc, 'div', 'nanwatch-fix');
  const bar = el(doc, 'div', 'nanwatch-fix-bar');
  bar.append(el(doc, 'span', 'nanwatch-fix-label', 'Fix'), copyButton(doc, text, handlers));
  fix.append(bar, el(doc, 'pre', 'nanwatch-fix-code', text));
  return fix;
}

function renderDiagnosis(doc: Document, diagnosis: IDiagnosis[], handlers: IRenderHandlers): HTMLElement {
  const section = el(doc, 'section', 'nanwatch-section nanwatch-diagnosis');
  section.appendChild(el(doc, 'h3', 'nanwatch-h', 'Diagnosis'));
  const ol = el(doc, 'ol', 'nanwatch-causes');
  for (const d of diagnosis) {
    const li = el(doc, 'li', 'nanwatch-cause');
    li.dataset.cause = d.cause;
    const head = el(doc, 'div', 'nanwatch-cause-head');
    head.appendChild(el(doc, 'span', 'nanwatch-cause-title', causeTitle(d.cause)));
    if (d.confidence !== null && Number.isFinite(d.confidence)) {
      head.appendChild(el(doc, 'span', 'nanwatch-confidence', `${Math.round(d.confidence * 100)}%`));
    }
    head.appendChild(el(doc, 'code', 'nanwatch-cause-id', d.cause));
    li.appendChild(head);
    if (d.evidence) {
      li.appendChild(el(doc, 'p', 'nanwatch-evidence', d.evidence));
    }
    if (d.fix) {
      li.appendChild(renderFix(doc, d.fix, handlers));
    }
    if (d.verified) {
      const label = VERDICTS[d.verified];
      const how = (d.verified_how ?? '').replace(/^not tried[:\s]*/, '');
      const verdict = el(doc, 'p', `nanwatch-verified nanwatch-verified-${d.verified.replace(' ', '-')}`);
      verdict.textContent = how ? `${label}: ${how}` : label;
      li.appendChild(verdict);
    }
    ol.appendChild(li);
  }
  section.appendChild(ol);
  return section;
}

/** diagnosis[].verified as the sidebar says it (the text and HTML views say the same). */
const VERDICTS: Record<string, string> = {
  true: 'verified on the failing step',
  false: 'did not make the step finite',
  'not tried': 'not tried'
};

function renderWarnings(doc: Document, warnings: IWarning[], handlers: IRenderHandlers): HTMLElement {
  const section = el(doc, 'section', 'nanwatch-section nanwatch-warnings');
  section.appendChild(el(doc, 'h3', 'nanwatch-h', 'Warnings'));
  const ul = el(doc, 'ul', 'nanwatch-causes');
  for (const w of warnings) {
    const li = el(doc, 'li', 'nanwatch-cause nanwatch-warning');
    li.dataset.cause = w.cause;
    const head = el(doc, 'div', 'nanwatch-cause-head');
    head.append(el(doc, 'span', 'nanwatch-cause-title', causeTitle(w.cause)), el(doc, 'code', 'nanwatch-cause-id', w.cause));
    li.appendChild(head);
    if (w.evidence) {
      li.appendChild(el(doc, 'p', 'nanwatch-evidence', w.evidence));
    }
    if (w.fix) {
      li.appendChild(renderFix(doc, w.fix, handlers));
    }
    ul.appendChild(li);
  }
  section.appendChild(ul);
  return section;
}

function renderLoss(doc: Document, steps: IStepRecord[], running: boolean): HTMLElement | null {
  const train = steps.filter(s => s.loss !== null);
  if (!train.length) {
    return null;
  }
  const section = el(doc, 'section', 'nanwatch-section nanwatch-loss');
  const row = el(doc, 'div', 'nanwatch-loss-row');
  const last = train[train.length - 1];
  row.append(
    el(doc, 'span', 'nanwatch-loss-label', running ? 'Loss (live)' : 'Loss'),
    el(
      doc,
      'span',
      isBad(last.loss) ? 'nanwatch-loss-last nanwatch-bad' : 'nanwatch-loss-last',
      `${fmtNum(last.loss)} at step ${last.step ?? '?'}`
    )
  );
  const spark = sparkline(doc, train.map(s => s.loss), 'loss per step', 240, 28);
  spark.setAttribute('preserveAspectRatio', 'none');
  spark.setAttribute('width', '100%');
  spark.classList.add('nanwatch-loss-spark');
  section.append(row, spark);
  return section;
}

function renderLayers(doc: Document, layers: ILayerRecord[], culprit: string | null): HTMLElement {
  const section = el(doc, 'section', 'nanwatch-section nanwatch-layers');
  section.appendChild(el(doc, 'h3', 'nanwatch-h', 'Layer health'));
  const hasAct = layers.some(l => l.activation_norm !== null);
  const rows = layers.map(l => {
    const history = l.history;
    const series: Num[] = history.length ? history.map(h => (h.grad_norm !== null ? h.grad_norm : h.weight_norm)) : [];
    const bad = (l.nan ?? 0) + (l.inf ?? 0);
    const name = el(doc, 'span', bad > 0 || l.layer === culprit ? 'nanwatch-layer-name nanwatch-bad' : 'nanwatch-layer-name', l.layer);
    const nonfinite = el(doc, 'span', bad > 0 ? 'nanwatch-bad' : '', bad > 0 ? `${fmtNum(l.nan)} / ${fmtNum(l.inf)}` : '0');
    const row: (string | Node)[] = [name, fmtNum(l.weight_norm, 3), fmtNum(l.grad_norm, 3)];
    if (hasAct) {
      row.push(fmtNum(l.activation_norm, 3));
    }
    row.push(nonfinite, series.length ? sparkline(doc, series, `${l.layer}: gradient norm per recorded step`, 48, 16) : '–');
    return row;
  });
  const headers = ['layer', '‖w‖', '‖grad‖', ...(hasAct ? ['‖act‖'] : []), 'NaN/Inf', 'trend'];
  const t = table(doc, 'nanwatch-table nanwatch-layer-table', headers, rows);
  layers.forEach((l, i) => {
    const tr = t.tBodies[0].rows[i];
    tr.dataset.layer = l.layer;
    if ((l.nan ?? 0) + (l.inf ?? 0) > 0 || l.layer === culprit) {
      tr.classList.add('nanwatch-row-bad');
    }
  });
  section.appendChild(t);
  return section;
}

function renderRun(doc: Document, entry: IRunEntry, handlers: IRenderHandlers, opts: IRenderOptions): HTMLElement {
  const box = el(doc, 'div', 'nanwatch-detail');
  const status = runStatus(entry);
  box.dataset.runId = entry.id;
  box.dataset.status = status;
  const watched = runWatched(entry);
  box.dataset.watched = String(watched);
  const facts = [cellLabel(entry)];
  if (!watched) {
    facts.push('not watched');
  } else if (entry.mode) {
    facts.push(`${entry.mode} mode`);
  }
  if (entry.report && entry.report.run.epochs) {
    facts.push(`${entry.report.run.epochs} epoch${entry.report.run.epochs === 1 ? '' : 's'}`);
  }
  if (entry.report && entry.report.run.stopped) {
    facts.push('stopped at the first NaN/Inf');
  }
  box.appendChild(el(doc, 'div', 'nanwatch-detail-meta', facts.join(' · ')));

  const report = entry.report;
  if (report && report.run.error) {
    box.appendChild(el(doc, 'p', 'nanwatch-error', report.run.error));
  }
  const loss = renderLoss(doc, runSteps(entry), status === 'running');
  if (loss) {
    box.appendChild(loss);
  }
  const first = runFirst(entry);
  if (first) {
    box.appendChild(renderFirst(doc, first, handlers));
  } else if (!watched) {
    box.appendChild(el(doc, 'p', 'nanwatch-note', 'Not watched: the cell ran, but nothing in it was checked (see the note below).'));
  } else if (status === 'running') {
    box.appendChild(el(doc, 'p', 'nanwatch-note', 'Watching: no NaN or Inf so far.'));
  } else if (status === 'healthy') {
    box.appendChild(el(doc, 'p', 'nanwatch-note', 'No NaN or Inf in this run.'));
  }
  const diagnosis = runDiagnosis(entry);
  if (diagnosis.length) {
    box.appendChild(renderDiagnosis(doc, diagnosis, handlers));
  }
  if (report && report.warnings.length) {
    box.appendChild(renderWarnings(doc, report.warnings, handlers));
  }
  const layers = runLayers(entry);
  if (layers.length) {
    box.appendChild(renderLayers(doc, layers, first ? first.layer : null));
  }
  const notes = report ? [...report.run.notes, ...report.info] : [];
  if (notes.length) {
    const ul = el(doc, 'ul', 'nanwatch-notes');
    for (const n of notes) {
      ul.appendChild(el(doc, 'li', undefined, n));
    }
    box.appendChild(ul);
  }
  return box;
}

function hint(doc: Document, cls: string, parts: (string | { code: string })[]): HTMLElement {
  const p = el(doc, 'div', `nanwatch-hint ${cls}`);
  for (const part of parts) {
    if (typeof part === 'string') {
      p.appendChild(doc.createTextNode(part));
    } else {
      p.appendChild(el(doc, 'code', undefined, part.code));
    }
  }
  return p;
}

/**
 * Build the panel body for `state` (undefined: no notebook in focus).
 * `current` is the run to detail (usually store.current(key)).
 */
export function renderState(
  doc: Document,
  state: INotebookState | undefined,
  current: IRunEntry | null,
  handlers: IRenderHandlers,
  opts: IRenderOptions = {}
): HTMLElement {
  const root = el(doc, 'div', 'nanwatch-body');
  if (!state) {
    root.dataset.state = 'no-notebook';
    root.appendChild(hint(doc, 'nanwatch-hint-no-notebook', ['Open a notebook to inspect its NaN/Inf runs.']));
    return root;
  }
  root.dataset.state = state.connection;
  root.dataset.notebook = state.label;
  root.appendChild(el(doc, 'div', 'nanwatch-notebook', state.label));

  switch (state.connection) {
    case 'no-kernel':
      root.appendChild(hint(doc, 'nanwatch-hint-no-kernel', ['No kernel: start one to use nanwatch.']));
      break;
    case 'restarting':
      root.appendChild(hint(doc, 'nanwatch-hint-restarting', ['Kernel restarting: runs cleared.']));
      break;
    case 'files':
      root.appendChild(hint(doc, 'nanwatch-hint-files', ['Reports opened from JSON files (no kernel).']));
      break;
    case 'connecting':
      if (!state.runs.length) {
        root.appendChild(hint(doc, 'nanwatch-hint-connecting', ['Waiting for the kernel…']));
      }
      break;
    case 'not-loaded':
      root.appendChild(
        hint(doc, 'nanwatch-hint-load', [
          'nanwatch is not loaded in this kernel. Run ',
          { code: '%load_ext nanwatch' },
          ' in a cell, then put ',
          { code: '%%nanwatch' },
          ' on the first line of the cell to watch.'
        ])
      );
      break;
    case 'connected':
      if (!state.runs.length) {
        root.appendChild(
          hint(doc, 'nanwatch-hint-empty', [
            'No watched runs yet. Put ',
            { code: '%%nanwatch' },
            ' on the first line of a training cell and run it.'
          ])
        );
      }
      break;
  }
  if (state.runs.length && current) {
    root.appendChild(renderRunList(doc, state, current, handlers, opts));
    root.appendChild(renderRun(doc, current, handlers, opts));
  }
  return root;
}

/** The op's type; for a value that came in with the data (no op made it), the data's source. */
export function opLabel(first: IFirstNonfinite): string {
  if (first.op_type) {
    return first.op_type;
  }
  if (first.data && first.data.source) {
    return `no op: the data (${first.data.source})`;
  }
  return 'unknown op';
}
