//! The engine: turns a `Source` (live kernel or recording) into `EngineEvent`s for the one
//! owner of the store (the TUI's main thread or a headless command). It runs the initial
//! dump, follows events in batches, recovers from ENOBUFS by re-dumping, re-dumps in the
//! background, re-checks expired flows on request and executes action plans.
//!
//! It does not own the store (the owner applies events with [`apply`]), does not render,
//! and does not touch sockets itself (`netlink` does, behind `Source`).
//!
//! Convergence when the kernel stays silent: with `net.netfilter.nf_conntrack_events=0`
//! nothing is announced, and under the default `=2` a flow created before anyone listened
//! has no event extension and sends no UPDATE or DESTROY (seen on kernel 6.18: a
//! `conntrack -D` of an entry inserted before the subscription produces no event). Two
//! mechanisms make the store converge anyway (both proven in tests/kernel_netlink.rs with
//! events turned off):
//! - the owner asks for a re-check of flows whose reported timeout has run out
//!   (`Store::expired_flows` → `Command::Recheck`; a flow an event announced, which will
//!   send its DESTROY, `DESTROY_GRACE` seconds later); each is fetched with
//!   `conntrack -G` semantics and either refreshed or removed;
//! - a background full re-dump whose interval adapts to the table size so that it costs
//!   under 1% of one core ([`redump_interval`]); the store sweeps what it no longer reports.
//!
//! Store time is whole seconds since the engine started (a replay: the recorded time).
//!
//! Two kinds of change reach the owner and stay apart all the way to the output: what the
//! kernel announced (`Records` with NEW/UPDATE/DESTROY) and what the engine found by
//! itself (`Rechecked` answers, and the entries of a re-dump: `Resync` then
//! `DumpBegin`…`DumpEnd`). Every batch is dated by a `Received` before it. `watch` prints the first as kernel events and the second as
//! labelled housekeeping, so one kernel message is always one line.

pub mod record;
pub mod source;

use std::collections::{HashSet, VecDeque};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::actions::{self, Plan, Report};
use crate::decode::{self, Message};
use crate::error::{Error, Result};
use crate::model::store::FlowKey;
use crate::model::Store;
use crate::model::{Event, Record};
use crate::netlink::{Conn, Table};
pub use source::{Clock, Item, Live, Poll, Replay, ReplayControl, Source, Speed, EXPECTS, FLOWS};

/// What the engine tells the store's owner.
#[derive(Debug)]
pub enum EngineEvent {
    /// Decoded entries, in kernel order (dump entries carry `Event::Dump`).
    Records(Vec<(Event, Record)>),
    /// Answers to re-checks (`Command::Recheck`): a flow still present comes as
    /// `Event::Dump` (a refresh), a vanished one as `Event::Destroy` synthesized by the
    /// engine. Housekeeping: the kernel announced none of this.
    Rechecked(Vec<(Event, Record)>),
    /// What follows was received at this time, in ns since the Unix epoch (a replay: the
    /// recorded time). Sent before every batch, dump boundary and overrun.
    Received(u64),
    /// The dump that follows is a re-dump (any dump after the first), and why: what it
    /// finds different from the store is a resync's work, not the kernel's events.
    Resync(ResyncReason),
    /// A full dump of these tables starts (the store begins a resync).
    DumpBegin { flows: bool, expects: bool },
    /// The dump is complete (the store sweeps what it did not report).
    DumpEnd { flows: bool, expects: bool },
    /// How far the flows dump in progress has come: sent after `DumpBegin` and after
    /// every batch of dumped records, so a front end can show the first rows with a gauge
    /// while a large table still streams. Leaves the store alone.
    DumpProgress(Progress),
    /// The kernel dropped events (ENOBUFS); a re-dump follows.
    Overrun,
    /// Messages that could not be decoded since the last report.
    DecodeErrors(u64),
    /// The result of a `Command::Execute`.
    ActionDone(Report),
    /// The engine stopped on an error (e.g. a socket failure); the message is for the user.
    Fatal(String),
    /// Recency state (xt_recent lists, nft sets, knock machines) as of the `Received`
    /// time before it: sampled live beside the events, or played back from a recording,
    /// in order with the flow records either way. Not store state: the owner keeps it
    /// (`model::recent::RecentState`).
    Recent(Box<crate::recent::Snapshot>),
    /// A recorded recency snapshot could not be read; one line for the user. Nothing else
    /// is lost: the replay goes on.
    RecentDamaged(String),
    /// The answer to `Command::Stats`: the kernel's counters (`conntrack -S`, `-S expect`,
    /// `-C`), or why they could not be read (a replay holds none; a refusal's message).
    /// Not store state: the dashboard turns successive readings into rates.
    Stats(std::result::Result<Box<crate::model::stats::Stats>, String>),
}

/// A flows dump's progress: flow entries received so far against the count the kernel
/// gave for the namespace just before the dump began.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Flow entries of this dump decoded and sent so far.
    pub received: u64,
    /// `nf_conntrack_count` of the namespace (`IPCTNL_MSG_CT_GET_STATS`, what
    /// `conntrack -C` reads) when the dump began. `None` for a replay (a recording holds
    /// no count) or when the kernel did not answer. It counts every entry the kernel
    /// holds, unconfirmed and dying ones too, and the table moves during the dump, so
    /// `received` may end a little above or below it: show it as an estimate.
    pub expected: Option<u64>,
}

impl Progress {
    /// Received over expected, at most 1 (`None` without an expected count).
    pub fn ratio(&self) -> Option<f64> {
        self.expected
            .map(|e| (self.received as f64 / e.max(1) as f64).min(1.0))
    }
}

/// Why a re-dump runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResyncReason {
    /// The kernel dropped events (ENOBUFS).
    Overrun,
    /// A background convergence dump (or a `Command::Redump`, or a retried dump).
    Redump,
}

impl ResyncReason {
    /// The word used in `watch` output.
    pub fn name(self) -> &'static str {
        match self {
            ResyncReason::Overrun => "overrun",
            ResyncReason::Redump => "redump",
        }
    }
}

/// What the owner asks the engine to do.
#[derive(Debug)]
pub enum Command {
    /// Run a confirmed plan (refused on a replay).
    Execute(Box<Plan>),
    /// Ask the kernel about these flows (their timeout passed without a DESTROY).
    Recheck(Vec<FlowKey>),
    /// Re-dump both tables now.
    Redump,
    /// Steer a replay's clock (pause, step, jump to the end, speed); a live source ignores it.
    Replay(ReplayControl),
    /// Read the kernel's counters now (`read_stats`); answered with `EngineEvent::Stats`.
    /// The dashboard asks once a second, so its thread never waits on a socket.
    Stats,
    /// End the engine thread.
    Stop,
}

/// Engine settings.
pub struct Options {
    /// Keep following events after the initial dump; `false` ends after it.
    pub follow: bool,
    /// Write every message to this recording.
    pub record: Option<record::Writer>,
    /// The shortest interval between background re-dumps.
    pub min_redump: Duration,
    /// Records per `EngineEvent::Records` batch.
    pub batch: usize,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            follow: true,
            record: None,
            min_redump: Duration::from_secs(30),
            batch: 4096,
        }
    }
}

