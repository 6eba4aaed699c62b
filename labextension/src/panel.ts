// The side panel: connection status, datasets (with upload), the conversation, live progress
// and the question box. Everything it shows comes from the kernel's Session over the comm.

import { Widget } from '@lumino/widgets';
import { AnswerActions, AnswerView } from './answer';
import { button, errorText, h } from './dom';
import type { KernelLink } from './link';
import { humanSize, PanelModel, STATUS_TEXT } from './model';
import type { DatasetView } from './protocol';

export const PANEL_ID = 'dataask-panel';
export const QUESTION_LABEL = 'Ask a question about your data';
const CHUNK_BYTES = 1 << 20;

export interface PanelOptions {
  model: PanelModel;
  link: KernelLink;
  actions: Omit<AnswerActions, 'page' | 'chart' | 'exportFile'>;
}

export class DataaskPanel extends Widget {
  private model: PanelModel;
  private link: KernelLink;
  private actions: AnswerActions;
  private statusBox = h('div', { class: 'dataask-status', role: 'status', 'aria-live': 'polite' });
  private datasetList = h('ul', { class: 'dataask-datasets', 'aria-label': 'Datasets' });
  private uploadList = h('ul', { class: 'dataask-uploads', 'aria-label': 'Uploads' });
  private conversation = h('div', { class: 'dataask-conversation', 'aria-label': 'Conversation' });
  private progressBox = h('div', { class: 'dataask-progress', 'aria-live': 'polite', hidden: true });
  private askErrorBox = h('div', { class: 'dataask-ask-error', role: 'alert' });
  private question: HTMLTextAreaElement;
  private askButton: HTMLButtonElement;
  private fileInput: HTMLInputElement;
  private answers = new Map<number, AnswerView>();
  private lastCount = 0;

  constructor(options: PanelOptions) {
    super();
    this.id = PANEL_ID;
    this.addClass('dataask-panel');
    this.title.caption = 'dataask: ask questions about your data';
    this.model = options.model;
    this.link = options.link;
    this.actions = {
      ...options.actions,
      page: async (turn, table, args) => (await this.link.request('page', { turn, table, ...args })).page,
      chart: async turn => (await this.link.request('chart', { turn })).figure,
      exportFile: (turn, format) => this.exportFile(turn, format)
    };

    this.question = h('textarea', {
      class: 'dataask-question-box',
      'aria-label': QUESTION_LABEL,
      placeholder: `${QUESTION_LABEL} (Enter asks, Shift+Enter: new line, Up: earlier questions)`,
      rows: '3'
    });
    this.question.addEventListener('keydown', ev => this.onKey(ev));
    this.askButton = button('Ask', () => void this.ask(), { class: 'dataask-button dataask-primary' });

    this.fileInput = h('input', {
      type: 'file',
      multiple: true,
      class: 'dataask-file-input',
      'aria-label': 'Choose data files to upload'
    });
    this.fileInput.addEventListener('change', () => {
      const files = Array.from(this.fileInput.files ?? []);
      this.fileInput.value = '';
      void this.uploadFiles(files);
    });
    const drop = h(
      'div',
      { class: 'dataask-drop', role: 'button', tabindex: '0', 'aria-label': 'Upload data files: drop them here or press to choose' },
      'Drop CSV, Excel, ODS or parquet files here, or ',
      h('span', { class: 'dataask-link' }, 'choose files')
    );
    drop.addEventListener('click', () => this.fileInput.click());
    drop.addEventListener('keydown', ev => {
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        this.fileInput.click();
      }
    });
    for (const name of ['dragenter', 'dragover']) {
      drop.addEventListener(name, ev => {
        ev.preventDefault();
        drop.classList.add('dataask-drop-over');
      });
    }
    drop.addEventListener('dragleave', () => drop.classList.remove('dataask-drop-over'));
    drop.addEventListener('drop', ev => {
      ev.preventDefault();
      drop.classList.remove('dataask-drop-over');
      void this.uploadFiles(Array.from(ev.dataTransfer?.files ?? []));
    });

