//! Dump a table: `conntrack -L` (flows) and `conntrack -L expect` (expectations), IPv4 and
//! IPv6 together, optionally filtered by the kernel. `nfgen_family = AF_UNSPEC` makes the
//! kernel skip its family filter (`ctnetlink_filter_match`, `ctnetlink_exp_dump_table`),
//! so one request returns both families — conntrack(8) asks for AF_INET unless told
//! `-f ipv6`.
//!
//! A [`DumpFilter`] is what the kernel can evaluate of a selection (see
//! `ctnetlink_alloc_filter` and `ctnetlink_filter_match` in net/netfilter/
//! nf_conntrack_netlink.c): the family, `CTA_MARK`+`CTA_MARK_MASK`, `CTA_ZONE`,
//! `CTA_STATUS`+`CTA_STATUS_MASK` and `CTA_FILTER` with exact fields of the original and
//! reply tuples. Every filter built here selects a superset of what the user's filter
//! selects, so callers re-check each entry and correctness never rests on the kernel; a
//! kernel that ignores an attribute (older than the feature) just sends more. A kernel
//! that refuses one (`EINVAL`, `EOPNOTSUPP`) gets the plain dump, once.
//!
//! This file only frames requests and streams raw messages to a sink.

use super::request::Request;
use super::{Conn, Table};
use crate::abi::*;
use crate::error::{Error, Result};
use crate::filter::{Required, TupleFacts};
use crate::model::tuple::{proto, Family};

/// How a dump went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DumpOutcome {
    /// Data messages delivered to the sink.
    pub messages: usize,
    /// Some reply carried `NLM_F_DUMP_INTR`: the table changed under the dump in a way
    /// the kernel could not follow; the caller should dump again.
    pub interrupted: bool,
    /// The replies carried `NLM_F_DUMP_FILTERED`: the kernel applied a filter (a flow dump
    /// with any of family, mark, zone, status or `CTA_FILTER`; expectation dumps never say).
    /// Only entries carry the flag: a filtered dump that selects nothing cannot say.
    pub filtered: bool,
    /// The kernel refused the filter with this errno and the dump was redone without it.
    pub fallback: Option<i32>,
}

/// Exact fields of one tuple to compare (`CTA_FILTER_*_FLAGS` plus the tuple nest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TupleFilter {
    /// `CTA_FILTER_F_*` bits.
    pub flags: u32,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub proto: u8,
    pub sport: u16,
    pub dport: u16,
    pub icmp_type: u8,
    pub icmp_code: u8,
    pub icmp_id: u16,
}

/// A kernel-side dump filter. The default filters nothing and sends the plain request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DumpFilter {
    /// `nfgen_family`: 0 both, `AF_INET`, `AF_INET6`.
    pub family: u8,
    /// `CTA_MARK` and `CTA_MARK_MASK`: `ct->mark & mask == value`.
    pub mark: Option<(u32, u32)>,
    /// `CTA_ZONE`: the entry's zone id, whatever its direction (`nf_ct_zone_equal_any`).
    pub zone: Option<u16>,
    /// `CTA_STATUS` and `CTA_STATUS_MASK`: `ct->status & mask == value` (5.19+; the mask
    /// must not be 0, the kernel refuses that).
    pub status: Option<(u32, u32)>,
    /// `CTA_FILTER` over `CTA_TUPLE_ORIG` / `CTA_TUPLE_REPLY` (5.8+); needs a family.
    pub orig: TupleFilter,
    pub reply: TupleFilter,
}

impl DumpFilter {
    /// Whether this sends the plain, unfiltered request.
    pub fn is_none(&self) -> bool {
        *self == DumpFilter::default()
    }