/// Kernel time of a full dump per entry, measured here (~3 µs).
const DUMP_COST_PER_ENTRY: Duration = Duration::from_micros(3);
/// Background dumps may use this share of one core. They are a backstop: flows created
/// while ctscope listens send their events, and a pre-existing flow that sent none is
/// re-checked when its reported timeout runs out; what only the dump finds is a flow
/// removed early that sent no DESTROY. At 5% (and a 10 s floor) they were most of an
/// idle dashboard's CPU: ~0.7% of a core at 20,000 entries and ~4% at a million, against
/// the 1% a tool left open on a quiet firewall should cost.
const DUMP_BUDGET: f64 = 0.01;

/// The interval between background re-dumps: long enough that a dump of `entries`
/// (estimated at ~3 µs each, or the measured `last_dump` if slower) stays under 1% of one
/// core, and never shorter than `min` (30 s by default). 1M entries: ~5 min.
pub fn redump_interval(entries: usize, last_dump: Duration, min: Duration) -> Duration {
    let estimate = DUMP_COST_PER_ENTRY.saturating_mul(entries.min(u32::MAX as usize) as u32);
    let cost = estimate.max(last_dump);
    min.max(cost.div_f64(DUMP_BUDGET))
}

/// Apply one engine event to the store at store time `now`. Returns whether the store
/// may have changed (the caller redraws then). `ActionDone`, `DecodeErrors` and `Fatal`
/// are for the caller to show; they leave the store alone.
pub fn apply(store: &mut Store, ev: EngineEvent, now: u32) -> bool {
    match ev {
        EngineEvent::Records(batch) => store.apply_records(batch, now),
        EngineEvent::Rechecked(batch) => {
            let mut changed = false;
            for (event, record) in batch {
                changed |= match (event, record) {
                    (Event::Destroy, Record::Flow(f)) => {
                        store.sweep_flow(&FlowKey::of(&f)).is_some()
                    }
                    (Event::Destroy, Record::Expect(_)) => false,
                    (_, record) => {
                        store.apply(Event::Dump, record, now)
                            != crate::model::store::Change::Nothing
                    }
                };
            }
            changed
        }
        EngineEvent::DumpBegin { flows, expects } => {
            store.begin_resync_tables(flows, expects);
            false
        }
        EngineEvent::DumpEnd { flows, expects } => {
            store.end_resync(flows, expects);
            true
        }
        EngineEvent::Overrun => {
            store.note_resync();
            true
        }
        EngineEvent::Received(_)
        | EngineEvent::DumpProgress(_)
        | EngineEvent::Resync(_)
        | EngineEvent::DecodeErrors(_)
        | EngineEvent::ActionDone(_)
        | EngineEvent::Fatal(_)
        | EngineEvent::Recent(_)
        | EngineEvent::RecentDamaged(_)
        | EngineEvent::Stats(_) => false,
    }
}

/// Read every counter `conntrack -S`, `-S expect` and `-C` show over `conn`: the per-CPU
/// flow counters (`IPCTNL_MSG_CT_GET_STATS_CPU`), the expectation counters
/// (`IPCTNL_MSG_EXP_GET_STATS_CPU`) and the global count (optional: older kernels lack it).
pub fn read_stats(conn: &mut Conn) -> Result<crate::model::stats::Stats> {
    let mut s = crate::model::stats::Stats::default();
    let mut bad = None;
    conn.stats_cpu(Table::Flows, &mut |m| match decode::stats::cpu(m) {
        Ok(c) => s.cpus.push(c),
        Err(e) => bad = Some(e),
    })?;
    conn.stats_cpu(
        Table::Expects,
        &mut |m| match decode::stats::expect_cpu(m) {
            Ok(c) => s.expect_cpus.push(c),
            Err(e) => bad = Some(e),
        },
    )?;
    if let Some(e) = bad {
        return Err(e.into());
    }
    s.global = match conn.stats_global()? {
        Some(m) => Some(decode::stats::global(&m)?),
        None => None,
    };
    Ok(s)
}

/// Housekeeping for the store's owner, about once a second: drop expectations whose
/// timeout passed, and ask the engine to re-check flows whose timeout passed without a
/// DESTROY (the kernel stayed silent, see the module docs). The engine ignores keys
/// already queued, and a replay ignores re-checks (its recording holds the answers).
/// Returns whether the store changed.
pub fn tick(store: &mut Store, handle: &EngineHandle, now: u32) -> bool {
    tick_with(store, handle, now, &mut |_| {})
}

/// [`tick`], handing every expectation it drops to `gone` (so `watch` can print the
/// removal as housekeeping).
pub fn tick_with(
    store: &mut Store,
    handle: &EngineHandle,
    now: u32,
    gone: &mut dyn FnMut(&crate::model::Expectation),
) -> bool {
    let expired = store.expire_expectations_with(now, gone) > 0;
    let stale = store.expired_flows(now);
    if !stale.is_empty() {
        // An ended engine (a finished replay) simply has nothing to ask.
        let _ = handle.send(Command::Recheck(stale));
    }
    expired
}

/// What a synchronous [`load`] found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadStats {
    /// Dumped messages (flows and expectations).
    pub messages: usize,
    /// Messages that could not be decoded.
    pub decode_errors: u64,
    /// Masters of RELATED flows the dump left out, and what asking for them gave
    /// (`fetch_missing_masters`).
    pub masters: MasterFetch,
}

/// What `fetch_missing_masters` asked for and got.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MasterFetch {
    /// Masters the store lacked.
    pub missing: usize,
    /// Of those, the ones the kernel still had (now in the store).
    pub fetched: usize,
    /// Answers that could not be decoded (counted, as every load counts them).
    pub decode_errors: u64,
}

/// Headless `list`: dump both tables from `source` into `store` at store time `now`.
/// A replay contributes its initial dump.
///
/// The dump is pipelined over two threads: this one stays in `recv` (where the kernel
/// spends its ~3 µs per entry building messages) and only copies raw bytes into chunks;
/// a scoped worker decodes and applies them meanwhile. On two cores the store is then
/// ready about when the kernel finishes, instead of decode time after it. The worker
/// needs about a third of the receiving thread's CPU (0.4-0.5 µs a flow against ~1.4 µs
/// on the development machine, `examples/bench load`), which matters when other work
/// shares the cores: then the wall time approaches the two threads' CPU together.
pub fn load(source: &mut dyn Source, store: &mut Store, now: u32) -> Result<LoadStats> {
    /// Decoded flows per `Store::apply_flows`: enough lookups in flight to hide most of
    /// the cache misses, few enough that their lines are still cached when applied.
    const BATCH: usize = 32;

    // Size the store for the table once (plus 1/16 for entries created during the dump):
    // growing by doubling rehashes the index and copies the slab ~20 times on the way to a
    // million flows (`reserve_rehash` was the top user-space cost of a load), and leaves
    // up to half of the last doubling unused.
    if let Some(n) = source.flow_count() {
        store.reserve_flows((n + n / 16).saturating_sub(store.flow_count()));
    }
    let mut stats = LoadStats::default();
    // Flows go to the store in batches (`Store::apply_flows`: their index lookups
    // overlap); the vector is reused, so batching allocates nothing.
    let mut batch = Vec::with_capacity(BATCH);
    let sink = |item: Item<'_>| match item {
        Item::DumpBegin(t) => {
            store.apply_flows(&mut batch, now);
            store.begin_resync_tables(t & FLOWS != 0, t & EXPECTS != 0);
        }
        Item::DumpEnd(t) => {
            // Every flow of the dump is in before the sweep judges what it left out.
            store.apply_flows(&mut batch, now);
            store.end_resync(t & FLOWS != 0, t & EXPECTS != 0);
        }
        Item::DumpMsg(m) | Item::Event(m) | Item::Recheck(m) => {
            stats.messages += 1;
            match decode::message_into(m, &mut batch) {
                Ok((Some(Message::Record { event, record }), _)) => {
                    // An expectation: the flows before it go first.
                    store.apply_flows(&mut batch, now);
                    store.apply(event, record, now);
                }
                Ok(_) if batch.len() == BATCH => store.apply_flows(&mut batch, now),
                Ok(_) => {}
                Err(_) => stats.decode_errors += 1,
            }
        }
        Item::Overrun | Item::Recent(_) => {}
    };
    pipelined_dump(source, "ctscope-load", sink)?;
    store.apply_flows(&mut batch, now);
    stats.masters = fetch_missing_masters(source, store, now)?;
    stats.decode_errors += stats.masters.decode_errors;
    Ok(stats)
}

