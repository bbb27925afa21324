//! Building ctnetlink requests: a tiny attribute emitter (nested attributes with
//! `NLA_F_NESTED`, integers in network byte order as ctnetlink wants them) and the
//! netlink + nfgenmsg headers. It owns byte layout only; it must not open sockets (see
//! `Conn`) nor read replies (see `decode`).
//!
//! Layout reminders (include/uapi/linux/netlink.h, nfnetlink.h):
//! `nlmsghdr` is host byte order {len u32, type u16, flags u16, seq u32, pid u32};
//! `nfgenmsg` is {family u8, version u8, res_id be16}; every attribute is
//! {len u16, type u16, payload} padded to 4 bytes.

use crate::abi::*;
use crate::model::tuple::{proto, Family, Tuple};

const NLA_HDRLEN: usize = 4;

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// One request under construction. `finish` patches the lengths.
#[derive(Debug, Clone)]
pub struct Request {
    buf: Vec<u8>,
}

impl Request {
    /// A request of subsystem `subsys`, message `msg`, with netlink `flags` (NLM_F_REQUEST
    /// is always added) for address family `family` (0 = AF_UNSPEC: both families).
    pub fn new(subsys: u8, msg: u8, flags: u16, family: u8) -> Request {
        let mut buf = Vec::with_capacity(128);
        let nl_type = (u16::from(subsys) << 8) | u16::from(msg);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched by finish
        buf.extend_from_slice(&nl_type.to_ne_bytes());
        buf.extend_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // seq, set by finish
        buf.extend_from_slice(&0u32.to_ne_bytes()); // portid: 0, the kernel fills it in
        buf.push(family);
        buf.push(NFNETLINK_V0);
        buf.extend_from_slice(&0u16.to_be_bytes()); // res_id
        Request { buf }
    }

    /// Append one attribute with a raw payload.
    pub fn put(&mut self, ty: u16, payload: &[u8]) -> &mut Request {
        let len = NLA_HDRLEN + payload.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.pad();
        self
    }

    pub fn put_u8(&mut self, ty: u16, v: u8) -> &mut Request {
        self.put(ty, &[v])
    }

    /// A 16-bit value in network byte order (ports, zones).
    pub fn put_be16(&mut self, ty: u16, v: u16) -> &mut Request {
        self.put(ty, &v.to_be_bytes())
    }

    /// A 32-bit value in network byte order (ids, status, marks).
    pub fn put_be32(&mut self, ty: u16, v: u32) -> &mut Request {
        self.put(ty, &v.to_be_bytes())
    }

    /// A NUL-terminated string (helper names: the kernel reads them with `nla_data` as C strings).
    pub fn put_cstr(&mut self, ty: u16, s: &str) -> &mut Request {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.put(ty, &v)
    }

    /// Open a nested attribute; returns its offset for `end_nested`.
    pub fn begin_nested(&mut self, ty: u16) -> usize {
        let start = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        start
    }

    /// Close the nested attribute opened at `start`, patching its length.
    pub fn end_nested(&mut self, start: usize) -> &mut Request {
        let len = (self.buf.len() - start) as u16;
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    /// A tuple as ctnetlink parses it (`ctnetlink_parse_tuple`): nested
    /// `CTA_TUPLE_IP {src, dst}` and `CTA_TUPLE_PROTO {num, ports | icmp id/type/code}`.
    /// GRE keys travel in the port attributes (`gre_nlattr_to_tuple` reuses them).
    pub fn put_tuple(&mut self, ty: u16, t: &Tuple) -> &mut Request {
        self.put_tuple_zoned(ty, t, 0)
    }

    /// A tuple with its per-direction zone (`CTA_TUPLE_ZONE`, omitted when 0, the default
    /// zone): `ctnetlink_parse_tuple_zone` then looks the entry up in that zone for the
    /// tuple's direction, so a flow with zone-orig 3 is found and no other.
    pub fn put_tuple_zoned(&mut self, ty: u16, t: &Tuple, zone: u16) -> &mut Request {
        let outer = self.begin_nested(ty);
        let ip = self.begin_nested(CTA_TUPLE_IP);
        match t.family {
            Family::Ipv4 => {
                self.put(CTA_IP_V4_SRC, &t.src[..4]);
                self.put(CTA_IP_V4_DST, &t.dst[..4]);
            }
            Family::Ipv6 => {
                self.put(CTA_IP_V6_SRC, &t.src);
                self.put(CTA_IP_V6_DST, &t.dst);
            }
        }
        self.end_nested(ip);
        let p = self.begin_nested(CTA_TUPLE_PROTO);
        self.put_u8(CTA_PROTO_NUM, t.proto);
        match t.proto {
            proto::ICMP => {
                self.put_be16(CTA_PROTO_ICMP_ID, t.icmp_id());
                self.put_u8(CTA_PROTO_ICMP_TYPE, t.icmp_type());
                self.put_u8(CTA_PROTO_ICMP_CODE, t.icmp_code());
            }
            proto::ICMPV6 => {
                self.put_be16(CTA_PROTO_ICMPV6_ID, t.icmp_id());
                self.put_u8(CTA_PROTO_ICMPV6_TYPE, t.icmp_type());
                self.put_u8(CTA_PROTO_ICMPV6_CODE, t.icmp_code());
            }
            proto::TCP | proto::UDP | proto::UDPLITE | proto::SCTP | proto::DCCP | proto::GRE => {
                self.put_be16(CTA_PROTO_SRC_PORT, t.sport);
                self.put_be16(CTA_PROTO_DST_PORT, t.dport);
            }
            // The generic l4 tracker keys on the protocol number alone.
            _ => {}
        }
        self.end_nested(p);
        if zone != 0 {
            self.put_be16(CTA_TUPLE_ZONE, zone);
        }
        self.end_nested(outer)
    }

    fn pad(&mut self) {
        let n = align4(self.buf.len());
        self.buf.resize(n, 0);
    }

    /// The finished message with sequence number `seq`.
    pub fn finish(mut self, seq: u32) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        self.buf
    }
}

