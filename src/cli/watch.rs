//! `ctscope watch` as a stream a consumer can rebuild the table from: engine events in,
//! dated lines out. It owns which line each change becomes; `output` formats the lines,
//! the engine and the store decide nothing about printing.
//!
//! The rules (README, "Watch lines"):
//! - One kernel message is one line, with the kernel's values for every attribute that
//!   message carried (a DESTROY's state, status with `DYING`, counters, timestamps). The
//!   store adds only what the kernel leaves out of that kind of message (helper, master,
//!   labels, secctx on a DESTROY; counters on an UPDATE), and only from the same life of
//!   the tuple ([`complete_flow`]).
//! - What ctscope finds by itself is housekeeping, printed as `"event":"sweep"` with a
//!   `change` (`add`/`update`/`remove`) and a `source` (`resync`/`recheck`/`expiry`), never
//!   as a kernel event and never counted by `--count`.
//! - Every re-dump the engine announces (`EngineEvent::Resync`: after ENOBUFS, or a
//!   background convergence dump) is bracketed by `resync` markers, with the differences it
//!   found in between. The engine says which dump is a re-dump; this file does not guess.

use std::collections::{HashMap, VecDeque};

use crate::engine::{self, EngineEvent, ResyncReason};
use crate::filter::{EventKind, Filter, NoContext, WithEvent};
use crate::model::store::{complete_expect, complete_flow, Change, ExpectKey, FlowKey};
use crate::model::{Event, Record};
use crate::model::{Expectation, Flow, Store};
use crate::output::view::source;
use crate::output::{EntryView, ExpectView, FlowView, ResyncLine, Stamp, WatchLine};

/// One thing to print (boxed: a line is large, and a re-dump may hand over many).
#[derive(Debug, Clone, PartialEq)]
pub enum Out {
    Line(Box<WatchLine>),
    Resync(Box<ResyncLine>),
}

/// Flows removed by housekeeping are remembered this long (entries), so the kernel's
/// DESTROY that often follows a re-check (the GET itself makes the kernel reap an expired
/// entry) still gets the helper and master the store knew.
const GONE_MAX: usize = 4096;

/// A re-dump in progress after the first dump.
#[derive(Debug, Clone)]
struct Resync {
    reason: &'static str,
    tables: Vec<&'static str>,
    added: u64,
    changed: u64,
    removed: u64,
}

/// The watch stream: the store it keeps, and what it needs to turn engine events into
/// lines.
pub struct Stream {
    pub store: Store,
    filter: Filter,
    flows: bool,
    expects: bool,
    stamp: Stamp,
    /// The engine announced that the next dump is a re-dump, and why.
    next_resync: Option<ResyncReason>,
    resync: Option<Resync>,
    gone: HashMap<FlowKey, Flow>,
    gone_order: VecDeque<FlowKey>,
}

impl Stream {
    /// A stream printing flows and/or expectations that match `filter`; `host` and
    /// `netns` go on every line.
    pub fn new(
        filter: Filter,
        flows: bool,
        expects: bool,
        host: Option<String>,
        netns: Option<String>,
    ) -> Stream {
        Stream {
            store: Store::new(),
            filter,
            flows,
            expects,
            stamp: Stamp {
                host,
                netns,
                ..Stamp::default()
            },
            next_resync: None,
            resync: None,
            gone: HashMap::new(),
            gone_order: VecDeque::new(),
        }
    }

