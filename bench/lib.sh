# Shared by bench/engine.sh and bench/tui.sh (sourced, not run): a throwaway namespace
# holding N generated entries, the host nf_conntrack_max raised for it and restored on
# exit, the release build, and small number helpers. Owns setup and cleanup only; the
# measurements and their tables live in the scripts that source it.

# Exit hooks, run last-registered first by bench_cleanup (the scripts' EXIT trap).
BENCH_HOOKS=()
bench_at_exit() { BENCH_HOOKS+=("$1"); }
bench_cleanup() {
  local i
  for (( i = ${#BENCH_HOOKS[@]} - 1; i >= 0; i-- )); do eval "${BENCH_HOOKS[i]}" || true; done
}

# bench_setup PREFIX NEED: creates namespace "$PREFIX-$$" as $NS and a temp dir as $TMP;
# raises the host's nf_conntrack_max to NEED if lower (a namespace cannot exceed it; the
# per-namespace sysctl is read-only in a child netns on some kernels) and restores it on
# exit (unless someone else changed it meanwhile). Sets the EXIT trap (and turns
# INT/TERM/HUP into a clean exit).
bench_setup() {
  local prefix=$1 need=$2
  NS=$prefix-$$
  TMP=$(mktemp -d)
  BENCH_OLD_MAX=$(sysctl -n net.netfilter.nf_conntrack_max)
  trap bench_cleanup EXIT
  trap 'exit 130' INT TERM HUP
  bench_at_exit 'rm -rf "$TMP"'
  # Restore only what we raised, and only if nobody changed it since.
  if [ "$BENCH_OLD_MAX" -lt "$need" ]; then
    sysctl -qw net.netfilter.nf_conntrack_max="$need"
    BENCH_SET_MAX=$need
    bench_at_exit '[ "$(sysctl -n net.netfilter.nf_conntrack_max)" = "$BENCH_SET_MAX" ] &&
      sysctl -qw net.netfilter.nf_conntrack_max="$BENCH_OLD_MAX"'
  fi
  ip netns add "$NS"
  bench_at_exit 'ip netns del "$NS" 2>/dev/null'
  ip netns exec "$NS" sysctl -qw net.netfilter.nf_conntrack_max="$need" 2>/dev/null || true
}

# bench_build: the binaries every benchmark uses ($B: examples/bench, $CT: ctscope), built
# with the `profiling` profile (release code plus line tables, so `perf report` can name
# source lines; `[profile.release]` carries no debug info, to keep `cargo install` small).
bench_build() {
  cargo build -q --profile profiling --example bench --bin ctscope
  local dir="${CARGO_TARGET_DIR:-target}/profiling"
  B=$dir/examples/bench
  CT=$dir/ctscope
}

# bench_load N [TIMEOUT]: write N generated entries to $TMP/entries, load them into $NS
# with `conntrack -R`, set $LOADED to the table's count; $BENCH_NAT_SHARE (0..1), when set,
# is the share of entries generated NATed (gen_entries.py). With TIMEOUT, every entry gets
# that timeout in seconds: the generator's 30 s ICMP and 120 s UDP entries would expire
# during a long run, and their DESTROY events would make a "steady" table anything but.
bench_load() {
  echo "loading $1 entries (bench/gen_entries.py | conntrack -R)"
  if [ -n "${2:-}" ]; then
    python3 bench/gen_entries.py "$1" ${BENCH_NAT_SHARE:+"$BENCH_NAT_SHARE"} | sed "s/ -t [0-9]*/ -t $2/" > "$TMP/entries"
  else
    python3 bench/gen_entries.py "$1" ${BENCH_NAT_SHARE:+"$BENCH_NAT_SHARE"} > "$TMP/entries"
  fi
  ip netns exec "$NS" conntrack -R "$TMP/entries" >/dev/null 2>&1 || true
  LOADED=$(ip netns exec "$NS" conntrack -C)
  echo "table holds $LOADED entries"
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# p95 of numbers on stdin (nearest rank).
p95() { sort -n | awk '{a[NR]=$1} END {i=int(NR*0.95+0.999); if (i<1) i=1; print a[i]}'; }
m() { printf '%s\n' "$@" | median; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
# Wall seconds of a command, via bash's TIMEFORMAT.
wall() { local t; TIMEFORMAT=%R; t=$( { time "$@" >/dev/null 2>&1; } 2>&1 ); echo "$t"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
# 1234567 -> 1,234,567 (as the TUI header prints counts).
thousands() { echo "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }
