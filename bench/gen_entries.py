#!/usr/bin/env python3
"""Print N conntrack(8) `-I` lines for `conntrack -R FILE`: a varied table for benchmarks.

Mix (by index): 70% tcp (ESTABLISHED/SYN_SENT/TIME_WAIT/FIN_WAIT), 15% udp, 5% icmp,
10% IPv6 tcp/udp; a few zones and marks; every 50th entry DNATed (reply source differs).
With NAT_SHARE (0..1), that share of the TCP and UDP entries (both families; conntrack -I
takes no reply tuple for ICMP) is NATed instead, spread evenly: alternately DNAT (the reply
comes from another address and port) and SNAT (the reply goes to a translated source, as
masquerade does).
Tuples are unique by construction. Usage: gen_entries.py N [NAT_SHARE] > entries.txt
"""
import sys

TCP_STATES = ["ESTABLISHED", "ESTABLISHED", "ESTABLISHED", "SYN_SENT", "TIME_WAIT", "FIN_WAIT"]


def nat(i, v6, src, sport, dst, dport):
    """conntrack -I options for a reply tuple that differs on one side, DNAT or SNAT."""
    a, b = (i >> 8) & 0xFF, i & 0xFF
    if i % 2 == 0:  # DNAT: the reply comes from the real server.
        real = f"fd00:5e::{a:x}:{b:x}" if v6 else f"198.51.{100 + (a & 3)}.{b}"
        return (f" --reply-src {real} --reply-dst {src}"
                f" --reply-port-src {8000 + (i % 1000)} --reply-port-dst {sport}")
    # SNAT / masquerade: the reply goes to the translated source.
    out = f"2001:db8:ffff::{a:x}:{b:x}" if v6 else f"203.0.{113 + (a & 1)}.{b}"
    return (f" --reply-src {dst} --reply-dst {out}"
            f" --reply-port-src {dport} --reply-port-dst {10000 + (i % 50000)}")


def main():
    n = int(sys.argv[1])
    share = float(sys.argv[2]) if len(sys.argv) > 2 else None
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
            if share is None and i % 50 == 0:
                line += f" --reply-src 198.51.100.{1 + i % 250} --reply-dst 10.{a}.{b}.{c}"
                line += f" --reply-port-src {(80, 443, 22, 3306)[i % 4]} --reply-port-dst {sport}"
            nat_args = (False, f"10.{a}.{b}.{c}", sport, f"192.0.2.{1 + i % 200}",
                        (80, 443, 22, 3306)[i % 4])
        elif kind < 17:
            line = (f"-I -p udp -s 10.{a}.{b}.{c} -d 192.0.2.53 --sport {sport} --dport 53 -t 120")
            nat_args = (False, f"10.{a}.{b}.{c}", sport, "192.0.2.53", 53)
        elif kind < 18:
            line = (f"-I -p icmp -s 10.{a}.{b}.{c} -d 192.0.2.7 --icmp-type 8 --icmp-code 0 "
                    f"--icmp-id {i & 0xFFFF} -t 30")
            nat_args = None
        else:
            p = "tcp" if kind == 18 else "udp"
            st = " --state ESTABLISHED" if p == "tcp" else ""
            line = (f"-I -p {p} -s fd00:213:{a:x}:{b:x}::{c:x} -d 2001:db8::{1 + i % 200:x} "
                    f"--sport {sport} --dport 443{st} -t 3600")
            nat_args = (True, f"fd00:213:{a:x}:{b:x}::{c:x}", sport, f"2001:db8::{1 + i % 200:x}", 443)
        # The i-th entry is NATed when the running share crosses a whole number: exact and
        # evenly spread at any share.
        # conntrack -I refuses a reply tuple for ICMP ("invalid parameters"): those 5% of
        # entries stay un-NATed at any share.
        if share is not None and nat_args and int((i + 1) * share) > int(i * share):
            line += nat(i, *nat_args)
        out.write(line + extra + "\n")


if __name__ == "__main__":
    main()
