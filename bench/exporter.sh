#!/usr/bin/env bash
# Exporter benchmark (issue 10): a table of N entries (default 1,000,000) in a throwaway
# namespace. Side by side: what one /metrics costs from the store (`bench scrape`: count,
# assess, render; CPU and heap allocations per scrape) against what a re-dump per scrape
# would cost (`bench load`); then `ctscope exporter` itself on that table: scrapes over
# HTTP, its CPU over a quiet window with no events, and its resident bytes per flow.
#
# Needs root. Raises the host's nf_conntrack_max and restores it on exit.
# Usage: sudo bench/exporter.sh [N] [QUIET_SECS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
QUIET=${2:-30}
. bench/lib.sh
bench_build
bench_setup ctscope-bench-exp $(( N + 10000 ))
# Long timeouts: no entry may expire (and send a DESTROY) during the quiet window.
bench_load "$N" 86400
loaded=$LOADED

scrape=$($B scrape "$NS" 20)
load=$($B load "$NS")
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$CT" --netns "$NS" exporter --listen "127.0.0.1:$PORT" --audit-interval 0 2>"$TMP/exporter.err" &
EXP=$!
bench_at_exit "kill $EXP 2>/dev/null; wait $EXP 2>/dev/null"
until [ "$(python3 bench/http_get.py "127.0.0.1:$PORT" /healthz 2>/dev/null)" = ok ]; do
  kill -0 "$EXP" || { cat "$TMP/exporter.err"; exit 1; }
  sleep 0.2
done
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
# HTTP scrapes after the table settled: wall time of one GET each, as curl reports it
# (a Python client's own start-up would dominate the figure).
sc=()
for i in $(seq 5); do
  sc+=("$(curl -s -o /dev/null -w '%{time_total}' "http://127.0.0.1:$PORT/metrics" | awk '{printf "%.1f", $1*1000}')")
done
c0=$(ticks "$EXP"); sleep "$QUIET"; c1=$(ticks "$EXP")
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$EXP/status")

echo
echo "== exporter over $loaded entries"
printf '%-52s %s\n' "one /metrics, counts kept by events (median)" "$(echo "$scrape" | field steady_median_ms) ms CPU"
printf '%-52s %s\n' "  max of 20" "$(echo "$scrape" | field steady_max_ms) ms CPU"
printf '%-52s %s\n' "one /metrics with a full recount (after a dump)" "$(echo "$scrape" | field cpu_median_ms) ms CPU"
printf '%-52s %s\n' "  max of 20" "$(echo "$scrape" | field cpu_max_ms) ms CPU"
printf '%-52s %s\n' "  heap allocations per scrape, full table" "$(echo "$scrape" | field allocs)"
printf '%-52s %s\n' "  heap allocations per scrape, a tenth of it" "$(echo "$scrape" | field allocs_at_tenth)"
printf '%-52s %s\n' "a re-dump per scrape instead (bench load)" "$(echo "$load" | field cpu) s CPU, $(echo "$load" | field wall) s wall"
printf '%-52s %s\n' "GET /metrics over HTTP, wall (5 runs)" "${sc[*]} ms"
printf '%-52s %s\n' "exporter CPU, ${QUIET} s with no events" "$(awk -v a="$c0" -v b="$c1" -v hz="$hz" -v s="$QUIET" 'BEGIN{printf "%.2f %% of one core", (b-a)/hz/s*100}')"
printf '%-52s %s\n' "exporter resident memory per flow" "$(awk -v r="$rss_kb" -v n="$loaded" 'BEGIN{printf "%.1f B (RSS %.0f MiB)", r*1024/n, r/1024}')"
printf '%-52s %s\n' "engine store load, resident per flow (bench load)" "$(echo "$load" | field rss_per_flow) B"
