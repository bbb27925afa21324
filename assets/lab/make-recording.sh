#!/usr/bin/env bash
# make-recording.sh — build the helper lab in network namespaces, drive real traffic
# through the kernel's conntrack helpers, and record it with `ctscope record`.
#
# Owns: the lab topology, its firewall (raw-table CT helper assignment, NAT, a zone, an
# INPUT policy with the classic `RELATED,ESTABLISHED -j ACCEPT`), the traffic schedule, and
# the recording assets/lab-helpers.ctrec. Must not: touch anything outside its own
# namespaces (ctscope-lab-*), or leave anything behind (a trap tears the lab down).
#
# Topology (recorded namespace: srv, "the server and its firewall"); see assets/lab/README.md:
#
#    cli (outside)                srv (recorded)                    ext (LAN behind srv)
#    10.213.6.2, fd00:213:6::2    cli0 10.213.6.1, fd00:213:6::1    10.213.6.130
#    attacker .3, ::3       eth0--cli0                               fd00:213:6::1:2
#                                 lan0 10.213.6.129, ::1:1 --eth0
#    pyftpdlib :21 (.2)           pyftpdlib :21 and :2121, tftp :69,   web :80
#    silent ftp :21 (.3, ::3)     irc :6667, sip :5060, "sshd" :22,
#    web :80                      dns :53, "MariaDB" :3306 (NOT opened in INPUT)
#
# Usage: sudo assets/lab/make-recording.sh [--out FILE] [--duration SECS] [--ctscope BIN]
#                                          [--log DIR]
#   --out       recording to write (default: assets/lab-helpers.ctrec)
#   --duration  recording length in seconds (default 32; the schedule needs ~26)
#   --ctscope   the binary (default: target/release/ctscope, built if missing)
#   --log       also keep `conntrack -E` / `conntrack -E expect` logs and table snapshots
#               there (default: a temporary directory, summarised then removed)
# Without a ctscope that knows `record`, the lab still runs and the conntrack(8) logs and
# summary show what a recording would contain (the script then exits 3).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
out="$repo/assets/lab-helpers.ctrec"
duration=32
ctscope="$repo/target/release/ctscope"
logdir=""
while [ $# -gt 0 ]; do
    case "$1" in
        --out) out=$(realpath -m "$2"); shift 2 ;;
        --duration) duration=$2; shift 2 ;;
        --ctscope) ctscope=$(realpath -m "$2"); shift 2 ;;
        --log) logdir=$(realpath -m "$2"); shift 2 ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) echo "make-recording.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
if [ "$(id -u)" != 0 ]; then
    echo "make-recording.sh: needs root (network namespaces, iptables, ctnetlink)" >&2
    echo "hint: sudo $0 $*" >&2
    exit 2
fi
for tool in ip iptables ip6tables conntrack ss; do
    command -v "$tool" >/dev/null || { echo "make-recording.sh: '$tool' not found" >&2; exit 2; }
done
PY=/usr/bin/python3 # Debian's python3, which has pyftpdlib (not a pyenv one on PATH)
"$PY" -c 'import pyftpdlib' 2>/dev/null || {
    echo "make-recording.sh: $PY lacks pyftpdlib; hint: apt-get install python3-pyftpdlib" >&2
    exit 2
}
LAB="$PY $here/lab.py"
if [ ! -x "$ctscope" ] && [ "$ctscope" = "$repo/target/release/ctscope" ]; then
    echo "make-recording.sh: building $ctscope first (cargo build --release)" >&2
    (cd "$repo" && cargo build --release --quiet) || true
fi

SRV=ctscope-lab-srv CLI=ctscope-lab-cli EXT=ctscope-lab-ext
SRV4=10.213.6.1 CLI4=10.213.6.2 SRVL4=10.213.6.129 EXT4=10.213.6.130
SRV6=fd00:213:6::1 CLI6=fd00:213:6::2 SRVL6=fd00:213:6::1:1 EXT6=fd00:213:6::1:2
EVIL4=10.213.6.3 EVIL6=fd00:213:6::3 # a second address of cli: the attacker's FTP server

