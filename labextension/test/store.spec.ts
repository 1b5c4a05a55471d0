import { parseMessage, KernelMessage } from '../src/protocol';
import { InspectorStore, runStatus, runStepCount } from '../src/store';
import { healthy, progress, report, runStarted } from './fixtures';

function msg(data: unknown): KernelMessage {
  const m = parseMessage(data);
  if (!m) {
    throw new Error('fixture did not parse: ' + JSON.stringify(data));
  }
  return m;
}

function setup() {
  const store = new InspectorStore();
  store.add('nb1', 'one.ipynb');
  store.add('nb2', 'two.ipynb');
  const events: string[] = [];
  store.subscribe(k => events.push(k));
  return { store, events };
}

describe('InspectorStore', () => {
  it('follows a live run from start to finish', () => {
    const { store } = setup();
    store.apply('nb1', msg(runStarted('r1')));
    let cur = store.current('nb1')!;
    expect(cur.id).toBe('r1');
    expect(runStatus(cur)).toBe('running');
    store.apply('nb1', msg(progress('r1', [0, 1, 2])));
    store.apply('nb1', msg(progress('r1', [3, 4], [{ layer: 'dense', nan: 0, inf: 0, history: [] }])));
    cur = store.current('nb1')!;
    expect(runStepCount(cur)).toBe(5);
    expect(cur.layers.map(l => l.layer)).toEqual(['dense']);
    const first = (report('r1') as any).first_nonfinite;
    store.apply('nb1', msg({ v: 1, type: 'first_nonfinite', run_id: 'r1', first, diagnosis: [] }));
    expect(store.current('nb1')!.first?.op_type).toBe('Log');
    expect(runStatus(store.current('nb1')!)).toBe('running');
    store.apply('nb1', msg({ v: 1, type: 'run_finished', report: report('r1') }));
    cur = store.current('nb1')!;
    expect(runStatus(cur)).toBe('nonfinite');
    expect(runStepCount(cur)).toBe(13);
    expect(store.get('nb1')!.runs).toHaveLength(1);
    expect(store.get('nb1')!.connection).toBe('connected');
  });

  it('is idempotent: the same events from two comms change nothing the second time', () => {
    const { store } = setup();
    const seq = [
      runStarted('r1'),
      progress('r1', [0, 1]),
      progress('r1', [0, 1]),
      { v: 1, type: 'run_finished', report: report('r1') },
      { v: 1, type: 'run_finished', report: report('r1') },
      progress('r1', [2]), // late progress of a finished run
      runStarted('r1') // late duplicate start
    ];
    for (const m of seq) {
      store.apply('nb1', msg(m));
    }
    const runs = store.get('nb1')!.runs;
    expect(runs).toHaveLength(1);
    expect(runStatus(runs[0])).toBe('nonfinite');
  });

  it('dedupes progress steps and keeps at most 500', () => {
    const { store } = setup();
    store.apply('nb1', msg(runStarted('r1')));
    store.apply('nb1', msg(progress('r1', [0, 1, 2])));
    store.apply('nb1', msg(progress('r1', [2, 3])));
    expect(store.current('nb1')!.steps.map(s => s.step)).toEqual([0, 1, 2, 3]);
    for (let i = 0; i < 6; i++) {
      store.apply('nb1', msg(progress('r1', Array.from({ length: 100 }, (_, j) => 4 + i * 100 + j))));
    }
    const steps = store.current('nb1')!.steps;
    expect(steps).toHaveLength(500);
    expect(steps[steps.length - 1].step).toBe(603);
  });

  it('keeps notebooks apart', () => {
    const { store, events } = setup();
    store.apply('nb1', msg(runStarted('r1')));
    store.apply('nb2', msg({ v: 1, type: 'run_finished', report: healthy('r2') }));
    expect(store.get('nb1')!.runs.map(r => r.id)).toEqual(['r1']);
    expect(store.get('nb2')!.runs.map(r => r.id)).toEqual(['r2']);
    expect(events).toEqual(['nb1', 'nb2']);
    store.clearRuns('nb1');
    expect(store.get('nb1')!.runs).toHaveLength(0);
    expect(store.get('nb2')!.runs).toHaveLength(1);
  });

  it('replaces its state with a snapshot (a late frontend sees past and active runs)', () => {
    const { store } = setup();
    store.apply('nb1', msg({ v: 1, type: 'run_finished', report: healthy('stale') }));
    store.apply(
      'nb1',
      msg({
        v: 1,
        type: 'snapshot',
        runs: [healthy('a'), report('b')],
        active: { run: { run_id: 'c', cell: 3, mode: 'fast', started: 1 }, steps: [{ step: 0, loss: 1 }], layers: [], first_nonfinite: null, diagnosis: [] }
      })
    );
    const runs = store.get('nb1')!.runs;
    expect(runs.map(r => r.id)).toEqual(['a', 'b', 'c']);
    expect(runs.map(runStatus)).toEqual(['healthy', 'nonfinite', 'running']);
    expect(store.current('nb1')!.id).toBe('c');
  });

  it('resets, and a new run drops an older run that never finished', () => {
    const { store } = setup();
    store.apply('nb1', msg(runStarted('r1')));
    store.apply('nb1', msg(runStarted('r2')));
    expect(store.get('nb1')!.runs.map(r => r.id)).toEqual(['r2']);
    store.apply('nb1', msg({ v: 1, type: 'reset' }));
    expect(store.get('nb1')!.runs).toHaveLength(0);
  });

  it('keeps the last 50 runs', () => {
    const { store } = setup();
    for (let i = 0; i < 60; i++) {
      store.apply('nb1', msg({ v: 1, type: 'run_finished', report: healthy(`r${i}`) }));
    }
    const runs = store.get('nb1')!.runs;
    expect(runs).toHaveLength(50);
    expect(runs[0].id).toBe('r10');
    expect(runs[49].id).toBe('r59');
  });

  it('lets the user pick a run, and follows a newly started one', () => {
    const { store } = setup();
    store.apply('nb1', msg({ v: 1, type: 'run_finished', report: report('a') }));
    store.apply('nb1', msg({ v: 1, type: 'run_finished', report: healthy('b') }));
    expect(store.current('nb1')!.id).toBe('b');
    store.select('nb1', 'a');
    expect(store.current('nb1')!.id).toBe('a');
    store.select('nb1', 'nope');
    expect(store.current('nb1')!.id).toBe('b');
    store.select('nb1', 'a');
    store.apply('nb1', msg(runStarted('c')));
    expect(store.current('nb1')!.id).toBe('c');
  });

  it('ignores messages for notebooks it does not track', () => {
    const { store } = setup();
    expect(store.apply('ghost', msg(runStarted('r1')))).toBe(false);
    expect(store.has('ghost')).toBe(false);
  });

  it('tracks the connection state and clears runs on demand (kernel restart)', () => {
    const { store } = setup();
    expect(store.get('nb1')!.connection).toBe('no-kernel');
    store.setConnection('nb1', 'not-loaded');
    expect(store.get('nb1')!.connection).toBe('not-loaded');
    store.apply('nb1', msg({ v: 1, type: 'run_finished', report: report('a') }));
    expect(store.get('nb1')!.connection).toBe('connected');
    store.clearRuns('nb1');
    store.setConnection('nb1', 'restarting');
    expect(store.get('nb1')!.runs).toHaveLength(0);
    expect(store.current('nb1')).toBeNull();
  });
});
