#!/usr/bin/env bash
# Kernel-side dump filtering (issue 9): a table of N entries (default 1,000,000) in a
# throwaway namespace, 1% of them (every 100th) with mark 0x110, the rest marks 0-4; then
# `ctscope list -m 0x10/0xff > /dev/null` with the filter pushed to the kernel (CTA_MARK +
# CTA_MARK_MASK), the same with the pushdown off (CTSCOPE_KERNEL_FILTER=0: one full dump,
# filtered in ctscope), and `conntrack -L -m 0x10/0xff` (which also sends CTA_MARK), run
# alternately RUNS times (default 5). Prints medians of wall and CPU (user+sys) seconds,
# and the load average, since other work on the machine skews wall times.
#
# Needs root. Raises the host's nf_conntrack_max if needed and restores it on exit.
# Usage: sudo bench/kfilter.sh [N] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
RUNS=${2:-5}
. bench/lib.sh
bench_build
bench_setup ctscope-kfilter $(( N + 10000 ))
echo "loading $N entries (bench/gen_entries.py, 1% marked 0x110 | conntrack -R)"
# Every entry lives an hour, so nothing expires during the runs; every 100th is marked 0x110.
python3 bench/gen_entries.py "$N" | sed "s/ -t [0-9]*/ -t 3600/" |
  awk 'NR % 100 == 0 { gsub(/ --mark [0-9]+/, ""); $0 = $0 " --mark 0x110" } { print }' > "$TMP/entries"
ip netns exec "$NS" conntrack -R "$TMP/entries" >/dev/null 2>&1 || true
loaded=$(ip netns exec "$NS" conntrack -C)
selected=$(ip netns exec "$NS" conntrack -L -m 0x10/0xff 2>/dev/null | wc -l)
echo "table holds $loaded entries; -m 0x10/0xff selects $selected"

# "wall cpu" seconds of a command (bash's time: real, user + sys).
timed() {
  local t
  TIMEFORMAT='%R %U %S'
  t=$( { time "$@" >/dev/null 2>&1; } 2>&1 )
  echo "$t" | awk '{ printf "%s %.2f\n", $1, $2 + $3 }'
}
push_w=(); push_c=(); off_w=(); off_c=(); ct_w=(); ct_c=()
for _ in $(seq "$RUNS"); do
  read -r w c < <(timed "$CT" --netns "$NS" list -m 0x10/0xff); push_w+=("$w"); push_c+=("$c")
  read -r w c < <(timed env CTSCOPE_KERNEL_FILTER=0 "$CT" --netns "$NS" list -m 0x10/0xff)
  off_w+=("$w"); off_c+=("$c")
  read -r w c < <(timed ip netns exec "$NS" conntrack -L -m 0x10/0xff); ct_w+=("$w"); ct_c+=("$c")
done
msgs=$(CTSCOPE_DEBUG_DUMP=1 "$CT" --netns "$NS" list -m 0x10/0xff 2>&1 >/dev/null | sed -n 's/.*dump flows:.*; \([0-9]*\) messages.*/\1/p')
msgs_off=$(CTSCOPE_DEBUG_DUMP=1 CTSCOPE_KERNEL_FILTER=0 "$CT" --netns "$NS" list -m 0x10/0xff 2>&1 >/dev/null | sed -n 's/.*dump flows:.*; \([0-9]*\) messages.*/\1/p')

echo
echo "== list -m 0x10/0xff on $(thousands "$loaded") entries, $(thousands "$selected") selected (median of $RUNS runs)"
printf '%-52s %8s %8s %10s\n' "what" "wall s" "cpu s" "messages"
printf '%-52s %8s %8s %10s\n' "ctscope list, filter pushed to the kernel" "$(m "${push_w[@]}")" "$(m "${push_c[@]}")" "$msgs"
printf '%-52s %8s %8s %10s\n' "ctscope list, CTSCOPE_KERNEL_FILTER=0" "$(m "${off_w[@]}")" "$(m "${off_c[@]}")" "$msgs_off"
printf '%-52s %8s %8s %10s\n' "conntrack -L -m 0x10/0xff" "$(m "${ct_w[@]}")" "$(m "${ct_c[@]}")" "-"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs"