work=$(mktemp -d /tmp/ctscope-lab.XXXXXX)
keep_log=$logdir
[ -n "$logdir" ] || logdir="$work/log"
mkdir -p "$logdir"
pids=()

t0ms=$(( $(date +%s%N) / 1000000 ))
say() { local ms=$(( $(date +%s%N) / 1000000 - t0ms )); printf '[lab %3d.%01ds] %s\n' $((ms / 1000)) $((ms % 1000 / 100)) "$*" >&2; }

# Remove the lab: our background processes (by pid), then anything still living in the
# lab namespaces (only this script's children can be there), then the namespaces.
remove_lab() {
    local p ns
    [ -z "${recorder:-}" ] || kill "$recorder" 2>/dev/null || true
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for ns in $SRV $CLI $EXT; do
        if ip netns list | grep -qw "^$ns"; then
            for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
        fi
    done
    sleep 0.3
    for ns in $SRV $CLI $EXT; do
        for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
        ip netns del "$ns" 2>/dev/null || true
    done
}
teardown() { remove_lab; rm -rf "$work"; }
trap teardown EXIT
trap 'exit 130' INT TERM HUP

# A foreground step of the schedule: a failure is reported, counted, and fails the run at
# the end (a recording with a step missing is not the recording the README describes).
failed=()
step() { "$@" || { say "step failed: ${*:2}"; failed+=("${*:2}"); }; }
# Start a background process in a namespace and remember its pid (ip netns exec execs it).
bg() { local ns=$1; shift; ip netns exec "$ns" "$@" >>"$logdir/procs.log" 2>&1 & pids+=($!); }
nsx() { local ns=$1; shift; ip netns exec "$ns" "$@"; }
wait_listen() { # ns proto port count
    local i
    for i in $(seq 100); do
        [ "$(nsx "$1" ss -Hln"${2:0:1}" "sport = :$3" | wc -l)" -ge "${4:-1}" ] && return 0
        sleep 0.05
    done
    echo "make-recording.sh: nothing listens on $2/$3 in $1" >&2; exit 1
}

# ------------------------------------------------------------------ topology
remove_lab # idempotent: a previous run that was killed hard leaves nothing in the way
for ns in $SRV $CLI $EXT; do ip netns add "$ns"; done
ip link add cli0 netns $SRV type veth peer name eth0 netns $CLI
ip link add lan0 netns $SRV type veth peer name eth0 netns $EXT
nsx $SRV sh -ec "
    ip link set lo up; ip link set cli0 up; ip link set lan0 up
    ip addr add $SRV4/25 dev cli0;  ip -6 addr add $SRV6/112 dev cli0 nodad
    ip addr add $SRVL4/25 dev lan0; ip -6 addr add $SRVL6/112 dev lan0 nodad
    sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    sysctl -qw net.netfilter.nf_conntrack_acct=1 net.netfilter.nf_conntrack_timestamp=1
    sysctl -qw net.netfilter.nf_conntrack_events=1"
nsx $CLI sh -ec "
    ip link set lo up; ip link set eth0 up
    ip addr add $CLI4/25 dev eth0; ip -6 addr add $CLI6/112 dev eth0 nodad
    ip addr add $EVIL4/25 dev eth0
    ip -6 addr add $EVIL6/112 dev eth0 nodad preferred_lft 0 # never a default source"
nsx $EXT sh -ec "
    ip link set lo up; ip link set eth0 up
    ip addr add $EXT4/25 dev eth0; ip -6 addr add $EXT6/112 dev eth0 nodad
    ip route add default via $SRVL4; ip -6 route add default via $SRVL6"

