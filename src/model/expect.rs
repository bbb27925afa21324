//! An expectation: "a connection matching this tuple (under this mask) is coming, and it
//! will be RELATED to that master". Expectations are few (they live seconds), so the record
//! favours completeness over compactness. No netlink bytes, no rendering here.

use super::helper::HelperId;
use super::tuple::Tuple;

/// `NF_CT_EXPECT_*` flags (include/uapi/linux/netfilter/nf_conntrack_common.h).
pub mod flags {
    pub const PERMANENT: u32 = 0x1;
    pub const INACTIVE: u32 = 0x2;
    pub const USERSPACE: u32 = 0x4;

    pub const NAMES: [&str; 3] = ["PERMANENT", "INACTIVE", "USERSPACE"];

    pub fn names(bits: u32) -> impl Iterator<Item = &'static str> {
        NAMES
            .iter()
            .enumerate()
            .filter(move |(i, _)| bits & (1 << i) != 0)
            .map(|(_, n)| *n)
    }
}

/// NAT part of an expectation (`CTA_EXPECT_NAT`): which direction of the master the
/// expected connection will be NATed like, and the tuple it will be NATed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectNat {
    /// `CTA_EXPECT_NAT_DIR`: 0 original, 1 reply.
    pub dir: u32,
    pub tuple: Tuple,
}

/// One entry of the expectation table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expectation {
    /// `CTA_EXPECT_TUPLE`: the tuple the expected connection's original direction will have.
    pub tuple: Tuple,
    /// `CTA_EXPECT_MASK`: bits set where `tuple` must match; zero bits are wildcards.
    pub mask: Tuple,
    /// `CTA_EXPECT_MASTER`: original tuple of the connection whose helper created this.
    pub master: Tuple,
    /// Seconds left as reported at `seen`.
    pub timeout: u32,
    /// Store clock (seconds) when last reported.
    pub seen: u32,
    pub id: u32,
    pub helper: HelperId,
    pub zone: u16,
    /// `NF_CT_EXPECT_*` bits.
    pub flags: u32,
    /// `CTA_EXPECT_CLASS`: the helper's expectation class (e.g. sip: 0 signalling, 1 audio, 2 video).
    pub class: u32,
    pub nat: Option<ExpectNat>,
    /// `CTA_EXPECT_FN`: the expect function name (e.g. `nat-follow-master`).
    pub func: Option<Box<str>>,
}

impl Expectation {
    pub fn new(tuple: Tuple, mask: Tuple, master: Tuple) -> Expectation {
        Expectation {
            tuple,
            mask,
            master,
            timeout: 0,
            seen: 0,
            id: 0,
            helper: HelperId::NONE,
            zone: 0,
            flags: 0,
            class: 0,
            nat: None,
            func: None,
        }
    }

    /// Seconds left at store time `now`, saturating at zero.
    pub fn remaining(&self, now: u32) -> u32 {
        self.timeout.saturating_sub(now.saturating_sub(self.seen))
    }

    /// Whether the source address is a wildcard (masked out entirely).
    pub fn src_is_any(&self) -> bool {
        self.mask.src.iter().all(|b| *b == 0)
    }

    pub fn dst_is_any(&self) -> bool {
        self.mask.dst.iter().all(|b| *b == 0)
    }

    pub fn sport_is_any(&self) -> bool {
        self.mask.sport == 0
    }

    pub fn dport_is_any(&self) -> bool {
        self.mask.dport == 0
    }

    /// Whether a flow's original tuple would have matched this expectation
    /// (the kernel's `nf_ct_tuple_mask_cmp`).
    pub fn matches(&self, t: &Tuple) -> bool {
        if t.family != self.tuple.family || t.proto != self.tuple.proto {
            return false;
        }
        let masked_eq = |a: &[u8; 16], b: &[u8; 16], m: &[u8; 16]| {
            a.iter().zip(b).zip(m).all(|((x, y), k)| (x ^ y) & k == 0)
        };
        masked_eq(&t.src, &self.tuple.src, &self.mask.src)
            && masked_eq(&t.dst, &self.tuple.dst, &self.mask.dst)
            && (t.sport ^ self.tuple.sport) & self.mask.sport == 0
            && (t.dport ^ self.tuple.dport) & self.mask.dport == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tuple::{proto, Family};

    #[test]
    fn mask_wildcards_match_any_source_port() {
        let mut tuple = Tuple {
            family: Family::Ipv4,
            proto: proto::TCP,
            sport: 0,
            dport: 3306,
            ..Tuple::default()
        };
        tuple.src[..4].copy_from_slice(&[10, 0, 0, 2]);
        tuple.dst[..4].copy_from_slice(&[10, 0, 0, 1]);
        let mut mask = tuple;
        mask.src[..4].copy_from_slice(&[255; 4]);
        mask.dst[..4].copy_from_slice(&[255; 4]);
        mask.sport = 0;
        mask.dport = 0xffff;
        let e = Expectation::new(tuple, mask, Tuple::default());
        let mut t = tuple;
        t.sport = 40000;
        assert!(e.matches(&t));
        t.dport = 3307;
        assert!(!e.matches(&t));
        assert!(e.sport_is_any() && !e.dport_is_any());
    }
}
