//! The serde view model of the JSON contract (README, issue 2): one struct per JSON object,
//! built from model records at a given store time. Text output renders from the same views,
//! so both formats always agree. It must not read netlink bytes or the store's internals.
//!
//! Field order here is the order in the JSON. `freedom`, `findings`, `risk_from`, `table`
//! and `listener` are filled by the risk module and skipped while `None`; `secctx`, `zone_orig` and `zone_reply` appear only
//! when the kernel reported them (conntrack(8) prints them only then, too).

use crate::decode::Event;
use crate::model::flow::{status, Flow};
use crate::model::tuple::{proto, Tuple};
use crate::model::{Expectation, HelperId};
use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;
use std::net::IpAddr;

/// A TUPLE of the contract: ports, or `type`/`code`/`icmp_id` for icmp/icmpv6, or
/// `srckey`/`dstkey` for gre. Absent keys are skipped, never `null`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TupleView {
    pub src: IpAddr,
    pub dst: IpAddr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sport: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dport: Option<u16>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub icmp_type: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub icmp_id: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub srckey: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dstkey: Option<u16>,
}

impl TupleView {
    pub fn of(t: &Tuple) -> TupleView {
        let mut v = TupleView {
            src: t.src_ip(),
            dst: t.dst_ip(),
            sport: None,
            dport: None,
            icmp_type: None,
            code: None,
            icmp_id: None,
            srckey: None,
            dstkey: None,
        };
        if t.is_icmp() {
            v.icmp_type = Some(t.icmp_type());
            v.code = Some(t.icmp_code());
            v.icmp_id = Some(t.icmp_id());
        } else if t.proto == proto::GRE {
            v.srckey = Some(t.sport);
            v.dstkey = Some(t.dport);
        } else {
            v.sport = Some(t.sport);
            v.dport = Some(t.dport);
        }
        v
    }
}

/// A protocol: its conntrack(8) name, or its number when it has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proto(pub u8);

impl Proto {
    /// The name, or `"unknown"` as conntrack(8) prints an unnamed protocol.
    pub fn name(self) -> &'static str {
        proto::name(self.0).unwrap_or("unknown")
    }
}

impl Serialize for Proto {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match proto::name(self.0) {
            Some(n) => s.serialize_str(n),
            None => s.serialize_u8(self.0),
        }
    }
}

/// `IPS_*` bits serialised as the list of conntrack(8) names, without allocating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusList(pub u32);

impl Serialize for StatusList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for n in status::names(self.0) {
            seq.serialize_element(n)?;
        }
        seq.end()
    }
}

/// `NF_CT_EXPECT_*` bits as names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpectFlags(pub u32);

impl Serialize for ExpectFlags {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for n in crate::model::expect::flags::names(self.0) {
            seq.serialize_element(n)?;
        }
        seq.end()
    }
}

/// A 128-bit label set serialised as the list of set bit numbers (label ids as in
/// /etc/xtables/connlabel.conf).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Labels(pub u128);

