//! Live classification of an expectation, or of a RELATED flow: for each of src, sport,
//! dst, dport, how much of the value the kernel holds could have been chosen by whoever
//! wrote the command.
//!
//! Pure logic over model records. An expectation carries its own wildcards (its mask): a
//! masked-out field is `Full`, a partially masked address is `Iface`, a value equal to an
//! endpoint of the master connection (either direction, so NAT'd replies count) is `Fixed`,
//! anything else came from the payload (`InCmd`). A RELATED flow has no mask: the kernel
//! consumed the expectation, so the wildcards come from the helper's row of the authors'
//! table, handed in by the caller (`classify_flow`). This module must not look rows up
//! itself (see `table`) nor decide findings (see `assess`).

use serde::{Deserialize, Serialize};

use super::table::Level;
use crate::model::tuple::Family;
use crate::model::{Expectation, Tuple};

/// Where each field of an expected tuple came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Freedom {
    pub src: Level,
    pub sport: Level,
    pub dst: Level,
    pub dport: Level,
}

impl Freedom {
    /// The freest of the four fields: what a one-word risk badge shows.
    pub fn worst(&self) -> Level {
        self.src.max(self.sport).max(self.dst).max(self.dport)
    }

    /// The fields as (name, level) pairs, in JSON order.
    pub fn fields(&self) -> [(&'static str, Level); 4] {
        [
            ("src", self.src),
            ("sport", self.sport),
            ("dst", self.dst),
            ("dport", self.dport),
        ]
    }

    /// `{"src":"fixed","sport":"full","dst":"fixed","dport":"in_cmd"}`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "src": self.src.name(),
            "sport": self.sport.name(),
            "dst": self.dst.name(),
            "dport": self.dport.name(),
        })
    }
}

/// The endpoints of a master connection: both directions' addresses and ports.
#[derive(Debug, Clone, Copy)]
pub struct MasterEnds {
    pub orig: Tuple,
    pub reply: Tuple,
}

impl MasterEnds {
    /// From the master's original tuple and, when the store has the master flow, its reply
    /// tuple (which differs under NAT). Without it the reply is the inverse of `orig`.
    pub fn new(orig: Tuple, reply: Option<Tuple>) -> MasterEnds {
        MasterEnds {
            orig,
            reply: reply.unwrap_or_else(|| orig.inverted()),
        }
    }

    pub fn has_addr(&self, a: &[u8; 16]) -> bool {
        [
            &self.orig.src,
            &self.orig.dst,
            &self.reply.src,
            &self.reply.dst,
        ]
        .contains(&a)
    }

    pub fn has_port(&self, p: u16) -> bool {
        [
            self.orig.sport,
            self.orig.dport,
            self.reply.sport,
            self.reply.dport,
        ]
        .contains(&p)
    }
}

/// Classify an expectation from what the kernel holds.
pub fn classify(e: &Expectation, master: &MasterEnds) -> Freedom {
    let fam = e.tuple.family;
    Freedom {
        src: addr_level(fam, &e.tuple.src, &e.mask.src, master),
        sport: port_level(e.tuple.sport, e.mask.sport, master),
        dst: addr_level(fam, &e.tuple.dst, &e.mask.dst, master),
        dport: port_level(e.tuple.dport, e.mask.dport, master),
    }
}

