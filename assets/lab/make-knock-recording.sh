#!/usr/bin/env bash
# make-knock-recording.sh — build seed 004's port knock in network namespaces, knock it
# with real packets, and record conntrack plus the recency state with `ctscope record`.
#
# Owns: the knock lab (two namespaces, ctscope-knock-srv and ctscope-knock-cli), its
# firewall, the knock schedule, and the recording assets/lab-knock.ctrec. Must not: touch
# anything outside its own namespaces, or leave anything behind (a trap tears it down).
#
# The server's INPUT is seed 004's four-stage knock in iptables (xt_recent lists
# seenping → seenecho → seenbackend, 8000 within 10 s, then MySQL 3306; policy DROP), and
# beside it the same scheme as native nft dynamic sets with timeouts (table inet knock;
# its policy is accept: it only fills sets, iptables decides). The client namespace has two
# addresses:
#
#    cli 10.214.6.2 "admin"     ─veth─  srv 10.214.6.1: a listener on 3306
#    cli 10.214.6.3 "slowpoke"
#
# Schedule (seconds into the recording, roughly):
#    2  admin scans 7 8000 3306 22            → no stage advances
#    4  admin pings, knocks 7                  → stage 2/4 (seenecho)
#    7  admin knocks 8000, connects to 3306    → stage 3 (seenbackend), an ESTABLISHED flow
#    9  slowpoke pings, knocks 7               → stage 2/4
#   22  slowpoke knocks 8000 (13 s: too slow)  → refused, back to stage 1
#
# Usage: sudo assets/lab/make-knock-recording.sh [--out FILE] [--duration SECS] [--ctscope BIN]
#   --out       recording to write (default: assets/lab-knock.ctrec)
#   --duration  recording length in seconds (default 28; the schedule needs ~24)
#   --ctscope   the binary (default: target/release/ctscope, built if missing)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out="$repo/assets/lab-knock.ctrec"
duration=28
ctscope="$repo/target/release/ctscope"
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$(realpath -m "$2"); shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --ctscope) ctscope=$(realpath -m "$2"); shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "make-knock-recording.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
if [ "$(id -u)" != 0 ]; then
    echo "make-knock-recording.sh: needs root (network namespaces, iptables, nft)" >&2
    echo "hint: sudo $0 $*" >&2
    exit 2
fi
for tool in ip iptables nft ss; do
    command -v "$tool" >/dev/null || { echo "make-knock-recording.sh: '$tool' not found" >&2; exit 2; }
done
PY=/usr/bin/python3
if [ ! -x "$ctscope" ] && [ "$ctscope" = "$repo/target/release/ctscope" ]; then
    echo "make-knock-recording.sh: building $ctscope first (cargo build --release)" >&2
    (cd "$repo" && cargo build --release --quiet)
fi

SRV=ctscope-knock-srv CLI=ctscope-knock-cli
SRV4=10.214.6.1 ADMIN4=10.214.6.2 SLOW4=10.214.6.3

