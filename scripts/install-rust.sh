#!/usr/bin/env bash
# Current stable Rust for functions-nb's Rust cells: Debian bookworm-security's rustc-web (1.96)
# unpacked into a private prefix (installing it with apt would remove Debian's rustc 1.63, which
# owns /usr/bin/rustc too), plus the wasm32-unknown-unknown standard library built once, offline,
# from rust-web-src's vendored crates. Idempotent: a second run checks the stamp and exits.
#
#   scripts/install-rust.sh            (as root; `make setup` runs it)
#   FUNCTIONS_NB_RUST_HOME=/elsewhere scripts/install-rust.sh
#
# The layout languages/rust.py expects: $PREFIX/usr/bin/{rustc,cargo} (given an RPATH to the
# compiler's shared libraries in $PREFIX/usr/lib/<multiarch>/), the sysroot $PREFIX/usr (rustc's
# default there) with lib/rustlib/wasm32-unknown-unknown/lib, and the stamp
# $PREFIX/.fnb-installed (Debian version, recipe) written last.
set -euo pipefail

PREFIX=${FUNCTIONS_NB_RUST_HOME:-/opt/functions-nb/rust}
# Bump when the steps below change what ends up in the prefix (a re-run then rebuilds).
RECIPE=2
STAMP=$PREFIX/.fnb-installed
TARGET=wasm32-unknown-unknown
PACKAGES=(rustc-web cargo-web libstd-rust-web-dev rust-web-src)

libdir_of() { dirname "$(ls "$1"/usr/lib/*/librustc_driver-*.so 2>/dev/null | head -n1)"; }

if [ -f "$STAMP" ] && grep -qx "recipe $RECIPE" "$STAMP" &&
   "$PREFIX/usr/bin/rustc" --version >/dev/null 2>&1; then
  exit 0
fi

say() { echo "install-rust: $*"; }
die() { echo "install-rust: $*" >&2; exit 1; }
command -v apt-get >/dev/null || die "needs Debian's apt-get (bookworm with bookworm-security)"
mkdir -p "$(dirname "$PREFIX")" 2>/dev/null && [ -w "$(dirname "$PREFIX")" ] ||
  die "cannot write $(dirname "$PREFIX"): run as root or set FUNCTIONS_NB_RUST_HOME"

say "installing rustc-web (Debian bookworm-security) into $PREFIX"
apt-get update -qq
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
chmod 755 "$WORK"
id _apt >/dev/null 2>&1 && chown _apt "$WORK"  # apt-get download's sandbox user writes here
cd "$WORK"
apt-get download -qq "${PACKAGES[@]}" >/dev/null

# the compiler's own libraries (libstd-rust-web-<ver>, libllvm<N>) go into the prefix as well;
# every other dependency is an ordinary system package, installed if missing
first_alternatives() {  # a Depends field -> package names (first alternative, no versions)
  tr ',' '\n' | sed -e 's/|.*//' -e 's/(.*)//' -e 's/:any//' -e 's/[[:space:]]//g' | grep -v '^$' || true
}
private=()
system=()
seen=" ${PACKAGES[*]} "
queue=(*.deb)
while [ ${#queue[@]} -gt 0 ]; do
  deb=${queue[0]}; queue=("${queue[@]:1}")
  for dep in $(dpkg-deb -f "$deb" Depends | first_alternatives); do
    case " $seen " in *" $dep "*) continue ;; esac
    seen="$seen $dep "
    case "$dep" in
      libstd-rust-web-*|libllvm[0-9]*)
        apt-get download -qq "$dep" >/dev/null
        private+=("$dep"); queue+=("$(ls "$dep"_*.deb | head -n1)") ;;
      rustc-web|cargo-web|libstd-rust-web-dev|rust-web-src) ;;
      libc-dev) system+=(libc6-dev) ;;  # virtual; Debian's C library headers provide it
      *) system+=("$dep") ;;
    esac
  done
