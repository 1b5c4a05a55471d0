/**
 * The sidebar against schema 1 (docs/schema/*.schema.json, generated from nanwatch/schema.py).
 *
 * Fails when the generated cause titles (src/causes.ts, written by scripts/gen_schema.py from
 * nanwatch/schema.py) differ from the schema's ids and titles, when the parser drops a field of the
 * schema (checked on reports and messages recorded from real runs: fixtures/reports, made by
 * tests/tools/make_ts_fixtures.py), or when a limit differs from the kernel's.
 */

import * as fs from 'fs';
import * as path from 'path';
import * as protocol from '../src/protocol';
import { CAUSE_TITLES } from '../src/causes';
import * as render from '../src/render';

type Json = { [key: string]: any };

const ROOT = path.join(__dirname, '..', '..');
const FIXTURES = path.join(__dirname, 'fixtures', 'reports');

function load(file: string): Json {
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

const reportSchema = load(path.join(ROOT, 'docs', 'schema', 'report.v1.schema.json'));
const commSchema = load(path.join(ROOT, 'docs', 'schema', 'comm.v1.schema.json'));
const fixtures: Json[] = fs
  .readdirSync(FIXTURES)
  .filter(f => f.endsWith('.json'))
  .sort()
  .map(f => ({ file: f, ...load(path.join(FIXTURES, f)) }));

/** The keys of a record of the schema ($defs[name].properties). */
function schemaKeys(name: string): string[] {
  const def = commSchema.$defs[name];
  expect(def?.properties).toBeDefined();
  return Object.keys(def.properties);
}

const checked = new Set<string>();

/** The parsed object carries every key of the schema record (null when the kernel sent none). */
function expectReads(name: string, parsed: unknown): void {
  expect(parsed).not.toBeNull();
  const missing = schemaKeys(name).filter(key => !(key in (parsed as Json)));
  expect({ record: name, missing }).toEqual({ record: name, missing: [] });
  checked.add(name);
}

describe('schema 1: cause ids and enums', () => {
  const causes: string[] = reportSchema.$defs.CauseId.enum;

  it('the two schemas list the same cause ids, the ones of nanwatch.diagnosis', () => {
    expect(commSchema.$defs.CauseId.enum).toEqual(causes);
    expect(causes).toEqual(expect.arrayContaining(['nan_in_input', 'outlier_target', 'input_drift']));
  });

  it('both schemas carry the same cause titles, one for each cause id, in order', () => {
    const titles: Json = reportSchema['x-nanwatch-cause-titles'];
    expect(commSchema['x-nanwatch-cause-titles']).toEqual(titles);
    expect(Object.keys(titles)).toEqual(causes);
  });

  it.each(reportSchema.$defs.CauseId.enum as string[])('cause %s has its schema title in causes.ts', cause => {
    const title: string = reportSchema['x-nanwatch-cause-titles'][cause];
    expect(typeof CAUSE_TITLES[cause]).toBe('string');
    expect(CAUSE_TITLES[cause].length).toBeGreaterThan(0);
    expect(CAUSE_TITLES[cause]).toBe(title);
    expect(render.causeTitle(cause)).toBe(title);
  });

  it('causes.ts names exactly the schema cause ids, in order (run scripts/gen_schema.py when not)', () => {
    expect(Object.keys(CAUSE_TITLES)).toEqual(causes);
    expect(render.CAUSE_TITLES).toBe(CAUSE_TITLES);
  });

  it('the statuses are the schema statuses', () => {
    expect([...protocol.STATUSES]).toEqual(reportSchema.$defs.Status.enum);
  });
});

describe('schema 1: what the sidebar sends', () => {
  it('HELLO is the hello message of the comm schema', () => {
    const hello = commSchema.$defs.HelloMessage;
    const expected = Object.fromEntries(Object.entries(hello.properties).map(([k, p]) => [k, (p as Json).const]));
    expect(hello.required).toEqual(Object.keys(hello.properties));
    expect(protocol.HELLO).toEqual(expected);
    expect(protocol.PROTOCOL_VERSION).toBe(commSchema['x-nanwatch-protocol-version']);
  });
});

describe('schema 1: limits', () => {
  const limits: Json = reportSchema['x-nanwatch-limits'];

  it('both schemas carry the same limits', () => {
    expect(commSchema['x-nanwatch-limits']).toEqual(limits);
  });

  it.each(['MAX_RUNS', 'MAX_STEPS', 'MAX_HISTORY'])('protocol.ts exports %s with the kernel value', name => {
    expect(typeof limits[name]).toBe('number');
    expect((protocol as Json)[name]).toBe(limits[name]);
  });

  it('every MAX_* that protocol.ts exports is a shared limit with the same value', () => {
    const exported = Object.entries(protocol).filter(([k]) => k.startsWith('MAX_'));
    for (const [name, value] of exported) {
      expect({ [name]: value }).toEqual({ [name]: limits[name] });
    }
  });
});

describe('schema 1: the parser reads every field (real reports)', () => {
  it('has fixtures of real runs', () => {
    const scenarios = [
      'healthy_fit',
      'outlier_warning',
      'nan_in_data',
      'nan_in_model',
      'tape_loop',
      'predict_nan_rows'
    ];
    expect(fixtures.map(f => f.scenario)).toEqual(expect.arrayContaining(scenarios));
  });

  it.each(fixtures.map(f => [f.file, f] as [string, Json]))('%s: report', (_file, fixture) => {
    const raw = fixture.report;
    const msg = protocol.parseMessage({ v: 1, type: 'run_finished', report: raw });
    expect(msg?.type).toBe('run_finished');
    const report = (msg as { report: protocol.IReport }).report;
    expectReads('Report', report);
    expectReads('RunSummary', report.run);
    expect(report.run.id).toBe(raw.run.id);
    expect(report.steps).toHaveLength(raw.steps.length);
    report.steps.forEach(s => expectReads('StepRecord', s));
    expect(report.layers).toHaveLength(raw.layers.length);
    for (const layer of report.layers) {
      expectReads('LayerRecord', layer);
      layer.history.forEach(h => expectReads('HistoryPoint', h));
    }
    report.diagnosis.forEach(d => expectReads('Diagnosis', d));
    report.warnings.forEach(w => expectReads('WarningRecord', w));
    expect(report.diagnosis).toHaveLength(raw.diagnosis.length);
    expect(report.warnings).toHaveLength(raw.warnings.length);
    const first = report.first_nonfinite;
    if (raw.first_nonfinite === null) {
      expect(first).toBeNull();
      return;
    }
    expectReads('FirstNonfinite', first);
    expectReads('Counts', first!.counts);
    first!.inputs.forEach(i => expectReads('InputHealth', i));
    expect(first!.replica).toBe(raw.first_nonfinite.replica);
    for (const [key, record] of [
      ['data', 'DataRows'],
      ['source', 'SourceLocation'],
      ['consumer', 'Consumer'],
      ['histogram', 'Histogram']
    ]) {
      if (raw.first_nonfinite[key] !== null) {
        expectReads(record, (first as Json)[key]);
      }
    }
  });

  it.each(fixtures.map(f => [f.file, f] as [string, Json]))('%s: every comm message', (_file, fixture) => {
    const messages: Json[] = fixture.messages;
    expect(messages[0].type).toBe('run_started');
    for (const raw of messages) {
      const msg = protocol.parseMessage(raw);
      expect({ type: raw.type, parsed: msg !== null }).toEqual({ type: raw.type, parsed: true });
      if (msg?.type === 'run_started') {
        expectReads('RunInfo', msg.run);
        expect(msg.run.cell_id).toBe(raw.run.cell_id);
        expect(msg.run.mode).toBe(raw.run.mode);
      } else if (msg?.type === 'progress') {
        msg.steps.forEach(s => expectReads('StepRecord', s));
      } else if (msg?.type === 'first_nonfinite') {
        expectReads('FirstNonfinite', msg.first);
      }
    }
  });

  it('the fixtures reach every record the parser must read, and every kernel message type', () => {
    const kernelTypes = Object.keys(commSchema['x-nanwatch-messages'].kernel_to_frontend);
    const seen = new Set(fixtures.flatMap(f => (f.messages as Json[]).map(m => m.type)));
    expect(kernelTypes.filter(t => t !== 'reset' && !seen.has(t))).toEqual([]);
    expect(protocol.parseMessage({ v: 1, type: 'reset' })?.type).toBe('reset');
    const records = ['Report', 'RunSummary', 'RunInfo', 'FirstNonfinite', 'StepRecord', 'LayerRecord',
      'HistoryPoint', 'Counts', 'InputHealth', 'DataRows', 'SourceLocation', 'Consumer', 'Histogram', 'Diagnosis',
      'WarningRecord'];
    expect(records.filter(r => !checked.has(r))).toEqual([]);
  });
});
