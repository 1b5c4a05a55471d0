import * as fs from 'fs';
import * as path from 'path';
import { renderState } from '../src/render';
import { IContentsReader, openReportFile, parseReportFile, SAVED_KEY, SAVED_LABEL } from '../src/reportfile';
import { InspectorStore } from '../src/store';

// Written by a real run: `python -m nanwatch run --report script_log_loss.json fit_nan.py` (a Keras fit whose
// loss takes the log of a negative number).
const FILES = path.join(__dirname, 'fixtures', 'report_files');
const SCRIPT_REPORT = 'script_log_loss.json';

/** A contents manager reading the fixture folder, as `app.serviceManager.contents.get` answers for a file. */
function contents(asked: string[]): IContentsReader {
  return {
    get: async (p: string, options?: { format?: string | null }) => {
      asked.push(`${p} ${options?.format}`);
      return { content: fs.readFileSync(path.join(FILES, p), 'utf8') };
    }
  };
}

const handlers = { onSelectRun: () => undefined, onJump: () => undefined, onCopy: () => true };

describe('saved report files', () => {
  it('parses a report file and refuses what is not one', () => {
    const text = fs.readFileSync(path.join(FILES, SCRIPT_REPORT), 'utf8');
    const report = parseReportFile(text)!;
    expect(report.status).toBe('nonfinite');
    expect(report.first_nonfinite!.op_type).toBe('Log');
    expect(parseReportFile(JSON.parse(text))!.run.id).toBe(report.run.id);
    expect(parseReportFile('{not json')).toBeNull();
    expect(parseReportFile(JSON.stringify({ cells: [], nbformat: 4 }))).toBeNull();
    expect(parseReportFile(JSON.stringify({ ...JSON.parse(text), schema: 2 }))).toBeNull();
  });

  it('opens a file into the "Saved reports" runs, selected, with the source line from the report', async () => {
    const store = new InspectorStore();
    store.add('nb', 'train.ipynb');
    const asked: string[] = [];
    const report = await openReportFile(contents(asked), store, SCRIPT_REPORT);
    expect(asked).toEqual([`${SCRIPT_REPORT} text`]);
    const state = store.get(SAVED_KEY)!;
    expect(state.label).toBe(SAVED_LABEL);
    expect(state.connection).toBe('files');
    expect(state.runs.map(r => r.id)).toEqual([report.run.id]);
    expect(store.current(SAVED_KEY)!.report!.first_nonfinite!.phase).toBe('loss');
    expect(store.get('nb')!.runs).toEqual([]);

    const node = renderState(document, store.get(SAVED_KEY), store.current(SAVED_KEY), handlers, { now: 0 });
    const text = node.textContent ?? '';
    expect(node.dataset.state).toBe('files');
    expect(node.querySelector('.nanwatch-hint-no-kernel')).toBeNull();
    expect(node.querySelector('.nanwatch-hint-files')!.textContent).toContain('opened from JSON files');
    const source = report.first_nonfinite!.source!;
    expect(source.file).toMatch(/fit_nan\.py$/);
    expect(node.querySelector('.nanwatch-first-op')!.textContent).toBe('Log');
    expect(node.querySelector('.nanwatch-source-code')!.textContent).toBe(source.code);
    expect(node.querySelector('.nanwatch-source-link')!.textContent).toBe(`${source.file}, line ${source.line}`);
    expect(text).toContain('log_of_nonpositive');
    expect(node.querySelector('.nanwatch-run-cell')!.textContent).toBe('fit_nan.py');   // not "Cell [ ]"

    // opening it again keeps one run; a second file adds one
    await openReportFile(contents(asked), store, SCRIPT_REPORT);
    expect(store.get(SAVED_KEY)!.runs.length).toBe(1);
  });

  it('throws on a file that is not a report and leaves the store as it was', async () => {
    const store = new InspectorStore();
    const reader: IContentsReader = { get: async () => ({ content: '{"cells": []}' }) };
    await expect(openReportFile(reader, store, 'notebook.json')).rejects.toThrow('is not a nanwatch report');
    expect(store.has(SAVED_KEY)).toBe(false);
  });
});
