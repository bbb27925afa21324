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
  bench_buckets "$need"
  bench_memory "$need"
  ip netns add "$NS"
  bench_at_exit 'ip netns del "$NS" 2>/dev/null'
  ip netns exec "$NS" sysctl -qw net.netfilter.nf_conntrack_max="$need" 2>/dev/null || true
}

# bench_buckets NEED: the kernel refuses to insert into a hash chain longer than a random
# limit of a few dozen entries (conntrack -S `chaintoolong`, ENOSPC to ctnetlink; see
# nf_conntrack_hash_check_insert), and `conntrack -R` stops at its first failed line. The
# default table has 262,144 buckets for two tuples an entry: ~3 M entries is where
# inserts begin to fail. When NEED is over 4 entries a bucket, raise the host's
# nf_conntrack_buckets (one hash for every namespace, writable only from the host) to
# the power of two >= NEED, and restore it on exit unless someone changed it meanwhile.
# Resizing rehashes what the host holds; it changes no entry.
bench_buckets() {
  local need=$1 b=1
  BENCH_OLD_BUCKETS=$(sysctl -n net.netfilter.nf_conntrack_buckets)
  [ "$need" -le $(( 4 * BENCH_OLD_BUCKETS )) ] && return 0
  while [ "$b" -lt "$need" ]; do b=$(( b * 2 )); done
  echo "raising nf_conntrack_buckets $BENCH_OLD_BUCKETS -> $b for $need entries (restored on exit)"
  sysctl -qw net.netfilter.nf_conntrack_buckets="$b"
  BENCH_SET_BUCKETS=$b
  bench_at_exit '[ "$(sysctl -n net.netfilter.nf_conntrack_buckets)" = "$BENCH_SET_BUCKETS" ] &&
    sysctl -qw net.netfilter.nf_conntrack_buckets="$BENCH_OLD_BUCKETS"'
}