    /// Apply one engine event at store time `now`, handing each line to `out` in order.
    /// `ActionDone`, `DecodeErrors` and `Fatal` are the caller's; they print nothing here.
    pub fn apply(&mut self, ev: EngineEvent, now: u32, out: &mut dyn FnMut(Out)) {
        match ev {
            EngineEvent::Received(t) => self.stamp.time.0 = t,
            EngineEvent::Records(batch) => {
                for (event, record) in batch {
                    if event == Event::Dump {
                        self.dumped(record, source::RESYNC, now, out);
                    } else {
                        self.kernel(event, record, now, out);
                    }
                }
            }
            EngineEvent::Rechecked(batch) => {
                for (event, record) in batch {
                    match (event, record) {
                        (Event::Destroy, Record::Flow(f)) => self.rechecked_gone(&f, now, out),
                        (Event::Destroy, Record::Expect(_)) => {}
                        (_, record) => self.dumped(record, source::RECHECK, now, out),
                    }
                }
            }
            EngineEvent::Overrun => {
                engine::apply(&mut self.store, EngineEvent::Overrun, now);
            }
            EngineEvent::Resync(why) => self.next_resync = Some(why),
            EngineEvent::DumpBegin { flows, expects } => {
                if let Some(why) = self.next_resync.take() {
                    let mut tables = Vec::new();
                    if flows {
                        tables.push("flows");
                    }
                    if expects {
                        tables.push("expects");
                    }
                    let r = Resync {
                        reason: why.name(),
                        tables,
                        added: 0,
                        changed: 0,
                        removed: 0,
                    };
                    out(Out::Resync(Box::new(self.marker(&r, "begin"))));
                    self.resync = Some(r);
                }
                self.store.begin_resync_tables(flows, expects);
            }
            EngineEvent::DumpEnd { flows, expects } => {
                let mut swept = Vec::new();
                self.store
                    .end_resync_with(flows, expects, &mut |r| swept.push(r));
                if let Some(mut r) = self.resync.take() {
                    for record in swept {
                        if let Some(line) = self.line_removed(record, source::RESYNC, now) {
                            r.removed += 1;
                            out(Out::Line(Box::new(line)));
                        }
                    }
                    out(Out::Resync(Box::new(self.marker(&r, "end"))));
                }
            }
            EngineEvent::DecodeErrors(_)
            | EngineEvent::DumpProgress(_)
            | EngineEvent::ActionDone(_)
            | EngineEvent::Fatal(_)
            | EngineEvent::Recent(_)
            | EngineEvent::RecentDamaged(_)
            | EngineEvent::Stats(_) => {}
        }
    }

    /// Expectations the owner's housekeeping dropped because their timeout passed
    /// (`engine::tick_with`), dated `time` (ns since the epoch).
    pub fn expired(
        &mut self,
        gone: Vec<Expectation>,
        time: u64,
        now: u32,
        out: &mut dyn FnMut(Out),
    ) {
        self.stamp.time.0 = time;
        for e in gone {
            if let Some(line) = self.line_removed(Record::Expect(e), source::EXPIRY, now) {
                out(Out::Line(Box::new(line)));
            }
        }
    }

    fn marker(&self, r: &Resync, phase: &'static str) -> ResyncLine {
        let end = phase == "end";
        ResyncLine {
            stamp: self.stamp.clone(),
            event: "resync",
            phase,
            reason: r.reason,
            tables: r.tables.clone(),
            added: end.then_some(r.added),
            changed: end.then_some(r.changed),
            removed: end.then_some(r.removed),
        }
    }

    /// One kernel event: its line from the kernel's record, completed from the store.
    fn kernel(&mut self, event: Event, record: Record, now: u32, out: &mut dyn FnMut(Out)) {
        match record {
            Record::Flow(f) => {
                let key = FlowKey::of(&f);
                let known = self.store.flow(&key).or_else(|| self.gone.get(&key));
                let mut shown = match (event, known) {
                    // A NEW is a whole record of a new life: nothing to take from before.
                    (Event::New, _) | (_, None) => f.clone(),
                    (_, Some(k)) => complete_flow(k, f.clone()),
                };
                shown.seen = now;
                if event == Event::Destroy {
                    // Shown as the store knew it while it lived (its risk, its master).
                    let line = self.flow_line(&shown, now, kind_of(event), |stamp, entry| {
                        WatchLine::kernel(stamp, event, entry)
                    });
                    self.store.apply(event, Record::Flow(f), now);
                    self.forget_gone(&key);
                    if let Some(l) = line {
                        out(Out::Line(Box::new(l)));
                    }
                } else {
                    self.store.apply(event, Record::Flow(f), now);
                    self.forget_gone(&key);
                    if let Some(l) = self.flow_line(&shown, now, kind_of(event), |stamp, entry| {
                        WatchLine::kernel(stamp, event, entry)
                    }) {
                        out(Out::Line(Box::new(l)));
                    }
                }
            }
            Record::Expect(e) => {
                let key = ExpectKey::of(&e);
                let mut shown = match (event, self.store.expectation(&key)) {
                    (Event::New, _) | (_, None) => e.clone(),
                    (_, Some(k)) => complete_expect(k, e.clone()),
                };
                shown.seen = now;
                let line = if event == Event::Destroy {
                    let l = self.expect_line(&shown, now, kind_of(event), |stamp, entry| {
                        WatchLine::kernel(stamp, event, entry)
                    });
                    self.store.apply(event, Record::Expect(e), now);
                    l
                } else {
                    self.store.apply(event, Record::Expect(e), now);
                    self.expect_line(&shown, now, kind_of(event), |stamp, entry| {
                        WatchLine::kernel(stamp, event, entry)
                    })
                };
                if let Some(l) = line {
                    out(Out::Line(Box::new(l)));
                }
            }
        }
    }

