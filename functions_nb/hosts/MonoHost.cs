// functions-nb's shared C# runtime host (Mono 6.8, C# <= 7.2). Compiled once by
// functions_nb/runtimes/mono.py with `mcs -optimize -unsafe` into the local cache and run as
// `mono --debug MonoHost.exe REQUEST_FD REPLY_FD SECCOMP_NR SECCOMP_BPF_BASE64` inside the
// sandbox profile mono.py builds (bubblewrap, prlimit, clean environment).
//
// Protocol: docs/host-protocol.md (frames `u32 body length | u32 request id | u8 code | body` on
// two private pipes; the hello is reply id 0, status READY, a JSON body). Mono's bodies:
//   LOAD   u32 fid | u32 memory_mb | str type | str method | u8 n | n x (u8 kind, str type)
//          | u8 result kind | bytes code                            -> OK, or HOST_ERROR + str
//   CALL   u32 fid | u32 timeout_ms | arguments                     -> a call reply
//   CANCEL u32 target request id | u8 reason (1 abort, 2 timeout)   -> the target: INTERRUPTED
//   UNLOAD u32 fid;  PING -> OK + JSON
// A call reply: u32 console bytes | console (u8 level, str line)* | value (OK) or str message.
// str/bytes = u32 length (0xFFFFFFFF = null) + bytes; arrays = u32 count + raw little-endian items.
//
// Each function version lives in its own AppDomain (own statics, own Console), unloaded on UNLOAD.
// A call never crosses an AppDomain boundary through remoting (that costs 45-75 us per call on
// Mono 6.8): the main thread reads a frame into unmanaged memory and writes a 16-byte ticket
// (pointer, length) into the function's ticket pipe; worker threads that live inside the
// function's AppDomain read tickets, run the call and write the reply frame straight to the
// reply pipe (a spin lock in unmanaged memory keeps frames whole). A watchdog thread per
// AppDomain aborts a call (Thread.Abort) at its deadline, on CANCEL or when the heap grew past
// the function's memory limit; a worker whose call was aborted retires. What a call leaves
// behind is the function's own business only while it stays within bounds: threads and pool
// work started by a call (tracked through the call's execution context) are aborted when it
// returns, descriptors it keeps open are counted and an offender fails, a write past the
// file-size limit fails that call (SIGXFSZ is ignored), and a function calling
// Environment.Exit is named in the host's last words. Creating an AppDomain takes 100-300 ms,
// so one spare is always made (and its code JIT-compiled) in advance for the next load.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Diagnostics;
using System.Globalization;
using System.IO;
using System.Reflection;
using System.Reflection.Emit;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Serialization;
using System.Text;
using System.Threading;

namespace FunctionsNb {

static class Kind {
    public const byte Unit = 0, I32 = 1, U32 = 2, I64 = 3, U64 = 4, F32 = 5, F64 = 6, Bool = 7,
        Str = 8, Bytes = 9, Json = 10, F64Arr = 11, F32Arr = 12, I32Arr = 13, I64Arr = 14;
}

/// Reply statuses and operations of docs/host-protocol.md.
static class Status {
    public const byte Ok = 0, Error = 1, Interrupted = 2, Memory = 3, BadArgs = 4, HostError = 5,
        Gone = 6, Ready = 7, Limit = 8;
}

static class Op {
    public const byte Load = 1, Call = 2, Cancel = 3, Unload = 4, Ping = 5;
}

/// Why the watchdog stopped a call.
static class Stop {
    public const byte None = 0, Abort = 1, Timeout = 2, Memory = 3;
}

static unsafe class Native {
    [DllImport("libc", SetLastError = true)]
    public static extern IntPtr read(int fd, byte* buf, IntPtr count);
    [DllImport("libc", SetLastError = true)]
    public static extern IntPtr write(int fd, byte* buf, IntPtr count);
    [DllImport("libc", SetLastError = true)]
    public static extern int pipe2(int[] fds, int flags);
    [DllImport("libc", SetLastError = true)]
    public static extern int close(int fd);
    [DllImport("libc", SetLastError = true)]
    public static extern int prctl(int option, IntPtr a2, IntPtr a3, IntPtr a4, IntPtr a5);
    [DllImport("libc", SetLastError = true)]
    public static extern IntPtr syscall(IntPtr number, IntPtr a1, IntPtr a2, IntPtr a3);

    const int EINTR = 4;

    public static bool ReadExact(int fd, byte[] buf, int offset, int count) {
        int got = 0;
        fixed (byte* p = buf) {
            while (got < count) {
                long n = (long)read(fd, p + offset + got, (IntPtr)(count - got));
                if (n > 0) { got += (int)n; continue; }
                if (n < 0 && Marshal.GetLastWin32Error() == EINTR) continue;
                return false;
            }
        }
        return true;
    }

    public static bool ReadExact(int fd, byte* p, int count) {
        int got = 0;
        while (got < count) {
            long n = (long)read(fd, p + got, (IntPtr)(count - got));
            if (n > 0) { got += (int)n; continue; }
            if (n < 0 && Marshal.GetLastWin32Error() == EINTR) continue;
            return false;
        }
        return true;
    }

    /// Writes a whole frame under the process-wide spin lock at `spin` (unmanaged memory, so
    /// every AppDomain shares it). Runs in a finally block: a Thread.Abort cannot cut it short.
    public static void Send(int fd, IntPtr spin, WireWriter frame) {
        try { } finally {
            int* l = (int*)spin;
            while (Interlocked.CompareExchange(ref *l, 1, 0) != 0) Thread.Yield();
            try { WriteAll(fd, frame.Buffer, frame.Len); } finally { Volatile.Write(ref *l, 0); }
        }
    }

    public static void WriteAll(int fd, byte[] buf, int count) {
        int done = 0;
        fixed (byte* p = buf) {
            while (done < count) {
                long n = (long)write(fd, p + done, (IntPtr)(count - done));
                if (n > 0) { done += (int)n; continue; }
                if (n < 0 && Marshal.GetLastWin32Error() == EINTR) continue;
                Environment.Exit(3);  // the channel is gone: nobody is listening any more
            }
        }
    }

    /// Installs the seccomp program built by the Python side (sandbox.seccomp_program: no
    /// execve, no new processes; threads still work) on every thread (TSYNC). `nr` is the
    /// seccomp syscall number of this machine, `bpf` the program in base64 ("-": none).
    public static string InstallSeccomp(string nr, string bpf) {
        if (nr == "-" || bpf == "-") return "off";
        byte[] prog = Convert.FromBase64String(bpf);
        IntPtr filter = Marshal.AllocHGlobal(prog.Length);
        Marshal.Copy(prog, 0, filter, prog.Length);
        IntPtr fprog = Marshal.AllocHGlobal(16);  // struct sock_fprog { u16 len; void *filter; }
        Marshal.WriteInt64(fprog, 0, prog.Length / 8);
        Marshal.WriteIntPtr(fprog, 8, filter);
        if (prctl(38 /* PR_SET_NO_NEW_PRIVS */, (IntPtr)1, IntPtr.Zero, IntPtr.Zero, IntPtr.Zero) != 0)
            return "failed (no_new_privs: errno " + Marshal.GetLastWin32Error() + ")";
        long rc = (long)syscall((IntPtr)long.Parse(nr), (IntPtr)1 /* SET_MODE_FILTER */, (IntPtr)1 /* TSYNC */, fprog);
        return rc == 0 ? "on" : "failed (errno " + Marshal.GetLastWin32Error() + ")";
    }

    [DllImport("libc")]
    static extern IntPtr signal(int signum, IntPtr handler);
    [DllImport("libc", EntryPoint = "fcntl")]
    static extern int fcntl_int(int fd, int cmd, int arg);
    [DllImport("libc")]
    static extern int* __errno_location();

    public const int EFBIG = 27, NotSupported = unchecked((int)0x80070032);

    /// A write past RLIMIT_FSIZE fails with EFBIG (Mono: an IOException) instead of killing the
    /// whole host with SIGXFSZ.
    public static void IgnoreFileSizeSignal() { signal(25 /* SIGXFSZ */, (IntPtr)1 /* SIG_IGN */); }

    /// The calling thread's errno (what the last failed system call left).
    public static int Errno() { return *__errno_location(); }

    /// The lowest descriptor number not in use (-1 when none is free): grows with the
    /// descriptors the process keeps open.
    public static int LowestFreeFd() {
        int fd = fcntl_int(0, 0 /* F_DUPFD */, 0);
        if (fd < 0) return -1;
        close(fd);
        return fd;
    }

    [DllImport("libc")]
    static extern IntPtr opendir(string path);
    [DllImport("libc")]
    static extern IntPtr readdir(IntPtr dir);
    [DllImport("libc")]
    static extern int closedir(IntPtr dir);

    /// How many descriptors the process has open (-1 if /proc is not there).
    public static int OpenFds() {
        IntPtr dir = opendir("/proc/self/fd");
        if (dir == IntPtr.Zero) return -1;
        int n = 0;
        while (readdir(dir) != IntPtr.Zero) n++;
        closedir(dir);
        return n - 3;  // ".", ".." and the directory's own descriptor
    }

