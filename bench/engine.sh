#!/usr/bin/env bash
# Engine benchmark (issue 2): a table of N entries (default 1,000,000) in a throwaway
# namespace; full dump into the store vs a bare netlink dump vs `conntrack -L`; resident
# bytes per stored flow; then a flush burst of E entries (default 250,000) followed by
# ctscope's engine and by `conntrack -E` at the same time. Prints one table.
#
# --nat-share S (0..1, or a percentage such as 100%) loads that share of the TCP and UDP
# entries NATed (alternately DNAT and SNAT, both families; ICMP entries, 5%, take no reply
# tuple from conntrack -I), as on a Kubernetes node or a NAT gateway, to measure the
# store's bytes per flow there.
#
# Needs root. Raises the host's nf_conntrack_max (a namespace cannot exceed it) and
# restores it on exit. Usage: sudo bench/engine.sh [--nat-share S] [N] [E] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
pos=()
while [ $# -gt 0 ]; do
  case $1 in
    --nat-share) BENCH_NAT_SHARE=${2:?--nat-share needs a value}; shift 2 ;;
    --nat-share=*) BENCH_NAT_SHARE=${1#*=}; shift ;;
    *) pos+=("$1"); shift ;;
  esac
done
set -- ${pos[@]+"${pos[@]}"}
if [ -n "${BENCH_NAT_SHARE:-}" ]; then
  BENCH_NAT_SHARE=$(awk -v s="$BENCH_NAT_SHARE" 'BEGIN {
    pct = sub(/%$/, "", s); v = s + 0
    if (s !~ /^[0-9]*\.?[0-9]+$/ || (pct ? v > 100 : v > 1)) { print "bad"; exit }
    print (pct ? v / 100 : v) }')
  [ "$BENCH_NAT_SHARE" = bad ] && { echo "--nat-share takes 0..1 or 0%..100%" >&2; exit 2; }
  export BENCH_NAT_SHARE
fi
N=${1:-1000000}
E=${2:-250000}
RUNS=${3:-3}
. bench/lib.sh
bench_build
bench_setup ctscope-bench $(( (N > E ? N : E) + 10000 ))
bench_load "$N"
loaded=$LOADED

bare=(); load=(); cpu=(); rss=(); struct=(); list=(); ctl=()
for i in $(seq "$RUNS"); do
  bare+=("$($B dump "$NS" | field wall)")
  out=$($B load "$NS")
  load+=("$(echo "$out" | field wall)"); cpu+=("$(echo "$out" | field cpu)")
  rss+=("$(echo "$out" | field rss_per_flow)"); struct+=("$(echo "$out" | field structural_per_flow)")
  NATED=$(echo "$out" | field nat)
  list+=("$(wall "$CT" --netns "$NS" list)")
  ctl+=("$(wall ip netns exec "$NS" conntrack -L)")
done
B_=$(m "${bare[@]}"); L_=$(m "${load[@]}"); C_=$(m "${cpu[@]}"); R_=$(m "${rss[@]}"); S_=$(m "${struct[@]}")
LI_=$(m "${list[@]}"); CT_=$(m "${ctl[@]}")

echo
echo "== dump of $loaded entries (median of $RUNS runs, wall seconds)"
printf '%-44s %8s %8s\n' "what" "seconds" "vs bare"
printf '%-44s %8s %8s\n' "bare netlink dump, counting messages" "$B_" "1.00x"
printf '%-44s %8s %8s\n' "ctscope: dump -> decode -> store" "$L_" "$(ratio "$L_" "$B_")"
printf '%-44s %8s %8s\n' "ctscope list > /dev/null (text output)" "$LI_" "$(ratio "$LI_" "$B_")"
printf '%-44s %8s %8s\n' "conntrack -L > /dev/null" "$CT_" "$(ratio "$CT_" "$B_")"
echo "ctscope store load: cpu ${C_}s; resident ${R_} B/flow (RSS delta), structural ${S_} B/flow"
echo "NATed entries: share ${BENCH_NAT_SHARE:-default (every 50th TCP entry)}; $NATED of the stored flows have a NAT'd reply"

echo
echo "== flush burst of $E entries: events received"
# Under the default nf_conntrack_events=2, entries created while no listener exists get no
# event cache and send no DESTROY, so the flush would deliver nothing to anyone: turn
# events on in this namespace (the sysctl is per namespace) before the burst is loaded.
ip netns exec "$NS" sysctl -qw net.netfilter.nf_conntrack_events=1
echo "events: nf_conntrack_events=$(ip netns exec "$NS" sysctl -n net.netfilter.nf_conntrack_events) in $NS"
ip netns exec "$NS" conntrack -F >/dev/null 2>&1 || true
head -n "$E" "$TMP/entries" > "$TMP/burst"
ip netns exec "$NS" conntrack -R "$TMP/burst" >/dev/null 2>&1 || true
burst=$(ip netns exec "$NS" conntrack -C)
# Every wait below has a deadline; a missed one says what happened instead of hanging.
DEADLINE=$(( 60 + E / 2000 ))
timeout "$DEADLINE" $B events "$NS" 3 > "$TMP/ev.out" &
evpid=$!
timeout "$DEADLINE" ip netns exec "$NS" conntrack -E -e DESTROY > "$TMP/ct.out" 2>/dev/null &
ctpid=$!
for _ in $(seq 300); do grep -q ready "$TMP/ev.out" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$TMP/ev.out" || { echo "events: ctscope's listener not ready after 30s"; cat "$TMP/ev.out"; }
sleep 0.5
ip netns exec "$NS" conntrack -F >/dev/null 2>&1
evrc=0; wait "$evpid" || evrc=$?
[ "$evrc" -eq 124 ] && echo "events: ctscope's listener still receiving after ${DEADLINE}s; killed"
grep -q "no events" "$TMP/ev.out" && echo "events: ctscope received no event from the flush"
sleep 1; kill "$ctpid" 2>/dev/null || true; wait "$ctpid" 2>/dev/null || true
ev=$(field received < "$TMP/ev.out"); ovr=$(field overruns < "$TMP/ev.out")
cpe=$(field cpu_per_event < "$TMP/ev.out"); ev=${ev:-none}; ovr=${ovr:-?}; cpe=${cpe:-?}; ctn=$(wc -l < "$TMP/ct.out")
printf '%-44s %10s %10s\n' "who" "received" "of"
printf '%-44s %10s %10s\n' "ctscope engine (64 MiB rcvbuf)" "$ev" "$burst"
printf '%-44s %10s %10s\n' "conntrack -E -e DESTROY" "$ctn" "$burst"
echo "ctscope: ${ovr} overruns, ${cpe} us CPU per event (decode + store)"
