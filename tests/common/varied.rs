//! A varied conntrack table as `conntrack -I` lines (for `conntrack -R`): both families,
//! tcp, udp, icmp, icmpv6, sctp, gre; SNAT and DNAT set up by the kernel
//! (`--src-nat`/`--dst-nat`, with and without ports), a reply tuple that differs without
//! NAT, per-direction and CTA_ZONE zones, marks, states and status bits. Used by the
//! selector differential and the `-o save` round trip.

use std::fmt::Write as _;

/// `n` unique `conntrack -I` lines mixing every shape the selectors look at.
pub fn table(n: u32) -> String {
    let mut out = String::new();
    for i in 0..n {
        let v6 = i % 5 == 4;
        let (src, dst) = if v6 {
            (
                format!("fd00:42::{:x}", 1 + i),
                format!("fd00:43::{:x}", 1 + i % 7),
            )
        } else {
            (
                format!("10.214.{}.{}", i / 200, i % 200 + 1),
                format!("192.0.2.{}", 1 + i % 7),
            )
        };
        let sport = 2000 + i as u16;
        let mut l = String::new();
        match i % 9 {
            0..=2 => {
                let st = ["ESTABLISHED", "SYN_SENT", "TIME_WAIT"][(i / 9) as usize % 3];
                let dport = [80, 443, 22][(i % 3) as usize];
                let _ = write!(l, "-I -p tcp -s {src} -d {dst} --sport {sport} --dport {dport} --state {st} -t 500");
                if i % 2 == 0 {
                    l.push_str(" -u SEEN_REPLY,ASSURED");
                }
            }
            3 | 4 => {
                let _ = write!(
                    l,
                    "-I -p udp -s {src} -d {dst} --sport {sport} --dport 53 -t 500"
                );
                if i % 3 == 0 {
                    l.push_str(" -u SEEN_REPLY");
                }
            }
            5 if !v6 => {
                let _ = write!(
                    l,
                    "-I -p icmp -s {src} -d {dst} --icmp-type 8 --icmp-code 0 --icmp-id {} -t 500",
                    i % 4
                );
            }
            5 => {
                let _ = write!(l, "-I -p icmpv6 -s {src} -d {dst} --icmpv6-type 128 --icmpv6-code 0 --icmpv6-id {} -t 500", i % 4);
            }
            6 => {
                let _ = write!(l, "-I -p sctp -s {src} -d {dst} --sport {sport} --dport 2905 --state ESTABLISHED --orig-vtag {i} --reply-vtag {} -t 500", i + 1);
            }
            7 => {
                let _ = write!(
                    l,
                    "-I -p gre -s {src} -d {dst} --srckey {:#x} --dstkey {:#x} -t 500",
                    i,
                    i + 1
                );
            }
            _ => {
                let _ = write!(l, "-I -p tcp -s {src} -d {dst} --sport {sport} --dport 8443 --state ESTABLISHED -u SEEN_REPLY -t 500");
                if i % 18 == 8 {
                    let _ = write!(l, " --orig-zone {}", 1 + i % 2);
                } else {
                    let _ = write!(l, " --reply-zone {}", 1 + i % 3);
                }
            }
        }
        // NAT as the kernel records it (status SRC_NAT/DST_NAT, translated reply tuple),
        // and a reply tuple that differs without any NAT status.
        let proto_ok = !l.contains("-p gre") && !l.contains("-p icmp") && !l.contains("-zone");
        if proto_ok && i % 11 == 0 {
            if v6 {
                let _ = write!(l, " --src-nat fd00:99::{}", 1 + i % 2);
            } else if i % 22 == 0 {
                let _ = write!(l, " --src-nat 198.51.100.{}:{}", 1 + i % 2, 40000 + i % 3);
            } else {
                let _ = write!(l, " --src-nat 198.51.100.{}", 1 + i % 2);
            }
        } else if proto_ok && i % 13 == 0 {
            if v6 {
                let _ = write!(l, " --dst-nat fd00:98::1");
            } else {
                let _ = write!(l, " --dst-nat 10.9.9.{}:{}", 1 + i % 2, 5353 + i % 2);
            }
        } else if l.contains("-p udp") && i % 17 == 3 && !v6 {
            let _ = write!(l, " --reply-src 10.7.7.7 --reply-dst {src} --reply-port-src 5300 --reply-port-dst {sport}");
        }
        if i % 6 == 1 && !l.contains("-zone") {
            let _ = write!(l, " -w {}", 1 + i % 3);
        }
        if i % 4 == 2 {
            let _ = write!(l, " -m {}", i % 8);
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}
