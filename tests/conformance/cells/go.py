"""Go cells (wasip1 reactor in wasmtime: one instance per function)."""

from __future__ import annotations

from ..spec import Cells


def _id(ty: str) -> str:
    return "func {name}(x TYPE) TYPE {{\n\treturn x\n}}\n".replace("TYPE", ty)


CELLS = Cells(
    language="go",
    identity={
        "i32": _id("int32"), "u32": _id("uint32"), "i64": _id("int64"), "u64": _id("uint64"),
        "f32": _id("float32"), "f64": _id("float64"), "bool": _id("bool"), "str": _id("string"),
        "bytes": _id("[]byte"), "list": _id("[]any"), "dict": _id("map[string]any"),
        "f64[]": _id("[]float64"),
    },
    compile_error="func broken(a int32) int32 {\n\treturn a + missing\n}\n",
    compile_error_line=2,
    boom='import "fmt"\n\nfunc boom(x int32) int32 {\n\tif x > 0 {\n'
         '\t\tpanic(fmt.Sprintf("bad input %d", x))\n\t}\n\treturn x\n}\n',
    boom_line=5,
    spin="func spin(n int64) int64 {\n\tx := n\n\tfor n != 0 {\n\t\tx = x*31 + 7\n\t}\n\treturn x\n}\n",
    bomb="func bomb(mb int32) int32 {\n\tkept := [][]byte{}\n\tfor i := int32(0); i < mb; i++ {\n"
         "\t\tb := make([]byte, 1<<20)\n\t\tfor j := range b {\n\t\t\tb[j] = 1\n\t\t}\n"
         "\t\tkept = append(kept, b)\n\t}\n\treturn int32(len(kept))\n}\n",
    escape='''import (
	"fmt"
	"net"
	"os"
	"os/exec"
)

func escape(what string, arg string) string {
	var err error
	switch what {
	case "read":
		var b []byte
		if b, err = os.ReadFile(arg); err == nil {
			return string(b)
		}
	case "write":
		if err = os.WriteFile(arg, []byte("escaped"), 0o644); err == nil {
			return "written"
		}
	case "connect":
		var c net.Conn
		if c, err = net.Dial("tcp", arg); err == nil {
			c.Write([]byte("escaped"))
			c.Close()
			return "connected"
		}
	case "spawn":
		var out []byte
		if out, err = exec.Command("/bin/sh", "-c", arg).Output(); err == nil {
			return string(out)
		}
	case "env":
		return fmt.Sprint(os.Getenv(arg), os.Environ())
	}
	return fmt.Sprint("refused: ", err)
}
''',
    talk='import (\n\t"fmt"\n\t"os"\n\t"unicode/utf8"\n)\n\nfunc talk(s string) int {\n'
         '\tfmt.Println("out: " + s)\n\tfmt.Fprintln(os.Stderr, "err: "+s)\n'
         '\treturn utf8.RuneCountInString(s)\n}\n',
    linger='''import (
	"runtime"
	"sync/atomic"
	"time"
)

var count atomic.Int64

func linger(op string) int64 {
	if op == "start" {
		go func() {
			for {
				count.Add(1)
				runtime.Gosched()
			}
		}()
		time.Sleep(50 * time.Millisecond) // the goroutine is running when the call returns
	}
	return count.Load()
}
''',
    hoard='''var kept [][]byte

func hoard(mb int32) int32 {
	for i := int32(0); i < mb; i++ {
		b := make([]byte, 1<<20)
		for j := range b {
			b[j] = 1
		}
		kept = append(kept, b)
	}
	return int32(len(kept))
}
''',
    hoard_fds=None,
    victim=None,
    attacker=None,
    not_applicable={
        "hoard_fds": "the function's WASI has no preopened directory: no file can be opened",
        "isolation": "each function is its own WebAssembly instance: there is no shared host "
                     "state for one function to reach another through",
    },
)
