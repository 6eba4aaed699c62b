// dataask for JupyterLab: a right-side panel to ask questions about your data, on the
// Session of the kernel of the notebook in focus; and the handler of the notebook widget's
// "Insert as new cell" (the `dataask:insert-cell` DOM event).

import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { Clipboard, ICommandPalette } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { LabIcon } from '@jupyterlab/ui-components';
import { MessageLoop } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';
import { KernelLink } from './link';
import { PanelModel } from './model';
import { DataaskPanel, PANEL_ID } from './panel';

export namespace CommandIDs {
  export const openPanel = 'dataask:open-panel';
}

export const PLOTLY_MIME = 'application/vnd.plotly.v1+json';
export const INSERT_EVENT = 'dataask:insert-cell';

const ICON_SVG =
  '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" width="16" height="16">' +
  '<g class="jp-icon3" fill="#616161"><path d="M3 3h14a2 2 0 0 1 2 2v7h-2V5H3v10h6v2H3a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z"/>' +
  '<path d="M5 7h10v2H5zM5 11h6v2H5z"/>' +
  '<path d="M16 13a4 4 0 0 1 3.2 6.4l2.5 2.5-1.4 1.4-2.5-2.5A4 4 0 1 1 16 13zm0 2a2 2 0 1 0 0 4 2 2 0 0 0 0-4z"/></g></svg>';

export const dataaskIcon = new LabIcon({ name: 'dataask:icon', svgstr: ICON_SVG });

/** A figure as the panel shows it: in a narrow panel the legend goes below the plot. */
export function fitToPanel(figure: any, width: number): any {
  if (width >= 520 || !figure || typeof figure !== 'object') {
    return figure;
  }
  const layout = { ...(figure.layout ?? {}) };
  layout.legend = { orientation: 'h', yanchor: 'top', y: -0.25, ...(layout.legend ?? {}) };
  layout.margin = { l: 50, r: 10, t: layout.title ? 40 : 10, b: 40, ...(layout.margin ?? {}) };
  layout.autosize = true;
  delete layout.width;
  return { ...figure, layout };
}

/** Insert `code` as a code cell below `index` of `panel`'s notebook and make it active. */
function insertCell(panel: NotebookPanel, index: number, code: string): void {
  const notebook = panel.content;
  const shared = notebook.model?.sharedModel;
  if (!shared) {
    throw new Error('the notebook is not ready');
  }
  const at = Math.min(Math.max(0, index), shared.cells.length);
  shared.insertCell(at, { cell_type: 'code', source: code, metadata: { trusted: false } });
  notebook.activeCellIndex = at;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'dataask:plugin',
  description: 'Ask questions about your data in a side panel, on the kernel’s dataask Session.',
  autoStart: true,
  requires: [INotebookTracker, IRenderMimeRegistry],
  optional: [ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    rendermime: IRenderMimeRegistry,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const model = new PanelModel();
    const link = new KernelLink(tracker, model);

    const renderFigure = async (host: HTMLElement, figure: any): Promise<void> => {
      const data = { [PLOTLY_MIME]: fitToPanel(figure, host.clientWidth || 300) };
      if (!rendermime.preferredMimeType(data, 'any')) {
        host.textContent = 'Charts need plotly’s JupyterLab renderer: pip install plotly';
        return;
      }
      const renderer = rendermime.createRenderer(PLOTLY_MIME);
      host.replaceChildren();
      if (!host.isConnected) {
        await new Promise(resolve => requestAnimationFrame(resolve));
      }
      Widget.attach(renderer, host); // first, so plotly sizes the chart to the panel
      await renderer.renderModel(rendermime.createModel({ data, trusted: true }));
      const observer = new ResizeObserver(() => {
        if (renderer.isDisposed || !host.isConnected) {
          observer.disconnect();
        } else {
          MessageLoop.sendMessage(renderer, Widget.ResizeMessage.UnknownSize);
        }
      });
      observer.observe(host);
    };

    const panel = new DataaskPanel({
      model,
      link,
      actions: {
        renderFigure,
        copy: async (code: string) => {
          try {
            await navigator.clipboard.writeText(code);
          } catch {
            Clipboard.copyToSystem(code);
          }
          return true;
        },
        insert: (code: string) => {
          const nb = link.notebook;
          if (!nb) {
            return 'Open a notebook first.';
          }
          insertCell(nb, nb.content.activeCellIndex + 1, code);
          return `Inserted below cell ${nb.content.activeCellIndex} of ${nb.context.path} (not run).`;
        }
      }
    });
    panel.title.icon = dataaskIcon;
    app.shell.add(panel, 'right', { rank: 650 });
    restorer?.add(panel, PANEL_ID);

    app.commands.addCommand(CommandIDs.openPanel, {
      label: 'Open the dataask panel',
      caption: 'Ask questions about your data',
      icon: dataaskIcon,
      execute: () => {
        app.shell.activateById(PANEL_ID);
        panel.focusQuestion();
      }
    });
    palette?.addItem({ command: CommandIDs.openPanel, category: 'dataask' });

    // "Insert as new cell" in the notebook's answer widget: below the cell showing it.
    document.addEventListener(INSERT_EVENT, (ev: Event) => {
      const detail = (ev as CustomEvent<{ code?: string }>).detail;
      const target = ev.target instanceof Node ? ev.target : null;
      if (!detail || typeof detail.code !== 'string' || !target) {
        return;
      }
      let owner: NotebookPanel | null = null;
      tracker.forEach(nb => {
        if (!owner && nb.node.contains(target)) {
          owner = nb;
        }
      });
      const nb: NotebookPanel | null = owner ?? tracker.currentWidget;
      if (!nb) {
        return;
      }
      const cells = nb.content.widgets;
      const at = cells.findIndex(cell => cell.node.contains(target));
      insertCell(nb, (at < 0 ? nb.content.activeCellIndex : at) + 1, detail.code);
      ev.preventDefault();
    });
  }
};

export default plugin;
