/**
 * The sidebar panel: deployed functions, an invoke form, pending human tasks, recent
 * executions and a status line, refreshed by a Poll (3 s, backing off to 60 s on errors,
 * standing by while the panel or the page is hidden).
 *
 * Plain DOM inside a Lumino Widget. The DOM carries a contract used by end-to-end tests
 * (data-testid / data-* attributes, `.fnb-col-*` cells, `[data-field]` detail values); keep
 * it stable.
 *
 * Narrow first: at the sidebar's default width (~250 px) a function row is its name (one line,
 * an ellipsis and the full name on hover), its calls and its last status; wider panels (a
 * container query) add the language and p50. Everything else is in the row's detail (click
 * the row): versions, signature, errors and caller mistakes, p50/p95/p99, the last error and
 * the breaker (the server's own, and the newest transition any process recorded, e.g. a
 * kernel's). The numbers are the ones functions_nb/history_queries.py defines.
 */
import { IPoll, Poll } from '@lumino/polling';
import { Message } from '@lumino/messaging';
import { Widget } from '@lumino/widgets';

import {
  Api,
  ApiError,
  IBreakerTransition,
  IExecutionRow,
  IFunctionRow,
  IInvokeReply,
  ISummary,
  ITaskRow
} from './api';

/** The panel's widget id (part of the DOM contract). */
export const PANEL_ID = 'functions-nb-sidebar';

const POLL_INTERVAL = 3000;
const POLL_MAX = 60000;
const RECENT = 20;

/** What a detail field counts (functions_nb/history_queries.py), shown on hover. */
const HINTS: Record<string, string> = {
  dependencies: 'packages pinned when this version was deployed (name version), from the store, never re-resolved',
  calls: 'calls that ended (not skipped tiers, not pending human tasks), caller mistakes excluded; rejected calls count. Errors: calls not ok',
  caller_errors: "bad arguments, unknown function or version: the function did not run; not the function's errors",
  latency: 'over the calls that ran (all tiers), not the rejected ones',
  last: 'the newest call across tiers',
  breaker: "this server's breaker of the latest version",
  breaker_last: 'the newest breaker transition any process on the store recorded (a kernel, this server, a CLI)'
};

type Attrs = Record<string, string | boolean | number | null | undefined>;
type Child = Node | string | null | undefined | false;

/** Create an element with attributes (`class`, `data-*`, ...) and children. */
function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Attrs = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) {
      continue;
    }
    node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) {
      continue;
    }
    node.append(child);
  }
  return node;
}

function pad(n: number): string {
  return String(n).padStart(2, '0');
}