    /// One line to the host's log (stderr), outside any AppDomain's Console.
    public static void LogLine(string text) {
        byte[] b = Encoding.UTF8.GetBytes(text + "\n");
        fixed (byte* p = b) write(2, p, (IntPtr)b.Length);
    }
}

// -- wire format helpers --------------------------------------------------------------

/// Reads a frame in place (unmanaged memory or a pinned array): arrays are copied once,
/// straight into the .NET array.
unsafe sealed class WireReader {
    readonly byte* b;
    readonly int len;
    public int Pos;
    public WireReader(byte* buf, int length, int pos) { b = buf; len = length; Pos = pos; }
    /// No more arguments in the frame: the caller omitted the trailing (defaulted) ones.
    public bool AtEnd { get { return Pos >= len; } }
    void Need(long n) { if (n < 0 || Pos + n > len) throw new ProtocolError("truncated frame"); }
    public byte U8() { Need(1); return b[Pos++]; }
    public int I32() { Need(4); int v = *(int*)(b + Pos); Pos += 4; return v; }
    public uint U32() { Need(4); uint v = *(uint*)(b + Pos); Pos += 4; return v; }
    public long I64() { Need(8); long v = *(long*)(b + Pos); Pos += 8; return v; }
    public ulong U64() { Need(8); ulong v = *(ulong*)(b + Pos); Pos += 8; return v; }
    public float F32() { Need(4); float v = *(float*)(b + Pos); Pos += 4; return v; }
    public double F64() { Need(8); double v = *(double*)(b + Pos); Pos += 8; return v; }
    public string Str() {
        uint n = U32();
        if (n == 0xFFFFFFFF) return null;
        Need(n);
        string s = Encoding.UTF8.GetString(b + Pos, (int)n);
        Pos += (int)n;
        return s;
    }
    public byte[] Bytes() {
        uint n = U32();
        if (n == 0xFFFFFFFF) return null;
        Need(n);
        var r = new byte[n];
        Marshal.Copy((IntPtr)(b + Pos), r, 0, (int)n);
        Pos += (int)n;
        return r;
    }
    public double[] F64s() { int n = Count(8); if (n < 0) return null; var r = new double[n]; Marshal.Copy((IntPtr)(b + Pos), r, 0, n); Pos += n * 8; return r; }
    public float[] F32s() { int n = Count(4); if (n < 0) return null; var r = new float[n]; Marshal.Copy((IntPtr)(b + Pos), r, 0, n); Pos += n * 4; return r; }
    public int[] I32s() { int n = Count(4); if (n < 0) return null; var r = new int[n]; Marshal.Copy((IntPtr)(b + Pos), r, 0, n); Pos += n * 4; return r; }
    public long[] I64s() { int n = Count(8); if (n < 0) return null; var r = new long[n]; Marshal.Copy((IntPtr)(b + Pos), r, 0, n); Pos += n * 8; return r; }
    int Count(int size) {
        uint n = U32();
        if (n == 0xFFFFFFFF) return -1;
        Need((long)n * size);
        return (int)n;
    }
}

sealed class WireWriter {
    byte[] b = new byte[256];
    public int Len;
    void Room(int n) {
        if (Len + n <= b.Length) return;
        int size = b.Length * 2;
        while (size < Len + n) size *= 2;
        Array.Resize(ref b, size);
    }
    public void U8(byte v) { Room(1); b[Len++] = v; }
    public unsafe void U32(uint v) { Room(4); fixed (byte* p = b) *(uint*)(p + Len) = v; Len += 4; }
    public void I32(int v) { U32((uint)v); }
    public unsafe void U64(ulong v) { Room(8); fixed (byte* p = b) *(ulong*)(p + Len) = v; Len += 8; }
    public void I64(long v) { U64((ulong)v); }
    public unsafe void F32(float v) { Room(4); fixed (byte* p = b) *(float*)(p + Len) = v; Len += 4; }
    public unsafe void F64(double v) { Room(8); fixed (byte* p = b) *(double*)(p + Len) = v; Len += 8; }
    public void Str(string s) {
        if (s == null) { U32(0xFFFFFFFF); return; }
        int max = Encoding.UTF8.GetMaxByteCount(s.Length);
        Room(4 + max);
        int n = Encoding.UTF8.GetBytes(s, 0, s.Length, b, Len + 4);
        U32((uint)n);
        Len += n;
    }
    public void Raw(byte[] src, int off, int n) { Room(n); System.Buffer.BlockCopy(src, off, b, Len, n); Len += n; }
    public void Bytes(byte[] v) {
        if (v == null) { U32(0xFFFFFFFF); return; }
        U32((uint)v.Length);
        Raw(v, 0, v.Length);
    }
    public void Arr(Array a, int size) {
        if (a == null) { U32(0xFFFFFFFF); return; }
        int n = a.Length * size;
        U32((uint)a.Length);
        Room(n);
        System.Buffer.BlockCopy(a, 0, b, Len, n);
        Len += n;
    }
    public void PatchU32(int at, uint v) { byte[] x = BitConverter.GetBytes(v); System.Buffer.BlockCopy(x, 0, b, at, 4); }
    /// The bytes written so far (a frame once Finish() filled in its length).
    public byte[] Buffer { get { return b; } }
    /// A reply frame: the 9-byte header (body length filled in by Finish()), then the body.
    public static WireWriter Reply(uint rid, byte status) {
        var w = new WireWriter();
        w.U32(0); w.U32(rid); w.U8(status);
        return w;
    }
    public const int HeaderSize = 9, StatusAt = 8;
    public byte Status { get { return b[StatusAt]; } set { b[StatusAt] = value; } }
    /// Fills in the body length; returns itself.
    public WireWriter Finish() { PatchU32(0, (uint)(Len - HeaderSize)); return this; }
}

sealed class ProtocolError : Exception { public ProtocolError(string m) : base(m) { } }

/// An argument that does not fit the parameter's type (reported as BadArguments).
sealed class BadArgument : Exception { public BadArgument(string m) : base(m) { } }

// -- per-call console capture -------------------------------------------------------

/// The console of the call running on this thread: lines with levels, capped.
sealed class CallConsole {
    const int MaxLines = 1000, MaxChars = 64 * 1024;
    public readonly List<KeyValuePair<byte, string>> Lines = new List<KeyValuePair<byte, string>>();
    readonly StringBuilder[] partial = new StringBuilder[5];
    int chars, dropped;

    [ThreadStatic] public static CallConsole Current;

    public void Write(byte level, string text) {
        if (string.IsNullOrEmpty(text)) return;
        int start = 0;
        while (true) {
            int nl = text.IndexOf('\n', start);
            if (nl < 0) {
                if (start < text.Length) Part(level).Append(text, start, text.Length - start);
                return;
            }
            int end = nl > start && text[nl - 1] == '\r' ? nl - 1 : nl;
            StringBuilder sb = partial[level];
            if (sb != null && sb.Length > 0) {
                sb.Append(text, start, end - start);
                Add(level, sb.ToString());
                sb.Length = 0;
            } else {
                Add(level, text.Substring(start, end - start));
            }
            start = nl + 1;
        }
    }

    StringBuilder Part(byte level) {
        return partial[level] ?? (partial[level] = new StringBuilder());
    }

    void Add(byte level, string line) {
        if (Lines.Count >= MaxLines || chars + line.Length > MaxChars) { dropped++; return; }
        chars += line.Length;
        Lines.Add(new KeyValuePair<byte, string>(level, line));
    }

    public void Finish() {
        for (byte i = 0; i < partial.Length; i++)
            if (partial[i] != null && partial[i].Length > 0) { Add(i, partial[i].ToString()); partial[i].Length = 0; }
        if (dropped > 0) {
            Lines.Add(new KeyValuePair<byte, string>(3, "[console truncated: " + dropped + " more lines dropped]"));
            dropped = 0;
        }
    }
}

/// Console.Out / Console.Error of a domain: routes text to the calling thread's CallConsole
/// (text written by threads that are not running a call is dropped).
sealed class RoutingWriter : TextWriter {
    readonly byte level;
    public RoutingWriter(byte level) { this.level = level; }
    public override Encoding Encoding { get { return Encoding.UTF8; } }
    public override void Write(char value) { var c = CallConsole.Current; if (c != null) c.Write(level, value.ToString()); }
    public override void Write(string value) { var c = CallConsole.Current; if (c != null) c.Write(level, value); }
    public override void Write(char[] buffer, int index, int count) {
        var c = CallConsole.Current;
        if (c != null) c.Write(level, new string(buffer, index, count));
    }
    public override void WriteLine(string value) {
        var c = CallConsole.Current;
        if (c != null) { c.Write(level, value); c.Write(level, "\n"); }
    }
    public override void WriteLine() { var c = CallConsole.Current; if (c != null) c.Write(level, "\n"); }
}

// -- the function's side: lives in the function's own AppDomain -----------------------

/// One function version in its AppDomain: loads it, runs its worker threads and its watchdog.
public sealed class Agent : MarshalByRefObject {
    MethodInfo method;
    Func<object[], object> invoke;
    /// Each parameter's default value as compiled into the cell (used when the call omits it).
    object[] defaults;
    int[] throwLines = new int[0];
    Func<WireReader, object>[] readers;
    Action<WireWriter, object> writeResult;
    int ticketFd, outFd;
    IntPtr spin;
    unsafe int* available;  // idle workers minus unread tickets (shared with the main thread)
    long memoryLimit;
    string name;
    readonly Dictionary<uint, Call> calls = new Dictionary<uint, Call>();
    /// Threads that entered the work of a call that had already returned: aborted by the
    /// watchdog a moment later (not from inside the context switch that found them).
    readonly List<KeyValuePair<Thread, long>> strays = new List<KeyValuePair<Thread, long>>();
    /// Descriptors this function's calls opened and kept open (estimated from the lowest free
    /// descriptor number before and after each call).
    int fdsKept;
    /// A function may keep at most FdLimit descriptors across calls once the host holds more
    /// than FdPressure (so noise from concurrent calls never blames anyone when nothing runs short).
    const int FdLimit = 64, FdPressure = 128;
    /// Live heap this function's calls left behind, in bytes (estimated from the heap size before
    /// and after each call; confirmed by a full collection before anyone is blamed). Mono keeps
    /// no heap accounting per AppDomain (MonitoringSurvivedMemorySize is not implemented).
    long memKept;

    /// The call whose work the current thread does (flows into threads, tasks and pool work
    /// the call starts); its change handler tracks which threads do that work.
    static readonly AsyncLocal<CallScope> scope = new AsyncLocal<CallScope>(ScopeChanged);
    static Agent self;

    public Agent() {
        self = this;
        Console.SetOut(new RoutingWriter(1));
        Console.SetError(new RoutingWriter(4));
        Console.SetIn(TextReader.Null);
        CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
        CultureInfo.DefaultThreadCurrentUICulture = CultureInfo.InvariantCulture;
        // Environment.Exit ends the whole shared host: say which function did it (the parent
        // names it in the error of every call that was in flight).
        AppDomain.CurrentDomain.ProcessExit += (s, e) => {
            if (name != null && DoesWorkOf(Thread.CurrentThread.ManagedThreadId))
                Native.LogLine("functions-nb: function " + name + " called Environment.Exit(" + Environment.ExitCode + ")");
        };
    }

