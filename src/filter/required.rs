//! What every flow a filter matches must have, read off the filter's required conjuncts:
//! the top-level `and` chain (conntrack-style flags compile to one) and nothing under an
//! `or`, `not` or `!=`. `netlink::dump::DumpFilter` turns these facts into a kernel-side
//! dump filter, so a big table is filtered where it lives; the full filter still runs on
//! every entry afterwards, so a fact left out here only costs speed, never correctness.
//!
//! It owns that reading only: it must not know netlink attributes, nor which kernel
//! evaluates what (that is `netlink::dump`'s business).

use super::eval::{Cmp, IcmpField, Node, Side, Term};
use super::Filter;
use crate::model::flow::status;
use crate::model::tuple::Family;

/// Required facts about one tuple of a flow (original or reply): exact addresses and
/// ports. A prefix shorter than the address or a port range is not a fact here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TupleFacts {
    pub src: Option<(Family, [u8; 16])>,
    pub dst: Option<(Family, [u8; 16])>,
    pub sport: Option<u16>,
    pub dport: Option<u16>,
}

impl TupleFacts {
    pub fn is_empty(&self) -> bool {
        *self == TupleFacts::default()
    }
}

/// What every matching flow must have. Each field is `None`/0 when the filter does not
/// require it. When two conjuncts say different things (`mark=1 and mark=2`), the first
/// is kept: the filter matches nothing then, and any one of them is still necessary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Required {
    /// `family=` (`-f`).
    pub family: Option<Family>,
    /// The family an exact or prefix address term implies (an IPv4 prefix matches no IPv6
    /// flow).
    pub addr_family: Option<Family>,
    /// `proto=` (`-p`).
    pub proto: Option<u8>,
    /// `mark=VALUE/MASK` (`-m`): `(value, mask)`, `mark & mask == value`.
    pub mark: Option<(u32, u32)>,
    /// A zone id other than 0 that the entry's zone must carry: `zone=N` (`CTA_ZONE`, both
    /// directions) or `zone_orig=N`/`zone_reply=N` (one direction). Zone 0 is never a fact:
    /// a flow zoned in one direction only reports `zone` 0.
    pub zone: Option<u16>,
    /// Status bits that must be set (`status=`, `related`) and that must be clear
    /// (`UNREPLIED`: no `SEEN_REPLY`).
    pub status_set: u32,
    pub status_clear: u32,
    pub orig: TupleFacts,
    pub reply: TupleFacts,
    /// `icmp_type=`, `icmp_code=`, `icmp_id=` (`--icmp-*`): ICMP and ICMPv6 flows only.
    pub icmp_type: Option<u8>,
    pub icmp_code: Option<u8>,
    pub icmp_id: Option<u16>,
}

impl Required {
    /// Whether nothing is required (a kernel filter would select everything).
    pub fn is_empty(&self) -> bool {
        *self == Required::default()
    }
}

impl Filter {
    /// The facts every flow this filter matches must have (see the module docs).
    pub fn required(&self) -> Required {
        let mut r = Required::default();
        collect(&self.root, &mut r);
        r
    }
}

fn exact(c: &Cmp) -> Option<u64> {
    match *c {
        Cmp::Range(lo, hi) if lo == hi => Some(lo),
        _ => None,
    }
}

fn collect(node: &Node, r: &mut Required) {
    match node {
        Node::And(v) => v.iter().for_each(|n| collect(n, r)),
        Node::Term(t) => term(t, r),
        // Under `or`, `not` or `!=` a term is not required.
        Node::All | Node::Or(_) | Node::Not(_) | Node::Ne(_) => {}
    }
}

fn set<T>(slot: &mut Option<T>, v: T) {
    if slot.is_none() {
        *slot = Some(v);
    }
}

