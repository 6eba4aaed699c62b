// The panel's state, free of JupyterLab: what the kernel said, what is being asked and
// uploaded, and the question history for Up/Down recall. The view redraws on `changed`.

import type { DatasetView, KernelMessage, PanelState, TurnView } from './protocol';

export type LinkStatus =
  | 'no-notebook' // no notebook open
  | 'waiting' // opening the comm, kernel starting/restarting/busy
  | 'not-loaded' // the kernel has no "dataask" comm target
  | 'loading' // running %load_ext dataask
  | 'ready'
  | 'failed'; // the kernel could not load dataask

export interface Progress {
  ask: string | null; // the kernel's id, once the ask was accepted
  question: string;
  stage: string;
  streamed: string; // the LLM's reply as it streams
  code: string; // the code about to run
  errors: string[];
  events: number;
  stopping: boolean;
}

export interface UploadItem {
  name: string;
  status: 'sending' | 'loading' | 'done' | 'error';
  message: string;
}

export const STATUS_TEXT: Record<LinkStatus, string> = {
  'no-notebook': 'Open a notebook to ask about its data.',
  waiting: 'Waiting for the kernel…',
  'not-loaded': 'dataask is not loaded in this notebook’s kernel.',
  loading: 'Loading dataask in the kernel…',
  ready: 'Connected to the kernel.',
  failed: 'dataask could not be loaded in this kernel.'
};

const MAX_RECALL = 100;
const MAX_UPLOAD_ITEMS = 20;

export class PanelModel {
  status: LinkStatus = 'no-notebook';
  statusDetail = '';
  notebook = '';
  datasets: DatasetView[] = [];
  active: string | null = null;
  turns: TurnView[] = [];
  progress: Progress | null = null;
  askError = '';
  uploads: UploadItem[] = [];
  maxUploadBytes = 0;
  accept: string[] = ['.csv', '.xls', '.xlsx'];
  private recall: string[] = [];
  private recallAt = -1; // -1: editing a new question
  private draft = '';
  private listeners = new Set<() => void>();