    /// Whether thread `id` runs a call of this function or work such a call started (a
    /// thread has one id in every AppDomain).
    bool DoesWorkOf(int id) {
        lock (calls) {
            foreach (Call c in calls.Values) {
                if (c.Thread.ManagedThreadId == id) return true;
                lock (c.Scope.Threads) foreach (Thread t in c.Scope.Threads) if (t.ManagedThreadId == id) return true;
            }
        }
        return false;
    }

    static void ScopeChanged(AsyncLocalValueChangedArgs<CallScope> change) {
        if (!change.ThreadContextChanged) return;
        Thread t = Thread.CurrentThread;
        CallScope left = change.PreviousValue, entered = change.CurrentValue;
        if (left != null && left.Caller != t) {
            lock (left.Threads) { left.Threads.Remove(t); Monitor.PulseAll(left.Threads); }
        }
        if (entered == null || entered.Caller == t) return;
        bool late;
        lock (entered.Threads) { late = entered.Ended; if (!late) entered.Threads.Add(t); }
        if (late && self != null) {
            lock (self.calls) {
                self.strays.Add(new KeyValuePair<Thread, long>(t, Stopwatch.GetTimestamp()));
                Monitor.Pulse(self.calls);
            }
        }
    }

    public override object InitializeLifetimeService() { return null; }  // lives until unloaded

    /// Returns null when loaded (and starts the watchdog and one worker), else the reason.
    public unsafe string Load(byte[] code, string typeName, string methodName, byte[] kinds, string[] written,
                              byte result, long memoryLimit, int ticketFd, int outFd, long spin, long available) {
        try {
            byte[] dll, symbols;
            SplitSymbols(code, out dll, out symbols, out throwLines);
            Assembly asm = symbols != null ? Assembly.Load(dll, symbols) : Assembly.Load(dll);
            method = FindMethod(asm, typeName, methodName, kinds.Length);
            ParameterInfo[] ps = method.GetParameters();
            readers = new Func<WireReader, object>[ps.Length];
            defaults = new object[ps.Length];
            for (int i = 0; i < ps.Length; i++) {
                readers[i] = Reader(kinds[i], ps[i].ParameterType, ps[i].Name, written[i]);
                defaults[i] = ps[i].HasDefaultValue ? ps[i].DefaultValue : Type.Missing;
            }
            writeResult = Writer(result, method.ReturnType);
            invoke = Invoker(method);
        } catch (Exception e) {
            return e is TargetInvocationException && e.InnerException != null
                ? Describe(e.InnerException, throwLines) : e.GetType().Name + ": " + e.Message;
        }
        this.memoryLimit = memoryLimit;
        this.name = methodName;
        this.ticketFd = ticketFd;
        this.outFd = outFd;
        this.spin = (IntPtr)spin;
        this.available = (int*)available;
        new Thread(Watchdog) { IsBackground = true, Name = "fnb-watchdog" }.Start();
        AddWorker();
        return null;
    }

    /// JIT-compiles the host's code in this AppDomain ahead of the first call (run on spares).
    public void Warm() {
        foreach (Type t in typeof(Agent).Assembly.GetTypes()) {
            if (t.ContainsGenericParameters) continue;
            const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance
                | BindingFlags.Static | BindingFlags.DeclaredOnly;
            foreach (MethodInfo m in t.GetMethods(all)) {
                if (m.ContainsGenericParameters || m.IsAbstract || m.GetMethodBody() == null) continue;
                try { RuntimeHelpers.PrepareMethod(m.MethodHandle); } catch (Exception) { }
            }
        }
        var c = new CallConsole();
        c.Write(1, "warm\n");
        c.Finish();
        Json.To(Json.Parse("{\"a\": [1, 2.5]}"), typeof(Dictionary<string, List<double>>));
        Json.Write(new Dictionary<string, object> { { "a", new List<object> { 1L, 2.5, "s", null, true } } });
        GC.GetTotalMemory(false);
        Stopwatch.GetTimestamp();
    }

    /// Counts the new worker as available at once (not when its thread gets going), so the
    /// main thread never starts two for one ticket.
    public unsafe void AddWorker() {
        Interlocked.Increment(ref *available);
        new Thread(Worker, 16 << 20) { IsBackground = true, Name = "fnb-worker" }.Start();
    }

    /// CANCEL from the parent: true when the call was running here.
    public bool Abort(uint rid, byte reason) {
        Call call;
        lock (calls) calls.TryGetValue(rid, out call);
        return call != null && Abort(call, reason);
    }

    // -- workers ---------------------------------------------------------------------------
    unsafe void Worker() {
        var ticket = new byte[16];
        while (true) {
            if (!Native.ReadExact(ticketFd, ticket, 0, 16)) return;  // EOF: the function is unloading
            var ptr = (IntPtr)BitConverter.ToInt64(ticket, 0);
            int len = BitConverter.ToInt32(ticket, 8);
            Call call;
            try { call = Run((byte*)ptr, len); } finally { Marshal.FreeHGlobal(ptr); }
            if (call.AbortRequested) return;  // a late abort may still be pending: retire this thread
            Interlocked.Increment(ref *available);
        }
    }

    unsafe Call Run(byte* req, int len) {
        uint timeoutMs = *(uint*)(req + 13);
        var call = new Call {
            Rid = *(uint*)(req + 4), Thread = Thread.CurrentThread,
            Scope = new CallScope { Caller = Thread.CurrentThread },
            Deadline = Stopwatch.GetTimestamp() + (long)(timeoutMs * (Stopwatch.Frequency / 1000.0)),
        };
        if (memoryLimit > 0) {
            call.Baseline = GC.GetTotalMemory(false);
            call.NextCheck = call.Baseline + memoryLimit;
        }
        WireWriter reply = null;
        lock (call) call.Running = true;
        lock (calls) { calls[call.Rid] = call; Monitor.Pulse(calls); }
        try {
            reply = Invoke(req, len, call.Scope);
        } catch (ThreadAbortException) {
            Thread.ResetAbort();
        } catch (Exception e) {
            reply = ErrorFrame(call.Rid, Status.HostError, Describe(e, null));
        } finally {
            lock (call) call.Running = false;
            lock (calls) calls.Remove(call.Rid);
            if (reply == null || reply.Status == Status.Interrupted) reply = Interrupted(call, reply);
            Native.Send(outFd, spin, reply.Finish());
        }
        return call;
    }

    /// The reply of a call the watchdog (or an abort request) stopped: keeps its console output.
    WireWriter Interrupted(Call call, WireWriter partial) {
        byte status = call.Reason == Stop.Memory ? Status.Memory : Status.Interrupted;
        string message;
        if (call.Reason == Stop.Memory)
            message = "memory limit of " + (memoryLimit >> 20) + " MB exceeded (the heap grew by "
                + (call.Used >> 20) + " MB during the call)";
        else if (call.Reason == Stop.Timeout) message = "stopped at its time limit";
        else message = "aborted";
        if (partial == null) return ErrorFrame(call.Rid, status, message);
        int at = WireWriter.HeaderSize;
        uint conLen = BitConverter.ToUInt32(partial.Buffer, at);
        partial.Len = at + 4 + (int)conLen;  // keep header and console lines
        partial.Str(message);
        partial.Status = status;
        return partial;
    }

    internal static WireWriter ErrorFrame(uint rid, byte status, string message) {
        var w = WireWriter.Reply(rid, status);
        w.U32(0); w.Str(message);
        return w;
    }

    // -- watchdog: deadlines and memory ---------------------------------------------------
    static bool Abort(Call call, byte reason) {
        lock (call) {
            if (!call.Running || call.AbortRequested) return false;
            call.AbortRequested = true;
            call.Reason = reason;
            call.Thread.Abort();
            return true;
        }
    }

    void Watchdog() {
        var due = new List<KeyValuePair<Call, byte>>();
        var running = new List<Call>();
        var stop = new List<Thread>();
        long strayAge = Stopwatch.Frequency / 100;  // 10 ms: out of the context switch by then
        while (true) {
            lock (calls) {
                if (calls.Count == 0 && strays.Count == 0) Monitor.Wait(calls);
                else Monitor.Wait(calls, calls.Count > 0 ? 2 : 10);
                running.Clear();
                running.AddRange(calls.Values);
                long old = Stopwatch.GetTimestamp() - strayAge;
                for (int i = strays.Count - 1; i >= 0; i--) {
                    if (strays[i].Value > old) continue;
                    stop.Add(strays[i].Key);
                    strays.RemoveAt(i);
                }
            }
            foreach (Thread t in stop) { try { t.Abort(); } catch (Exception) { } }
            stop.Clear();
            long now = Stopwatch.GetTimestamp();
            bool memory = false;
            foreach (Call call in running) {
                if (call.AbortRequested) continue;
                if (now >= call.Deadline) due.Add(new KeyValuePair<Call, byte>(call, Stop.Timeout));
                else if (memoryLimit > 0) memory = true;
            }
            if (memory) CheckMemory(running, due);
            foreach (var d in due) Abort(d.Key, d.Value);
            due.Clear();
        }
    }

    void CheckMemory(List<Call> running, List<KeyValuePair<Call, byte>> due) {
        long used = GC.GetTotalMemory(false);
        bool over = false;
        foreach (Call call in running) if (used > call.NextCheck) over = true;
        if (!over) return;
        used = GC.GetTotalMemory(true);  // collect: only live objects count
        foreach (Call call in running) {
            if (call.AbortRequested) continue;
            long grown = used - call.Baseline;
            if (grown > memoryLimit) {
                call.Used = grown;
                due.Add(new KeyValuePair<Call, byte>(call, Stop.Memory));
            } else {
                call.NextCheck = used + Math.Max(memoryLimit - grown, 1 << 20) / 2 + (1 << 20);
            }
        }
    }

