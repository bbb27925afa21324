//! The application state and its one entry for input: `App::handle(AppEvent)`.
//!
//! The main thread owns the `App` and is the store's only writer (`worker::StoreWriter`:
//! engine records are applied at once, or queued while a build reads the store and
//! applied at the next turn). Events arrive on one channel; handling one only changes
//! state and sets dirty flags; `App::prepare` asks the view builder (`views`) for what is
//! stale (store generation, filter, sort or screen changed) and swaps in what it finished,
//! and `ui::draw` turns only the visible window into rows. Nothing here waits for a build.
//! This module must not touch the terminal or sockets: confirmed plans go to the injected
//! `Commands`, time comes from the injected `Clock`.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ratatui::backend::Backend;
use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use ratatui::Terminal;

use crate::actions::{self, Entry, Fate, Plan, Target};
use crate::engine::{EngineEvent, Progress};
use crate::filter::Filter;
use crate::model::recent::RecentState;
use crate::model::stale::StateTimeouts;
use crate::model::store::{ExpectKey, FlowKey, Stats};
use crate::model::{Flow, HelperId, Store};

use super::counters::KernelCounters;
use super::inputs::{
    self, ActionReport, Applied, Clock, Commands, FilterFault, ReplayRequest, ReplaySpeed, Request,
};
use super::journal::Journal;
use super::keymap::{self, Action, Context};
pub use super::popups::confirm::Confirm;
pub use super::popups::filter::FilterBar;
use super::risk::{Assess, FindingRow, RiskCache};
use super::screens::{
    self, chains, expectations, findings, flows, BuiltRows, Ctx, Facts, Jump, Screen, Source,
};
use super::text;
use super::theme::{Theme, ThemeKind};
use super::views::{self, Built, ViewKey, Views};
use super::worker::{self, Pacing, StoreWriter};

/// What screens read, borrowed field by field from an app, so it can stand beside a
/// mutable borrow of the app's screens.
macro_rules! ctx {
    ($app:expr, $store:expr) => {
        Ctx {
            store: $store,
            risk: &$app.risk,
            theme: &$app.theme,
            now: $app.now,
            clock: $app.clock.as_ref(),
            filter: $app.filter.as_ref().map(|x| &*x.filter),
            summary: &$app.summary,
            recent: &$app.recent,
            replay: $app.opts.recorded_start.is_some(),
            conntrack_max: $app.opts.conntrack_max,
            facts: $app.facts,
            counters: &$app.counters,
        }
    };
}

/// Everything that reaches the app, on one channel.
#[derive(Debug)]
pub enum AppEvent {
    Key(KeyEvent),
    Resize(u16, u16),
    /// Once a second: countdowns move, events/s is measured, big views may rebuild.
    Tick,
    Engine(EngineEvent),
    /// The engine's channel closed: a replay reached its end (or the engine stopped).
    /// The dashboard stays open on the last state and says so.
    SourceEnded,
    /// SIGINT, SIGTERM or SIGHUP arrived: leave cleanly.
    Signal(i32),
    /// The view builder finished a build (`views`): swap it in.
    Built,
}

/// The user's own SSH session (`SSH_CONNECTION`): its flow is left out of flushes unless
/// explicitly included. The actions module owns the matching rule.
pub use crate::actions::SshSession;

/// Settings the lead passes in from the command line and the system.
#[derive(Debug, Clone)]
pub struct TuiOptions {
    /// Shown in the header (`--netns NAME`, or a replay's file name).
    pub namespace: Option<String>,
    /// `/proc/sys/net/netfilter/nf_conntrack_max` of the namespace, for the gauge.
    pub conntrack_max: Option<u64>,
    /// `/proc/sys/net/netfilter/nf_conntrack_tcp_loose`, for the flush warning.
    pub tcp_loose: Option<bool>,
    /// `/proc/sys/net/netfilter/nf_conntrack_expect_max`, for the expectation gauge.
    pub expect_max: Option<u64>,
    /// The namespace's per-state timeouts (`nf_conntrack_*_timeout_*`): what "idle" means
    /// for the stale key, the header's stale counts and `stale` filter terms. A replay
    /// uses the kernel defaults.
    pub timeouts: StateTimeouts,
    /// Ask the engine for the kernel's per-CPU counters every tick (the live table; a
    /// recording holds none).
    pub kernel_stats: bool,
    /// `--read-only`: every delete and flush key is removed.
    pub read_only: bool,
    pub theme: ThemeKind,
    /// The admin's SSH session (from the process tree, else `SSH_CONNECTION`).
    pub ssh: Option<SshSession>,
    /// With no session known: the sockets sshd listens on in the namespace shown. Every
    /// flow to one of them is left out of actions unless included (`i`).
    pub sshd: Vec<crate::ssh::Listener>,
    /// Interval of `AppEvent::Tick` in `run`.
    pub tick: Duration,
    /// For a replay: when the recording started. Absolute times count from it (the
    /// clock's epoch), and the end of the recording is reported as "replay ended".
    pub recorded_start: Option<std::time::SystemTime>,
    /// For a replay: the pace it starts at (`--fast`, else the recorded pace).
    pub replay_speed: ReplaySpeed,
}

impl Default for TuiOptions {
    fn default() -> Self {
        TuiOptions {
            namespace: None,
            conntrack_max: None,
            tcp_loose: None,
            expect_max: None,
            timeouts: StateTimeouts::default(),
            kernel_stats: false,
            read_only: false,
            theme: ThemeKind::Dark,
            ssh: None,
            sshd: Vec::new(),
            tick: Duration::from_secs(1),
            recorded_start: None,
            replay_speed: ReplaySpeed::Normal,
        }
    }
}

/// Severity of the status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusKind {
    Info,
    Ok,
    Warn,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub kind: StatusKind,
    pub text: String,
}

/// The active filter: its text (shown, and passed to flush requests) and compiled form.
pub struct ActiveFilter {
    pub text: String,
    /// Shared with the row builds that run on the view builder.
    pub filter: Arc<Filter>,
}

/// What covers the tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    None,
    Help,
    Confirm(Box<Confirm>),
}

/// Header numbers, recomputed when the store changes (also while the view is paused).
#[derive(Debug, Clone, Default)]
pub struct Summary {
    pub flows: usize,
    pub expects: usize,
    pub related: usize,
    /// Masters with expectations or RELATED children (the chains screen's trees).
    pub chains: usize,
    /// `(helper, flows, expectations)`, by name.
    pub helpers: Vec<(&'static str, usize, usize)>,
    /// Stale entries (`model::stale`) as `(helper, flows, expectations)`, by name; `-` for
    /// RELATED orphans whose helper is not known.
    pub stale: Vec<(&'static str, usize, usize)>,
    /// Store second the stale counts were judged at (staleness moves with time alone).
    pub judged_at: u32,
    pub stats: Stats,
    pub built: Option<u64>,
}

impl Summary {
    /// Whether any entry's stale verdict can change with time alone: expectations, flows
    /// with a helper, RELATED flows (`model::stale`). Without one, a still table needs no
    /// re-judging.
    pub fn moves_with_time(&self) -> bool {
        self.related > 0 || self.expects > 0 || self.helpers.iter().any(|h| h.1 > 0)
    }
}

/// Measurements of the last frame, for tests and the perf budget.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameStats {
    /// Rows handed to the table widget (the visible window, never the whole table).
    pub table_rows: usize,
    /// Height of the table body, used for paging.
    pub table_height: usize,
    pub frames: u64,
}

/// A replay's clock as the viewer set it: the header shows it with the position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayState {
    pub speed: ReplaySpeed,
    /// The replay clock is held (`p`); distinct from `paused`, which freezes the view.
    pub held: bool,
}

