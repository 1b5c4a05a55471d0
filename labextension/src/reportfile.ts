/**
 * Reports saved as JSON files (`python -m nanwatch run SCRIPT.py --report PATH`, `Report.to_json()`)
 * opened in the sidebar: read through JupyterLab's contents API, validated like a kernel's report,
 * and added to the runs of the sidebar's "Saved reports" entry. The first non-finite card shows the
 * source line's text from the report itself, so the script need not be open.
 */

import { Contents } from '@jupyterlab/services';
import { IReport, readReport } from './protocol';
import { InspectorStore } from './store';

/** The store key of the reports opened from files, and its label. */
export const SAVED_KEY = 'nanwatch-saved-reports';
export const SAVED_LABEL = 'Saved reports';

/** The part of JupyterLab's contents manager this needs (`app.serviceManager.contents`). */
export interface IContentsReader {
  get(path: string, options?: Contents.IFetchOptions): Promise<{ content?: unknown }>;
}

/** A report from a file's text (or already parsed JSON); null when it is not a schema 1 report. */
export function parseReportFile(content: unknown): IReport | null {
  let data = content;
  if (typeof content === 'string') {
    try {
      data = JSON.parse(content);
    } catch {
      return null;
    }
  }
  return readReport(data);
}

/** Read `path` and add its report to the "Saved reports" runs (selected); throws when it is not one. */
export async function openReportFile(contents: IContentsReader, store: InspectorStore, path: string): Promise<IReport> {
  const model = await contents.get(path, { type: 'file', format: 'text', content: true });
  const report = parseReportFile(model.content);
  if (!report) {
    throw new Error(`${path} is not a nanwatch report (schema 1 JSON)`);
  }
  store.add(SAVED_KEY, SAVED_LABEL);
  store.setConnection(SAVED_KEY, 'files');
  store.addReport(SAVED_KEY, report);
  return report;
}
