#!/usr/bin/env bash
# Packaging check, run by .ci/run after the tests (as root): builds the static binary once,
# proves it is static and runs it (a replay, and audit in a throwaway namespace), writes the
# man page and completions with it, packages it with cargo-deb, installs the .deb with
# dpkg, runs the installed binary on the installed recording, and removes the package.
# Owns: target/pkg/, the namespace ctscope-pkg-<pid>, the 'ctscope' dpkg package it installs.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET=x86_64-unknown-linux-gnu
TDIR=${CARGO_TARGET_DIR:-target}
BIN=$TDIR/$TARGET/release/ctscope
NS=ctscope-pkg-$$
PKG=target/pkg
WORK=$(mktemp -d)
cleanup() {
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
step() { echo "package: $*"; }
fail() { echo "package: FAILED: $*" >&2; exit 1; }

step "static build ($TARGET, +crt-static)"
start=$SECONDS
RUSTFLAGS='-C target-feature=+crt-static' cargo build --locked --release --target "$TARGET"
step "built in $((SECONDS - start)) s: $(du -h "$BIN" | cut -f1) $BIN"

# Static means no program interpreter and no NEEDED libraries.
if readelf -lW "$BIN" | grep -q 'INTERP' || readelf -dW "$BIN" | grep -q '(NEEDED)'; then
  readelf -dW "$BIN" | grep NEEDED >&2 || true
  fail "$BIN is dynamically linked"
fi
step "statically linked (no INTERP, no NEEDED)"

"$BIN" --version
"$BIN" list --replay assets/lab-helpers.ctrec > "$WORK/list.txt"
[ -s "$WORK/list.txt" ] || fail "list --replay printed nothing"
step "list --replay: $(wc -l < "$WORK/list.txt") lines"

# audit: 0 clean, 1 findings are both a successful look; 2 is "could not look".
ip netns add "$NS"
rc=0
"$BIN" audit --netns "$NS" > "$WORK/audit.txt" 2>&1 || rc=$?
cat "$WORK/audit.txt"
[ "$rc" -le 1 ] || fail "audit in $NS exited $rc"
step "audit in a fresh namespace: exit $rc"

mkdir -p "$PKG"
"$BIN" man > "$PKG/ctscope.1"
"$BIN" completions bash > "$PKG/ctscope.bash"
"$BIN" completions zsh > "$PKG/_ctscope"
"$BIN" completions fish > "$PKG/ctscope.fish"

if ! cargo deb --version >/dev/null 2>&1; then
  step "installing cargo-deb"
  cargo install cargo-deb --locked
fi
start=$SECONDS
# --no-build: package the static binary built above, not a second (dynamic) build.
DEB=$(cargo deb --no-build --target "$TARGET" --output "$WORK/" | tail -n1)
[ -f "$DEB" ] || fail "cargo deb wrote no package"
step "$(basename "$DEB") in $((SECONDS - start)) s"
dpkg-deb --info "$DEB" | grep -E 'Recommends|Installed-Size'
dpkg-deb --contents "$DEB"

if dpkg-query -W -f='${Status}' ctscope 2>/dev/null | grep -q "install ok installed"; then
  fail "a ctscope package is already installed here; not replacing it"
fi
# The installed files only: run from an empty directory, so nothing of the checkout is used.
cd "$WORK"
dpkg -i "$DEB"
rc=0
(
  set -e
  /usr/bin/ctscope --version
  /usr/bin/ctscope list --replay /usr/share/ctscope/lab-helpers.ctrec | head -n 5
  [ "$(/usr/bin/ctscope list --replay /usr/share/ctscope/lab-helpers.ctrec | wc -l)" -gt 0 ]
  man -w ctscope
  test -f /usr/share/bash-completion/completions/ctscope
  test -f /usr/share/doc/ctscope/copyright
  test -f /usr/share/doc/ctscope/LICENSE
  test -f /usr/share/ctscope/exporter/ctscope-exporter.service
) || rc=$?
dpkg -r ctscope
[ "$rc" -eq 0 ] || fail "the installed package did not run"
! command -v ctscope >/dev/null || [ "$(command -v ctscope)" != /usr/bin/ctscope ] ||
  fail "dpkg -r left /usr/bin/ctscope"
step "installed, ran from /usr/bin and /usr/share/ctscope, removed"
