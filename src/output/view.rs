//! The serde view model of the JSON contract (README, issue 2): one struct per JSON object,
//! built from model records at a given store time. Text output renders from the same views,
//! so both formats always agree. It must not read netlink bytes or the store's internals.
//!
//! Field order here is the order in the JSON. `freedom`, `findings`, `risk_from`, `table`
//! and `listener` are filled by the risk module and skipped while `None`; `secctx`, `zone_orig` and `zone_reply` appear only
//! when the kernel reported them (conntrack(8) prints them only then, too).

use crate::model::flow::{status, Flow};
use crate::model::tuple::{proto, Tuple};
use crate::model::Event;
use crate::model::{Expectation, HelperId};
use serde::ser::{SerializeSeq, Serializer};
use serde::Serialize;
use std::net::IpAddr;

/// A TUPLE of the contract: ports (tcp, udp, udplite, sctp, dccp), or `type`/`code`/`icmp_id`
/// for icmp/icmpv6, or `srckey`/`dstkey` for gre, or only addresses for a protocol the kernel
/// tracks generically (igmp, esp, 40, …), as conntrack(8) prints them. Absent keys are
/// skipped, never `null`.
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
        } else if proto::has_ports(t.proto) {
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

/// `IPS_*` bits serialised as the list of conntrack(8) names, without allocating. A flow
/// without `SEEN_REPLY` also lists `UNREPLIED` (in `SEEN_REPLY`'s place), the word
/// conntrack(8) prints for it, so JSON says what the text line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusList(pub u32);

impl Serialize for StatusList {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for (i, n) in status::NAMES.iter().enumerate() {
            if self.0 & (1 << i) != 0 {
                seq.serialize_element(n)?;
            } else if 1 << i == status::SEEN_REPLY {
                seq.serialize_element("UNREPLIED")?;
            }
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

/// A 128-bit label set, serialised as a list with each set bit's connlabel.conf name
/// (`model::labels::active()`), or its number when the map names it not (the way nft's
/// JSON mixes them), e.g. `["blue", 9]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Labels(pub u128);

/// One label: its name, or its bit number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Label {
    Name(&'static str),
    Bit(u8),
}

impl std::fmt::Display for Label {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Label::Name(n) => f.write_str(n),
            Label::Bit(b) => write!(f, "{b}"),
        }
    }
}

impl Labels {
    pub fn bits(self) -> impl Iterator<Item = u8> {
        (0u8..128).filter(move |b| self.0 & (1u128 << b) != 0)
    }

    /// The set labels, lowest bit first, named where the active map names them.
    pub fn named(self) -> impl Iterator<Item = Label> {
        let map = crate::model::labels::active();
        self.bits()
            .map(move |b| map.name(b).map_or(Label::Bit(b), Label::Name))
    }
}

impl Serialize for Labels {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(None)?;
        for l in self.named() {
            match l {
                Label::Name(n) => seq.serialize_element(n)?,
                Label::Bit(b) => seq.serialize_element(&b)?,
            }
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

/// Start and stop in ns since the epoch; `stop` is `null` while the flow lives (the kernel
/// sends 0 until the entry dies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct TimestampView {
    pub start: u64,
    pub stop: Option<u64>,
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
                .map(|(start, stop)| TimestampView {
                    start,
                    stop: (stop != 0).then_some(stop),
                }),
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

/// When a watch line's message was received, in ns since the Unix epoch; in JSON an
/// RFC 3339 UTC time with nanoseconds (`2026-11-30T13:53:23.123456789Z`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventTime(pub u64);

impl EventTime {
    pub fn rfc3339(self) -> String {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(self.0);
        humantime::format_rfc3339_nanos(t).to_string()
    }
}

impl Serialize for EventTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.rfc3339())
    }
}

/// What every stream line starts with: when it was received and where (`host`, and
/// `netns` when one was given), so a log pipeline can merge many hosts.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Stamp {
    pub time: EventTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub netns: Option<String>,
}

/// Where a watch line's change comes from: `"kernel"` for an event the kernel sent (one
/// line per message), otherwise housekeeping (`"event":"sweep"`): `"resync"` (a re-dump
/// after lost events or a background convergence dump), `"recheck"` (a flow whose timeout
/// passed, asked for with a GET), `"expiry"` (an expectation whose timeout passed).
pub mod source {
    pub const KERNEL: &str = "kernel";
    pub const RESYNC: &str = "resync";
    pub const RECHECK: &str = "recheck";
    pub const EXPIRY: &str = "expiry";
}

/// One `watch` line: stamp, `"event"`, for a sweep its `"change"`, `"source"` and
/// `"kind"`, then the entry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WatchLine {
    #[serde(flatten)]
    pub stamp: Stamp,
    /// `new`, `update`, `destroy` (kernel events) or `sweep` (housekeeping).
    pub event: &'static str,
    /// For a sweep: `add`, `update` or `remove`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<&'static str>,
    pub source: &'static str,
    pub kind: &'static str,
    #[serde(flatten)]
    pub entry: EntryView,
}

impl WatchLine {
    /// A kernel event's line, undated (see [`WatchLine::kernel`]).
    pub fn new(event: Event, entry: EntryView) -> WatchLine {
        WatchLine::kernel(Stamp::default(), event, entry)
    }

    /// The line for one event the kernel sent.
    pub fn kernel(stamp: Stamp, event: Event, entry: EntryView) -> WatchLine {
        WatchLine {
            stamp,
            event: event_name(event),
            change: None,
            source: source::KERNEL,
            kind: entry.kind(),
            entry,
        }
    }

    /// A housekeeping line: `change` is `add`, `update` or `remove`, `source` one of
    /// [`source`]'s housekeeping names.
    pub fn sweep(
        stamp: Stamp,
        change: &'static str,
        source: &'static str,
        entry: EntryView,
    ) -> WatchLine {
        WatchLine {
            stamp,
            event: "sweep",
            change: Some(change),
            source,
            kind: entry.kind(),
            entry,
        }
    }

    /// Whether the kernel sent this (what `watch --count` counts).
    pub fn is_kernel_event(&self) -> bool {
        self.source == source::KERNEL
    }
}

/// The in-band resync marker: `phase` `begin` before the differences a re-dump found
/// (sweep lines with `"source":"resync"`), `end` after them with their counts. `reason`
/// is `overrun` (the kernel dropped events, ENOBUFS) or `redump` (a background dump).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResyncLine {
    #[serde(flatten)]
    pub stamp: Stamp,
    pub event: &'static str,
    pub phase: &'static str,
    pub reason: &'static str,
    pub tables: Vec<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub added: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub removed: Option<u64>,
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
