//! The connection tuple: the five-ish values that identify one direction of a flow.
//!
//! Owns the compact, copyable representation shared by flows, expectations, masks and
//! master tuples. It must not know about netlink bytes (see `decode`) or about
//! presentation beyond plain `Display` (see `output` and `tui`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Address family, with the kernel's `AF_*` numbers as discriminants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum Family {
    #[default]
    Ipv4 = 2,
    Ipv6 = 10,
}

impl Family {
    /// From the `nfgen_family` byte of a netfilter message.
    pub fn from_af(af: u8) -> Option<Family> {
        match af {
            2 => Some(Family::Ipv4),
            10 => Some(Family::Ipv6),
            _ => None,
        }
    }

    /// The name used by conntrack(8) and by our JSON contract.
    pub fn name(self) -> &'static str {
        match self {
            Family::Ipv4 => "ipv4",
            Family::Ipv6 => "ipv6",
        }
    }
}

/// IP protocol numbers ctscope knows by name (others print as their number).
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const DCCP: u8 = 33;
    pub const GRE: u8 = 47;
    pub const ICMPV6: u8 = 58;
    pub const SCTP: u8 = 132;
    pub const UDPLITE: u8 = 136;

    /// conntrack(8)'s protocol name, or `None` for an unnamed number.
    pub fn name(p: u8) -> Option<&'static str> {
        Some(match p {
            ICMP => "icmp",
            TCP => "tcp",
            UDP => "udp",
            DCCP => "dccp",
            GRE => "gre",
            ICMPV6 => "icmpv6",
            SCTP => "sctp",
            UDPLITE => "udplite",
            _ => return None,
        })
    }

    /// Parse a protocol as conntrack(8)'s `-p` takes it: one of its own names, any name of
    /// the system's protocol table (/etc/protocols: `igmp`, `esp`, …; see
    /// `model::protocols`), or a number 0-255.
    pub fn parse(s: &str) -> Option<u8> {
        let s = s.to_ascii_lowercase();
        Some(match s.as_str() {
            "icmp" => ICMP,
            "tcp" => TCP,
            "udp" => UDP,
            "dccp" => DCCP,
            "gre" => GRE,
            "icmpv6" | "ipv6-icmp" => ICMPV6,
            "sctp" => SCTP,
            "udplite" => UDPLITE,
            _ => {
                return crate::model::protocols::system()
                    .number(&s)
                    .or_else(|| s.parse().ok())
            }
        })
    }

    /// Whether the tuple's two 16-bit fields are ports (tcp, udp, udplite, sctp, dccp).
    /// Other protocols print no ports: icmp has type/code/id, gre keys, and a protocol the
    /// kernel tracks generically (igmp, esp, 40, …) nothing at all, as in conntrack(8).
    pub fn has_ports(p: u8) -> bool {
        matches!(p, TCP | UDP | UDPLITE | SCTP | DCCP)
    }

    /// Whether the tuple's port fields carry ICMP type/code/id instead of ports.
    pub fn is_icmp(p: u8) -> bool {
        p == ICMP || p == ICMPV6
    }
}

/// One direction of a connection, 38 bytes, `Copy`.
///
/// Addresses are always stored in 16 bytes; IPv4 uses the first four, so one record type
/// serves both families without an enum tag per address. The two 16-bit fields are
/// protocol-specific, exactly as the kernel's `nf_conntrack_tuple` overlays them:
/// - tcp, udp, udplite, sctp, dccp: `sport`, `dport` are the ports;
/// - icmp, icmpv6: `sport` is the echo id, `dport` is `type << 8 | code`;
/// - gre: `sport`, `dport` are the source and destination keys (call ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Tuple {
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub family: Family,
    pub proto: u8,
}

impl Tuple {
    pub fn src_ip(&self) -> IpAddr {
        addr(self.family, &self.src)
    }

    pub fn dst_ip(&self) -> IpAddr {
        addr(self.family, &self.dst)
    }

    pub fn set_src_ip(&mut self, ip: IpAddr) {
        self.src = octets(ip);
    }

    pub fn set_dst_ip(&mut self, ip: IpAddr) {
        self.dst = octets(ip);
    }

    pub fn is_icmp(&self) -> bool {
        proto::is_icmp(self.proto)
    }

    pub fn icmp_type(&self) -> u8 {
        (self.dport >> 8) as u8
    }