    /// A direct call through a DynamicMethod, not MethodInfo.Invoke: faster, exceptions are not
    /// wrapped, and Mono turns a stack overflow below it into a catchable StackOverflowException
    /// (below MethodInfo.Invoke's native frame it is fatal to the whole process).
    static Func<object[], object> Invoker(MethodInfo m) {
        ParameterInfo[] ps = m.GetParameters();
        var dm = new DynamicMethod("fnb_invoke_" + m.Name, typeof(object), new[] { typeof(object[]) }, m.Module, true);
        ILGenerator il = dm.GetILGenerator();
        for (int i = 0; i < ps.Length; i++) {
            il.Emit(OpCodes.Ldarg_0);
            il.Emit(OpCodes.Ldc_I4, i);
            il.Emit(OpCodes.Ldelem_Ref);
            Type t = ps[i].ParameterType;
            il.Emit(t.IsValueType ? OpCodes.Unbox_Any : OpCodes.Castclass, t);
        }
        il.Emit(OpCodes.Call, m);
        if (m.ReturnType == typeof(void)) il.Emit(OpCodes.Ldnull);
        else if (m.ReturnType.IsValueType) il.Emit(OpCodes.Box, m.ReturnType);
        il.Emit(OpCodes.Ret);
        var f = (Func<object[], object>)dm.CreateDelegate(typeof(Func<object[], object>));
        RuntimeHelpers.PrepareMethod(m.MethodHandle);
        return f;
    }

    /// Splits the artifact: [dll][mdb][u32 throw line]*[u32 count][u32 mdb size]["FNBCS001"]
    /// (the dll loads as is; the rest is an overlay appended by languages/csharp.py).
    static void SplitSymbols(byte[] code, out byte[] dll, out byte[] symbols, out int[] throwLines) {
        dll = code; symbols = null; throwLines = new int[0];
        int n = code.Length;
        if (n < 16 || Encoding.ASCII.GetString(code, n - 8, 8) != "FNBCS001") return;
        int mdb = BitConverter.ToInt32(code, n - 12);
        int count = BitConverter.ToInt32(code, n - 16);
        int tail = 16 + 4 * count;
        if (mdb < 0 || count < 0 || count > n / 4 || mdb > n - tail) return;
        throwLines = new int[count];
        for (int i = 0; i < count; i++) throwLines[i] = BitConverter.ToInt32(code, n - tail + 4 * i);
        dll = new byte[n - tail - mdb];
        System.Buffer.BlockCopy(code, 0, dll, 0, dll.Length);
        if (mdb > 0) {
            symbols = new byte[mdb];
            System.Buffer.BlockCopy(code, dll.Length, symbols, 0, mdb);
        }
    }

    static MethodInfo FindMethod(Assembly asm, string typeName, string name, int arity) {
        const BindingFlags flags = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.DeclaredOnly;
        var found = new List<MethodInfo>();
        Type[] types;
        if (!string.IsNullOrEmpty(typeName)) {
            Type t = asm.GetType(typeName);
            if (t == null) throw new InvalidOperationException("class " + typeName + " not found in the compiled cell");
            types = new[] { t };
        } else {
            types = asm.GetTypes();
        }
        foreach (Type t in types)
            foreach (MethodInfo m in t.GetMethods(flags))
                if (m.Name == name && m.GetParameters().Length == arity) found.Add(m);
        if (found.Count == 0) throw new InvalidOperationException("no static method " + name + " with " + arity + " parameters");
        if (found.Count > 1) throw new InvalidOperationException("several static methods named " + name + " with " + arity + " parameters (overloads are not supported for the entry point)");
        if (found[0].ContainsGenericParameters) throw new InvalidOperationException(name + " is generic; the entry point needs concrete parameter types");
        return found[0];
    }

    // argument readers, per kind and actual parameter type
    Func<WireReader, object> Reader(byte kind, Type t, string pname, string written) {
        switch (kind) {
            case Kind.I32: {
                if (t == typeof(int)) return r => r.I32();
                if (t == typeof(short)) return r => (short)r.I32();
                if (t == typeof(sbyte)) return r => (sbyte)r.I32();
                if (t == typeof(char)) return r => (char)r.I32();
                break;
            }
            case Kind.U32: {
                if (t == typeof(uint)) return r => r.U32();
                if (t == typeof(ushort)) return r => (ushort)r.U32();
                if (t == typeof(byte)) return r => (byte)r.U32();
                break;
            }
            case Kind.I64: if (t == typeof(long)) return r => r.I64(); break;
            case Kind.U64: if (t == typeof(ulong)) return r => r.U64(); break;
            case Kind.F32: if (t == typeof(float)) return r => r.F32(); break;
            case Kind.F64: if (t == typeof(double)) return r => r.F64(); break;
            case Kind.Bool: if (t == typeof(bool)) return r => r.U8() != 0; break;
            case Kind.Str: if (t == typeof(string)) return r => r.Str(); break;
            case Kind.Bytes: if (t == typeof(byte[])) return r => r.Bytes(); break;
            case Kind.F64Arr: if (t == typeof(double[])) return r => r.F64s(); break;
            case Kind.F32Arr: if (t == typeof(float[])) return r => r.F32s(); break;
            case Kind.I32Arr: if (t == typeof(int[])) return r => r.I32s(); break;
            case Kind.I64Arr: if (t == typeof(long[])) return r => r.I64s(); break;
            case Kind.Json:
                if (t.IsByRef) break;
                return r => {
                    string text = r.Str();
                    object tree;
                    try { tree = Json.Parse(text); } catch (FormatException e) { throw new BadArgument("argument '" + pname + "': invalid JSON: " + e.Message); }
                    try { return Json.To(tree, t); } catch (JsonFit e) { throw new BadArgument("argument '" + pname + "' does not fit its type " + written + ": " + e.Message); }
                };
        }
        throw new InvalidOperationException("parameter " + pname + " has type " + t + ", which does not match the signature read from the cell (" + written + ")");
    }

    static Action<WireWriter, object> Writer(byte kind, Type t) {
        switch (kind) {
            case Kind.Unit: return (w, v) => { };
            case Kind.I32: return (w, v) => w.I32(Convert.ToInt32(v, CultureInfo.InvariantCulture));
            case Kind.U32: return (w, v) => w.U32(Convert.ToUInt32(v, CultureInfo.InvariantCulture));
            case Kind.I64: return (w, v) => w.I64((long)v);
            case Kind.U64: return (w, v) => w.U64((ulong)v);
            case Kind.F32: return (w, v) => w.F32((float)v);
            case Kind.F64: return (w, v) => w.F64((double)v);
            case Kind.Bool: return (w, v) => w.U8((bool)v ? (byte)1 : (byte)0);
            case Kind.Str: return (w, v) => w.Str((string)v);
            case Kind.Bytes: return (w, v) => w.Bytes((byte[])v);
            case Kind.F64Arr: return (w, v) => w.Arr((Array)v, 8);
            case Kind.F32Arr: return (w, v) => w.Arr((Array)v, 4);
            case Kind.I32Arr: return (w, v) => w.Arr((Array)v, 4);
            case Kind.I64Arr: return (w, v) => w.Arr((Array)v, 8);
            default: return (w, v) => w.Str(Json.Write(v));
        }
    }

    /// Runs one call; `req` is the whole request frame. Returns the whole reply frame.
    unsafe WireWriter Invoke(byte* req, int len, CallScope work) {
        var r = new WireReader(req, len, 17);  // after the header, fid and timeout
        uint rid = *(uint*)(req + 4);
        var w = WireWriter.Reply(rid, Status.Ok);
        var console = new CallConsole();
        CallConsole.Current = console;
        object value = null;
        byte status = Status.Ok;
        string message = null;
        int fdsBefore = Native.LowestFreeFd();
        long heapBefore = GC.GetTotalMemory(false);
        try {
            var args = new object[readers.Length];
            try {
                for (int i = 0; i < args.Length; i++) args[i] = r.AtEnd ? defaults[i] : readers[i](r);
            } catch (BadArgument e) {
                status = Status.BadArgs; message = e.Message;
            }
            if (status == Status.Ok) {
                try {
                    scope.Value = work;
                    value = invoke(args);
                } catch (ThreadAbortException) {
                    throw;
                } catch (OutOfMemoryException e) {
                    status = Status.Memory; message = Describe(e, throwLines);
                } catch (IOException e) when (Native.Errno() == Native.EFBIG || e.HResult == Native.NotSupported) {
                    // Mono reports EFBIG as ERROR_NOT_SUPPORTED; errno may still say EFBIG
                    status = Status.Limit; message = "wrote past the file-size limit (" + Describe(e, throwLines) + ")";
                } catch (Exception e) {
                    status = Status.Error; message = Describe(e, throwLines);
                } finally {
                    scope.Value = null;
                }
            }
        } catch (ThreadAbortException) {
            Thread.ResetAbort();
            status = Status.Interrupted;
        } catch (OutOfMemoryException e) {
            status = Status.Memory; message = e.Message;
        } finally {
            CallConsole.Current = null;
            int stopped = work.End();
            if (stopped > 0)
                console.Write(3, "[functions-nb] stopped " + stopped + " background thread" + (stopped > 1 ? "s" : "")
                    + " still running when " + name + " returned (work a C# function starts must finish before it returns)\n");
        }
        if (status == Status.Ok || status == Status.Error) {
            string kept = KeptDescriptors(fdsBefore) ?? KeptMemory(heapBefore);
            if (kept != null) { status = Status.Limit; message = kept; }
        }
        console.Finish();
        w.Status = status;
        int lenAt = w.Len;
        w.U32(0);
        foreach (var line in console.Lines) { w.U8(line.Key); w.Str(line.Value); }
        w.PatchU32(lenAt, (uint)(w.Len - lenAt - 4));
        if (status == Status.Ok) {
            try {
                writeResult(w, value);
            } catch (Exception e) {
                return Failure(rid, Status.Error, "the result could not be returned: " + Describe(e, throwLines), console);
            }
        } else if (status != Status.Interrupted) {
            w.Str(message);
        }
        return w;
    }

    /// Counts the descriptors a call left open; a function keeping more than FdLimit while the
    /// host runs short is the one that fails (naming what it holds).
    string KeptDescriptors(int before) {
        int after = Native.LowestFreeFd();
        if (before < 0 || after < 0) return null;
        int kept = Interlocked.Add(ref fdsKept, after - before);
        if (kept < 0) Interlocked.CompareExchange(ref fdsKept, 0, kept);
        if (kept <= FdLimit || after <= FdPressure) return null;
        int open = Native.OpenFds();  // exact counts from here on (holes fool the quick probe)
        GC.Collect();
        GC.WaitForPendingFinalizers();  // streams nobody references any more close here
        int now = Native.OpenFds();
        if (open >= 0 && now >= 0) kept = Interlocked.Add(ref fdsKept, now - open);
        if (kept <= FdLimit || now <= FdPressure) return null;
        return name + " keeps " + kept + " file descriptors open across calls (files, sockets, "
            + "watchers held in statics; at most " + FdLimit + " per function): they are closed "
            + "with its AppDomain, which starts fresh on the next call";
    }

