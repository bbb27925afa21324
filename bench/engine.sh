#!/usr/bin/env bash
# Engine benchmark (issue 2): a table of N entries (default 1,000,000) in a throwaway
# namespace; full dump into the store vs a bare netlink dump vs `conntrack -L`; resident
# bytes per stored flow; then a flush burst of E entries (default 250,000) followed by
# ctscope's engine and by `conntrack -E` at the same time. Prints one table.
#
# Needs root. Raises the host's nf_conntrack_max (a namespace cannot exceed it) and
# restores it on exit. Usage: sudo bench/engine.sh [N] [E] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
E=${2:-250000}
RUNS=${3:-3}
NS=ctscope-bench-$$
TMP=$(mktemp -d)
old_max=$(sysctl -n net.netfilter.nf_conntrack_max)
cleanup() {
  ip netns del "$NS" 2>/dev/null || true
  sysctl -qw net.netfilter.nf_conntrack_max="$old_max" || true
  rm -rf "$TMP"
}
trap cleanup EXIT

cargo build -q --release --example bench --bin ctscope
B=target/release/examples/bench
CT=target/release/ctscope
need=$(( (N > E ? N : E) + 10000 ))
[ "$old_max" -lt "$need" ] && sysctl -qw net.netfilter.nf_conntrack_max="$need"
ip netns add "$NS"
ip netns exec "$NS" sysctl -qw net.netfilter.nf_conntrack_max="$need" 2>/dev/null || true  # read-only in a child netns on some kernels

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
# Wall seconds of a command, via bash's TIMEFORMAT.
wall() { local t; TIMEFORMAT=%R; t=$( { time "$@" >/dev/null 2>&1; } 2>&1 ); echo "$t"; }

echo "loading $N entries (bench/gen_entries.py | conntrack -R)"
python3 bench/gen_entries.py "$N" > "$TMP/entries"
ip netns exec "$NS" conntrack -R "$TMP/entries" >/dev/null 2>&1 || true
loaded=$(ip netns exec "$NS" conntrack -C)
echo "table holds $loaded entries"

bare=(); load=(); cpu=(); rss=(); struct=(); list=(); ctl=()
for i in $(seq "$RUNS"); do
  bare+=("$($B dump "$NS" | field wall)")
  out=$($B load "$NS")
  load+=("$(echo "$out" | field wall)"); cpu+=("$(echo "$out" | field cpu)")
  rss+=("$(echo "$out" | field rss_per_flow)"); struct+=("$(echo "$out" | field structural_per_flow)")
  list+=("$(wall "$CT" --netns "$NS" list)")
  ctl+=("$(wall ip netns exec "$NS" conntrack -L)")
done
m() { printf '%s\n' "$@" | median; }
B_=$(m "${bare[@]}"); L_=$(m "${load[@]}"); C_=$(m "${cpu[@]}"); R_=$(m "${rss[@]}"); S_=$(m "${struct[@]}")
LI_=$(m "${list[@]}"); CT_=$(m "${ctl[@]}")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }

echo
echo "== dump of $loaded entries (median of $RUNS runs, wall seconds)"
printf '%-44s %8s %8s\n' "what" "seconds" "vs bare"
printf '%-44s %8s %8s\n' "bare netlink dump, counting messages" "$B_" "1.00x"
printf '%-44s %8s %8s\n' "ctscope: dump -> decode -> store" "$L_" "$(ratio "$L_" "$B_")"
printf '%-44s %8s %8s\n' "ctscope list > /dev/null (text output)" "$LI_" "$(ratio "$LI_" "$B_")"
printf '%-44s %8s %8s\n' "conntrack -L > /dev/null" "$CT_" "$(ratio "$CT_" "$B_")"
echo "ctscope store load: cpu ${C_}s; resident ${R_} B/flow (RSS delta), structural ${S_} B/flow"

echo
echo "== flush burst of $E entries: events received"
ip netns exec "$NS" conntrack -F >/dev/null 2>&1 || true
head -n "$E" "$TMP/entries" > "$TMP/burst"
ip netns exec "$NS" conntrack -R "$TMP/burst" >/dev/null 2>&1 || true
burst=$(ip netns exec "$NS" conntrack -C)
$B events "$NS" 3 > "$TMP/ev.out" &
evpid=$!
ip netns exec "$NS" conntrack -E -e DESTROY > "$TMP/ct.out" 2>/dev/null &
ctpid=$!
until grep -q ready "$TMP/ev.out" 2>/dev/null; do sleep 0.1; done
sleep 0.5
ip netns exec "$NS" conntrack -F >/dev/null 2>&1
wait "$evpid"
sleep 1; kill "$ctpid" 2>/dev/null || true; wait "$ctpid" 2>/dev/null || true
ev=$(field received < "$TMP/ev.out"); ovr=$(field overruns < "$TMP/ev.out")
cpe=$(field cpu_per_event < "$TMP/ev.out"); ctn=$(wc -l < "$TMP/ct.out")
printf '%-44s %10s %10s\n' "who" "received" "of"
printf '%-44s %10s %10s\n' "ctscope engine (64 MiB rcvbuf)" "$ev" "$burst"
printf '%-44s %10s %10s\n' "conntrack -E -e DESTROY" "$ctn" "$burst"
echo "ctscope: ${ovr} overruns, ${cpe} us CPU per event (decode + store)"
