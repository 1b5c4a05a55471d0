/**
 * Jump from a report's source location to the notebook cell and line.
 *
 * The cell is found by its notebook cell id when the report has one, else by its
 * execution count in that notebook. The line is the 1-based line in the cell as the
 * user sees it (including the %%nanwatch line); if the cell was edited since and the
 * reported code now sits on another line, the line holding that code is used.
 */

import { JupyterFrontEnd } from '@jupyterlab/application';
import { ICodeCellModel } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { ISourceLocation } from './protocol';

/** Index of the cell the source points at, or -1. Exported for tests of the logic. */
export function findCellIndex(
  cells: { id: string; type: string; executionCount: number | null }[],
  source: ISourceLocation
): number {
  if (source.cell_id) {
    const i = cells.findIndex(c => c.id === source.cell_id);
    if (i >= 0) {
      return i;
    }
  }
  if (source.cell !== null) {
    // the most recent cell with that execution count (counts are unique per kernel session)
    for (let i = cells.length - 1; i >= 0; i--) {
      if (cells[i].type === 'code' && cells[i].executionCount === source.cell) {
        return i;
      }
    }
  }
  return -1;
}

/** 0-based line to put the cursor on, given the cell's current text. */
export function resolveLine(text: string, source: ISourceLocation): number {
  const lines = text.split('\n');
  let line = source.line !== null ? source.line - 1 : 0;
  line = Math.max(0, Math.min(line, lines.length - 1));
  const code = (source.code ?? '').trim();
  if (code && !lines[line].includes(code)) {
    const found = lines.findIndex(l => l.includes(code));
    if (found >= 0) {
      return found;
    }
  }
  return line;
}

/**
 * Activate `panel`, scroll to the cell, put the cursor on the line and flash the cell.
 * Returns false when the cell is not in the notebook any more.
 */
export async function jumpToSource(
  app: JupyterFrontEnd,
  panel: NotebookPanel,
  source: ISourceLocation
): Promise<boolean> {
  const notebook = panel.content;
  const cells = notebook.widgets.map(c => ({
    id: c.model.id,
    type: c.model.type,
    executionCount: c.model.type === 'code' ? (c.model as ICodeCellModel).executionCount : null
  }));
  const index = findCellIndex(cells, source);
  if (index < 0) {
    return false;
  }
  app.shell.activateById(panel.id);
  const cell = notebook.widgets[index];
  notebook.deselectAll();
  notebook.activeCellIndex = index;
  await notebook.scrollToCell(cell, 'center');
  await cell.ready;
  const editor = cell.editor;
  if (!editor) {
    return true;
  }
  const text = cell.model.sharedModel.getSource();
  const line = resolveLine(text, source);
  const lineText = text.split('\n')[line] ?? '';
  const column = lineText.length - lineText.trimStart().length;
  notebook.mode = 'edit';
  editor.setCursorPosition({ line, column });
  editor.focus();
  cell.node.classList.add('nanwatch-flash');
  window.setTimeout(() => cell.node.classList.remove('nanwatch-flash'), 1600);
  return true;
}