    /// Counts the heap a call left live; a function whose calls keep more than its memory limit
    /// across calls (in statics) is the one that fails, naming what it holds. Garbage only
    /// inflates the quick estimate: a full collection confirms it before anyone is blamed.
    string KeptMemory(long before) {
        if (memoryLimit <= 0) return null;
        long after = GC.GetTotalMemory(false);
        long kept = Interlocked.Add(ref memKept, after - before);
        if (kept < 0) Interlocked.CompareExchange(ref memKept, 0, kept);
        if (kept <= memoryLimit) return null;
        long withGarbage = GC.GetTotalMemory(false);
        long live = GC.GetTotalMemory(true);
        kept = Interlocked.Add(ref memKept, Math.Min(0, live - withGarbage));
        if (kept <= memoryLimit) return null;
        Interlocked.Exchange(ref memKept, 0);  // its AppDomain (and what it holds) goes now
        return name + " holds " + (kept >> 20) + " MB across calls (in statics; memory limit "
            + (memoryLimit >> 20) + " MB): it is released with its AppDomain, which starts "
            + "fresh on the next call";
    }

    static WireWriter Failure(uint rid, byte status, string message, CallConsole console) {
        var w = WireWriter.Reply(rid, status);
        int lenAt = w.Len;
        w.U32(0);
        foreach (var line in console.Lines) { w.U8(line.Key); w.Str(line.Value); }
        w.PatchU32(lenAt, (uint)(w.Len - lenAt - 4));
        w.Str(message);
        return w;
    }

    /// "System.InvalidOperationException: bad input 3 at cell line 3"
    internal static string Describe(Exception e, int[] throwLines) {
        string type = e.GetType().FullName ?? e.GetType().Name;
        if (type.StartsWith("__FnbCell+")) type = type.Substring("__FnbCell+".Length);
        string text = type + ": " + e.Message;
        int line = CellLine(e, throwLines);
        if (line > 0) text += " at cell line " + line;
        if (e.InnerException != null && !(e is TargetInvocationException))
            text += " (inner: " + e.InnerException.GetType().Name + ": " + e.InnerException.Message + ")";
        return text;
    }

    /// The cell line of the innermost frame in the cell. Mono 6.8 maps the frame of a `throw`
    /// to the *next* statement (the IL offset right after the throw instruction): when the
    /// exception was thrown in that frame by a `throw` (not raised by the runtime, as a division
    /// by zero is), the line is the nearest `throw` above it (csharp.py lists where they are).
    static int CellLine(Exception e, int[] throwLines) {
        try {
            StackFrame[] frames = new StackTrace(e, true).GetFrames();
            if (frames == null) return 0;
            for (int k = 0; k < frames.Length; k++) {
                StackFrame f = frames[k];
                string file = f.GetFileName();
                int line = f.GetFileLineNumber();
                if (file == null || !file.EndsWith("cell.cs") || line <= 0) continue;
                if (k == 0 && throwLines != null && !RaisedByRuntime(e) && AfterThrow(f)) {
                    int best = 0;
                    foreach (int t in throwLines) if (t < line && t > best) best = t;
                    if (best == 0) foreach (int t in throwLines) if (t == line) best = t;
                    if (best > 0) return best;
                }
                return line;
            }
        } catch (Exception) { }
        return 0;
    }

    static bool RaisedByRuntime(Exception e) {
        return e is DivideByZeroException || e is NullReferenceException || e is IndexOutOfRangeException
            || e is OverflowException || e is InvalidCastException || e is ArrayTypeMismatchException
            || e is StackOverflowException || e is OutOfMemoryException || e is ArithmeticException;
    }

    static bool AfterThrow(StackFrame f) {
        MethodBase m = f.GetMethod();
        MethodBody body = m == null ? null : m.GetMethodBody();
        byte[] il = body == null ? null : body.GetILAsByteArray();
        int o = f.GetILOffset();
        if (il == null || o <= 0 || o > il.Length) return false;
        return il[o - 1] == 0x7A || (o >= 2 && il[o - 2] == 0xFE && il[o - 1] == 0x1A);  // throw, rethrow
    }
}

/// The work of one call: the threads (besides the caller) running it right now.
sealed class CallScope {
    public Thread Caller;
    public bool Ended;
    public readonly List<Thread> Threads = new List<Thread>();

    /// The call returned: aborts the threads still doing its work (after 20 ms for work that
    /// is just finishing: a thread aborted while switching contexts would fail the host fast);
    /// returns how many.
    public int End() {
        List<Thread> left;
        lock (Threads) {
            Ended = true;
            long until = Stopwatch.GetTimestamp() + Stopwatch.Frequency / 50;
            while (Threads.Count > 0) {
                long ms = (until - Stopwatch.GetTimestamp()) * 1000 / Stopwatch.Frequency;
                if (ms <= 0) break;
                Monitor.Wait(Threads, (int)ms);
            }
            left = new List<Thread>(Threads);
            Threads.Clear();
        }
        foreach (Thread t in left) { try { t.Abort(); } catch (Exception) { } }
        return left.Count;
    }
}

sealed class Call {
    public uint Rid;
    public Thread Thread;
    public CallScope Scope;
    public long Deadline;       // Stopwatch ticks
    public long Baseline;       // heap bytes when the call started
    public long NextCheck;      // heap size at which the watchdog next forces a collection
    public bool Running;
    public bool AbortRequested;
    public byte Reason;         // Stop.Timeout / Abort / Memory
    public long Used;
}

// -- the host's side: default AppDomain -----------------------------------------------

sealed class Fn {
    public uint Id;
    public AppDomain Domain;
    public Agent Agent;
    public int TicketRead, TicketWrite;
    public IntPtr Available;
}

static unsafe class Host {
    static int outFd;
    static IntPtr spin;
    static readonly Dictionary<uint, Fn> fns = new Dictionary<uint, Fn>();
    static string hostDir;

    static int Main(string[] args) {
        int inFd = int.Parse(args[0]);
        outFd = int.Parse(args[1]);
        Native.IgnoreFileSizeSignal();
        string seccomp = Native.InstallSeccomp(args.Length > 3 ? args[2] : "-", args.Length > 3 ? args[3] : "-");
        spin = Marshal.AllocHGlobal(8);
        Marshal.WriteInt64(spin, 0);
        hostDir = Path.GetDirectoryName(typeof(Host).Assembly.Location);
        Console.SetOut(new RoutingWriter(1));
        Console.SetError(new RoutingWriter(4));
        CultureInfo.DefaultThreadCurrentCulture = CultureInfo.InvariantCulture;
        var hello = WireWriter.Reply(0, Status.Ready);
        byte[] info = Encoding.UTF8.GetBytes("{\"mono\": \"" + MonoVersion() + "\", \"seccomp\": \"" + seccomp
            + "\", \"pid\": " + Process.GetCurrentProcess().Id + "}");
        hello.Raw(info, 0, info.Length);
        Native.Send(outFd, spin, hello.Finish());
        new Thread(SpareMaker) { IsBackground = true, Name = "fnb-spare" }.Start();
        var header = new byte[WireWriter.HeaderSize];
        while (true) {
            if (!Native.ReadExact(inFd, header, 0, header.Length)) break;
            int len = BitConverter.ToInt32(header, 0);
            if (len < 0 || len > (1 << 30)) break;
            int size = len + header.Length;
            IntPtr mem = Marshal.AllocHGlobal(size);
            byte* p = (byte*)mem;
            Marshal.Copy(header, 0, mem, header.Length);
            if (!Native.ReadExact(inFd, p + header.Length, len)) break;
            if (p[WireWriter.StatusAt] == Op.Call) { Enqueue(mem, size); continue; }
            var frame = new byte[size];
            Marshal.Copy(mem, frame, 0, size);
            Marshal.FreeHGlobal(mem);
            Dispatch(frame);
        }
        Environment.Exit(0);  // the kernel went away: end every thread, including runaway ones
        return 0;
    }

    static string MonoVersion() {
        Type t = Type.GetType("Mono.Runtime");
        MethodInfo m = t == null ? null : t.GetMethod("GetDisplayName", BindingFlags.NonPublic | BindingFlags.Static);
        return m == null ? "?" : ((string)m.Invoke(null, null)).Split(' ')[0];
    }

    /// The function of recent calls by request id (CANCEL names only the request).
    const int Recent = 4096;
    static readonly uint[] recentRid = new uint[Recent], recentFid = new uint[Recent];

    /// Hands a call to a worker of the function's AppDomain: a ticket (frame pointer, length).
    static void Enqueue(IntPtr mem, int size) {
        byte* p = (byte*)mem;
        uint rid = *(uint*)(p + 4), fid = *(uint*)(p + 9);
        Fn fn;
        lock (fns) fns.TryGetValue(fid, out fn);
        if (fn == null) {
            Marshal.FreeHGlobal(mem);
            Send(Agent.ErrorFrame(rid, Status.Gone, "function " + fid + " is not loaded in the host"));
            return;
        }
        lock (recentRid) { recentRid[rid % Recent] = rid; recentFid[rid % Recent] = fid; }
        if (Interlocked.Decrement(ref *(int*)fn.Available) < 0) fn.Agent.AddWorker();  // all busy
        var ticket = new byte[16];
        System.Buffer.BlockCopy(BitConverter.GetBytes((long)mem), 0, ticket, 0, 8);
        System.Buffer.BlockCopy(BitConverter.GetBytes(size), 0, ticket, 8, 4);
        Native.WriteAll(fn.TicketWrite, ticket, 16);  // <= PIPE_BUF: atomic, read whole by one worker
    }