/// Classify a RELATED flow from its own original tuple, the endpoints of its master, and
/// the freedom its helper's table row gives (`shape`, `None` when the helper has no row).
///
/// Per field: what the row wildcards is `Full` (as the expectation's mask would have said,
/// so a flow classified here reads the same as one whose expectation ctscope saw); a value
/// equal to an endpoint of the master is `Fixed`; an address the row gives as `Iface` is
/// `Iface` when `same_network` says it lies in the master's network (or cannot tell);
/// anything else was chosen by the payload, `InCmd`. The row's `InPacket` (tftp: the
/// client's port, copied from the master's header) is a master endpoint, so it reads
/// `Fixed`, exactly as the expectation does.
pub fn classify_flow(
    t: &Tuple,
    master: &MasterEnds,
    shape: Option<&Freedom>,
    same_network: &dyn Fn(std::net::IpAddr, std::net::IpAddr) -> Option<bool>,
) -> Freedom {
    let addr = |a: &[u8; 16], ip: std::net::IpAddr, row: Option<Level>| match row {
        Some(Level::Full) => Level::Full,
        _ if master.has_addr(a) => Level::Fixed,
        Some(Level::Iface)
            if same_network(ip, master.orig.dst_ip()) != Some(false)
                || same_network(ip, master.orig.src_ip()) == Some(true) =>
        {
            Level::Iface
        }
        _ => Level::InCmd,
    };
    let port = |p: u16, row: Option<Level>| match row {
        Some(Level::Full) => Level::Full,
        _ if master.has_port(p) => Level::Fixed,
        _ => Level::InCmd,
    };
    Freedom {
        src: addr(&t.src, t.src_ip(), shape.map(|s| s.src)),
        sport: port(t.sport, shape.map(|s| s.sport)),
        dst: addr(&t.dst, t.dst_ip(), shape.map(|s| s.dst)),
        dport: port(t.dport, shape.map(|s| s.dport)),
    }
}

fn addr_level(fam: Family, a: &[u8; 16], m: &[u8; 16], master: &MasterEnds) -> Level {
    let len = match fam {
        Family::Ipv4 => 4,
        Family::Ipv6 => 16,
    };
    let m = &m[..len];
    if m.iter().all(|b| *b == 0) {
        Level::Full
    } else if m.iter().any(|b| *b != 0xff) {
        Level::Iface
    } else if master.has_addr(a) {
        Level::Fixed
    } else {
        Level::InCmd
    }
}