    /// The part of `req` a 6.18 kernel evaluates exactly for a flow dump. What is left
    /// out, and why:
    /// - IPv6 addresses: the kernel's IPv6 address test is inverted (see `tuple_filter`);
    /// - a tuple field without a known family: `CTA_FILTER` tuples need an IPv4 or IPv6
    ///   `nfgen_family` (`ctnetlink_parse_tuple_filter` refuses AF_UNSPEC);
    /// - ports without `proto=tcp|udp`: the kernel compares ports of those two only, and
    ///   parses them only under a protocol number;
    /// - ICMP fields without `proto=icmp` (IPv4) or `proto=icmpv6` (IPv6);
    /// - zone 0, prefixes, ranges, and everything else (state, labels, helper, NAT,
    ///   counters, text…): the kernel has no such dump filter.
    ///
    /// The kernel's zone filter compares the entry's zone id in any direction, a superset
    /// of `zone=N`, `zone_orig=N` and `zone_reply=N` alike.
    pub fn for_flows(req: &Required) -> DumpFilter {
        let family = req.family.or(req.addr_family);
        let mut f = DumpFilter {
            family: family.map_or(0, |f| f as u8),
            mark: req.mark,
            zone: req.zone,
            ..DumpFilter::default()
        };
        let mask = req.status_set | req.status_clear;
        if mask != 0 {
            f.status = Some((req.status_set, mask));
        }
        if let Some(fam) = family {
            f.orig = tuple_filter(fam, req.proto, &req.orig, Some(req));
            f.reply = tuple_filter(fam, req.proto, &req.reply, None);
        }
        f
    }

    /// What the kernel evaluates of `req` for an expectation dump: the family only
    /// (`ctnetlink_exp_dump_table` reads no attribute).
    pub fn for_expects(req: &Required) -> DumpFilter {
        DumpFilter {
            family: req.family.map_or(0, |f| f as u8),
            ..DumpFilter::default()
        }
    }

    /// The attributes of a dump request (`nfgen_family` is the request's own).
    pub fn put(&self, r: &mut Request) {
        if let Some((v, m)) = self.mark {
            r.put_be32(CTA_MARK, v);
            r.put_be32(CTA_MARK_MASK, m);
        }
        if let Some(z) = self.zone {
            r.put_be16(CTA_ZONE, z);
        }
        if let Some((v, m)) = self.status {
            r.put_be32(CTA_STATUS, v);
            r.put_be32(CTA_STATUS_MASK, m);
        }
        if self.orig.flags == 0 && self.reply.flags == 0 {
            return;
        }
        let fam = if self.family == Family::Ipv6 as u8 {
            Family::Ipv6
        } else {
            Family::Ipv4
        };
        let nest = r.begin_nested(CTA_FILTER);
        if self.orig.flags != 0 {
            // CTA_FILTER_*_FLAGS is NLA_U32: host byte order, unlike the rest of ctnetlink.
            r.put(CTA_FILTER_ORIG_FLAGS, &self.orig.flags.to_ne_bytes());
        }
        if self.reply.flags != 0 {
            r.put(CTA_FILTER_REPLY_FLAGS, &self.reply.flags.to_ne_bytes());
        }
        r.end_nested(nest);
        for (ty, t) in [(CTA_TUPLE_ORIG, &self.orig), (CTA_TUPLE_REPLY, &self.reply)] {
            if t.flags != 0 {
                put_tuple_filter(r, ty, fam, t);
            }
        }
    }

    /// One line for `CTSCOPE_DEBUG_DUMP`: what the request asks the kernel.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match self.family {
            0 => {}
            2 => parts.push("family=ipv4".to_owned()),
            10 => parts.push("family=ipv6".to_owned()),
            n => parts.push(format!("family={n}")),
        }
        if let Some((v, m)) = self.mark {
            parts.push(format!("mark={v:#x}/{m:#x}"));
        }
        if let Some(z) = self.zone {
            parts.push(format!("zone={z}"));
        }
        if let Some((v, m)) = self.status {
            parts.push(format!("status={v:#x}/{m:#x}"));
        }
        if self.orig.flags != 0 {
            parts.push(format!("orig-flags={:#x}", self.orig.flags));
        }
        if self.reply.flags != 0 {
            parts.push(format!("reply-flags={:#x}", self.reply.flags));
        }
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(" ")
        }
    }
}