    static void Dispatch(byte[] frame) {
        uint rid = BitConverter.ToUInt32(frame, 4);
        byte op = frame[WireWriter.StatusAt];
        switch (op) {
            case Op.Load:
                new Thread(() => Load(rid, frame)) { IsBackground = true, Name = "fnb-load" }.Start();
                break;
            case Op.Cancel: {
                uint target = BitConverter.ToUInt32(frame, 9);
                byte reason = frame[13] == 2 ? Stop.Timeout : Stop.Abort;
                var targets = new List<Fn>();
                lock (fns) {
                    Fn fn;
                    uint fid;
                    lock (recentRid) fid = recentRid[target % Recent] == target ? recentFid[target % Recent] : 0;
                    if (fid != 0 && fns.TryGetValue(fid, out fn)) targets.Add(fn);
                    else targets.AddRange(fns.Values);
                }
                foreach (Fn fn in targets) {
                    try { if (fn.Agent.Abort(target, reason)) break; } catch (Exception) { }
                }
                break;
            }
            case Op.Unload: {
                uint fid = BitConverter.ToUInt32(frame, 9);
                Fn fn;
                lock (fns) { fns.TryGetValue(fid, out fn); fns.Remove(fid); }
                if (fn != null) new Thread(() => Unload(fn)) { IsBackground = true, Name = "fnb-unload" }.Start();
                break;
            }
            case Op.Ping: {
                int n;
                lock (fns) n = fns.Count;
                var w = WireWriter.Reply(rid, Status.Ok);
                byte[] info = Encoding.UTF8.GetBytes("{\"functions\": " + n + "}");
                w.Raw(info, 0, info.Length);
                Send(w);
                break;
            }
            default:
                Send(Agent.ErrorFrame(rid, Status.HostError, "unknown operation " + op));
                break;
        }
    }

    static void Load(uint rid, byte[] frame) {
        string error = null;
        Fn fn = null;
        try {
            uint fid, memoryMb;
            string typeName, methodName;
            byte[] kinds, code;
            string[] written;
            byte result;
            fixed (byte* fp = frame) {
                var r = new WireReader(fp, frame.Length, 9);
                fid = r.U32();
                memoryMb = r.U32();
                typeName = r.Str();
                methodName = r.Str();
                int n = r.U8();
                kinds = new byte[n];
                written = new string[n];
                for (int i = 0; i < n; i++) { kinds[i] = r.U8(); written[i] = r.Str(); }
                result = r.U8();
                code = r.Bytes();
            }
            var fds = new int[2];
            if (Native.pipe2(fds, 0x80000 /* O_CLOEXEC */) != 0)
                throw new IOException("pipe2 failed: errno " + Marshal.GetLastWin32Error());
            var available = Marshal.AllocHGlobal(8);
            Marshal.WriteInt64(available, 0);
            Spare spare = TakeSpare();
            try {
                error = spare.Agent.Load(code, typeName, methodName, kinds, written, result, (long)memoryMb << 20,
                                         fds[0], outFd, (long)spin, (long)available);
                if (error == null)
                    fn = new Fn { Id = fid, Domain = spare.Domain, Agent = spare.Agent, TicketRead = fds[0],
                                  TicketWrite = fds[1], Available = available };
            } finally {
                if (fn == null) {
                    new Thread(() => { try { AppDomain.Unload(spare.Domain); } catch (Exception) { } }) { IsBackground = true }.Start();
                    Native.close(fds[0]);
                    Native.close(fds[1]);
                    Marshal.FreeHGlobal(available);
                }
            }
            if (fn != null) lock (fns) fns[fid] = fn;
        } catch (Exception e) {
            error = e.GetType().Name + ": " + e.Message;
        }
        Send(error == null ? WireWriter.Reply(rid, Status.Ok) : Agent.ErrorFrame(rid, Status.HostError, error));
    }

    // -- spare AppDomains: creating one takes 100-300 ms, so one is always made in advance ----
    sealed class Spare { public AppDomain Domain; public Agent Agent; }
    static readonly object spareLock = new object();
    static Spare spare;
    static bool spareFailed;
    static int domains;

    static void SpareMaker() {
        while (true) {
            lock (spareLock) { while (spare != null) Monitor.Wait(spareLock); }
            Spare made = null;
            try { made = NewDomain(); } catch (Exception) { }
            lock (spareLock) {
                spare = made;
                spareFailed = made == null;
                Monitor.PulseAll(spareLock);
            }
            if (made == null) Thread.Sleep(1000);
        }
    }

    static Spare TakeSpare() {
        lock (spareLock) {
            while (spare == null && !spareFailed) Monitor.Wait(spareLock);
            Spare s = spare;
            spare = null;
            Monitor.PulseAll(spareLock);  // the maker starts the next one
            if (s != null) return s;
        }
        return NewDomain();  // the maker failed: try here, reporting the error to the load
    }

    static Spare NewDomain() {
        var setup = new AppDomainSetup { ApplicationBase = hostDir, DisallowCodeDownload = true };
        AppDomain domain = AppDomain.CreateDomain("fnb-" + Interlocked.Increment(ref domains), null, setup);
        var agent = (Agent)domain.CreateInstanceAndUnwrap(typeof(Agent).Assembly.FullName, typeof(Agent).FullName);
        agent.Warm();
        return new Spare { Domain = domain, Agent = agent };
    }

    /// Closing the ticket pipe ends the workers (EOF); unloading the AppDomain aborts the rest.
    static void Unload(Fn fn) {
        Native.close(fn.TicketWrite);
        Thread.Sleep(50);
        try { AppDomain.Unload(fn.Domain); } catch (Exception) { }
        Native.close(fn.TicketRead);
        Marshal.FreeHGlobal(fn.Available);
    }

    static void Send(WireWriter frame) { Native.Send(outFd, spin, frame.Finish()); }
}

// -- JSON: a small reader/writer with reflection-based conversion ------------------------

sealed class JsonNumber {
    public readonly string Text;
    public JsonNumber(string text) { Text = text; }
}

sealed class JsonFit : Exception { public JsonFit(string m) : base(m) { } }

static class Json {
    public static object Parse(string s) {
        if (s == null) return null;
        int i = 0;
        object v = Value(s, ref i, 0);
        Ws(s, ref i);
        if (i != s.Length) throw new FormatException("unexpected text at offset " + i);
        return v;
    }

    static void Ws(string s, ref int i) { while (i < s.Length && char.IsWhiteSpace(s[i])) i++; }

    static object Value(string s, ref int i, int depth) {
        if (depth > 200) throw new FormatException("nested too deeply");
        Ws(s, ref i);
        if (i >= s.Length) throw new FormatException("unexpected end");
        char c = s[i];
        if (c == '{') {
            var d = new Dictionary<string, object>();
            i++; Ws(s, ref i);
            if (i < s.Length && s[i] == '}') { i++; return d; }
            while (true) {
                Ws(s, ref i);
                if (i >= s.Length || s[i] != '"') throw new FormatException("expected a key at offset " + i);
                string key = Str(s, ref i);
                Ws(s, ref i);
                if (i >= s.Length || s[i] != ':') throw new FormatException("expected ':' at offset " + i);
                i++;
                d[key] = Value(s, ref i, depth + 1);
                Ws(s, ref i);
                if (i < s.Length && s[i] == ',') { i++; continue; }
                if (i < s.Length && s[i] == '}') { i++; return d; }
                throw new FormatException("expected ',' or '}' at offset " + i);
            }
        }
        if (c == '[') {
            var l = new List<object>();
            i++; Ws(s, ref i);
            if (i < s.Length && s[i] == ']') { i++; return l; }
            while (true) {
                l.Add(Value(s, ref i, depth + 1));
                Ws(s, ref i);
                if (i < s.Length && s[i] == ',') { i++; continue; }
                if (i < s.Length && s[i] == ']') { i++; return l; }
                throw new FormatException("expected ',' or ']' at offset " + i);
            }
        }
        if (c == '"') return Str(s, ref i);
        if (Word(s, ref i, "true")) return true;
        if (Word(s, ref i, "false")) return false;
        if (Word(s, ref i, "null")) return null;
        if (Word(s, ref i, "NaN")) return new JsonNumber("NaN");
        if (Word(s, ref i, "Infinity")) return new JsonNumber("Infinity");
        if (Word(s, ref i, "-Infinity")) return new JsonNumber("-Infinity");
        int start = i;
        while (i < s.Length && "+-0123456789.eE".IndexOf(s[i]) >= 0) i++;
        if (i == start) throw new FormatException("unexpected '" + c + "' at offset " + i);
        return new JsonNumber(s.Substring(start, i - start));
    }

    static bool Word(string s, ref int i, string w) {
        if (string.CompareOrdinal(s, i, w, 0, w.Length) != 0) return false;
        i += w.Length;
        return true;
    }

