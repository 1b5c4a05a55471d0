/**
 * nanwatch's JupyterLab plugin: the "NaN inspector" in the right sidebar.
 *
 * Every open notebook gets a key (one per document context, so two views of one
 * notebook share it and a rename keeps it), a state in the store and a KernelLink that
 * feeds that state from the notebook's own kernel. The panel shows the state of the
 * notebook in focus (the notebook tracker's current widget).
 */

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Clipboard, ICommandPalette, InputDialog, showErrorMessage } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { LabIcon } from '@jupyterlab/ui-components';
import { KernelLink } from './connection';
import { jumpToSource } from './jump';
import { InspectorPanel } from './panel';
import { ISourceLocation } from './protocol';
import { openReportFile, SAVED_KEY } from './reportfile';
import { InspectorStore } from './store';

const PLUGIN_ID = 'nanwatch:plugin';
const PANEL_ID = 'nanwatch-inspector';
const COMMAND_OPEN = 'nanwatch:open-inspector';
const COMMAND_OPEN_FILE = 'nanwatch:open-report-file';

const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
<g class="jp-icon3" fill="#616161">
<path d="M12 2 1.5 21h21L12 2zm0 4.2L19.1 19H4.9L12 6.2z"/>
<rect x="11" y="10" width="2" height="5"/><rect x="11" y="16" width="2" height="2"/>
</g></svg>`;

export const nanwatchIcon = new LabIcon({ name: 'nanwatch:inspector', svgstr: ICON_SVG });

function baseName(path: string): string {
  const i = path.lastIndexOf('/');
  return i >= 0 ? path.slice(i + 1) : path;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'NaN inspector: the first op that produced NaN/Inf in a %%nanwatch cell, and why.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ILayoutRestorer, ICommandPalette],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null
  ) => {
    const store = new InspectorStore();
    const keys = new WeakMap<object, string>();
    const views = new Map<string, Set<NotebookPanel>>();
    const links = new Map<string, KernelLink>();
    let counter = 0;

    const keyFor = (panel: NotebookPanel): string => {
      let key = keys.get(panel.context);
      if (!key) {
        key = `notebook-${++counter}`;
        keys.set(panel.context, key);
      }
      return key;
    };

    const jump = (key: string, source: ISourceLocation): void => {
      const panels = [...(views.get(key) ?? [])];
      const panel = panels.find(p => p === tracker.currentWidget) ?? panels[0];
      if (!panel) {
        return;
      }
      void jumpToSource(app, panel, source).then(found => {
        if (!found) {
          console.warn('nanwatch: the cell of this source location is not in the notebook any more');
        }
      });
    };

    const copy = (text: string): boolean => {
      Clipboard.copyToSystem(text);
      return true;
    };

    const inspector = new InspectorPanel(store, { jump, copy });
    inspector.id = PANEL_ID;
    inspector.title.icon = nanwatchIcon;
    inspector.title.caption = 'NaN inspector';
    app.shell.add(inspector, 'right', { rank: 900 });
    if (restorer) {
      restorer.add(inspector, PANEL_ID);
    }

    const track = (panel: NotebookPanel): void => {
      const key = keyFor(panel);
      let set = views.get(key);
      if (!set) {
        set = new Set();
        views.set(key, set);
        store.add(key, baseName(panel.context.path));
        links.set(key, new KernelLink(key, panel.sessionContext, store));
        panel.context.pathChanged.connect((_, path) => store.setLabel(key, baseName(path)));
      }
      set.add(panel);
      panel.disposed.connect(() => {
        set!.delete(panel);
        if (!set!.size) {
          views.delete(key);
          links.get(key)?.dispose();
          links.delete(key);
          store.remove(key);
          if (inspector.key === key) {
            inspector.showNotebook(tracker.currentWidget ? keyFor(tracker.currentWidget) : null);
          }
        }
      });
    };

    tracker.forEach(track);
    tracker.widgetAdded.connect((_, panel) => track(panel));
    tracker.currentChanged.connect((_, panel) => {
      inspector.showNotebook(panel ? keyFor(panel) : null);
    });
    inspector.showNotebook(tracker.currentWidget ? keyFor(tracker.currentWidget) : null);

    app.commands.addCommand(COMMAND_OPEN, {
      label: 'Open the NaN inspector',
      execute: () => {
        app.shell.activateById(PANEL_ID);
      }
    });
    // A report saved as JSON (a script's run, a batch job): into the sidebar's "Saved reports".
    app.commands.addCommand(COMMAND_OPEN_FILE, {
      label: 'NaN inspector: open report file…',
      execute: async args => {
        let path = typeof args.path === 'string' ? args.path : null;
        if (path === null) {
          const answer = await InputDialog.getText({
            title: 'Open a nanwatch report (JSON)',
            placeholder: 'path/to/report.json, relative to the server root'
          });
          path = answer.button.accept ? (answer.value ?? '').trim() : '';
        }
        if (!path) {
          return null;
        }
        try {
          const report = await openReportFile(app.serviceManager.contents, store, path);
          inspector.showNotebook(SAVED_KEY);
          app.shell.activateById(PANEL_ID);
          return report.run.id;
        } catch (e) {
          void showErrorMessage('NaN inspector', e instanceof Error ? e.message : String(e));
          return null;
        }
      }
    });
    if (palette) {
      palette.addItem({ command: COMMAND_OPEN, category: 'nanwatch' });
      palette.addItem({ command: COMMAND_OPEN_FILE, category: 'nanwatch' });
    }
  }
};

export default plugin;
