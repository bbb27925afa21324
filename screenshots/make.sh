#!/usr/bin/env bash
# make.sh — PNG screenshots of every dashboard screen, taken from the real TUI.
#
# Owns: screenshots/*.png. Runs `ctscope --replay assets/lab-helpers.ctrec --fast` inside a
# private tmux server at fixed sizes, drives it with the keys of the keymap (src/tui/keymap.rs:
# 1 flows, 2 expectations, 3 RELATED chains, 4 findings, 5 recent, Enter detail, ? help, / filter
# (C-u clears the bar), F and H confirmation dialogs, n/Esc back), captures each screen with
# `tmux capture-pane -e -p`, then converts it with screenshots/ansi2svg.py and rsvg-convert.
# No root needed, nothing live is touched (a replay cannot delete anything). The replay's
# clock is the recording's, so two runs give identical PNGs. The Recent screen is taken
# from assets/lab-knock.ctrec (seed 004's port knock, recency snapshots included).
#
# Usage: screenshots/make.sh [--bin PATH] [--rec FILE] [--keep DIR]
#   --bin   ctscope binary (default target/release/ctscope, built if missing)
#   --rec   recording (default assets/lab-helpers.ctrec)
#   --keep  also keep the .ansi captures and .svg files in DIR
# Needs: tmux, rsvg-convert (apt: librsvg2-bin), the DejaVu Sans Mono font
# (apt: fonts-dejavu-core), python3; ImageMagick, if present, shrinks the PNGs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
bin="$repo/target/release/ctscope"
rec="$repo/assets/lab-helpers.ctrec"
keep=""
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) bin=$(realpath -m "$2"); shift 2 ;;
        --rec) rec=$(realpath -m "$2"); shift 2 ;;
        --keep) keep=$(realpath -m "$2"); shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "make.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
for tool in tmux rsvg-convert python3; do
    command -v "$tool" >/dev/null || {
        echo "make.sh: '$tool' not found; hint: apt-get install tmux librsvg2-bin fonts-dejavu-core" >&2
        exit 2
    }
done
[ -f "$rec" ] || { echo "make.sh: no recording '$rec'; hint: sudo assets/lab/make-recording.sh" >&2; exit 2; }
if [ ! -x "$bin" ]; then
    (cd "$repo" && cargo build --release --quiet)
fi