/// Ask the kernel, one by one, for the masters of RELATED flows that a dump left out, and
/// store those it still has. A dump is not a snapshot: the kernel can leave out an entry
/// that lived throughout it (seen here: an FTP control connection missing from about one
/// dump in ten while its transfer ran, though `conntrack -L` right after listed it). A
/// RELATED flow is judged by its master (its helper picks the freedom table's row), so a
/// missed master turned a legitimate transfer's verdict into "master gone, classified from
/// its tuples" with a wrong source-port freedom. A master the kernel no longer has stays
/// out, and that verdict is then true. A replay asks nothing (`Source::recheck`).
///
/// Also what a kernel-filtered dump relies on (`cli::pushdown`): its RELATED flows come
/// without their masters.
pub fn fetch_missing_masters(
    source: &mut dyn Source,
    store: &mut Store,
    now: u32,
) -> Result<MasterFetch> {
    let missing = store.missing_masters();
    let mut out = MasterFetch {
        missing: missing.len(),
        ..MasterFetch::default()
    };
    if missing.is_empty() {
        return Ok(out);
    }
    let mut found = Vec::new();
    source.recheck(&missing, &mut |item| {
        if let Item::Recheck(m) = item {
            match decode::message(m) {
                // A vanished master comes back as a synthesized DELETE: nothing to add.
                Ok((Message::Record { event, record }, _)) if event != Event::Destroy => {
                    found.push(record);
                }
                Ok(_) => {}
                Err(_) => out.decode_errors += 1,
            }
        }
    })?;
    out.fetched = found.len();
    for record in found {
        store.apply(Event::Dump, record, now);
    }
    Ok(out)
}

/// Controls a running engine.
pub struct EngineHandle {
    tx: Sender<Command>,
    clock: Clock,
    thread: Option<JoinHandle<()>>,
}

impl EngineHandle {
    /// Send a command. Fails only when the engine thread has ended (a replay that reached
    /// its end, a fatal error, or after `Stop`).
    pub fn send(&self, cmd: Command) -> Result<()> {
        self.tx
            .send(cmd)
            .map_err(|_| Error::Other("the engine has stopped".into()))
    }

    /// Store time now (seconds since the engine started; a replay: recorded time).
    pub fn now(&self) -> u32 {
        self.clock.now()
    }

    /// The engine's clock, for owners that keep time themselves.
    pub fn clock(&self) -> Clock {
        self.clock.clone()
    }

