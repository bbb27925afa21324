#!/usr/bin/env python3
"""Print N conntrack(8) `-I` lines for `conntrack -R FILE`: a varied table for benchmarks.

Mix (by index): 70% tcp (ESTABLISHED/SYN_SENT/TIME_WAIT/FIN_WAIT), 15% udp, 5% icmp,
10% IPv6 tcp/udp; a few zones and marks; every 50th entry DNATed (reply source differs).
Tuples are unique by construction. Usage: gen_entries.py N > entries.txt
"""
import sys

TCP_STATES = ["ESTABLISHED", "ESTABLISHED", "ESTABLISHED", "SYN_SENT", "TIME_WAIT", "FIN_WAIT"]


def main():
    n = int(sys.argv[1])
    out = sys.stdout
    for i in range(n):
        a, b, c = (i >> 16) & 0xFF, (i >> 8) & 0xFF, i & 0xFF
        sport = 1024 + (i % 60000)
        zone = (i % 7 == 0) and (i % 3) or 0
        mark = i % 5
        extra = f" --zone {zone}" if zone else ""
        extra += f" --mark {mark}" if mark else ""
        kind = i % 20
        if kind < 14:
            st = TCP_STATES[i % len(TCP_STATES)]
            line = (f"-I -p tcp -s 10.{a}.{b}.{c} -d 192.0.2.{1 + i % 200} --sport {sport} "
                    f"--dport {(80, 443, 22, 3306)[i % 4]} --state {st} -t 3600")
            if st == "ESTABLISHED":
                line += " -u ASSURED,SEEN_REPLY"
            if i % 50 == 0:
                line += f" --reply-src 198.51.100.{1 + i % 250} --reply-dst 10.{a}.{b}.{c}"
                line += f" --reply-port-src {(80, 443, 22, 3306)[i % 4]} --reply-port-dst {sport}"
        elif kind < 17:
            line = (f"-I -p udp -s 10.{a}.{b}.{c} -d 192.0.2.53 --sport {sport} --dport 53 -t 120")
        elif kind < 18:
            line = (f"-I -p icmp -s 10.{a}.{b}.{c} -d 192.0.2.7 --icmp-type 8 --icmp-code 0 "
                    f"--icmp-id {i & 0xFFFF} -t 30")
        else:
            p = "tcp" if kind == 18 else "udp"
            st = " --state ESTABLISHED" if p == "tcp" else ""
            line = (f"-I -p {p} -s fd00:213:{a:x}:{b:x}::{c:x} -d 2001:db8::{1 + i % 200:x} "
                    f"--sport {sport} --dport 443{st} -t 3600")
        out.write(line + extra + "\n")


if __name__ == "__main__":
    main()