fn port_level(p: u16, m: u16, master: &MasterEnds) -> Level {
    if m == 0 {
        Level::Full
    } else if m == 0xffff && master.has_port(p) {
        Level::Fixed
    } else {
        Level::InCmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tuple::proto;

    pub(crate) fn v4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, p: u8) -> Tuple {
        let mut t = Tuple {
            family: Family::Ipv4,
            proto: p,
            sport,
            dport,
            ..Tuple::default()
        };
        t.src[..4].copy_from_slice(&src);
        t.dst[..4].copy_from_slice(&dst);
        t
    }

    fn mask(src: bool, sport: bool, dst: bool, dport: bool) -> Tuple {
        let ff = |on: bool| if on { [255; 4] } else { [0; 4] };
        v4(
            ff(src),
            if sport { 0xffff } else { 0 },
            ff(dst),
            if dport { 0xffff } else { 0 },
            proto::TCP,
        )
    }

    #[test]
    fn forged_port_command_is_in_cmd_port_fixed_addresses() {
        // Client 10.0.0.2:40000 → server 10.0.0.1:21 sent PORT 10,0,0,2,12,234.
        let master = v4([10, 0, 0, 2], 40000, [10, 0, 0, 1], 21, proto::TCP);
        let e = Expectation::new(
            v4([10, 0, 0, 1], 0, [10, 0, 0, 2], 3306, proto::TCP),
            mask(true, false, true, true),
            master,
        );
        let f = classify(&e, &MasterEnds::new(master, None));
        assert_eq!(
            f,
            Freedom {
                src: Level::Fixed,
                sport: Level::Full,
                dst: Level::Fixed,
                dport: Level::InCmd
            }
        );
        assert_eq!(f.worst(), Level::Full);
        assert_eq!(
            f.to_json(),
            serde_json::json!({"src":"fixed","sport":"full","dst":"fixed","dport":"in_cmd"})
        );
    }

    #[test]
    fn third_party_address_is_in_cmd_and_wildcards_are_full() {
        let master = v4([10, 0, 0, 2], 40000, [10, 0, 0, 1], 6667, proto::TCP);
        let e = Expectation::new(
            v4([0; 4], 0, [192, 0, 2, 9], 5000, proto::TCP),
            mask(false, false, true, true),
            master,
        );
        let f = classify(&e, &MasterEnds::new(master, None));
        assert_eq!(f.src, Level::Full);
        assert_eq!(f.dst, Level::InCmd);
    }

    #[test]
    fn a_flow_reads_like_the_expectation_that_let_it_in() {
        // The forged PORT above, after the kernel consumed the expectation: the server
        // connected from 10.0.0.1:47000 to the client's 3306.
        let master = v4([10, 0, 0, 2], 40000, [10, 0, 0, 1], 21, proto::TCP);
        let ftp = Freedom {
            src: Level::Fixed,
            sport: Level::Full,
            dst: Level::InCmd,
            dport: Level::InCmd,
        };
        let ends = MasterEnds::new(master, None);
        let unknown = |_, _| None;
        let flow = v4([10, 0, 0, 1], 47000, [10, 0, 0, 2], 3306, proto::TCP);
        let f = classify_flow(&flow, &ends, Some(&ftp), &unknown);
        let e = Expectation::new(
            v4([10, 0, 0, 1], 0, [10, 0, 0, 2], 3306, proto::TCP),
            mask(true, false, true, true),
            master,
        );
        assert_eq!(f, classify(&e, &ends));
        // A third-party destination was chosen by the payload.
        let fxp = v4([10, 0, 0, 1], 47000, [192, 0, 2, 9], 3306, proto::TCP);
        assert_eq!(
            classify_flow(&fxp, &ends, Some(&ftp), &unknown).dst,
            Level::InCmd
        );
        // Without a row nothing is a wildcard: a port not of the master is In CMD.
        assert_eq!(
            classify_flow(&flow, &ends, None, &unknown).sport,
            Level::InCmd
        );
    }

    #[test]
    fn broadcast_replies_are_iface_only_inside_the_network() {
        // netbios-ns: 10.0.0.2:40000 → 10.0.0.255:137, answered by 10.0.0.9:137.
        let master = v4([10, 0, 0, 2], 40000, [10, 0, 0, 255], 137, proto::UDP);
        let shape = Freedom {
            src: Level::Iface,
            sport: Level::Fixed,
            dst: Level::Fixed,
            dport: Level::Fixed,
        };
        let ends = MasterEnds::new(master, None);
        let net = |a: std::net::IpAddr, b: std::net::IpAddr| {
            let (std::net::IpAddr::V4(a), std::net::IpAddr::V4(b)) = (a, b) else {
                return None;
            };
            Some(a.octets()[..3] == b.octets()[..3])
        };
        let reply = v4([10, 0, 0, 9], 137, [10, 0, 0, 2], 40000, proto::UDP);
        let f = classify_flow(&reply, &ends, Some(&shape), &net);
        assert_eq!(
            f,
            Freedom {
                src: Level::Iface,
                sport: Level::Fixed,
                dst: Level::Fixed,
                dport: Level::Fixed
            }
        );
        let outsider = v4([192, 0, 2, 9], 137, [10, 0, 0, 2], 40000, proto::UDP);
        assert_eq!(
            classify_flow(&outsider, &ends, Some(&shape), &net).src,
            Level::InCmd
        );
    }

    #[test]
    fn nat_reply_endpoints_count_as_fixed_and_partial_masks_as_iface() {
        let master = v4([192, 168, 1, 5], 40000, [203, 0, 113, 7], 21, proto::TCP);
        // SNAT: the server sees 198.51.100.1:61000.
        let reply = v4([203, 0, 113, 7], 21, [198, 51, 100, 1], 61000, proto::TCP);
        let mut m = mask(true, true, true, true);
        m.src[3] = 0;
        let e = Expectation::new(
            v4([198, 51, 100, 0], 61000, [203, 0, 113, 7], 20, proto::TCP),
            m,
            master,
        );
        let f = classify(&e, &MasterEnds::new(master, Some(reply)));
        assert_eq!(f.src, Level::Iface);
        assert_eq!(f.sport, Level::Fixed);
        assert_eq!(f.dst, Level::Fixed);
        assert_eq!(f.dport, Level::InCmd);
    }
}
