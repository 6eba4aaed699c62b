// A table answer: one page at a time from the kernel (only the visible page crosses the comm),
// sortable by any column, with page size and previous/next.

import { button, errorText, h } from './dom';
import { rowsText } from './model';
import type { TablePage } from './protocol';

export type PageRequest = (args: {
  page: number;
  page_size: number;
  sort_by: string;
  ascending: boolean;
}) => Promise<TablePage>;

const PAGE_SIZES = [10, 20, 50, 100];

export class TableView {
  readonly node: HTMLElement;
  private page: TablePage;
  private busy = false;
  private info: HTMLElement;
  private status: HTMLElement;
  private table: HTMLTableElement;
  private prev: HTMLButtonElement;
  private next: HTMLButtonElement;
  private size: HTMLSelectElement;

  constructor(
    first: TablePage,
    private request: PageRequest,
    caption: string,
    label: string
  ) {
    this.page = first;
    this.table = h('table', { class: 'dataask-table', 'aria-label': label });
    this.info = h('span', { class: 'dataask-table-info', 'aria-live': 'polite' });
    this.status = h('span', { class: 'dataask-table-status', role: 'status' });
    this.prev = button('‹', () => this.go(this.page.page - 1), {
      'aria-label': 'Previous page',
      title: 'Previous page'
    });
    this.next = button('›', () => this.go(this.page.page + 1), {
      'aria-label': 'Next page',
      title: 'Next page'
    });
    this.size = h('select', { class: 'dataask-page-size', 'aria-label': 'Rows per page' });
    for (const n of new Set([...PAGE_SIZES, first.page_size])) {
      this.size.append(h('option', { value: String(n) }, String(n)));
    }
    this.size.addEventListener('change', () =>
      this.fetch({ ...this.args(), page: 0, page_size: Number(this.size.value) })
    );
    const bar = h(
      'div',
      { class: 'dataask-table-bar' },
      this.info,
      this.prev,
      this.next,
      h('label', { class: 'dataask-muted' }, 'Rows per page ', this.size),
      this.status
    );
    this.node = h(
      'div',
      { class: 'dataask-table-view' },
      caption ? h('div', { class: 'dataask-caption' }, caption) : null,
      h('div', { class: 'dataask-table-scroll' }, this.table),
      bar
    );
    this.draw();
  }

  get current(): TablePage {
    return this.page;
  }

  private args() {
    const p = this.page;
    return { page: p.page, page_size: p.page_size, sort_by: p.sort_by, ascending: p.ascending };
  }

  private go(page: number): void {
    if (page >= 0 && page < this.page.pages) {
      void this.fetch({ ...this.args(), page });
    }
  }

  private sortBy(label: string): void {
    const p = this.page;
    let sort_by = label;
    let ascending = true;
    if (p.sort_by === label) {
      if (p.ascending) {
        ascending = false;
      } else {
        sort_by = ''; // third click: the original order
      }
    }
    void this.fetch({ page: 0, page_size: p.page_size, sort_by, ascending });
  }

  private async fetch(args: Parameters<PageRequest>[0]): Promise<void> {
    if (this.busy) {
      return;
    }
    this.busy = true;
    this.status.textContent = 'loading…';
    this.node.setAttribute('aria-busy', 'true');
    try {
      this.page = await this.request(args);
      this.status.textContent = '';
      this.draw();
    } catch (err) {
      this.status.textContent = errorText(err);
    } finally {
      this.busy = false;
      this.node.removeAttribute('aria-busy');
    }
  }

  private draw(): void {
    const p = this.page;
    const head = h('tr');
    for (const col of p.columns) {
      const sorted = p.sort_by === col.label;
      const arrow = sorted ? (p.ascending ? ' ▲' : ' ▼') : '';
      const th = h('th', {
        scope: 'col',
        class: [col.numeric ? 'dataask-num' : '', col.index ? 'dataask-index' : '', sorted ? 'dataask-sorted' : '']
          .filter(Boolean)
          .join(' '),
        'aria-sort': sorted ? (p.ascending ? 'ascending' : 'descending') : 'none'
      });
      th.append(
        button(col.label + arrow, () => this.sortBy(col.label), {
          class: 'dataask-sort',
          title: `Sort by ${col.label} (${col.dtype})`
        })
      );
      head.append(th);
    }
    const body = h('tbody');
    for (const row of p.rows) {
      const tr = h('tr');
      row.forEach((cell, i) => {
        const col = p.columns[i];
        const td = h('td', { class: col?.numeric ? 'dataask-num' : undefined });
        if (cell === null) {
          td.append(h('span', { class: 'dataask-null' }, '—'));
          td.title = 'missing value';
        } else {
          td.textContent = cell;
        }
        tr.append(td);
      });
      body.append(tr);
    }
    this.table.replaceChildren(h('thead', {}, head), body);
    this.info.textContent = rowsText(p);
    this.prev.disabled = p.page <= 0;
    this.next.disabled = p.page >= p.pages - 1;
    this.size.value = String(p.page_size);
  }
}
