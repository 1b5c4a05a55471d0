import { parseMessage, ISourceLocation } from '../src/protocol';
import { fmtNum, opLabel, renderState, sparkline } from '../src/render';
import { InspectorStore } from '../src/store';
import { healthy, progress, report, runStarted } from './fixtures';

function setup() {
  const store = new InspectorStore();
  store.add('nb', 'train.ipynb');
  const calls = { select: [] as string[], jump: [] as ISourceLocation[], copy: [] as string[] };
  const handlers = {
    onSelectRun: (id: string) => calls.select.push(id),
    onJump: (s: ISourceLocation) => calls.jump.push(s),
    onCopy: (t: string) => {
      calls.copy.push(t);
      return true;
    }
  };
  const feed = (data: unknown) => {
    const m = parseMessage(data);
    if (!m) {
      throw new Error('fixture did not parse');
    }
    store.apply('nb', m);
  };
  const render = () => {
    const node = renderState(document, store.get('nb'), store.current('nb'), handlers, { now: 1700000105 });
    document.body.replaceChildren(node);
    return node;
  };
  return { store, calls, feed, render };
}

const text = (root: ParentNode, sel: string) => root.querySelector(sel)?.textContent ?? null;

describe('renderState', () => {
  it('shows the %load_ext hint when the kernel has no nanwatch', () => {
    const { store, render } = setup();
    store.setConnection('nb', 'not-loaded');
    const node = render();
    expect(text(node, '.nanwatch-hint-load')).toContain('%load_ext nanwatch');
    expect(node.querySelector('.nanwatch-runs')).toBeNull();
  });

  it('shows a hint when no notebook is in focus', () => {
    const node = renderState(document, undefined, null, {
      onSelectRun: () => undefined,
      onJump: () => undefined,
      onCopy: () => true
    });
    expect(node.dataset.state).toBe('no-notebook');
  });

  it('renders a NaN run: first-NaN card, diagnosis with fix, layer table with sparklines', () => {
    const { feed, render, calls } = setup();
    feed({ v: 1, type: 'run_finished', report: healthy('ok') });
    feed({ v: 1, type: 'run_finished', report: report('bad') });
    const node = render();
    const runs = node.querySelectorAll('.nanwatch-run');
    expect(runs).toHaveLength(2);
    expect((runs[0] as HTMLElement).dataset.status).toBe('nonfinite'); // newest first
    expect(runs[0].textContent).toContain('NaN');
    expect(runs[0].textContent).toContain('Cell [4]');
    expect(runs[0].textContent).toContain("2.3 s");
    expect(runs[0].textContent).toContain('13 steps');
    expect(text(node, '.nanwatch-first-op')).toBe('Log');
    expect(text(node, '.nanwatch-first-layer')).toBe('scorer');
    expect(text(node, '.nanwatch-first-phase')).toBe('forward');
    expect(text(node, '.nanwatch-counts')).toBe('NaN 5 · +Inf 0 · −Inf 2 of 100');
    expect(text(node, '.nanwatch-inputs tbody')).toContain('finite');
    expect(text(node, '.nanwatch-source-link')).toBe('Cell [4], line 5');
    expect(text(node, '.nanwatch-cause-title')).toBe('Log of a non-positive value');
    expect(text(node, '.nanwatch-evidence')).toContain('Log got 7 values');
    expect(text(node, '.nanwatch-fix-code')).toBe('x = tf.math.log(tf.maximum(x, 1e-7))');
    expect(text(node, '.nanwatch-verified-true')).toBe(
      'verified on the failing step: the Log at line 5 rewritten on its recorded input (100 values): forward and gradient finite'
    );
    const rows = node.querySelectorAll('.nanwatch-layer-table tbody tr');
    expect(rows).toHaveLength(2);
    expect((rows[1] as HTMLElement).dataset.layer).toBe('scorer');
    expect(rows[1].classList.contains('nanwatch-row-bad')).toBe(true);
    expect(rows[1].querySelector('.nanwatch-spark-bad')).not.toBeNull(); // the NaN point
    expect(rows[0].querySelector('.nanwatch-spark-line')).not.toBeNull();

    (node.querySelector('.nanwatch-source-link') as HTMLButtonElement).click();
    expect(calls.jump).toHaveLength(1);
    expect(calls.jump[0]).toMatchObject({ cell: 4, cell_id: 'abc-123', line: 5 });
    (node.querySelector('.nanwatch-copy') as HTMLButtonElement).click();
    expect(calls.copy).toEqual(['x = tf.math.log(tf.maximum(x, 1e-7))']);
    (runs[1].querySelector('button') as HTMLButtonElement).click();
    expect(calls.select).toEqual(['ok']);
  });

  it('names the forward op of a NaN born in a gradient, and a NaN made from a mask', () => {
    const { feed, render } = setup();
    const r = report('grad') as any;
    r.first_nonfinite.op_type = 'Mul';
    r.first_nonfinite.phase = 'backward';
    r.first_nonfinite.gradient_of = {
      op_type: 'Sqrt',
      source: { cell: 4, cell_id: 'abc-123', line: 7, code: 'd = tf.norm(x, axis=-1)', file: null, function: null },
      forward_absorbed: false
    };
    feed({ v: 1, type: 'run_finished', report: r });
    expect(text(render(), '.nanwatch-first-origin')).toBe('gradient of Sqrt (line 7)');

    r.run.id = 'trap';
    r.first_nonfinite.gradient_of.forward_absorbed = true;
    feed({ v: 1, type: 'run_finished', report: r });
    expect(text(render(), '.nanwatch-first-origin')).toContain('where absorbed');

    const m = report('mask') as any;
    m.first_nonfinite.op_type = 'Softmax';
    m.first_nonfinite.gradient_of = null;
    m.first_nonfinite.made_from = 'mask';
    feed({ v: 1, type: 'run_finished', report: m });
    expect(text(render(), '.nanwatch-first-origin')).toBe('made from a mask (an intended -inf)');

    feed({ v: 1, type: 'run_finished', report: report('plain') });
    expect(render().querySelector('.nanwatch-first-origin')).toBeNull();
  });

  it('names the worker that made the value under a multi-worker strategy', () => {
    const { feed, render } = setup();
    const r = report('mw') as any;
    r.first_nonfinite.device = '/job:worker/replica:0/task:1/device:CPU:0';
    r.first_nonfinite.replica = 1;
    r.first_nonfinite.task = 1;
    feed({ v: 1, type: 'run_finished', report: r });
    const dds = Array.from(render().querySelectorAll('dt')).filter(dt => dt.textContent === 'Device');
    expect(dds).toHaveLength(1);
    expect(dds[0].nextElementSibling!.textContent).toBe(
      '/job:worker/replica:0/task:1/device:CPU:0, replica 1, worker task 1'
    );
  });

  it('puts kernel strings in as text, never as HTML', () => {
    const { feed, render } = setup();
    const evil = '<img src=x onerror="window.__pwned=1"><b>bold</b>';
    const r = report('x') as any;
    r.first_nonfinite.op_type = evil;
    r.first_nonfinite.layer = evil;
    r.first_nonfinite.source.code = evil;
    r.diagnosis[0].evidence = evil;
    r.diagnosis[0].fix = evil;
    r.diagnosis[0].cause = evil;
    r.layers[0].layer = evil;
    r.run.notes = [evil];
    feed({ v: 1, type: 'run_finished', report: r });
    const node = render();
    expect(node.querySelector('img')).toBeNull();
    expect(node.querySelector('b')).toBeNull();
    expect(text(node, '.nanwatch-first-op')).toBe(evil);
    expect(text(node, '.nanwatch-fix-code')).toBe(evil);
    expect((window as any).__pwned).toBeUndefined();
  });

  it('shows a running cell live, with its loss line and the first NaN as soon as it is known', () => {
    const { feed, render } = setup();
    feed(runStarted('live', 8));
    feed(progress('live', [0, 1, 2, 3]));
    let node = render();
    const run = node.querySelector('.nanwatch-run') as HTMLElement;
    expect(run.dataset.status).toBe('running');
    expect(run.textContent).toContain('Cell [8]');
    expect(run.textContent).toContain('4 steps');
    expect(run.textContent).toContain('5.0 s'); // now - started
    expect(text(node, '.nanwatch-loss-label')).toBe('Loss (live)');
    expect(text(node, '.nanwatch-note')).toContain('no NaN or Inf so far');
    feed({ v: 1, type: 'first_nonfinite', run_id: 'live', first: (report('live') as any).first_nonfinite, diagnosis: (report('live') as any).diagnosis });
    node = render();
    expect(text(node, '.nanwatch-first-op')).toBe('Log');
    expect(text(node, '.nanwatch-cause-title')).toBe('Log of a non-positive value');
  });

  it('shows a run the kernel could not watch as not watched, never as healthy', () => {
    const { store, calls, feed, render } = setup();
    const unwatched = healthy('old-tf') as any;
    unwatched.run = { ...unwatched.run, watched: false, notes: ['TensorFlow 2.15.1 is older than 2.16, which nanwatch needs: the cell ran unwatched.'] };
    feed({ v: 1, type: 'run_finished', report: unwatched });
    feed({ v: 1, type: 'run_finished', report: healthy('fine') });
    let node = render();
    const [fine, old] = Array.from(node.querySelectorAll<HTMLElement>('.nanwatch-run'));
    expect(old.dataset.watched).toBe('false');
    expect(text(old, '.nanwatch-badge')).toBe('not watched');
    expect(old.querySelector('.nanwatch-badge-unwatched')).not.toBeNull();
    expect(fine.dataset.watched).toBe('true');
    expect(text(fine, '.nanwatch-badge')).toBe('healthy');
    old.querySelector<HTMLButtonElement>('button')!.click();
    expect(calls.select).toEqual(['old-tf']);
    store.select('nb', 'old-tf');
    node = render();
    expect(text(node, '.nanwatch-detail-meta')).toContain('not watched');
    expect(text(node, '.nanwatch-detail-meta')).not.toContain('exact mode');
    expect(text(node, '.nanwatch-detail .nanwatch-note')).toContain('nothing in it was checked');
    expect(text(node, '.nanwatch-detail')).not.toContain('No NaN or Inf in this run');
    expect(text(node, '.nanwatch-notes')).toContain('older than 2.16');
  });

  it('shows the empty-state hint for a connected kernel with no runs', () => {
    const { feed, render } = setup();
    feed({ v: 1, type: 'snapshot', runs: [], active: null });
    const node = render();
    expect(node.dataset.state).toBe('connected');
    expect(text(node, '.nanwatch-hint-empty')).toContain('%%nanwatch');
  });
});

