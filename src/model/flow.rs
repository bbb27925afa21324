//! A conntrack entry as ctscope stores it: one compact record per flow.
//!
//! A million flows must fit in well under 120 bytes each, so the common fields live inline
//! (72 bytes) and everything that is absent on most flows — the master tuple of a RELATED
//! flow, counters, timestamps, labels, secctx, per-direction zones, an unusual NAT'd reply
//! tuple — sits in one optional boxed `Extra`. NAT is not rare (a Kubernetes node or a NAT
//! gateway translates nearly every flow), so the common NAT shapes are stored inline in the
//! same word as the box pointer (`ExtraSlot`), with no allocation. This module must not
//! know about netlink bytes or rendering.

use std::fmt;
use std::ptr;

use super::helper::HelperId;
use super::tuple::{proto, Family, Tuple};

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

    /// The reply tuple, if it is the only thing this `Extra` holds.
    fn only_reply(&self) -> Option<Tuple> {
        // Destructured so that a new field cannot be forgotten here.
        let Extra {
            reply,
            master,
            counters,
            timestamp,
            labels,
            secctx,
            secmark,
            zone_orig,
            zone_reply,
        } = self;
        let rest_empty = master.is_none()
            && counters.is_none()
            && timestamp.is_none()
            && *labels == 0
            && secctx.is_none()
            && *secmark == 0
            && zone_orig.is_none()
            && zone_reply.is_none();
        reply.filter(|_| rest_empty)
    }
}

/// One side of an IPv4 reply tuple that differs from the inverse of the original: the
/// shape of nearly all NAT. DNAT changes where the reply comes from (`Src`: the reply's
/// source is the real server); SNAT and masquerade change where it goes (`Dst`: the
/// reply's destination is the translated source). Both at once, or IPv6, take a box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatDelta {
    /// Which side of the reply tuple differs from `orig.inverted()`.
    pub side: NatSide,
    pub addr: [u8; 4],
    pub port: u16,
}

/// The side of the reply tuple a `NatDelta` replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatSide {
    /// The reply's source address and port (DNAT).
    Src,
    /// The reply's destination address and port (SNAT, masquerade).
    Dst,
}

impl NatDelta {
    /// The delta that turns `inverse` (the inverse of the original tuple) into `reply`, if
    /// one side alone differs and the family is IPv4. Verified by applying it, so a tuple
    /// this encoding cannot represent exactly is never stored inline.
    pub fn between(inverse: &Tuple, reply: &Tuple) -> Option<NatDelta> {
        if inverse.family != Family::Ipv4 || reply == inverse {
            return None;
        }
        let four = |a: &[u8; 16]| -> [u8; 4] { [a[0], a[1], a[2], a[3]] };
        let d = if reply.dst == inverse.dst && reply.dport == inverse.dport {
            NatDelta {
                side: NatSide::Src,
                addr: four(&reply.src),
                port: reply.sport,
            }
        } else {
            NatDelta {
                side: NatSide::Dst,
                addr: four(&reply.dst),
                port: reply.dport,
            }
        };
        (d.apply(*inverse) == *reply).then_some(d)
    }

    /// `inverse` with this delta's side replaced.
    pub fn apply(self, mut inverse: Tuple) -> Tuple {
        let (addr, port) = match self.side {
            NatSide::Src => (&mut inverse.src, &mut inverse.sport),
            NatSide::Dst => (&mut inverse.dst, &mut inverse.dport),
        };
        addr[..4].copy_from_slice(&self.addr);
        addr[4..].fill(0);
        *port = self.port;
        inverse
    }

    /// Packed for `ExtraSlot`: bit 0 set (the tag), bit 1 the side, bits 16..32 the port,
    /// bits 32..64 the address.
    fn pack(self) -> u64 {
        1 | (u64::from(self.side == NatSide::Dst) << 1)
            | (u64::from(self.port) << 16)
            | (u64::from(u32::from_be_bytes(self.addr)) << 32)
    }

