import { parseMessage, num, PROTOCOL_VERSION } from '../src/protocol';
import { healthy, progress, report, runStarted } from './fixtures';

describe('parseMessage: envelope', () => {
  it('accepts each v1 message type', () => {
    expect(parseMessage(runStarted('r1'))?.type).toBe('run_started');
    expect(parseMessage(progress('r1', [0, 1]))?.type).toBe('progress');
    expect(
      parseMessage({ v: 1, type: 'first_nonfinite', run_id: 'r1', first: (report('r1') as any).first_nonfinite, diagnosis: [] })
        ?.type
    ).toBe('first_nonfinite');
    expect(parseMessage({ v: 1, type: 'run_finished', report: report('r1') })?.type).toBe('run_finished');
    expect(parseMessage({ v: 1, type: 'snapshot', runs: [report('r1')], active: null })?.type).toBe('snapshot');
    expect(parseMessage({ v: 1, type: 'reset' })?.type).toBe('reset');
    expect(PROTOCOL_VERSION).toBe(1);
  });

  it.each([
    ['not an object', 'hello'],
    ['null', null],
    ['an array', [1, 2]],
    ['no version', { type: 'reset' }],
    ['version 2', { v: 2, type: 'reset' }],
    ['version as string', { v: '1', type: 'reset' }],
    ['unknown type', { v: 1, type: 'eval', code: 'alert(1)' }],
    ['hello (frontend->kernel only)', { v: 1, type: 'hello' }],
    ['run_started without run id', { v: 1, type: 'run_started', run: { cell: 1 } }],
    ['run_started with numeric run id', { v: 1, type: 'run_started', run: { run_id: 5 } }],
    ['progress without steps', { v: 1, type: 'progress', run_id: 'r' }],
    ['progress with layers as object', { v: 1, type: 'progress', run_id: 'r', steps: [], layers: {} }],
    ['first_nonfinite without first', { v: 1, type: 'first_nonfinite', run_id: 'r', diagnosis: [] }],
    ['run_finished with schema 2', { v: 1, type: 'run_finished', report: { ...report('r'), schema: 2 } }],
    ['run_finished with unknown status', { v: 1, type: 'run_finished', report: { ...report('r'), status: 'meh' } }],
    ['run_finished without run id', { v: 1, type: 'run_finished', report: { ...report('r'), run: {} } }],
    ['snapshot with runs not a list', { v: 1, type: 'snapshot', runs: {}, active: null }],
    ['snapshot with a bad active run', { v: 1, type: 'snapshot', runs: [], active: { run: {} } }]
  ])('ignores %s', (_name, data) => {
    expect(parseMessage(data)).toBeNull();
  });
});

describe('parseMessage: contents', () => {
  it('turns "nan"/"inf" strings into numbers and keeps real values', () => {
    const msg = parseMessage({ v: 1, type: 'run_finished', report: report('r1') });
    if (!msg || msg.type !== 'run_finished') {
      throw new Error('expected run_finished');
    }
    const r = msg.report;
    expect(r.steps[1].loss).toBeNaN();
    expect(r.steps[1].grad_norm).toBe(Infinity);
    expect(r.first_nonfinite?.op_type).toBe('Log');
    expect(r.first_nonfinite?.layer).toBe('scorer');
    expect(r.first_nonfinite?.counts).toEqual({ nan: 5, pos_inf: 0, neg_inf: 2, size: 100, kind: null });
    expect(r.first_nonfinite?.source).toEqual({
      cell: 4,
      cell_id: 'abc-123',
      line: 5,
      code: 'return tf.math.log(x)',
      file: null,
      function: 'call'
    });
    expect(r.layers[1].history[1].grad_norm).toBeNaN();
    expect(r.diagnosis[0].cause).toBe('log_of_nonpositive');
  });

  it('drops unknown keys and nulls wrong types instead of trusting them', () => {
    const bad = report('r1') as any;
    bad.first_nonfinite.op_type = { toString: 'x' };
    bad.first_nonfinite.counts = 'lots';
    bad.first_nonfinite.source.line = -3;
    bad.first_nonfinite.evil = '<script>';
    bad.diagnosis.push({ cause: 42 }, 'not a dict');
    bad.steps.push(7);
    const msg = parseMessage({ v: 1, type: 'run_finished', report: bad });
    if (!msg || msg.type !== 'run_finished') {
      throw new Error('expected run_finished');
    }
    const first = msg.report.first_nonfinite!;
    expect(first.op_type).toBeNull();
    expect(first.counts).toEqual({ nan: null, pos_inf: null, neg_inf: null, size: null, kind: null });
    expect(first.source!.line).toBeNull();
    expect('evil' in first).toBe(false);
    expect(msg.report.diagnosis).toHaveLength(1);
    expect(msg.report.steps).toHaveLength(2);
  });

  it('bounds string and list sizes', () => {
    const r = healthy('r1') as any;
    r.run.error = 'x'.repeat(100000);
    r.steps = Array.from({ length: 5000 }, (_, i) => ({ step: i, loss: 1 }));
    const msg = parseMessage({ v: 1, type: 'run_finished', report: r });
    if (!msg || msg.type !== 'run_finished') {
      throw new Error('expected run_finished');
    }
    expect(msg.report.run.error!.length).toBeLessThan(5000);
    expect(msg.report.steps.length).toBe(500);
    expect(msg.report.steps[499].step).toBe(4999); // the most recent are kept
  });

  it('reads the active run of a snapshot', () => {
    const msg = parseMessage({
      v: 1,
      type: 'snapshot',
      runs: [healthy('a'), 'junk', report('b')],
      active: {
        run: { run_id: 'c', cell: 9, mode: 'exact', started: 1 },
        steps: [{ step: 0, loss: 1 }],
        layers: [],
        first_nonfinite: null,
        diagnosis: []
      }
    });
    if (!msg || msg.type !== 'snapshot') {
      throw new Error('expected snapshot');
    }
    expect(msg.runs.map(r => r.run.id)).toEqual(['a', 'b']);
    expect(msg.active?.run.run_id).toBe('c');
    expect(msg.active?.steps).toHaveLength(1);
  });

  it('num() reads the kernel encodings of non-finite floats', () => {
    expect(num('nan')).toBeNaN();
    expect(num('inf')).toBe(Infinity);
    expect(num('-inf')).toBe(-Infinity);
    expect(num(2.5)).toBe(2.5);
    expect(num('2.5')).toBeNull();
    expect(num(undefined)).toBeNull();
  });
});
