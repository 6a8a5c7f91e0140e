/**
 * The functions-nb REST API (served by functions_nb.server under
 * `{baseUrl}functions-nb/api/`), through ServerConnection so the token and XSRF
 * cookie are handled the way the rest of JupyterLab does it.
 */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

/** The newest breaker transition any process on the store recorded for a function. */
export interface IBreakerTransition {
  breaker: string;
  version: number;
  state: string;
  from: string;
  why: string;
  at: string;
  host: string;
  pid: number;
  process: string;
  /** true when it is the server's own breaker */
  server: boolean;
}

/** The newest failed record of a function: an error, or a caller mistake (`caller`). */
export interface ILastError {
  kind: string | null;
  message: string | null;
  status: string;
  tier: string;
  caller: boolean;
  at: string | null;
}

/**
 * One function row of `GET summary`: the numbers functions_nb/history_queries.py defines
 * (calls, errors, caller mistakes, latency over the calls that ran, the newest call's status).
 */
export interface IFunctionRow {
  name: string;
  version: number;
  language: string;
  signature: string;
  versions: number;
  /** the latest version's pinned packages, each "name version" */
  dependencies?: string[];
  /** the server's own breaker of the latest version */
  breaker: string;
  breaker_last?: IBreakerTransition | null;
  last_error?: ILastError | null;
  count: number;
  errors: number;
  caller_errors?: number;
  error_rate?: number | null;
  p50: number | null;
  p95?: number | null;
  p99?: number | null;
  last_status: string | null;
  last_at: string | null;
}

/** One execution row of `GET summary` (`recent`). */
export interface IExecutionRow {
  started_at: string | null;
  id: string;
  function: string;
  version: number | null;
  tier: string | null;
  status: string;
  error_kind: string | null;
  error_message: string | null;
  duration_ms: number | null;
  output: unknown;
}

/** One pending human task (functions_nb.cascade.human.task_row). */
export interface ITaskRow {
  task_id: string;
  function: string | null;
  status?: string | null;
  args?: unknown;
  input?: unknown;
  failed?: string | null;
  error?: string | null;
  proposed?: unknown;
  question?: string | null;
  result_type?: string | null;
  created_at?: unknown;
  deadline?: string | null;
  timeout_outcome?: string | null;
  /** once answered: value, approve, reject, withdrawn or expired */
  decision?: string | null;
  value?: unknown;
  who?: string | null;
  why?: string | null;
  [key: string]: unknown;
}

export interface ISummary {
  functions: IFunctionRow[];
  recent: IExecutionRow[];
  tasks: ITaskRow[];
}

/** The body of a 200 or 202 invoke reply. */
export interface IInvokeReply {
  value?: unknown;
  status: string;
  tier?: string;
  duration_ms?: number;
  execution_id?: string;
  task_id?: string;
  version?: number;
  [key: string]: unknown;
}

/** An error reply `{error: {code, message}}` or a network failure. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly retryAfter: number | null = null
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

export interface IReply<T> {
  status: number;
  data: T;
}

/** Parse a Retry-After header (seconds or an HTTP date) into seconds. */
function retryAfter(response: Response): number | null {
  const header = response.headers.get('Retry-After');
  if (!header) {
    return null;
  }
  const seconds = Number(header);
  if (Number.isFinite(seconds)) {
    return Math.max(0, seconds);
  }
  const when = Date.parse(header);
  return Number.isNaN(when) ? null : Math.max(0, (when - Date.now()) / 1000);
}

export class Api {
  constructor(readonly settings: ServerConnection.ISettings = ServerConnection.makeSettings()) {}

  url(...parts: string[]): string {
    return URLExt.join(this.settings.baseUrl, 'functions-nb/api', ...parts);
  }

  async request<T>(parts: string[], init: RequestInit = {}, query = ''): Promise<IReply<T>> {
    let response: Response;
    if (init.body !== undefined) {
      const headers = new Headers(init.headers);
      if (!headers.has('Content-Type')) {
        headers.set('Content-Type', 'application/json');
      }
      init = { ...init, headers };
    }
    try {
      response = await ServerConnection.makeRequest(this.url(...parts) + query, init, this.settings);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw new ApiError(0, 'network_error', `cannot reach the server (${message})`);
    }
    const text = await response.text();
    let data: any = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = null;
      }
    }
    if (!response.ok) {
      const error = data && typeof data === 'object' ? data.error : null;
      throw new ApiError(
        response.status,
        (error && error.code) || `http_${response.status}`,
        (error && error.message) || response.statusText || text.slice(0, 200) || 'request failed',
        retryAfter(response)
      );
    }
    if (data === null && text) {
      throw new ApiError(response.status, 'bad_reply', 'the server reply is not JSON');
    }
    return { status: response.status, data: data as T };
  }

  async summary(recent = 20): Promise<ISummary> {
    const reply = await this.request<ISummary>(['summary'], { method: 'GET' }, `?recent=${recent}`);
    const data = reply.data || ({} as ISummary);
    return {
      functions: Array.isArray(data.functions) ? data.functions : [],
      recent: Array.isArray(data.recent) ? data.recent : [],
      tasks: Array.isArray(data.tasks) ? data.tasks : []
    };
  }

  /** Human tasks with a status (`all` for every task). */
  async tasks(status: 'pending' | 'answered' | 'expired' | 'withdrawn' | 'all'): Promise<ITaskRow[]> {
    const reply = await this.request<{ tasks: ITaskRow[] }>(
      ['human', 'tasks'],
      { method: 'GET' },
      `?status=${status}`
    );
    return Array.isArray(reply.data?.tasks) ? reply.data.tasks : [];
  }

  invoke(name: string, args: unknown[], options: Record<string, unknown>): Promise<IReply<IInvokeReply>> {
    return this.request<IInvokeReply>(['functions', encodeURIComponent(name), 'invoke'], {
      method: 'POST',
      body: JSON.stringify({ args, options })
    });
  }

  answer(
    taskId: string,
    body: { decision: 'value' | 'approve' | 'reject'; value?: unknown; who?: string; why?: string }
  ): Promise<IReply<unknown>> {
    return this.request(['human', 'tasks', encodeURIComponent(taskId), 'answer'], {
      method: 'POST',
      body: JSON.stringify(body)
    });
  }
}
