//! `-o save`: one `conntrack -I` line per flow, which `conntrack -R FILE` loads into
//! another table (the round trip is proved in `tests/save_roundtrip.rs`).
//!
//! What goes in: tuples (the reply only when it is not the inverse of the original), NAT
//! as `--src-nat`/`--dst-nat ADDR[:PORT]` so the kernel sets it up again (status and
//! translated reply), protocol state, timeout left, the status bits ctnetlink lets
//! userspace set (SEEN_REPLY, ASSURED, FIXED_TIMEOUT), mark, zones, and labels that have
//! a connlabel.conf name. What cannot be recreated is left out: the helper, the master of
//! a RELATED flow, counters, timestamps, secctx; sctp verification tags are written as 0
//! (conntrack -I requires them and ctscope does not decode them).

use std::fmt::Write;
use std::net::IpAddr;

use super::view::{FlowView, TupleView};
use crate::model::flow::status;

fn addr(a: &IpAddr) -> String {
    a.to_string()
}

/// `ADDR` or `ADDR:PORT`, IPv6 with a port in brackets.
fn target(a: &IpAddr, port: Option<u16>) -> String {
    match (a, port) {
        (_, None) => addr(a),
        (IpAddr::V6(v6), Some(p)) => format!("[{v6}]:{p}"),
        (IpAddr::V4(v4), Some(p)) => format!("{v4}:{p}"),
    }
}

/// The protocol's own tuple fields: ports, icmp type/code/id or gre keys.
fn l4(s: &mut String, t: &TupleView, reply: bool, v6: bool) {
    if let (Some(ty), Some(code), Some(id)) = (t.icmp_type, t.code, t.icmp_id) {
        // conntrack -I takes the original icmp tuple; the kernel derives the reply.
        if !reply {
            let p = if v6 { "icmpv6" } else { "icmp" };
            let _ = write!(s, " --{p}-type {ty} --{p}-code {code} --{p}-id {id}");
        }
    } else if let (Some(a), Some(b)) = (t.srckey, t.dstkey) {
        if reply {
            let _ = write!(s, " --reply-key-src {a} --reply-key-dst {b}");
        } else {
            let _ = write!(s, " --srckey {a} --dstkey {b}");
        }
    } else if let (Some(a), Some(b)) = (t.sport, t.dport) {
        if reply {
            let _ = write!(s, " --reply-port-src {a} --reply-port-dst {b}");
        } else {
            let _ = write!(s, " --sport {a} --dport {b}");
        }
    }
}

/// Whether `reply` is what the kernel derives from `orig` (swapped endpoints).
fn is_inverse(orig: &TupleView, reply: &TupleView) -> bool {
    orig.src == reply.dst
        && orig.dst == reply.src
        && orig.sport == reply.dport
        && orig.dport == reply.sport
        && orig.srckey == reply.dstkey
        && orig.dstkey == reply.srckey
}

/// One `conntrack -I` line (no trailing newline) recreating the flow `v`.
pub fn flow(v: &FlowView) -> String {
    let (o, r) = (&v.orig, &v.reply);
    let v6 = v.family == "ipv6";
    let mut s = match crate::model::tuple::proto::name(v.proto.0) {
        Some(n) => format!("-I -p {n}"),
        None => format!("-I -p {}", v.proto.0),
    };
    let _ = write!(s, " -s {} -d {}", addr(&o.src), addr(&o.dst));
    l4(&mut s, o, false, v6);
    let bits = v.status.0;
    let snat = bits & status::SRC_NAT != 0 && (r.dst != o.src || r.dport != o.sport);
    let dnat = bits & status::DST_NAT != 0 && (r.src != o.dst || r.sport != o.dport);
    if snat {
        let port = (o.sport.is_some() && r.dport != o.sport)
            .then_some(r.dport)
            .flatten();
        let _ = write!(s, " --src-nat {}", target(&r.dst, port));
    }
    if dnat {
        let port = (o.dport.is_some() && r.sport != o.dport)
            .then_some(r.sport)
            .flatten();
        let _ = write!(s, " --dst-nat {}", target(&r.src, port));
    }
    if !snat && !dnat && !is_inverse(o, r) && o.icmp_type.is_none() {
        let _ = write!(s, " -r {} -q {}", addr(&r.src), addr(&r.dst));
        l4(&mut s, r, true, v6);
    }
    if let Some(st) = v.state {
        let _ = write!(s, " --state {st}");
    }
    if v.proto.0 == crate::model::tuple::proto::SCTP {
        // conntrack -I requires the verification tags for sctp; ctscope does not decode
        // them (CTA_PROTOINFO_SCTP_VTAG_*), so they are written as 0.
        s.push_str(" --orig-vtag 0 --reply-vtag 0");
    }
    let _ = write!(s, " -t {}", v.timeout.max(1));
    let settable: Vec<&str> = [
        (status::SEEN_REPLY, "SEEN_REPLY"),
        (status::ASSURED, "ASSURED"),
        (status::FIXED_TIMEOUT, "FIXED_TIMEOUT"),
    ]
    .into_iter()
    .filter(|(b, _)| bits & b != 0)
    .map(|(_, n)| n)
    .collect();
    if !settable.is_empty() {
        let _ = write!(s, " -u {}", settable.join(","));
    }
    if v.mark != 0 {
        let _ = write!(s, " -m {}", v.mark);
    }
    // conntrack refuses -w together with a per-direction zone.
    if v.zone_orig.is_some() || v.zone_reply.is_some() {
        if let Some(z) = v.zone_orig {
            let _ = write!(s, " --orig-zone {z}");
        }
        if let Some(z) = v.zone_reply {
            let _ = write!(s, " --reply-zone {z}");
        }
    } else if v.zone != 0 {
        let _ = write!(s, " -w {}", v.zone);
    }
    let names: Vec<String> = v
        .labels
        .named()
        .filter_map(|l| match l {
            // A name with a space or comma could not be read back as one word.
            super::view::Label::Name(n) if !n.contains([' ', ',', '\t']) => Some(n.to_string()),
            _ => None,
        })
        .collect();
    if !names.is_empty() {
        let _ = write!(s, " -l {}", names.join(","));
    }
    s
}
