/**
 * The "NaN inspector" sidebar widget: shows the store's state of the notebook in focus.
 */

import { Widget } from '@lumino/widgets';
import { Message } from '@lumino/messaging';
import { ISourceLocation } from './protocol';
import { renderState } from './render';
import { InspectorStore, runStatus } from './store';

export interface IPanelActions {
  jump(key: string, source: ISourceLocation): void;
  copy(text: string): Promise<boolean> | boolean;
}

export class InspectorPanel extends Widget {
  constructor(
    private readonly _store: InspectorStore,
    private readonly _actions: IPanelActions
  ) {
    super();
    this.addClass('nanwatch-panel');
    const header = document.createElement('header');
    header.className = 'nanwatch-header';
    const title = document.createElement('h2');
    title.className = 'nanwatch-title';
    title.textContent = 'NaN inspector';
    header.appendChild(title);
    this._content = document.createElement('div');
    this._content.className = 'nanwatch-content';
    this.node.append(header, this._content);
    this._unsubscribe = _store.subscribe(key => {
      if (key === this._key) {
        this._schedule();
      }
    });
    this._render();
  }

  /** The notebook key shown (null: no notebook in focus). */
  get key(): string | null {
    return this._key;
  }

  showNotebook(key: string | null): void {
    if (key !== this._key) {
      this._key = key;
      this._schedule();
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._unsubscribe();
    if (this._ticker !== null) {
      window.clearInterval(this._ticker);
    }
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    this._schedule();
  }

  private _schedule(): void {
    if (this._pending) {
      return;
    }
    this._pending = true;
    const run = () => {
      this._pending = false;
      this._render();
    };
    if (typeof window.requestAnimationFrame === 'function' && this.isVisible) {
      window.requestAnimationFrame(run);
    } else {
      window.setTimeout(run, 0);
    }
  }

  private _render(): void {
    if (this.isDisposed) {
      return;
    }
    const key = this._key;
    const state = key !== null ? this._store.get(key) : undefined;
    const current = key !== null ? this._store.current(key) : null;
    const scroll = this.node.scrollTop;
    const body = renderState(
      document,
      state,
      current,
      {
        onSelectRun: id => {
          if (key !== null) {
            this._store.select(key, id);
          }
        },
        onJump: (source: ISourceLocation) => {
          if (key !== null) {
            this._actions.jump(key, source);
          }
        },
        onCopy: text => this._actions.copy(text)
      },
      { now: Date.now() / 1000 }
    );
    this._content.replaceChildren(body);
    this.node.scrollTop = scroll;
    // keep the elapsed time of a running cell moving between progress messages
    const running = current !== null && runStatus(current) === 'running';
    if (running && this._ticker === null) {
      this._ticker = window.setInterval(() => this._schedule(), 1000);
    } else if (!running && this._ticker !== null) {
      window.clearInterval(this._ticker);
      this._ticker = null;
    }
  }

  private _key: string | null = null;
  private _content: HTMLElement;
  private _pending = false;
  private _ticker: number | null = null;
  private _unsubscribe: () => void;
}
