//! Where raw messages come from: the live kernel (a `Conn` plus a `Subscription` in one
//! namespace) or a recording played back. Both speak `Item`s, so the engine — and every
//! command above it — cannot tell them apart except that a replay refuses actions.
//! This file owns no decoding and no store.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::record::{self, Kind, Reader};
use crate::abi::*;
use crate::error::{Error, Result};
use crate::model::store::FlowKey;
use crate::netlink::dump::{DumpFilter, DumpOutcome};
use crate::netlink::events::{Recv, Subscription, DEFAULT_RCVBUF};
use crate::netlink::request::{family_of, Request};
use crate::netlink::{Conn, Namespace, Table};

/// Table bits for `Item::DumpBegin` / `DumpEnd` (same values as in recordings).
pub const FLOWS: u8 = record::TABLE_FLOWS;
pub const EXPECTS: u8 = record::TABLE_EXPECTS;

/// One thing a source produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    /// A full dump of these tables starts.
    DumpBegin(u8),
    /// One dumped entry (a raw netlink message).
    DumpMsg(&'a [u8]),
    /// The dump of these tables is complete.
    DumpEnd(u8),
    /// One event the kernel multicast (a raw netlink message).
    Event(&'a [u8]),
    /// The answer to a re-check (a raw netlink message): the kernel's GET reply, or a
    /// synthesized DELETE for a flow it no longer has. Housekeeping, not a kernel event.
    Recheck(&'a [u8]),
    /// Events were lost (ENOBUFS).
    Overrun,
    /// A recency snapshot (xt_recent lists, nft sets, knock machines) as a recording's
    /// `Recent` payload: taken live by `recent::sampler`, or played back.
    Recent(&'a [u8]),
}

/// What a `poll` ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// Some items were delivered.
    Items,
    /// Nothing within the timeout.
    Timeout,
    /// A replay has no more frames (a live source never ends).
    End,
}

/// The engine's clock: store time is whole seconds since the source started.
#[derive(Debug, Clone)]
pub enum Clock {
    /// Live: wall time since the engine started.
    Wall(Instant),
    /// Replay: the recording's time, advanced by the replay.
    Virtual(Arc<AtomicU64>),
}

impl Clock {
    /// Nanoseconds since the start.
    pub fn now_ns(&self) -> u64 {
        match self {
            Clock::Wall(start) => start.elapsed().as_nanos() as u64,
            Clock::Virtual(t) => t.load(Ordering::Relaxed),
        }
    }

    /// Store time: whole seconds since the start.
    pub fn now(&self) -> u32 {
        (self.now_ns() / 1_000_000_000) as u32
    }
}

/// A stream of ctnetlink messages, live or recorded.
pub trait Source: Send {
    /// Dump the tables in `tables` (`FLOWS | EXPECTS`): the sink gets `DumpBegin`, every
    /// entry as `DumpMsg`, then `DumpEnd`. A replay plays its recorded dump only if that is
    /// the next thing in the recording; `Ok(false)` means no dump was available.
    fn dump(&mut self, tables: u8, sink: &mut dyn FnMut(Item<'_>)) -> Result<bool>;

    /// Wait up to `timeout`, then deliver what arrived (at most about `max` items). A
    /// replay also delivers its recorded re-dumps and overruns here, in recorded order.
    fn poll(
        &mut self,
        timeout: Duration,
        max: usize,
        sink: &mut dyn FnMut(Item<'_>),
    ) -> Result<Poll>;

    /// Ask the kernel about flows whose timeout passed: each still-present flow's reply
    /// goes to the sink as a `Recheck` (the kernel marks a get reply `NLM_F_MULTI`, so it
    /// decodes like a dumped entry: a refresh, not an event); each vanished flow as a
    /// synthesized DELETE message (it decodes as a destroy). A replay does nothing: its
    /// recording already holds the answers the live session got.
    fn recheck(&mut self, keys: &[FlowKey], sink: &mut dyn FnMut(Item<'_>)) -> Result<()>;

    /// The request connection for actions; a replay refuses with a clear message.
    fn conn(&mut self) -> Result<&mut Conn>;

    /// The clock store time is taken from.
    fn clock(&self) -> Clock;

    /// Whether this is the live kernel (background re-dumps and re-checks only make sense then).
    fn is_live(&self) -> bool;

    /// When the clock's zero was, in ns since the Unix epoch: live, when the source opened
    /// (now minus the clock); a replay, when the recording started. Dates events.
    fn start_epoch_ns(&self) -> u64 {
        record::now_epoch_ns().saturating_sub(self.clock().now_ns())
    }

    /// Drop queued events before a resync dump (see `Subscription::discard`). A replay
    /// has nothing to drop: the live session never recorded what it discarded.
    fn discard_events(&mut self) -> Result<()> {
        Ok(())
    }

    /// The namespace a live source watches, where list actions (`recent::act`) run; a
    /// recording has none.
    fn netns(&self) -> Option<Namespace> {
        None
    }

    /// How many flows the kernel holds right now (`nf_conntrack_count` of the namespace),
    /// read just before a dump so its progress can be shown. `None` when unknown: a
    /// recording holds no count (the format has no frame for it), so a replay's dump
    /// shows entries received without a total.
    fn expected_flows(&mut self) -> Option<u64> {
        None
    }

    /// Act on a viewer's request to the replay clock. A live source has no clock to
    /// steer: it ignores every request.
    fn control(&mut self, _c: ReplayControl) -> Result<()> {
        Ok(())
    }

    /// How many flows the table holds now (`nf_conntrack_count`), so a load can size the
    /// store once. `None` when unknown (a recording).
    fn flow_count(&self) -> Option<usize> {
        None
    }
}

/// The live kernel in one namespace.
pub struct Live {
    conn: Conn,
    events: Option<Subscription>,
    start: Instant,
    ns: Namespace,
    /// Recency snapshots taken beside the events (`sample_recent`).
    recent: Option<crate::recent::sampler::Sampler>,
    /// What the kernel filters of the next dumps (flows, expectations): set by a
    /// one-shot command for its selection (`set_dump_filters`), never by a follower.
    filters: (DumpFilter, DumpFilter),
    /// How the last dump of each table went (flows, expectations).
    last: (DumpOutcome, DumpOutcome),
}

impl Live {
    /// Open the request socket and, when `follow`, the event subscription — first, so no
    /// event between the initial dump and the subscription is missed.
    pub fn open(ns: &Namespace, follow: bool) -> Result<Live> {
        Live::open_with(ns, follow, DEFAULT_RCVBUF)
    }

    /// Like `open`, with an event receive buffer of `rcvbuf` bytes (at least 8 MiB):
    /// a larger one absorbs bigger bursts (a flush of N entries queues ~1.3 KB each).
    pub fn open_with(ns: &Namespace, follow: bool, rcvbuf: usize) -> Result<Live> {
        Live::open_exact(ns, follow, rcvbuf.max(crate::netlink::events::MIN_RCVBUF))
    }

    /// Like `open_with`, with exactly `rcvbuf` bytes, even below the 8 MiB floor, so a
    /// test can make the kernel drop events (ENOBUFS) and watch the resync.
    pub fn open_exact(ns: &Namespace, follow: bool, rcvbuf: usize) -> Result<Live> {
        let events = if follow {
            Some(Subscription::open_exact(ns, rcvbuf)?)
        } else {
            None
        };
        Ok(Live {
            conn: Conn::open(ns)?,
            events,
            start: Instant::now(),
            ns: ns.clone(),
            recent: None,
            filters: Default::default(),
            last: Default::default(),
        })
    }

    /// Also deliver recency snapshots of this namespace (`Item::Recent`), at the cadence
    /// `recent::changes::interval` picks; `name` is the namespace as the user gave it.
    pub fn sample_recent(&mut self, name: Option<String>) -> Result<()> {
        let s = crate::recent::sampler::Sampler::spawn(self.ns.clone(), name).map_err(|e| {
            Error::Io {
                op: "spawn recency sampler thread",
                source: e,
            }
        })?;
        self.recent = Some(s);
        Ok(())
    }

    /// The namespace this source watches.
    pub fn namespace(&self) -> &Namespace {
        &self.ns
    }

    /// The granted event receive buffer, if subscribed.
    pub fn rcvbuf(&self) -> Option<usize> {
        self.events.as_ref().map(Subscription::rcvbuf)
    }

    /// Let the kernel filter the next dumps of flows and of expectations (see
    /// `netlink::dump::DumpFilter`); the defaults dump whole tables again. Whoever sets a
    /// filter re-checks every entry: the store then holds a superset of the selection,
    /// not the table.
    pub fn set_dump_filters(&mut self, flows: DumpFilter, expects: DumpFilter) {
        self.filters = (flows, expects);
    }

    /// How the last dump of flows and of expectations went.
    pub fn last_dumps(&self) -> (DumpOutcome, DumpOutcome) {
        self.last
    }
}

/// How many times an interrupted (`NLM_F_DUMP_INTR`) dump is retried.
const DUMP_RETRIES: usize = 3;

impl Source for Live {
    fn flow_count(&self) -> Option<usize> {
        // A filtered dump brings a part of the table: sizing for all of it would waste
        // memory on big tables.
        if !self.filters.0.is_none() {
            return None;
        }
        crate::netlink::netns::read_sysctl(&self.ns, "net/netfilter/nf_conntrack_count")
            .and_then(|v| v.trim().parse().ok())
    }

    fn dump(&mut self, tables: u8, sink: &mut dyn FnMut(Item<'_>)) -> Result<bool> {
        for attempt in 0..DUMP_RETRIES {
            sink(Item::DumpBegin(tables));
            let mut interrupted = false;
            for (bit, table) in [(FLOWS, Table::Flows), (EXPECTS, Table::Expects)] {
                if tables & bit != 0 {
                    let (filter, last) = match table {
                        Table::Flows => (&self.filters.0, &mut self.last.0),
                        Table::Expects => (&self.filters.1, &mut self.last.1),
                    };
                    let out = self
                        .conn
                        .dump_filtered(table, filter, &mut |m| sink(Item::DumpMsg(m)))?;
                    *last = out;
                    interrupted |= out.interrupted;
                }
            }
            sink(Item::DumpEnd(tables));
            if !interrupted || attempt + 1 == DUMP_RETRIES {
                break;
            }
        }
        Ok(true)
    }

    fn poll(
        &mut self,
        timeout: Duration,
        max: usize,
        sink: &mut dyn FnMut(Item<'_>),
    ) -> Result<Poll> {
        // A snapshot is delivered between event batches, so it keeps its place in time.
        if let Some(b) = self.recent.as_ref().and_then(|r| r.try_next()) {
            sink(Item::Recent(&b));
            return Ok(Poll::Items);
        }
        let Some(events) = self.events.as_mut() else {
            std::thread::sleep(timeout);
            return Ok(Poll::Timeout);
        };
        match events.recv(timeout, max, &mut |m| sink(Item::Event(m)))? {
            Recv::Data(_) => Ok(Poll::Items),
            Recv::Overrun => {
                sink(Item::Overrun);
                Ok(Poll::Items)
            }
            Recv::Timeout => Ok(Poll::Timeout),
        }
    }

    fn recheck(&mut self, keys: &[FlowKey], sink: &mut dyn FnMut(Item<'_>)) -> Result<()> {
        for k in keys {
            let found = self.conn.get_flow(k, &mut |m| sink(Item::Recheck(m)))?;
            if !found {
                sink(Item::Recheck(&synthetic_destroy(k)));
            }
        }
        Ok(())
    }

    fn conn(&mut self) -> Result<&mut Conn> {
        Ok(&mut self.conn)
    }

    fn clock(&self) -> Clock {
        Clock::Wall(self.start)
    }

    fn is_live(&self) -> bool {
        true
    }

    fn netns(&self) -> Option<Namespace> {
        Some(self.ns.clone())
    }

    /// `conntrack -C` on the request socket, which lives in the watched namespace: no
    /// `setns` and no `/proc/sys` read. A refusal or an odd reply is no count, never an
    /// error: the dump matters, the gauge does not.
    fn expected_flows(&mut self) -> Option<u64> {
        let reply = self.conn.stats_global().ok()??;
        crate::decode::stats::global(&reply)
            .ok()
            .map(|g| u64::from(g.entries))
    }

    fn discard_events(&mut self) -> Result<()> {
        if let Some(events) = self.events.as_mut() {
            events.discard()?;
        }
        Ok(())
    }
}

/// The DESTROY event the kernel would have sent for a flow that vanished silently
/// (`nf_conntrack_events=2` and a flow older than our subscription): an
/// `IPCTNL_MSG_CT_DELETE` with its tuples and zone, decoded like any other event and
/// recorded, so a replay sees the same removal.
pub fn synthetic_destroy(k: &FlowKey) -> Vec<u8> {
    let mut r = Request::new(
        NFNL_SUBSYS_CTNETLINK,
        IPCTNL_MSG_CT_DELETE,
        0,
        family_of(&k.orig),
    );
    r.put_tuple_zoned(CTA_TUPLE_ORIG, &k.orig, k.zone_orig);
    r.put_tuple_zoned(CTA_TUPLE_REPLY, &k.orig.inverted(), k.zone_reply);
    if k.zone != 0 {
        r.put_be16(CTA_ZONE, k.zone);
    }
    let mut b = r.finish(0);
    // An event is not a request: clear NLM_F_REQUEST like the kernel's notifications.
    b[6..8].copy_from_slice(&0u16.to_ne_bytes());
    b
}

/// How fast a replay plays.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// As fast as possible (tests, headless commands).
    Fast,
    /// At the recorded pace times this factor (1.0 = real time, for the TUI).
    RealTime(f64),
}

/// A recording played back.
pub struct Replay<R: std::io::Read + Send = std::io::BufReader<std::fs::File>> {
    reader: Reader<R>,
    next: Option<record::Frame>,
    ended: bool,
    speed: Speed,
    clock: Arc<AtomicU64>,
    /// Recorded time (ns) the pace is measured from: the playback position when the
    /// replay started, was paused, resumed or changed speed.
    base_ns: u64,
    /// Wall time at `base_ns`; `None` until the first poll, so opening is not playing.
    base_at: Option<Instant>,
    /// Held by the viewer: nothing later than `base_ns` is delivered.
    paused: bool,
}

/// A viewer's request to a replay's clock (`Command::Replay`); a live source ignores it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ReplayControl {
    /// Hold the replay clock where it is, or let it run again.
    TogglePause,
    /// While paused: play the next recorded frame (and any recorded at the same instant).
    Step,
    /// Play the rest of the recording at once.
    End,
    /// Play at this pace from here on.
    Speed(Speed),
}

/// The refusal of an action (delete, flush) on a replay.
pub fn replay_refusal() -> Error {
    Error::Replay {
        what: "delete and flush act on the live table".into(),
    }
}

impl Replay {
    /// Open a recording file.
    pub fn open(path: &std::path::Path, speed: Speed) -> Result<Replay> {
        Ok(Replay::new(Reader::open(path)?, speed))
    }
}

impl<R: std::io::Read + Send> Replay<R> {
    /// Play frames from `reader`.
    pub fn new(reader: Reader<R>, speed: Speed) -> Replay<R> {
        Replay {
            reader,
            next: None,
            ended: false,
            speed,
            clock: Arc::new(AtomicU64::new(0)),
            base_ns: 0,
            base_at: None,
            paused: false,
        }
    }

    /// When the recording started, ns since the Unix epoch (for absolute times).
    pub fn recorded_start(&self) -> u64 {
        self.reader.start()
    }

    fn peek(&mut self) -> Result<Option<&record::Frame>> {
        if self.next.is_none() && !self.ended {
            self.next = self.reader.next_frame()?;
            self.ended = self.next.is_none();
        }
        Ok(self.next.as_ref())
    }

    fn take(&mut self) -> Option<record::Frame> {
        let f = self.next.take()?;
        // The clock never runs backwards, even over a hand-edited file.
        self.clock.fetch_max(f.t, Ordering::Relaxed);
        Some(f)
    }

    /// Virtual "now": frames up to it are due. Paused, the held position; real time,
    /// wall time since the last rebase, scaled, on top of the position then.
    fn due_limit(&mut self) -> u64 {
        if self.paused {
            return self.base_ns;
        }
        match self.speed {
            Speed::Fast => u64::MAX,
            Speed::RealTime(factor) => {
                let at = *self.base_at.get_or_insert_with(Instant::now);
                let played = (at.elapsed().as_nanos() as f64 * factor.max(0.0)) as u64;
                self.base_ns.saturating_add(played)
            }
        }
    }

    /// Measure the pace from the current position from now on (before a pause or a change
    /// of speed), so the replay neither jumps nor replays what was already shown.
    fn rebase(&mut self) {
        let played = self.clock.load(Ordering::Relaxed);
        let limit = match self.speed {
            Speed::Fast if !self.paused => played,
            _ => self.due_limit(),
        };
        self.base_ns = limit.max(played);
        self.base_at = Some(Instant::now());
    }

    /// Whether the viewer holds the replay clock.
    pub fn paused(&self) -> bool {
        self.paused
    }
}

fn deliver(f: &record::Frame, sink: &mut dyn FnMut(Item<'_>)) {
    let tables = || f.bytes.first().copied().unwrap_or(FLOWS | EXPECTS);
    match f.kind {
        Kind::DumpBegin => sink(Item::DumpBegin(tables())),
        Kind::DumpMsg => sink(Item::DumpMsg(&f.bytes)),
        Kind::DumpEnd => sink(Item::DumpEnd(tables())),
        Kind::EventMsg => sink(Item::Event(&f.bytes)),
        Kind::Overrun => sink(Item::Overrun),
        Kind::RecheckMsg => sink(Item::Recheck(&f.bytes)),
        Kind::Recent => sink(Item::Recent(&f.bytes)),
    }
}

impl<R: std::io::Read + Send> Source for Replay<R> {
    fn dump(&mut self, _tables: u8, sink: &mut dyn FnMut(Item<'_>)) -> Result<bool> {
        if !matches!(self.peek()?, Some(f) if f.kind == Kind::DumpBegin) {
            return Ok(false);
        }
        // Play the whole recorded dump at once, whatever the speed: a live dump is
        // delivered as fast as the kernel writes it too.
        let mut tables = FLOWS | EXPECTS;
        while let Some(f) = self.take() {
            deliver(&f, sink);
            match f.kind {
                Kind::DumpEnd => return Ok(true),
                Kind::DumpBegin => tables = f.bytes.first().copied().unwrap_or(tables),
                _ => {}
            }
            if self.peek()?.is_none() {
                break;
            }
        }
        // A recorder stopped mid-dump: close the dump so the store is not left resyncing.
        sink(Item::DumpEnd(tables));
        Ok(true)
    }

    fn poll(
        &mut self,
        timeout: Duration,
        max: usize,
        sink: &mut dyn FnMut(Item<'_>),
    ) -> Result<Poll> {
        let mut n = 0;
        loop {
            let limit = self.due_limit();
            let Some(next_t) = self.peek()?.map(|f| f.t) else {
                return Ok(if n > 0 { Poll::Items } else { Poll::End });
            };
            if next_t > limit {
                if n > 0 {
                    return Ok(Poll::Items);
                }
                if self.paused {
                    // Held: nothing is due until the viewer acts (a command ends the wait
                    // at the engine's next look, at most `timeout` later).
                    std::thread::sleep(timeout);
                } else if let Speed::RealTime(factor) = self.speed {
                    self.clock.fetch_max(limit, Ordering::Relaxed);
                    let wait_ns = ((next_t - limit) as f64 / factor.max(1e-3)) as u64;
                    std::thread::sleep(timeout.min(Duration::from_nanos(wait_ns)));
                }
                return Ok(Poll::Timeout);
            }
            if n >= max {
                return Ok(Poll::Items);
            }
            if let Some(f) = self.take() {
                deliver(&f, sink);
                n += 1;
            }
        }
    }

    fn recheck(&mut self, _keys: &[FlowKey], _sink: &mut dyn FnMut(Item<'_>)) -> Result<()> {
        Ok(())
    }

    fn conn(&mut self) -> Result<&mut Conn> {
        Err(replay_refusal())
    }

    fn clock(&self) -> Clock {
        Clock::Virtual(self.clock.clone())
    }

    fn is_live(&self) -> bool {
        false
    }

    fn start_epoch_ns(&self) -> u64 {
        self.reader.start()
    }

    fn control(&mut self, c: ReplayControl) -> Result<()> {
        match c {
            ReplayControl::TogglePause => {
                self.rebase();
                self.paused = !self.paused;
            }
            ReplayControl::Step => {
                if self.paused {
                    if let Some(t) = self.peek()?.map(|f| f.t) {
                        self.base_ns = self.base_ns.max(t);
                    }
                }
            }
            ReplayControl::End => {
                self.paused = false;
                self.speed = Speed::Fast;
            }
            ReplayControl::Speed(speed) => {
                self.rebase();
                self.speed = speed;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::record::Writer;
    use crate::model::tuple::{proto, Family, Tuple};
    use crate::netlink::NlHeader;

    /// Items as owned values, for comparison.
    #[derive(Debug, PartialEq, Eq)]
    enum Got {
        Begin(u8),
        Msg(Vec<u8>),
        End(u8),
        Event(Vec<u8>),
        Overrun,
        Recent(Vec<u8>),
    }

    fn collect(out: &mut Vec<Got>) -> impl FnMut(Item<'_>) + '_ {
        move |i| {
            out.push(match i {
                Item::DumpBegin(t) => Got::Begin(t),
                Item::DumpMsg(m) => Got::Msg(m.to_vec()),
                Item::DumpEnd(t) => Got::End(t),
                Item::Event(m) | Item::Recheck(m) => Got::Event(m.to_vec()),
                Item::Overrun => Got::Overrun,
                Item::Recent(b) => Got::Recent(b.to_vec()),
            })
        }
    }

    fn recording() -> Vec<u8> {
        let mut w = Writer::new(Vec::new(), "mem".into(), 0).unwrap();
        w.frame(0, Kind::DumpBegin, &[FLOWS | EXPECTS]).unwrap();
        w.frame(1, Kind::DumpMsg, b"a").unwrap();
        w.frame(2, Kind::DumpMsg, b"b").unwrap();
        w.frame(3, Kind::DumpEnd, &[FLOWS | EXPECTS]).unwrap();
        w.frame(2_000_000_000, Kind::EventMsg, b"e1").unwrap();
        w.frame(3_000_000_000, Kind::Overrun, &[]).unwrap();
        w.frame(3_000_000_001, Kind::DumpBegin, &[FLOWS | EXPECTS])
            .unwrap();
        w.frame(3_000_000_002, Kind::DumpMsg, b"c").unwrap();
        w.frame(3_000_000_003, Kind::DumpEnd, &[FLOWS | EXPECTS])
            .unwrap();
        w.frame(4_000_000_000, Kind::EventMsg, b"e2").unwrap();
        w.into_inner().unwrap()
    }

    #[test]
    fn replay_plays_initial_dump_then_everything_in_recorded_order() {
        let bytes = recording();
        let mut r = Replay::new(Reader::new(&bytes[..], "mem".into()).unwrap(), Speed::Fast);
        let clock = r.clock();
        let mut got = Vec::new();
        assert!(r.dump(FLOWS | EXPECTS, &mut collect(&mut got)).unwrap());
        assert_eq!(
            got,
            [
                Got::Begin(3),
                Got::Msg(b"a".to_vec()),
                Got::Msg(b"b".to_vec()),
                Got::End(3)
            ]
        );
        // Not at a dump any more: a second dump request has nothing to play.
        assert!(!r.dump(FLOWS, &mut collect(&mut got)).unwrap());
        got.clear();
        // Batches are capped by `max`.
        assert_eq!(
            r.poll(Duration::ZERO, 2, &mut collect(&mut got)).unwrap(),
            Poll::Items
        );
        assert_eq!(got, [Got::Event(b"e1".to_vec()), Got::Overrun]);
        assert_eq!(clock.now(), 3);
        got.clear();
        while r.poll(Duration::ZERO, 100, &mut collect(&mut got)).unwrap() == Poll::Items {}
        assert_eq!(
            got,
            [
                Got::Begin(3),
                Got::Msg(b"c".to_vec()),
                Got::End(3),
                Got::Event(b"e2".to_vec())
            ]
        );
        assert_eq!(
            r.poll(Duration::ZERO, 100, &mut collect(&mut got)).unwrap(),
            Poll::End
        );
        assert_eq!(clock.now(), 4);
        assert!(!r.is_live());
        let e = r.conn().unwrap_err().to_string();
        assert!(e.contains("replay") && e.contains("hint:"), "{e}");
    }

    #[test]
    fn a_recording_cut_mid_dump_still_ends_its_dump() {
        let mut w = Writer::new(Vec::new(), "mem".into(), 0).unwrap();
        w.frame(0, Kind::DumpBegin, &[FLOWS]).unwrap();
        w.frame(1, Kind::DumpMsg, b"a").unwrap();
        let bytes = w.into_inner().unwrap();
        let mut r = Replay::new(Reader::new(&bytes[..], "mem".into()).unwrap(), Speed::Fast);
        let mut got = Vec::new();
        assert!(r.dump(FLOWS | EXPECTS, &mut collect(&mut got)).unwrap());
        assert_eq!(got, [Got::Begin(1), Got::Msg(b"a".to_vec()), Got::End(1)]);
        assert_eq!(
            r.poll(Duration::ZERO, 10, &mut collect(&mut got)).unwrap(),
            Poll::End
        );
    }

    #[test]
    fn real_time_replay_waits_for_due_frames() {
        let bytes = recording();
        let mut r = Replay::new(
            Reader::new(&bytes[..], "mem".into()).unwrap(),
            Speed::RealTime(1.0),
        );
        let mut got = Vec::new();
        assert!(r.dump(FLOWS | EXPECTS, &mut collect(&mut got)).unwrap());
        got.clear();
        // The first event is 2 s in: a 10 ms poll delivers nothing.
        let t0 = Instant::now();
        assert_eq!(
            r.poll(Duration::from_millis(10), 100, &mut collect(&mut got))
                .unwrap(),
            Poll::Timeout
        );
        assert!(got.is_empty());
        assert!(t0.elapsed() >= Duration::from_millis(10));
        // Played 1000x faster, the whole rest arrives within a few polls.
        let mut fast = Replay::new(
            Reader::new(&bytes[..], "mem".into()).unwrap(),
            Speed::RealTime(1000.0),
        );
        fast.dump(FLOWS | EXPECTS, &mut |_| {}).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut n = 0;
        while Instant::now() < deadline {
            match fast
                .poll(Duration::from_millis(50), 100, &mut |_| n += 1)
                .unwrap()
            {
                Poll::End => break,
                Poll::Items | Poll::Timeout => {}
            }
        }
        assert_eq!(n, 6);
    }

    #[test]
    fn a_paused_replay_holds_steps_one_frame_and_jumps_to_the_end() {
        let bytes = recording();
        let mut r = Replay::new(
            Reader::new(&bytes[..], "mem".into()).unwrap(),
            Speed::RealTime(1.0),
        );
        let clock = r.clock();
        let mut got = Vec::new();
        assert!(r.dump(FLOWS | EXPECTS, &mut collect(&mut got)).unwrap());
        got.clear();
        r.control(ReplayControl::TogglePause).unwrap();
        assert!(r.paused());
        // Even at full speed, a held replay delivers nothing.
        r.control(ReplayControl::Speed(Speed::Fast)).unwrap();
        assert_eq!(
            r.poll(Duration::ZERO, 100, &mut collect(&mut got)).unwrap(),
            Poll::Timeout
        );
        assert!(got.is_empty());
        // One step: the next frame only (the event 2 s in), and the clock moves to it.
        r.control(ReplayControl::Step).unwrap();
        while r.poll(Duration::ZERO, 100, &mut collect(&mut got)).unwrap() == Poll::Items {}
        assert_eq!(got, [Got::Event(b"e1".to_vec())]);
        assert_eq!(clock.now(), 2);
        assert!(r.paused());
        // Resumed at 1x from where it was held: the next frame is a second away.
        r.control(ReplayControl::Speed(Speed::RealTime(1.0)))
            .unwrap();
        r.control(ReplayControl::TogglePause).unwrap();
        assert!(!r.paused());
        got.clear();
        assert_eq!(
            r.poll(Duration::ZERO, 100, &mut collect(&mut got)).unwrap(),
            Poll::Timeout
        );
        assert!(got.is_empty());
        // The end: everything left, then the end of the recording.
        r.control(ReplayControl::End).unwrap();
        while r.poll(Duration::ZERO, 100, &mut collect(&mut got)).unwrap() == Poll::Items {}
        assert_eq!(
            got,
            [
                Got::Overrun,
                Got::Begin(3),
                Got::Msg(b"c".to_vec()),
                Got::End(3),
                Got::Event(b"e2".to_vec())
            ]
        );
        assert_eq!(
            r.poll(Duration::ZERO, 100, &mut collect(&mut got)).unwrap(),
            Poll::End
        );
        assert_eq!(clock.now(), 4);
    }

    #[test]
    fn synthetic_destroy_is_a_delete_event_for_the_key() {
        let mut orig = Tuple {
            family: Family::Ipv6,
            proto: proto::UDP,
            sport: 5353,
            dport: 53,
            ..Tuple::default()
        };
        orig.set_src_ip("fd00:213:1::2".parse().unwrap());
        orig.set_dst_ip("fd00:213:1::1".parse().unwrap());
        let m = synthetic_destroy(&FlowKey::new(4, orig));
        let h = NlHeader::parse(&m).unwrap();
        assert_eq!(h.len as usize, m.len());
        assert_eq!(h.nl_type, 0x0102);
        assert_eq!(h.flags, 0);
        assert_eq!(m[16], 10);
        // The zone is the last attribute.
        assert_eq!(&m[m.len() - 8..m.len() - 2], &[6, 0, 18, 0, 0, 4][..]);
    }
}