/// The application.
pub struct App {
    /// The store, fed by the engine's events on the app's channel; shared with the view
    /// builder, which reads it. Read it with `store.read()`.
    pub store: StoreWriter,
    /// The view builder: screen rows, summary, risk and the expired-flow list are
    /// built there.
    views: Views,
    /// The flows the engine's records touched (a view sorted by key refines its rows
    /// from them), and how far into it the store surely is (nothing queued before it).
    journal: Journal,
    /// Missing masters already asked for since the last dump ended (`RiskCache::missing_masters`).
    masters_asked: HashSet<FlowKey>,
    applied_pos: u64,
    /// Recency state beside the store (lists, sets, knock progress): the Recent screen's.
    pub(crate) recent: Arc<RecentState>,
    /// When the engine's last batch was received (ns since the epoch): dates snapshots.
    received: u64,
    /// Records applied from the engine so far: a plan says up to where it saw them
    /// (`Plan::after`), and the engine shows it the rest.
    applied: u64,
    pub(crate) opts: TuiOptions,
    pub(crate) clock: Box<dyn Clock>,
    commands: Box<dyn Commands>,
    pub(crate) theme: Theme,
    /// The screens, in tab order (`screens::all`).
    pub(crate) screens: Vec<Box<dyn Screen>>,
    /// Index of the current screen.
    pub(crate) tab: usize,
    /// Assessments of a recent store generation (badges, findings, detail), shared with
    /// the row builds that sort by Risk.
    pub(crate) risk: Arc<RiskCache>,
    /// Locked only by risk builds on the view builder's thread.
    assessor: Option<Arc<Mutex<Box<dyn Assess>>>>,
    /// The engine's channel closed (a replay reached its end).
    pub(crate) ended: bool,
    /// Why the engine stopped, when it stopped on an error (a damaged recording: the
    /// message names the file and the byte offset). Shown in the header and the status
    /// line, and the dashboard's exit is a failure (`failure`).
    pub(crate) fatal: Option<String>,
    pub(crate) filter: Option<ActiveFilter>,
    pub(crate) bar: Option<FilterBar>,
    pub(crate) overlay: Overlay,
    pub(crate) detail: bool,
    pub(crate) paused: bool,
    /// A replay's clock as the viewer last set it (`None` on the live table).
    pub(crate) replay: Option<ReplayState>,
    pub(crate) status: Option<Status>,
    pub(crate) summary: Summary,
    pub(crate) now: u32,
    /// What `stale` and `age` terms and the stale key read (thresholds, the namespace's
    /// timeouts, the wall time of `now`).
    pub(crate) facts: Facts,
    /// The kernel's per-CPU counters as rates (header, Top).
    pub(crate) counters: KernelCounters,
    pub(crate) rate: f64,
    pub(crate) decode_errors: u64,
    pub(crate) frame: FrameStats,
    jump_back: Option<FlowKey>,
    /// Frozen entries left out at the last confirmation as (destroyed, re-created) since
    /// the dialog opened, added to the result line of the report that follows.
    skipped: Option<(usize, usize)>,
    /// A full dump is in progress (shown in the header).
    pub(crate) dumping: bool,
    /// The first dump is streaming: a screen shows its first rows only, not every step
    /// of the load (later dumps refresh a table already shown, which views follow).
    loading: bool,
    /// A dump has ended, or the store came loaded.
    dumped: bool,
    /// The first dump ended and no summary of the whole table is in yet: the header's
    /// entry counts still follow the store (`prepare`), or the complete view would show
    /// the count of the dump's last frame until the summary's pass came back.
    counts_follow: bool,
    /// Buffers for the first complete view were asked for (`Screen::warm`): what it did
    /// not take is released once it is in.
    warmed: bool,
    /// How far the dump in progress is (`EngineEvent::DumpProgress`), for the header.
    pub(crate) progress: Option<Progress>,
    /// When the tick last asked for the expired-flow list, and what the last one cost.
    expired_at: u32,
    expired_cost: Duration,
    /// Store second from which the next expiry pass can find something: the soonest
    /// timeout the last pass saw, lowered by every flow a record set since (`Store::expiry`).
    expired_due: u32,
    /// The soonest timeout of flows recorded since the pass in flight was asked for: its
    /// scan may have been too early to see them.
    expired_since_ask: u32,
    expiry_passes: u64,
    /// What the last summary build cost (the stale re-judge's pace on a still table).
    summary_cost: Duration,
    /// Rows built while the risk verdicts were older, per screen: swapped in when a risk
    /// build catches up (`risk_behind`).
    held: Vec<Option<(BuiltRows, u64)>>,
    /// The screen whose rows were last asked for: a switch asks for a fresh spec.
    shown: Option<usize>,
    /// A jump waiting for its screen's rows: the entry, and the screen to go back to if
    /// the rows do not hold it.
    want: Option<(Entry, usize)>,
    rate_mark: (u32, u64),
    quit: bool,
    dirty: bool,
    /// The store moved since the last frame (`data_moved`).
    moved: bool,
    rows_built: u64,
}

impl App {
    /// The app over `store` (holding the initial load, or empty: events fill it), with
    /// the clock and the command sender of its `Inputs`.
    pub fn new(
        store: Store,
        opts: TuiOptions,
        clock: Box<dyn Clock>,
        commands: Box<dyn Commands>,
    ) -> App {
        let now = clock.now();
        let replay = opts.recorded_start.map(|_| ReplayState {
            speed: opts.replay_speed,
            held: false,
        });
        let events = store.stats().events;
        let facts = Facts {
            timeouts: opts.timeouts,
            wall_ns: wall_ns(clock.as_ref(), now, opts.recorded_start.is_some()),
            ..Facts::default()
        };
        // A store handed in full (tests, benchmarks) counts as loaded.
        let store_loaded = store.flow_count() > 0 || store.expect_count() > 0;
        let all = screens::all();
        let store = StoreWriter::new(store);
        // Like `thread::spawn`, which panics when the system cannot start a thread.
        let views = Views::spawn(store.shared(), Pacing::default())
            .expect("cannot start the view builder thread");
        App {
            store,
            views,
            journal: Journal::default(),
            masters_asked: HashSet::new(),
            applied_pos: 0,
            recent: Arc::default(),
            received: 0,
            applied: 0,
            theme: Theme::new(opts.theme),
            opts,
            clock,
            commands,
            held: all.iter().map(|_| None).collect(),
            screens: all,
            tab: 0,
            risk: Arc::default(),
            assessor: None,
            ended: false,
            fatal: None,
            filter: None,
            bar: None,
            overlay: Overlay::None,
            detail: false,
            paused: false,
            replay,
            status: None,
            summary: Summary::default(),
            now,
            facts,
            counters: KernelCounters::default(),
            rate: 0.0,
            decode_errors: 0,
            frame: FrameStats::default(),
            jump_back: None,
            skipped: None,
            dumping: false,
            loading: false,
            dumped: store_loaded,
            counts_follow: false,
            warmed: false,
            progress: None,
            expired_at: 0,
            expired_cost: Duration::ZERO,
            expired_due: 0,
            expired_since_ask: u32::MAX,
            expiry_passes: 0,
            summary_cost: Duration::ZERO,
            shown: None,
            want: None,
            rate_mark: (now, events),
            quit: false,
            dirty: true,
            moved: false,
            rows_built: 0,
        }
    }

    /// Show helper risk from `assessor` (built once by the caller: `risk::Assessor` in
    /// production). Assessments are recomputed only when the store's generation moves.
    pub fn with_assessor(mut self, assessor: Box<dyn Assess>) -> App {
        self.assessor = Some(Arc::new(Mutex::new(assessor)));
        self.risk = Arc::default();
        self.views.stale(ViewKey::Risk);
        self.dirty = true;
        self
    }

    /// Pace the view builder's data-driven rebuilds with `pacing` instead of the default
    /// (tests: no gap; benchmarks). Restarts the builder; call it before the first frame.
    pub fn with_pacing(mut self, pacing: Pacing) -> App {
        self.views = Views::spawn(self.store.shared(), pacing)
            .expect("cannot start the view builder thread");
        self
    }

    /// Call `wake` (from the view builder's thread) whenever a build is ready, so the
    /// main loop wakes to swap it in: `run` sends `AppEvent::Built` on the app's channel.
    pub fn on_built(&self, wake: impl Fn() + Send + Sync + 'static) {
        self.views.on_wake(wake);
    }

    /// Apply queued store updates, swap in finished builds and ask for the stale ones
    /// until no build is out, waiting up to `timeout` in all. Returns whether it got
    /// there. For tests and benchmarks, which assert on views after `handle`; the main
    /// loop never waits for a build.
    pub fn settle(&mut self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        loop {
            while !self.store.flush() {
                if Instant::now() >= end {
                    return false;
                }
                std::thread::yield_now();
            }
            self.prepare();
            if self.views.idle() && self.store.pending() == 0 {
                return true;
            }
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            if let Some(b) = self.views.recv_timeout(left) {
                self.swap_in(b);
            }
        }
    }

    /// Screen rows swapped in so far (tests: what a key cost in builds).
    pub fn rows_built(&self) -> u64 {
        self.rows_built
    }

    /// Expiry passes asked of the view builder so far (tests: a still table costs none).
    pub fn expiry_passes(&self) -> u64 {
        self.expiry_passes
    }

    /// Builds that panicked on the view builder (their views kept the previous rows).
    pub fn failed_builds(&self) -> u64 {
        self.views.failures()
    }

    /// Whether the engine's channel closed (a replay reached its end).
    pub fn source_ended(&self) -> bool {
        self.ended
    }

    /// Findings of the current generation (the header's count).
    pub fn finding_count(&self) -> usize {
        self.risk.count()
    }

    /// Rows of the findings screen, in display order.
    pub fn finding_rows(&self) -> &[FindingRow] {
        &self.screen::<findings::Findings>().view.keys
    }

    /// Wall time of a store second (for absolute times in the detail pane).
    pub fn wall(&self, store_secs: u32) -> std::time::SystemTime {
        self.clock.wall(store_secs)
    }

    pub fn should_quit(&self) -> bool {
        self.quit
    }

    /// Why the engine stopped, if it stopped on an error (e.g. a damaged recording, with
    /// its byte offset); the caller turns it into a failing exit after the terminal is
    /// restored.
    pub fn failure(&self) -> Option<&str> {
        self.fatal.as_deref()
    }

    /// Whether something changed since the last frame that should be drawn now (a key,
    /// a resize, a finished build, a status).
    pub fn needs_draw(&self) -> bool {
        self.dirty
    }

