
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

// -- exact decimal -> f64 ---------------------------------------------------------------------
// AssemblyScript's parseFloat misreads some 17-digit numbers (3.8882686328565023e+49 read as
// 3.888268632856502e+38). JSON numbers are read here instead: Clinger's fast path when the
// digits and the power of ten are both exact doubles, otherwise an estimate corrected ulp by
// ulp by comparing the decimal with the midpoints between neighbouring doubles in big-integer
// arithmetic (round half to even, as IEEE and Python do).

const __FNB_POW10: StaticArray<f64> = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
  1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];
const __FNB_MAX_DIGITS = 800;
const __FNB_LIMBS = 320;

/** A non-negative big integer, little-endian 32-bit limbs, fixed capacity. */
class __FnbBig {
  w: StaticArray<u32> = new StaticArray<u32>(__FNB_LIMBS);
  n: i32 = 0;

  setU64(v: u64): void {
    this.n = 0;
    while (v) {
      this.w[this.n++] = <u32>v;
      v >>= 32;
    }
  }

  mulAdd(f: u32, add: u32): void {
    let carry: u64 = add;
    for (let i = 0; i < this.n; i++) {
      const t = <u64>this.w[i] * <u64>f + carry;
      this.w[i] = <u32>t;
      carry = t >> 32;
    }
    if (carry && this.n < __FNB_LIMBS) this.w[this.n++] = <u32>carry;
  }

  mulPow5(k: i32): void {
    while (k >= 13) {
      this.mulAdd(1220703125, 0);  // 5**13
      k -= 13;
    }
    let f: u32 = 1;
    while (k-- > 0) f *= 5;
    if (f > 1) this.mulAdd(f, 0);
  }

  shl(bits: i32): void {
    if (this.n == 0 || bits <= 0) return;
    const words = bits >> 5;
    const b = bits & 31;
    let n = this.n + words + 1;
    if (n > __FNB_LIMBS) n = __FNB_LIMBS;
    for (let i = n - 1; i >= 0; i--) {
      const src = i - words;
      const hi: u32 = src >= 0 && src < this.n ? this.w[src] : 0;
      const lo: u32 = src - 1 >= 0 && src - 1 < this.n ? this.w[src - 1] : 0;
      this.w[i] = b ? (hi << <u32>b) | (lo >>> <u32>(32 - b)) : hi;
    }
    this.n = n;
    while (this.n > 0 && this.w[this.n - 1] == 0) this.n--;
  }

  cmp(o: __FnbBig): i32 {
    if (this.n != o.n) return this.n < o.n ? -1 : 1;
    for (let i = this.n - 1; i >= 0; i--) {
      const a = this.w[i];
      const b = o.w[i];
      if (a != b) return a < b ? -1 : 1;
    }
    return 0;
  }
}

const __fnb_digits = new StaticArray<u8>(__FNB_MAX_DIGITS);
let __fnb_ndigits: i32 = 0;
let __fnb_exp10: i32 = 0;
const __fnb_left = new __FnbBig();
const __fnb_right = new __FnbBig();

/** Sign of (digits * 10**exp10) - (m * 2**q). */
function __fnb_cmp_decimal(m: u64, q: i32): i32 {
  const L = __fnb_left;
  const R = __fnb_right;
  L.n = 0;
  for (let i = 0; i < __fnb_ndigits; i++) {
    if (L.n == 0) L.setU64(<u64>__fnb_digits[i]);
    else L.mulAdd(10, <u32>__fnb_digits[i]);
  }
  R.setU64(m);
  let l2: i32 = 0;
  let r2: i32 = q;
  if (__fnb_exp10 >= 0) {
    L.mulPow5(__fnb_exp10);
    l2 += __fnb_exp10;
  } else {
    R.mulPow5(-__fnb_exp10);
    r2 -= __fnb_exp10;
  }
  if (l2 >= r2) L.shl(l2 - r2);
  else R.shl(r2 - l2);
  return L.cmp(R);
}

/** The double nearest to the decimal read into __fnb_digits / __fnb_exp10 (non-negative);
 *  __fnb_dec_exact says whether it is exactly that decimal. */
let __fnb_dec_exact = true;