work=$(mktemp -d /tmp/ctscope-knock.XXXXXX)
pids=()
t0ms=$(( $(date +%s%N) / 1000000 ))
say() { local ms=$(( $(date +%s%N) / 1000000 - t0ms )); printf '[knock %3d.%01ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*" >&2; }

remove_lab() {
    local p ns
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for ns in $SRV $CLI; do
        if ip netns list | grep -qw "^$ns"; then
            for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
        fi
    done
    sleep 0.3
    for ns in $SRV $CLI; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
}
teardown() { remove_lab; rm -rf "$work"; }
trap teardown EXIT
trap 'exit 130' INT TERM HUP
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
bg() { local ns=$1; shift; ip netns exec "$ns" "$@" >>"$work/procs.log" 2>&1 & pids+=($!); }

# ------------------------------------------------------------------ topology
remove_lab
ip netns add $SRV; ip netns add $CLI
ip link add cli0 netns $SRV type veth peer name eth0 netns $CLI
nsx $SRV sh -ec "
    ip link set lo up; ip link set cli0 up; ip addr add $SRV4/24 dev cli0
    sysctl -qw net.netfilter.nf_conntrack_events=1"
nsx $CLI sh -ec "
    ip link set lo up; ip link set eth0 up
    ip addr add $ADMIN4/24 dev eth0; ip addr add $SLOW4/24 dev eth0"

# ------------------------------------------------------------------ the knock (seed 004)
nsx $SRV sh -ec '
iptables -P INPUT DROP
iptables -A INPUT -i lo -j ACCEPT
iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
iptables -A INPUT -p icmp --icmp-type 8 -m recent --name seenping --set -j ACCEPT
iptables -N ADD_ECHO
iptables -A INPUT -p tcp --dport echo -m recent --name seenping --rcheck -j ADD_ECHO
iptables -A ADD_ECHO -m recent --name seenecho --set -j ACCEPT
iptables -N ADD_BACKEND
iptables -A INPUT -p tcp --dport 8000 -m recent --name seenecho --rcheck --seconds 10 -j ADD_BACKEND
iptables -A INPUT -m recent --name seenecho --remove
iptables -A ADD_BACKEND -m recent --name seenbackend --set -j ACCEPT
iptables -A INPUT -p tcp --dport 3306 -m recent --name seenbackend --rcheck -j ACCEPT'
nsx $SRV nft -f - <<'EOF'
table inet knock {
  set seenping { type ipv4_addr; flags dynamic,timeout; timeout 60s; }
  set seenecho { type ipv4_addr; flags dynamic,timeout; }
  set seenbackend { type ipv4_addr; flags dynamic,timeout; timeout 60s; }
  chain add_echo { add @seenecho { ip saddr timeout 10s } accept; }
  chain add_backend { add @seenbackend { ip saddr } accept; }
  chain input {
    type filter hook input priority 10; policy accept;
    ct state established,related accept
    icmp type echo-request add @seenping { ip saddr } accept
    tcp dport 7 ip saddr @seenping jump add_echo
    tcp dport 8000 ip saddr @seenecho jump add_backend
    delete @seenecho { ip saddr }
    tcp dport 3306 ip saddr @seenbackend accept
  }
}
EOF

cat >"$work/knock.py" <<'EOF'
# knock.py SRC DST STEP…: steps ping, PORT (one connect, 0.5 s), sleepSECS, holdPORT
# (connect, print connected/refused, keep it open 30 s). SRC is the address to knock from.
import os, socket, struct, sys, time
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
src, dst = sys.argv[1], sys.argv[2]
def ping():
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); s.bind((src, 0))
    h = struct.pack('!BBHHH', 8, 0, 0, os.getpid() & 0xffff, 1) + b'knock'
    s.sendto(h[:2] + struct.pack('!H', csum(h)) + h[4:], (dst, 0)); s.close()
def tcp(p, t=0.5):
    s = socket.socket(); s.settimeout(t); s.bind((src, 0))
    try:
        s.connect((dst, p)); return s
    except Exception:
        return None
for step in sys.argv[3:]:
    if step == 'ping': ping()
    elif step.startswith('sleep'): time.sleep(float(step[5:]))
    elif step.startswith('hold'):
        c = tcp(int(step[4:]), 1.5)
        print('connected' if c else 'refused', flush=True)
        if c: time.sleep(30)
    else: tcp(int(step))
    time.sleep(0.05)
EOF
knock() { nsx $CLI "$PY" "$work/knock.py" "$1" $SRV4 "${@:2}"; }

bg $SRV "$PY" -c "
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', 3306)); s.listen(16); c = []
while True: c.append(s.accept())"
for _ in $(seq 100); do
    [ "$(nsx $SRV ss -Hltn 'sport = :3306' | wc -l)" -ge 1 ] && break; sleep 0.05
done

# ------------------------------------------------------------------ record and knock
mkdir -p "$(dirname "$out")"
"$ctscope" --netns $SRV record "$out" --force --duration "${duration}s" &
recorder=$!
pids+=($recorder)
sleep 2
say "admin scans 7 8000 3306 22";       knock $ADMIN4 7 8000 3306 22
sleep 1
say "admin: ping, 7";                   knock $ADMIN4 ping 7
sleep 2
say "admin: 8000, then 3306";           bg $CLI "$PY" "$work/knock.py" $ADMIN4 $SRV4 8000 hold3306
sleep 2
say "slowpoke: ping, 7";                knock $SLOW4 ping 7
sleep 13
say "slowpoke: 8000 after 13 s, 3306";  verdict=$(knock $SLOW4 8000 hold3306)
say "slowpoke's 3306: $verdict"
[ "$verdict" = refused ] || { echo "make-knock-recording.sh: the slow knock was let in" >&2; exit 1; }
wait "$recorder"
say "recorded $(stat -c %s "$out") bytes to $out"
"$ctscope" --replay "$out" recent | sed -n '/^Progress/,$p' >&2