    /// Whether a dump is streaming and the shown screen has no rows yet (nor entries
    /// filtered out): its first rows are what the admin waits for.
    fn awaiting_first_rows(&self) -> bool {
        self.dumping
            && self
                .screens
                .get(self.tab)
                .is_some_and(|s| s.rows().shown() == (0, 0))
    }

    /// Whether the store moved since the last frame: worth a frame soon, but not one per
    /// engine batch (the main loop draws these at most every `tui::DATA_FRAME_GAP`; each
    /// frame also asks the view builder for the builds the change makes due).
    pub fn data_moved(&self) -> bool {
        self.moved
    }

    pub fn frame_stats(&self) -> FrameStats {
        self.frame
    }

    pub fn status(&self) -> Option<&Status> {
        self.status.as_ref()
    }

    /// The current screen's title ("Flows", "Findings"…).
    pub fn tab(&self) -> &'static str {
        self.screens[self.tab].titles().0
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    pub fn filter_text(&self) -> Option<&str> {
        self.filter.as_ref().map(|f| f.text.as_str())
    }

    pub fn overlay(&self) -> &Overlay {
        &self.overlay
    }

    /// The first screen of type `S` in the list.
    fn screen<S: 'static>(&self) -> &S {
        self.screens
            .iter()
            .find_map(|s| s.as_any().downcast_ref::<S>())
            .expect("the screen list holds every screen type")
    }

    /// Row keys of the flows view, in display order.
    pub fn flow_keys(&self) -> &[FlowKey] {
        &self.screen::<flows::Flows>().view.keys
    }

    pub fn selected_flow(&self) -> Option<FlowKey> {
        self.screen::<flows::Flows>().view.selected()
    }

    pub fn selected_expect(&self) -> Option<ExpectKey> {
        self.screen::<expectations::Expectations>().view.selected()
    }

    /// The Recent screen's lines in display order, as text before fitting (tests).
    pub fn recent_lines(&self) -> Vec<String> {
        self.screen::<screens::recent::Recent>().texts()
    }

    /// Recency state as the Recent screen shows it, joined with the store now.
    pub fn recent_view(&self) -> Option<crate::model::recent::RecentView> {
        self.recent.view(&self.store.read())
    }

    pub fn chain_rows(&self) -> &[chains::ChainRow] {
        &self.screen::<chains::Chains>().view.keys
    }

    /// Rows of the Top screen (groups), in display order, as of its last pass.
    pub fn top_rows(&self) -> &[crate::model::top::Row] {
        &self.screen::<screens::top::Top>().rows
    }

    /// The current screen, and what screens read (every other part of the app, and
    /// `store`, read-locked by the caller): split so a screen can change its own state
    /// while reading the store.
    pub(crate) fn split<'a>(&'a mut self, store: &'a Store) -> (&'a mut Box<dyn Screen>, Ctx<'a>) {
        let cx = ctx!(self, store);
        (&mut self.screens[self.tab], cx)
    }

    /// What screens read, for reading only.
    pub(crate) fn ctx<'a>(&'a self, store: &'a Store) -> Ctx<'a> {
        ctx!(self, store)
    }

    /// Handle one event: state changes only; drawing happens later, once.
    pub fn handle(&mut self, ev: AppEvent) {
        self.now = self.clock.now();
        let replay = self.opts.recorded_start.is_some();
        self.facts.wall_ns = wall_ns(self.clock.as_ref(), self.now, replay);
        // Re-check answers change flows as records do: the journal notes both, and the
        // expiry pass is due again by the soonest timeout they set.
        if let AppEvent::Engine(EngineEvent::Records(batch) | EngineEvent::Rechecked(batch)) = &ev {
            let mut soonest = u32::MAX;
            for (event, record) in batch {
                if let crate::model::Record::Flow(f) = record {
                    self.journal.touched(FlowKey::of(f));
                    if *event != crate::model::Event::Destroy {
                        // A record without a timeout (0) makes the pass due at once.
                        soonest = soonest.min(self.now.saturating_add(f.timeout));
                    }
                }
            }
            self.expired_due = self.expired_due.min(soonest);
            self.expired_since_ask = self.expired_since_ask.min(soonest);
        }
        if let AppEvent::Engine(EngineEvent::Records(batch)) = &ev {
            self.applied += batch.len() as u64;
            // Screens that count events (Top's rates) see each record before the store
            // merges it: a DESTROY's group is read from the flow the store still holds.
            // (Queued updates first, when the store is free, so the lookup sees them.)
            self.store.flush();
            let store = self.store.read();
            for screen in &mut self.screens {
                for (event, record) in batch {
                    screen.observe(&store, *event, record, self.now);
                }
            }
            drop(store);
            // An open dialog learns from every record before the store merges it.
            if let Overlay::Confirm(c) = &mut self.overlay {
                for (event, record) in batch {
                    c.plan.lives.observe(*event, record);
                }
            }
        }
        match ev {
            AppEvent::Key(k) => {
                if k.kind == KeyEventKind::Release {
                    return;
                }
                self.on_key(k);
                self.dirty = true;
            }
            AppEvent::Resize(..) => self.dirty = true,
            AppEvent::Tick => {
                let events = self.store.read().stats().events;
                let (t0, e0) = self.rate_mark;
                if self.now > t0 {
                    self.rate = events.saturating_sub(e0) as f64 / f64::from(self.now - t0);
                    self.rate_mark = (self.now, events);
                }
                self.housekeeping();
                self.screens[self.tab].tick(self.now);
                self.dirty = true;
            }
            AppEvent::Engine(EngineEvent::Received(t)) => self.received = t,
            AppEvent::Engine(EngineEvent::Recent(s)) => {
                Arc::make_mut(&mut self.recent).apply(*s, self.received);
                self.recent_moved();
            }
            AppEvent::Engine(EngineEvent::RecentDamaged(m)) => {
                // Nothing else is lost: the replay goes on, the screen says so too.
                self.set_status(StatusKind::Warn, m.clone());
                Arc::make_mut(&mut self.recent).note_damaged(m);
                self.recent_moved();
            }
            AppEvent::Built => {
                while let Some(b) = self.views.try_recv() {
                    self.swap_in(b);
                }
            }
            AppEvent::Engine(e) => match self.apply(e) {
                Applied::Nothing => {}
                // The store moved: what shows it (the rows, the header) changes when a build
                // is swapped in, or for the visible rows' own fields at the next frame, which
                // the loop draws at its data pace (`data_moved`), not at every batch.
                Applied::Changed => {
                    self.moved = true;
                    // Except the first rows of a dump, which the admin is waiting for: the
                    // frame (and with it the rows' build) goes at once, not up to a data
                    // gap (100 ms) later.
                    if self.awaiting_first_rows() {
                        self.dirty = true;
                    }
                }
                Applied::DumpStarted => {
                    self.dumping = true;
                    self.loading = !self.dumped;
                    self.progress = None;
                    self.dirty = true;
                }
                Applied::DumpDone => {
                    // Builds yield to keys from here on, rows or not (`accept_rows`).
                    self.views.yield_to_keys();
                    // A master missing after this dump is asked for again.
                    self.masters_asked.clear();
                    self.dumping = false;
                    let first = std::mem::take(&mut self.loading);
                    self.counts_follow |= first;
                    self.dumped = true;
                    self.progress = None;
                    // The first complete view follows the dump at once, not at the pace
                    // of data-driven rebuilds. A summary asked for before this point
                    // counted a table still coming in: it is never handed out. A later
                    // dump (background or resync) that changed the store moved its
                    // generation, and the views follow at the data pace; one that changed
                    // nothing rebuilds nothing.
                    if first {
                        self.views.respec(ViewKey::Summary);
                        self.views.stale(ViewKey::Risk);
                        self.views.stale(ViewKey::Screen(self.tab));
                    }
                    self.dirty = true;
                }
                Applied::Report(r) => self.report(r),
                Applied::Overrun => {
                    // The resync count lives in the header; stats may move without the
                    // store's generation moving.
                    self.views.again(ViewKey::Summary);
                    self.set_status(
                        StatusKind::Warn,
                        "kernel dropped events (ENOBUFS): re-dumping to resync".into(),
                    );
                }
                Applied::Stats(r) => self.dirty |= self.counters.reading(self.now, r),
                Applied::DecodeErrors(n) => {
                    self.decode_errors += n;
                    self.dirty = true;
                }
                Applied::Fatal(m) => {
                    let what = if self.opts.recorded_start.is_some() {
                        "recording damaged"
                    } else {
                        "engine stopped"
                    };
                    self.set_status(StatusKind::Error, format!("{what}: {m} (q quits)"));
                    self.fatal = Some(m);
                }
            },
            AppEvent::SourceEnded => {
                self.ended = true;
                if self.fatal.is_some() {
                    // Keep the error on screen: a damaged recording did not simply end.
                    self.dirty = true;
                    return;
                }
                let text = if self.opts.recorded_start.is_some() {
                    "replay ended: the last state stays on screen (q quits)"
                } else {
                    "the engine stopped: the last state stays on screen (q quits)"
                };
                self.set_status(StatusKind::Info, text.into());
            }
            AppEvent::Signal(_) => self.quit = true,
        }
    }

    /// Apply an engine event to the store (now, or queued behind a build that reads it)
    /// and say what it means for the UI, from the event itself (`inputs::meaning`): the
    /// store's answer may come a turn later. A progress report only moves the gauge, and
    /// the kernel's counters only the header's rates.
    fn apply(&mut self, e: EngineEvent) -> Applied {
        let e = match e {
            EngineEvent::DumpProgress(p) => {
                if let (0, Some(n)) = (p.received, p.expected) {
                    // Size the store for the table once, as the headless load does:
                    // growing by doubling copies the slab and rehashes the index ~20
                    // times on the way to a million flows.
                    let n = usize::try_from(n).unwrap_or(usize::MAX);
                    self.store.update(move |s| {
                        s.reserve_flows((n + n / 16).saturating_sub(s.flow_count()));
                    });
                    // And the buffers of the complete view that follows the first dump,
                    // written while it streams (`scratch`).
                    if self.loading {
                        self.screens[self.tab].warm(n.saturating_add(n / 16));
                        self.warmed = true;
                    }
                }
                self.progress = Some(p);
                // The gauge moves with the store: at the data pace (`data_moved`), not a
                // frame per engine batch (~250 frames for a million-entry dump).
                self.moved = true;
                return Applied::Nothing;
            }
            // The kernel's counters are the header's, never the store's.
            EngineEvent::Stats(r) => return Applied::Stats(r),
            e => e,
        };
        let meaning = inputs::meaning(&e);
        if matches!(
            e,
            EngineEvent::DumpBegin { .. } | EngineEvent::DumpEnd { .. } | EngineEvent::Overrun
        ) {
            // Flows change with no record to say which (a dump's sweep, an overrun's
            // resync): no view is refined across this point (`engine::apply` lists what
            // each event does to the store).
            self.journal.forget();
        }
        let now = self.now;
        if self.store.update(move |s| {
            inputs::apply(s, e, now);
        }) {
            self.applied_pos = self.journal.pos();
        }
        meaning
    }

    /// A recency snapshot came (or a damaged one): screens that show it rebuild as after
    /// a store change.
    fn recent_moved(&mut self) {
        for (j, s) in self.screens.iter().enumerate() {
            if s.reads_recent() {
                self.views.again(ViewKey::Screen(j));
            }
        }
        self.dirty = true;
    }

    /// Once a second (`engine::tick`): expire expectations, and ask the engine to re-check
    /// flows whose timeout passed without a DESTROY (pre-existing flows under
    /// `nf_conntrack_events=2`). A finished engine simply has nothing to ask.
    fn housekeeping(&mut self) {
        let now = self.now;
        self.store.update(move |s| {
            s.expire_expectations_with(now, &mut |_| {});
        });
        // The list is a pass over every flow: the view builder makes it (`swap_in` sends it),
        // every second on a small table, less often where the pass costs more, and not
        // before a timeout can have run out (a still table of long timeouts: never). Not
        // during the first dump either: the flows it brings have fresh timeouts, and a pass
        // over the growing table would take CPU the dump needs (~10 ms at 700,000 flows).
        if now
            >= self
                .expired_at
                .saturating_add(quiet_every(self.expired_cost, 1))
            && now >= self.expired_due
            && !self.loading
        {
            self.expired_at = now;
            self.expired_since_ask = u32::MAX;
            self.expiry_passes += 1;
            self.views.stale(ViewKey::Expired);
            let gen = self.store.read().generation();
            self.views
                .ask(ViewKey::Expired, gen, false, || views::expired_job(now));
        }
        // Staleness moves with time alone: the header's stale counts are re-judged now and
        // then on a quiet table too, if it holds anything whose verdict can move.
        let rejudge = quiet_every(self.summary_cost, STALE_EVERY);
        if self.summary.moves_with_time() && now >= self.summary.judged_at.saturating_add(rejudge) {
            self.views.again(ViewKey::Summary);
        }
        if self.opts.kernel_stats && !self.ended {
            let _ = self.commands.send(Request::Stats);
        }
    }

    fn report(&mut self, r: ActionReport) {
        let kind = if r.refused > 0 {
            StatusKind::Warn
        } else {
            StatusKind::Ok
        };
        let (gone, recreated) = self.skipped.take().unwrap_or((0, 0));
        let mut text = format!(
            "removed {}, already gone {}, refused {}",
            r.removed,
            r.already_gone + gone as u64,
            r.refused
        );
        if recreated > 0 {
            text.push_str(&format!(
                ", re-created since the dialog opened {recreated} (kept)"
            ));
        }
        if let Some(n) = &r.note {
            text.push_str("; ");
            text.push_str(n);
        }
        self.set_status(kind, text);
    }

    /// Status lines can quote outside strings (helper names in flush results, kernel
    /// errors), so they are escaped here for every caller.
    fn set_status(&mut self, kind: StatusKind, text: String) {
        let text = match crate::escape::escape(&text) {
            std::borrow::Cow::Borrowed(_) => text,
            std::borrow::Cow::Owned(o) => o,
        };
        self.status = Some(Status { kind, text });
        self.dirty = true;
    }

    /// Apply queued store updates, swap in finished builds and ask the view builder for
    /// what is stale: the header's summary and the risk cache (also while paused: the
    /// header counts findings), and the visible screen's rows (a spec build when its
    /// settings or the screen changed, else a data build when the store moved and the
    /// view is not paused). Never waits: cheap when nothing changed.
    pub fn prepare(&mut self) {
        if self.store.flush() {
            self.applied_pos = self.journal.pos();
        }
        while let Some(b) = self.views.try_recv() {
            self.swap_in(b);
        }
        let gen = self.store.read().generation();
        let (facts, now) = (self.facts, self.now);
        // During the first dump the summary and the verdicts are built once, not at the data
        // pace: on two cores their passes over a growing table took the CPU the kernel's
        // dump needs (~0.1 s of a million-entry start). The header's entry counts, which
        // cost nothing to read, follow the store meanwhile and until the summary of the
        // whole table is in (`counts_follow`); the rest waits for the dump's end (the
        // header says `dumping…`), and rows wait for their verdicts as always.
        if self.loading || self.counts_follow {
            let store = self.store.read();
            (self.summary.flows, self.summary.expects) = (store.flow_count(), store.expect_count());
        }
        // Nothing to assess: an empty cache of this generation.
        if self.assessor.is_none() && self.risk.built != Some(gen) {
            let mut risk = RiskCache::default();
            risk.built = Some(gen);
            self.risk = Arc::new(risk);
        }
        // Requests made together run in the order asked. The verdicts go after the rows,
        // unless the rows are made from them (a sort by Risk, the findings): then the
        // verdicts' scan sees every flow the rows' scan saw, so rows holding a RELATED flow
        // wait for that one build, not for one more; and rows holding none (the end of a
        // million-flow dump, ~15 ms of verdicts) show without waiting for it.
        let risk_first = self.screens[self.tab].build_reads_risk();
        if risk_first {
            self.ask_risk(gen);
        }
        let i = self.tab;
        if self.shown != Some(i) {
            self.shown = Some(i);
            // A screen shown again is rebuilt at once only if its rows are not of this
            // generation: Tab through the screens of a still table costs no builds.
            if self.screens[i].rows().built() != Some(gen) {
                self.views.stale(ViewKey::Screen(i));
            }
        }
        // What the shown screen's rows are complete up to is all the journal must keep.
        if let Some(p) = self.screens[i].rows().journal() {
            self.journal.trim(p.min(self.applied_pos));
        }
        let screen = &self.screens[i];
        // First rows while a dump streams: a view built from no entries at all is rebuilt
        // as soon as the store has some and the last build is back, not at the pace of
        // data builds.
        let nothing_yet = self.awaiting_first_rows() && screen.rows().built() != Some(gen);
        if nothing_yet && !self.views.pending(ViewKey::Screen(i)) {
            self.views.stale(ViewKey::Screen(i));
        }
        // During the first dump the rows stay as first shown (the gauge moves instead):
        // rebuilding a growing table at the data pace would take the core the dump's
        // decoding needs, and the complete view follows the dump's end at once.
        let follow = screen.data_driven() && !self.paused && !self.loading;
        // The job (and its copy of the journal's changes) is made only when a request is
        // sent, not at every frame.
        let (journal, applied_pos) = (&self.journal, self.applied_pos);
        let src = || Source {
            filter: self.filter.as_ref().map(|f| Arc::clone(&f.filter)),
            risk: Arc::clone(&self.risk),
            now: self.now,
            facts: self.facts,
            recent: Arc::clone(&self.recent),
            replay: self.opts.recorded_start.is_some(),
            journal_pos: Some(applied_pos),
            changes: screen
                .rows()
                .journal()
                .and_then(|p| journal.since(p, applied_pos)),
        };
        self.views.ask(ViewKey::Screen(i), gen, follow, || {
            screen.job(&src()).map(Built::Rows)
        });
        if !risk_first {
            self.ask_risk(gen);
        }
        // Asked last: the complete view after a dump needs the rows and the verdicts first
        // (the header's entry counts follow the store until this summary is in).
        self.views
            .ask(ViewKey::Summary, gen, !self.loading, move || {
                views::summary_job(facts, now)
            });
    }

    /// Ask for the verdicts of store generation `gen`, if there is an assessor: at the
    /// data pace, except during the first dump (built once, at its end).
    fn ask_risk(&mut self, gen: u64) {
        if let Some(a) = &self.assessor {
            let a = Arc::clone(a);
            self.views.ask(ViewKey::Risk, gen, !self.loading, move || {
                views::risk_job(a)
            });
        }
    }

    /// Whether rows of screen `i` built from store generation `gen` are newer than the
    /// risk verdicts: then a RELATED flow among them could have none yet.
    fn risk_behind(&self, i: usize, gen: u64) -> bool {
        self.assessor.is_some()
            && self.screens.get(i).is_some_and(|s| s.shows_risk())
            && self.risk.built.is_none_or(|r| r < gen)
    }

    /// Swap in rows of screen `i`, and land a jump that waited for them.
    fn accept_rows(&mut self, i: usize, rows: BuiltRows, gen: u64) {
        if self.warmed && !self.loading {
            self.warmed = false;
            super::scratch::release();
        }
        if let Some(s) = self.screens.get_mut(i) {
            s.accept(rows, gen);
            self.rows_built += 1;
            // The first rows are up: from now on keys come before builds.
            if s.rows().shown() != (0, 0) {
                self.views.yield_to_keys();
            }
        }
        if let Some((e, back)) = self.want.take() {
            if i == self.tab && !self.views.pending(ViewKey::Screen(i)) {
                self.land(e, back);
            } else {
                self.want = Some((e, back));
            }
        }
    }

    /// Take in a finished build.
    fn swap_in(&mut self, b: worker::Built<ViewKey, Built>) {
        match (b.key, b.value) {
            (ViewKey::Screen(i), Built::Rows(rows)) => {
                let gen = b.generation;
                let unseen = self.screens.get(i).is_some_and(|s| s.needs_verdicts(&rows));
                if unseen && self.risk_behind(i, gen) {
                    // Rows newer than the verdicts would show a RELATED flow without one:
                    // they wait for a risk build that has seen them.
                    if i < self.held.len() {
                        self.held[i] = Some((rows, gen));
                    }
                    if !self.views.pending(ViewKey::Risk) {
                        self.views.stale(ViewKey::Risk);
                    }
                    // Asked at the next `prepare`: now, not at the next data frame.
                    self.dirty = true;
                } else {
                    self.accept_rows(i, rows, gen);
                }
            }
            (_, Built::Summary(s)) => {
                self.counts_follow = false;
                self.summary = s;
                self.summary_cost = b.scan + b.finish;
            }
            (_, Built::Risk(r)) => {
                // Masters a dump left out are asked for once each (until the next dump's
                // end): found, they come back as records and the verdicts are redone.
                let ask: Vec<FlowKey> = (r.missing_masters.iter())
                    .filter(|k| self.masters_asked.insert(**k))
                    .copied()
                    .collect();
                if !ask.is_empty() && !self.ended {
                    let _ = self.commands.send(Request::Recheck(ask));
                }
                self.risk = Arc::new(r);
                // Rows that point into the cache follow it (findings); a sort by Risk is
                // redone from the same generation.
                for (j, s) in self.screens.iter_mut().enumerate() {
                    s.risk_rebuilt();
                    if s.rows().built().is_none() {
                        self.views.stale(ViewKey::Screen(j));
                    }
                }
                if self.screens[self.tab].build_reads_risk() {
                    self.views.again(ViewKey::Screen(self.tab));
                }
                for j in 0..self.held.len() {
                    match self.held[j].take() {
                        Some((rows, gen)) if !self.risk_behind(j, gen) => {
                            self.accept_rows(j, rows, gen)
                        }
                        Some(h) => {
                            self.held[j] = Some(h);
                            self.views.stale(ViewKey::Risk);
                        }
                        None => {}
                    }
                }
            }
            (_, Built::Expired((stale, next))) => {
                self.expired_cost = b.scan + b.finish;
                // Flows sent for a re-check are answered with records (which make the pass
                // due by their new timeouts); one left unanswered is asked for again later.
                let retry = if stale.is_empty() {
                    u32::MAX
                } else {
                    self.now.saturating_add(RECHECK_RETRY)
                };
                self.expired_due = next
                    .unwrap_or(u32::MAX)
                    .min(retry)
                    .min(self.expired_since_ask);
                if !stale.is_empty() {
                    let _ = self.commands.send(Request::Recheck(stale));
                }
                return;
            }
            // A key's value is always of its kind.
            _ => {}
        }
        self.dirty = true;
    }

    /// Prepare and draw one frame.
    pub fn draw<B: Backend>(&mut self, terminal: &mut Terminal<B>) -> Result<(), B::Error> {
        self.prepare();
        // A read lock, shared with a build's scan: drawing never waits for a build.
        let shared = self.store.shared();
        let store = worker::read(&shared);
        terminal.draw(|f| super::ui::draw(f, self, &store))?;
        self.dirty = false;
        self.moved = false;
        Ok(())
    }

    fn on_key(&mut self, k: KeyEvent) {
        let ro = self.opts.read_only;
        // Ctrl-C quits from anywhere (raw mode turns SIGINT into this key).
        if k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL) {
            self.quit = true;
            return;
        }
        match &self.overlay {
            Overlay::Help => {
                self.overlay = Overlay::None;
                return;
            }
            Overlay::Confirm(_) => {
                match keymap::lookup(Context::Confirm, &k, ro) {
                    Some(Action::Confirm) => self.confirm(),
                    Some(Action::Cancel) => {
                        self.overlay = Overlay::None;
                        self.set_status(StatusKind::Info, "cancelled: nothing was sent".into());
                    }
                    Some(Action::ToggleSsh) => self.toggle_ssh(),
                    _ => {}
                }
                return;
            }
            Overlay::None => {}
        }
        if self.bar.is_some() {
            self.on_bar_key(k);
            return;
        }
        match keymap::lookup(Context::Main, &k, ro) {
            Some(a) => self.act(a),
            None if keymap::is_disabled(Context::Main, &k, ro) => self.set_status(
                StatusKind::Warn,
                "read-only mode: deletes and flushes are disabled".into(),
            ),
            None => {}
        }
    }

    fn on_bar_key(&mut self, k: KeyEvent) {
        match keymap::lookup(Context::FilterBar, &k, self.opts.read_only) {
            Some(Action::Apply) => return self.apply_filter(),
            Some(Action::Cancel) => {
                self.bar = None;
                return;
            }
            _ => {}
        }
        if let Some(bar) = self.bar.as_mut() {
            bar.edit(&k);
        }
    }

    fn apply_filter(&mut self) {
        let Some(bar) = self.bar.as_mut() else { return };
        let text = bar.text.trim().to_owned();
        if text.is_empty() {
            self.bar = None;
            self.filter = None;
            self.invalidate_views();
            return;
        }
        match Filter::parse(&text) {
            Ok(filter) => {
                self.bar = None;
                self.filter = Some(ActiveFilter {
                    text,
                    filter: Arc::new(filter),
                });
                self.invalidate_views();
            }
            Err(e) => {
                // Keep the bar open with the span marked; the previous filter stays active.
                bar.error = Some(FilterFault::of(&text, e));
            }
        }
    }

    fn invalidate_views(&mut self) {
        for (i, screen) in self.screens.iter_mut().enumerate() {
            screen.invalidate();
            // A build in flight, or rows held for their verdicts, are of the old settings:
            // swapped in now they would show the old order under the new arrow.
            self.views.respec(ViewKey::Screen(i));
            if let Some(h) = self.held.get_mut(i) {
                *h = None;
            }
        }
        self.dirty = true;
    }

    fn page(&self) -> isize {
        self.frame.table_height.max(1) as isize
    }

    fn move_sel(&mut self, delta: isize) {
        self.screens[self.tab].move_by(delta);
    }

    fn act(&mut self, a: Action) {
        match a {
            Action::Quit => self.quit = true,
            Action::Help => self.overlay = Overlay::Help,
            Action::NextTab | Action::PrevTab => {
                let n = self.screens.len();
                let j = if a == Action::NextTab {
                    self.tab + 1
                } else {
                    self.tab + n - 1
                };
                self.tab = j % n;
            }
            Action::Show(i) if i < self.screens.len() => self.tab = i,
            Action::Show(_) => {}
            Action::Detail if self.screens[self.tab].group_filter().is_some() => self.show_group(),
            Action::Detail if !self.screens[self.tab].has_detail() => self.goto_finding(),
            Action::GroupBy => match self.screens[self.tab].group_by() {
                Ok(by) => {
                    self.views.stale(ViewKey::Screen(self.tab));
                    self.set_status(StatusKind::Info, format!("grouped by {by}"));
                }
                Err(why) => self.set_status(StatusKind::Info, why.into()),
            },
            Action::Up => self.move_sel(-1),
            Action::Down => self.move_sel(1),
            Action::PageUp => self.move_sel(-self.page()),
            Action::PageDown => self.move_sel(self.page()),
            Action::Top => self.move_sel(isize::MIN / 2),
            Action::Bottom => self.move_sel(isize::MAX / 2),
            Action::Detail => self.detail = !self.detail,
            Action::Pause => {
                self.paused = !self.paused;
                if !self.paused {
                    self.invalidate_views();
                }
            }
            Action::ReplayPause | Action::ReplayStep | Action::ReplayEnd | Action::ReplaySpeed => {
                self.replay_control(a)
            }
            Action::Filter => {
                self.bar = Some(FilterBar::new(self.filter_text().unwrap_or("")));
            }
            Action::Back => {
                if self.detail {
                    self.detail = false;
                } else if self.filter.is_some() {
                    self.filter = None;
                    self.invalidate_views();
                } else {
                    self.status = None;
                }
            }
            Action::SortNext | Action::SortPrev | Action::SortReverse => self.sort(a),
            Action::JumpMaster => self.jump_master(),
            Action::CycleTheme => {
                self.theme = Theme::new(self.theme.kind.next());
                self.set_status(
                    StatusKind::Info,
                    format!("theme: {}", self.theme.kind.name()),
                );
            }
            Action::Delete
            | Action::DeleteRelated
            | Action::FlushFiltered
            | Action::FlushHelper
            | Action::FlushStale
            | Action::FlushAll => self.ask(a),
            Action::Confirm | Action::Cancel | Action::ToggleSsh | Action::Apply => {}
        }
    }

    fn sort(&mut self, a: Action) {
        match self.screens[self.tab].sort(a) {
            Ok(()) => self.invalidate_views(),
            Err(why) => self.set_status(StatusKind::Info, why.into()),
        }
    }

    /// The master key of a RELATED flow: from its master tuple, else the store's link.
    fn master_key(&self, key: &FlowKey) -> Option<FlowKey> {
        let store = self.store.read();
        let f = store.flow(key)?;
        f.master()
            .map(|t| FlowKey {
                orig: *t,
                ..FlowKey::of(f)
            })
            .or_else(|| store.master_of(key).map(FlowKey::of))
    }

    /// `m`: from a RELATED flow to its master and back, or from an expectation to its
    /// master on the flows screen (`Screen::jump` says which).
    fn jump_master(&mut self) {
        let shared = self.store.shared();
        let store = worker::read(&shared);
        let jump = self.screens[self.tab].jump(&self.ctx(&store));
        drop(store);
        let cur = match jump {
            Jump::Nothing => return,
            Jump::Refuse(why) => return self.set_status(StatusKind::Info, why.into()),
            Jump::ToMaster(mk) => {
                let found = self.show_entry(Entry::Flow(mk));
                if !found {
                    self.set_status(
                        StatusKind::Warn,
                        "the master is not in the flows view".into(),
                    );
                }
                return;
            }
            Jump::Within(cur) => cur,
        };
        let is_related = self.store.read().flow(&cur).is_some_and(Flow::is_related);
        let (target, back) = if is_related {
            match self.master_key(&cur) {
                Some(m) => (m, Some(cur)),
                None => {
                    return self.set_status(
                        StatusKind::Warn,
                        "this RELATED flow's master is not known".into(),
                    )
                }
            }
        } else if let Some(b) = self.jump_back {
            (b, None)
        } else {
            return self.set_status(
                StatusKind::Info,
                "m jumps from a RELATED flow to its master and back".into(),
            );
        };
        if self.screens[self.tab].select(Entry::Flow(target)) {
            self.jump_back = back;
        } else {
            self.set_status(
                StatusKind::Warn,
                "not in the current view (filtered out or gone)".into(),
            );
        }
    }

    /// Switch to the screen that lists `e`'s kind, ask for its rows and select `e`
    /// there. Returns `false` when it is known not to be shown (the screen then stays as
    /// it was). When the rows it has are not current, the selection waits for the build
    /// asked for (`land`), which goes back and says so if `e` is not among them.
    fn show_entry(&mut self, e: Entry) -> bool {
        let Some(i) = self.screens.iter().position(|s| s.lists(&e)) else {
            return false;
        };
        let back = self.tab;
        self.tab = i;
        let current = self.shown == Some(i)
            && self.screens[i].rows().built() == Some(self.store.read().generation());
        self.prepare();
        if self.screens[i].select(e) {
            return true;
        }
        if current {
            self.tab = back;
            return false;
        }
        self.want = Some((e, back));
        true
    }

    /// The rows a jump waited for arrived: select its entry, or go back and say why.
    fn land(&mut self, e: Entry, back: usize) {
        if !self.screens[self.tab].select(e) {
            self.tab = back;
            self.detail = false;
            self.set_status(
                StatusKind::Warn,
                "not in the current view (filtered out or gone)".into(),
            );
        }
    }

    // ----- actions: every destructive request goes through a confirmation -----

    /// The planner's view of this dashboard: the SSH session (or sshd listeners) to spare
    /// and `nf_conntrack_tcp_loose` for the warning.
    fn plan_context(&self, include_ssh: bool) -> actions::Context {
        actions::Context {
            ssh: self.opts.ssh,
            sshd: self.opts.sshd.clone(),
            include_ssh,
            tcp_loose: self.opts.tcp_loose,
        }
    }

    /// Open a confirmation for `plan`, or say there is nothing to remove.
    fn open(&mut self, title: String, plan: Plan, note: Option<&'static str>) {
        if plan.flows == 0
            && plan.expects == 0
            && plan.list_entries == 0
            && plan.spared.is_empty()
            && plan.spared_addrs.is_empty()
        {
            return self.set_status(StatusKind::Info, "nothing to remove".into());
        }
        let c = Confirm {
            title,
            spared: plan.spared.clone(),
            spared_sshd: plan.excluded_sshd > 0,
            include_ssh: false,
            note,
            judged: false,
            plan,
        };
        self.overlay = Overlay::Confirm(Box::new(c));
    }

    /// The entry the selection of the current screen is about.
    fn selected_entry(&self) -> Option<Entry> {
        self.screens[self.tab].selected()
    }

    /// Enter on a group (Top): the flows screen with the group's filter applied, so the
    /// admin sees exactly the flows the group counted.
    fn show_group(&mut self) {
        let expr = match self.group_expr() {
            Some(Ok(expr)) => expr,
            Some(Err(why)) => return self.set_status(StatusKind::Info, why.into()),
            None => return,
        };
        let filter = match Filter::parse(&expr) {
            Ok(f) => f,
            // `Top::filter_of` is tested to parse; a failure here is a bug worth seeing.
            Err(e) => {
                return self.set_status(
                    StatusKind::Error,
                    format!("the group's filter '{expr}' does not parse: {}", e.message),
                )
            }
        };
        self.filter = Some(ActiveFilter {
            text: expr,
            filter: Arc::new(filter),
        });
        self.invalidate_views();
        if let Some(i) = self
            .screens
            .iter()
            .position(|s| s.as_any().is::<flows::Flows>())
        {
            self.tab = i;
        }
        self.detail = false;
    }

    /// The selected group's expression on a screen of groups (Top), joined to the active
    /// filter that Top counted under: exactly the flows the row counted, no more.
    fn group_expr(&self) -> Option<Result<String, &'static str>> {
        let g = self.screens[self.tab].group_filter()?;
        Some(g.map(|expr| match self.filter_text() {
            Some(ft) => format!("({ft}) and ({expr})"),
            None => expr,
        }))
    }

    /// Enter on findings: go to the finding's entry (its screen, selected, detail pane
    /// open). An entry hidden by the filter or gone is reported, and the screen stays.
    fn goto_finding(&mut self) {
        let Some(e) = self.screens[self.tab].goto() else {
            return;
        };
        if self.show_entry(e) {
            self.detail = true;
        } else {
            let why = if self.filter.is_some() {
                "hidden by the filter (Esc clears it)"
            } else {
                "gone from the table"
            };
            self.set_status(StatusKind::Warn, format!("that entry is {why}"));
        }
    }

    /// A destructive key: plan it with `actions::Plan` (the planner the CLI's `delete`
    /// and `flush` use) and open the confirmation that shows that plan.
    fn ask(&mut self, a: Action) {
        let own = {
            let ctx = self.plan_context(false);
            let store = self.store.read();
            self.screens[self.tab].plan(a, &self.ctx(&store), &ctx)
        };
        if let Some(own) = own {
            if self.replay.is_some() {
                return self.set_status(
                    StatusKind::Info,
                    "a recording cannot be changed: list deletes and flushes act on the live lists"
                        .into(),
                );
            }
            return match own {
                Ok((title, plan)) => self.open(title, plan, None),
                Err(why) => self.set_status(StatusKind::Info, why.into()),
            };
        }
        match self.plan_for(a) {
            Ok(Some((title, plan, note))) => {
                self.open(title, plan, note);
                // The stale planner says why each entry goes: the dialog shows its words.
                if let (Action::FlushStale, Overlay::Confirm(c)) = (a, &mut self.overlay) {
                    c.judged = true;
                }
            }
            Ok(None) => {}
            Err(why) => self.set_status(StatusKind::Info, why.into()),
        }
    }

    /// What the key `a` (d, D, F, H, X) would remove, planned: the dialog's title, the
    /// plan and a note. `Ok(None)`: nothing is selected; `Err`: why there is nothing.
    fn plan_for(&self, a: Action) -> Result<Option<Asked>, &'static str> {
        let ctx = self.plan_context(false);
        let guard = self.store.read();
        let store: &Store = &guard;
        Ok(Some(match a {
            Action::Delete => match self.selected_entry() {
                Some(Entry::Expect(k)) => (
                    "Delete the selected expectation".into(),
                    Plan::expectation(store, &k),
                    Some(RELATED_STAY),
                ),
                Some(Entry::Flow(k)) => (
                    "Delete the selected flow".into(),
                    Plan::flow(store, &k, &ctx),
                    None,
                ),
                None => return Ok(None),
            },
            Action::DeleteRelated => {
                let sel = match self.selected_entry() {
                    Some(Entry::Flow(k)) => Some(k),
                    Some(Entry::Expect(k)) => store
                        .expectation(&k)
                        .map(|e| FlowKey::new(e.zone, e.master)),
                    None => None,
                };
                let Some(sel) = sel else { return Ok(None) };
                let master = if store.flow(&sel).is_some_and(Flow::is_related) {
                    self.master_key(&sel).unwrap_or(sel)
                } else {
                    sel
                };
                let plan = Plan::related_of(store, &master, &ctx);
                if plan.flows == 0 && plan.spared.is_empty() {
                    return Err("this master has no RELATED flows");
                }
                let title = format!(
                    "Delete the RELATED children of {}",
                    text::conn(&master.orig)
                );
                (title, plan, None)
            }
            Action::FlushFiltered if self.screens[self.tab].group_filter().is_some() => {
                let expr = match self.group_expr() {
                    Some(Ok(expr)) => expr,
                    Some(Err(why)) => return Err(why),
                    None => return Ok(None),
                };
                let group =
                    Filter::parse(&expr).map_err(|_| "the group's filter does not parse")?;
                let (now, facts) = (self.now, self.facts.context(store));
                let pred = |f: &Flow| group.match_flow_in(f, now, &facts);
                let what = format!("flows of the group '{expr}'");
                let title = format!("Flush the group '{expr}'");
                (title, Plan::flows(store, &pred, &what, &ctx), None)
            }
            Action::FlushStale => {
                let judge = self.facts.judge(store);
                let plan = Plan::stale(&judge, self.now, None, &ctx);
                let title = "Flush stale helper state (reasons listed)".to_owned();
                // No "RELATED flows stay" note: idle RELATED orphans are among its targets.
                (title, plan, None)
            }
            Action::FlushFiltered => {
                let (title, what) = match self.filter_text() {
                    Some(t) => (
                        format!("Flush flows matching '{t}'"),
                        format!("flows matching '{t}' (as shown)"),
                    ),
                    None => (
                        "Flush every flow (no filter is set)".into(),
                        "every flow shown".into(),
                    ),
                };
                let (filter, now) = (self.filter.as_ref().map(|f| &f.filter), self.now);
                let facts = self.facts.context(store);
                let shown = |f: &Flow| filter.is_none_or(|x| x.match_flow_in(f, now, &facts));
                (title, Plan::flows(store, &shown, &what, &ctx), None)
            }
            Action::FlushHelper => {
                let h = self
                    .selected_helper()
                    .ok_or("the selected entry has no helper")?;
                let plan = Plan::flush_helper(store, h.name().unwrap_or("?"));
                let shown = h.shown().unwrap_or("?");
                let title = format!("Flush the expectations of helper '{shown}'");
                (title, plan, Some(RELATED_STAY))
            }
            _ => (
                "Flush everything: every flow and every expectation".into(),
                Plan::each(store, &ctx),
                None,
            ),
        }))
    }

    fn selected_helper(&self) -> Option<HelperId> {
        let store = self.store.read();
        match self.selected_entry()? {
            Entry::Expect(k) => store.expectation(&k).map(|e| e.helper),
            Entry::Flow(k) => {
                let f = store.flow(&k)?;
                [
                    Some(f.helper),
                    store.expectation_of(&k).map(|e| e.helper),
                    store.master_of(&k).map(|m| m.helper),
                ]
                .into_iter()
                .flatten()
                .find(|h| !h.is_none())
            }
        }
        .filter(|h| !h.is_none())
    }

    /// `i` in a confirmation: the same entries planned again with the SSH flow taken in
    /// (or left out again).
    fn toggle_ssh(&mut self) {
        let Overlay::Confirm(c) = &self.overlay else {
            return;
        };
        if c.spared.is_empty() && c.plan.spared_addrs.is_empty() && !c.include_ssh {
            return;
        }
        let include = !c.include_ssh;
        let plan = c
            .plan
            .replan(&self.store.read(), &self.plan_context(include));
        if let Overlay::Confirm(c) = &mut self.overlay {
            c.plan = plan;
            c.include_ssh = include;
        }
    }

    /// Send a replay clock request to the engine and remember what the header shows.
    /// A step while the clock runs holds it first, so the step is visible.
    fn replay_control(&mut self, a: Action) {
        let Some(mut r) = self.replay else {
            return self.set_status(
                StatusKind::Info,
                "not a replay: the live table has no clock to steer".into(),
            );
        };
        if self.ended || self.fatal.is_some() {
            return self.set_status(
                StatusKind::Info,
                "the replay has ended: the last state stays on screen".into(),
            );
        }
        let mut reqs = Vec::with_capacity(2);
        match a {
            Action::ReplayPause => {
                r.held = !r.held;
                reqs.push(ReplayRequest::TogglePause);
            }
            Action::ReplayStep => {
                if !r.held {
                    r.held = true;
                    reqs.push(ReplayRequest::TogglePause);
                }
                reqs.push(ReplayRequest::Step);
            }
            Action::ReplayEnd => {
                r.held = false;
                r.speed = ReplaySpeed::Fast;
                reqs.push(ReplayRequest::End);
            }
            _ => {
                r.speed = r.speed.next();
                reqs.push(ReplayRequest::Speed(r.speed));
            }
        }
        for q in reqs {
            if let Err(e) = self.commands.send(Request::Replay(q)) {
                return self.set_status(StatusKind::Error, format!("replay: {e}"));
            }
        }
        self.replay = Some(r);
    }

    /// `y`: send the confirmation's plan, without the entries an event showed destroyed
    /// or re-created since it was made (they are counted in the status line).
    fn confirm(&mut self) {
        let Overlay::Confirm(c) = std::mem::replace(&mut self.overlay, Overlay::None) else {
            return;
        };
        let mut plan = c.plan;
        let (mut gone, mut recreated) = (0usize, 0usize);
        let lives = &plan.lives;
        plan.targets.retain(|t| {
            let entry = match t {
                Target::Flow { key, .. } => Entry::Flow(*key),
                Target::Expect { key, .. } => Entry::Expect(*key),
                _ => return true,
            };
            match lives.fate(&entry) {
                Some(Fate::Destroyed) => gone += 1,
                Some(Fate::Recreated) => recreated += 1,
                None => return true,
            }
            false
        });
        let (mut flows, mut expects, mut entries) = (0, 0, 0);
        for t in &plan.targets {
            match t {
                Target::Flow { .. } => flows += 1,
                Target::Expect { .. } => expects += 1,
                Target::FlushFlows => flows += plan.flows,
                Target::FlushExpects | Target::FlushHelper(_) => expects += plan.expects,
                Target::ListDelete { .. } => entries += 1,
                Target::ListFlush(_) => entries += plan.list_entries,
            }
        }
        if plan.list.is_some() {
            if entries == 0 {
                return self.set_status(
                    StatusKind::Info,
                    "nothing sent: your SSH address stays in the list (i includes it)".into(),
                );
            }
            if let Err(e) = self.commands.send(Request::Execute(Box::new(plan))) {
                return self.set_status(StatusKind::Error, format!("not sent: {e}"));
            }
            self.skipped = None;
            return self.set_status(
                StatusKind::Info,
                format!("sent: remove {entries} list entr(ies); the next snapshot shows it"),
            );
        }
        let changed = match (gone, recreated) {
            (0, 0) => String::new(),
            (g, r) => format!("; skipped {r} re-created, {g} gone since shown"),
        };
        if flows == 0 && expects == 0 {
            self.skipped = None;
            return self.set_status(
                StatusKind::Info,
                format!("nothing sent: nothing shown is left as it was{changed}"),
            );
        }
        // The engine shows the plan every record after those this app has applied.
        plan.after = Some(self.applied);
        if let Err(e) = self.commands.send(Request::Execute(Box::new(plan))) {
            return self.set_status(StatusKind::Error, format!("not sent: {e}"));
        }
        self.skipped = Some((gone, recreated));
        let what = match (flows, expects) {
            (0, e) => format!("{e} expectation(s)"),
            (f, 0) => format!("{f} flow(s)"),
            (f, e) => format!("{f} flow(s) and {e} expectation(s)"),
        };
        self.set_status(
            StatusKind::Info,
            format!("sent: remove {what}; waiting for the kernel{changed}"),
        );
    }
}