/// The address-family byte of a tuple (`nfgen_family`).
pub fn family_of(t: &Tuple) -> u8 {
    t.family as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp4() -> Tuple {
        let mut t = Tuple {
            family: Family::Ipv4,
            proto: proto::TCP,
            sport: 40000,
            dport: 21,
            ..Tuple::default()
        };
        t.src[..4].copy_from_slice(&[10, 213, 1, 1]);
        t.dst[..4].copy_from_slice(&[10, 213, 1, 2]);
        t
    }

    #[test]
    fn header_and_length_are_patched() {
        let mut r = Request::new(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE, NLM_F_ACK, 2);
        r.put_be16(CTA_ZONE, 7);
        let b = r.finish(42);
        assert_eq!(
            u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize,
            b.len()
        );
        assert_eq!(u16::from_ne_bytes(b[4..6].try_into().unwrap()), 0x0102);
        assert_eq!(
            u16::from_ne_bytes(b[6..8].try_into().unwrap()),
            NLM_F_REQUEST | NLM_F_ACK
        );
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 42);
        assert_eq!(&b[16..20], &[2, 0, 0, 0]);
        // CTA_ZONE: len 6, type 18, be16 7, 2 bytes of padding.
        assert_eq!(&b[20..28], &[6, 0, 18, 0, 0, 7, 0, 0][..]);
        assert_eq!(b.len(), 28);
    }

    #[test]
    fn tuple_is_nested_in_network_order() {
        let mut r = Request::new(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_GET, 0, 2);
        r.put_tuple(CTA_TUPLE_ORIG, &tcp4());
        let b = r.finish(1);
        let a = &b[20..];
        // outer: CTA_TUPLE_ORIG | NESTED
        let outer_len = u16::from_ne_bytes([a[0], a[1]]) as usize;
        assert_eq!(
            u16::from_ne_bytes([a[2], a[3]]),
            CTA_TUPLE_ORIG | NLA_F_NESTED
        );
        assert_eq!(outer_len, a.len());
        // ip nest: 4 + 2 * (4 + 4) = 20
        assert_eq!(u16::from_ne_bytes([a[4], a[5]]), 20);
        assert_eq!(
            u16::from_ne_bytes([a[6], a[7]]),
            CTA_TUPLE_IP | NLA_F_NESTED
        );
        assert_eq!(&a[8..16], &[8, 0, 1, 0, 10, 213, 1, 1][..]);
        assert_eq!(&a[16..24], &[8, 0, 2, 0, 10, 213, 1, 2][..]);
        // proto nest: 4 + 8 (num, padded) + 8 + 8 = 28
        assert_eq!(u16::from_ne_bytes([a[24], a[25]]), 28);
        assert_eq!(
            u16::from_ne_bytes([a[26], a[27]]),
            CTA_TUPLE_PROTO | NLA_F_NESTED
        );
        assert_eq!(&a[28..36], &[5, 0, 1, 0, 6, 0, 0, 0][..]);
        assert_eq!(&a[36..44], &[6, 0, 2, 0, 0x9c, 0x40, 0, 0][..]);
        assert_eq!(&a[44..52], &[6, 0, 3, 0, 0, 21, 0, 0][..]);
        assert_eq!(a.len(), 52);
    }

    #[test]
    fn icmpv6_uses_its_own_attributes_and_cstr_is_terminated() {
        let t = Tuple {
            family: Family::Ipv6,
            proto: proto::ICMPV6,
            sport: 0x1234,
            dport: 128 << 8,
            ..Tuple::default()
        };
        let mut r = Request::new(NFNL_SUBSYS_CTNETLINK_EXP, IPCTNL_MSG_EXP_DELETE, 0, 10);
        r.put_tuple(CTA_EXPECT_TUPLE, &t);
        r.put_cstr(CTA_EXPECT_HELP_NAME, "ftp");
        let b = r.finish(1);
        // ip nest = 4 + 2 * 20; proto nest follows it.
        let p = 20 + 4 + 44;
        assert_eq!(&b[p + 12..p + 18], &[6, 0, 7, 0, 0x12, 0x34][..]);
        assert_eq!(&b[p + 20..p + 25], &[5, 0, 8, 0, 128][..]);
        assert_eq!(&b[p + 28..p + 33], &[5, 0, 9, 0, 0][..]);
        let tail = &b[b.len() - 8..];
        assert_eq!(tail, &[8, 0, 6, 0, b'f', b't', b'p', 0][..]);
    }

    #[test]
    fn tuple_zone_travels_inside_the_tuple_nest() {
        let mut r = Request::new(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE, NLM_F_ACK, 2);
        r.put_tuple_zoned(CTA_TUPLE_ORIG, &tcp4(), 3);
        let b = r.finish(1);
        let a = &b[20..];
        // The outer nest grows by one 8-byte attribute and ends with CTA_TUPLE_ZONE = be16 3.
        assert_eq!(u16::from_ne_bytes([a[0], a[1]]) as usize, 60);
        assert_eq!(a.len(), 60);
        assert_eq!(&a[52..58], &[6, 0, CTA_TUPLE_ZONE as u8, 0, 0, 3][..]);
        // Zone 0 (the default) is never sent.
        let mut r = Request::new(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_DELETE, NLM_F_ACK, 2);
        r.put_tuple_zoned(CTA_TUPLE_ORIG, &tcp4(), 0);
        assert_eq!(r.finish(1).len(), 20 + 52);
    }
}
