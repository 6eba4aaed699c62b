import { describe, expect, it } from 'vitest';
import { humanSize, PanelModel, rowsText } from '../src/model';
import type { PanelState, TurnView } from '../src/protocol';

function state(over: Partial<PanelState> = {}): PanelState {
  return {
    datasets: [],
    active: null,
    turns: [],
    asking: 0,
    upload: { accept: ['.csv', '.xls', '.xlsx'], max_bytes: 1000 },
    ...over
  };
}

function turn(number: number, question = `q${number}`): TurnView {
  return {
    number,
    question,
    dataset: 'sales',
    ok: true,
    cancelled: false,
    error: null,
    code: 'result = 1',
    kind: 'json',
    seconds: 0.1,
    summary: 'int: 1',
    notes: [],
    stdout: '',
    attempts: [{ code: 'result = 1', error: null }],
    value: { type: 'headline', text: '1', noun: 'a number' }
  };
}

describe('PanelModel', () => {
  it('keeps turns in order, replaces a re-sent turn and drops turns the kernel forgot', () => {
    const m = new PanelModel();
    m.welcome(state({ turns: [1, 3] }), [turn(3), turn(1)]);
    expect(m.status).toBe('ready');
    expect(m.turns.map(t => t.number)).toEqual([1, 3]);
    m.apply({ type: 'turn', turn: turn(2) });
    m.apply({ type: 'turn', turn: turn(3, 'again') });
    expect(m.turns.map(t => t.question)).toEqual(['q1', 'q2', 'again']);
    m.apply({ type: 'state', state: state({ turns: [3] }) }); // reset in a cell, then a turn
    expect(m.turns.map(t => t.number)).toEqual([3]);
  });

  it('follows an ask: stage, streamed code, the code, errors, then done', () => {
    const m = new PanelModel();
    m.welcome(state(), []);
    m.startAsk('top 3?');
    expect(m.progress?.stage).toBe('sending the question');
    m.askAccepted('a1');
    m.apply({ type: 'event', ask: 'other', kind: 'stage', text: 'ignored', attempt: 1 });
    m.apply({ type: 'event', ask: 'a1', kind: 'stage', text: 'writing code', attempt: 1 });
    m.apply({ type: 'event', ask: 'a1', kind: 'token', text: 'result = ', attempt: 1 });
    m.apply({ type: 'event', ask: 'a1', kind: 'token', text: 'df', attempt: 1 });
    expect(m.progress?.streamed).toBe('result = df');
    m.apply({ type: 'event', ask: 'a1', kind: 'code', text: 'result = df', attempt: 1 });
    m.apply({ type: 'event', ask: 'a1', kind: 'error', text: 'KeyError', attempt: 1 });
    expect(m.progress).toMatchObject({ stage: 'writing code', code: 'result = df', streamed: '', errors: ['KeyError'] });
    m.stopping();
    m.apply({ type: 'event', ask: 'a1', kind: 'stage', text: 'running', attempt: 2 });
    expect(m.progress?.stage).toBe('stopping');
    m.apply({ type: 'ask-done', ask: 'a1', error: 'no dataset' });
    expect(m.progress).toBeNull();
    expect(m.askError).toBe('no dataset');
  });

  it('a kernel that goes away ends the progress with a message', () => {
    const m = new PanelModel();
    m.welcome(state(), []);
    m.startAsk('q');
    m.setStatus('waiting', 'the kernel is restarting');
    expect(m.progress).toBeNull();
    expect(m.askError).toMatch(/kernel went away/);
  });

  it('recalls earlier questions with Up and comes back to the draft with Down', () => {
    const m = new PanelModel();
    m.welcome(state({ turns: [1, 2] }), [turn(1, 'first'), turn(2, 'second')]);
    m.startAsk('third');
    expect(m.recallStep(1, 'draft')).toBeNull();
    expect(m.recallStep(-1, 'draft')).toBe('third');
    expect(m.recallStep(-1, 'x')).toBe('second');
    expect(m.recallStep(-1, 'x')).toBe('first');
    expect(m.recallStep(-1, 'x')).toBeNull(); // the oldest: stays
    expect(m.recallStep(1, 'x')).toBe('second');
    expect(m.recallStep(1, 'x')).toBe('third');
    expect(m.recallStep(1, 'x')).toBe('draft');
    m.startAsk('second'); // asked again: moves to the end, once
    expect(m.questions).toEqual(['first', 'third', 'second']);
  });

  it('refuses files by type and size before sending, like the kernel', () => {
    const m = new PanelModel();
    m.welcome(state(), []);
    expect(m.refusal('a.CSV', 10)).toBeNull();
    expect(m.refusal('notes.txt', 10)).toBe('notes.txt: only .csv, .xls, .xlsx files can be uploaded here');
    expect(m.refusal('big.xlsx', 5000)).toBe('big.xlsx is 4.9 KB, over the 1000 bytes upload cap');
  });

  it('tracks uploads and keeps only those in flight when a new batch starts', () => {
    const m = new PanelModel();
    let changes = 0;
    m.onChange(() => changes++);
    const a = m.upload('a.csv');
    const b = m.upload('b.csv');
    m.uploadStatus(a, 'error', 'bad');
    m.uploadStatus(b, 'loading', 'reading b.csv…');
    m.dismissUploads();
    expect(m.uploads.map(u => u.name)).toEqual(['b.csv']);
    expect(changes).toBe(5);
  });

  it('a new notebook starts empty', () => {
    const m = new PanelModel();
    m.welcome(state({ datasets: [] }), [turn(1)]);
    m.clear('other.ipynb');
    expect(m.turns).toEqual([]);
    expect(m.notebook).toBe('other.ipynb');
  });
});

describe('formatting', () => {
  it('sizes and row ranges', () => {
    expect(humanSize(512)).toBe('512 bytes');
    expect(humanSize(256 * 1024 * 1024)).toBe('256.0 MB');
    expect(rowsText({ page: 0, page_size: 10, total_rows: 1_000_000 })).toBe('Rows 1–10 of 1,000,000');
    expect(rowsText({ page: 1, page_size: 10, total_rows: 12 })).toBe('Rows 11–12 of 12');
    expect(rowsText({ page: 0, page_size: 10, total_rows: 0 })).toBe('No rows');
  });
});