/// The `CTA_FILTER` part for one tuple. `icmp` carries the ICMP facts (original tuple only:
/// they describe the original tuple).
fn tuple_filter(
    fam: Family,
    proto_num: Option<u8>,
    t: &TupleFacts,
    icmp: Option<&Required>,
) -> TupleFilter {
    let mut f = TupleFilter::default();
    // IPv6 addresses are never sent: `ctnetlink_filter_match_tuple` tests them with
    // `!ipv6_addr_cmp(...)`, which skips the entries whose address is *equal* (seen on
    // 6.18: `-s fd00::1` received every IPv6 flow but that one). Only IPv4 compares right.
    for (addr, flag, slot) in [
        (t.src, CTA_FILTER_F_CTA_IP_SRC, &mut f.src),
        (t.dst, CTA_FILTER_F_CTA_IP_DST, &mut f.dst),
    ] {
        if let Some((_, a)) = addr.filter(|(af, _)| *af == fam && fam == Family::Ipv4) {
            *slot = a;
            f.flags |= flag;
        }
    }
    let Some(p) = proto_num else {
        return f;
    };
    // The tuple's protocol is the flow's; only an original-tuple fact on its own would
    // make a reply filter, so the reply gets the number only with a port of its own.
    let ports = t.sport.is_some() || t.dport.is_some();
    let mut fields = 0;
    if matches!(p, proto::TCP | proto::UDP) {
        if let Some(sp) = t.sport {
            f.sport = sp;
            fields |= CTA_FILTER_F_CTA_PROTO_SRC_PORT;
        }
        if let Some(dp) = t.dport {
            f.dport = dp;
            fields |= CTA_FILTER_F_CTA_PROTO_DST_PORT;
        }
    }
    if let Some(r) = icmp {
        let (ty, code, id) = match (p, fam) {
            (proto::ICMP, Family::Ipv4) => (
                CTA_FILTER_F_CTA_PROTO_ICMP_TYPE,
                CTA_FILTER_F_CTA_PROTO_ICMP_CODE,
                CTA_FILTER_F_CTA_PROTO_ICMP_ID,
            ),
            (proto::ICMPV6, Family::Ipv6) => (
                CTA_FILTER_F_CTA_PROTO_ICMPV6_TYPE,
                CTA_FILTER_F_CTA_PROTO_ICMPV6_CODE,
                CTA_FILTER_F_CTA_PROTO_ICMPV6_ID,
            ),
            _ => (0, 0, 0),
        };
        if ty != 0 {
            if let Some(v) = r.icmp_type {
                f.icmp_type = v;
                fields |= ty;
            }
            if let Some(v) = r.icmp_code {
                f.icmp_code = v;
                fields |= code;
            }
            if let Some(v) = r.icmp_id {
                f.icmp_id = v;
                fields |= id;
            }
        }
    }
    if icmp.is_some() || ports || fields != 0 {
        f.proto = p;
        f.flags |= CTA_FILTER_F_CTA_PROTO_NUM | fields;
    }
    f
}