# ------------------------------------------------------------------ firewall of srv
# Helpers are assigned explicitly with the raw-table CT target (the kernel no longer
# assigns them by port). The zone rules come first: the first CT target wins.
nsx $SRV sh -ec "
    iptables  -t raw -A PREROUTING -i lan0 -d $SRVL4 -p udp --dport 69 -j CT --zone 7 --helper tftp
    ip6tables -t raw -A PREROUTING -i lan0 -d $SRVL6 -p udp --dport 69 -j CT --zone 7 --helper tftp
    iptables  -t raw -A PREROUTING -i lan0 -d $SRVL4 -j CT --zone 7
    ip6tables -t raw -A PREROUTING -i lan0 -d $SRVL6 -j CT --zone 7
    iptables  -t raw -A OUTPUT -o lan0 -s $SRVL4 -j CT --zone 7
    ip6tables -t raw -A OUTPUT -o lan0 -s $SRVL6 -j CT --zone 7
    for ipt in iptables ip6tables; do
        \$ipt -t raw -A PREROUTING -p tcp --dport 21   -j CT --helper ftp
        \$ipt -t raw -A PREROUTING -p tcp --dport 2121 -j CT --helper ftp
        \$ipt -t raw -A OUTPUT     -p tcp --dport 21   -j CT --helper ftp
        \$ipt -t raw -A PREROUTING -p udp --dport 69   -j CT --helper tftp
        \$ipt -t raw -A PREROUTING -p udp --dport 5060 -j CT --helper sip
    done
    iptables -t raw -A PREROUTING -p tcp --dport 6667 -j CT --helper irc

    # Marks: FTP control connections and the published web service. Labels (numeric,
    # no connlabel.conf needed): 3 on SSH sessions, 1 on the published web service.
    for ipt in iptables ip6tables; do
        \$ipt -t mangle -A PREROUTING -p tcp --dport 21   -j CONNMARK --set-mark 0x21
        \$ipt -t mangle -A PREROUTING -p tcp --dport 8080 -j CONNMARK --set-mark 0x80
        \$ipt -t mangle -A PREROUTING -p tcp --dport 22 -m connlabel --label 3 --set 2>/dev/null
        \$ipt -t mangle -A PREROUTING -p tcp --dport 8080 -m connlabel --label 1 --set 2>/dev/null
    done

    # NAT: the LAN is masqueraded toward the outside; srv:8080 is published to ext:80.
    iptables  -t nat -A POSTROUTING -o cli0 -s 10.213.6.128/25 -j MASQUERADE
    ip6tables -t nat -A POSTROUTING -o cli0 -s fd00:213:6::1:0/112 -j MASQUERADE
    iptables  -t nat -A PREROUTING -i cli0 -p tcp --dport 8080 -j DNAT --to-destination $EXT4:80
    ip6tables -t nat -A PREROUTING -i cli0 -p tcp --dport 8080 -j DNAT --to-destination [$EXT6]:80

    # The classic host firewall of the seed story: 3306 is never opened, yet RELATED is.
    for ipt in iptables ip6tables; do
        \$ipt -A INPUT -i lo -j ACCEPT
        \$ipt -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT
        \$ipt -A INPUT -i lan0 -j ACCEPT
        \$ipt -A INPUT -p tcp -m multiport --dports 21,22,2121,6667 -j ACCEPT
        \$ipt -A INPUT -p udp -m multiport --dports 53,69,5060 -j ACCEPT
        \$ipt -P INPUT DROP
    done
    iptables  -A INPUT -p icmp -j ACCEPT
    ip6tables -A INPUT -p ipv6-icmp -j ACCEPT"

# ------------------------------------------------------------------ servers
files="$work/files"; mkdir -p "$files"
head -c 262144 /dev/urandom >"$files/backup.tar.gz"
head -c 65536 /dev/urandom >"$files/report.pdf"
head -c 3000 /dev/urandom >"$files/pxelinux.0"
printf 'ctscope lab\n' >"$files/README"
truncate -s 64M "$files/debian-12.iso" # read a trickle at a time: a long-lived data flow

