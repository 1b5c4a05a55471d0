/**
 * KernelLink against a scripted session context and kernel (the JupyterLab objects'
 * interface: signals, registerCommTarget, createComm), checking the reconnect rules.
 */
import { Signal } from '@lumino/signaling';
import { KernelLink } from '../src/connection';
import { InspectorStore } from '../src/store';
import { report, runStarted } from './fixtures';

class FakeComm {
  isDisposed = false;
  opened: unknown[] = [];
  sent: unknown[] = [];
  closed = false;
  onMsg: (msg: any) => void = () => undefined;
  onClose: (msg: any) => void = () => undefined;
  constructor(readonly targetName: string) {}
  open(data: unknown) {
    this.opened.push(data);
    return {} as any;
  }
  send(data: unknown) {
    this.sent.push(data);
    return {} as any;
  }
  close() {
    this.closed = true;
    this.isDisposed = true;
  }
  // kernel side
  kernelSends(data: unknown) {
    this.onMsg({ content: { comm_id: 'x', data } });
  }
  kernelCloses() {
    this.isDisposed = true;
    this.onClose({ content: { comm_id: 'x', data: {} } });
  }
}

class FakeKernel {
  comms: FakeComm[] = [];
  targets = new Map<string, (comm: any, msg: any) => void>();
  constructor(readonly id: string) {}
  createComm(target: string) {
    const c = new FakeComm(target);
    this.comms.push(c);
    return c;
  }
  registerCommTarget(name: string, cb: (comm: any, msg: any) => void) {
    this.targets.set(name, cb);
  }
  // the kernel opens a comm to the frontend's target
  kernelOpens(data: unknown) {
    const c = new FakeComm('nanwatch');
    this.targets.get('nanwatch')!(c, { content: { comm_id: 'k', target_name: 'nanwatch', data } });
    return c;
  }
}

class FakeSessionContext {
  kernelChanged = new Signal<this, unknown>(this);
  statusChanged = new Signal<this, string>(this);
  connectionStatusChanged = new Signal<this, string>(this);
  ready = Promise.resolve();
  session: { kernel: FakeKernel | null } | null = null;
  setKernel(k: FakeKernel | null) {
    this.session = { kernel: k };
    this.kernelChanged.emit({ name: 'kernel', oldValue: null, newValue: k });
  }
}

function setup() {
  const store = new InspectorStore();
  store.add('nb', 'a.ipynb');
  const ctx = new FakeSessionContext();
  const link = new KernelLink('nb', ctx as any, store);
  return { store, ctx, link };
}

const snapshot = (runs: unknown[] = []) => ({ v: 1, type: 'snapshot', runs, active: null });

describe('KernelLink', () => {
  it('has no kernel until the session gets one, then says hello', () => {
    const { store, ctx } = setup();
    expect(store.get('nb')!.connection).toBe('no-kernel');
    const k = new FakeKernel('k1');
    ctx.setKernel(k);
    expect(k.targets.has('nanwatch')).toBe(true);
    expect(k.comms).toHaveLength(1);
    expect(k.comms[0].opened).toEqual([{ v: 1, type: 'hello' }]);
    expect(store.get('nb')!.connection).toBe('connecting');
  });

  it('shows not-loaded when the kernel closes the hello comm unanswered', () => {
    const { store, ctx } = setup();
    const k = new FakeKernel('k1');
    ctx.setKernel(k);
    k.comms[0].kernelCloses();
    expect(store.get('nb')!.connection).toBe('not-loaded');
  });

  it('takes a kernel-opened comm (nanwatch loaded later) and its live events', () => {
    const { store, ctx } = setup();
    const k = new FakeKernel('k1');
    ctx.setKernel(k);
    k.comms[0].kernelCloses();
    const kc = k.kernelOpens(snapshot());
    expect(store.get('nb')!.connection).toBe('connected');
    kc.kernelSends(runStarted('r1'));
    kc.kernelSends({ v: 1, type: 'bogus' }); // ignored
    kc.kernelSends('<img src=x>'); // ignored
    kc.kernelSends({ v: 1, type: 'run_finished', report: report('r1') });
    expect(store.get('nb')!.runs.map(r => r.id)).toEqual(['r1']);
    expect(store.current('nb')!.report!.status).toBe('nonfinite');
  });

  it('answers a snapshot on its own hello comm', () => {
    const { store, ctx } = setup();
    const k = new FakeKernel('k1');
    ctx.setKernel(k);
    k.comms[0].kernelSends(snapshot([report('old')]));
    expect(store.get('nb')!.runs.map(r => r.id)).toEqual(['old']);
  });

  it('clears runs on restart and says hello again once the kernel is idle', () => {
    const { store, ctx } = setup();
    const k = new FakeKernel('k1');
    ctx.setKernel(k);
    k.comms[0].kernelSends(snapshot([report('old')]));
    ctx.statusChanged.emit('restarting');
    expect(store.get('nb')!.runs).toHaveLength(0);
    expect(store.get('nb')!.connection).toBe('restarting');
    expect(k.comms[0].closed).toBe(true);
    ctx.statusChanged.emit('starting');
    ctx.statusChanged.emit('idle');
    expect(k.comms).toHaveLength(2);
    expect(k.comms[1].opened).toEqual([{ v: 1, type: 'hello' }]);
    // the old comm's late messages are dropped
    k.comms[0].kernelSends(snapshot([report('stale')]));
    expect(store.get('nb')!.runs).toHaveLength(0);
  });

  it('on a kernel change: clears, talks to the new kernel only', () => {
    const { store, ctx } = setup();
    const k1 = new FakeKernel('k1');
    ctx.setKernel(k1);
    k1.comms[0].kernelSends(snapshot([report('from-k1')]));
    const k2 = new FakeKernel('k2');
    ctx.setKernel(k2);
    expect(store.get('nb')!.runs).toHaveLength(0);
    expect(k2.comms).toHaveLength(1);
    k1.comms[0].kernelSends(snapshot([report('late-k1')]));
    expect(store.get('nb')!.runs).toHaveLength(0);
    k2.comms[0].kernelSends(snapshot([report('from-k2')]));
    expect(store.get('nb')!.runs.map(r => r.id)).toEqual(['from-k2']);
    ctx.setKernel(null);
    expect(store.get('nb')!.connection).toBe('no-kernel');
  });

  it('asks for a fresh snapshot on its open comm after a websocket reconnect', () => {
    const { ctx } = setup();
    const k = new FakeKernel('k1');
    ctx.setKernel(k);
    k.comms[0].kernelSends(snapshot());
    ctx.connectionStatusChanged.emit('connecting');
    ctx.connectionStatusChanged.emit('connected');
    expect(k.comms).toHaveLength(1);
    expect(k.comms[0].sent).toEqual([{ v: 1, type: 'hello' }]);
  });

  it('stops listening when disposed', () => {
    const { store, ctx, link } = setup();
    const k = new FakeKernel('k1');
    ctx.setKernel(k);
    link.dispose();
    k.comms[0].kernelSends(snapshot([report('x')]));
    expect(store.get('nb')!.runs).toHaveLength(0);
    expect(k.comms[0].closed).toBe(true);
  });
});
