
// ---- functions-nb glue (appended below the cell; the cell keeps its own line numbers) ----
// Host ABI: arguments that are not plain numbers arrive in buffers the host obtained from
// __fnb_alloc (raw, unmanaged heap blocks); results travel back as one i64 packing
// (pointer << 32 | byte length) of such a block, which the host frees with __fnb_free.

// @ts-ignore: decorator
@external("fnb", "bad_arg") declare function __fnb_host_bad_arg(ptr: usize, len: i32): void;

export function __fnb_alloc(size: i32): usize {
  return heap.alloc(<usize>size);
}

export function __fnb_free(ptr: usize, len: i32): void {
  if (ptr) heap.free(ptr);
}

// @ts-ignore: decorator
@inline function __fnb_pack(ptr: usize, len: usize): u64 {
  return (<u64>ptr << 32) | <u64>(<u32>len);
}

function __fnb_copy_out(src: usize, len: usize): u64 {
  const buf = heap.alloc(len);
  memory.copy(buf, src, len);
  return __fnb_pack(buf, len);
}

/** Reports a bad argument to the host (-> BadArguments naming the signature). */
function __fnb_bad_arg(message: string): void {
  const len = String.UTF8.byteLength(message);
  const buf = heap.alloc(<usize>len);
  String.UTF8.encodeUnsafe(changetype<usize>(message), message.length, buf);
  __fnb_host_bad_arg(buf, len);
  heap.free(buf);
}

// -- strings, bytes, typed arrays --------------------------------------------------------

function __fnb_take_str(ptr: usize, len: i32): string {
  const s = String.UTF8.decodeUnsafe(ptr, <usize>len);
  heap.free(ptr);
  return s;
}

function __fnb_ret_str(s: string): u64 {
  const len = String.UTF8.byteLength(s);
  const buf = heap.alloc(<usize>len);
  String.UTF8.encodeUnsafe(changetype<usize>(s), s.length, buf);
  return __fnb_pack(buf, <usize>len);
}

function __fnb_take_buffer(ptr: usize, len: i32): ArrayBuffer {
  const b = new ArrayBuffer(len);
  memory.copy(changetype<usize>(b), ptr, <usize>len);
  heap.free(ptr);
  return b;
}

function __fnb_ret_buffer(b: ArrayBuffer): u64 {
  return __fnb_copy_out(changetype<usize>(b), <usize>b.byteLength);
}

/** Typed arrays (Uint8Array for bytes; Float64Array, Int32Array, ... for numpy arrays):
 *  the host passes (pointer, element count). */
function __fnb_take_typed<T>(ptr: usize, count: i32): T {
  const a = instantiate<T>(count);
  // @ts-ignore: typed array
  memory.copy(a.dataStart, ptr, <usize>count << alignof<valueof<T>>());
  heap.free(ptr);
  return a;
}

function __fnb_ret_typed<T>(a: T): u64 {
  // @ts-ignore: typed array
  return __fnb_copy_out(a.dataStart, <usize>a.byteLength);
}

function __fnb_take_static<E>(ptr: usize, count: i32): StaticArray<E> {
  const a = new StaticArray<E>(count);
  memory.copy(changetype<usize>(a), ptr, <usize>count << alignof<E>());
  heap.free(ptr);
  return a;
}

function __fnb_ret_static<E>(a: StaticArray<E>): u64 {
  return __fnb_copy_out(changetype<usize>(a), <usize>a.length << alignof<E>());
}

// -- JSON ------------------------------------------------------------------------------------

/** Reads JSON text (UTF-8) from a host buffer; the first problem is kept in `err`. */
class __FnbReader {
  pos: usize;
  err: string | null = null;

  constructor(public start: usize, public end: usize) {
    this.pos = start;
  }

  fail(what: string): void {
    if (this.err === null) this.err = `${what} at position ${this.pos - this.start}`;
  }

  ws(): void {
    while (this.pos < this.end) {
      const c = load<u8>(this.pos);
      if (c != 0x20 && c != 0x0A && c != 0x0D && c != 0x09) break;
      this.pos++;
    }
  }

  peek(): i32 {
    this.ws();
    return this.pos < this.end ? <i32>load<u8>(this.pos) : -1;
  }

  eat(c: i32): bool {
    if (this.peek() == c) {
      this.pos++;
      return true;
    }
    return false;
  }