/// The tuple nest `ctnetlink_parse_tuple_filter` reads: only the fields `t.flags` names
/// (each named field must be present, or the kernel answers EINVAL).
fn put_tuple_filter(r: &mut Request, ty: u16, fam: Family, t: &TupleFilter) {
    let outer = r.begin_nested(ty);
    if t.flags & (CTA_FILTER_F_CTA_IP_SRC | CTA_FILTER_F_CTA_IP_DST) != 0 {
        let ip = r.begin_nested(CTA_TUPLE_IP);
        let (s, d, n) = match fam {
            Family::Ipv4 => (CTA_IP_V4_SRC, CTA_IP_V4_DST, 4),
            Family::Ipv6 => (CTA_IP_V6_SRC, CTA_IP_V6_DST, 16),
        };
        if t.flags & CTA_FILTER_F_CTA_IP_SRC != 0 {
            r.put(s, &t.src[..n]);
        }
        if t.flags & CTA_FILTER_F_CTA_IP_DST != 0 {
            r.put(d, &t.dst[..n]);
        }
        r.end_nested(ip);
    }
    if t.flags & CTA_FILTER_F_CTA_PROTO_NUM != 0 {
        let p = r.begin_nested(CTA_TUPLE_PROTO);
        r.put_u8(CTA_PROTO_NUM, t.proto);
        if t.flags & CTA_FILTER_F_CTA_PROTO_SRC_PORT != 0 {
            r.put_be16(CTA_PROTO_SRC_PORT, t.sport);
        }
        if t.flags & CTA_FILTER_F_CTA_PROTO_DST_PORT != 0 {
            r.put_be16(CTA_PROTO_DST_PORT, t.dport);
        }
        let icmp = [
            (CTA_FILTER_F_CTA_PROTO_ICMP_ID, CTA_PROTO_ICMP_ID),
            (CTA_FILTER_F_CTA_PROTO_ICMPV6_ID, CTA_PROTO_ICMPV6_ID),
        ];
        for (flag, attr) in icmp {
            if t.flags & flag != 0 {
                r.put_be16(attr, t.icmp_id);
            }
        }
        let bytes = [
            (
                CTA_FILTER_F_CTA_PROTO_ICMP_TYPE,
                CTA_PROTO_ICMP_TYPE,
                t.icmp_type,
            ),
            (
                CTA_FILTER_F_CTA_PROTO_ICMP_CODE,
                CTA_PROTO_ICMP_CODE,
                t.icmp_code,
            ),
            (
                CTA_FILTER_F_CTA_PROTO_ICMPV6_TYPE,
                CTA_PROTO_ICMPV6_TYPE,
                t.icmp_type,
            ),
            (
                CTA_FILTER_F_CTA_PROTO_ICMPV6_CODE,
                CTA_PROTO_ICMPV6_CODE,
                t.icmp_code,
            ),
        ];
        for (flag, attr, v) in bytes {
            if t.flags & flag != 0 {
                r.put_u8(attr, v);
            }
        }
        r.end_nested(p);
    }
    r.end_nested(outer);
}

/// The dump request for `table` with `filter` applied.
pub fn request(table: Table, filter: &DumpFilter) -> Request {
    let msg = match table {
        Table::Flows => IPCTNL_MSG_CT_GET,
        Table::Expects => IPCTNL_MSG_EXP_GET,
    };
    let mut req = Request::new(table.subsys(), msg, NLM_F_DUMP, filter.family);
    if table == Table::Flows {
        filter.put(&mut req);
    }
    req
}

impl Conn {
    /// `conntrack -L` / `conntrack -L expect` for both families. Each entry's raw netlink
    /// message (header included) goes to `sink`, in kernel order, until `NLMSG_DONE`.
    /// A kernel refusal is `Error::Netlink { op: "dump", errno }`.
    pub fn dump(&mut self, table: Table, sink: &mut dyn FnMut(&[u8])) -> Result<DumpOutcome> {
        self.dump_filtered(table, &DumpFilter::default(), sink)
    }