function __fnb_nearest(): f64 {
  const nd = __fnb_ndigits;
  const e10 = __fnb_exp10;
  __fnb_dec_exact = true;
  if (nd == 0) return 0;
  if (nd + e10 > 310) {
    __fnb_dec_exact = false;
    return Infinity;
  }
  if (nd + e10 < -325) {
    __fnb_dec_exact = false;
    return 0;
  }
  let m19: u64 = 0;
  const take = nd < 19 ? nd : 19;
  for (let i = 0; i < take; i++) m19 = m19 * 10 + <u64>__fnb_digits[i];
  if (nd <= 15 && e10 >= -22 && e10 <= 22) {  // Clinger: both factors exact, one rounding
    const v = e10 >= 0 ? <f64>m19 * __FNB_POW10[e10] : <f64>m19 / __FNB_POW10[-e10];
    // exact: an integer up to 2**53 is; beyond, compare; a fraction (e10 < 0 once trailing
    // zeros are gone) is not asked about
    __fnb_dec_exact = e10 >= 0 && (v <= 9007199254740992.0 || __fnb_cmp_exact(v));
    return v;
  }
  let k = e10 + (nd - take);
  let v = <f64>m19;
  while (k > 22) { v *= 1e22; k -= 22; }
  while (k < -22) { v /= 1e22; k += 22; }
  v = k >= 0 ? v * __FNB_POW10[k] : v / __FNB_POW10[-k];
  if (!isFinite(v)) v = f64.MAX_VALUE;
  for (let iter = 0; iter < 4096; iter++) {
    const bits = reinterpret<u64>(v);
    const E = <i32>(bits >> 52);
    if (E == 0x7FF) break;  // rounded up past the largest double: infinity
    const F = bits & 0xFFFFFFFFFFFFF;
    const b: u64 = E == 0 ? F : F | (<u64>1 << 52);
    const k2: i32 = E == 0 ? -1074 : E - 1075;
    const up = __fnb_cmp_decimal(2 * b + 1, k2 - 1);
    if (up > 0 || (up == 0 && (b & 1))) {
      v = reinterpret<f64>(bits + 1);
      continue;
    }
    if (b > 0) {
      const lo = F == 0 && E > 1 ? __fnb_cmp_decimal(4 * b - 1, k2 - 2)
        : __fnb_cmp_decimal(2 * b - 1, k2 - 1);
      if (lo < 0 || (lo == 0 && (b & 1))) {
        v = reinterpret<f64>(bits - 1);
        continue;
      }
    }
    __fnb_dec_exact = __fnb_cmp_decimal(b, k2) == 0;
    break;
  }
  if (!isFinite(v)) __fnb_dec_exact = false;
  return v;
}

/** Whether the finite double v is exactly the decimal read. */
function __fnb_cmp_exact(v: f64): bool {
  const bits = reinterpret<u64>(v);
  const E = <i32>(bits >> 52);
  const F = bits & 0xFFFFFFFFFFFFF;
  return __fnb_cmp_decimal(E == 0 ? F : F | (<u64>1 << 52), E == 0 ? -1074 : E - 1075) == 0;
}

/** Reads the JSON number text in [p, e) into __fnb_digits / __fnb_exp10; returns the sign. */
function __fnb_read_decimal(p: usize, e: usize): bool {
  let neg = false;
  if (p < e && load<u8>(p) == 0x2D) {
    neg = true;
    p++;
  }
  let nd: i32 = 0;
  let e10: i32 = 0;
  let point = false;
  while (p < e) {
    const c = load<u8>(p);
    if (c == 0x2E) {
      point = true;
      p++;
      continue;
    }
    if ((c | 0x20) == 0x65) break;
    const d = <u8>(c - 0x30);
    if (nd < __FNB_MAX_DIGITS) {
      if (point) e10--;
      if (d != 0 || nd > 0) __fnb_digits[nd++] = d;
    } else if (!point) {
      e10++;  // digits beyond what is kept: the magnitude still counts
    }
    p++;
  }
  if (p < e) {  // exponent
    p++;
    let eneg = false;
    if (p < e && (load<u8>(p) == 0x2B || load<u8>(p) == 0x2D)) {
      eneg = load<u8>(p) == 0x2D;
      p++;
    }
    let x: i32 = 0;
    while (p < e) {
      if (x < 100000) x = x * 10 + <i32>(load<u8>(p) - 0x30);
      p++;
    }
    e10 += eneg ? -x : x;
  }
  while (nd > 0 && __fnb_digits[nd - 1] == 0) {
    nd--;
    e10++;
  }
  __fnb_ndigits = nd;
  __fnb_exp10 = e10;
  return neg;
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
    const neg = __fnb_read_decimal(this.pos, this.pos + <usize>n);
    const v = __fnb_nearest();
    if (!this.frac && !__fnb_dec_exact) {  // an integer a double cannot hold: refused
      this.fail(`the integer ${String.UTF8.decodeUnsafe(this.pos, <usize>n)} has no exact f64 value`);
      return 0;
    }
    this.pos += <usize>n;
    return neg ? -v : v;
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
    if (v == 0 && 1 / v < 0) this.raw("-0.0");  // toString() drops the sign of -0
    else if (isFinite(v)) this.raw(v.toString());
    else this.raw(isNaN(v) ? "NaN" : v > 0 ? "Infinity" : "-Infinity");
  }

  finish(): u64 {
    return __fnb_pack(this.buf, this.len);
  }
}