    static string Str(string s, ref int i) {
        var sb = new StringBuilder();
        i++;
        while (true) {
            if (i >= s.Length) throw new FormatException("unterminated string");
            char c = s[i++];
            if (c == '"') return sb.ToString();
            if (c != '\\') { sb.Append(c); continue; }
            if (i >= s.Length) throw new FormatException("unterminated string");
            char e = s[i++];
            switch (e) {
                case 'n': sb.Append('\n'); break;
                case 't': sb.Append('\t'); break;
                case 'r': sb.Append('\r'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'u':
                    if (i + 4 > s.Length) throw new FormatException("bad \\u escape");
                    sb.Append((char)int.Parse(s.Substring(i, 4), NumberStyles.HexNumber));
                    i += 4;
                    break;
                default: sb.Append(e); break;
            }
        }
    }

    // -- tree -> .NET type -------------------------------------------------------------------
    public static object To(object node, Type t) {
        if (t == typeof(object)) return Plain(node);
        Type under = Nullable.GetUnderlyingType(t);
        if (under != null) { if (node == null) return null; t = under; }
        if (node == null) {
            if (!t.IsValueType) return null;
            throw new JsonFit("expected " + Name(t) + ", got null");
        }
        if (t == typeof(string)) {
            if (node is string) return node;
            throw Mismatch(t, node);
        }
        if (t == typeof(bool)) { if (node is bool) return node; throw Mismatch(t, node); }
        if (t == typeof(char)) {
            var cs = node as string;
            if (cs != null && cs.Length == 1) return cs[0];
            throw Mismatch(t, node);
        }
        if (t.IsEnum) {
            var es = node as string;
            if (es != null) {
                try { return Enum.Parse(t, es, true); } catch (ArgumentException) { throw new JsonFit("'" + es + "' is not a " + t.Name); }
            }
            var en = node as JsonNumber;
            if (en != null) return Enum.ToObject(t, Number(en, Enum.GetUnderlyingType(t)));
            throw Mismatch(t, node);
        }
        if (t.IsPrimitive || t == typeof(decimal)) {
            var n = node as JsonNumber;
            if (n == null) throw Mismatch(t, node);
            return Number(n, t);
        }
        if (t == typeof(DateTime)) {
            var ds = node as string;
            if (ds == null) throw Mismatch(t, node);
            return DateTime.Parse(ds, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);
        }
        if (t == typeof(Guid)) { var gs = node as string; if (gs == null) throw Mismatch(t, node); return new Guid(gs); }
        if (t.IsArray) {
            var list = node as List<object>;
            if (list == null || t.GetArrayRank() != 1) throw Mismatch(t, node);
            Type et = t.GetElementType();
            Array arr = Array.CreateInstance(et, list.Count);
            for (int k = 0; k < list.Count; k++) arr.SetValue(Item(list[k], et, k), k);
            return arr;
        }
        if (t.IsGenericType) {
            Type def = t.GetGenericTypeDefinition();
            Type[] ga = t.GetGenericArguments();
            if (def == typeof(List<>) || def == typeof(IList<>) || def == typeof(ICollection<>) || def == typeof(IEnumerable<>)
                || def == typeof(IReadOnlyList<>) || def == typeof(IReadOnlyCollection<>) || def == typeof(HashSet<>)
                || def == typeof(ISet<>) || def == typeof(Queue<>) || def == typeof(Stack<>) || def == typeof(LinkedList<>)) {
                var list = node as List<object>;
                if (list == null) throw Mismatch(t, node);
                Type concrete = t.IsInterface ? (def == typeof(ISet<>) ? typeof(HashSet<>) : typeof(List<>)).MakeGenericType(ga) : t;
                var items = (IList)Activator.CreateInstance(typeof(List<>).MakeGenericType(ga));
                for (int k = 0; k < list.Count; k++) items.Add(Item(list[k], ga[0], k));
                if (concrete == items.GetType()) return items;
                if (def == typeof(Stack<>)) {  // a Stack built from a sequence pops it in reverse
                    var rev = (IList)Activator.CreateInstance(typeof(List<>).MakeGenericType(ga));
                    for (int k = items.Count - 1; k >= 0; k--) rev.Add(items[k]);
                    items = rev;
                }
                return Activator.CreateInstance(concrete, items);
            }
            if (def == typeof(Dictionary<,>) || def == typeof(IDictionary<,>) || def == typeof(IReadOnlyDictionary<,>)
                || def == typeof(SortedDictionary<,>)) {
                var obj = node as Dictionary<string, object>;
                if (obj == null) throw Mismatch(t, node);
                Type concrete = t.IsInterface ? typeof(Dictionary<,>).MakeGenericType(ga) : t;
                var d = (IDictionary)Activator.CreateInstance(concrete);
                foreach (var kv in obj) {
                    object key;
                    try { key = ga[0] == typeof(string) ? kv.Key : To(new JsonNumber(kv.Key), ga[0]); }
                    catch (JsonFit) { throw new JsonFit("key '" + kv.Key + "' is not a " + Name(ga[0])); }
                    d[key] = Member(kv.Value, ga[1], kv.Key);
                }
                return d;
            }
            if (t.FullName.StartsWith("System.ValueTuple`") || t.FullName.StartsWith("System.Tuple`")) {
                var list = node as List<object>;
                if (list == null || list.Count != ga.Length) throw new JsonFit("expected a list of " + ga.Length + " items for " + Name(t));
                var items = new object[ga.Length];
                for (int k = 0; k < ga.Length; k++) items[k] = Item(list[k], ga[k], k);
                return Activator.CreateInstance(t, items);
            }
        }
        if (t.IsInterface || t.IsAbstract) throw new JsonFit("cannot create an instance of " + Name(t));
        var fields = node as Dictionary<string, object>;
        if (fields == null) throw Mismatch(t, node);
        object o;
        if (t.IsValueType || t.GetConstructor(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic, null, Type.EmptyTypes, null) != null)
            o = Activator.CreateInstance(t, true);
        else
            o = FormatterServices.GetUninitializedObject(t);
        const BindingFlags inst = BindingFlags.Instance | BindingFlags.Public | BindingFlags.IgnoreCase;
        foreach (var kv in fields) {
            FieldInfo f = t.GetField(kv.Key, inst);
            if (f != null && !f.IsInitOnly) { f.SetValue(o, Member(kv.Value, f.FieldType, kv.Key)); continue; }
            PropertyInfo p = t.GetProperty(kv.Key, inst);
            if (p != null && p.CanWrite && p.GetIndexParameters().Length == 0) {
                p.SetValue(o, Member(kv.Value, p.PropertyType, kv.Key), null);
                continue;
            }
            FieldInfo backing = t.GetField("<" + (p != null ? p.Name : kv.Key) + ">k__BackingField", BindingFlags.Instance | BindingFlags.NonPublic);
            if (backing != null) backing.SetValue(o, Member(kv.Value, backing.FieldType, kv.Key));
        }
        return o;
    }

    static object Item(object node, Type t, int index) {
        try { return To(node, t); } catch (JsonFit e) { throw new JsonFit("[" + index + "]: " + e.Message); }
    }

    static object Member(object node, Type t, string key) {
        try { return To(node, t); } catch (JsonFit e) { throw new JsonFit("." + key + ": " + e.Message); }
    }

    static object Number(JsonNumber n, Type t) {
        var inv = CultureInfo.InvariantCulture;
        string s = n.Text;
        try {
            if (t == typeof(double) || t == typeof(float)) ExactInteger(s, t);
            if (t == typeof(double)) return ParseDouble(s);
            if (t == typeof(float)) return (float)ParseDouble(s);  // as a scalar float argument: via the double
            if (t == typeof(decimal)) return decimal.Parse(s, NumberStyles.Float, inv);
            if (s.IndexOfAny(new[] { '.', 'e', 'E', 'N', 'I' }) >= 0)  // a float, even 2.0, is no integer
                throw new JsonFit("expected an integer (" + Name(t) + "), got the float " + s);
            decimal d = decimal.Parse(s, NumberStyles.Float, inv);
            return Convert.ChangeType(d, t, inv);
        } catch (OverflowException) {
            throw new JsonFit(s + " is out of range for " + Name(t));
        } catch (FormatException) {
            throw new JsonFit("expected " + Name(t) + ", got " + s);
        } catch (InvalidCastException) {
            throw new JsonFit("expected " + Name(t) + ", got " + s);
        }
    }

    /// An integer written in JSON for a double/float must be one a double holds exactly (as for
    /// a scalar argument): 2**53 + 1 would round silently.
    static void ExactInteger(string s, Type t) {
        if (s.IndexOfAny(new[] { '.', 'e', 'E', 'N', 'I' }) >= 0) return;  // written as a float
        var inv = CultureInfo.InvariantCulture;
        decimal want;
        if (!decimal.TryParse(s, NumberStyles.AllowLeadingSign, inv, out want))  // beyond 28 digits
            throw new JsonFit("integer " + Clip(s) + " is too large for a " + Name(t) + " (pass it as a float)");
        if (Exactly(double.Parse(s, NumberStyles.Float, inv)) != want)
            throw new JsonFit("integer " + Clip(s) + " has no exact " + Name(t) + " value");
    }

    /// The exact value of a whole double as a decimal (null beyond decimal's range).
    static decimal? Exactly(double d) {
        long bits = BitConverter.DoubleToInt64Bits(d);
        int exp = (int)((bits >> 52) & 0x7FF) - 1075;
        long mant = (bits & 0xFFFFFFFFFFFFFL) | (exp == -1075 ? 0 : 1L << 52);
        if (exp <= 0) return (decimal)(long)d;  // below 2**53: a long holds it
        try {
            decimal v = mant;
            for (int k = 0; k < exp; k++) v *= 2;
            return bits < 0 ? -v : v;
        } catch (OverflowException) {
            return null;
        }
    }

    /// A JSON number as a double, correctly rounded. Mono's double.Parse is not (measured: it
    /// misrounds 1 in 6 of Python's texts for subnormals and about 1 in 300 doubles of extreme
    /// magnitude, and parses "-0.0" as +0.0), so the text is converted here: exactly in double
    /// arithmetic when digits and exponent are small (Clinger's fast path), else with a small
    /// big integer.
    static double ParseDouble(string s) {
        double d;
        if (TryExactDouble(s, out d)) return d;
        d = double.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture);  // NaN, Infinity
        return d == 0 && s.StartsWith("-") ? -d : d;
    }

    static readonly double[] Pow10 = {
        1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
        1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22 };

