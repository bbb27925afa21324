#!/usr/bin/env bash
# TUI benchmark (issue 3, "Behaviour over SSH"): with N entries (default 1,000,000) in a
# throwaway namespace, from one run, side by side with iptstate on the same table:
#   - first full frame: launch in tmux (COLSxROWS, default 160x50) until the screen shows
#     the complete table (ctscope: header `flows N`, no `dumping…`, tab line `N shown`;
#     iptstate: the first entry row), against the bare netlink dump
#     (target/release/examples/bench dump) as the reference;
#   - keypress latency while events stream (a bounded insert/delete churn in the
#     namespace): move the selection (j/k) and reverse the sort (r, a full re-sort),
#     PRESSES times each, median and p95, until capture-pane shows the change;
#   - CPU while steady (no events): utime+stime of the process over STEADY seconds, as %
#     of one core; and how often each program's screen changes (its redraw cadence).
# Times come from polling `tmux capture-pane`; the poll interval (one fork+exec of tmux)
# is printed as the resolution. bench/tui_probe.py does the timing.
#
# Needs root. Raises the host's nf_conntrack_max (a namespace cannot exceed it) and
# restores it on exit; its tmux sessions live on a private server (tmux -L) killed on exit.
# Usage: sudo bench/tui.sh [N] [RUNS]
# Environment: SIZE=160x50 PRESSES=20 STEADY=10 IPT_STEADY=30 CHURN_BATCH=200
#              CHURN_SLEEP=0.1 CHURN_MAX_S=120 SKIP_IPTSTATE=1
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
RUNS=${2:-3}
SIZE=${SIZE:-160x50}
PRESSES=${PRESSES:-20}
STEADY=${STEADY:-10}
IPT_STEADY=${IPT_STEADY:-30}
CHURN_BATCH=${CHURN_BATCH:-200}
CHURN_SLEEP=${CHURN_SLEEP:-0.1}
CHURN_MAX_S=${CHURN_MAX_S:-120}
. bench/lib.sh
bench_build
bench_setup ctscope-bt $(( N + CHURN_BATCH + 10000 ))
export BENCH_TMUX=$NS
unset TMUX
bench_at_exit 'tmux -L "$BENCH_TMUX" kill-server 2>/dev/null'
bench_at_exit 'touch "$TMP/stop"; [ -n "${CHURN_PID:-}" ] && wait "$CHURN_PID" 2>/dev/null'
P="python3 bench/tui_probe.py"
bench_load "$N"
NTH=$(thousands "$LOADED")
# Generous: iptstate is expected to take several times the dump.
TIMEOUT=$(( 60 + LOADED / 10000 ))

echo "bare netlink dump x$RUNS"
bare=()
for i in $(seq "$RUNS"); do bare+=("$($B dump "$NS" | field wall)"); done
BARE=$(m "${bare[@]}")

# ctscope's complete first frame: the header line counts every entry and the dump is over,
# and the flows view (two lines below) holds them all.
CT_RE="^(?!.*dumping).*flows $NTH\\b.*\\n.*\\n.*\\b$NTH shown"
echo "ctscope first full frame x$RUNS"
ctf=(); out=
for i in $(seq "$RUNS"); do
  tmux -L "$BENCH_TMUX" kill-session -t ct 2>/dev/null || true
  out=$($P first ct "$SIZE" "$CT_RE" "$TIMEOUT" -- "$CT" --netns "$NS")
  ctf+=("$(echo "$out" | field first)")
  CT_POLL=$(echo "$out" | field poll_ms)
  if [ "$i" -lt "$RUNS" ]; then tmux -L "$BENCH_TMUX" send-keys -t ct q; sleep 0.5; fi
done
CT_FIRST=$(m "${ctf[@]}")
CT_PID=$(echo "$out" | sed -n 's/.*pid=\([0-9]*\).*/\1/p')
[ "$(cat /proc/"$CT_PID"/comm)" = ctscope ] || { echo "pane process is not ctscope" >&2; exit 1; }

echo "ctscope steady CPU over ${STEADY}s (1 s settle after the first frame)"
sleep 1
out=$($P steady ct "$CT_PID" "$STEADY" 0.2)
CT_CPU=$(echo "$out" | field cpu_pct); CT_GAP=$(echo "$out" | sed -n 's/.*gap_s=\([0-9.-]*\).*/\1/p')

# A steady, bounded event load: CHURN_BATCH inserts then as many deletes per cycle, in
# addresses the table does not otherwise use (172.16.0.0/16), until told to stop.
for i in $(seq 0 $(( CHURN_BATCH - 1 ))); do
  t="-p tcp -s 172.16.$(( i / 256 )).$(( i % 256 )) -d 192.0.2.9 --sport 40000 --dport 8080"
  echo "-I $t --state ESTABLISHED -t 120" >&3
  echo "-D $t" >&4
