// What a TypeScript cell can use besides the ECMAScript library: the functions-nb V8 sandbox
// provides a capturing console and timers, nothing that reaches the host (no require, process,
// fetch or file system).
interface Console {
  log(...data: any[]): void;
  info(...data: any[]): void;
  warn(...data: any[]): void;
  error(...data: any[]): void;
  debug(...data: any[]): void;
  trace(...data: any[]): void;
  dir(item?: any, ...data: any[]): void;
  table(data?: any, ...rest: any[]): void;
  assert(condition?: boolean, ...data: any[]): void;
  count(label?: string): void;
  time(label?: string): void;
  timeEnd(label?: string): void;
}
declare var console: Console;
declare function setTimeout(handler: (...args: any[]) => void, timeout?: number, ...args: any[]): number;
declare function clearTimeout(id?: number): void;
declare function queueMicrotask(callback: () => void): void;