bg $SRV $PY -m pyftpdlib -i $SRV4 -p 21 -d "$files" -r 50000-50099
bg $SRV $PY -m pyftpdlib -i $SRV6 -p 21 -d "$files" -r 50100-50199
bg $SRV $PY -m pyftpdlib -i $SRV4 -p 2121 -d "$files" -r 50200-50299
bg $SRV $LAB serve-tftp --listen $SRV4 --listen $SRV6 --listen $SRVL4 --dir "$files" --ignore pending.cfg
bg $SRV $LAB serve-irc --listen $SRV4
bg $SRV $LAB serve-sip --listen $SRV4 --listen $SRV6 --rtp-port 40000
bg $SRV $LAB rtp-echo --listen $SRV4 --port 40000
bg $SRV $LAB rtp-echo --listen $SRV6 --port 40000
bg $SRV $LAB serve-tcp --listen 0.0.0.0 --listen :: --port 3306 --mariadb
bg $SRV $LAB serve-tcp --listen 0.0.0.0 --listen :: --port 22 --banner 'SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n' --echo
bg $SRV $LAB serve-udp --listen 0.0.0.0 --listen :: --port 53
bg $CLI $PY -m pyftpdlib -i $CLI4 -p 21 -d "$files" -r 51000-51099
bg $CLI $LAB serve-silent-ftp --listen $EVIL4
bg $CLI $LAB serve-silent-ftp --listen $EVIL6
bg $CLI $LAB serve-tcp --listen $CLI4 --listen $CLI6 --port 80 --http
bg $EXT $LAB serve-tcp --listen $EXT4 --listen $EXT6 --port 80 --http
wait_listen $SRV tcp 21 2; wait_listen $SRV tcp 2121; wait_listen $SRV tcp 3306 2; wait_listen $SRV tcp 22 2
wait_listen $SRV udp 69 3; wait_listen $SRV udp 5060 2; wait_listen $SRV tcp 6667
wait_listen $CLI tcp 21 3; wait_listen $CLI tcp 80 2; wait_listen $EXT tcp 80 2

hold=$((duration + 60)) # masters outlive the recording; the trap ends them

# ------------------------------------------------------------------ flows before recording
# These exist when the recorder starts: they come from its initial dump, not from events.
bg $CLI $LAB connect --host $SRV4 --port 22 --send 'SSH-2.0-OpenSSH_9.2\r\n' --every 2 --hold $hold
bg $CLI $LAB connect --host $SRV6 --port 22 --send 'SSH-2.0-OpenSSH_9.2\r\n' --every 3 --hold $hold
bg $EXT $LAB connect --host $SRVL4 --port 22 --send 'SSH-2.0-PuTTY\r\n' --every 2 --hold $hold
bg $EXT $LAB connect --host $CLI4 --port 80 --send 'GET / HTTP/1.1\r\nHost: cli\r\n\r\n' --every 4 --hold $hold
bg $EXT $LAB connect --host $CLI6 --port 80 --send 'GET / HTTP/1.1\r\nHost: cli\r\n\r\n' --every 5 --hold $hold
bg $CLI $LAB connect --host $SRV4 --port 8080 --send 'GET / HTTP/1.1\r\nHost: srv\r\n\r\n' --every 4 --hold $hold
bg $CLI $LAB ping --host $SRV4 --count $hold --every 1 --ident 4242
bg $EXT $LAB ping --host $SRVL4 --count $hold --every 1 --ident 4343
step nsx $EXT $LAB udp --host $SRVL4 --port 53 --count 2
sleep 1

# ------------------------------------------------------------------ recorder
nsx $SRV conntrack -E -o extended,id,timestamp >"$logdir/events.txt" 2>&1 & pids+=($!)
nsx $SRV conntrack -E expect >"$logdir/expect-events.txt" 2>&1 & pids+=($!)
recorder=""
if [ -x "$ctscope" ] && "$ctscope" record --help 2>&1 | grep -q -- --duration; then
    mkdir -p "$(dirname "$out")"
    "$ctscope" --netns $SRV record "$out.tmp" --duration "${duration}s" & recorder=$!
    say "recording $duration s into $out"
