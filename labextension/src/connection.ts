/**
 * One notebook's link to its kernel's nanwatch comm.
 *
 * - On every kernel (first connect, kernel change, after a restart, after a websocket
 *   reconnect) it registers the comm target "nanwatch" (for a kernel that loads nanwatch
 *   later and opens a comm to us) and opens a comm with a hello (for a kernel that already
 *   has nanwatch: it answers with a snapshot). A kernel without nanwatch closes the comm:
 *   the state becomes 'not-loaded' and the view shows the %load_ext hint.
 * - A kernel restart or change clears the notebook's runs.
 * - Messages from an old kernel, or not valid (protocol.ts), are dropped.
 */

import { ISessionContext } from '@jupyterlab/apputils';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { COMM_TARGET, HELLO, parseMessage } from './protocol';
import { InspectorStore } from './store';

export class KernelLink {
  constructor(
    private readonly _key: string,
    private readonly _session: ISessionContext,
    private readonly _store: InspectorStore
  ) {
    _session.kernelChanged.connect(this._onKernelChanged, this);
    _session.statusChanged.connect(this._onStatus, this);
    _session.connectionStatusChanged.connect(this._onConnectionStatus, this);
    void _session.ready.then(() => this._connect());
    this._connect();
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    if (this._disposed) {
      return;
    }
    this._disposed = true;
    this._session.kernelChanged.disconnect(this._onKernelChanged, this);
    this._session.statusChanged.disconnect(this._onStatus, this);
    this._session.connectionStatusChanged.disconnect(this._onConnectionStatus, this);
    this._closeComms();
  }

  /** Ask the kernel again (e.g. the panel was opened and wants fresh data). */
  refresh(): void {
    this._connect(true);
  }

  private _onKernelChanged(): void {
    this._kernel = null;
    this._closeComms();
    this._store.clearRuns(this._key);
    this._connect();
  }

  private _onStatus(_: ISessionContext, status: Kernel.Status): void {
    if (status === 'restarting' || status === 'autorestarting' || status === 'dead') {
      this._closeComms();
      this._store.clearRuns(this._key);
      this._store.setConnection(this._key, status === 'dead' ? 'no-kernel' : 'restarting');
      this._restarting = true;
    } else if (status === 'idle' && this._restarting) {
      this._restarting = false;
      this._connect(true);
    }
  }

  private _onConnectionStatus(_: ISessionContext, status: Kernel.ConnectionStatus): void {
    if (status === 'connected' && this._lostConnection) {
      this._lostConnection = false;
      this._connect(true); // fresh snapshot after a websocket reconnect
    } else if (status !== 'connected') {
      this._lostConnection = true;
    }
  }

  private _connect(force = false): void {
    if (this._disposed) {
      return;
    }
    const kernel = this._session.session?.kernel ?? null;
    if (!kernel) {
      this._kernel = null;
      this._store.setConnection(this._key, 'no-kernel');
      return;
    }
    if (kernel === this._kernel && !force) {
      return;
    }
    if (kernel === this._kernel) {
      // same kernel, fresh snapshot wanted: ask on a comm we already have
      for (const comm of this._comms) {
        if (!comm.isDisposed) {
          try {
            comm.send({ ...HELLO });
            return;
          } catch (e) {
            // fall through: open a new comm
          }
        }
      }
    } else {
      this._closeComms();
    }
    this._kernel = kernel;
    const generation = ++this._generation;
    try {
      kernel.registerCommTarget(COMM_TARGET, (comm, msg) => this._onKernelComm(kernel, generation, comm, msg));
    } catch (e) {
      // a kernel connection that does not handle comms: nothing to talk to
      this._store.setConnection(this._key, 'not-loaded');
      return;
    }
    this._hello(kernel, generation);
  }

  private _current(kernel: Kernel.IKernelConnection, generation: number): boolean {
    return !this._disposed && this._kernel === kernel && this._generation === generation;
  }

  private _hello(kernel: Kernel.IKernelConnection, generation: number): void {
    let comm: Kernel.IComm;
    try {
      comm = kernel.createComm(COMM_TARGET);
    } catch (e) {
      this._store.setConnection(this._key, 'not-loaded');
      return;
    }
    let answered = false;
    this._comms.add(comm);
    comm.onMsg = msg => {
      if (this._current(kernel, generation)) {
        answered = true;
        this._receive(msg.content.data);
      }
    };
    comm.onClose = () => {
      this._comms.delete(comm);
      // closed before any answer: the kernel has no "nanwatch" comm target
      if (!answered && this._current(kernel, generation) && this._comms.size === 0) {
        this._store.setConnection(this._key, 'not-loaded');
      }
    };
    const state = this._store.get(this._key);
    if (state && state.connection !== 'connected') {
      this._store.setConnection(this._key, 'connecting');
    }
    try {
      comm.open({ ...HELLO });
    } catch (e) {
      this._comms.delete(comm);
      this._store.setConnection(this._key, 'not-loaded');
    }
  }

  private _onKernelComm(
    kernel: Kernel.IKernelConnection,
    generation: number,
    comm: Kernel.IComm,
    msg: KernelMessage.ICommOpenMsg
  ): void {
    if (!this._current(kernel, generation)) {
      comm.close();
      return;
    }
    this._comms.add(comm);
    comm.onMsg = m => {
      if (this._current(kernel, generation)) {
        this._receive(m.content.data);
      }
    };
    comm.onClose = () => {
      this._comms.delete(comm);
    };
    this._receive(msg.content.data);
  }

  private _receive(data: unknown): void {
    const msg = parseMessage(data);
    if (msg === null) {
      return; // malformed or unknown: ignored
    }
    this._store.apply(this._key, msg);
  }

  private _closeComms(): void {
    const comms = [...this._comms];
    this._comms.clear();
    for (const comm of comms) {
      comm.onMsg = () => undefined;
      comm.onClose = () => undefined;
      if (!comm.isDisposed) {
        try {
          comm.close();
        } catch (e) {
          // the kernel may be gone already
        }
      }
    }
  }

  private _kernel: Kernel.IKernelConnection | null = null;
  private _generation = 0;
  private _comms = new Set<Kernel.IComm>();
  private _restarting = false;
  private _lostConnection = false;
  private _disposed = false;
}