    pub fn icmp_code(&self) -> u8 {
        (self.dport & 0xff) as u8
    }

    pub fn icmp_id(&self) -> u16 {
        self.sport
    }

    /// The tuple the kernel would build for the reply direction of an un-NATed flow.
    ///
    /// Used to store the reply tuple only when it differs (NAT), which keeps a flow record
    /// compact. ICMP maps request types to reply types like the kernel's
    /// `icmp_invert_tuple` (net/netfilter/nf_conntrack_proto_icmp.c); a type without an
    /// inverse is returned unchanged, so such flows simply keep their reply explicitly.
    pub fn inverted(&self) -> Tuple {
        let mut t = Tuple {
            src: self.dst,
            dst: self.src,
            sport: self.dport,
            dport: self.sport,
            family: self.family,
            proto: self.proto,
        };
        if self.is_icmp() {
            let ty = self.icmp_type();
            let inv = match (self.proto, ty) {
                (proto::ICMP, 8) => 0,
                (proto::ICMP, 0) => 8,
                (proto::ICMP, 13) => 14,
                (proto::ICMP, 14) => 13,
                (proto::ICMP, 15) => 16,
                (proto::ICMP, 16) => 15,
                (proto::ICMP, 17) => 18,
                (proto::ICMP, 18) => 17,
                (proto::ICMPV6, 128) => 129,
                (proto::ICMPV6, 129) => 128,
                (proto::ICMPV6, 139) => 140,
                (proto::ICMPV6, 140) => 139,
                (_, other) => other,
            };
            t.sport = self.sport;
            t.dport = (u16::from(inv) << 8) | u16::from(self.icmp_code());
        }
        t
    }
}

/// Renders `tcp src:sport -> dst:dport` (IPv6 in brackets), the form used in text output;
/// icmp with its type, code and id; a protocol without ports (igmp, esp, …) as its number
/// and the bare addresses, `2 10.0.0.1 -> 224.0.0.1`, never with a made-up `:0`.
impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(p) = proto::name(self.proto) else {
            return write!(f, "{} {} -> {}", self.proto, self.src_ip(), self.dst_ip());
        };
        if self.is_icmp() {
            write!(
                f,
                "{p} {} -> {} type={} code={} id={}",
                self.src_ip(),
                self.dst_ip(),
                self.icmp_type(),
                self.icmp_code(),
                self.icmp_id()
            )
        } else {
            write!(
                f,
                "{p} {} -> {}",
                Endpoint(self.src_ip(), self.sport),
                Endpoint(self.dst_ip(), self.dport)
            )
        }
    }
}

/// `addr:port`, bracketing IPv6 so the port stays readable.
pub struct Endpoint(pub IpAddr, pub u16);

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.1),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.1),
        }
    }
}

/// Interpret 16 stored bytes according to the family.
pub fn addr(family: Family, b: &[u8; 16]) -> IpAddr {
    match family {
        Family::Ipv4 => IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])),
        Family::Ipv6 => IpAddr::V6(Ipv6Addr::from(*b)),
    }
}

/// The 16-byte storage form of an address (IPv4 in the first four bytes).
pub fn octets(ip: IpAddr) -> [u8; 16] {
    let mut out = [0u8; 16];
    match ip {
        IpAddr::V4(a) => out[..4].copy_from_slice(&a.octets()),
        IpAddr::V6(a) => out = a.octets(),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tuple_is_compact() {
        assert_eq!(std::mem::size_of::<Tuple>(), 38);
    }

    #[test]
    fn icmp_echo_inverts_to_echo_reply() {
        let t = Tuple {
            family: Family::Ipv4,
            proto: proto::ICMP,
            sport: 7,
            dport: 8 << 8,
            ..Tuple::default()
        };
        let r = t.inverted();
        assert_eq!(r.icmp_type(), 0);
        assert_eq!(r.icmp_id(), 7);
    }

    #[test]
    fn display_brackets_ipv6() {
        let mut t = Tuple {
            family: Family::Ipv6,
            proto: proto::TCP,
            sport: 1,
            dport: 22,
            ..Tuple::default()
        };
        t.set_src_ip("2001:db8::1".parse().unwrap());
        t.set_dst_ip("::1".parse().unwrap());
        assert_eq!(t.to_string(), "tcp [2001:db8::1]:1 -> [::1]:22");
        t.proto = 2;
        assert_eq!(t.to_string(), "2 2001:db8::1 -> ::1");
    }
}