  /** Call `fn` after every change; returns the function that stops it. */
  onChange(fn: () => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  changed(): void {
    for (const fn of this.listeners) {
      fn();
    }
  }

  setStatus(status: LinkStatus, detail = ''): void {
    this.status = status;
    this.statusDetail = detail;
    if (status !== 'ready' && this.progress) {
      this.progress = null;
      this.askError = status === 'waiting' ? 'The kernel went away; the question was not finished.' : '';
    }
    this.changed();
  }

  /** A new kernel (or notebook): forget what the old one said. */
  clear(notebook: string): void {
    this.notebook = notebook;
    this.datasets = [];
    this.active = null;
    this.turns = [];
    this.progress = null;
    this.askError = '';
    this.uploads = [];
    this.changed();
  }

  /** The kernel's answer to "hello": everything it has. */
  welcome(state: PanelState, turns: TurnView[]): void {
    this.turns = [];
    for (const t of turns) {
      this.addTurn(t);
    }
    this.applyState(state);
    for (const t of [...turns].sort((a, b) => a.number - b.number)) {
      this.remember(t.question);
    }
    this.status = 'ready';
    this.statusDetail = '';
    this.changed();
  }

  apply(msg: KernelMessage): void {
    switch (msg.type) {
      case 'state':
        this.applyState(msg.state);
        break;
      case 'turn':
        this.addTurn(msg.turn);
        if (!this.recall.includes(msg.turn.question)) {
          this.remember(msg.turn.question); // asked in a cell: Up recalls it too
        }
        break;
      case 'event':
        this.onEvent(msg.ask, msg.kind, msg.text);
        break;
      case 'ask-done':
        if (this.progress && this.progress.ask === msg.ask) {
          this.progress = null;
          this.askError = msg.error ?? '';
        }
        break;
      case 'closed':
        this.status = 'not-loaded';
        this.statusDetail = msg.reason;
        this.progress = null;
        break;
      default:
        return;
    }
    this.changed();
  }

  private applyState(state: PanelState): void {
    this.datasets = state.datasets;
    this.active = state.active;
    this.maxUploadBytes = state.upload.max_bytes;
    this.accept = state.upload.accept;
    const keep = new Set(state.turns);
    this.turns = this.turns.filter(t => keep.has(t.number));
  }

  private addTurn(turn: TurnView): void {
    const i = this.turns.findIndex(t => t.number >= turn.number);
    if (i < 0) {
      this.turns.push(turn);
    } else if (this.turns[i].number === turn.number) {
      this.turns[i] = turn;
    } else {
      this.turns.splice(i, 0, turn);
    }
  }

  // --- asking ---------------------------------------------------------------------------
  /** The question is on its way: show progress right away. */
  startAsk(question: string): void {
    this.remember(question);
    this.askError = '';
    this.progress = {
      ask: null,
      question,
      stage: 'sending the question',
      streamed: '',
      code: '',
      errors: [],
      events: 0,
      stopping: false
    };
    this.changed();
  }

  askAccepted(ask: string): void {
    if (this.progress) {
      this.progress.ask = ask;
      this.changed();
    }
  }

  askRefused(error: string): void {
    this.progress = null;
    this.askError = error;
    this.changed();
  }

  stopping(): void {
    if (this.progress) {
      this.progress.stopping = true;
      this.progress.stage = 'stopping';
      this.changed();
    }
  }

  private onEvent(ask: string, kind: string, text: string): void {
    const p = this.progress;
    if (!p || (p.ask !== null && p.ask !== ask)) {
      return;
    }
    p.ask = ask;
    p.events += 1;
    if (kind === 'stage') {
      if (!p.stopping) {
        p.stage = text;
      }
      if (text.startsWith('writing') || text.startsWith('repairing')) {
        p.streamed = '';
      }
    } else if (kind === 'token') {
      p.streamed += text;
    } else if (kind === 'code') {
      p.code = text;
      p.streamed = '';
    } else if (kind === 'error') {
      p.errors.push(text);
    }
  }

  // --- question history (Up/Down) -------------------------------------------------------
  private remember(question: string): void {
    const q = question.trim();
    if (!q) {
      return;
    }
    this.recall = this.recall.filter(x => x !== q);
    this.recall.push(q);
    if (this.recall.length > MAX_RECALL) {
      this.recall.shift();
    }
    this.recallAt = -1;
  }

  /** Up (`-1`) or Down (`+1`) from the box's `current` text: the text to show, or null. */
  recallStep(direction: -1 | 1, current: string): string | null {
    if (!this.recall.length) {
      return null;
    }
    if (this.recallAt === -1) {
      if (direction === 1) {
        return null;
      }
      this.draft = current;
      this.recallAt = this.recall.length - 1;
      return this.recall[this.recallAt];
    }
    const next = this.recallAt + direction;
    if (next < 0) {
      return null;
    }
    if (next >= this.recall.length) {
      this.recallAt = -1;
      return this.draft;
    }
    this.recallAt = next;
    return this.recall[next];
  }

  get questions(): readonly string[] {
    return this.recall;
  }

  // --- uploads --------------------------------------------------------------------------
  /** Why a file is refused before any byte is sent (the kernel checks again), or null. */
  refusal(name: string, size: number): string | null {
    const dot = name.lastIndexOf('.');
    const suffix = dot >= 0 ? name.slice(dot).toLowerCase() : '';
    if (!this.accept.includes(suffix)) {
      return `${name}: only ${this.accept.join(', ')} files can be uploaded here`;
    }
    if (this.maxUploadBytes && size > this.maxUploadBytes) {
      return `${name} is ${humanSize(size)}, over the ${humanSize(this.maxUploadBytes)} upload cap`;
    }
    return null;
  }

  upload(name: string): UploadItem {
    const item: UploadItem = { name, status: 'sending', message: `sending ${name}…` };
    this.uploads = [...this.uploads, item].slice(-MAX_UPLOAD_ITEMS);
    this.changed();
    return item;
  }

  uploadStatus(item: UploadItem, status: UploadItem['status'], message: string): void {
    item.status = status;
    item.message = message;
    this.changed();
  }

  dismissUploads(): void {
    this.uploads = this.uploads.filter(u => u.status === 'sending' || u.status === 'loading');
    this.changed();
  }
}

export function humanSize(n: number): string {
  const units = ['bytes', 'KB', 'MB', 'GB'];
  let size = n;
  for (const unit of units) {
    if (size < 1024 || unit === 'GB') {
      return unit === 'bytes' ? `${Math.floor(size)} bytes` : `${size.toFixed(1)} ${unit}`;
    }
    size /= 1024;
  }
  return `${size.toFixed(1)} GB`;
}

export function rowsText(page: { page: number; page_size: number; total_rows: number }): string {
  if (!page.total_rows) {
    return 'No rows';
  }
  const first = page.page * page.page_size + 1;
  const last = Math.min(first + page.page_size - 1, page.total_rows);
  const fmt = (n: number) => n.toLocaleString('en-US');
  return `Rows ${fmt(first)}–${fmt(last)} of ${fmt(page.total_rows)}`;
}