    /// A dumped entry (a re-dump, or a re-check's answer): applied to the store, and
    /// printed as a sweep when it is new to the store or differs in more than its clock.
    /// Entries of the first dump only fill the store.
    fn dumped(&mut self, record: Record, from: &'static str, now: u32, out: &mut dyn FnMut(Out)) {
        let report = from != source::RESYNC || self.resync.is_some();
        if !report {
            self.store.apply(Event::Dump, record, now);
            return;
        }
        match record {
            Record::Flow(f) => {
                let key = FlowKey::of(&f);
                let before = self.store.flow(&key).map(Visible::of);
                let change = self.store.apply(Event::Dump, Record::Flow(f), now);
                let Some(after) = self.store.flow(&key) else {
                    return;
                };
                let what = match (change, before) {
                    (Change::FlowAdded, _) => "add",
                    (Change::FlowUpdated, Some(b)) if b != Visible::of(after) => "update",
                    _ => return,
                };
                let after = after.clone();
                if let Some(l) = self.flow_line(&after, now, sweep_kind(what), |stamp, entry| {
                    WatchLine::sweep(stamp, what, from, entry)
                }) {
                    self.count(what);
                    out(Out::Line(Box::new(l)));
                }
            }
            Record::Expect(e) => {
                let key = ExpectKey::of(&e);
                let before = self.store.expectation(&key).map(visible_expect);
                let change = self.store.apply(Event::Dump, Record::Expect(e), now);
                let Some(after) = self.store.expectation(&key) else {
                    return;
                };
                let what = match (change, before) {
                    (Change::ExpectAdded, _) => "add",
                    (Change::ExpectUpdated, Some(b)) if b != visible_expect(after) => "update",
                    _ => return,
                };
                let after = after.clone();
                if let Some(l) = self.expect_line(&after, now, sweep_kind(what), |stamp, entry| {
                    WatchLine::sweep(stamp, what, from, entry)
                }) {
                    self.count(what);
                    out(Out::Line(Box::new(l)));
                }
            }
        }
    }

    fn count(&mut self, what: &str) {
        if let Some(r) = self.resync.as_mut() {
            match what {
                "add" => r.added += 1,
                "update" => r.changed += 1,
                _ => r.removed += 1,
            }
        }
    }

    /// A re-check found the flow gone: a sweep removal, remembered for the kernel's
    /// DESTROY that may follow.
    fn rechecked_gone(&mut self, f: &Flow, now: u32, out: &mut dyn FnMut(Out)) {
        let key = FlowKey::of(f);
        let Some(known) = self.store.flow(&key).cloned() else {
            return;
        };
        let line = self.flow_line(&known, now, EventKind::Destroy, |stamp, entry| {
            WatchLine::sweep(stamp, "remove", source::RECHECK, entry)
        });
        self.store.sweep_flow(&key);
        self.remember_gone(key, known);
        if let Some(l) = line {
            out(Out::Line(Box::new(l)));
        }
    }

