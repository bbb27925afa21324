//! Stop-gap reader of conntrack(8) text (`conntrack -L expect`, `conntrack -L -o extended`)
//! into model records, so `ctscope audit` can show live expectations before the netlink
//! engine is wired in. It only has to understand the fields the audit uses: tuples, mask,
//! master, class, helper, zone, timeout. Lines it cannot read are skipped (never a panic).
//! To be replaced by `engine::load` once main has it; nothing else should depend on it.

use std::net::IpAddr;

use crate::model::helper::intern;
use crate::model::tuple::{octets, proto, Family};
use crate::model::{Expectation, Flow, Tuple};

#[derive(Clone, Copy, PartialEq)]
enum Group {
    Tuple,
    Mask,
    Master,
}

/// One line of `conntrack -L expect` (any `-o` format).
pub fn parse_expect_line(line: &str) -> Option<Expectation> {
    let mut w = line.split_whitespace();
    let timeout: u32 = w.next()?.parse().ok()?;
    let mut parts: [Tuple; 3] = [Tuple::default(); 3];
    let mut group = Group::Tuple;
    let mut p: Option<u8> = None;
    let (mut class, mut helper, mut zone) = (0u32, None, 0u16);
    let mut family = None;
    for tok in w {
        let Some((k, v)) = tok.split_once('=') else {
            continue;
        };
        let gi = |g: Group| match g {
            Group::Tuple => 0,
            Group::Mask => 1,
            Group::Master => 2,
        };
        match k {
            "proto" => p = v.parse().ok(),
            "src" | "dst" | "mask-src" | "mask-dst" | "master-src" | "master-dst" => {
                group = match k {
                    "src" | "dst" => Group::Tuple,
                    "mask-src" | "mask-dst" => Group::Mask,
                    _ => Group::Master,
                };
                let ip: IpAddr = v.parse().ok()?;
                if group == Group::Tuple && family.is_none() {
                    family = Some(if ip.is_ipv4() {
                        Family::Ipv4
                    } else {
                        Family::Ipv6
                    });
                }
                let t = &mut parts[gi(group)];
                if k.ends_with("src") {
                    t.src = octets(ip);
                } else {
                    t.dst = octets(ip);
                }
            }
            "sport" => parts[gi(group)].sport = v.parse().ok()?,
            "dport" => parts[gi(group)].dport = v.parse().ok()?,
            "class" => class = v.parse().unwrap_or(0),
            "helper" => helper = Some(v.to_string()),
            "zone" => zone = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    let family = family?;
    let p = p?;
    for t in &mut parts {
        t.family = family;
        t.proto = p;
    }
    // conntrack prints the master's protocol as the expectation's; the master of a tftp or
    // sip expectation is udp like it, of ftp/irc/sane tcp like it. GRE (pptp) masters are
    // tcp 1723: not distinguishable here, a known limit of this stop-gap.
    let mut e = Expectation::new(parts[0], parts[1], parts[2]);
    e.mask.proto = p;
    e.timeout = timeout;
    e.class = class;
    e.zone = zone;
    if let Some(h) = helper {
        e.helper = intern(&h);
    }
    Some(e)
}

/// One line of `conntrack -L -o extended` for port-based protocols; others are skipped.
pub fn parse_flow_line(line: &str) -> Option<Flow> {
    let w: Vec<&str> = line.split_whitespace().collect();
    let family = match *w.first()? {
        "ipv4" => Family::Ipv4,
        "ipv6" => Family::Ipv6,
        _ => return None,
    };
    let p: u8 = w.get(3)?.parse().ok()?;
    if !matches!(
        p,
        proto::TCP | proto::UDP | proto::SCTP | proto::DCCP | proto::UDPLITE
    ) {
        return None;
    }
    let timeout: u32 = w.get(4)?.parse().ok()?;
    let mut tuples = [Tuple {
        family,
        proto: p,
        ..Tuple::default()
    }; 2];
    let mut idx: i32 = -1;
    let mut flow_helper = None;
    let (mut mark, mut zone) = (0u32, 0u16);
    for tok in &w[5..] {
        let Some((k, v)) = tok.split_once('=') else {
            continue;
        };
        match k {
            "src" => {
                idx += 1;
                if idx > 1 {
                    return None;
                }
                tuples[idx as usize].src = octets(v.parse().ok()?);
            }
            "dst" if idx >= 0 => tuples[idx as usize].dst = octets(v.parse().ok()?),
            "sport" if idx >= 0 => tuples[idx as usize].sport = v.parse().ok()?,
            "dport" if idx >= 0 => tuples[idx as usize].dport = v.parse().ok()?,
            "helper" => flow_helper = Some(v.to_string()),
            "mark" => mark = v.parse().unwrap_or(0),
            "zone" => zone = v.parse().unwrap_or(0),
            _ => {}
        }
    }
    if idx != 1 {
        return None;
    }
    let mut f = Flow::new(tuples[0]);
    f.set_reply(tuples[1]);
    f.timeout = timeout;
    f.mark = mark;
    f.zone = zone;
    if let Some(h) = flow_helper {
        f.helper = intern(&h);
    }
    Some(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_conntrack_expect_lines() {
        // `conntrack -L expect` in the client namespace after a forged PORT (this kernel).
        let e = parse_expect_line("299 proto=6 src=10.213.5.1 dst=10.213.5.2 sport=0 dport=3306 mask-src=255.255.255.255 mask-dst=255.255.255.255 sport=0 dport=65535 master-src=10.213.5.2 master-dst=10.213.5.1 sport=35648 dport=21 class=0 helper=ftp").unwrap();
        assert_eq!(e.tuple.dport, 3306);
        assert!(e.sport_is_any() && !e.dport_is_any() && !e.src_is_any());
        assert_eq!(e.master.sport, 35648);
        assert_eq!(e.master.dport, 21);
        assert_eq!(e.helper.name(), Some("ftp"));
        assert_eq!(e.timeout, 299);
        let e6 = parse_expect_line("299 proto=6 src=fd00:213:5::1 dst=fd00:213:5::2 sport=0 dport=6379 mask-src=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff mask-dst=ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff sport=0 dport=65535 master-src=fd00:213:5::2 master-dst=fd00:213:5::1 sport=41870 dport=21 class=0 helper=ftp").unwrap();
        assert_eq!(e6.tuple.family, Family::Ipv6);
        assert!(parse_expect_line("conntrack v1.4.7 (conntrack-tools): 0 expectations").is_none());
        assert!(parse_expect_line("12 proto=6 src=nonsense").is_none());
    }

    #[test]
    fn reads_conntrack_extended_flow_lines() {
        let f = parse_flow_line("ipv4     2 tcp      6 119 FIN_WAIT src=10.213.5.2 dst=10.213.5.1 sport=57758 dport=21 src=10.213.5.1 dst=10.213.5.2 sport=21 dport=57758 [ASSURED] mark=0 helper=ftp use=1").unwrap();
        assert_eq!(f.orig.dport, 21);
        assert_eq!(f.helper.name(), Some("ftp"));
        assert!(!f.is_nat());
        assert!(parse_flow_line("ipv4     2 icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=1 src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=1 mark=0 use=1").is_none());
        assert!(parse_flow_line("ipv4 2 tcp").is_none());
    }
}