  expect(c: i32, what: string): bool {
    if (this.eat(c)) return true;
    this.fail(`expected ${what}`);
    return false;
  }

  word(w: string): bool {
    const n = <usize>w.length;
    if (this.pos + n > this.end) return false;
    for (let i: usize = 0; i < n; i++) {
      if (<i32>load<u8>(this.pos + i) != w.charCodeAt(<i32>i)) return false;
    }
    this.pos += n;
    return true;
  }

  isNull(): bool {
    return this.peek() == 0x6E && this.word("null");
  }

  /** After a comma-separated item: true when the list continues. */
  more(close: i32, what: string): bool {
    if (this.err !== null) return false;
    if (this.eat(0x2C)) return true;
    if (!this.eat(close)) this.fail(`expected ',' or ${what}`);
    return false;
  }

  bool(): bool {
    const c = this.peek();
    if (c == 0x74 && this.word("true")) return true;
    if (c == 0x66 && this.word("false")) return false;
    this.fail("expected true or false");
    return false;
  }

  /** Scans a JSON number; returns its length (0 if none), sets `frac` if not an integer. */
  scanNumber(): i32 {
    this.ws();
    let p = this.pos;
    const e = this.end;
    if (p < e && load<u8>(p) == 0x2D) p++;
    const digits = p;
    while (p < e && <u32>(load<u8>(p) - 0x30) < 10) p++;
    if (p == digits) {
      // JSON extensions for non-finite floats (Python's json reads and writes them).
      if (this.word("NaN")) return -1;
      if (this.word("Infinity")) return -2;
      if (this.word("-Infinity")) return -3;
      return 0;
    }
    this.frac = false;
    if (p < e && load<u8>(p) == 0x2E) {
      this.frac = true;
      p++;
      while (p < e && <u32>(load<u8>(p) - 0x30) < 10) p++;
    }
    if (p < e && (load<u8>(p) | 0x20) == 0x65) {
      this.frac = true;
      p++;
      if (p < e && (load<u8>(p) == 0x2B || load<u8>(p) == 0x2D)) p++;
      while (p < e && <u32>(load<u8>(p) - 0x30) < 10) p++;
    }
    return <i32>(p - this.pos);
  }

  frac: bool = false;

  float(): f64 {
    const n = this.scanNumber();
    if (n < 0) return n == -1 ? NaN : n == -2 ? Infinity : -Infinity;
    if (n == 0) {
      this.fail("expected a number");
      return 0;
    }
    const v = parseFloat(String.UTF8.decodeUnsafe(this.pos, <usize>n));
    this.pos += <usize>n;
    return v;
  }

  /** An integer in [lo, hi] (signed types and u8..u32). */
  int(lo: i64, hi: i64, type: string): i64 {
    const v = this.digits(type);
    if (this.err !== null) return 0;
    if (this.neg ? (v > <u64>(-(lo + 1)) + 1) : (v > <u64>hi)) {
      this.pos = this.numAt;
      this.fail(`number out of range for ${type}`);
      return 0;
    }
    return this.neg ? -<i64>v : <i64>v;
  }

  u64(): u64 {
    const v = this.digits("u64");
    if (this.err === null && this.neg && v != 0) {
      this.pos = this.numAt;
      this.fail("number out of range for u64");
    }
    return v;
  }

  neg: bool = false;
  numAt: usize = 0;

  /** Magnitude of an integer literal (sign in `neg`), with overflow detection. */
  digits(type: string): u64 {
    this.ws();
    this.numAt = this.pos;
    const n = this.scanNumber();
    if (n <= 0 || this.frac) {
      this.pos = this.numAt;
      this.fail(`expected an integer (${type})`);
      return 0;
    }
    let p = this.pos;
    this.neg = load<u8>(p) == 0x2D;
    if (this.neg) p++;
    const e = this.pos + <usize>n;
    let v: u64 = 0;
    while (p < e) {
      const d = <u64>(load<u8>(p) - 0x30);
      if (v > (u64.MAX_VALUE - d) / 10) {
        this.fail(`number out of range for ${type}`);
        return 0;
      }
      v = v * 10 + d;
      p++;
    }
    this.pos = e;
    return v;
  }