    /// Stop the engine and wait for its thread (at most one dump or poll interval).
    pub fn stop(mut self) {
        let _ = self.tx.send(Command::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for EngineHandle {
    fn drop(&mut self) {
        // Never block a caller's drop on a dump in progress: the thread ends on its own
        // when it next looks at its commands or finds the event receiver gone.
        let _ = self.tx.send(Command::Stop);
    }
}

/// The engine itself.
pub struct Engine;

impl Engine {
    /// Start the engine thread on `source`. The receiver yields events in order; it is
    /// disconnected when the engine ends (Stop, a fatal error, the end of a replay, or
    /// after the initial dump when `opts.follow` is false).
    pub fn spawn(
        source: Box<dyn Source>,
        opts: Options,
    ) -> Result<(Receiver<EngineEvent>, EngineHandle)> {
        let (ev_tx, ev_rx) = mpsc::channel();
        let (cmd_tx, cmd_rx) = mpsc::channel();
        let clock = source.clock();
        let thread = std::thread::Builder::new()
            .name("ctscope-engine".into())
            .spawn(move || run(source, opts, ev_tx, cmd_rx))
            .map_err(|e| Error::Io {
                op: "spawn engine thread",
                source: e,
            })?;
        Ok((
            ev_rx,
            EngineHandle {
                tx: cmd_tx,
                clock,
                thread: Some(thread),
            },
        ))
    }
}

/// How long one poll may wait: the latency of commands (actions, the dashboard's counter
/// requests) while no event arrives. 100 ms is not felt after a confirmation, and waking
/// ten times a second instead of fifty keeps an idle dashboard's engine near 0.2% of a
/// core (it was 1% at 20 ms).
const POLL: Duration = Duration::from_millis(100);
/// Re-checks done between two polls, so a large backlog never starves events.
const RECHECK_CHUNK: usize = 2000;
/// Records received further apart than this go in separate batches (and get separate
/// `Received` times).
const BATCH_SPAN_NS: u64 = 1_000_000;
/// Deletes done between two polls: each causes a DESTROY event that must be read before
/// the event buffer overflows, and events read between slices tell the plan which entries
/// were re-created meanwhile.
const ACTION_CHUNK: usize = 256;

/// The engine thread's state outside the source.
struct Pump {
    tx: Sender<EngineEvent>,
    record: Option<record::Writer>,
    clock: Clock,
    /// The clock's zero in ns since the Unix epoch (`Source::start_epoch_ns`).
    epoch: u64,
    batch: Vec<(Event, Record)>,
    /// The batch holds re-check answers (`Rechecked`), not kernel records.
    batch_recheck: bool,
    /// Clock time (ns) the batch's first record was received.
    batch_at: u64,
    batch_max: usize,
    decode_errors: u64,
    overrun: bool,
    /// Dumped entries of the last complete dump (sizes the background interval).
    dumped: usize,
    /// Dumps completed so far: every dump after the first is announced as a resync.
    dumps: u64,
    /// An overrun was seen since the last dump began.
    overrun_since_dump: bool,
    counting: usize,
    /// The flows dump in progress, if any: its progress, sent after each batch.
    progress: Option<Progress>,
    /// The kernel's count read just before the next dump (`Source::expected_flows`).
    expected: Option<u64>,
    /// The receiver is gone or the recording failed: stop.
    done: bool,
    /// Plans being executed, in order: (plan, next target, report so far). Every decoded
    /// record is shown to their `lives` first, so an entry destroyed or re-created after
    /// the plan was made is skipped.
    plans: VecDeque<(Plan, usize, Report)>,
    /// Records decoded so far (each goes to the owner, in this order).
    delivered: u64,
    /// The last event records as (position, event, identity, life): a plan made by the
    /// owner from the first `Plan::after` records is shown the rest, which may still be
    /// on their way to the owner when it confirms.
    recent: VecDeque<(u64, Event, actions::Entry, actions::Life)>,
    /// `delivered` when events were last lost (ENOBUFS): a plan made before that may
    /// have missed a DESTROY or NEW.
    lost_at: Option<u64>,
}

/// Event records kept in `Pump::recent` (~1 MiB): about a second of a heavy event rate.
const RECENT_SIGHTINGS: usize = 16_384;

impl Pump {
    /// Queue a plan, first showing it what it has not seen (see `Plan::after`).
    fn queue(&mut self, mut plan: Plan) {
        if let Some(after) = plan.after {
            let oldest = self.recent.front().map_or(self.delivered, |r| r.0);
            // Dump records are not kept; any event record the plan missed and we no
            // longer hold makes its fates incomplete.
            if after < oldest && self.recent.len() >= RECENT_SIGHTINGS {
                plan.lives.lost = true;
            }
            if self.lost_at.is_some_and(|at| after <= at) {
                plan.lives.lost = true;
            }
            for &(at, event, entry, life) in &self.recent {
                if at >= after {
                    plan.lives.observe_one(event, entry, life);
                }
            }
        }
        self.plans.push_back((plan, 0, Report::default()));
    }
}

impl Pump {
    fn send(&mut self, ev: EngineEvent) {
        if self.tx.send(ev).is_err() {
            self.done = true;
        }
    }

    fn write(&mut self, kind: record::Kind, bytes: &[u8]) {
        if let Some(w) = self.record.as_mut() {
            if let Err(e) = w.frame(self.clock.now_ns(), kind, bytes) {
                self.record = None;
                self.send(EngineEvent::Fatal(e.to_string()));
                self.done = true;
            }
        }
    }

    /// Decode one message into the batch. `dumped` entries of one dump share the time of
    /// the batch they start (a dump is one snapshot); events and re-check answers are
    /// batched only within `BATCH_SPAN_NS`, so each is dated by when it arrived.
    fn decode(&mut self, m: &[u8], recheck: bool, dumped: bool) {
        match decode::message(m) {
            Ok((Message::Record { event, record }, _)) => {
                // Dump entries share their batch's time: the clock is read per message only
                // for events, not a million times during a dump.
                let at = (!dumped || self.batch.is_empty()).then(|| self.clock.now_ns());
                if !self.batch.is_empty()
                    && (self.batch_recheck != recheck
                        || at.is_some_and(|at| at.saturating_sub(self.batch_at) > BATCH_SPAN_NS))
                {
                    self.flush();
                }
                if self.batch.is_empty() {
                    self.batch_recheck = recheck;
                    self.batch_at = at.unwrap_or_else(|| self.clock.now_ns());
                    if dumped {
                        // A dump fills whole batches: size it once.
                        self.batch.reserve(self.batch_max.min(4096));
                    }
                }
                // Dump records with no plan waiting (a million at start) cost nothing here.
                if event != Event::Dump || !self.plans.is_empty() {
                    let (entry, life) = actions::sighting(&record);
                    for (plan, _, _) in self.plans.iter_mut() {
                        plan.lives.observe_one(event, entry, life);
                    }
                    if event != Event::Dump {
                        if self.recent.len() >= RECENT_SIGHTINGS {
                            self.recent.pop_front();
                        }
                        self.recent.push_back((self.delivered, event, entry, life));
                    }
                }
                self.delivered += 1;
                if let (Some(p), true, Record::Flow(_)) = (&mut self.progress, dumped, &record) {
                    p.received += 1;
                }
                self.batch.push((event, record));
                if self.batch.len() >= self.batch_max {
                    self.flush();
                }
            }
            Ok(_) => {}
            Err(_) => self.decode_errors += 1,
        }
    }

    fn flush(&mut self) {
        if !self.batch.is_empty() {
            // Grown on demand: a batch cut short by time must not pin a 4096-slot buffer.
            let b = std::mem::take(&mut self.batch);
            self.send(EngineEvent::Received(self.epoch + self.batch_at));
            self.send(if self.batch_recheck {
                EngineEvent::Rechecked(b)
            } else {
                EngineEvent::Records(b)
            });
            if let Some(p) = self.progress {
                self.send(EngineEvent::DumpProgress(p));
            }
        }
        if self.decode_errors > 0 {
            let n = std::mem::take(&mut self.decode_errors);
            self.send(EngineEvent::DecodeErrors(n));
        }
        if let Some(w) = self.record.as_mut() {
            if let Err(e) = w.flush() {
                self.record = None;
                self.send(EngineEvent::Fatal(e.to_string()));
                self.done = true;
            }
        }
    }

    /// Date what is sent next (a dump boundary or an overrun) by the clock now.
    fn stamp(&mut self) {
        let at = self.epoch + self.clock.now_ns();
        self.send(EngineEvent::Received(at));
    }

    fn item(&mut self, item: Item<'_>) {
        match item {
            Item::DumpBegin(t) => {
                self.flush();
                self.write(record::Kind::DumpBegin, &[t]);
                self.counting = 0;
                self.stamp();
                if self.dumps > 0 {
                    let why = if std::mem::take(&mut self.overrun_since_dump) {
                        ResyncReason::Overrun
                    } else {
                        ResyncReason::Redump
                    };
                    self.send(EngineEvent::Resync(why));
                }
                self.send(EngineEvent::DumpBegin {
                    flows: t & FLOWS != 0,
                    expects: t & EXPECTS != 0,
                });
                let expected = self.expected.take();
                self.progress = (t & FLOWS != 0).then_some(Progress {
                    received: 0,
                    expected,
                });
                if let Some(p) = self.progress {
                    self.send(EngineEvent::DumpProgress(p));
                }
            }
            Item::DumpMsg(m) => {
                self.write(record::Kind::DumpMsg, m);
                self.counting += 1;
                self.decode(m, false, true);
            }
            Item::DumpEnd(t) => {
                self.flush();
                self.progress = None;
                self.write(record::Kind::DumpEnd, &[t]);
                self.dumped = self.counting;
                self.dumps += 1;
                self.stamp();
                self.send(EngineEvent::DumpEnd {
                    flows: t & FLOWS != 0,
                    expects: t & EXPECTS != 0,
                });
            }
            Item::Event(m) => {
                self.write(record::Kind::EventMsg, m);
                self.decode(m, false, false);
            }
            Item::Recheck(m) => {
                self.write(record::Kind::RecheckMsg, m);
                self.decode(m, true, false);
            }
            Item::Overrun => {
                self.flush();
                // Lost events: the re-dump that follows still shows re-created entries
                // whose id or start time differ.
                for (plan, _, _) in self.plans.iter_mut() {
                    plan.lives.lost = true;
                }
                self.lost_at = Some(self.delivered);
                self.write(record::Kind::Overrun, &[]);
                self.overrun = true;
                self.overrun_since_dump = true;
                self.stamp();
                self.send(EngineEvent::Overrun);
            }
            Item::Recent(b) => {
                // After the records before it, dated by the clock (a replay: its frame).
                self.flush();
                self.write(record::Kind::Recent, b);
                self.stamp();
                let ev = match crate::recent::recorded::decode(b) {
                    Ok(s) => EngineEvent::Recent(Box::new(s)),
                    Err(e) => EngineEvent::RecentDamaged(format!(
                        "the recency snapshot at {:.3} s is damaged and skipped: {e}",
                        self.clock.now_ns() as f64 / 1e9
                    )),
                };
                self.send(ev);
            }
        }
    }
}

/// One full dump of both tables through the pump ([`pipelined_dump`]: the pump runs on
/// its own thread); returns its duration. Decoding inline took the receiving thread
/// another ~0.4 µs an entry: a million-entry dump reached the dashboard ~0.3 s after the
/// kernel had sent it.
fn full_dump(source: &mut dyn Source, pump: &mut Pump) -> Result<Duration> {
    let t0 = Instant::now();
    // One small request before the dump: the gauge's denominator.
    pump.expected = source.expected_flows();
    pipelined_dump(source, "ctscope-decode", |item| pump.item(item))?;
    pump.flush();
    Ok(t0.elapsed())
}

/// Dump both tables from `source`, handing every item to `sink` in order, on a scoped
/// thread named `name`: this thread stays in the source's `recv` (where the kernel spends
/// ~1.4 µs an entry building messages) and only copies each item's bytes into a
/// [`DumpChunk`], so on two cores the items are decoded while the kernel builds the next
/// ones. The headless load and the engine's dumps both go through here.
fn pipelined_dump(
    source: &mut dyn Source,
    name: &str,
    mut sink: impl FnMut(Item<'_>) + Send,
) -> Result<()> {
    use std::sync::mpsc::sync_channel;

    std::thread::scope(|scope| {
        let (tx, rx) = sync_channel::<DumpChunk>(16);
        // Chunks the sink is done with come back, so a dump allocates a few, not one per
        // 256 KiB.
        let (back_tx, back_rx) = mpsc::channel::<DumpChunk>();
        let decoder = std::thread::Builder::new()
            .name(name.into())
            .spawn_scoped(scope, move || {
                for mut chunk in rx {
                    chunk.replay(&mut sink);
                    chunk.clear();
                    let _ = back_tx.send(chunk);
                }
            })
            .map_err(|e| Error::Io {
                op: "spawn the dump decoder thread",
                source: e,
            })?;
        let mut cur = DumpChunk::default();
        let send = |cur: &mut DumpChunk| {
            let next = back_rx.try_recv().unwrap_or_default();
            // The decoder only stops early by panicking, which `join` reports below.
            let _ = tx.send(std::mem::replace(cur, next));
        };
        let dumped = source.dump(FLOWS | EXPECTS, &mut |item| {
            let boundary = matches!(item, Item::DumpBegin(_) | Item::DumpEnd(_));
            cur.push(item);
            // Boundaries go at once: the owner shows the gauge from DumpBegin, and
            // DumpEnd is what it waits for.
            if boundary || cur.bytes.len() >= DumpChunk::BYTES {
                send(&mut cur);
            }
        });
        if !cur.items.is_empty() {
            send(&mut cur);
        }
        drop(tx);
        decoder
            .join()
            .map_err(|_| Error::Other("the dump decoder thread panicked".into()))?;
        dumped.map(|_| ())
    })
}

/// Dump items on their way from the receiving thread to the decoding one: their bytes end
/// to end, and per item its kind and length.
#[derive(Default)]
struct DumpChunk {
    bytes: Vec<u8>,
    items: Vec<(ItemKind, u32)>,
}

#[derive(Debug, Clone, Copy)]
enum ItemKind {
    DumpBegin,
    DumpMsg,
    DumpEnd,
    Event,
    Recheck,
    Overrun,
    Recent,
}

impl DumpChunk {
    /// Bytes of messages per chunk: about a thousand entries, ~1.5 ms of a dump.
    const BYTES: usize = 256 * 1024;

    fn push(&mut self, item: Item<'_>) {
        let (kind, bytes): (ItemKind, &[u8]) = match item {
            Item::DumpBegin(t) => (ItemKind::DumpBegin, &[t]),
            Item::DumpMsg(m) => (ItemKind::DumpMsg, m),
            Item::DumpEnd(t) => (ItemKind::DumpEnd, &[t]),
            Item::Event(m) => (ItemKind::Event, m),
            Item::Recheck(m) => (ItemKind::Recheck, m),
            Item::Overrun => (ItemKind::Overrun, &[]),
            Item::Recent(b) => (ItemKind::Recent, b),
        };
        if self.bytes.capacity() == 0 {
            self.bytes.reserve(Self::BYTES + 64 * 1024);
        }
        self.bytes.extend_from_slice(bytes);
        self.items.push((kind, bytes.len() as u32));
    }

    /// Hand every item to `sink`, in the order pushed.
    fn replay(&self, sink: &mut dyn FnMut(Item<'_>)) {
        let mut at = 0;
        for &(kind, len) in &self.items {
            let b = &self.bytes[at..at + len as usize];
            at += len as usize;
            sink(match kind {
                ItemKind::DumpBegin => Item::DumpBegin(b[0]),
                ItemKind::DumpMsg => Item::DumpMsg(b),
                ItemKind::DumpEnd => Item::DumpEnd(b[0]),
                ItemKind::Event => Item::Event(b),
                ItemKind::Recheck => Item::Recheck(b),
                ItemKind::Overrun => Item::Overrun,
                ItemKind::Recent => Item::Recent(b),
            });
        }
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.items.clear();
    }
}

fn run(mut source: Box<dyn Source>, opts: Options, tx: Sender<EngineEvent>, rx: Receiver<Command>) {
    let mut pump = Pump {
        tx,
        record: opts.record,
        clock: source.clock(),
        epoch: source.start_epoch_ns(),
        batch: Vec::new(),
        batch_recheck: false,
        batch_at: 0,
        batch_max: opts.batch.max(1),
        decode_errors: 0,
        overrun: false,
        dumped: 0,
        dumps: 0,
        overrun_since_dump: false,
        counting: 0,
        progress: None,
        expected: None,
        done: false,
        plans: VecDeque::new(),
        delivered: 0,
        recent: VecDeque::new(),
        lost_at: None,
    };
    let live = source.is_live();
    let mut last_dump_cost;
    let mut last_dump_at = Instant::now();
    let mut rechecks: VecDeque<FlowKey> = VecDeque::new();
    let mut pending: HashSet<FlowKey> = HashSet::new();

    match full_dump(&mut *source, &mut pump) {
        Ok(cost) => last_dump_cost = cost,
        Err(e) => {
            pump.send(EngineEvent::Fatal(e.to_string()));
            return;
        }
    }
    if !opts.follow {
        pump.flush();
        return;
    }
    while !pump.done {
        // Commands first: they are the user waiting.
        loop {
            match rx.try_recv() {
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => {
                    pump.flush();
                    return;
                }
                Ok(Command::Execute(plan)) => match source.conn() {
                    Ok(_) => pump.queue(*plan),
                    Err(e) => {
                        let report = Report::refused_all(&plan, e.to_string());
                        pump.send(EngineEvent::ActionDone(report));
                    }
                },
                Ok(Command::Recheck(keys)) => {
                    if live {
                        for k in keys {
                            if pending.insert(k) {
                                rechecks.push_back(k);
                            }
                        }
                    }
                }
                Ok(Command::Redump) => {
                    if live {
                        pump.overrun = true; // same path as a resync, without counting one
                    }
                }
                Ok(Command::Stats) => {
                    let answer = source
                        .conn()
                        .and_then(read_stats)
                        .map(Box::new)
                        .map_err(|e| e.to_string());
                    pump.send(EngineEvent::Stats(answer));
                }
                Ok(Command::Replay(c)) => {
                    if let Err(e) = source.control(c) {
                        pump.send(EngineEvent::Fatal(e.to_string()));
                        return;
                    }
                }
                Err(TryRecvError::Empty) => break,
            }
        }
        let redump_due = live
            && last_dump_at.elapsed()
                >= redump_interval(pump.dumped, last_dump_cost, opts.min_redump);
        // A replay's overrun is followed by the recorded re-dump: never dump on our own.
        // After an overrun, queued events predate the dump about to run: they are dropped
        // (and with them the kernel's congestion state, so later losses are reported again).
        let resync = std::mem::take(&mut pump.overrun) && live;
        if redump_due && !resync {
            // Apply what is already queued first, so no event older than the dump is
            // applied after it (a stale UPDATE would briefly undo the dump's newer state).
            for _ in 0..64 {
                match source.poll(Duration::ZERO, pump.batch_max, &mut |item| pump.item(item)) {
                    Ok(Poll::Items) => pump.flush(),
                    Ok(_) => break,
                    Err(e) => {
                        pump.send(EngineEvent::Fatal(e.to_string()));
                        return;
                    }
                }
            }
        }
        // An overrun seen while draining is handled by the same dump.
        let resync = resync || (std::mem::take(&mut pump.overrun) && live);
        if resync || redump_due {
            if resync {
                if let Err(e) = source.discard_events() {
                    pump.send(EngineEvent::Fatal(e.to_string()));
                    return;
                }
            }
            match full_dump(&mut *source, &mut pump) {
                Ok(cost) => {
                    last_dump_cost = cost;
                    last_dump_at = Instant::now();
                }
                Err(e) => {
                    pump.send(EngineEvent::Fatal(e.to_string()));
                    return;
                }
            }
        }
        // Read what already arrived, so the plan knows of entries destroyed or re-created
        // since it was made; then one slice of it, then back to reading events.
        if !pump.plans.is_empty() {
            for _ in 0..64 {
                match source.poll(Duration::ZERO, pump.batch_max, &mut |item| pump.item(item)) {
                    Ok(Poll::Items) => pump.flush(),
                    Ok(_) => break,
                    Err(e) => {
                        pump.send(EngineEvent::Fatal(e.to_string()));
                        return;
                    }
                }
            }
        }
        if let Some((plan, next, report)) = pump.plans.front_mut() {
            let lists = plan.targets.iter().any(|t| t.is_list());
            let done = if lists {
                // Recency lists are procfs and nft, not ctnetlink: run in the namespace.
                *report = match source.netns() {
                    Some(ns) => crate::recent::act::execute(&ns, plan),
                    None => Report::refused_all(plan, source::replay_refusal().to_string()),
                };
                true
            } else {
                match source.conn() {
                    Ok(conn) => {
                        if plan.lives.lost {
                            // Lost events: ask the kernel about each flow before deleting it.
                            actions::verify_slice(conn, plan, *next, ACTION_CHUNK);
                        }
                        *next = actions::execute_some(conn, plan, *next, ACTION_CHUNK, report);
                        *next >= plan.targets.len()
                    }
                    Err(e) => {
                        *report = Report::refused_all(plan, e.to_string());
                        true
                    }
                }
            };
            if done {
                if let Some((_, _, report)) = pump.plans.pop_front() {
                    pump.send(EngineEvent::ActionDone(report));
                }
            }
        }
        if !rechecks.is_empty() {
            let n = rechecks.len().min(RECHECK_CHUNK);
            let chunk: Vec<FlowKey> = rechecks.drain(..n).collect();
            for k in &chunk {
                pending.remove(k);
            }
            if let Err(e) = source.recheck(&chunk, &mut |item| pump.item(item)) {
                pump.send(EngineEvent::Fatal(e.to_string()));
                return;
            }
            pump.flush();
        }
        // With work queued, only look at what already arrived; otherwise wait a little.
        let wait = if pump.plans.is_empty() && rechecks.is_empty() {
            POLL
        } else {
            Duration::ZERO
        };
        match source.poll(wait, pump.batch_max, &mut |item| pump.item(item)) {
            Ok(Poll::Items) => pump.flush(),
            Ok(Poll::Timeout) => {}
            Ok(Poll::End) => {
                pump.flush();
                return;
            }
            Err(e) => {
                pump.flush();
                pump.send(EngineEvent::Fatal(e.to_string()));
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::Target;
    use crate::model::Tuple;

    /// A scripted source: empty dumps, then the scripted poll results, one per call.
    struct Fake {
        live: bool,
        /// What `expected_flows` answers, and the flow messages each dump holds.
        expected: Option<u64>,
        dumped: Vec<Vec<u8>>,
        dumps: std::sync::Arc<std::sync::atomic::AtomicUsize>,
        script: VecDeque<Option<Item<'static>>>,
        start: Instant,
        /// Flows a re-check finds (their messages), and the keys re-checks asked for.
        alive: Vec<(FlowKey, Vec<u8>)>,
        asked: Vec<FlowKey>,
    }

    impl Source for Fake {
        fn dump(&mut self, tables: u8, sink: &mut dyn FnMut(Item<'_>)) -> Result<bool> {
            self.dumps.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            sink(Item::DumpBegin(tables));
            for m in &self.dumped {
                sink(Item::DumpMsg(m));
            }
            sink(Item::DumpEnd(tables));
            Ok(true)
        }
        fn expected_flows(&mut self) -> Option<u64> {
            self.expected
        }
        fn poll(&mut self, _: Duration, _: usize, sink: &mut dyn FnMut(Item<'_>)) -> Result<Poll> {
            match self.script.pop_front() {
                Some(Some(item)) => {
                    sink(item);
                    Ok(Poll::Items)
                }
                Some(None) => Ok(Poll::Timeout),
                None if self.live => {
                    std::thread::sleep(Duration::from_millis(5));
                    Ok(Poll::Timeout)
                }
                None => Ok(Poll::End),
            }
        }
        /// A re-checked flow is found if it is `alive`, else gone.
        fn recheck(&mut self, keys: &[FlowKey], sink: &mut dyn FnMut(Item<'_>)) -> Result<()> {
            for k in keys {
                self.asked.push(*k);
                match self.alive.iter().find(|(a, _)| a == k) {
                    Some((_, m)) => sink(Item::Recheck(m)),
                    None => sink(Item::Recheck(&source::synthetic_destroy(k))),
                }
            }
            Ok(())
        }
        fn conn(&mut self) -> Result<&mut Conn> {
            Err(source::replay_refusal())
        }
        fn clock(&self) -> Clock {
            Clock::Wall(self.start)
        }
        fn is_live(&self) -> bool {
            self.live
        }
    }

    fn fake(
        live: bool,
        script: Vec<Option<Item<'static>>>,
    ) -> (Fake, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
        let dumps = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        (
            Fake {
                live,
                expected: None,
                dumped: Vec::new(),
                dumps: dumps.clone(),
                script: script.into(),
                start: Instant::now(),
                alive: Vec::new(),
                asked: Vec::new(),
            },
            dumps,
        )
    }

    /// A dumped flow's message (`NLM_F_MULTI`, as the kernel sends a dump's entries and
    /// a get's reply), RELATED to `master` if one is given.
    fn dumped_flow(orig: Tuple, master: Option<Tuple>) -> Vec<u8> {
        use crate::abi::*;
        use crate::netlink::request::Request;
        let mut r = Request::new(NFNL_SUBSYS_CTNETLINK, IPCTNL_MSG_CT_NEW, 0, 2);
        r.put_tuple_zoned(CTA_TUPLE_ORIG, &orig, 0);
        r.put_tuple_zoned(CTA_TUPLE_REPLY, &orig.inverted(), 0);
        let mut status = crate::model::flow::status::CONFIRMED;
        if let Some(m) = master {
            r.put_tuple_zoned(CTA_TUPLE_MASTER, &m, 0);
            status |= crate::model::flow::status::EXPECTED;
        }
        r.put_be32(CTA_STATUS, status);
        r.put_be32(CTA_TIMEOUT, 300);
        let mut b = r.finish(0);
        b[6..8].copy_from_slice(&NLM_F_MULTI.to_ne_bytes());
        b
    }

    fn tcp(sport: u16, dport: u16) -> Tuple {
        let mut t = Tuple {
            family: crate::model::Family::Ipv4,
            proto: crate::model::tuple::proto::TCP,
            sport,
            dport,
            ..Tuple::default()
        };
        t.src[..4].copy_from_slice(&[10, 213, 5, 2]);
        t.dst[..4].copy_from_slice(&[10, 213, 5, 1]);
        t
    }

    /// A dump that left out a RELATED flow's master (the kernel's dump is no snapshot):
    /// the load asks the kernel for that master alone and stores it, so the flow is judged
    /// with its master; a master the kernel no longer has stays out.
    #[test]
    fn a_load_fetches_the_masters_its_dump_left_out() {
        let (control, data) = (tcp(46152, 21), tcp(48492, 44461));
        let (mut src, _) = fake(false, Vec::new());
        src.dumped = vec![dumped_flow(data, Some(control))];
        src.alive = vec![(FlowKey::new(0, control), dumped_flow(control, None))];
        let mut store = Store::new();
        load(&mut src, &mut store, 0).unwrap();
        assert_eq!(src.asked, vec![FlowKey::new(0, control)]);
        assert!(store.master_of(&FlowKey::new(0, data)).is_some());
        assert!(store.missing_masters().is_empty());

        // Gone from the kernel too: nothing is added, and the flow's master stays missing.
        let (mut src, _) = fake(false, Vec::new());
        src.dumped = vec![dumped_flow(data, Some(control))];
        let mut store = Store::new();
        load(&mut src, &mut store, 0).unwrap();
        assert_eq!(src.asked.len(), 1);
        assert_eq!(store.flow_count(), 1);

        // A complete dump asks for nothing.
        let (mut src, _) = fake(false, Vec::new());
        src.dumped = vec![dumped_flow(data, Some(control)), dumped_flow(control, None)];
        let mut store = Store::new();
        load(&mut src, &mut store, 0).unwrap();
        assert!(src.asked.is_empty());
        assert_eq!(store.flow_count(), 2);
    }

    fn name(ev: &EngineEvent) -> &'static str {
        match ev {
            EngineEvent::Records(_) => "records",
            EngineEvent::Rechecked(_) => "rechecked",
            EngineEvent::Received(_) => "received",
            EngineEvent::Resync(ResyncReason::Overrun) => "resync-overrun",
            EngineEvent::Resync(ResyncReason::Redump) => "resync-redump",
            EngineEvent::DumpBegin { .. } => "begin",
            EngineEvent::DumpEnd { .. } => "end",
            EngineEvent::DumpProgress(_) => "progress",
            EngineEvent::Overrun => "overrun",
            EngineEvent::DecodeErrors(_) => "decode-errors",
            EngineEvent::ActionDone(_) => "action",
            EngineEvent::Fatal(_) => "fatal",
            EngineEvent::Recent(_) => "recent",
            EngineEvent::RecentDamaged(_) => "recent-damaged",
            EngineEvent::Stats(_) => "stats",
        }
    }

    #[test]
    fn overrun_is_reported_then_resynced_by_a_full_dump() {
        let (src, dumps) = fake(true, vec![None, Some(Item::Overrun)]);
        let (rx, handle) = Engine::spawn(Box::new(src), Options::default()).unwrap();
        let mut seen = Vec::new();
        while seen.len() < 8 {
            let ev = rx
                .recv_timeout(Duration::from_secs(5))
                .expect("engine event");
            if let EngineEvent::DumpBegin { flows, expects } = ev {
                assert!(flows && expects, "both tables are dumped together");
            }
            if !matches!(ev, EngineEvent::Received(_)) {
                seen.push(name(&ev));
            }
        }
        assert_eq!(
            seen,
            [
                "begin",
                "progress",
                "end",
                "overrun",
                "resync-overrun",
                "begin",
                "progress",
                "end"
            ]
        );
        handle.stop();
        assert_eq!(dumps.load(std::sync::atomic::Ordering::SeqCst), 2);
    }

    #[test]
    fn actions_on_a_replay_are_refused_and_the_recording_is_written() {
        let (src, _) = fake(true, vec![]);
        let path =
            std::env::temp_dir().join(format!("ctscope-engine-test-{}.rec", std::process::id()));
        let opts = Options {
            record: Some(record::Writer::create(&path, true).unwrap()),
            ..Options::default()
        };
        let (rx, handle) = Engine::spawn(Box::new(src), opts).unwrap();
        handle
            .send(Command::Execute(Box::new(Plan {
                targets: vec![Target::FlushFlows],
                ..Plan::default()
            })))
            .unwrap();
        let report = loop {
            match rx
                .recv_timeout(Duration::from_secs(5))
                .expect("engine event")
            {
                EngineEvent::ActionDone(r) => break r,
                _ => continue,
            }
        };
        assert_eq!(report.refused, 1);
        assert!(report.to_string().contains("replay"), "{report}");
        handle.stop();
        let mut r = record::Reader::open(&path).unwrap();
        let kinds: Vec<record::Kind> = std::iter::from_fn(|| r.next_frame().unwrap())
            .map(|f| f.kind)
            .collect();
        assert_eq!(kinds, [record::Kind::DumpBegin, record::Kind::DumpEnd]);
        std::fs::remove_file(&path).ok();
    }

    /// A recency-list plan needs a namespace to run in: a recording has none.
    #[test]
    fn list_plans_on_a_replay_are_refused() {
        let (src, _) = fake(true, vec![]);
        let (rx, handle) = Engine::spawn(Box::new(src), Options::default()).unwrap();
        let list = crate::recent::act::ListRef::Xt("seenping".into());
        handle
            .send(Command::Execute(Box::new(Plan {
                targets: vec![Target::ListFlush(list)],
                list_entries: 2,
                ..Plan::default()
            })))
            .unwrap();
        let report = loop {
            match rx
                .recv_timeout(Duration::from_secs(5))
                .expect("engine event")
            {
                EngineEvent::ActionDone(r) => break r,
                _ => continue,
            }
        };
        assert_eq!((report.removed, report.refused), (0, 1));
        assert!(report.to_string().contains("replay"), "{report}");
        handle.stop();
    }

    #[test]
    fn a_replay_ends_the_engine_and_disconnects() {
        let (src, dumps) = fake(false, vec![Some(Item::Overrun)]);
        let (rx, _handle) = Engine::spawn(Box::new(src), Options::default()).unwrap();
        let names: Vec<_> = rx
            .iter()
            .map(|e| name(&e))
            .filter(|n| *n != "received")
            .collect();
        // A replay's overrun is followed by the recorded re-dump, not by a new one.
        assert_eq!(names, ["begin", "progress", "end", "overrun"]);
        assert_eq!(dumps.load(std::sync::atomic::Ordering::SeqCst), 1);
    }

    #[test]
    fn recheck_answers_are_housekeeping_dated_and_recorded_apart_from_events() {
        let (src, _) = fake(true, vec![]);
        let path =
            std::env::temp_dir().join(format!("ctscope-engine-recheck-{}.rec", std::process::id()));
        let opts = Options {
            record: Some(record::Writer::create(&path, false).unwrap()),
            ..Options::default()
        };
        let before = record::now_epoch_ns();
        let (rx, handle) = Engine::spawn(Box::new(src), opts).unwrap();
        let t = crate::model::Tuple {
            proto: crate::model::tuple::proto::UDP,
            sport: 5353,
            ..Default::default()
        };
        handle
            .send(Command::Recheck(vec![FlowKey::of(
                &crate::model::Flow::new(t),
            )]))
            .unwrap();
        let mut last_time = 0;
        let batch = loop {
            match rx
                .recv_timeout(Duration::from_secs(5))
                .expect("engine event")
            {
                EngineEvent::Received(at) => last_time = at,
                EngineEvent::Rechecked(b) => break b,
                EngineEvent::Records(b) => {
                    panic!("a re-check answer came as a kernel record: {b:?}")
                }
                _ => {}
            }
        };
        assert_eq!(batch.len(), 1);
        assert_eq!(batch[0].0, Event::Destroy);
        assert!(last_time >= before && last_time <= record::now_epoch_ns());
        handle.stop();
        let mut r = record::Reader::open(&path).unwrap();
        let kinds: Vec<record::Kind> = std::iter::from_fn(|| r.next_frame().unwrap())
            .map(|f| f.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                record::Kind::DumpBegin,
                record::Kind::DumpEnd,
                record::Kind::RecheckMsg
            ]
        );
        std::fs::remove_file(&path).ok();
    }

    /// A recency snapshot keeps its place among the events: the records before it are
    /// delivered first, it is dated, recorded as its own frame, and a damaged one is one
    /// message that stops nothing.
    #[test]
    fn recency_snapshots_keep_their_place_and_a_damaged_one_stops_nothing() {
        let snap = crate::recent::recorded::encode(
            &crate::recent::Snapshot {
                clock: crate::recent::Clock::fixed(250, 1, std::time::UNIX_EPOCH),
                lists: Ok(Vec::new()),
                sets: Ok(Vec::new()),
                machines: Vec::new(),
                unreadable: Vec::new(),
            },
            None,
        );
        let ev = source::synthetic_destroy(&FlowKey::of(&crate::model::Flow::new(
            crate::model::Tuple::default(),
        )));
        let snap: &'static [u8] = Box::leak(snap.into_boxed_slice());
        let ev: &'static [u8] = Box::leak(ev.into_boxed_slice());
        let (src, _) = fake(
            false,
            vec![
                Some(Item::Event(ev)),
                Some(Item::Recent(snap)),
                Some(Item::Recent(b"{damaged")),
                Some(Item::Event(ev)),
            ],
        );
        let path =
            std::env::temp_dir().join(format!("ctscope-engine-recent-{}.rec", std::process::id()));
        let opts = Options {
            record: Some(record::Writer::create(&path, true).unwrap()),
            ..Options::default()
        };
        let (rx, _handle) = Engine::spawn(Box::new(src), opts).unwrap();
        let mut names = Vec::new();
        let mut damaged = String::new();
        for e in rx.iter() {
            if let EngineEvent::RecentDamaged(m) = &e {
                damaged = m.clone();
            }
            names.push(name(&e));
        }
        assert_eq!(
            names,
            [
                "received",
                "begin",
                "progress",
                "received",
                "end",
                "received",
                "records",
                "received",
                "recent",
                "received",
                "recent-damaged",
                "received",
                "records"
            ]
        );
        assert!(
            damaged.contains("is damaged and skipped") && !damaged.contains('\n'),
            "{damaged}"
        );
        let mut r = record::Reader::open(&path).unwrap();
        let kinds: Vec<record::Kind> = std::iter::from_fn(|| r.next_frame().unwrap())
            .map(|f| f.kind)
            .collect();
        use record::Kind::*;
        assert_eq!(
            kinds,
            [DumpBegin, DumpEnd, EventMsg, Recent, Recent, EventMsg]
        );
        std::fs::remove_file(&path).ok();
    }

    #[test]
    fn a_dump_reports_flows_received_against_the_kernel_count_after_each_batch() {
        let (mut src, _) = fake(false, vec![]);
        let flow = |sport| {
            let t = crate::model::Tuple {
                proto: crate::model::tuple::proto::UDP,
                sport,
                ..Default::default()
            };
            source::synthetic_destroy(&FlowKey::of(&crate::model::Flow::new(t)))
        };
        src.dumped = (1..=5).map(flow).collect();
        src.expected = Some(6);
        let opts = Options {
            batch: 2,
            ..Options::default()
        };
        let (rx, _handle) = Engine::spawn(Box::new(src), opts).unwrap();
        let mut progress = Vec::new();
        let mut records = 0;
        for ev in rx.iter() {
            match ev {
                EngineEvent::DumpProgress(p) => progress.push((p.received, p.expected, records)),
                EngineEvent::Records(b) => records += b.len(),
                _ => {}
            }
        }
        // At the start, then after every batch (of 2, the last of 1): never ahead of the
        // records already sent.
        let want = |r, n| (r, Some(6), n);
        assert_eq!(progress, [want(0, 0), want(2, 2), want(4, 4), want(5, 5)]);
        let p = Progress {
            received: 5,
            expected: Some(4),
        };
        assert_eq!(
            p.ratio(),
            Some(1.0),
            "a moving table never shows more than full"
        );
        assert_eq!(Progress::default().ratio(), None);
    }

    #[test]
    fn redump_interval_adapts_to_table_size() {
        let min = Options::default().min_redump;
        assert_eq!(min, Duration::from_secs(30));
        // Small tables: the floor.
        assert_eq!(redump_interval(0, Duration::ZERO, min), min);
        assert_eq!(redump_interval(20_000, Duration::ZERO, min), min);
        // 1M entries * 3 µs = 3 s of kernel time; 1% budget → 300 s.
        assert_eq!(
            redump_interval(1_000_000, Duration::ZERO, min),
            Duration::from_secs(300)
        );
        // A measured dump slower than the estimate wins.
        assert_eq!(
            redump_interval(1_000_000, Duration::from_secs(5), min),
            Duration::from_secs(500)
        );
        // The budget holds across sizes: cost / interval <= 1%.
        for n in [1usize, 1000, 20_000, 200_000, 5_000_000] {
            let i = redump_interval(n, Duration::ZERO, min);
            let cost = DUMP_COST_PER_ENTRY.as_secs_f64() * n as f64;
            assert!(cost / i.as_secs_f64() <= 0.01 + 1e-9, "{n}");
        }
    }
}