done
missing=()
for dep in "${system[@]}"; do dpkg -s "$dep" >/dev/null 2>&1 || missing+=("$dep"); done
if [ ${#missing[@]} -gt 0 ]; then
  say "installing the libraries it links: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# lld 14 links the wasm modules (rust-web-llvm would pull in llvm-22 for its lld); patchelf
# points the binaries at their own libraries
for tool in lld patchelf; do
  dpkg -s $tool >/dev/null 2>&1 ||
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $tool >/dev/null
done

VERSION=$(dpkg-deb -f rustc-web_*.deb Version)
# everything is built in a stage beside the prefix, which replaces it only when complete
STAGE=$PREFIX.new.$$
trap 'rm -rf "$WORK" "$STAGE"' EXIT
rm -rf "$STAGE"
mkdir -p "$STAGE"
for deb in *.deb; do dpkg-deb -x "$deb" "$STAGE"; done
SRC=$(ls -d "$STAGE"/usr/src/rustc-*/ | head -n1)
[ -d "$SRC/library/vendor" ] ||
  die "rustc-web $VERSION has no vendored standard-library crates (library/vendor): the wasm32 std \
cannot be built offline; bookworm-security's rustc-web 1.96 has them (is bookworm-security in \
/etc/apt/sources.list?)"
rm -rf "$SRC/src" "$SRC/compiler" "$STAGE/usr/share/doc" "$STAGE/usr/share/man"  # not needed: ~370 MB
LIBDIR=$(libdir_of "$STAGE")
# rustc and cargo find librustc_driver and libLLVM beside them without LD_LIBRARY_PATH (an
# RPATH, unlike a RUNPATH, also serves the libraries' own dependencies)
for bin in "$STAGE"/usr/bin/*; do
  [ "$(head -c4 "$bin" | tail -c3)" = ELF ] || continue
  patchelf --force-rpath --set-rpath "\$ORIGIN/../lib/$(basename "$LIBDIR")" "$bin"
done

# the wasm32 standard library, built from the vendored sources with no network
say "building the $TARGET standard library (about a minute)"
BUILD=$WORK/std
mkdir -p "$BUILD/src" "$BUILD/cargo-home"
cat > "$BUILD/Cargo.toml" <<'EOF'
[package]
name = "fnb_std"
version = "0.0.0"
edition = "2024"
[lib]
path = "src/lib.rs"
[profile.release]
panic = "abort"
EOF
: > "$BUILD/src/lib.rs"
cat > "$BUILD/cargo-home/config.toml" <<EOF
[source.crates-io]
replace-with = "vendored"
[source.vendored]
directory = "$SRC/library/vendor"
[net]
offline = true
EOF
# (bitcode so that LTO can use it; source paths as they will be once the stage is the prefix)
(cd "$BUILD" && env CARGO_HOME="$BUILD/cargo-home" RUSTC="$STAGE/usr/bin/rustc" RUSTC_BOOTSTRAP=1 \
   RUSTFLAGS="-Cembed-bitcode=yes --remap-path-prefix=$STAGE=$PREFIX" \
   "$STAGE/usr/bin/cargo" build -q --release --target $TARGET -Zbuild-std=std,panic_abort) ||
  die "building the $TARGET standard library failed"
LIB=$STAGE/usr/lib/rustlib/$TARGET/lib
mkdir -p "$LIB"
cp "$BUILD"/target/$TARGET/release/deps/*.rlib "$LIB"/
rm -f "$LIB"/libfnb_std-*.rlib

# a check: edition 2024 code using a method newer than Debian's 1.63, linked by lld 14
cat > "$WORK/check.rs" <<'EOF'
#[unsafe(export_name = "check")]
pub extern "C" fn check(n: u32) -> u32 { let v: Vec<u32> = (0..n).filter(|i| i.is_multiple_of(3)).collect(); v.len() as u32 }
EOF
"$STAGE/usr/bin/rustc" --edition 2024 --crate-type cdylib --target $TARGET --sysroot "$STAGE/usr" \
  -C opt-level=2 -C panic=abort -C strip=symbols -C linker=wasm-ld-14 -o "$WORK/check.wasm" \
  "$WORK/check.rs" || die "the installed rustc cannot build a $TARGET module"
printf '%s\nrecipe %s\n' "$VERSION" "$RECIPE" > "$STAGE/.fnb-installed"
rm -rf "$PREFIX.old"
if [ -e "$PREFIX" ]; then mv "$PREFIX" "$PREFIX.old"; fi
mv "$STAGE" "$PREFIX"
rm -rf "$PREFIX.old"
say "$("$PREFIX/usr/bin/rustc" --version) in $PREFIX"
