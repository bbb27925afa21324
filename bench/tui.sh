#!/usr/bin/env bash
# TUI benchmark (issue 3, "Behaviour over SSH"; issue 8, targets): with N entries (default
# 1,000,000) in a throwaway namespace, from one run, side by side with iptstate on the same
# table, and beside issue 8's targets and the figures measured before it:
#   - first screen with rows and first full frame: launch in tmux (COLSxROWS, default
#     160x50) until the screen shows a flow row (`rows`), then the complete table
#     (ctscope: header `flows N`, no `dumping…`, tab line `N shown`; iptstate: the first
#     entry row), against the bare netlink dump (examples/bench dump, `profiling` build) as
#     the reference: RUNS rounds of the store load, the bare dump and ctscope's first
#     frame, each ratio against its own round's bare dump, and the median of those ratios
#     (the machine's dump speed drifts between minutes); and ctscope's first frame on the
#     still empty namespace, the fixed part (tmux, process start, an empty dump).
#     ctscope's screen is captured after each frame its frame log shows (and every 50 ms
#     at the least), through one tmux control-mode client (a `tmux capture-pane` process
#     per capture, every 50 ms, made ctscope's dump itself ~10-25% slower than the bare
#     one, on the cores being timed); each time is the flush, from the frame log, of the
#     last frame before the capture that matched; `resolution` says how far back the
#     capture before it lay;
#   - CPU under churn: a bounded churn in the namespace (CHURN_BATCH entries inserted
#     every CHURN_SLEEP s with a 1 s timeout, then expired by the kernel: NEW and DESTROY
#     events; the defaults aim at ~10,000 events/s), utime+stime over CHURN_CPU seconds;
#   - keypress latency while events stream: PRESSES keys cycling j, k, PgDn, PgUp, Tab,
#     S-Tab (GAP to 2*GAP s apart): p50, p99 and max; then reverse the sort (r, a full
#     re-sort) SORTS times, until the footer's arrow flips and the top row changes; then
#     Top: opening it (5, its first pass over the table) and regrouping (b, a pass), SORTS
#     times;
#   - CPU while steady (no events): utime+stime of the process over STEADY seconds, as %
#     of one core; and how often each program's screen changes (its redraw cadence).
#     ctscope re-dumps in the background at an interval sized to cost under 1% of a core
#     (at least 30 s; ~5 min at 1M entries); the table says how many re-dumps the window saw (its
#     `dumping…` marker); STEADY_LONG (e.g. 75; 330 at 1M) extends the same window past that
#     interval and prints a second figure that includes one;
#   - memory: VmRSS with the dashboard open on N flows, less the empty dashboard's, per flow.
# The issue's CPU target is stated at 20,000 and at 1,000,000 flows: run the script once
# with N=20000 and once with N=1000000.
#
# How keypresses are timed. The dashboard writes a frame log when CTSCOPE_FRAME_LOG names
# a file (src/tui/probe.rs): per key, the CLOCK_MONOTONIC ns it was read and the ns the
# first frame drawn after it was flushed. The probe times each press from just before it
# writes the key to the tmux server, through one tmux control-mode client kept open for
# all presses, to that flush (so it includes the tmux server and the pty, not a poll
# interval nor the start of a `tmux send-keys` process), and also prints read-to-flush.
# A build whose main loop does not call the probe leaves the log empty: the probe then
# polls `tmux capture-pane` (one fork+exec per poll; its interval is printed as the
# resolution) until the highlighted row or tab changes.
# Other times come from polling `tmux capture-pane` processes. bench/tui_probe.py does the
# timing.
#
# Needs root. Raises the host's nf_conntrack_max (a namespace cannot exceed it) and
# restores it on exit; its tmux sessions live on a private server (tmux -L) killed on exit.
# Usage: sudo bench/tui.sh [N] [RUNS]
# Environment: SIZE=160x50 PRESSES=200 GAP=0.15 SORTS=20 STEADY=10 STEADY_LONG=0
#              IPT_STEADY=30 CHURN_BATCH=500 CHURN_SLEEP=0.1 CHURN_CPU=10 CHURN_MAX_S=180
#              SKIP_IPTSTATE=1
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
RUNS=${2:-3}
SIZE=${SIZE:-160x50}
PRESSES=${PRESSES:-200}
GAP=${GAP:-0.15}
SORTS=${SORTS:-20}
CHURN_CPU=${CHURN_CPU:-10}
STEADY=${STEADY:-10}
STEADY_LONG=${STEADY_LONG:-0}
IPT_STEADY=${IPT_STEADY:-30}
CHURN_BATCH=${CHURN_BATCH:-500}
CHURN_SLEEP=${CHURN_SLEEP:-0.1}
CHURN_MAX_S=${CHURN_MAX_S:-180}
. bench/lib.sh
bench_build
bench_setup ctscope-bt $(( N + CHURN_BATCH + 10000 ))
bench_tmux
bench_at_exit 'touch "$TMP/stop"; [ -n "${CHURN_PID:-}" ] && wait "$CHURN_PID" 2>/dev/null'
P="python3 bench/tui_probe.py"
# The fixed cost of a first frame (tmux, process start, an empty dump), for scale.
out=$($P first ct "$SIZE" '^(?!.*dumping).*flows 0\b.*\n.*\n.*\b0 shown' 30 -- "$CT" --netns "$NS")
CT_EMPTY=$(echo "$out" | field first)
RSS_EMPTY=$(rss_kb "$(echo "$out" | sed -n 's/.*pid=\([0-9]*\).*/\1/p')")
tmux -L "$BENCH_TMUX" send-keys -t ct q; sleep 0.5
tmux -L "$BENCH_TMUX" kill-session -t ct 2>/dev/null || true
# Timeouts of 4 h: nothing expires during the run, so "steady" means no events at all.
bench_load "$N" 14400
NTH=$(thousands "$LOADED")
# Generous: iptstate is expected to take several times the dump.
TIMEOUT=$(( 60 + LOADED / 10000 ))

# In rounds: the store load (no screen), then the bare dump, then the dashboard's first
# frame, each timed against the bare dump of its own round. This machine's bare dump moved
# by up to 40% within minutes, so medians taken a phase apart compared different moments
# (the headless load measured 1.00x in one run and 1.39x in the next).
echo "store load (no screen), bare netlink dump, ctscope first frames: $RUNS rounds"
FRAMES=$TMP/frames.log
bare=(); load=(); lcpu=(); ctf=(); ctc=(); ctr=(); rload=(); rfirst=()
over() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
for i in $(seq "$RUNS"); do
  # Where the first frame's time goes: the same dump into the store, without a screen.
  out=$($B load "$NS"); l=$(echo "$out" | field wall)
  load+=("$l"); lcpu+=("$(echo "$out" | field cpu)")
  b=$($B dump "$NS" | field wall); bare+=("$b")
  # ctscope's complete first frame (bench_dash_first): the header line counts every
  # entry and the dump is over, and the flows view holds them all.
  bench_dash_first ct "$SIZE" "$TIMEOUT" "$FRAMES"
  ctf+=("$DASH_FIRST"); ctc+=("$DASH_CPU"); ctr+=("$DASH_ROWS"); CT_POLL=$DASH_POLL
  rload+=("$(over "$l" "$b")"); rfirst+=("$(over "$DASH_FIRST" "$b")")
  if [ "$i" -lt "$RUNS" ]; then tmux -L "$BENCH_TMUX" send-keys -t ct q; sleep 0.5; fi
done
BARE=$(m "${bare[@]}"); LOAD=$(m "${load[@]}"); LCPU=$(m "${lcpu[@]}")
CT_FIRST=$(m "${ctf[@]}"); CT_FCPU=$(m "${ctc[@]}"); CT_ROWS=$(m "${ctr[@]}")
R_LOAD=$(m "${rload[@]}"); R_FIRST=$(m "${rfirst[@]}")
CT_PID=$DASH_PID
RSS_FULL=$(rss_kb "$CT_PID")

echo "ctscope steady CPU over ${STEADY}s (1 s settle after the first frame)"
sleep 1
out=$($P steady ct "$CT_PID" "$STEADY" 0.2 'dumping' "$STEADY_LONG")
CT_CPU=$(echo "$out" | field cpu_pct); CT_CH=$(echo "$out" | head -1 | field changes)
CT_REDUMPS=$(echo "$out" | head -1 | field marks)
CT_CPU_LONG=$(echo "$out" | field cpu_long); CT_LONG_S=$(echo "$out" | field long_s)
CT_LONG_RD=$(echo "$out" | field long_marks)
CT_IDLE_EVS=$($P grab ct '([0-9]+) ev/s')

# A steady, bounded event load: every cycle inserts CHURN_BATCH entries with a 1 s timeout
# (NEW events) into addresses the table does not otherwise use (172.16.0.0/16); they
# expire a second or so later (DESTROY events, from the kernel's conntrack GC). 64 blocks
# in rotation, so a block is reused only long after it expired. `conntrack -D` is not
# used: conntrack(8) 1.4.7 deletes through a dump, ~3 ms of kernel time per line even on
# a small table, which would make the load generator the bottleneck.
for k in $(seq 0 63); do
  for i in $(seq 0 $(( CHURN_BATCH - 1 ))); do
    echo "-I -p tcp -s 172.16.$k.$(( i % 250 + 1 )) -d 192.0.2.$(( i / 250 + 9 ))" \
      "--sport 40000 --dport 8080 --state ESTABLISHED -t 1"
  done > "$TMP/churn.$k"
done
churn() {
  local end=$(( SECONDS + CHURN_MAX_S )) c=0 t0=$SECONDS
  while [ ! -e "$TMP/stop" ] && [ "$SECONDS" -lt "$end" ]; do
    ip netns exec "$NS" conntrack -R "$TMP/churn.$(( c % 64 ))" >/dev/null 2>&1 || true
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
echo "ctscope CPU under churn over ${CHURN_CPU}s ($EVS ev/s in ctscope's header)"
out=$($P steady ct "$CT_PID" "$CHURN_CPU" 0.5)
CHURN_CPU_PCT=$(echo "$out" | field cpu_pct)
CHURN_THREADS=$(echo "$out" | sed -n 's/^threads //p')
echo "keypress latency while events stream: j/k/PgDn/PgUp/Tab/S-Tab x$PRESSES"
bench_dash_keys ct "$PRESSES" "$GAP" "$FRAMES"
echo "reverse sort (r) x$SORTS"
srt=$($P keys ct "$SORTS" 5 sort)
echo "Top: open (5, a first pass) and regroup (b, a pass) x$SORTS"
grp=$($P keys ct "$SORTS" 10 group)
touch "$TMP/stop"; wait "$CHURN_PID" || true; CHURN_PID=
t_end=$(date +%s.%N)
read -r cycles _ < "$TMP/churn.count"
# Inserts per second, times two: each insert is later destroyed by expiry.
CHURN_RATE=$(awk -v c="$cycles" -v b="$CHURN_BATCH" -v a="$t_churn" -v z="$t_end" \
  'BEGIN { printf "%.0f", 2 * c * b / (z - a) }')
lat() { echo "$1" | field lat_ms | $2; }
SEL_MED=$KEY_P50; SEL_P99=$KEY_P99; SEL_MAX=$KEY_MAX; SEL_APP=$KEY_APP
SRT_MED=$(lat "$srt" median); SRT_P95=$(lat "$srt" p95); SRT_MAX=$(lat "$srt" mx)
GRP_MED=$(lat "$grp" median); GRP_P95=$(lat "$grp" p95); GRP_OPEN=$(echo "$grp" | field open_ms)
SEL_N=$KEY_N; SRT_N=$(echo "$srt" | grep -c lat_ms || true)
GRP_N=$(echo "$grp" | grep -c lat_ms || true)
tmux -L "$BENCH_TMUX" send-keys -t ct q
sleep 1
tmux -L "$BENCH_TMUX" kill-session -t ct 2>/dev/null || true

IPT_FIRST=-; IPT_CPU=-; IPT_GAP=-; IPT_POLL=-; IPT_CH=-
if [ -z "${SKIP_IPTSTATE:-}" ] && command -v iptstate >/dev/null; then
  # Let the churn's entries expire so iptstate sees the same table.
  sleep 3
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

RSS_PER_FLOW=$(awk -v f="$RSS_FULL" -v e="$RSS_EMPTY" -v n="$LOADED" \
  'BEGIN { printf "%.0f", (f - e) * 1024 / n }')
RSS_TOTAL=$(awk -v f="$RSS_FULL" -v n="$LOADED" 'BEGIN { printf "%.0f", f * 1024 / n }')

echo
echo "== TUI over tmux $SIZE, $LOADED entries, profiling build, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
f='%-50s %18s %8s %14s %22s\n'
printf "$f" "what" "value" "vs bare" "target (#8)" "before #8 (1M, 5k ev/s)"
printf "$f" "bare netlink dump (median of $RUNS)" "${BARE} s" "1.00x" "reference" ""
printf "$f" "ctscope first screen with rows (median)" "${CT_ROWS} s" "" "<= 0.150 s" "empty until dump end"
printf "$f" "ctscope first full frame (median of $RUNS)" "${CT_FIRST} s" "${R_FIRST}x" "<= 1.15x" ""
printf "$f" "  per round, against that round's bare dump" "$(printf '%sx ' "${rfirst[@]}")" "" "" ""
printf "$f" "  ctscope CPU by then (user+sys, all threads)" "${CT_FCPU} s" "" "" ""
printf "$f" "dump -> decode -> store, no screen (median)" "${LOAD} s" "${R_LOAD}x" "" ""
printf "$f" "  its CPU (user+sys, all threads)" "${LCPU} s" "" "" ""
printf "$f" "  ctscope first frame, empty table (fixed)" "${CT_EMPTY} s" "" "" ""
printf "$f" "iptstate first frame with entries" "${IPT_FIRST} s" "$ipt_ratio" "(~4x)" ""
printf "$f" "keys j/k/PgDn/Tab: p50 / p99 ($SEL_N/$PRESSES, $KEY_SRC)" "$SEL_MED / $SEL_P99 ms" "" "p99 <= 16 ms" "j/k median 5.6 ms"
printf "$f" "  max" "$SEL_MAX ms" "" "<= 33 ms" "91.5 ms"
[ -n "$SEL_APP" ] && printf "$f" "  p99 read -> flushed inside the app" "$SEL_APP ms" "" "" ""
# The slowest press, and how much of it was inside the app (read -> flushed).
# (One awk pass: `sort | head -1` under pipefail can end the script when head closes
# the pipe early.)
SEL_WORST=$(echo "$KEY_OUT" | awk '
  match($0, /lat_ms=[0-9.]+/) { v = substr($0, RSTART + 7, RLENGTH - 7) + 0; if (v > m) { m = v; w = $0 } }
  END { print w }' |
  sed -n 's/.*lat_ms=\([0-9.]*\).*app_ms=\([0-9.]*\).*key=\([^ ]*\).*/\3 \1 ms, \2 ms inside the app/p')
[ -n "$SEL_WORST" ] && printf "$f" "  slowest: $SEL_WORST" "" "" "" ""
printf "$f" "key r (re-sort): median / p95 ($SRT_N/$SORTS)" "$SRT_MED / $SRT_P95 ms" "" "<= 250 ms" "137 ms"
printf "$f" "  max" "$SRT_MAX ms" "" "" ""
printf "$f" "Top: open (5, first pass)" "$GRP_OPEN ms" "" "" ""
printf "$f" "Top regroup (b): median / p95 ($GRP_N/$SORTS)" "$GRP_MED / $GRP_P95 ms" "" "<= 250 ms" ""
printf "$f" "  events/s meanwhile (churn est.; ctscope hdr)" "$CHURN_RATE/s; $EVS/s" "" "~10,000/s" ""
printf "$f" "ctscope CPU under churn (${CHURN_CPU} s)" "${CHURN_CPU_PCT} %" "" "<= 25%" "94% (17k flows)"
echo "  by thread under churn: ${CHURN_THREADS:--}"
printf "$f" "ctscope CPU steady (${STEADY} s, $CT_REDUMPS re-dumps seen)" "${CT_CPU} %" "" "< 1%" ""
if [ -n "$CT_CPU_LONG" ]; then
  printf "$f" "ctscope CPU steady (${CT_LONG_S} s, $CT_LONG_RD re-dumps seen)" "${CT_CPU_LONG} %" "" "< 1%" ""
fi
printf "$f" "RSS per flow, dashboard open (less empty; total)" "$RSS_PER_FLOW; $RSS_TOTAL B" "" "<= 150 B" ""
printf "$f" "iptstate CPU steady (${IPT_STEADY} s)" "${IPT_CPU} %" "" "(~95%)" ""
printf "$f" "iptstate redraw cadence (median gap)" "${IPT_GAP} s" "" "(~13 s)" ""
printf "$f" "ctscope screen changes while steady" "$CT_CH" "" "" ""
KEY_RES="${KEY_POLL:-} ms (keys)"
[ "$KEY_SRC" = framelog ] && KEY_RES="none for keys (frame log)"
echo "resolution: ${CT_POLL} ms between captures (first frame, timed by its flush), $KEY_RES," \
  "${IPT_POLL} ms (iptstate); key latencies include the tmux server and the pty" \
  "(keys written by one tmux control-mode client)."
echo "ctscope header at the end of the steady window: $CT_IDLE_EVS ev/s (should be 0)."
echo "iptstate screen changes seen in ${IPT_STEADY} s: $IPT_CH (its TTL column moves at every redraw);"
echo "ctscope's still table changes only when a minute-resolution countdown or a marker does."
