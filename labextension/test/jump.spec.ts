import { findCellIndex, resolveLine } from '../src/jump';
import { ISourceLocation } from '../src/protocol';

const src = (o: Partial<ISourceLocation>): ISourceLocation => ({
  cell: null,
  cell_id: null,
  line: null,
  code: null,
  file: null,
  function: null,
  ...o
});

const cells = [
  { id: 'md', type: 'markdown', executionCount: null },
  { id: 'a', type: 'code', executionCount: 1 },
  { id: 'b', type: 'code', executionCount: 2 },
  { id: 'c', type: 'code', executionCount: 2 } // re-run after a restart: same count
];

describe('findCellIndex', () => {
  it('prefers the notebook cell id', () => {
    expect(findCellIndex(cells, src({ cell_id: 'b', cell: 1 }))).toBe(2);
  });
  it('falls back to the execution count (the latest cell with it)', () => {
    expect(findCellIndex(cells, src({ cell_id: 'gone', cell: 2 }))).toBe(3);
    expect(findCellIndex(cells, src({ cell: 1 }))).toBe(1);
  });
  it('returns -1 when the cell is not there', () => {
    expect(findCellIndex(cells, src({ cell: 9 }))).toBe(-1);
    expect(findCellIndex(cells, src({}))).toBe(-1);
  });
});

describe('resolveLine', () => {
  const text = '%%nanwatch\nimport tensorflow as tf\nclass S:\n    def call(self, x):\n        return tf.math.log(x)';
  it('uses the 1-based line of the report', () => {
    expect(resolveLine(text, src({ line: 5, code: 'return tf.math.log(x)' }))).toBe(4);
  });
  it('follows the code when the cell was edited since', () => {
    const edited = '%%nanwatch\n# a new comment\n' + text.split('\n').slice(1).join('\n');
    expect(resolveLine(edited, src({ line: 5, code: 'return tf.math.log(x)' }))).toBe(5);
  });
  it('clamps a line past the end', () => {
    expect(resolveLine(text, src({ line: 50 }))).toBe(4);
  });
});