done 3> "$TMP/churn.ins" 4> "$TMP/churn.del"
churn() {
  local end=$(( SECONDS + CHURN_MAX_S )) c=0 t0=$SECONDS
  while [ ! -e "$TMP/stop" ] && [ "$SECONDS" -lt "$end" ]; do
    ip netns exec "$NS" conntrack -R "$TMP/churn.ins" >/dev/null 2>&1 || true
    sleep "$CHURN_SLEEP"
    ip netns exec "$NS" conntrack -R "$TMP/churn.del" >/dev/null 2>&1 || true
    sleep "$CHURN_SLEEP"
    c=$(( c + 1 ))
    echo "$c $(( SECONDS - t0 ))" > "$TMP/churn.count"
  done
}
rm -f "$TMP/stop"
churn & CHURN_PID=$!
t_churn=$(date +%s.%N)
sleep 3
EVS=$($P grab ct '([0-9]+) ev/s')
echo "keypress latency while events stream ($EVS ev/s in ctscope's header): j/k x$PRESSES"
sel=$($P keys ct "$PRESSES" 5 select)
echo "reverse sort (r) x$PRESSES"
srt=$($P keys ct "$PRESSES" 5 sort)
touch "$TMP/stop"; wait "$CHURN_PID" || true; CHURN_PID=
t_end=$(date +%s.%N)
read -r cycles _ < "$TMP/churn.count"
CHURN_RATE=$(awk -v c="$cycles" -v b="$CHURN_BATCH" -v a="$t_churn" -v z="$t_end" \
  'BEGIN { printf "%.0f", 2 * c * b / (z - a) }')
lat() { echo "$1" | field lat_ms | $2; }
SEL_MED=$(lat "$sel" median); SEL_P95=$(lat "$sel" p95); SEL_N=$(echo "$sel" | grep -c lat_ms || true)
SRT_MED=$(lat "$srt" median); SRT_P95=$(lat "$srt" p95); SRT_N=$(echo "$srt" | grep -c lat_ms || true)
KEY_POLL=$(echo "$sel" | field poll_ms)
tmux -L "$BENCH_TMUX" send-keys -t ct q
sleep 1
tmux -L "$BENCH_TMUX" kill-session -t ct 2>/dev/null || true

IPT_FIRST=-; IPT_CPU=-; IPT_GAP=-; IPT_POLL=-; IPT_CH=-
if [ -z "${SKIP_IPTSTATE:-}" ] && command -v iptstate >/dev/null; then
  # Let the churn's deletes settle so iptstate sees the same table.
  sleep 1
  echo "iptstate first frame with entries"
  out=$($P first ipt "$SIZE" '^\S+:\d+ +\S+' "$TIMEOUT" -- ip netns exec "$NS" iptstate)
  IPT_FIRST=$(echo "$out" | field first); IPT_POLL=$(echo "$out" | field poll_ms)
  IPT_PID=$(echo "$out" | sed -n 's/.*pid=\([0-9]*\).*/\1/p')
  echo "iptstate steady CPU and redraws over ${IPT_STEADY}s"
  out=$($P steady ipt "$IPT_PID" "$IPT_STEADY" 0.1)
  IPT_CPU=$(echo "$out" | field cpu_pct); IPT_CH=$(echo "$out" | field changes)
  IPT_GAP=$(echo "$out" | sed -n 's/.*gap_s=\([0-9.-]*\).*/\1/p')
  tmux -L "$BENCH_TMUX" send-keys -t ipt q 2>/dev/null || true
fi
ipt_ratio=-
[ "$IPT_FIRST" != - ] && ipt_ratio=$(ratio "$IPT_FIRST" "$BARE")

echo
echo "== TUI over tmux $SIZE, $LOADED entries, release build, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
f='%-46s %14s %10s %10s\n'
printf "$f" "what" "value" "vs bare" "target"
printf "$f" "bare netlink dump (median of $RUNS)" "${BARE} s" "1.00x" "reference"
printf "$f" "ctscope first full frame (median of $RUNS)" "${CT_FIRST} s" "$(ratio "$CT_FIRST" "$BARE")" "<= 1.30x"
printf "$f" "iptstate first frame with entries" "${IPT_FIRST} s" "$ipt_ratio" "(~4x)"
printf "$f" "ctscope key j/k, median / p95 ($SEL_N)" "$SEL_MED / $SEL_P95 ms" "" "< 50 ms"
printf "$f" "ctscope key r (re-sort), median / p95 ($SRT_N)" "$SRT_MED / $SRT_P95 ms" "" ""
printf "$f" "  events meanwhile (churn; ctscope header)" "$CHURN_RATE/s; $EVS/s" "" ""
printf "$f" "ctscope CPU steady (${STEADY} s)" "${CT_CPU} %" "" "< 5%"
printf "$f" "iptstate CPU steady (${IPT_STEADY} s)" "${IPT_CPU} %" "" "(~95%)"
printf "$f" "screen redraw cadence ctscope / iptstate" "${CT_GAP} / ${IPT_GAP} s" "" "(ipt ~13 s)"
echo "resolution: one capture-pane poll = ${CT_POLL} ms (first frame), ${KEY_POLL} ms (keys," \
  "with escapes), ${IPT_POLL} ms (iptstate); latencies include one tmux send-keys."
echo "iptstate screen changes seen in ${IPT_STEADY} s: $IPT_CH (median gap = its redraw cadence)"