else
    say "no 'ctscope record' in $ctscope: running the traffic with conntrack(8) logs only"
fi
sleep 1.5

# ------------------------------------------------------------------ the session
say "a web fetch through DNAT ends with an RST (a DESTROY within seconds)"
step nsx $CLI $LAB connect --host $SRV4 --port 8080 --send 'GET /favicon.ico HTTP/1.1\r\nHost: srv\r\n\r\n' --hold 0.2 --reset
say "FTP passive IPv4 (RETR x2, then a slow RETR that stays open) and IPv6 (EPSV, RETR)"
bg $CLI $LAB ftp --host $SRV4 --mode passive --get report.pdf --get README --slow debian-12.iso --hold $hold
bg $CLI $LAB ftp --host $SRV6 --mode passive --get backup.tar.gz --hold $hold
sleep 2
say "FTP active IPv4 (PORT) and IPv6 (EPRT)"
bg $CLI $LAB ftp --host $SRV4 --mode active --get report.pdf --hold $hold
bg $CLI $LAB ftp --host $SRV6 --mode active --get README --list --hold $hold
sleep 1.5
say "FTP on a non-standard port (2121, helper by CT rule), passive"
bg $CLI $LAB ftp --host $SRV4 --port 2121 --mode passive --get README --hold $hold
sleep 0.5
say "FTP PASV/EPSV left pending (expectations stay)"
bg $CLI $LAB ftp --host $SRV4 --mode passive --get README --pending-pasv --hold $hold
bg $CLI $LAB ftp --host $SRV6 --mode passive --pending-pasv --hold $hold
sleep 1.5
say "TFTP read requests: answered (v4, v6, zone 7 from the LAN) and one unanswered"
tftp=()
nsx $CLI $LAB tftp-get --host $SRV4 --sport 40069 --file pxelinux.0 & tftp+=($!)
nsx $CLI $LAB tftp-get --host $SRV6 --sport 40069 --file README & tftp+=($!)
nsx $EXT $LAB tftp-get --host $SRVL4 --sport 40070 --file pxelinux.0 & tftp+=($!)
nsx $CLI $LAB tftp-get --host $SRV4 --sport 40169 --file pending.cfg & tftp+=($!)
for p in "${tftp[@]}"; do wait "$p" || failed+=("tftp-get (pid $p)"); done
sleep 1
say "IRC: DCC SEND offers on 5000 and 5001; the LAN host takes the first"
bg $CLI $LAB irc-dcc --server $SRV4 --me $CLI4 --dcc-port 5000 --dcc-port 5001 --hold $hold
sleep 2
bg $EXT $LAB connect --host $CLI4 --port 5000 --hold $hold
sleep 1.5
say "SIP REGISTER (signalling expectation), INVITE with SDP (IPv4 and IPv6), RTP both ways"
bg $CLI $LAB sip-register --host $SRV4 --me $CLI4 --sport 5062 --hold $hold
bg $CLI $LAB sip-call --host $SRV4 --me $CLI4 --rtp-port 49170 --rtp 4 --hold $hold
bg $CLI $LAB sip-call --host $SRV6 --me $CLI6 --rtp-port 49180 --rtp 0 --hold $hold
sleep 2
say "forged PORT toward $SRV4:3306; the attacker at $EVIL4 reaches 'MariaDB' as RELATED"
bg $SRV $LAB forge-port --server $EVIL4 --target $SRV4 --port 3306 --hold $hold
sleep 1
bg $CLI $LAB connect --bind $EVIL4 --host $SRV4 --port 3306 --send '\x20\x00\x00\x01\x85\xa6\xff\x01' --every 3 --hold $hold
sleep 1
say "forged EPRT toward [$SRV6]:3306: the expectation stays pending"
bg $SRV $LAB forge-port --server $EVIL6 --target $SRV6 --port 3306 --hold $hold
sleep 1.5
say "NAT'd FTP from the LAN (masqueraded PORT rewritten by nf_nat_ftp; PASV, then one left pending)"
bg $EXT $LAB ftp --host $CLI4 --mode active --get report.pdf --hold $hold
bg $EXT $LAB ftp --host $CLI4 --mode passive --get README --pending-pasv --hold $hold
sleep 2
say "short-lived flows: DNS, a web fetch through DNAT, pings"
step nsx $CLI $LAB udp --host $SRV4 --port 53 --sport 35353 --count 3 --every 0.3
step nsx $CLI $LAB udp --host $SRV6 --port 53 --sport 35353 --count 2 --every 0.3
step nsx $CLI $LAB connect --host $SRV6 --port 8080 --send 'GET / HTTP/1.1\r\nHost: srv\r\n\r\n' --hold 0.5
step nsx $CLI $LAB ping --host $SRV6 --count 2 --every 0.3 --ident 6262
step nsx $EXT $LAB ping --host $CLI4 --count 2 --every 0.3 --ident 6363
say "the admin deletes the IPv4 DNS flow by hand (a DESTROY event)"
nsx $SRV conntrack -D -p udp --orig-port-src 35353 --orig-port-dst 53 -f ipv4 >/dev/null 2>&1 || true