    fn unpack(bits: u64) -> NatDelta {
        NatDelta {
            side: if bits & 2 != 0 {
                NatSide::Dst
            } else {
                NatSide::Src
            },
            port: (bits >> 16) as u16,
            addr: ((bits >> 32) as u32).to_be_bytes(),
        }
    }
}

/// A flow's rare parts in one machine word, so `Flow` stays 72 bytes: nothing, a boxed
/// `Extra`, or an inline `NatDelta` (the common NAT, with no allocation).
///
/// Encoding: null is nothing; a pointer from `Box::into_raw` (aligned, so bit 0 is clear)
/// is the box, owned by the slot; bit 0 set is a packed `NatDelta`, an address with no
/// provenance that is never dereferenced. A box and an inline delta never coexist: with
/// a box, the reply tuple lives in it. On targets whose pointers are narrower than 64
/// bits, NAT always takes the box.
pub struct ExtraSlot(*mut Extra);

// SAFETY: the slot owns its `Box<Extra>` exclusively (no aliasing, freed once in `Drop`),
// and `Extra` is `Send + Sync`, so the slot is as thread-safe as `Option<Box<Extra>>`.
unsafe impl Send for ExtraSlot {}
// SAFETY: see `Send`; `&ExtraSlot` only hands out `&Extra`.
unsafe impl Sync for ExtraSlot {}

/// Whether a packed `NatDelta` fits in a pointer here.
const INLINE_NAT: bool = usize::BITS >= 64;

impl ExtraSlot {
    /// Nothing rare.
    pub const NONE: ExtraSlot = ExtraSlot(ptr::null_mut());

    /// A slot owning `e`.
    pub fn boxed(e: Box<Extra>) -> ExtraSlot {
        ExtraSlot(Box::into_raw(e))
    }

    fn nat_slot(d: NatDelta) -> ExtraSlot {
        ExtraSlot(ptr::without_provenance_mut(d.pack() as usize))
    }

    fn is_boxed(&self) -> bool {
        !self.0.is_null() && self.0.addr() & 1 == 0
    }

    /// The inline NAT delta, if that is what the slot holds.
    pub fn nat(&self) -> Option<NatDelta> {
        (self.0.addr() & 1 == 1).then(|| NatDelta::unpack(self.0.addr() as u64))
    }

    /// The boxed `Extra`, if any (an inline NAT delta is not one: see `Flow::reply`).
    pub fn as_deref(&self) -> Option<&Extra> {
        if self.is_boxed() {
            // SAFETY: a boxed slot holds the pointer from `Box::into_raw`, owned by `self`
            // and alive until `Drop`; the shared borrow of `self` keeps it unaliased.
            Some(unsafe { &*self.0 })
        } else {
            None
        }
    }

    /// Same as `as_deref` (the name `Option<Box<Extra>>` callers used).
    pub fn as_ref(&self) -> Option<&Extra> {
        self.as_deref()
    }

    /// The boxed `Extra`, mutably.
    pub fn as_mut(&mut self) -> Option<&mut Extra> {
        if self.is_boxed() {
            // SAFETY: as in `as_deref`; the exclusive borrow of `self` makes it unique.
            Some(unsafe { &mut *self.0 })
        } else {
            None
        }
    }

    /// The boxed `Extra`, mutably, replacing whatever else the slot held with `make()`.
    fn get_or_box(&mut self, make: impl FnOnce() -> Extra) -> &mut Extra {
        if !self.is_boxed() {
            *self = ExtraSlot::boxed(Box::new(make()));
        }
        // SAFETY: the slot is boxed now (see `as_mut`).
        unsafe { &mut *self.0 }
    }

    /// No boxed `Extra` (an inline NAT delta may still be there).
    pub fn is_none(&self) -> bool {
        !self.is_boxed()
    }

    /// A boxed `Extra` is present.
    pub fn is_some(&self) -> bool {
        self.is_boxed()
    }
}

