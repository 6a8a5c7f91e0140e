"""C# cells (one AppDomain per function in the shared Mono host)."""

from __future__ import annotations

from ..spec import Cells


def _id(ty: str) -> str:
    return "public static TYPE {name}(TYPE x) {{\n    return x;\n}}\n".replace("TYPE", ty)


CELLS = Cells(
    language="csharp",
    identity={
        "i32": _id("int"), "u32": _id("uint"), "i64": _id("long"), "u64": _id("ulong"),
        "f32": _id("float"), "f64": _id("double"), "bool": _id("bool"), "str": _id("string"),
        "bytes": _id("byte[]"), "list": _id("object"), "dict": _id("object"),
        "f64[]": _id("double[]"),
    },
    compile_error='public static int broken(int a) {\n    int b = "text";\n    return a + b;\n}\n',
    compile_error_line=2,
    boom="using System;\n\npublic static int boom(int x) {\n    if (x > 0)\n"
         '        throw new InvalidOperationException("bad input " + x);\n    return x;\n}\n',
    boom_line=5,
    spin="public static long spin(long n) {\n    long x = n;\n    while (n != 0) { x = x * 31 + 1; }\n"
         "    return x;\n}\n",
    bomb="using System.Collections.Generic;\n\npublic static int bomb(int mb) {\n"
         "    var kept = new List<byte[]>();\n    for (int i = 0; i < mb; i++) {\n"
         "        var b = new byte[1 << 20];\n        for (int j = 0; j < b.Length; j += 4096) b[j] = 1;\n"
         "        kept.Add(b);\n    }\n    return kept.Count;\n}\n",
    escape='''using System;
using System.Collections;
using System.Diagnostics;
using System.IO;
using System.Net.Sockets;
using System.Text;

public static string escape(string what, string arg) {
    try {
        switch (what) {
            case "read": return File.ReadAllText(arg);
            case "write": File.WriteAllText(arg, "escaped"); return "written";
            case "connect": {
                var parts = arg.Split(':');
                using (var c = new TcpClient(parts[0], int.Parse(parts[1])))
                    c.GetStream().Write(Encoding.ASCII.GetBytes("escaped"), 0, 7);
                return "connected";
            }
            case "spawn": {
                var info = new ProcessStartInfo("/bin/sh", "-c \\"" + arg + "\\"") {
                    UseShellExecute = false, RedirectStandardOutput = true };
                using (var p = Process.Start(info)) return p.StandardOutput.ReadToEnd();
            }
            case "env": {
                var all = new StringBuilder(Environment.GetEnvironmentVariable(arg) + " ");
                foreach (DictionaryEntry e in Environment.GetEnvironmentVariables())
                    all.Append(e.Key + "=" + e.Value + ";");
                return all.ToString();
            }
        }
    } catch (Exception e) {
        return "refused: " + e.GetType().Name + ": " + e.Message;
    }
    return "unknown";
}
''',
    talk="using System;\n\npublic static int talk(string s) {\n    Console.WriteLine(\"out: \" + s);\n"
         "    Console.Error.WriteLine(\"err: \" + s);\n    return s.Length;\n}\n",
    linger='''using System.Threading;

static long count = 0;

public static long linger(string op) {
    if (op == "start") {
        var t = new Thread(() => { while (true) Interlocked.Increment(ref count); });
        t.IsBackground = true;
        t.Start();
        Thread.Sleep(50);  // running when the call returns
    }
    return Interlocked.Read(ref count);
}
''',
    hoard='''using System.Collections.Generic;

static List<byte[]> kept = new List<byte[]>();

public static int hoard(int mb) {
    for (int i = 0; i < mb; i++) {
        var b = new byte[1 << 20];
        for (int j = 0; j < b.Length; j += 4096) b[j] = 1;
        kept.Add(b);
    }
    return kept.Count;
}
''',
    hoard_fds='''using System.Collections.Generic;
using System.IO;

static List<FileStream> held = new List<FileStream>();

public static int hoard_fds(int n) {
    for (int i = 0; i < n; i++)
        held.Add(new FileStream(Path.GetTempFileName(), FileMode.Open, FileAccess.ReadWrite,
                                FileShare.ReadWrite, 4096, FileOptions.DeleteOnClose));
    return held.Count;
}

public static int one_file(int x) {
    var path = Path.GetTempFileName();
    File.WriteAllBytes(path, new byte[x]);
    int n = File.ReadAllBytes(path).Length;
    File.Delete(path);
    return n;
}
''',
    victim='''using System.Linq;

static string VICTIM_SECRET = "victim-secret-5f1c9e";

public static string victim(string x) {
    return "ok:" + new string(x.OrderBy(c => c).ToArray());
}
''',
    attacker='''using System;
using System.Collections.Generic;
using System.Reflection;

public static string attacker(string s) {
    var found = new List<string>();
    var flags = BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic;
    foreach (var asm in AppDomain.CurrentDomain.GetAssemblies()) {
        Type[] types;
        try { types = asm.GetTypes(); } catch (ReflectionTypeLoadException e) { types = e.Types; }
        foreach (var t in types) {
            if (t == null) continue;
            var f = t.GetField("VICTIM_SECRET", flags);
            if (f == null) continue;
            found.Add(asm.GetName().Name + ": " + f.GetValue(null));
            f.SetValue(null, "changed");
        }
    }
    return found.Count == 0 ? "nothing" : string.Join(" ", found);
}
''',
)