fn term(t: &Term, r: &mut Required) {
    match t {
        Term::Family(f) => set(&mut r.family, *f),
        Term::Proto(p) => set(&mut r.proto, *p),
        Term::Mark(mask, c) => {
            if let Some(v) = exact(c) {
                set(&mut r.mark, (v as u32, *mask));
            }
        }
        Term::Zone(c) | Term::ZoneOrig(c) | Term::ZoneReply(c) => {
            if let Some(z) = exact(c).filter(|z| *z != 0) {
                set(&mut r.zone, z as u16);
            }
        }
        Term::Status(bits) => r.status_set |= bits,
        Term::Related => r.status_set |= status::EXPECTED,
        Term::Unreplied => r.status_clear |= status::SEEN_REPLY,
        Term::Addr(side, net) => {
            set(&mut r.addr_family, net.family);
            let full = match net.family {
                Family::Ipv4 => 32,
                Family::Ipv6 => 128,
            };
            if net.prefix != full {
                return;
            }
            let a = Some((net.family, net.addr));
            let slot = match side {
                Side::Src => &mut r.orig.src,
                Side::Dst => &mut r.orig.dst,
                Side::ReplySrc => &mut r.reply.src,
                Side::ReplyDst => &mut r.reply.dst,
                Side::Any => return,
            };
            if slot.is_none() {
                *slot = a;
            }
        }
        Term::Port(side, c) => {
            let Some(p) = exact(c) else { return };
            let p = p as u16;
            match side {
                Side::Src => set(&mut r.orig.sport, p),
                Side::Dst => set(&mut r.orig.dport, p),
                Side::ReplySrc => set(&mut r.reply.sport, p),
                Side::ReplyDst => set(&mut r.reply.dport, p),
                Side::Any => {}
            }
        }
        Term::Icmp(field, c) => {
            let Some(v) = exact(c) else { return };
            match field {
                IcmpField::Type => set(&mut r.icmp_type, v as u8),
                IcmpField::Code => set(&mut r.icmp_code, v as u8),
                IcmpField::Id => set(&mut r.icmp_id, v as u16),
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::{from_conntrack_flags, ConntrackFlags};

    fn req(src: &str) -> Required {
        Filter::parse(src).unwrap().required()
    }

    #[test]
    fn conjuncts_are_facts_and_disjuncts_are_not() {
        let r = req("mark=0x10/0xff and proto=tcp and dport=80 and src=10.0.0.1");
        assert_eq!(r.mark, Some((0x10, 0xff)));
        assert_eq!(r.proto, Some(6));
        assert_eq!(r.orig.dport, Some(80));
        assert_eq!(r.addr_family, Some(Family::Ipv4));
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[10, 0, 0, 1]);
        assert_eq!(r.orig.src, Some((Family::Ipv4, a)));
        assert!(req("mark=1 or mark=2").is_empty());
        assert!(req("not mark=1").is_empty());
        assert!(req("mark!=1").is_empty());
        // A required conjunct beside an `or` is still required.
        assert_eq!(
            req("mark=3 and (dport=1 or dport=2)").mark,
            Some((3, u32::MAX))
        );
    }

    #[test]
    fn ranges_prefixes_and_zone_zero_are_not_exact_facts() {
        let r = req("mark=1-3 and dport=1-1024 and src=10.0.0.0/8 and zone=0");
        assert_eq!(r.mark, None);
        assert_eq!(r.orig.dport, None);
        assert_eq!(r.orig.src, None);
        assert_eq!(r.addr_family, Some(Family::Ipv4));
        assert_eq!(r.zone, None);
        assert_eq!(req("zone_reply=7").zone, Some(7));
    }

    #[test]
    fn status_words_set_and_clear_bits() {
        let r = req("status=ASSURED,UNREPLIED");
        assert_eq!(r.status_set, status::ASSURED);
        assert_eq!(r.status_clear, status::SEEN_REPLY);
        assert_eq!(req("related").status_set, status::EXPECTED);
    }

    #[test]
    fn conntrack_flags_compile_to_the_same_facts() {
        let flags = ConntrackFlags::default()
            .with("family", "ipv6")
            .with("mark", "0x10/0xff")
            .with("reply-src", "fd00::1")
            .with("zone", "4");
        let r = from_conntrack_flags(&flags).unwrap().required();
        assert_eq!(r.family, Some(Family::Ipv6));
        assert_eq!(r.mark, Some((0x10, 0xff)));
        assert_eq!(r.zone, Some(4));
        assert!(r.reply.src.is_some() && r.orig.is_empty());
    }
}