/// Seconds after which flows sent for a re-check and still expired are sent again.
const RECHECK_RETRY: u32 = 10;

/// Seconds between re-judging staleness on a quiet table (the header's stale counts).
const STALE_EVERY: u32 = 5;

/// Share of one core the tick's passes over every flow (the expired list, the stale
/// re-judge) may take on a table where nothing happens: the dashboard idles under 1%.
const QUIET_BUDGET: f64 = 0.005;

/// Seconds between two runs of a tick's pass that cost `cost`: at least `floor`, and
/// enough that it stays within `QUIET_BUDGET` (about 6 s for a 30 ms pass at a million
/// flows).
fn quiet_every(cost: Duration, floor: u32) -> u32 {
    let secs = (cost.as_secs_f64() / QUIET_BUDGET).ceil();
    floor.max(secs.min(f64::from(u32::MAX)) as u32)
}

/// Wall time of store second `now` in ns, for `age` terms: a replay's recorded time; live,
/// `None` (the filter reads the system clock).
fn wall_ns(clock: &dyn Clock, now: u32, replay: bool) -> Option<u64> {
    if !replay {
        return None;
    }
    clock
        .wall(now)
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_nanos() as u64)
}

/// A confirmation to open: its title, the plan it shows and a note.
type Asked = (String, Plan, Option<&'static str>);

/// The confirmation's note for expectation deletes.
const RELATED_STAY: &str = "RELATED flows already created by them stay";

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::model::{Event, Record};
    use crate::tui::screens::testing::{ftp_expect, ftp_master, related, tcp};
    use crate::tui::worker::Job;

    /// An app over `store` with the default options, the system clock, and commands
    /// that go nowhere.
    fn plain_app(store: Store) -> App {
        App::new(
            store,
            TuiOptions::default(),
            Box::new(inputs::SystemClock {
                epoch: std::time::UNIX_EPOCH,
            }),
            Box::new(|_| Ok(())),
        )
    }

    /// The assessor of the embedded helper table, with the default configuration.
    fn embedded_assessor() -> Arc<Mutex<Box<dyn Assess>>> {
        let table = crate::risk::HelperTable::embedded().unwrap();
        Arc::new(Mutex::new(Box::new(crate::risk::Assessor::new(
            table,
            crate::risk::Config::default(),
            None,
        ))))
    }

    fn built(key: ViewKey, value: Built, generation: u64) -> worker::Built<ViewKey, Built> {
        worker::Built {
            key,
            value,
            generation,
            seq: u64::MAX,
            scan: Duration::ZERO,
            finish: Duration::ZERO,
        }
    }

    /// Rows that arrive before the risk verdicts of their generation wait for them: the
    /// flows screen never shows a RELATED flow the cache has not assessed.
    #[test]
    fn rows_newer_than_the_verdicts_wait_for_them() {
        let master = tcp("10.0.0.2", 40000, "10.0.0.1", 21);
        let mut store = Store::new();
        store.apply(Event::New, Record::Flow(ftp_master(master)), 0);
        let e = ftp_expect(master, "10.0.0.2", "10.0.0.1", 3306, 300);
        store.apply(Event::New, Record::Expect(e), 0);
        let data = tcp("10.0.0.2", 40001, "10.0.0.1", 3306);
        store.apply(Event::New, Record::Flow(related(data, master)), 0);
        let gen = store.generation();
        let assessor = embedded_assessor();
        let (rows, risk) = {
            let src = Source {
                now: 1,
                ..Source::default()
            };
            let rows: Job<BuiltRows> = flows::Flows::default().job(&src);
            let rows = rows.run(&store);
            let risk = views::risk_job(Arc::clone(&assessor)).run(&store);
            (rows, risk)
        };
        let mut app = plain_app(store);
        app.assessor = Some(assessor);
        app.swap_in(built(ViewKey::Screen(0), Built::Rows(rows), gen));
        assert!(app.flow_keys().is_empty(), "held until the verdicts come");
        app.swap_in(built(ViewKey::Risk, risk, gen));
        assert_eq!(app.flow_keys().len(), 2);
        let key = FlowKey::of(&related(data, master));
        assert!(app.flow_keys().contains(&key));
        assert!(
            app.risk.flow(&key).is_some(),
            "the RELATED flow has its verdict"
        );
    }

    /// The rows are asked for before the verdicts, so rows without a RELATED flow show
    /// without waiting for them (the end of a dump) and the verdicts see every flow the
    /// rows saw; a screen whose rows are made from the verdicts (the findings) asks for
    /// them first.
    #[test]
    fn rows_are_built_before_the_verdicts_unless_made_from_them() {
        let mut store = Store::new();
        store.apply(
            Event::New,
            Record::Flow(Flow::new(tcp("10.0.0.2", 40000, "10.0.0.1", 80))),
            0,
        );
        let assessor = embedded_assessor();
        let mut app = plain_app(store);
        app.assessor = Some(assessor);
        let first_built = |app: &mut App| {
            app.prepare();
            let b = app.views.recv_timeout(Duration::from_secs(10));
            let key = b.as_ref().map(|b| b.key);
            if let Some(b) = b {
                app.swap_in(b);
            }
            assert!(app.settle(Duration::from_secs(10)));
            key
        };
        assert_eq!(first_built(&mut app), Some(ViewKey::Screen(0)));
        assert_eq!(app.flow_keys().len(), 1);
        let findings = (app.screens.iter())
            .position(|s| s.titles().0 == "Findings")
            .unwrap();
        app.tab = findings;
        app.views.stale(ViewKey::Risk);
        assert_eq!(first_built(&mut app), Some(ViewKey::Risk));
    }

    /// The header's entry counts follow the store through the first dump and past its
    /// end, until the summary of the whole table is in: the complete view never shows the
    /// count of the dump's last frame.
    #[test]
    fn entry_counts_follow_the_store_until_the_summary_of_the_whole_table() {
        let mut app = plain_app(Store::new());
        let flows = |from: u16, n: u16| -> Vec<(Event, Record)> {
            (from..from + n)
                .map(|p| {
                    let t = tcp("10.0.0.2", 40000 + p, "10.0.0.1", 80);
                    (Event::Dump, Record::Flow(Flow::new(t)))
                })
                .collect()
        };
        let (flows_too, expects) = (true, true);
        app.handle(AppEvent::Engine(EngineEvent::DumpBegin {
            flows: flows_too,
            expects,
        }));
        app.handle(AppEvent::Engine(EngineEvent::Records(flows(0, 3))));
        app.prepare();
        assert_eq!(app.summary.flows, 3);
        app.handle(AppEvent::Engine(EngineEvent::Records(flows(3, 2))));
        app.handle(AppEvent::Engine(EngineEvent::DumpEnd {
            flows: flows_too,
            expects,
        }));
        app.prepare();
        assert_eq!(app.summary.flows, 5, "before the summary's pass is back");
        assert!(app.settle(Duration::from_secs(10)));
        assert_eq!(app.summary.flows, 5);
        assert!(!app.counts_follow, "the summary counts from here on");
    }

    /// A background re-dump that finds the table as the store holds it rebuilds no view;
    /// one that sweeps a flow is followed by the views.
    #[test]
    fn a_dump_after_the_first_rebuilds_only_what_it_changed() {
        let mut app = plain_app(Store::new());
        let dump = |app: &mut App, ports: std::ops::Range<u16>| {
            let records = ports
                .map(|p| {
                    let t = tcp("10.0.0.2", 40000 + p, "10.0.0.1", 80);
                    (Event::Dump, Record::Flow(Flow::new(t)))
                })
                .collect();
            let (flows, expects) = (true, true);
            app.handle(AppEvent::Engine(EngineEvent::DumpBegin { flows, expects }));
            app.handle(AppEvent::Engine(EngineEvent::Records(records)));
            app.handle(AppEvent::Engine(EngineEvent::DumpEnd { flows, expects }));
            assert!(app.settle(Duration::from_secs(10)));
        };
        dump(&mut app, 0..5);
        let first = app.rows_built();
        assert!(first > 0);
        dump(&mut app, 0..5);
        assert_eq!(app.rows_built(), first, "the same table: no build");
        dump(&mut app, 0..4);
        assert!(app.rows_built() > first, "a swept flow: the rows follow");
        assert_eq!(app.summary.flows, 4);
    }

    /// A tick's pass runs every second while cheap, and no more than its budget allows
    /// once it costs more (a million flows): the dashboard idles under 1% of a core.
    #[test]
    fn quiet_passes_are_paced_by_their_cost() {
        assert_eq!(quiet_every(Duration::ZERO, 1), 1);
        assert_eq!(quiet_every(Duration::from_millis(2), 1), 1);
        assert_eq!(quiet_every(Duration::from_millis(30), 1), 6);
        assert_eq!(
            quiet_every(Duration::from_millis(10), STALE_EVERY),
            STALE_EVERY
        );
        assert_eq!(quiet_every(Duration::from_secs(1), STALE_EVERY), 200);
    }
}