impl Labels {
    pub fn bits(self) -> impl Iterator<Item = u8> {
        (0u8..128).filter(move |b| self.0 & (1u128 << b) != 0)
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for b in self.bits() {
            seq.serialize_element(&b)?;
        }
        seq.end()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CounterView {
    pub packets: u64,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CountersView {
    pub orig: CounterView,
    pub reply: CounterView,
}

/// Start and stop in ns since the epoch (stop is 0 while the flow lives).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TimestampView {
    pub start: u64,
    pub stop: u64,
}

/// A flow as the JSON contract spells it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FlowView {
    pub family: &'static str,
    pub proto: Proto,
    pub state: Option<&'static str>,
    /// Seconds left at the time the view was built.
    pub timeout: u32,
    pub orig: TupleView,
    pub reply: TupleView,
    pub status: StatusList,
    pub mark: u32,
    pub zone: u16,
    pub id: u32,
    #[serde(rename = "use")]
    pub use_count: u32,
    pub helper: Option<&'static str>,
    pub master: Option<TupleView>,
    pub counters: Option<CountersView>,
    pub timestamp: Option<TimestampView>,
    pub labels: Labels,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secctx: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_orig: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zone_reply: Option<u16>,
    /// Filled by `risk` for RELATED flows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freedom: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub findings: Option<serde_json::Value>,
    /// `"expectation"` (judged by the expectation the store saw) or `"flow"` (from the
    /// flow itself).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub risk_from: Option<&'static str>,
    /// The helper table row used (`null`: the helper has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<serde_json::Value>,
    /// The listening-socket check (`{"check": …}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener: Option<serde_json::Value>,
}

impl FlowView {
    /// The view of `f` at store time `now` (the timeout shown is what is left then).
    pub fn of(f: &Flow, now: u32) -> FlowView {
        let e = f.extra.as_deref();
        FlowView {
            family: f.orig.family.name(),
            proto: Proto(f.orig.proto),
            state: f.state_name(),
            timeout: f.remaining(now),
            orig: TupleView::of(&f.orig),
            reply: TupleView::of(&f.reply()),
            status: StatusList(f.status),
            mark: f.mark,
            zone: f.zone,
            id: f.id,
            use_count: u32::from(f.use_count),
            helper: helper_name(f.helper),
            master: f.master().map(TupleView::of),
            counters: e.and_then(|e| e.counters).map(|[o, r]| CountersView {
                orig: CounterView {
                    packets: o.packets,
                    bytes: o.bytes,
                },
                reply: CounterView {
                    packets: r.packets,
                    bytes: r.bytes,
                },
            }),
            timestamp: e
                .and_then(|e| e.timestamp)
                .map(|(start, stop)| TimestampView { start, stop }),
            labels: Labels(e.map_or(0, |e| e.labels)),
            secctx: e.and_then(|e| e.secctx.as_deref()).map(str::to_owned),
            zone_orig: e.and_then(|e| e.zone_orig),
            zone_reply: e.and_then(|e| e.zone_reply),
            freedom: None,
            findings: None,
            risk_from: None,
            table: None,
            listener: None,
        }
    }
}

/// The NAT part of an expectation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct NatView {
    /// `"original"` or `"reply"` (`CTA_EXPECT_NAT_DIR` 0 / 1), or the raw number.
    pub dir: NatDir,
    pub tuple: TupleView,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NatDir(pub u32);

impl Serialize for NatDir {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            0 => s.serialize_str("original"),
            1 => s.serialize_str("reply"),
            n => s.serialize_u32(n),
        }
    }
}

/// An expectation as the JSON contract spells it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpectView {
    pub family: &'static str,
    pub proto: Proto,
    pub timeout: u32,
    pub tuple: TupleView,
    pub mask: TupleView,
    pub master: TupleView,
    pub helper: Option<&'static str>,
    pub flags: ExpectFlags,
    pub class: u32,
    pub id: u32,
    pub zone: u16,
    pub nat: Option<NatView>,
    #[serde(rename = "fn")]
    pub func: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub freedom: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub findings: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listener: Option<serde_json::Value>,
}

impl ExpectView {
    pub fn of(e: &Expectation, now: u32) -> ExpectView {
        ExpectView {
            family: e.tuple.family.name(),
            proto: Proto(e.tuple.proto),
            timeout: e.remaining(now),
            tuple: TupleView::of(&e.tuple),
            mask: TupleView::of(&e.mask),
            master: TupleView::of(&e.master),
            helper: helper_name(e.helper),
            flags: ExpectFlags(e.flags),
            class: e.class,
            id: e.id,
            zone: e.zone,
            nat: e.nat.map(|n| NatView {
                dir: NatDir(n.dir),
                tuple: TupleView::of(&n.tuple),
            }),
            func: e.func.as_deref().map(str::to_owned),
            freedom: None,
            findings: None,
            table: None,
            listener: None,
        }
    }
}

/// A flow or an expectation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EntryView {
    Flow(FlowView),
    Expect(ExpectView),
}

impl EntryView {
    /// `"flow"` or `"expect"`, the watch line's `kind`.
    pub fn kind(&self) -> &'static str {
        match self {
            EntryView::Flow(_) => "flow",
            EntryView::Expect(_) => "expect",
        }
    }
}

/// One `watch` line: the entry plus `"event"` and `"kind"` first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WatchLine {
    pub event: &'static str,
    pub kind: &'static str,
    #[serde(flatten)]
    pub entry: EntryView,
}

impl WatchLine {
    pub fn new(event: Event, entry: EntryView) -> WatchLine {
        WatchLine {
            event: event_name(event),
            kind: entry.kind(),
            entry,
        }
    }
}

/// The contract's event names; a dump entry (never a watch event) is `"dump"`.
pub fn event_name(e: Event) -> &'static str {
    match e {
        Event::Dump => "dump",
        Event::New => "new",
        Event::Update => "update",
        Event::Destroy => "destroy",
    }
}

fn helper_name(h: HelperId) -> Option<&'static str> {
    h.name()
}