    fn line_removed(&mut self, record: Record, from: &'static str, now: u32) -> Option<WatchLine> {
        match record {
            Record::Flow(f) => {
                let line = self.flow_line(&f, now, EventKind::Destroy, |stamp, entry| {
                    WatchLine::sweep(stamp, "remove", from, entry)
                });
                self.remember_gone(FlowKey::of(&f), f);
                line
            }
            Record::Expect(e) => self.expect_line(&e, now, EventKind::Destroy, |stamp, entry| {
                WatchLine::sweep(stamp, "remove", from, entry)
            }),
        }
    }

    fn remember_gone(&mut self, key: FlowKey, f: Flow) {
        while self.gone_order.len() >= GONE_MAX {
            if let Some(k) = self.gone_order.pop_front() {
                self.gone.remove(&k);
            }
        }
        if self.gone.insert(key, f).is_none() {
            self.gone_order.push_back(key);
        }
    }

    fn forget_gone(&mut self, key: &FlowKey) {
        if self.gone.remove(key).is_some() {
            self.gone_order.retain(|k| k != key);
        }
    }

    fn flow_line(
        &self,
        f: &Flow,
        now: u32,
        kind: EventKind,
        make: impl FnOnce(Stamp, EntryView) -> WatchLine,
    ) -> Option<WatchLine> {
        if !self.flows
            || !self
                .filter
                .match_flow_in(f, now, &WithEvent(&NoContext, kind))
        {
            return None;
        }
        let v = super::annotate_flow(&self.store, FlowView::of(f, now), f);
        Some(make(self.stamp.clone(), EntryView::Flow(v)))
    }

    fn expect_line(
        &self,
        e: &Expectation,
        now: u32,
        kind: EventKind,
        make: impl FnOnce(Stamp, EntryView) -> WatchLine,
    ) -> Option<WatchLine> {
        if !self.expects
            || !self
                .filter
                .match_expect_in(e, now, &WithEvent(&NoContext, kind))
        {
            return None;
        }
        let v = super::annotate_expect(&self.store, ExpectView::of(e, now), e);
        Some(make(self.stamp.clone(), EntryView::Expect(v)))
    }
}

/// What a consumer's table holds of a flow, for telling a real change from a refresh:
/// everything but the clock (timeout), what only moves with traffic (counters, use) and
/// the timestamps, which no NEW or UPDATE event carries (a dump or GET reply showing them
/// for the first time is not a change; a new life also has a new id).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Visible {
    state: u8,
    helper: crate::model::HelperId,
    status: u32,
    mark: u32,
    id: u32,
    reply: crate::model::Tuple,
    master: Option<crate::model::Tuple>,
    labels: u128,
    secctx: Option<Box<str>>,
    zones: (Option<u16>, Option<u16>),
}

impl Visible {
    fn of(f: &Flow) -> Visible {
        let e = f.extra.as_deref();
        Visible {
            state: f.state,
            helper: f.helper,
            status: f.status,
            mark: f.mark,
            id: f.id,
            reply: f.reply(),
            master: f.master().copied(),
            labels: e.map_or(0, |e| e.labels),
            secctx: e.and_then(|e| e.secctx.clone()),
            zones: (e.and_then(|e| e.zone_orig), e.and_then(|e| e.zone_reply)),
        }
    }
}

/// An expectation without its clock.
fn visible_expect(e: &Expectation) -> Expectation {
    let mut v = e.clone();
    v.timeout = 0;
    v.seen = 0;
    v
}

/// This machine's host name, for the `host` of every NDJSON line.
pub fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates on success
    // when the name fits, and we stop at the first NUL or the end either way.
    let r = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if r != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    (!name.is_empty()).then_some(name)
}

/// The `event=` kind of a kernel event (a dump entry counts as an update).
fn kind_of(event: Event) -> EventKind {
    match event {
        Event::New => EventKind::New,
        Event::Destroy => EventKind::Destroy,
        Event::Update | Event::Dump => EventKind::Update,
    }
}