    /// `conntrack -L` with what the kernel can filter of a selection (see [`DumpFilter`]).
    /// The sink may get entries the selection does not match; it never misses one. When
    /// the kernel refuses the filter (`EINVAL`, `EOPNOTSUPP`: an attribute it does not
    /// know how to take) before sending anything, the plain dump follows, once, and
    /// `DumpOutcome::fallback` says so.
    pub fn dump_filtered(
        &mut self,
        table: Table,
        filter: &DumpFilter,
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<DumpOutcome> {
        let op = match table {
            Table::Flows => "dump flows",
            Table::Expects => "dump expectations",
        };
        let mut messages = 0;
        let first = self.transact(op, request(table, filter), false, &mut |m| {
            messages += 1;
            sink(m)
        });
        let (flags, fallback) = match first {
            Ok(flags) => (flags, None),
            Err(Error::Netlink { errno, .. })
                if messages == 0
                    && !filter.is_none()
                    && (errno == libc::EINVAL || errno == libc::EOPNOTSUPP) =>
            {
                let plain = request(table, &DumpFilter::default());
                let flags = self.transact(op, plain, false, &mut |m| {
                    messages += 1;
                    sink(m)
                })?;
                (flags, Some(errno))
            }
            Err(e) => return Err(e),
        };
        Ok(DumpOutcome {
            messages,
            interrupted: flags & NLM_F_DUMP_INTR != 0,
            filtered: flags & NLM_F_DUMP_FILTERED != 0,
            fallback,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::Filter;

    fn req(src: &str) -> Required {
        Filter::parse(src).unwrap().required()
    }

    /// The request's attributes (after the 20-byte header), as (type, payload) pairs of
    /// the top level.
    fn attrs(b: &[u8]) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        let mut a = &b[20..];
        while a.len() >= 4 {
            let len = u16::from_ne_bytes([a[0], a[1]]) as usize;
            let ty = u16::from_ne_bytes([a[2], a[3]]);
            out.push((ty, a[4..len].to_vec()));
            a = &a[((len + 3) & !3).min(a.len())..];
        }
        out
    }

    #[test]
    fn no_filter_is_the_plain_request() {
        let b = request(Table::Flows, &DumpFilter::for_flows(&req(""))).finish(1);
        assert_eq!(b.len(), 20);
        assert_eq!(&b[16..20], &[0, 0, 0, 0]);
        // Flags: NLM_F_REQUEST | NLM_F_DUMP.
        assert_eq!(u16::from_ne_bytes([b[6], b[7]]), 0x301);
    }

    #[test]
    fn mark_with_mask_and_family() {
        let f = DumpFilter::for_flows(&req("mark=0x10/0xff and family=ipv6"));
        let b = request(Table::Flows, &f).finish(1);
        assert_eq!(b[16], 10, "nfgen_family AF_INET6");
        assert_eq!(
            attrs(&b),
            [
                (CTA_MARK, vec![0, 0, 0, 0x10]),
                (CTA_MARK_MASK, vec![0, 0, 0, 0xff])
            ]
        );
    }

    #[test]
    fn status_zone_and_unreplied() {
        let f = DumpFilter::for_flows(&req("status=ASSURED,UNREPLIED and zone=7"));
        assert_eq!(f.status, Some((4, 6)));
        let b = request(Table::Flows, &f).finish(1);
        assert_eq!(
            attrs(&b),
            [
                (CTA_ZONE, vec![0, 7]),
                (CTA_STATUS, vec![0, 0, 0, 4]),
                (CTA_STATUS_MASK, vec![0, 0, 0, 6])
            ]
        );
        // Zone 0 is not pushed: a flow zoned in one direction only has zone 0 to ctscope
        // and another id to the kernel.
        assert_eq!(DumpFilter::for_flows(&req("zone=0")).zone, None);
    }

    #[test]
    fn cta_filter_bytes_for_an_exact_ipv4_tcp_selection() {
        let f = DumpFilter::for_flows(&req(
            "src=10.1.2.3 and proto=tcp and dport=80 and reply_dst=10.9.9.9",
        ));
        assert_eq!(f.family, 2, "the address implies the family");
        assert_eq!(
            f.orig.flags,
            CTA_FILTER_F_CTA_IP_SRC | CTA_FILTER_F_CTA_PROTO_NUM | CTA_FILTER_F_CTA_PROTO_DST_PORT
        );
        assert_eq!(f.reply.flags, CTA_FILTER_F_CTA_IP_DST);
        let b = request(Table::Flows, &f).finish(1);
        let a = attrs(&b);
        assert_eq!(a.len(), 3);
        // CTA_FILTER { ORIG_FLAGS u32 0x29 (host order), REPLY_FLAGS u32 0x2 }
        assert_eq!(a[0].0, CTA_FILTER | NLA_F_NESTED);
        let mut want = vec![8, 0, 1, 0];
        want.extend_from_slice(&0x29u32.to_ne_bytes());
        want.extend_from_slice(&[8, 0, 2, 0]);
        want.extend_from_slice(&2u32.to_ne_bytes());
        assert_eq!(a[0].1, want);
        // CTA_TUPLE_ORIG { IP { V4_SRC 10.1.2.3 }, PROTO { NUM 6, DST_PORT be16 80 } }
        assert_eq!(a[1].0, CTA_TUPLE_ORIG | NLA_F_NESTED);
        assert_eq!(
            a[1].1,
            [
                12, 0, 1, 0x80, 8, 0, 1, 0, 10, 1, 2, 3, // ip nest: src only
                20, 0, 2, 0x80, 5, 0, 1, 0, 6, 0, 0, 0, 6, 0, 3, 0, 0, 80, 0, 0
            ]
        );
        // CTA_TUPLE_REPLY { IP { V4_DST 10.9.9.9 } }
        assert_eq!(a[2].0, CTA_TUPLE_REPLY | NLA_F_NESTED);
        assert_eq!(a[2].1, [12, 0, 1, 0x80, 8, 0, 2, 0, 10, 9, 9, 9]);
    }

    #[test]
    fn tuple_fields_need_a_family_and_ports_need_tcp_or_udp() {
        // No family: the kernel refuses CTA_FILTER tuples on AF_UNSPEC, so none is sent.
        let f = DumpFilter::for_flows(&req("proto=tcp and dport=80"));
        assert_eq!((f.family, f.orig.flags), (0, 0));
        // sctp ports are not compared by the kernel: the protocol alone goes.
        let f = DumpFilter::for_flows(&req("family=ipv4 and proto=sctp and dport=80"));
        assert_eq!(f.orig.flags, CTA_FILTER_F_CTA_PROTO_NUM);
        // A prefix is no exact address; its family still is a fact.
        let f = DumpFilter::for_flows(&req("src=10.0.0.0/8"));
        assert_eq!((f.family, f.orig.flags), (2, 0));
        // ICMP fields only under their own protocol and family.
        let f = DumpFilter::for_flows(&req("family=ipv6 and proto=icmpv6 and icmp_type=128"));
        assert_eq!(
            f.orig.flags,
            CTA_FILTER_F_CTA_PROTO_NUM | CTA_FILTER_F_CTA_PROTO_ICMPV6_TYPE
        );
        let f = DumpFilter::for_flows(&req("family=ipv4 and icmp_type=8"));
        assert_eq!(f.orig.flags, 0);
        // IPv6 addresses stay in userspace (the kernel's test is inverted); the family goes.
        let f = DumpFilter::for_flows(&req("src=fd00::1 and proto=udp and dport=53"));
        assert_eq!(f.family, 10);
        assert_eq!(
            f.orig.flags,
            CTA_FILTER_F_CTA_PROTO_NUM | CTA_FILTER_F_CTA_PROTO_DST_PORT
        );
    }

    #[test]
    fn expectation_dumps_carry_the_family_only() {
        let r = req("family=ipv6 and mark=1 and src=fd00::1");
        let f = DumpFilter::for_expects(&r);
        assert_eq!(
            f,
            DumpFilter {
                family: 10,
                ..DumpFilter::default()
            }
        );
        let b = request(Table::Expects, &DumpFilter::for_flows(&r)).finish(1);
        // Even handed a flow filter, an expectation request carries no attribute.
        assert_eq!(b.len(), 20);
        assert_eq!(b[5], NFNL_SUBSYS_CTNETLINK_EXP);
    }

    #[test]
    fn a_filter_the_kernel_refuses_is_still_well_framed() {
        // CTA_STATUS with a zero mask is EINVAL in ctnetlink_filter_parse_status: the
        // builder emits what it is given (the kernel test provokes the fallback with it).
        let f = DumpFilter {
            status: Some((0, 0)),
            ..DumpFilter::default()
        };
        assert!(!f.is_none());
        let b = request(Table::Flows, &f).finish(1);
        assert_eq!(
            attrs(&b),
            [(CTA_STATUS, vec![0; 4]), (CTA_STATUS_MASK, vec![0; 4])]
        );
        assert_eq!(
            u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize,
            b.len()
        );
    }
}