    static bool TryExactDouble(string s, out double result) {
        result = 0;
        int i = 0, exp10 = 0;
        bool neg = false, dot = false;
        if (i < s.Length && (s[i] == '-' || s[i] == '+')) neg = s[i++] == '-';
        var digits = new List<uint>();
        for (; i < s.Length; i++) {
            char c = s[i];
            if (c >= '0' && c <= '9') {
                if (digits.Count > 0 || c != '0') digits.Add((uint)(c - '0'));
                if (dot) exp10--;
            } else if (c == '.' && !dot) {
                dot = true;
            } else if ((c == 'e' || c == 'E') && i + 1 < s.Length) {
                int e;
                if (!int.TryParse(s.Substring(i + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out e)) return false;
                exp10 += e;
                break;
            } else return false;
        }
        if (digits.Count == 0) {
            result = neg ? BitConverter.Int64BitsToDouble(long.MinValue) : 0.0;  // -0.0 keeps its sign
            return true;
        }
        if (exp10 + digits.Count > 310) return false;  // beyond the largest double: Parse says Infinity
        if (exp10 + digits.Count < -330) { result = neg ? BitConverter.Int64BitsToDouble(long.MinValue) : 0.0; return true; }
        if (digits.Count <= 15 && exp10 >= -22 && exp10 <= 22) {  // exact operands, one rounding
            ulong m = 0;
            foreach (uint dg in digits) m = m * 10 + dg;
            result = exp10 >= 0 ? m * Pow10[exp10] : m / Pow10[-exp10];
            if (neg) result = -result;
            return true;
        }
        // n = digits as a big integer; value = n * 10**exp10
        var n = new List<uint> { 0 };
        foreach (uint dg in digits) BigMulAdd(n, 10, dg);
        int shift = 0;  // value = n * 2**-shift (after scaling)
        bool sticky = false;
        if (exp10 >= 0) {
            for (int k = 0; k < exp10; k++) BigMulAdd(n, 10, 0);
        } else {
            int k = -exp10;
            shift = Math.Max(0, 58 + (int)Math.Ceiling(k * 3.321928094887362) - BigBits(n));
            BigShiftLeft(n, shift);
            for (int step = 0; step < k; step++) if (BigDiv10(n) != 0) sticky = true;
        }
        // round n * 2**-shift to 53 bits (fewer below 2**-1022), ties to even
        int len = BigBits(n);
        int drop = Math.Max(len - 53, -1074 + shift);  // the lowest kept bit is 2**(drop - shift)
        ulong q;
        if (drop <= 0) {
            q = BigLow64(n) << -drop;
        } else {
            bool half = BigBit(n, drop - 1);
            for (int b = 0; b < drop - 1 && !sticky; b++) if (BigBit(n, b)) sticky = true;
            BigShiftRight(n, drop);
            q = BigLow64(n);
            if (half && (sticky || (q & 1) != 0)) q++;
        }
        int lsb = drop - shift;  // value = q * 2**lsb
        if (q == (1UL << 53)) { q >>= 1; lsb++; }
        long bits;
        if (q < (1UL << 52)) bits = (long)q;  // subnormal (lsb == -1074)
        else {
            int biased = lsb + 52 + 1023;
            if (biased >= 2047) return false;
            bits = ((long)biased << 52) | (long)(q - (1UL << 52));
        }
        result = BitConverter.Int64BitsToDouble(bits);
        if (neg) result = -result;
        return true;
    }

    static void BigMulAdd(List<uint> n, uint mul, uint add) {
        ulong carry = add;
        for (int k = 0; k < n.Count; k++) {
            ulong x = (ulong)n[k] * mul + carry;
            n[k] = (uint)x;
            carry = x >> 32;
        }
        if (carry != 0) n.Add((uint)carry);
    }

    static uint BigDiv10(List<uint> n) {
        ulong rem = 0;
        for (int k = n.Count - 1; k >= 0; k--) {
            ulong x = (rem << 32) | n[k];
            n[k] = (uint)(x / 10);
            rem = x % 10;
        }
        while (n.Count > 1 && n[n.Count - 1] == 0) n.RemoveAt(n.Count - 1);
        return (uint)rem;
    }

    static int BigBits(List<uint> n) {
        for (int k = n.Count - 1; k >= 0; k--)
            if (n[k] != 0) { int b = 32; while ((n[k] >> (b - 1)) == 0) b--; return k * 32 + b; }
        return 0;
    }

    static bool BigBit(List<uint> n, int bit) {
        int k = bit / 32;
        return k < n.Count && ((n[k] >> (bit % 32)) & 1) != 0;
    }

    static void BigShiftLeft(List<uint> n, int bits) {
        int limbs = bits / 32, rest = bits % 32;
        if (rest != 0) BigMulAdd(n, 1u << rest, 0);
        n.InsertRange(0, new uint[limbs]);
    }

    static void BigShiftRight(List<uint> n, int bits) {
        int limbs = Math.Min(bits / 32, n.Count), rest = bits % 32;
        n.RemoveRange(0, limbs);
        if (n.Count == 0) { n.Add(0); return; }
        if (rest == 0) return;
        for (int k = 0; k < n.Count; k++) {
            ulong hi = k + 1 < n.Count ? n[k + 1] : 0;
            n[k] = (uint)((((hi << 32) | n[k]) >> rest));
        }
    }

    static ulong BigLow64(List<uint> n) {
        return ((ulong)(n.Count > 1 ? n[1] : 0) << 32) | n[0];
    }

    static object Plain(object node) {
        var n = node as JsonNumber;
        if (n != null) {
            long l;
            ulong u;
            if (long.TryParse(n.Text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out l)) return l;
            if (ulong.TryParse(n.Text, NumberStyles.None, CultureInfo.InvariantCulture, out u)) return u;
            if (n.Text.IndexOfAny(new[] { '.', 'e', 'E', 'N', 'I' }) < 0)  // an integer a double would round
                throw new JsonFit("integer " + Clip(n.Text) + " is beyond 64 bits (an object holds long or ulong integers)");
            return ParseDouble(n.Text);
        }
        var list = node as List<object>;
        if (list != null) { for (int k = 0; k < list.Count; k++) list[k] = Plain(list[k]); return list; }
        var d = node as Dictionary<string, object>;
        if (d != null) {
            foreach (string key in new List<string>(d.Keys)) d[key] = Plain(d[key]);
            return d;
        }
        return node;
    }

    static JsonFit Mismatch(Type t, object node) {
        string got = node is string ? "string \"" + Clip((string)node) + "\""
            : node is JsonNumber ? "number " + ((JsonNumber)node).Text
            : node is bool ? "bool" : node is List<object> ? "a list" : node is Dictionary<string, object> ? "an object" : "null";
        return new JsonFit("expected " + Name(t) + ", got " + got);
    }

    static string Clip(string s) { return s.Length > 40 ? s.Substring(0, 40) + "..." : s; }

    static string Name(Type t) {
        if (t == typeof(int)) return "int";
        if (t == typeof(long)) return "long";
        if (t == typeof(double)) return "double";
        if (t == typeof(float)) return "float";
        if (t == typeof(string)) return "string";
        if (t == typeof(bool)) return "bool";
        if (!t.IsGenericType) return t.Name;
        string n = t.Name.Substring(0, t.Name.IndexOf('`'));
        var args = new List<string>();
        foreach (Type a in t.GetGenericArguments()) args.Add(Name(a));
        return n + "<" + string.Join(", ", args) + ">";
    }

    // -- .NET value -> JSON text ---------------------------------------------------------------
    public static string Write(object v) {
        var sb = new StringBuilder();
        Write(sb, v, 0);
        return sb.ToString();
    }

    static void Write(StringBuilder sb, object v, int depth) {
        if (depth > 200) throw new InvalidOperationException("the result is nested more than 200 levels deep (a cycle?)");  // as deep as arguments may be
        var inv = CultureInfo.InvariantCulture;
        if (v == null) { sb.Append("null"); return; }
        if (v is string) { Quote(sb, (string)v); return; }
        if (v is bool) { sb.Append((bool)v ? "true" : "false"); return; }
        if (v is char) { Quote(sb, v.ToString()); return; }
        // "G17", not "R": Mono's "R" sometimes picks 15 digits that read back as another double
        // (measured: 1 in 15 subnormals, 1 in 200 doubles); a float is written as its exact value
        if (v is double) { Real(sb, (double)v, ((double)v).ToString("G17", CultureInfo.InvariantCulture)); return; }
        if (v is float) { Real(sb, (float)v, ((double)(float)v).ToString("G17", CultureInfo.InvariantCulture)); return; }
        Type t = v.GetType();
        if (t.IsEnum) { Quote(sb, v.ToString()); return; }
        if (t.IsPrimitive || v is decimal) { sb.Append(Convert.ToString(v, inv)); return; }
        if (v is DateTime) { Quote(sb, ((DateTime)v).ToString("o", inv)); return; }
        if (v is DateTimeOffset) { Quote(sb, ((DateTimeOffset)v).ToString("o", inv)); return; }
        if (v is Guid || v is TimeSpan) { Quote(sb, Convert.ToString(v, inv)); return; }
        var dict = v as IDictionary;
        if (dict != null) {
            sb.Append('{');
            bool first = true;
            foreach (DictionaryEntry e in dict) {
                if (!first) sb.Append(',');
                first = false;
                Quote(sb, Convert.ToString(e.Key, inv));
                sb.Append(':');
                Write(sb, e.Value, depth + 1);
            }
            sb.Append('}');
            return;
        }
        if (t.IsGenericType && (t.FullName.StartsWith("System.ValueTuple`") || t.FullName.StartsWith("System.Tuple`"))) {
            sb.Append('[');
            int k = 0;
            foreach (FieldInfo f in t.GetFields(BindingFlags.Instance | BindingFlags.Public)) {
                if (k++ > 0) sb.Append(',');
                Write(sb, f.GetValue(v), depth + 1);
            }
            if (k == 0) {
                foreach (PropertyInfo p in t.GetProperties(BindingFlags.Instance | BindingFlags.Public)) {
                    if (k++ > 0) sb.Append(',');
                    Write(sb, p.GetValue(v, null), depth + 1);
                }
            }
            sb.Append(']');
            return;
        }
        var seq = v as IEnumerable;
        if (seq != null) {
            sb.Append('[');
            bool first = true;
            foreach (object item in seq) {
                if (!first) sb.Append(',');
                first = false;
                Write(sb, item, depth + 1);
            }
            sb.Append(']');
            return;
        }
        sb.Append('{');
        bool firstMember = true;
        foreach (FieldInfo f in t.GetFields(BindingFlags.Instance | BindingFlags.Public)) {
            if (!firstMember) sb.Append(',');
            firstMember = false;
            Quote(sb, f.Name);
            sb.Append(':');
            Write(sb, f.GetValue(v), depth + 1);
        }
        foreach (PropertyInfo p in t.GetProperties(BindingFlags.Instance | BindingFlags.Public)) {
            if (!p.CanRead || p.GetIndexParameters().Length > 0) continue;
            if (!firstMember) sb.Append(',');
            firstMember = false;
            Quote(sb, p.Name);
            sb.Append(':');
            Write(sb, p.GetValue(v, null), depth + 1);
        }
        sb.Append('}');
    }

    static void Real(StringBuilder sb, double d, string r) {
        if (d == 0 && BitConverter.DoubleToInt64Bits(d) < 0) sb.Append("-0.0");  // "R" drops the sign
        else if (double.IsNaN(d)) sb.Append("NaN");
        else if (double.IsPositiveInfinity(d)) sb.Append("Infinity");
        else if (double.IsNegativeInfinity(d)) sb.Append("-Infinity");
        else {
            sb.Append(r);
            if (r.IndexOfAny(new[] { '.', 'E', 'e' }) < 0) sb.Append(".0");  // stays a float in Python
        }
    }

    static void Quote(StringBuilder sb, string s) {
        sb.Append('"');
        foreach (char c in s) {
            switch (c) {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4"));
                    else sb.Append(c);
                    break;
            }
        }
        sb.Append('"');
    }
}

}