/// The `event=` kind of a sweep line by its change (`add` or `update`).
fn sweep_kind(what: &str) -> EventKind {
    if what == "add" {
        EventKind::New
    } else {
        EventKind::Update
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::flow::{status, Counter};
    use crate::model::tuple::{proto, Family, Tuple};

    fn tuple(p: u8, sport: u16, dport: u16) -> Tuple {
        let mut t = Tuple {
            family: Family::Ipv4,
            proto: p,
            sport,
            dport,
            ..Tuple::default()
        };
        t.set_src_ip("10.0.0.2".parse().unwrap());
        t.set_dst_ip("10.0.0.1".parse().unwrap());
        t
    }

    /// A flow as a dump reports it: everything, helper included.
    fn dumped_flow(p: u8, sport: u16) -> Flow {
        let mut f = Flow::new(tuple(p, sport, 21));
        f.state = if p == proto::TCP {
            3
        } else {
            crate::model::flow::NO_STATE
        };
        f.status = status::SEEN_REPLY | status::ASSURED | status::CONFIRMED;
        f.timeout = 100;
        f.id = u32::from(sport);
        f.use_count = 1;
        f.helper = crate::model::helper::intern("ftp");
        f.extra_mut().labels = 0b101;
        f
    }

    /// The DESTROY the kernel sends for it: state, status with DYING, counters and
    /// timestamps; no helper, master, labels or use.
    fn kernel_destroy(p: u8, sport: u16) -> Flow {
        let mut f = Flow::new(tuple(p, sport, 21));
        f.state = if p == proto::TCP {
            8
        } else {
            crate::model::flow::NO_STATE
        };
        f.status = status::SEEN_REPLY | status::ASSURED | status::CONFIRMED | status::DYING;
        f.id = u32::from(sport);
        let e = f.extra_mut();
        e.counters = Some([
            Counter {
                packets: 3,
                bytes: 180,
            },
            Counter {
                packets: 2,
                bytes: 120,
            },
        ]);
        e.timestamp = Some((1_000, 2_000));
        f
    }

    fn run(stream: &mut Stream, evs: Vec<EngineEvent>) -> Vec<Out> {
        let mut out = Vec::new();
        for ev in evs {
            stream.apply(ev, 5, &mut |o| out.push(o));
        }
        out
    }

    fn stream_with(flows: Vec<Flow>) -> Stream {
        let mut s = Stream::new(Filter::all(), true, true, Some("fw1".into()), None);
        let mut evs = vec![
            EngineEvent::Received(7),
            EngineEvent::DumpBegin {
                flows: true,
                expects: true,
            },
        ];
        evs.push(EngineEvent::Records(
            flows
                .into_iter()
                .map(|f| (Event::Dump, Record::Flow(f)))
                .collect(),
        ));
        evs.push(EngineEvent::DumpEnd {
            flows: true,
            expects: true,
        });
        assert!(run(&mut s, evs).is_empty(), "the first dump prints nothing");
        s
    }

    fn json(o: &Out) -> serde_json::Value {
        match o {
            Out::Line(l) => serde_json::to_value(l).unwrap(),
            Out::Resync(r) => serde_json::to_value(r).unwrap(),
        }
    }

    #[test]
    fn a_destroy_line_carries_the_kernels_values_and_only_fills_what_it_left_out() {
        let mut s = stream_with(vec![dumped_flow(proto::TCP, 40000)]);
        let out = run(
            &mut s,
            vec![
                EngineEvent::Received(1_764_510_803_000_000_001),
                EngineEvent::Records(vec![(
                    Event::Destroy,
                    Record::Flow(kernel_destroy(proto::TCP, 40000)),
                )]),
            ],
        );
        assert_eq!(out.len(), 1);
        let j = json(&out[0]);
        assert_eq!(j["event"], "destroy");
        assert_eq!(j["source"], "kernel");
        assert_eq!(j["time"], "2025-11-30T13:53:23.000000001Z");
        assert_eq!(j["host"], "fw1");
        assert_eq!(j["state"], "CLOSE");
        assert!(j["status"].as_array().unwrap().contains(&"DYING".into()));
        assert_eq!(j["counters"]["orig"]["bytes"], 180);
        assert_eq!(j["timestamp"]["stop"], 2000);
        assert_eq!(j["timeout"], 0);
        // Left out by the kernel on a DESTROY: from the store.
        assert_eq!(j["helper"], "ftp");
        assert_eq!(j["labels"], serde_json::json!([0, 2]));
        assert_eq!(s.store.flow_count(), 0);
    }

    #[test]
    fn event_terms_select_lines_by_their_event() {
        let mut s = stream_with(vec![dumped_flow(proto::TCP, 40000)]);
        s.filter = Filter::parse("event=destroy or (event=new and sport=40002)").unwrap();
        let out = run(
            &mut s,
            vec![EngineEvent::Records(vec![
                (Event::New, Record::Flow(dumped_flow(proto::TCP, 40001))),
                (Event::New, Record::Flow(dumped_flow(proto::TCP, 40002))),
                (
                    Event::Destroy,
                    Record::Flow(kernel_destroy(proto::TCP, 40000)),
                ),
            ])],
        );
        let seen: Vec<_> = out
            .iter()
            .map(|o| {
                let j = json(o);
                (
                    j["event"].as_str().unwrap().to_owned(),
                    j["orig"]["sport"].as_u64(),
                )
            })
            .collect();
        assert_eq!(
            seen,
            [
                ("new".to_owned(), Some(40002)),
                ("destroy".to_owned(), Some(40000))
            ]
        );
    }

    #[test]
    fn another_life_of_the_tuple_lends_nothing() {
        let mut s = stream_with(vec![dumped_flow(proto::TCP, 40000)]);
        let mut k = kernel_destroy(proto::TCP, 40000);
        k.id = 999;
        let out = run(
            &mut s,
            vec![EngineEvent::Records(vec![(
                Event::Destroy,
                Record::Flow(k),
            )])],
        );
        let j = json(&out[0]);
        assert_eq!(j["helper"], serde_json::Value::Null);
        assert_eq!(j["id"], 999);
    }

    #[test]
    fn an_update_keeps_the_kernels_values_and_the_known_helper() {
        let mut s = stream_with(vec![dumped_flow(proto::TCP, 40000)]);
        let mut u = Flow::new(tuple(proto::TCP, 40000, 21));
        u.state = 4; // FIN_WAIT
        u.status = status::SEEN_REPLY | status::CONFIRMED;
        u.mark = 7;
        u.timeout = 120;
        u.id = 40000;
        let out = run(
            &mut s,
            vec![EngineEvent::Records(vec![(Event::Update, Record::Flow(u))])],
        );
        let j = json(&out[0]);
        assert_eq!(
            (&j["event"], &j["state"], &j["mark"]),
            (&"update".into(), &"FIN_WAIT".into(), &7.into())
        );
        assert_eq!(j["status"], serde_json::json!(["SEEN_REPLY", "CONFIRMED"]));
        assert_eq!(j["timeout"], 120);
        assert_eq!(j["helper"], "ftp");
    }

    #[test]
    fn a_udp_timeout_is_one_destroy_line_and_one_labelled_sweep() {
        let mut s = stream_with(vec![dumped_flow(proto::UDP, 5353)]);
        // ctscope's re-check finds it gone (the synthesized DELETE has only the tuples),
        // then the kernel's own DESTROY arrives.
        let synthetic = Flow::new(tuple(proto::UDP, 5353, 21));
        let out = run(
            &mut s,
            vec![
                EngineEvent::Rechecked(vec![(Event::Destroy, Record::Flow(synthetic))]),
                EngineEvent::Records(vec![(
                    Event::Destroy,
                    Record::Flow(kernel_destroy(proto::UDP, 5353)),
                )]),
            ],
        );
        let lines: Vec<_> = out.iter().map(json).collect();
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert_eq!(
            (&lines[0]["event"], &lines[0]["change"], &lines[0]["source"]),
            (&"sweep".into(), &"remove".into(), &"recheck".into())
        );
        let destroys: Vec<_> = lines.iter().filter(|l| l["event"] == "destroy").collect();
        assert_eq!(destroys.len(), 1);
        assert_eq!(destroys[0]["counters"]["reply"]["packets"], 2);
        assert!(destroys[0]["status"]
            .as_array()
            .unwrap()
            .contains(&"DYING".into()));
        assert_eq!(
            destroys[0]["helper"], "ftp",
            "completed from the swept record"
        );
        assert_eq!(s.store.stats().swept, 1);
        assert_eq!(
            s.store.stats().events,
            1,
            "only the kernel's DESTROY is an event"
        );
    }

    /// A consumer rebuilding the table from the stream: keys of live flows.
    fn replay(
        start: &[Flow],
        lines: &[serde_json::Value],
    ) -> std::collections::BTreeSet<(u64, u64)> {
        let mut table: std::collections::BTreeSet<(u64, u64)> = start
            .iter()
            .map(|f| (u64::from(f.orig.sport), u64::from(f.mark)))
            .collect();
        for l in lines {
            if l["kind"] != "flow" {
                continue;
            }
            let sport = l["orig"]["sport"].as_u64().unwrap();
            table.retain(|(s, _)| *s != sport);
            let gone = l["event"] == "destroy" || l["change"] == "remove";
            if !gone {
                table.insert((sport, l["mark"].as_u64().unwrap()));
            }
        }
        table
    }

    #[test]
    fn a_resync_is_marked_and_its_differences_rebuild_the_table() {
        let start = vec![
            dumped_flow(proto::TCP, 1),
            dumped_flow(proto::TCP, 2),
            dumped_flow(proto::TCP, 3),
        ];
        let mut s = stream_with(start.clone());
        let mut changed = dumped_flow(proto::TCP, 1);
        changed.mark = 9;
        let mut refreshed = dumped_flow(proto::TCP, 2);
        refreshed.timeout = 50; // only the clock moved: not a change
        let added = dumped_flow(proto::TCP, 4);
        let out = run(
            &mut s,
            vec![
                EngineEvent::Overrun,
                EngineEvent::Resync(ResyncReason::Overrun),
                EngineEvent::DumpBegin {
                    flows: true,
                    expects: true,
                },
                EngineEvent::Records(vec![
                    (Event::Dump, Record::Flow(changed)),
                    (Event::Dump, Record::Flow(refreshed)),
                    (Event::Dump, Record::Flow(added)),
                ]),
                EngineEvent::DumpEnd {
                    flows: true,
                    expects: true,
                },
            ],
        );
        let lines: Vec<_> = out.iter().map(json).collect();
        let kinds: Vec<String> = lines
            .iter()
            .map(|l| {
                format!(
                    "{}/{}",
                    l["event"].as_str().unwrap(),
                    l.get("change")
                        .or(l.get("phase"))
                        .unwrap()
                        .as_str()
                        .unwrap()
                )
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "resync/begin",
                "sweep/update",
                "sweep/add",
                "sweep/remove",
                "resync/end"
            ]
        );
        assert_eq!(lines[0]["reason"], "overrun");
        assert_eq!(lines[0]["tables"], serde_json::json!(["flows", "expects"]));
        assert_eq!(
            (
                &lines[4]["added"],
                &lines[4]["changed"],
                &lines[4]["removed"]
            ),
            (&1.into(), &1.into(), &1.into())
        );
        assert!(lines[1..4].iter().all(|l| l["source"] == "resync"));
        let rebuilt = replay(&start, &lines);
        let store: std::collections::BTreeSet<(u64, u64)> = s
            .store
            .flows()
            .map(|f| (u64::from(f.orig.sport), u64::from(f.mark)))
            .collect();
        assert_eq!(rebuilt, store);
        assert_eq!(rebuilt.len(), 3);
        // A later background dump that finds nothing new says so and prints no sweep.
        let same: Vec<_> = s
            .store
            .flows()
            .cloned()
            .map(|f| (Event::Dump, Record::Flow(f)))
            .collect();
        let out = run(
            &mut s,
            vec![
                EngineEvent::Resync(ResyncReason::Redump),
                EngineEvent::DumpBegin {
                    flows: true,
                    expects: true,
                },
                EngineEvent::Records(same),
                EngineEvent::DumpEnd {
                    flows: true,
                    expects: true,
                },
            ],
        );
        let lines: Vec<_> = out.iter().map(json).collect();
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert_eq!(lines[0]["reason"], "redump");
    }
}