describe('helpers', () => {
  it('formats numbers, including non-finite ones', () => {
    expect(fmtNum(NaN)).toBe('NaN');
    expect(fmtNum(Infinity)).toBe('+Inf');
    expect(fmtNum(-Infinity)).toBe('−Inf');
    expect(fmtNum(null)).toBe('–');
    expect(fmtNum(3)).toBe('3');
    expect(fmtNum(0.123456)).toBe('0.1235');
    expect(fmtNum(1.5e12)).toBe('1.50e+12');
  });

  it('draws a sparkline with a break and a red dot at non-finite values', () => {
    const svg = sparkline(document, [1, 2, NaN, 3, 4], 't');
    expect(svg.querySelectorAll('polyline')).toHaveLength(2);
    expect(svg.querySelectorAll('.nanwatch-spark-bad')).toHaveLength(1);
  });
});

describe('status label', () => {
  it('says Inf when the first non-finite tensor held only infinities, and counts steps', () => {
    const store = new InspectorStore();
    store.add('nb', 'x.ipynb');
    const r = report('inf') as any;
    r.first_nonfinite.counts = { nan: 0, pos_inf: 0, neg_inf: 78, size: 256 };
    r.run.steps = 1;
    const m = parseMessage({ v: 1, type: 'run_finished', report: r });
    store.apply('nb', m!);
    const node = renderState(document, store.get('nb'), store.current('nb'), {
      onSelectRun: () => undefined,
      onJump: () => undefined,
      onCopy: () => true
    });
    const run = node.querySelector('.nanwatch-run') as HTMLElement;
    expect(run.dataset.status).toBe('nonfinite');
    expect(run.querySelector('.nanwatch-badge')!.textContent).toBe('Inf');
    expect(run.textContent).toContain('1 step');
    expect(run.textContent).not.toContain('1 steps');
  });
});

describe('opLabel', () => {
  it('names the data when no op made the value', () => {
    const first = parseMessage({ v: 1, type: 'first_nonfinite', run_id: 'r', diagnosis: [],
      first: { op_type: null, data: { source: 'x', rows: [4] } } });
    expect(first && first.type === 'first_nonfinite' ? opLabel(first.first) : null).toBe('no op: the data (x)');
    const op = parseMessage({ v: 1, type: 'first_nonfinite', run_id: 'r', diagnosis: [], first: { op_type: 'Log' } });
    expect(op && op.type === 'first_nonfinite' ? opLabel(op.first) : null).toBe('Log');
  });
});
