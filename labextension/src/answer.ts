// One turn of the conversation, rendered: the question, the value (table pages, plotly chart,
// headline), or the failure in one line with the failing code; the code folded with
// "Copy code" and "Insert code below"; export buttons that download the file.

import { button, errorText, h } from './dom';
import type { TablePage, TurnView } from './protocol';
import { TableView } from './table';

export const EXPORT_FORMATS = ['csv', 'json', 'xlsx', 'png'] as const;

export interface AnswerActions {
  page(turn: number, table: number, args: Record<string, any>): Promise<TablePage>;
  chart(turn: number): Promise<any>;
  renderFigure(host: HTMLElement, figure: any): Promise<void>;
  exportFile(turn: number, format: string): Promise<string>;
  copy(code: string): Promise<boolean>;
  insert(code: string): string;
}

export class AnswerView {
  readonly node: HTMLElement;
  private status: HTMLElement;

  constructor(
    readonly turn: TurnView,
    private actions: AnswerActions
  ) {
    const t = turn;
    this.status = h('div', { class: 'dataask-answer-status', role: 'status', 'aria-live': 'polite' });
    const meta = [t.dataset ? `from ${t.dataset}` : '', t.seconds >= 0.05 ? `${t.seconds.toFixed(1)} s` : '']
      .concat(t.attempts.length > 1 ? [`${t.attempts.length} attempts`] : [])
      .filter(Boolean)
      .join(' · ');
    this.node = h(
      'article',
      {
        class: 'dataask-answer' + (t.ok ? '' : ' dataask-failed'),
        'data-turn': String(t.number),
        'aria-label': `Answer ${t.number}: ${t.question}`
      },
      h(
        'header',
        { class: 'dataask-question' },
        h('span', { class: 'dataask-turn-number' }, `[${t.number}]`),
        ' ',
        h('span', { class: 'dataask-question-text' }, t.question)
      ),
      meta ? h('div', { class: 'dataask-muted dataask-meta' }, meta) : null,
      this.body(),
      t.stdout.trim()
        ? h('details', { class: 'dataask-stdout' }, h('summary', {}, 'Printed output'), h('pre', {}, t.stdout))
        : null,
      t.code ? this.codeBlock() : null,
      t.ok && t.value && t.value.type !== 'none' ? this.exportBar() : null,
      this.status
    );
  }

  private say(text: string): void {
    this.status.textContent = text;
  }

  private body(): HTMLElement {
    const t = this.turn;
    if (!t.ok || !t.value) {
      const head = t.cancelled ? 'Stopped' : 'Could not answer';
      return h(
        'div',
        { class: 'dataask-error' },
        h('strong', {}, `${head}: `),
        t.cancelled ? 'the question was cancelled.' : t.error ?? ''
      );
    }
    const v = t.value;
    switch (v.type) {
      case 'tables': {
        const box = h('div', { class: 'dataask-tables' });
        v.tables.forEach((tb, i) => {
          const view = new TableView(
            tb.page,
            args => this.actions.page(t.number, i, args),
            tb.caption,
            `Table of answer ${t.number}` + (tb.caption ? `: ${tb.caption}` : '')
          );
          box.append(view.node);
        });
        if (!v.chartable) {
          return box;
        }
        const chartBox = h('div', { class: 'dataask-chart', hidden: true });
        const toggle = button('Chart', () => void this.toggleChart(toggle, box, chartBox), {
          class: 'dataask-button dataask-chart-toggle',
          'aria-pressed': 'false',
          title: 'Show this answer as a chart'
        });
        return h('div', {}, h('div', { class: 'dataask-view-bar' }, toggle), box, chartBox);
      }
      case 'figure': {
        const host = h('div', { class: 'dataask-chart' });
        this.actions.renderFigure(host, v.figure).catch(err => this.say(errorText(err)));
        return host;
      }
      case 'image':
        return h('img', {
          class: 'dataask-image',
          src: `data:image/png;base64,${v.png}`,
          alt: `Chart for: ${t.question}`
        });
      case 'headline':
        return h(
          'div',
          {},
          h('div', { class: 'dataask-headline' }, v.text),
          h('div', { class: 'dataask-muted' }, v.noun)
        );
      default:
        return h('div', { class: 'dataask-muted' }, v.text);
    }
  }

  private async toggleChart(toggle: HTMLButtonElement, table: HTMLElement, chart: HTMLElement): Promise<void> {
    const showChart = toggle.getAttribute('aria-pressed') !== 'true';
    toggle.setAttribute('aria-pressed', String(showChart));
    toggle.textContent = showChart ? 'Table' : 'Chart';
    toggle.title = showChart ? 'Show this answer as a table' : 'Show this answer as a chart';
    table.hidden = showChart;
    chart.hidden = !showChart;
    if (showChart && !chart.childElementCount) {
      try {
        this.say('drawing the chart…');
        await this.actions.renderFigure(chart, await this.actions.chart(this.turn.number));
        this.say('');
      } catch (err) {
        this.say(errorText(err));
      }
    }
  }

  private codeBlock(): HTMLElement {
    const t = this.turn;
    const details = h(
      'details',
      { class: 'dataask-code', open: !t.ok },
      h('summary', {}, t.ok ? 'Code' : 'Code that failed'),
      h('pre', {}, h('code', {}, t.code))
    );
    const copy = button('Copy code', async () => {
      const ok = await this.actions.copy(t.code);
      this.say(ok ? 'Code copied.' : 'Could not copy: select the code and copy it.');
    }, { title: 'Copy the code to the clipboard' });
    const insert = button('Insert code below', () => this.say(this.actions.insert(t.code)), {
      title: 'Insert the code as a new cell below the active cell of the notebook (not run)'
    });
    return h('div', { class: 'dataask-code-block' }, details, h('div', { class: 'dataask-toolbar' }, copy, insert));
  }

  private exportBar(): HTMLElement {
    const bar = h('div', { class: 'dataask-toolbar dataask-export', role: 'group', 'aria-label': 'Export' });
    bar.append(h('span', { class: 'dataask-muted' }, 'Export:'));
    for (const fmt of EXPORT_FORMATS) {
      const b = button(fmt.toUpperCase(), async () => {
        b.disabled = true;
        this.say(`writing ${fmt.toUpperCase()}…`);
        try {
          this.say(await this.actions.exportFile(this.turn.number, fmt));
        } catch (err) {
          this.say(errorText(err));
        } finally {
          b.disabled = false;
        }
      }, { title: `Download this answer as ${fmt.toUpperCase()}` });
      bar.append(b);
    }
    return bar;
  }
}