  str(): string {
    if (!this.expect(0x22, "a string")) return "";
    let s = "";
    let run = this.pos;
    while (this.pos < this.end) {
      const c = load<u8>(this.pos);
      if (c == 0x22) {
        s += String.UTF8.decodeUnsafe(run, this.pos - run);
        this.pos++;
        return s;
      }
      if (c != 0x5C) {
        this.pos++;
        continue;
      }
      s += String.UTF8.decodeUnsafe(run, this.pos - run);
      this.pos++;
      const esc = this.pos < this.end ? load<u8>(this.pos) : 0;
      this.pos++;
      if (esc == 0x75) {
        let unit = 0;
        for (let i = 0; i < 4; i++) {
          const h = this.pos < this.end ? <i32>load<u8>(this.pos) : 0;
          const v = h >= 0x30 && h <= 0x39 ? h - 0x30 : (h | 0x20) >= 0x61 && (h | 0x20) <= 0x66
            ? (h | 0x20) - 0x57 : -1;
          if (v < 0) {
            this.fail("bad \\u escape");
            return "";
          }
          unit = (unit << 4) | v;
          this.pos++;
        }
        s += String.fromCharCode(unit);
      } else if (esc == 0x6E) s += "\n";
      else if (esc == 0x74) s += "\t";
      else if (esc == 0x72) s += "\r";
      else if (esc == 0x62) s += "\b";
      else if (esc == 0x66) s += "\f";
      else if (esc == 0x22 || esc == 0x5C || esc == 0x2F) s += String.fromCharCode(esc);
      else {
        this.fail("bad escape");
        return "";
      }
      run = this.pos;
    }
    this.fail("unterminated string");
    return "";
  }

  finish(): void {
    if (this.err === null && this.peek() != -1) this.fail("unexpected text after the value");
  }

  /** The JSON text, shortened, for messages. */
  text(): string {
    const n = this.end - this.start;
    const shown = String.UTF8.decodeUnsafe(this.start, n < 80 ? n : 80);
    return n > 80 ? shown + "..." : shown;
  }
}

function __fnb_json_arg(r: __FnbReader, name: string, type: string): bool {
  r.finish();
  const err = r.err;
  if (err === null) return true;
  __fnb_bad_arg(`argument '${name}' expects ${type}, got ${r.text()} (${err})`);
  return false;
}

/** Writes JSON text (UTF-8) into a growing raw heap block that becomes the result. */
class __FnbWriter {
  buf: usize;
  cap: usize = 64;
  len: usize = 0;

  constructor() {
    this.buf = heap.alloc(64);
  }

  reserve(n: usize): usize {
    const need = this.len + n;
    if (need > this.cap) {
      let cap = this.cap << 1;
      while (cap < need) cap <<= 1;
      this.buf = heap.realloc(this.buf, cap);
      this.cap = cap;
    }
    return this.buf + this.len;
  }

  byte(b: u8): void {
    store<u8>(this.reserve(1), b);
    this.len++;
  }

  /** Appends `s` UTF-8 encoded, unescaped (numbers, literals, plain runs). */
  raw(s: string, from: i32 = 0, to: i32 = -1): void {
    if (to < 0) to = s.length;
    if (to <= from) return;
    const ptr = this.reserve(<usize>(to - from) * 3);
    this.len += String.UTF8.encodeUnsafe(changetype<usize>(s) + (<usize>from << 1), to - from, ptr);
  }

  str(s: string): void {
    this.byte(0x22);
    let run = 0;
    const n = s.length;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x20 && c != 0x22 && c != 0x5C) continue;
      this.raw(s, run, i);
      run = i + 1;
      this.byte(0x5C);
      if (c == 0x22 || c == 0x5C) this.byte(<u8>c);
      else if (c == 0x0A) this.byte(0x6E);
      else if (c == 0x09) this.byte(0x74);
      else if (c == 0x0D) this.byte(0x72);
      else {
        this.raw("u00");
        this.byte(<u8>(c < 0x10 ? 0x30 : 0x31));
        const d = c & 15;
        this.byte(<u8>(d < 10 ? 0x30 + d : 0x57 + d));
      }
    }
    this.raw(s, run, n);
    this.byte(0x22);
  }

  float(v: f64): void {
    if (isFinite(v)) this.raw(v.toString());
    else this.raw(isNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
  }

  finish(): u64 {
    return __fnb_pack(this.buf, this.len);
  }
}
