/** Messages shaped like nanwatch/comm.py sends them (schema 1 reports from nanwatch/report.py). */

export function report(id: string, overrides: { [k: string]: unknown } = {}): { [k: string]: unknown } {
  return {
    schema: 1,
    status: 'nonfinite',
    mode: 'exact',
    run: {
      id,
      cell: 4,
      started: 1700000000.5,
      duration_s: 2.25,
      steps: 13,
      epochs: 1,
      stopped: true,
      notes: ['stopped at the first non-finite step'],
      error: null
    },
    first_nonfinite: {
      op_type: 'Log',
      op_name: 'sequential/scorer/Log',
      output_slot: 0,
      phase: 'forward',
      layer: 'scorer',
      step: 12,
      epoch: 0,
      counts: { nan: 5, pos_inf: 0, neg_inf: 2, size: 100 },
      inputs: [
        { name: 'sequential/scorer/BiasAdd', op_type: 'BiasAdd', finite: true, min: -1.5, max: 2.0, zeros: 0, nan: 0, pos_inf: 0, neg_inf: 0, size: 100 }
      ],
      data: null,
      source: { cell: 4, cell_id: 'abc-123', line: 5, code: 'return tf.math.log(x)', file: null, function: 'call' },
      device: '/job:localhost/replica:0/task:0/device:CPU:0',
      replica: null,
      context: 'graph',
      replayed: null,
      reproduced: null,
      histogram: null
    },
    diagnosis: [
      {
        cause: 'log_of_nonpositive',
        confidence: 0.9,
        evidence: 'Log got 7 values <= 0 (min -1.5)',
        fix: 'x = tf.math.log(tf.maximum(x, 1e-7))',
        verified: 'true',
        verified_how: 'the Log at line 5 rewritten on its recorded input (100 values): forward and gradient finite'
      }
    ],
    warnings: [],
    steps: [
      { step: 0, epoch: 0, phase: 'train', loss: 0.7, metrics: { accuracy: 0.5 }, grad_norm: 1.2 },
      { step: 1, epoch: 0, phase: 'train', loss: 'nan', metrics: { accuracy: 'nan' }, grad_norm: 'inf' }
    ],
    layers: [
      {
        layer: 'dense',
        weight_norm: 3.1,
        grad_norm: 0.2,
        activation_norm: 1.1,
        min: -1,
        max: 1,
        mean: 0,
        std: 0.5,
        nan: 0,
        inf: 0,
        history: [
          { step: 0, weight_norm: 3.0, grad_norm: 0.3, activation_norm: 1.0 },
          { step: 5, weight_norm: 3.1, grad_norm: 0.2, activation_norm: 1.1 }
        ]
      },
      {
        layer: 'scorer',
        weight_norm: 1.0,
        grad_norm: 'nan',
        activation_norm: 'nan',
        min: 'nan',
        max: 'nan',
        mean: 'nan',
        std: 'nan',
        nan: 5,
        inf: 2,
        history: [
          { step: 0, weight_norm: 1.0, grad_norm: 0.1, activation_norm: 0.5 },
          { step: 5, weight_norm: 1.0, grad_norm: 'nan', activation_norm: 'nan' }
        ]
      }
    ],
    info: [],
    ...overrides
  };
}

export function healthy(id: string): { [k: string]: unknown } {
  return report(id, { status: 'healthy', first_nonfinite: null, diagnosis: [] });
}

export function runStarted(id: string, cell = 7): { [k: string]: unknown } {
  return { v: 1, type: 'run_started', run: { run_id: id, cell, cell_id: null, mode: 'exact', started: 1700000100 } };
}

export function progress(id: string, steps: number[], layers: unknown = null): { [k: string]: unknown } {
  return {
    v: 1,
    type: 'progress',
    run_id: id,
    steps: steps.map(s => ({ step: s, epoch: 0, phase: 'train', loss: 1 / (s + 1), metrics: {}, grad_norm: 0.5 })),
    layers
  };
}