    this.node.append(
      h('div', { class: 'dataask-header' }, h('h2', {}, 'dataask'), this.statusBox),
      h(
        'section',
        { class: 'dataask-section dataask-datasets-section', 'aria-labelledby': 'dataask-datasets-title' },
        h('h3', { id: 'dataask-datasets-title' }, 'Datasets'),
        this.datasetList,
        drop,
        this.fileInput,
        this.uploadList
      ),
      this.conversation,
      this.progressBox,
      h(
        'div',
        { class: 'dataask-ask' },
        this.askErrorBox,
        this.question,
        h('div', { class: 'dataask-toolbar' }, this.askButton)
      )
    );
    this.model.onChange(() => this.draw());
    this.draw();
  }

  focusQuestion(): void {
    this.question.focus();
  }

  // --- drawing --------------------------------------------------------------------------
  private draw(): void {
    this.drawStatus();
    this.drawDatasets();
    this.drawUploads();
    this.drawConversation();
    this.drawProgress();
    const m = this.model;
    this.askErrorBox.textContent = m.askError;
    this.askErrorBox.hidden = !m.askError;
    const ready = m.status === 'ready';
    this.askButton.disabled = !ready || m.progress !== null;
    this.question.disabled = !ready;
  }

  private drawStatus(): void {
    const m = this.model;
    const parts: (Node | string)[] = [];
    if (m.notebook) {
      parts.push(h('div', { class: 'dataask-muted dataask-notebook' }, `Notebook: ${m.notebook}`));
    }
    if (m.status !== 'ready') {
      parts.push(h('div', { class: `dataask-link-status dataask-${m.status}` }, STATUS_TEXT[m.status]));
      if (m.statusDetail) {
        parts.push(h('div', { class: 'dataask-muted' }, m.statusDetail));
      }
    }
    if (m.status === 'not-loaded' || m.status === 'failed') {
      parts.push(
        button('Load dataask', () => void this.link.loadDataask(), {
          class: 'dataask-button dataask-primary',
          title: 'Run %load_ext dataask in this notebook’s kernel'
        })
      );
    }
    this.statusBox.replaceChildren(...parts);
  }

  private drawDatasets(): void {
    const m = this.model;
    const items = m.datasets.map(ds => this.datasetItem(ds));
    if (!items.length) {
      items.push(h('li', { class: 'dataask-muted' }, m.status === 'ready' ? 'No datasets yet: upload a file.' : '—'));
    }
    this.datasetList.replaceChildren(...items);
  }

  private datasetItem(ds: DatasetView): HTMLElement {
    const li = h('li', {
      class: 'dataask-dataset' + (ds.active ? ' dataask-active' : ''),
      'aria-current': ds.active ? 'true' : undefined,
      title: ds.notes.join('\n') || undefined
    });
    const use = button(ds.active ? '★' : '☆', () => void this.call('use', { name: ds.name }), {
      class: 'dataask-icon-button',
      'aria-label': ds.active ? `${ds.name} is the active dataset` : `Ask about ${ds.name}`,
      'aria-pressed': ds.active ? 'true' : 'false',
      title: ds.active ? 'The active dataset: questions are about it' : 'Make this the active dataset'
    });
    const shape = ds.pending
      ? 'read again when a question needs it'
      : `${ds.rows.toLocaleString('en-US')} rows × ${ds.columns.toLocaleString('en-US')} columns`;
    li.append(
      use,
      h(
        'div',
        { class: 'dataask-dataset-text' },
        h('span', { class: 'dataask-dataset-name' }, ds.name),
        ' ',
        h('span', { class: 'dataask-muted' }, shape),
        h('div', { class: 'dataask-muted dataask-source', title: ds.source }, ds.source.split('/').pop() ?? ds.source)
      )
    );
    if (ds.sheets.length > 1) {
      const pick = h('select', { 'aria-label': `Sheet of ${ds.name}` });
      for (const s of ds.sheets) {
        pick.append(h('option', { value: s, selected: s === ds.sheet }, s));
      }
      pick.addEventListener('change', () => void this.call('sheet', { name: ds.name, sheet: pick.value }));
      li.querySelector('.dataask-dataset-text')?.append(h('label', { class: 'dataask-muted dataask-sheet' }, 'Sheet ', pick));
    }
    li.append(
      button('✕', () => void this.call('drop', { name: ds.name }), {
        class: 'dataask-icon-button',
        'aria-label': `Remove dataset ${ds.name}`,
        title: 'Remove this dataset from the session'
      })
    );
    return li;
  }

  private drawUploads(): void {
    const items = this.model.uploads.map(u =>
      h('li', { class: `dataask-upload dataask-upload-${u.status}`, role: u.status === 'error' ? 'alert' : undefined }, u.message)
    );
    this.uploadList.replaceChildren(...items);
    this.uploadList.hidden = !items.length;
  }

  private drawConversation(): void {
    const turns = this.model.turns;
    const keep = new Set(turns.map(t => t.number));
    for (const [n, view] of this.answers) {
      if (!keep.has(n)) {
        view.node.remove();
        this.answers.delete(n);
      }
    }
    let previous: HTMLElement | null = null;
    for (const t of turns) {
      let view = this.answers.get(t.number);
      if (!view || view.turn !== t) {
        const fresh = new AnswerView(t, this.actions);
        if (view) {
          view.node.replaceWith(fresh.node);
        }
        view = fresh;
        this.answers.set(t.number, view);
      }
      const expected: ChildNode | null = previous ? previous.nextSibling : this.conversation.firstChild;
      if (expected !== view.node) {
        this.conversation.insertBefore(view.node, expected);
      }
      previous = view.node;
    }
    if (!turns.length) {
      this.conversation.dataset.empty = this.model.status === 'ready' ? 'Ask a question below.' : '';
    } else {
      delete this.conversation.dataset.empty;
    }
    if (turns.length > this.lastCount) {
      previous?.scrollIntoView({ block: 'start' });
    }
    this.lastCount = turns.length;
  }

  private drawProgress(): void {
    const p = this.model.progress;
    this.progressBox.hidden = !p;
    if (!p) {
      this.progressBox.replaceChildren();
      return;
    }
    const code = p.code || p.streamed;
    const parts: (Node | string)[] = [
      h('div', { class: 'dataask-question' }, p.question),
      h('div', { class: 'dataask-stage' }, h('span', { class: 'dataask-spinner', 'aria-hidden': 'true' }), p.stage + '…'),
      ...(code ? [h('pre', { class: 'dataask-live-code', 'aria-label': 'Code as it is written' }, code)] : []),
      ...p.errors.map(e => h('div', { class: 'dataask-muted' }, `retrying: ${e}`)),
      h(
        'div',
        { class: 'dataask-toolbar' },
        button('Stop', () => void this.stop(), {
          class: 'dataask-button',
          title: 'Stop this question',
          disabled: p.stopping
        })
      )
    ];
    this.progressBox.replaceChildren(...parts);
  }

  // --- actions --------------------------------------------------------------------------
  private onKey(ev: KeyboardEvent): void {
    const box = this.question;
    if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
      ev.preventDefault();
      void this.ask();
    } else if (ev.key === 'ArrowUp' && !box.value.slice(0, box.selectionStart).includes('\n')) {
      const text = this.model.recallStep(-1, box.value);
      if (text !== null) {
        ev.preventDefault();
        box.value = text;
      }
    } else if (ev.key === 'ArrowDown' && !box.value.slice(box.selectionEnd).includes('\n')) {
      const text = this.model.recallStep(1, box.value);
      if (text !== null) {
        ev.preventDefault();
        box.value = text;
      }
    }
  }

  private async ask(): Promise<void> {
    const question = this.question.value.trim();
    const m = this.model;
    if (!question || m.status !== 'ready' || m.progress) {
      return;
    }
    this.question.value = '';
    m.startAsk(question);
    try {
      const reply = await this.link.request('ask', { question });
      m.askAccepted(reply.ask);
    } catch (err) {
      m.askRefused(errorText(err));
      if (!this.question.value) {
        this.question.value = question;
      }
    }
  }

  private async stop(): Promise<void> {
    this.model.stopping();
    try {
      await this.link.request('cancel');
    } catch (err) {
      this.model.askRefused(errorText(err));
    }
  }

  private async call(op: string, args: Record<string, any>): Promise<void> {
    try {
      await this.link.request(op, args);
    } catch (err) {
      const item = this.model.upload(op);
      this.model.uploadStatus(item, 'error', errorText(err));
    }
  }

  private async exportFile(turn: number, format: string): Promise<string> {
    const reply = await this.link.request('export', { turn, format });
    const data = reply.buffers[0];
    const blob = new Blob([data], { type: reply.mime });
    const url = URL.createObjectURL(blob);
    const a = h('a', { href: url, download: reply.name, hidden: true });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    return `Downloaded ${reply.name} (${humanSize(reply.size)}).`;
  }

  /** Upload each file in 1 MB pieces; the kernel checks it and loads it with Session.load. */
  async uploadFiles(files: File[]): Promise<void> {
    const m = this.model;
    m.dismissUploads();
    for (const file of files) {
      const item = m.upload(file.name);
      const refused = m.refusal(file.name, file.size);
      if (refused) {
        m.uploadStatus(item, 'error', refused);
        continue;
      }
      let upload = '';
      try {
        upload = (await this.link.request('upload-begin', { name: file.name, size: file.size })).upload;
        for (let offset = 0; offset < file.size; offset += CHUNK_BYTES) {
          const piece = await file.slice(offset, offset + CHUNK_BYTES).arrayBuffer();
          await this.link.request('upload-chunk', { upload, offset }, [piece]);
          m.uploadStatus(item, 'sending', `sending ${file.name}: ${Math.round((100 * Math.min(file.size, offset + CHUNK_BYTES)) / Math.max(1, file.size))}%`);
        }
        m.uploadStatus(item, 'loading', `reading ${file.name}…`);
        const reply = await this.link.request('upload-end', { upload });
        const ds = reply.dataset as DatasetView;
        m.uploadStatus(item, 'done', `${file.name} → dataset ${ds.name} (${ds.rows.toLocaleString('en-US')} rows × ${ds.columns} columns)`);
      } catch (err) {
        m.uploadStatus(item, 'error', errorText(err));
        if (upload) {
          this.link.request('upload-abort', { upload }).catch(() => undefined);
        }
      }
    }
  }
}