/** HH:MM:SS in local time. */
export function clock(date: Date): string {
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** A server timestamp (ISO text, naive ones are UTC; or epoch seconds / ms) as a Date. */
export function parseTime(value: unknown): Date | null {
  if (value === null || value === undefined || value === '') {
    return null;
  }
  let date: Date;
  if (typeof value === 'number') {
    date = new Date(value > 1e12 ? value : value * 1000);
  } else {
    let text = String(value).trim();
    if (/^\d{4}-\d\d-\d\d[T ]\d\d:\d\d/.test(text) && !/(Z|[+-]\d\d:?\d\d)$/i.test(text)) {
      text = text.replace(' ', 'T') + 'Z';
    }
    date = new Date(text);
  }
  return Number.isNaN(date.getTime()) ? null : date;
}

/** Milliseconds, compact. */
export function formatMs(ms: unknown): string {
  if (typeof ms !== 'number' || !Number.isFinite(ms)) {
    return '—';
  }
  if (ms < 10) {
    return ms.toFixed(2);
  }
  if (ms < 100) {
    return ms.toFixed(1);
  }
  return String(Math.round(ms));
}

/** A share as a percentage with one decimal. */
export function formatRate(rate: unknown): string {
  return typeof rate === 'number' && Number.isFinite(rate) ? `${(rate * 100).toFixed(1)}%` : '—';
}

/** A server time as HH:MM:SS (local), or a dash. */
function timeText(value: unknown): string {
  const when = parseTime(value);
  return when ? clock(when) : '—';
}

/** Who made a recorded breaker transition: `server`, or e.g. `kernel host:pid`. */
export function transitionOwner(t: IBreakerTransition): string {
  return t.server ? 'server' : `${t.process || 'process'} ${t.host}:${t.pid}`;
}

/**
 * The breaker state a function row shows, and whose it is: the server's own breaker when it
 * is not closed, else another process's (a kernel's) newest recorded transition when that
 * left it not closed, else closed.
 */
export function shownBreaker(fn: IFunctionRow): { state: string; owner: string; title: string } {
  const own = String(fn.breaker || 'closed');
  if (own !== 'closed') {
    return { state: own, owner: 'server', title: `the server's breaker of v${fn.version} is ${own}` };
  }
  const last = fn.breaker_last;
  if (last && !last.server && last.state !== 'closed') {
    return {
      state: last.state,
      owner: last.process || 'process',
      title: `${transitionOwner(last)}: ${last.breaker} ${last.state.replace('_', '-')} since ${timeText(last.at)} (${last.why})`
    };
  }
  return { state: 'closed', owner: 'server', title: "the server's breaker is closed" };
}

/** Pretty JSON text of any value (undefined shows as null). */
export function jsonText(value: unknown, indent = 2): string {
  try {
    const text = JSON.stringify(value === undefined ? null : value, null, indent);
    return text === undefined ? String(value) : text;
  } catch {
    return String(value);
  }
}

/** Parse a JSON text field; empty gives `empty`. Returns the value or an error message. */
export function parseJsonField(
  text: string,
  kind: 'array' | 'object' | 'any',
  empty: unknown
): { ok: true; value: unknown } | { ok: false; message: string } {
  const trimmed = text.trim();
  if (!trimmed) {
    return { ok: true, value: empty };
  }
  let value: unknown;
  try {
    value = JSON.parse(trimmed);
  } catch (err) {
    return { ok: false, message: `not valid JSON: ${(err as Error).message}` };
  }
  if (kind === 'array' && !Array.isArray(value)) {
    return { ok: false, message: 'must be a JSON array, e.g. [1, 2]' };
  }
  if (kind === 'object' && (value === null || typeof value !== 'object' || Array.isArray(value))) {
    return { ok: false, message: 'must be a JSON object, e.g. {"start_tier": "human"}' };
  }
  return { ok: true, value };
}

function errorText(err: unknown): string {
  if (err instanceof ApiError) {
    let text = `${err.code}: ${err.message}`;
    if (err.status === 404 && err.code === 'http_404') {
      text += ' (is the functions_nb server extension enabled?)';
    }
    return text;
  }
  return err instanceof Error ? err.message : String(err);
}

function statusClass(status: string | null | undefined): string {
  const s = (status || '').toLowerCase();
  if (s === 'ok' || s === 'answered' || s === 'approved') {
    return 'fnb-ok';
  }
  if (s === 'pending' || s === 'skipped' || s === 'running') {
    return 'fnb-warn';
  }
  return s ? 'fnb-error' : '';
}

export class FunctionsPanel extends Widget {
  constructor(api: Api = new Api()) {
    super();
    this._api = api;
    this.id = PANEL_ID;
    this.addClass('fnb-panel');
    this.node.append(this._build());

    this._poll = new Poll<ISummary | void, unknown, 'standby'>({
      name: 'functions-nb:summary',
      factory: () => this._refresh(),
      frequency: { interval: POLL_INTERVAL, backoff: true, max: POLL_MAX },
      standby: () => this._loaded && (!this.isVisible || document.hidden),
      auto: true
    });
    this._poll.ticked.connect((_, state) => this._onTick(state), this);
  }

  /** The panel's poll (exposed for tests and the command). */
  get poll(): Poll<ISummary | void, unknown, 'standby'> {
    return this._poll;
  }

  /** Refresh now (also what the Refresh button does). */
  refresh(): Promise<void> {
    return this._poll.refresh();
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    this._poll.dispose();
    super.dispose();
  }

  protected onAfterShow(msg: Message): void {
    super.onAfterShow(msg);
    // Fresh data when the panel opens, unless a request has just started anyway.
    if (Date.now() - this._lastFetch > 1000) {
      void this._poll.refresh();
    }
  }

  // -- building -------------------------------------------------------------------------

  private _build(): HTMLElement {
    const refresh = h(
      'button',
      { type: 'button', class: 'fnb-button', 'data-action': 'refresh', title: 'Refresh now' },
      'Refresh'
    );
    refresh.addEventListener('click', () => void this.refresh());
    this._statusNode = h(
      'div',
      { class: 'fnb-statusline', 'data-testid': 'fnb-status', role: 'status', 'data-state': 'loading' },
      'loading…'
    );

    this._functionsBody = h('tbody');
    this._functionsEmpty = h('div', { class: 'fnb-empty' }, 'No functions deployed yet.');
    const functionsTable = h(
      'table',
      { class: 'fnb-table', 'data-testid': 'fnb-functions' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          h('th', { class: 'fnb-col-name' }, 'name'),
          h('th', { class: 'fnb-col-language fnb-wide' }, 'lang'),
          h(
            'th',
            { class: 'fnb-col-count fnb-num', title: 'calls: ended, not caller mistakes; rejected calls count' },
            'calls'
          ),
          h('th', { class: 'fnb-col-p50 fnb-num fnb-wide', title: 'median duration of calls that ran (all tiers), ms' }, 'p50 ms'),
          h('th', { class: 'fnb-col-status', title: 'status of the newest call (all tiers)' }, 'last')
        )
      ),
      this._functionsBody
    );

    this._recentBody = h('tbody');
    this._recentEmpty = h('div', { class: 'fnb-empty' }, 'No executions yet.');
    const recentTable = h(
      'table',
      { class: 'fnb-table', 'data-testid': 'fnb-recent' },
      h(
        'thead',
        {},
        h(
          'tr',
          {},
          h('th', { class: 'fnb-col-time' }, 'time'),
          h('th', { class: 'fnb-col-function' }, 'function'),
          h('th', { class: 'fnb-col-tier fnb-wide' }, 'tier'),
          h('th', { class: 'fnb-col-status' }, 'status'),
          h('th', { class: 'fnb-col-duration fnb-num' }, 'ms')
        )
      ),
      this._recentBody
    );

    this._tasksNode = h('div', { class: 'fnb-tasks', 'data-testid': 'fnb-tasks' });
    this._tasksEmpty = h('div', { class: 'fnb-empty' }, 'No pending tasks.');
    this._tasksCount = h('span', { class: 'fnb-count' });

    return h(
      'div',
      { class: 'fnb-content' },
      h(
        'div',
        { class: 'fnb-header' },
        h('h2', { class: 'fnb-title' }, 'Functions'),
        refresh
      ),
      this._statusNode,
      h(
        'section',
        { class: 'fnb-section' },
        h('h3', {}, 'Deployed'),
        h('div', { class: 'fnb-table-wrap' }, functionsTable),
        this._functionsEmpty
      ),
      h('section', { class: 'fnb-section' }, h('h3', {}, 'Invoke'), this._buildInvoke()),
      h(
        'section',
        { class: 'fnb-section' },
        h('h3', {}, 'Pending human tasks ', this._tasksCount),
        this._tasksNode,
        this._tasksEmpty
      ),
      h(
        'section',
        { class: 'fnb-section' },
        h('h3', {}, 'Recent executions'),
        h('div', { class: 'fnb-table-wrap' }, recentTable),
        this._recentEmpty
      )
    );
  }

  private _buildInvoke(): HTMLElement {
    this._select = h('select', { name: 'function', class: 'fnb-input', 'aria-label': 'function' });
    this._select.append(h('option', { value: '' }, '(no functions)'));
    this._select.disabled = true;
    this._select.addEventListener('change', () => this._showSignature());
    this._signature = h('div', { class: 'fnb-signature fnb-mono', 'data-testid': 'fnb-signature' });
    this._args = h('input', {
      name: 'args',
      type: 'text',
      class: 'fnb-input fnb-mono',
      placeholder: '[1, 2]',
      spellcheck: 'false',
      autocomplete: 'off',
      'aria-label': 'arguments (JSON array)'
    });
    this._options = h('input', {
      name: 'options',
      type: 'text',
      class: 'fnb-input fnb-mono',
      placeholder: '{"start_tier": "human"} (optional)',
      spellcheck: 'false',
      autocomplete: 'off',
      'aria-label': 'options (JSON object, optional)'
    });
    this._argsError = h('div', { class: 'fnb-field-error', 'data-for': 'args', hidden: true });
    this._optionsError = h('div', { class: 'fnb-field-error', 'data-for': 'options', hidden: true });
    this._invokeButton = h('button', { type: 'submit', class: 'fnb-button fnb-button-accept' }, 'Invoke');
    this._result = h('div', { class: 'fnb-result', 'data-testid': 'fnb-invoke-result', hidden: true });

    const form = h(
      'form',
      { class: 'fnb-form', 'data-testid': 'fnb-invoke', novalidate: true },
      h('label', { class: 'fnb-field' }, h('span', { class: 'fnb-label' }, 'function'), this._select),
      this._signature,
      h('label', { class: 'fnb-field' }, h('span', { class: 'fnb-label' }, 'args'), this._args),
      this._argsError,
      h('label', { class: 'fnb-field' }, h('span', { class: 'fnb-label' }, 'options'), this._options),
      this._optionsError,
      h('div', { class: 'fnb-actions' }, this._invokeButton)
    );
    form.addEventListener('submit', event => {
      event.preventDefault();
      void this._invoke();
    });
    for (const input of [this._args, this._options]) {
      input.addEventListener('input', () => this._clearFieldError(input));
    }
    return h('div', {}, form, this._result);
  }

  // -- polling --------------------------------------------------------------------------

  private async _refresh(): Promise<ISummary> {
    const seq = ++this._seq;
    this._lastFetch = Date.now();
    try {
      const summary = await this._api.summary(RECENT);
      if (seq === this._seq && !this.isDisposed) {
        this._render(summary);
        await this._follow(summary.tasks);
      }
      return summary;
    } finally {
      this._loaded = true;
    }
  }

  private _onTick(state: IPoll.State<ISummary | void, unknown, 'standby'>): void {
    if (this.isDisposed) {
      return;
    }
    if (state.phase === 'resolved' || state.phase === 'reconnected') {
      this._setStatus('ok', `updated ${clock(new Date())}`);
      return;
    }
    if (state.phase !== 'rejected') {
      return;
    }
    const err = state.payload;
    // Honour Retry-After (429 rate limit, 503 store unavailable): wait at least that long.
    if (err instanceof ApiError && err.retryAfter !== null) {
      const wanted = Math.min(Poll.MAX_INTERVAL, Math.ceil(err.retryAfter * 1000));
      if (state.interval < wanted) {
        const current = state;
        void Promise.resolve().then(() =>
          this._poll.schedule({
            interval: wanted,
            payload: err,
            phase: 'rejected',
            cancel: now => now !== current
          })
        );
        return;
      }
    }
    const at = new Date(state.timestamp + state.interval);
    const secs = Math.max(1, Math.round(state.interval / 1000));
    this._setStatus('error', `error: ${errorText(err)} — retrying in ${secs} s (${clock(at)})`);
  }

  private _setStatus(state: 'ok' | 'error' | 'loading', text: string): void {
    this._statusNode.dataset.state = state;
    this._statusNode.textContent = text;
    this._statusNode.title = text;
  }

  // -- rendering ------------------------------------------------------------------------

  private _render(summary: ISummary): void {
    this._renderFunctions(summary.functions);
    this._renderTasks(summary.tasks);
    this._renderRecent(summary.recent);
  }

  private _renderFunctions(functions: IFunctionRow[]): void {
    const key = JSON.stringify(functions);
    if (key === this._functionsKey) {
      return;
    }
    this._functionsKey = key;
    this._functions = functions;
    this._renderFunctionRows();

    // The invoke form's select: keep the user's choice when it still exists.
    const previous = this._select.value;
    const names = functions.map(fn => fn.name);
    this._signatures = new Map(functions.map(fn => [fn.name, fn.signature || fn.name]));
    if (names.length === 0) {
      this._select.replaceChildren(h('option', { value: '' }, '(no functions)'));
      this._select.disabled = true;
      this._showSignature();
      return;
    }
    this._select.replaceChildren(
      ...functions.map(fn => h('option', { value: fn.name }, `${fn.name} (${fn.language})`))
    );
    this._select.disabled = false;
    this._select.value = names.includes(previous) ? previous : names[0];
    this._showSignature();
  }

  private _renderFunctionRows(): void {
    const rows: HTMLElement[] = [];
    for (const fn of this._functions) {
      const expanded = this._expanded.has(fn.name);
      const breaker = shownBreaker(fn);
      const expand = h(
        'button',
        {
          type: 'button',
          class: 'fnb-expand',
          'aria-expanded': expanded ? 'true' : 'false',
          'aria-label': `details of ${fn.name}`,
          title: expanded ? 'hide details' : 'show details'
        },
        expanded ? '▾' : '▸'
      );
      const badge =
        breaker.state === 'closed'
          ? null
          : h(
              'span',
              {
                class: `fnb-badge fnb-badge-${breaker.state.replace(/[^a-z_]/gi, '')}`,
                'data-breaker': breaker.state,
                'data-breaker-owner': breaker.owner,
                title: breaker.title
              },
              `${breaker.owner} ${breaker.state.replace('_', '-')}`
            );
      const row = h(
        'tr',
        {
          'data-function': fn.name,
          'data-breaker': breaker.state,
          'aria-expanded': expanded ? 'true' : 'false'
        },
        h(
          'td',
          { class: 'fnb-col-name' },
          h('div', { class: 'fnb-name' }, expand, h('span', { class: 'fnb-name-text', title: fn.name }, fn.name), badge)
        ),
        h('td', { class: 'fnb-col-language fnb-wide' }, fn.language || ''),
        h(
          'td',
          {
            class: 'fnb-col-count fnb-num',
            title: `${fn.count} calls, ${fn.errors} errors, ${fn.caller_errors ?? 0} caller mistakes`
          },
          String(fn.count ?? 0)
        ),
        h('td', { class: 'fnb-col-p50 fnb-num fnb-wide' }, formatMs(fn.p50)),
        h(
          'td',
          {
            class: `fnb-col-status ${statusClass(fn.last_status)}`,
            title: fn.last_at ? `newest call at ${timeText(fn.last_at)}` : 'no calls yet'
          },
          fn.last_status || '—'
        )
      );
      row.addEventListener('click', () => {
        this._select.value = fn.name;
        this._showSignature();
        if (this._expanded.has(fn.name)) {
          this._expanded.delete(fn.name);
        } else {
          this._expanded.add(fn.name);
        }
        this._renderFunctionRows();
      });
      rows.push(row);
      if (expanded) {
        rows.push(this._detailRow(fn));
      }
    }
    this._functionsBody.replaceChildren(...rows);
    this._functionsEmpty.hidden = this._functions.length > 0;
  }

  /** A function's detail: what does not fit in its row. */
  private _detailRow(fn: IFunctionRow): HTMLElement {
    const list = h('dl', { class: 'fnb-detail-list' });
    const item = (field: string, label: string, ...value: Child[]) => {
      list.append(h('dt', { title: HINTS[field] ?? null }, label), h('dd', { 'data-field': field }, ...value));
    };
    item('version', 'version', `v${fn.version} of ${fn.versions ?? 1}`, h('span', { class: 'fnb-muted' }, ` · ${fn.language}`));
    item('signature', 'signature', h('span', { class: 'fnb-mono' }, fn.signature || fn.name));
    if (fn.dependencies && fn.dependencies.length) {
      item('dependencies', 'packages', h('span', { class: 'fnb-mono' }, fn.dependencies.join(', ')));
    }
    item(
      'calls',
      'calls',
      `${fn.count ?? 0} · ${fn.errors ?? 0} errors (${formatRate(fn.error_rate)})`
    );
    item('caller_errors', 'caller mistakes', `${fn.caller_errors ?? 0}`);
    item(
      'latency',
      'latency',
      `p50 ${formatMs(fn.p50)} · p95 ${formatMs(fn.p95)} · p99 ${formatMs(fn.p99)} ms`
    );
    item(
      'last',
      'last call',
      fn.last_status ? h('span', { class: statusClass(fn.last_status) }, fn.last_status) : '—',
      fn.last_at ? ` at ${timeText(fn.last_at)}` : ''
    );
    const error = fn.last_error;
    if (error) {
      item(
        'last_error',
        error.caller ? 'last mistake' : 'last error',
        h(
          'span',
          { class: error.caller ? 'fnb-warn' : 'fnb-error' },
          [error.kind, error.message].filter(Boolean).join(': ') || error.status
        ),
        h('span', { class: 'fnb-muted' }, ` · ${error.tier} · ${timeText(error.at)}${error.caller ? ' · caller mistake' : ''}`)
      );
    }
    const own = String(fn.breaker || 'closed');
    item(
      'breaker',
      'breaker',
      h('span', { class: `fnb-badge fnb-badge-${own.replace(/[^a-z_]/gi, '')}` }, own.replace('_', '-')),
      h('span', { class: 'fnb-muted' }, " the server's")
    );
    const last = fn.breaker_last;
    item(
      'breaker_last',
      'transition',
      last
        ? `${last.from.replace('_', '-')} → ${last.state.replace('_', '-')} (${last.breaker}) by ${transitionOwner(last)} at ${timeText(last.at)}: ${last.why}`
        : h('span', { class: 'fnb-muted' }, 'none recorded by any process')
    );
    return h(
      'tr',
      { class: 'fnb-detail', 'data-detail-for': fn.name },
      h('td', { colspan: 5 }, list)
    );
  }

  /** The chosen function's signature under the select: what the args array must hold. */
  private _showSignature(): void {
    const text = this._signatures.get(this._select.value) ?? '';
    this._signature.textContent = text;
    this._signature.title = text;
    this._signature.hidden = !text;
  }

  private _renderTasks(tasks: ITaskRow[]): void {
    const seen = new Set<string>();
    const listed = new Set(tasks.map(task => String(task.task_id)));
    for (const id of this._answered) {
      if (!listed.has(id)) {
        this._answered.delete(id); // the server no longer lists it: forget it
      }
    }
    for (const task of tasks) {
      const id = String(task.task_id);
      if (this._answered.has(id)) {
        continue; // answered here; a summary fetched before the answer may still list it
      }
      seen.add(id);
      if (!this._taskNodes.has(id)) {
        const node = this._buildTask(task);
        this._taskNodes.set(id, node);
        this._tasksNode.append(node);
      }
    }
    for (const [id, node] of this._taskNodes) {
      if (!seen.has(id)) {
        node.remove();
        this._taskNodes.delete(id);
      }
    }
    this._tasksEmpty.hidden = this._taskNodes.size > 0;
    this._tasksCount.textContent = this._taskNodes.size ? `(${this._taskNodes.size})` : '';
  }

  private _buildTask(task: ITaskRow): HTMLElement {
    const id = String(task.task_id);
    const input = task.args !== undefined ? task.args : task.input;
    const failed = task.failed || task.error;
    const details = h('dl', { class: 'fnb-task-details' });
    const detail = (label: string, value: Child, cls = '') => {
      details.append(h('dt', {}, label), h('dd', { class: cls }, value));
    };
    detail('input', jsonText(input, 0), 'fnb-mono');
    if (failed) {
      detail('failed', String(failed), 'fnb-error');
    }
    if (task.question) {
      detail('question', String(task.question));
    }
    if (task.proposed !== undefined && task.proposed !== null) {
      detail('proposed', jsonText(task.proposed, 0), 'fnb-mono');
    }
    if (task.result_type) {
      detail('returns', String(task.result_type), 'fnb-mono');
    }
    if (task.deadline) {
      const when = parseTime(task.deadline);
      detail('deadline', when ? `${when.toLocaleDateString()} ${clock(when)}` : String(task.deadline));
    }

    const value = h('input', {
      name: 'value',
      type: 'text',
      class: 'fnb-input fnb-mono',
      placeholder: 'value (JSON)',
      spellcheck: 'false',
      autocomplete: 'off',
      'aria-label': 'answer value (JSON)'
    });
    const why = h('input', {
      name: 'why',
      type: 'text',
      class: 'fnb-input',
      placeholder: 'why (optional)',
      autocomplete: 'off',
      'aria-label': 'why'
    });
    const error = h('div', { class: 'fnb-field-error', hidden: true });
    const button = (action: string, label: string, cls: string) =>
      h('button', { type: 'button', class: `fnb-button ${cls}`, 'data-action': action }, label);
    const answer = button('answer', 'Answer', 'fnb-button-accept');
    const approve = button('approve', 'Approve', '');
    const reject = button('reject', 'Reject', 'fnb-button-warn');
    const buttons = [answer, approve, reject];

    const node = h(
      'div',
      { class: 'fnb-task', 'data-task-id': id },
      h(
        'div',
        { class: 'fnb-task-head' },
        h('span', { class: 'fnb-task-function' }, task.function || '?'),
        h('span', { class: 'fnb-task-id', title: id }, id)
      ),
      details,
      h('label', { class: 'fnb-field' }, h('span', { class: 'fnb-label' }, 'value'), value),
      h('label', { class: 'fnb-field' }, h('span', { class: 'fnb-label' }, 'why'), why),
      error,
      h('div', { class: 'fnb-actions' }, ...buttons)
    );

    const send = async (decision: 'value' | 'approve' | 'reject') => {
      error.hidden = true;
      value.removeAttribute('aria-invalid');
      const body: { decision: 'value' | 'approve' | 'reject'; value?: unknown; why?: string } = {
        decision
      };
      if (decision === 'value') {
        if (!value.value.trim()) {
          this._showError(error, value, 'enter a value (JSON), e.g. 42 or "text"');
          return;
        }
        const parsed = parseJsonField(value.value, 'any', null);
        if (!parsed.ok) {
          this._showError(error, value, `value ${parsed.message}`);
          return;
        }
        body.value = parsed.value;
      }
      if (why.value.trim()) {
        body.why = why.value.trim();
      }
      buttons.forEach(b => (b.disabled = true));
      node.setAttribute('aria-busy', 'true');
      try {
        await this._api.answer(id, body);
        this._answered.add(id);
        node.remove();
        this._taskNodes.delete(id);
        this._tasksEmpty.hidden = this._taskNodes.size > 0;
        this._tasksCount.textContent = this._taskNodes.size ? `(${this._taskNodes.size})` : '';
      } catch (err) {
        this._showError(error, null, errorText(err));
      } finally {
        buttons.forEach(b => (b.disabled = false));
        node.removeAttribute('aria-busy');
        void this._poll.refresh();
      }
    };
    answer.addEventListener('click', () => void send('value'));
    approve.addEventListener('click', () => void send('approve'));
    reject.addEventListener('click', () => void send('reject'));
    value.addEventListener('keydown', event => {
      if (event.key === 'Enter') {
        event.preventDefault();
        void send('value');
      }
    });
    return node;
  }

  private _renderRecent(recent: IExecutionRow[]): void {
    const key = JSON.stringify(recent.map(r => [r.id, r.status, r.duration_ms]));
    if (key === this._recentKey) {
      return;
    }
    this._recentKey = key;
    const rows = recent.map(run => {
      const when = parseTime(run.started_at);
      const name = run.version === null || run.version === undefined ? run.function : `${run.function}@${run.version}`;
      const problem = [run.error_kind, run.error_message].filter(Boolean).join(': ');
      return h(
        'tr',
        { 'data-execution-id': run.id, title: [`tier ${run.tier || 'code'}`, problem || run.id].join(' · ') },
        h(
          'td',
          { class: 'fnb-col-time', title: when ? when.toISOString() : String(run.started_at ?? '') },
          when ? clock(when) : '—'
        ),
        h('td', { class: 'fnb-col-function' }, h('span', { class: 'fnb-name-text', title: name }, name)),
        h('td', { class: 'fnb-col-tier fnb-wide' }, run.tier || 'code'),
        h('td', { class: `fnb-col-status ${statusClass(run.status)}` }, run.status || ''),
        h('td', { class: 'fnb-col-duration fnb-num' }, formatMs(run.duration_ms))
      );
    });
    this._recentBody.replaceChildren(...rows);
    this._recentEmpty.hidden = recent.length > 0;
  }

  // -- following a pending invoke ----------------------------------------------------------

  /**
   * The sidebar's own pending invoke: once its task has left the pending list (answered here,
   * in a notebook, the CLI, or expired), read it and show the answer or the rejection.
   */
  private async _follow(pendingTasks: ITaskRow[]): Promise<void> {
    const pending = this._pending;
    if (!pending || pendingTasks.some(t => String(t.task_id) === pending.taskId)) {
      return;
    }
    let task: ITaskRow | undefined;
    try {
      task = (await this._api.tasks('all')).find(t => String(t.task_id) === pending.taskId);
    } catch {
      return; // the next poll tries again
    }
    if (!task || task.status === 'pending' || this._pending !== pending) {
      return;
    }
    this._pending = null;
    this._showOutcome(pending.name, task);
  }

  private _showOutcome(name: string, task: ITaskRow): void {
    const who = task.who || '?';
    const why = task.why ? ` (${task.why})` : '';
    const meta = (text: string) =>
      h('div', { class: 'fnb-result-meta', title: `task ${task.task_id}` }, `${name}: ${text}`);
    const value = (v: unknown) => h('pre', { class: 'fnb-result-value fnb-mono' }, jsonText(v));
    const decision = task.decision || task.status;
    if (decision === 'value') {
      this._showResult('ok', meta(`status ok · tier human · answered by ${who}${why}`), value(task.value));
    } else if (decision === 'approve') {
      this._showResult('ok', meta(`status ok · tier human · approved by ${who}${why}`), value(task.proposed));
    } else if (decision === 'reject') {
      this._showResult(
        'error',
        h('div', { class: 'fnb-result-error' }, `rejected by ${who}: ${task.why || 'no reason given'}`),
        meta('tier human')
      );
    } else if (decision === 'withdrawn') {
      this._showResult('error', h('div', { class: 'fnb-result-error' }, `withdrawn: ${task.why || ''}`), meta('tier human'));
    } else if (task.timeout_outcome === 'approve') {
      this._showResult('ok', meta('status ok · tier human · no answer in time: the proposed value'), value(task.proposed));
    } else if (task.timeout_outcome === 'default_value') {
      this._showResult('ok', meta('status ok · tier human · no answer in time: the default value'));
    } else {
      this._showResult(
        'error',
        h('div', { class: 'fnb-result-error' }, `timeout: no answer in time (task ${task.task_id})`),
        meta('tier human')
      );
    }
  }

  // -- invoking -------------------------------------------------------------------------

  private _showError(node: HTMLElement, input: HTMLInputElement | null, message: string): void {
    node.textContent = message;
    node.hidden = false;
    if (input) {
      input.setAttribute('aria-invalid', 'true');
    }
  }

  private _clearFieldError(input: HTMLInputElement): void {
    input.removeAttribute('aria-invalid');
    const node = input === this._args ? this._argsError : this._optionsError;
    node.hidden = true;
    node.textContent = '';
  }

  private async _invoke(): Promise<void> {
    this._clearFieldError(this._args);
    this._clearFieldError(this._options);
    const name = this._select.value;
    const args = parseJsonField(this._args.value, 'array', []);
    const options = parseJsonField(this._options.value, 'object', {});
    if (!args.ok) {
      this._showError(this._argsError, this._args, `args ${args.message}`);
    }
    if (!options.ok) {
      this._showError(this._optionsError, this._options, `options ${options.message}`);
    }
    if (!args.ok || !options.ok) {
      const messages = [!args.ok && `args ${args.message}`, !options.ok && `options ${options.message}`];
      this._showResult('error', h('div', { class: 'fnb-result-error' }, `bad_json: ${messages.filter(Boolean).join('; ')}`));
      return;
    }
    if (!name) {
      this._showResult('error', h('div', { class: 'fnb-result-error' }, 'no function selected'));
      return;
    }
    const seq = ++this._invokeSeq;
    this._pending = null; // a new invoke replaces the one being followed
    this._invokeButton.disabled = true;
    this._result.hidden = false;
    this._result.removeAttribute('data-status');
    this._result.setAttribute('aria-busy', 'true');
    this._result.replaceChildren(h('div', { class: 'fnb-result-meta' }, `invoking ${name}…`));
    try {
      const reply = await this._api.invoke(name, args.value as unknown[], options.value as Record<string, unknown>);
      if (seq === this._invokeSeq) {
        this._showReply(name, reply.status, reply.data);
        if ((reply.status === 202 || reply.data.status === 'pending') && reply.data.task_id) {
          this._pending = { taskId: String(reply.data.task_id), name };
        }
      }
    } catch (err) {
      if (seq === this._invokeSeq) {
        const parts: Child[] = [h('div', { class: 'fnb-result-error' }, errorText(err))];
        if (err instanceof ApiError && err.retryAfter !== null) {
          parts.push(h('div', { class: 'fnb-result-meta' }, `retry after ${Math.ceil(err.retryAfter)} s`));
        }
        this._showResult('error', ...parts);
      }
    } finally {
      if (seq === this._invokeSeq) {
        this._invokeButton.disabled = false;
        this._result.removeAttribute('aria-busy');
      }
      void this._poll.refresh();
    }
  }

  private _showReply(name: string, httpStatus: number, data: IInvokeReply): void {
    if (httpStatus === 202 || data.status === 'pending') {
      this._showResult(
        'pending',
        h('div', { class: 'fnb-result-pending' }, `pending: task ${data.task_id ?? '?'}`),
        h(
          'div',
          { class: 'fnb-result-meta' },
          `${name} is waiting for a human answer (see Pending human tasks); the answer shows here`
        )
      );
      return;
    }
    const meta = [
      `status ${data.status ?? 'ok'}`,
      data.tier ? `tier ${data.tier}` : null,
      typeof data.duration_ms === 'number' ? `${formatMs(data.duration_ms)} ms` : null,
      data.version !== undefined ? `v${data.version}` : null
    ].filter(Boolean);
    this._showResult(
      data.status && data.status !== 'ok' ? 'error' : 'ok',
      h('div', { class: 'fnb-result-meta', title: data.execution_id ? `execution ${data.execution_id}` : null }, meta.join(' · ')),
      h('pre', { class: 'fnb-result-value fnb-mono' }, jsonText(data.value))
    );
  }

  private _showResult(status: 'ok' | 'error' | 'pending', ...children: Child[]): void {
    this._result.hidden = false;
    this._result.dataset.status = status;
    this._result.replaceChildren(...(children.filter(Boolean) as Node[]));
  }

  private _api: Api;
  private _poll: Poll<ISummary | void, unknown, 'standby'>;
  private _loaded = false;
  private _seq = 0;
  private _lastFetch = 0;
  private _invokeSeq = 0;
  private _functionsKey = '';
  private _functions: IFunctionRow[] = [];
  private _expanded = new Set<string>();
  private _pending: { taskId: string; name: string } | null = null;
  private _recentKey = '';
  private _taskNodes = new Map<string, HTMLElement>();
  private _answered = new Set<string>();

  private _statusNode!: HTMLElement;
  private _signature!: HTMLElement;
  private _signatures = new Map<string, string>();
  private _functionsBody!: HTMLTableSectionElement;
  private _functionsEmpty!: HTMLElement;
  private _recentBody!: HTMLTableSectionElement;
  private _recentEmpty!: HTMLElement;
  private _tasksNode!: HTMLElement;
  private _tasksEmpty!: HTMLElement;
  private _tasksCount!: HTMLElement;
  private _select!: HTMLSelectElement;
  private _args!: HTMLInputElement;
  private _options!: HTMLInputElement;
  private _argsError!: HTMLElement;
  private _optionsError!: HTMLElement;
  private _invokeButton!: HTMLButtonElement;
  private _result!: HTMLElement;
}