# Shown in the header: keep it the short, repository-relative path when it is one.
cd "$repo"
case "$rec" in "$repo"/*) rec=${rec#"$repo"/} ;; esac

im=$(command -v magick || command -v convert || true) # ImageMagick, if present

work=$(mktemp -d /tmp/ctscope-shots.XXXXXX)
sock="ctscope-shots-$$" # a private tmux server: never the user's sessions
cat >"$work/tmux.conf" <<'EOF'
set -g status off
set -g default-terminal "tmux-256color"
set -g escape-time 0
set -g remain-on-exit on
EOF
cleanup() {
    tmux -L "$sock" kill-server 2>/dev/null || true
    if [ -n "$keep" ]; then mkdir -p "$keep" && cp "$work"/*.ansi "$work"/*.svg "$keep"/ 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

tmux_socket() { echo "${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/$sock"; }
cols=0 rows=0
# [ENV=…] start COLS ROWS [ctscope args…]: a fresh dashboard on the recording. The
# environment is fixed so every machine gets the same colours; NO_COLOR only when asked.
start() {
    cols=$1 rows=$2; shift 2
    local extra_env=${ENV:-} args="" a
    for a in "$@"; do args+=" '$a'"; done
    tmux -L "$sock" kill-server 2>/dev/null || true
    # The old server removes its socket as it dies; starting the next one meanwhile fails.
    local i
    for i in $(seq 50); do [ -S "$(tmux_socket)" ] || break; sleep 0.1; done
    tmux -L "$sock" -f "$work/tmux.conf" new-session -d -s shot -x "$cols" -y "$rows" \
        "env -u NO_COLOR TERM=tmux-256color COLORTERM=truecolor LANG=C.UTF-8 TZ=UTC $extra_env \
         '$bin' --replay '$rec' --fast$args; sleep 600"
    wait_for "${ready:-(exp|Exp|Expectations) [1-9]}" # drawn, and the replay is under way
    wait_for 'REPLAY ENDED|replay ended' # the whole recording is in: the last state
    sleep 0.5
}
keys() { tmux -L "$sock" send-keys -t shot "$@"; sleep 0.4; }
typed() { tmux -L "$sock" send-keys -t shot -l "$1"; sleep 0.3; }
plain() { tmux -L "$sock" capture-pane -t shot -p; }
# wait_for REGEX: poll the screen (plain text) until it shows REGEX, up to 10 s.
wait_for() {
    local i
    for i in $(seq 50); do
        plain | grep -Eq -- "$1" && return 0
        sleep 0.2
    done
    echo "make.sh: the screen never showed '$1'; it shows:" >&2
    plain >&2
    exit 1
}
# shot NAME [light]: capture the pane with colours and turn it into screenshots/NAME.png.
# ansi2svg.py paints the terminal's default colours as a dark terminal would; `light`
# swaps them (#101010 background, #d4d4d4 text) for a light terminal's.
shot() {
    sleep 0.3
    tmux -L "$sock" capture-pane -t shot -e -p >"$work/$1.ansi"
    python3 "$here/ansi2svg.py" "$work/$1.ansi" "$work/$1.svg" "$cols" "$rows"
    if [ "${2:-}" = light ]; then
        sed -i 's/#101010/#LIGHTBG/g; s/#d4d4d4/#1c1c1c/g; s/#LIGHTBG/#fafafa/g' "$work/$1.svg"
    fi
    rsvg-convert --format png --output "$here/$1.png" "$work/$1.svg"
    # Optional: a 128-colour palette PNG is a third of the size and looks the same
    # (a terminal has few colours; only the font's anti-aliasing adds more).
    if [ -n "$im" ]; then "$im" "$here/$1.png" -strip -colors 128 "PNG8:$here/$1.png"; fi
    echo "screenshots/$1.png  (${cols}x${rows})"
}

# filter EXPR: open the bar, clear it (C-u), type EXPR, apply.
filter() { keys /; keys C-u; typed "$1"; keys Enter; }

# ---------------------------------------------------------------- 120 x 36
start 120 36
keys 1; wait_for 'Original'
shot flows
keys 2; wait_for 'Expected'
shot expectations
keys 3; wait_for 'master → expectations'
shot chains
keys 4; wait_for 'fix:'
shot findings
# The seed story: the attacker's connection to MariaDB, RELATED through a forged PORT.
keys 1; filter 'port=3306'; wait_for '1/[0-9]+ match'
keys Enter; wait_for 'risk'
shot detail
keys Escape; keys Escape
# The forged EPRT's expectation, still pending.
keys 2; filter 'port=3306'; wait_for 'match'
keys Enter; wait_for 'risk'
shot detail-expect
keys Escape; keys Escape
# An expectation of a masqueraded FTP session from the LAN: NAT direction, tuple, function.
keys 2; filter 'expect and src in 10.213.6.128/25'; wait_for '1/[0-9]+ match'
keys Enter; wait_for 'NAT'
shot detail-expect-nat
keys Escape; keys Escape
keys 1; keys /; keys C-u; typed 'related or helper=ftp'
shot filter-typing
keys Enter; wait_for 'match'
shot filter
filter 'port=3306 and (helper=ftp or'; wait_for 'error'
shot filter-error
keys Escape; keys Escape
# Confirmations: nothing is removed (n), and a replay could not remove anything anyway.
keys 1; filter 'related'; wait_for 'match'
keys F; wait_for 'sample'
shot confirm-flush
keys n; keys Escape
keys 2; filter 'helper=sip'; wait_for 'match'
keys H; wait_for 'sample'
shot confirm-helper
keys n; keys Escape
start 120 36 # a fresh screen, without the status line the dialogs left
keys '?'; wait_for 'Keys'
shot help

# ---------------------------------------------------------------- 80 x 24
start 80 24
keys 1; wait_for 'Original'
shot flows-80x24
keys 3; wait_for 'master'
shot chains-80x24

# ---------------------------------------------------------------- themes
ENV=NO_COLOR=1 start 120 36
keys 3; wait_for 'master'
shot chains-monochrome
start 120 36 --theme light
keys 3; wait_for 'master'
shot chains-light light

# ---------------------------------------------------------------- the knock recording
# The Recent screen at the knock's end: progress, lists, the admitted flow under its entry.
rec=assets/lab-knock.ctrec ready='Flows [1-9]' start 120 36
keys 5; wait_for 'Knock progress'
shot recent