# bench_memory NEED: refuse to start when MemAvailable is under ~1 KiB an entry: the
# kernel's entries (~320 B with extensions), then either the loaders (bench_load: at most
# ~0.4 GB each) or one store in examples/bench or the dashboard (~90-250 B a flow), and
# the page cache's share of the entries file (~110 B a line). 4,000,000 entries: ~4 GiB.
bench_memory() {
  local need=$1 avail
  avail=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
  echo "memory: $(( avail / 1024 )) MiB available, ~$(( need / 1024 )) MiB wanted for $need entries"
  if [ "$avail" -lt "$need" ]; then
    echo "not enough memory for $need entries: '$(( avail / 1024 )) MiB' available" \
      "hint: run a smaller N or stop other work" >&2
    exit 1
  fi
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
# `conntrack -R` sends one request a line and waits for its answer, and conntrack-tools
# 1.4.7 keeps ~1.6 KB of memory a line until it exits (3 GB for 2,000,000 lines): the
# file is loaded in pieces of at most 250,000 lines, one loader a core side by side from
# 500,000 entries, each loading its pieces in turn (4,000,000 entries: a few minutes on 2
# busy cores). Each `conntrack -R` stops at its first failed line, so a short table is
# reported with the first error.
bench_load() {
  local n=$1 k=1 deadline w p pids=() rc=0 t0=$SECONDS
  echo "loading $n entries (bench/gen_entries.py | conntrack -R)"
  if [ -n "${2:-}" ]; then
    python3 bench/gen_entries.py "$n" ${BENCH_NAT_SHARE:+"$BENCH_NAT_SHARE"} | sed "s/ -t [0-9]*/ -t $2/" > "$TMP/entries"
  else
    python3 bench/gen_entries.py "$n" ${BENCH_NAT_SHARE:+"$BENCH_NAT_SHARE"} > "$TMP/entries"
  fi
  [ "$n" -ge 500000 ] && k=$(nproc)
  [ "$k" -gt 4 ] && k=4
  split -l 250000 -a 4 -d "$TMP/entries" "$TMP/load."
  deadline=$(( 120 + n / 10000 ))
  for w in $(seq 0 $(( k - 1 ))); do
    timeout "$deadline" bash -c 'ns=$1 w=$2 k=$3; shift 3; i=0
      for f in "$@"; do
        if [ $(( i % k )) -eq "$w" ]; then
          ip netns exec "$ns" conntrack -R "$f" >/dev/null 2>"$f.err" || :
        fi
        i=$(( i + 1 ))
      done' loader "$NS" "$w" "$k" "$TMP"/load.[0-9][0-9][0-9][0-9] &
    pids+=("$!")
  done
  for p in "${pids[@]}"; do wait "$p" || rc=$?; done
  [ "$rc" -eq 124 ] && echo "warning: conntrack -R still loading after ${deadline}s; killed"
  LOADED=$(ip netns exec "$NS" conntrack -C)
  echo "table holds $LOADED entries (loaded in $(( SECONDS - t0 )) s, $k loader(s))"
  if [ "$LOADED" -lt "$n" ]; then
    echo "warning: $(( n - LOADED )) of $n entries missing; conntrack -R said:" \
      "'$(cat "$TMP"/load.*.err 2>/dev/null | grep -v '^$' | head -1)'"
  fi
  rm -f "$TMP"/load.*
}

# ---- the dashboard in tmux: shared by bench/tui.sh and bench/engine.sh's dashboard part.
# bench/tui_probe.py does the timing; these functions only launch, wait and summarise.

# A flow row of the dashboard: a protocol name, then an address with an arrow.
BENCH_ROW_RE='^\s*(tcp|udp|icmp)\S*\s+\S+:\S*\s*→'

# bench_tmux: a private tmux server named after $NS (tui_probe.py reads $BENCH_TMUX), so
# the benchmark neither sees nor disturbs anyone else's sessions; killed on exit.
bench_tmux() {
  export BENCH_TMUX=$NS
  unset TMUX
  # kill-server leaves the socket file behind here; remove it too.
  bench_at_exit 'tmux -L "$BENCH_TMUX" kill-server 2>/dev/null;
    rm -f "${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/$BENCH_TMUX"'
}

# bench_dash_first SESSION COLSxROWS TIMEOUT FRAME_LOG: start `$CT --netns $NS` in a new
# tmux session (any old one of that name killed first) with CTSCOPE_FRAME_LOG=FRAME_LOG
# (emptied first), and wait for its complete first frame of $LOADED flows: the header
# counts them all, no `dumping…`, and the flows view two lines below says `N shown`.
# Sets DASH_FIRST (s from launch), DASH_ROWS (s until the first flow row showed, while the
# dump still streams), DASH_CPU (CPU s, user+sys of all its threads, by the full frame),
# DASH_POLL (the resolution: ms between the capture that matched and the one before it)
# and DASH_PID (checked to be ctscope:
# `env` execs it). Returns 1, saying why, on a timeout or a wrong pane process.
bench_dash_first() {
  local session=$1 size=$2 timeout=$3 frames=$4 nth out
  nth=$(thousands "$LOADED")
  tmux -L "$BENCH_TMUX" kill-session -t "$session" 2>/dev/null || true
  : > "$frames"
  out=$(python3 bench/tui_probe.py first "$session" "$size" \
    "^(?!.*dumping).*flows $nth\\b.*\\n.*\\n.*\\b$nth shown" "$timeout" "$BENCH_ROW_RE" "$frames" -- \
    env CTSCOPE_FRAME_LOG="$frames" "$CT" --netns "$NS") || {
    echo "dashboard: no complete first frame of $nth flows within ${timeout}s ($out)" >&2
    return 1
  }
  DASH_FIRST=$(echo "$out" | field first); DASH_CPU=$(echo "$out" | field cpu)
  DASH_ROWS=$(echo "$out" | field rows); DASH_POLL=$(echo "$out" | field window_ms)
  [ -n "$DASH_POLL" ] || DASH_POLL=$(echo "$out" | field poll_ms)
  DASH_PID=$(echo "$out" | sed -n 's/.*pid=\([0-9]*\).*/\1/p')
  [ "$(cat /proc/"$DASH_PID"/comm 2>/dev/null)" = ctscope ] || {
    echo "dashboard: the pane's process '$DASH_PID' is not ctscope" >&2
    return 1
  }
}

# bench_dash_keys SESSION PRESSES GAP_S FRAME_LOG: PRESSES keys cycling j, k, PgDn, PgUp,
# Tab, S-Tab, GAP_S to 2*GAP_S apart (tui_probe.py mixed, 5 s deadline a key), timed to
# the flushed frame from FRAME_LOG (or by polling the screen when the build writes no
# log). Sets KEY_P50, KEY_P99, KEY_MAX (ms, key written to tmux to frame), KEY_APP (p99 ms, key
# read to frame flushed inside the app), KEY_N (answered presses), KEY_MISSED, KEY_SRC
# (framelog|capture) and KEY_POLL (ms per poll when capturing); KEY_OUT keeps the output.
bench_dash_keys() {
  KEY_OUT=$(python3 bench/tui_probe.py mixed "$1" "$2" 5 "$3" "$4")
  KEY_P50=$(echo "$KEY_OUT" | field lat_ms | median)
  KEY_P99=$(echo "$KEY_OUT" | field lat_ms | p99)
  KEY_MAX=$(echo "$KEY_OUT" | field lat_ms | mx)
  KEY_APP=$(echo "$KEY_OUT" | field app_ms | p99)
  KEY_N=$(echo "$KEY_OUT" | grep -c lat_ms || true)
  KEY_MISSED=$(echo "$KEY_OUT" | field missed)
  KEY_SRC=$(echo "$KEY_OUT" | sed -n 's/.*source=\([a-z]*\).*/\1/p')
  KEY_POLL=$(echo "$KEY_OUT" | field poll_ms)
}

# VmRSS of a process, KiB.
rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
# p95 of numbers on stdin (nearest rank).
p95() { sort -n | awk '{a[NR]=$1} END {i=int(NR*0.95+0.999); if (i<1) i=1; print a[i]}'; }
# p99 of numbers on stdin (nearest rank), and the largest.
p99() { sort -n | awk '{a[NR]=$1} END {i=int(NR*0.99+0.999); if (i<1) i=1; print a[i]}'; }
mx() { sort -n | tail -1; }
m() { printf '%s\n' "$@" | median; }
field() { sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
# Wall seconds of a command, via bash's TIMEFORMAT.
wall() { local t; TIMEFORMAT=%R; t=$( { time "$@" >/dev/null 2>&1; } 2>&1 ); echo "$t"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
# 1234567 -> 1,234,567 (as the TUI header prints counts).
thousands() { echo "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }
