//! A conntrack entry as ctscope stores it: one compact record per flow.
//!
//! A million flows must fit in well under 120 bytes each, so the common fields live inline
//! (72 bytes) and everything that is absent on most flows — a NAT'd reply tuple, the master
//! tuple of a RELATED flow, counters, timestamps, labels, secctx, per-direction zones — sits in
//! one optional boxed `Extra`. This module must not know about netlink bytes or rendering.

use super::helper::HelperId;
use super::tuple::{proto, Tuple};

/// `IPS_*` status bits (include/uapi/linux/netfilter/nf_conntrack_common.h).
pub mod status {
    pub const EXPECTED: u32 = 1 << 0;
    pub const SEEN_REPLY: u32 = 1 << 1;
    pub const ASSURED: u32 = 1 << 2;
    pub const CONFIRMED: u32 = 1 << 3;
    pub const SRC_NAT: u32 = 1 << 4;
    pub const DST_NAT: u32 = 1 << 5;
    pub const SEQ_ADJUST: u32 = 1 << 6;
    pub const SRC_NAT_DONE: u32 = 1 << 7;
    pub const DST_NAT_DONE: u32 = 1 << 8;
    pub const DYING: u32 = 1 << 9;
    pub const FIXED_TIMEOUT: u32 = 1 << 10;
    pub const TEMPLATE: u32 = 1 << 11;
    pub const UNTRACKED: u32 = 1 << 12;
    pub const HELPER: u32 = 1 << 13;
    pub const OFFLOAD: u32 = 1 << 14;
    pub const HW_OFFLOAD: u32 = 1 << 15;

    /// Names in bit order, as conntrack(8) spells them.
    pub const NAMES: [&str; 16] = [
        "EXPECTED",
        "SEEN_REPLY",
        "ASSURED",
        "CONFIRMED",
        "SRC_NAT",
        "DST_NAT",
        "SEQ_ADJUST",
        "SRC_NAT_DONE",
        "DST_NAT_DONE",
        "DYING",
        "FIXED_TIMEOUT",
        "TEMPLATE",
        "UNTRACKED",
        "HELPER",
        "OFFLOAD",
        "HW_OFFLOAD",
    ];

    /// The names of the bits set in `bits`, lowest bit first.
    pub fn names(bits: u32) -> impl Iterator<Item = &'static str> {
        NAMES
            .iter()
            .enumerate()
            .filter(move |(i, _)| bits & (1 << i) != 0)
            .map(|(_, n)| *n)
    }

    /// Parse one status name (case-insensitive); `UNREPLIED` is not a bit, callers handle it.
    pub fn parse(name: &str) -> Option<u32> {
        NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(name))
            .map(|i| 1 << i)
    }
}

/// TCP states as `CTA_PROTOINFO_TCP_STATE` numbers them (enum tcp_conntrack).
pub const TCP_STATES: [&str; 10] = [
    "NONE",
    "SYN_SENT",
    "SYN_RECV",
    "ESTABLISHED",
    "FIN_WAIT",
    "CLOSE_WAIT",
    "LAST_ACK",
    "TIME_WAIT",
    "CLOSE",
    "SYN_SENT2",
];

/// SCTP states (enum sctp_conntrack).
pub const SCTP_STATES: [&str; 10] = [
    "NONE",
    "CLOSED",
    "COOKIE_WAIT",
    "COOKIE_ECHOED",
    "ESTABLISHED",
    "SHUTDOWN_SENT",
    "SHUTDOWN_RECD",
    "SHUTDOWN_ACK_SENT",
    "HEARTBEAT_SENT",
    "HEARTBEAT_ACKED",
];

/// DCCP states (enum ct_dccp_states).
pub const DCCP_STATES: [&str; 10] = [
    "NONE", "REQUEST", "RESPOND", "PARTOPEN", "OPEN", "CLOSEREQ", "CLOSING", "TIMEWAIT", "IGNORE",
    "INVALID",
];

/// Sentinel for "no protocol state" (udp, icmp, gre, …).
pub const NO_STATE: u8 = u8::MAX;

/// Packet and byte counters of one direction (`CTA_COUNTERS_ORIG` / `_REPLY`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counter {
    pub packets: u64,
    pub bytes: u64,
}

/// The rarely-present parts of a flow, boxed so the common record stays small.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Extra {
    /// The reply tuple, only when it is not `orig.inverted()` (NAT, or an odd ICMP type).
    pub reply: Option<Tuple>,
    /// `CTA_TUPLE_MASTER`: the original tuple of the master of a RELATED (EXPECTED) flow.
    pub master: Option<Tuple>,
    /// `[orig, reply]` counters when `nf_conntrack_acct` is on.
    pub counters: Option<[Counter; 2]>,
    /// `(start, stop)` in ns since the epoch when `nf_conntrack_timestamp` is on.
    pub timestamp: Option<(u64, u64)>,
    /// `CTA_LABELS` as a 128-bit set (bit n = label n); 0 means none.
    pub labels: u128,
    /// `CTA_SECCTX_NAME`.
    pub secctx: Option<Box<str>>,
    /// `CTA_SECMARK`, 0 when not reported (conntrack's `-c`).
    pub secmark: u32,
    /// Per-direction zones (`CTA_TUPLE_ZONE` inside orig/reply), when set.
    pub zone_orig: Option<u16>,
    pub zone_reply: Option<u16>,
}

impl Extra {
    pub fn is_empty(&self) -> bool {
        *self == Extra::default()
    }
}

/// One conntrack entry. 72 bytes inline plus an optional `Extra`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    /// The original-direction tuple; with `zone`, the store's key.
    pub orig: Tuple,
    /// Protocol state (TCP/SCTP/DCCP state number) or `NO_STATE`.
    pub state: u8,
    pub helper: HelperId,
    /// `CTA_ZONE`, 0 when absent.
    pub zone: u16,
    /// `IPS_*` bits.
    pub status: u32,
    /// Seconds left as the kernel reported them at `seen`.
    pub timeout: u32,
    /// Store clock (whole seconds) when this record was last reported by the kernel.
    pub seen: u32,
    pub mark: u32,
    /// `CTA_ID`: a hint, not a key (ids collide on large tables).
    pub id: u32,
    /// `CTA_USE`: the kernel's reference count, saturated to 16 bits (it is 1 or 2 in
    /// practice) so the record stays at 72 bytes.
    pub use_count: u16,
    pub extra: Option<Box<Extra>>,
}

impl Flow {
    /// A flow with only its original tuple set (every other field zero or absent).
    pub fn new(orig: Tuple) -> Flow {
        Flow {
            orig,
            state: NO_STATE,
            helper: HelperId::NONE,
            zone: 0,
            status: 0,
            timeout: 0,
            seen: 0,
            mark: 0,
            id: 0,
            use_count: 0,
            extra: None,
        }
    }

    /// The reply tuple: explicit when stored, otherwise the inverse of `orig`.
    pub fn reply(&self) -> Tuple {
        self.extra
            .as_ref()
            .and_then(|e| e.reply)
            .unwrap_or_else(|| self.orig.inverted())
    }

    /// Store `reply`, keeping it inline-free when it is just the inverse of `orig`.
    pub fn set_reply(&mut self, reply: Tuple) {
        if reply == self.orig.inverted() {
            if let Some(e) = self.extra.as_mut() {
                e.reply = None;
            }
            self.shrink_extra();
        } else {
            self.extra_mut().reply = Some(reply);
        }
    }

    /// `(zone_orig, zone_reply)` from `CTA_TUPLE_ZONE`, 0 when not set. Kept in `Extra`
    /// rather than inline: inline they would grow every record from 72 to 80 bytes (the
    /// alignment of `extra`), and per-direction zones are rare.
    pub fn dir_zones(&self) -> (u16, u16) {
        self.extra.as_deref().map_or((0, 0), |e| {
            (e.zone_orig.unwrap_or(0), e.zone_reply.unwrap_or(0))
        })
    }

    pub fn master(&self) -> Option<&Tuple> {
        self.extra.as_ref().and_then(|e| e.master.as_ref())
    }

    /// Mutable access to `Extra`, allocating it on first use.
    pub fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Default::default)
    }

    /// Drop the `Extra` box if nothing is left in it.
    pub fn shrink_extra(&mut self) {
        if self.extra.as_ref().is_some_and(|e| e.is_empty()) {
            self.extra = None;
        }
    }

    /// Whether the reply tuple differs from the inverse of the original (SNAT/DNAT).
    pub fn is_nat(&self) -> bool {
        self.extra.as_ref().is_some_and(|e| e.reply.is_some())
    }

    /// A RELATED flow: created by an expectation (`IPS_EXPECTED`).
    pub fn is_related(&self) -> bool {
        self.status & status::EXPECTED != 0
    }

    pub fn has(&self, bit: u32) -> bool {
        self.status & bit != 0
    }

    /// The protocol state's name (`ESTABLISHED`, `COOKIE_WAIT`, …), if this protocol has one.
    pub fn state_name(&self) -> Option<&'static str> {
        if self.state == NO_STATE {
            return None;
        }
        let table: &[&str] = match self.orig.proto {
            proto::TCP => &TCP_STATES,
            proto::SCTP => &SCTP_STATES,
            proto::DCCP => &DCCP_STATES,
            _ => return None,
        };
        table.get(self.state as usize).copied()
    }

    /// Seconds left at store time `now`, saturating at zero.
    pub fn remaining(&self, now: u32) -> u32 {
        self.timeout.saturating_sub(now.saturating_sub(self.seen))
    }

    /// The `--ctstate` a next packet of this flow would match: what an admin reads as
    /// "why is this allowed". RELATED wins while the flow has not seen a reply, as in
    /// `nf_conntrack_in` (a reply-less EXPECTED flow keeps `IP_CT_RELATED`).
    pub fn ctstate(&self) -> &'static str {
        if self.is_related() && !self.has(status::SEEN_REPLY) {
            "RELATED"
        } else if self.has(status::SEEN_REPLY) {
            "ESTABLISHED"
        } else {
            "NEW"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flow_record_is_compact() {
        assert!(
            std::mem::size_of::<Flow>() <= 72,
            "{}",
            std::mem::size_of::<Flow>()
        );
    }

    #[test]
    fn reply_is_implicit_unless_nat() {
        let mut t = Tuple {
            proto: proto::TCP,
            sport: 1000,
            dport: 80,
            ..Tuple::default()
        };
        t.src[0] = 10;
        t.dst[0] = 10;
        t.dst[3] = 2;
        let mut f = Flow::new(t);
        f.set_reply(t.inverted());
        assert!(f.extra.is_none());
        let mut nat = t.inverted();
        nat.dst[3] = 99;
        f.set_reply(nat);
        assert!(f.is_nat());
        assert_eq!(f.reply(), nat);
        f.set_reply(t.inverted());
        assert!(f.extra.is_none());
    }

    #[test]
    fn status_names_in_bit_order() {
        let n: Vec<_> = status::names(status::SEEN_REPLY | status::ASSURED).collect();
        assert_eq!(n, ["SEEN_REPLY", "ASSURED"]);
        assert_eq!(status::parse("assured"), Some(status::ASSURED));
    }
}