# ------------------------------------------------------------------ snapshot, finish
nsx $SRV conntrack -L -o extended,id,labels >"$logdir/flows.txt" 2>/dev/null
{ nsx $SRV conntrack -L expect -f ipv4; nsx $SRV conntrack -L expect -f ipv6; } >"$logdir/expect.txt" 2>/dev/null
summary() {
    echo "--- conntrack(8) in $SRV at the end of the schedule${keep_log:+ (logs in $logdir)}"
    # conntrack(8) prints neither EXPECTED nor SRC_NAT/DST_NAT: count NAT from the tuples.
    echo "flows: $(wc -l <"$logdir/flows.txt")," \
         "NAT'd: $(awk '{n=0; for(i=1;i<=NF;i++) if($i ~ /^(src|dst)=/) a[n++]=$i;
                        if (a[0] != "src=" substr(a[3],5) || a[1] != "dst=" substr(a[2],5)) c++}
                       END{print c+0}' "$logdir/flows.txt")," \
         "zone 7: $(grep -c 'zone=7' "$logdir/flows.txt" || true)"
    echo "flows per helper: $(grep -o 'helper=[a-z]*' "$logdir/flows.txt" | sort | uniq -c | tr '\n' ' ')"
    echo "expectations: $(wc -l <"$logdir/expect.txt"), per helper: $(grep -o '[a-z]*$' "$logdir/expect.txt" | sort | uniq -c | tr '\n' ' ')"
    echo "expectation events: $(grep -c NEW "$logdir/expect-events.txt" || true) new," \
         "$(grep -c DESTROY "$logdir/expect-events.txt" || true) destroy;" \
         "flow events: $(grep -c NEW "$logdir/events.txt" || true) new," \
         "$(grep -c UPDATE "$logdir/events.txt" || true) update, $(grep -c DESTROY "$logdir/events.txt" || true) destroy"
}
# Background clients and servers report their errors in procs.log.
while IFS= read -r line; do
    say "background: $line"; failed+=("$line")
done < <(grep -a '^\[lab.py\] ERROR' "$logdir/procs.log" || true)
if [ -n "$recorder" ]; then
    say "waiting for the recorder"
    if ! wait "$recorder"; then
        rm -f "$out.tmp"
        echo "make-recording.sh: 'ctscope record' failed; $out left as it was" >&2
        exit 1
    fi
    recorder=""
    if [ ${#failed[@]} -gt 0 ]; then
        rm -f "$out.tmp"
        summary >&2
        echo "make-recording.sh: ${#failed[@]} step(s) failed (see above); $out left as it was; run again" >&2
        exit 1
    fi
    mv "$out.tmp" "$out"
    say "wrote $out ($(stat -c %s "$out") bytes)"
    summary >&2
    exit 0
fi
sleep 1
summary >&2
exit 3