impl Drop for ExtraSlot {
    fn drop(&mut self) {
        if self.is_boxed() {
            // SAFETY: the pointer came from `Box::into_raw` and is freed only here.
            drop(unsafe { Box::from_raw(self.0) });
        }
    }
}

impl Clone for ExtraSlot {
    fn clone(&self) -> ExtraSlot {
        match self.as_deref() {
            Some(e) => ExtraSlot::boxed(Box::new(e.clone())),
            None => ExtraSlot(self.0),
        }
    }
}

impl Default for ExtraSlot {
    fn default() -> ExtraSlot {
        ExtraSlot::NONE
    }
}

impl PartialEq for ExtraSlot {
    fn eq(&self, other: &ExtraSlot) -> bool {
        self.as_deref() == other.as_deref() && self.nat() == other.nat()
    }
}

impl Eq for ExtraSlot {}

impl fmt::Debug for ExtraSlot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.as_deref(), self.nat()) {
            (Some(e), _) => f.debug_tuple("Some").field(e).finish(),
            (None, Some(d)) => f.debug_tuple("Nat").field(&d).finish(),
            (None, None) => f.write_str("None"),
        }
    }
}

/// One conntrack entry. 72 bytes inline (a common NAT included) plus an optional `Extra`.
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
    pub extra: ExtraSlot,
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
            extra: ExtraSlot::NONE,
        }
    }

    /// The reply tuple: explicit when boxed, the inverse of `orig` with the inline NAT
    /// delta applied, or the plain inverse.
    pub fn reply(&self) -> Tuple {
        if let Some(r) = self.extra.as_deref().and_then(|e| e.reply) {
            return r;
        }
        let inverse = self.orig.inverted();
        match self.extra.nat() {
            Some(d) => d.apply(inverse),
            None => inverse,
        }
    }

    /// Store `reply`: nothing when it is the inverse of `orig`, inline when one IPv4 side
    /// differs (`NatDelta`) and nothing else needs the box, boxed otherwise.
    pub fn set_reply(&mut self, reply: Tuple) {
        if self.extra.nat().is_some() {
            self.extra = ExtraSlot::NONE;
        }
        if let Some(e) = self.extra.as_mut() {
            e.reply = None;
        }
        let inverse = self.orig.inverted();
        if reply == inverse {
            self.shrink_extra();
        } else if self.extra.is_some() {
            self.extra_mut().reply = Some(reply);
        } else {
            match NatDelta::between(&inverse, &reply) {
                Some(d) if INLINE_NAT => self.extra = ExtraSlot::nat_slot(d),
                _ => self.extra_mut().reply = Some(reply),
            }
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

    /// Mutable access to `Extra`, allocating it on first use (an inline NAT delta moves
    /// into it as the reply tuple). `shrink_extra` undoes what turns out to be unneeded.
    pub fn extra_mut(&mut self) -> &mut Extra {
        let reply = self.extra.nat().map(|_| self.reply());
        self.extra.get_or_box(|| Extra {
            reply,
            ..Extra::default()
        })
    }

    /// Drop the `Extra` box if nothing is left in it, or if all it holds is a reply tuple
    /// that fits inline.
    pub fn shrink_extra(&mut self) {
        let Some(e) = self.extra.as_deref() else {
            return;
        };
        if e.is_empty() {
            self.extra = ExtraSlot::NONE;
        } else if let Some(r) = e.only_reply() {
            if let Some(d) = NatDelta::between(&self.orig.inverted(), &r).filter(|_| INLINE_NAT) {
                self.extra = ExtraSlot::nat_slot(d);
            }
        }
    }

    /// Whether the reply tuple differs from the inverse of the original (SNAT/DNAT).
    pub fn is_nat(&self) -> bool {
        self.extra.nat().is_some() || self.extra.as_deref().is_some_and(|e| e.reply.is_some())
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
        self.ct_state().name()
    }

    /// [`ctstate`](Flow::ctstate) as a one-byte value, for keys kept by the million
    /// (`top`'s groups).
    pub fn ct_state(&self) -> CtState {
        if self.is_related() && !self.has(status::SEEN_REPLY) {
            CtState::Related
        } else if self.has(status::SEEN_REPLY) {
            CtState::Established
        } else {
            CtState::New
        }
    }
}

/// The `--ctstate` of a flow ([`Flow::ct_state`]). Declared in the order of the names,
/// so keys that hold it sort as the names do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CtState {
    Established,
    New,
    Related,
}

