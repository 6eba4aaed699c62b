// The messages between the panel and the kernel's comm target "dataask"
// (dataask_jupyter/panel/hub.py; catalogue in docs/panel.md).

export const TARGET = 'dataask';

export interface DatasetView {
  name: string;
  rows: number;
  columns: number;
  source: string;
  format: string;
  sheet: string | null;
  sheets: string[];
  notes: string[];
  summary: string;
  active: boolean;
  pending?: boolean; // from an earlier kernel: read again from its file when needed
}

export interface ColumnInfo {
  label: string;
  dtype: string;
  numeric: boolean;
  index: boolean;
}

export interface TablePage {
  columns: ColumnInfo[];
  rows: (string | null)[][];
  page: number;
  page_size: number;
  pages: number;
  total_rows: number;
  sort_by: string;
  ascending: boolean;
}

export type ValueView =
  | { type: 'tables'; tables: { caption: string; page: TablePage }[]; chartable: boolean }
  | { type: 'figure'; figure: any }
  | { type: 'image'; png: string }
  | { type: 'headline'; text: string; noun: string }
  | { type: 'none'; text: string };

export interface TurnView {
  number: number;
  question: string;
  dataset: string | null;
  ok: boolean;
  cancelled: boolean;
  error: string | null;
  code: string;
  kind: string;
  seconds: number;
  summary: string;
  notes: string[];
  stdout: string;
  attempts: { code: string; error: string | null }[];
  value: ValueView | null;
}

export interface PanelState {
  datasets: DatasetView[];
  active: string | null;
  turns: number[];
  asking: number;
  upload: { accept: string[]; max_bytes: number };
}

export interface Reply {
  type: 'reply';
  id: number;
  ok: boolean;
  error?: string;
  [key: string]: any;
}

export type KernelMessage =
  | Reply
  | { type: 'state'; state: PanelState }
  | { type: 'turn'; turn: TurnView }
  | { type: 'event'; ask: string; kind: string; text: string; attempt: number }
  | { type: 'ask-done'; ask: string; number?: number; error?: string }
  | { type: 'closed'; reason: string };