impl CtState {
    pub fn name(self) -> &'static str {
        match self {
            CtState::Established => "ESTABLISHED",
            CtState::New => "NEW",
            CtState::Related => "RELATED",
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

    fn v4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Tuple {
        let mut t = Tuple {
            proto: proto::TCP,
            sport,
            dport,
            ..Tuple::default()
        };
        t.src[..4].copy_from_slice(&src);
        t.dst[..4].copy_from_slice(&dst);
        t
    }

    /// DNAT and SNAT (one IPv4 side of the reply differs) are stored in the flow itself;
    /// both sides at once, or IPv6, take the box; every shape reads back exactly.
    #[test]
    fn common_nat_is_inline_and_exact() {
        let orig = v4([10, 0, 0, 1], 40000, [192, 0, 2, 1], 80);
        let dnat = v4([198, 51, 100, 7], 8080, [10, 0, 0, 1], 40000);
        let snat = v4([192, 0, 2, 1], 80, [203, 0, 113, 9], 61000);
        let both = v4([198, 51, 100, 7], 8080, [203, 0, 113, 9], 61000);
        for (reply, inline) in [(dnat, true), (snat, true), (both, false)] {
            let mut f = Flow::new(orig);
            f.set_reply(reply);
            assert_eq!(f.reply(), reply);
            assert!(f.is_nat());
            assert_eq!(f.extra.nat().is_some(), inline, "{reply}");
            assert_eq!(f.extra.is_none(), inline, "{reply}");
            let g = f.clone();
            assert_eq!(g, f);
            assert_eq!(g.reply(), reply);
        }
        let mut o6 = orig;
        o6.family = Family::Ipv6;
        let mut r6 = o6.inverted();
        r6.src[15] = 9;
        let mut f = Flow::new(o6);
        f.set_reply(r6);
        assert!(f.extra.nat().is_none() && f.extra.is_some());
        assert_eq!(f.reply(), r6);
    }

    /// A rare field added to an inline-NAT flow moves the reply into the box, and removing
    /// it again brings the flow back to its inline form; the reply survives both ways.
    #[test]
    fn inline_nat_moves_into_the_box_and_back() {
        let orig = v4([10, 0, 0, 1], 40000, [192, 0, 2, 1], 80);
        let dnat = v4([198, 51, 100, 7], 8080, [10, 0, 0, 1], 40000);
        let mut f = Flow::new(orig);
        f.set_reply(dnat);
        f.extra_mut().labels = 4;
        assert!(f.extra.is_some() && f.extra.nat().is_none());
        assert_eq!(f.reply(), dnat);
        f.extra_mut().labels = 0;
        f.shrink_extra();
        assert!(f.extra.is_none() && f.extra.nat().is_some());
        assert_eq!(f.reply(), dnat);
        // A later reply replaces the inline one; the plain inverse clears it.
        let snat = v4([192, 0, 2, 1], 80, [203, 0, 113, 9], 61000);
        f.set_reply(snat);
        assert_eq!(f.reply(), snat);
        f.set_reply(orig.inverted());
        assert!(!f.is_nat() && f.extra == ExtraSlot::NONE);
    }

    #[test]
    fn status_names_in_bit_order() {
        let n: Vec<_> = status::names(status::SEEN_REPLY | status::ASSURED).collect();
        assert_eq!(n, ["SEEN_REPLY", "ASSURED"]);
        assert_eq!(status::parse("assured"), Some(status::ASSURED));
    }
}
