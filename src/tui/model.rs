//! The seams between the TUI and the rest of ctscope: what the app reads from the store,
//! how engine events are applied, how filters are compiled, where action requests go, and
//! the clock. Every outside input is injected through these so tests drive the real `App`
//! with fakes and no sleeps.
//!
//! Adapters are thin on purpose: `impl Model for Store` only delegates. This module must not
//! hold state of its own or touch the terminal.

use std::time::{Duration, SystemTime};

use crate::actions;
use crate::engine::{self, EngineEvent};
use crate::model::store::{ExpectKey, FlowKey, Stats};
use crate::model::{Event, Record};
use crate::model::{Expectation, Flow, Store};

/// What applying one engine event meant for the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// Nothing visible changed.
    Nothing,
    /// Store content changed (views rebuild when `generation` moved).
    Changed,
    /// A full dump began (the header says so until it ends).
    DumpStarted,
    /// A full dump ended: views rebuild now, whatever the size-based budget says, so the
    /// first complete frame follows the initial dump immediately.
    DumpDone,
    /// An action the app sent finished.
    Report(ActionReport),
    /// The kernel dropped events (ENOBUFS); the engine re-dumps. Shown, never silent.
    Overrun,
    /// Messages that could not be decoded (count since the last report).
    DecodeErrors(u64),
    /// The engine stopped; the message is shown and the app keeps the last state.
    Fatal(String),
}

/// The outcome of one delete or flush, as the status line reports it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ActionReport {
    pub removed: u64,
    pub already_gone: u64,
    pub refused: u64,
    /// Flushes done and the first error (e.g. the privilege hint), for the status line.
    pub note: Option<String>,
}

/// Read access to the store, plus applying engine events. Implemented by `Store` (with the
/// engine's events) and by test fakes.
pub trait Model {
    /// The engine's event type, delivered on the app's channel.
    type Event: Send + 'static;

    /// Apply one engine event at store time `now`.
    fn apply(&mut self, event: Self::Event, now: u32) -> Applied;
    /// Changes whenever content changes; views rebuild only then.
    fn generation(&self) -> u64;
    fn stats(&self) -> Stats;
    fn flow_count(&self) -> usize;
    fn expect_count(&self) -> usize;
    fn flow(&self, key: &FlowKey) -> Option<&Flow>;
    fn expectation(&self, key: &ExpectKey) -> Option<&Expectation>;
    /// Visit every flow (no particular order); a callback keeps the trait object-safe and
    /// allocation-free at a million flows.
    fn for_each_flow(&self, f: &mut dyn FnMut(&Flow));
    fn for_each_expectation(&self, f: &mut dyn FnMut(&Expectation));
    fn master_of(&self, key: &FlowKey) -> Option<&Flow>;
    /// The expectation that created a RELATED flow (kept after the kernel dropped it).
    fn expectation_of(&self, key: &FlowKey) -> Option<&Expectation>;
    fn related_of(&self, master: &FlowKey) -> Vec<FlowKey>;
    fn expectations_of(&self, master: &FlowKey) -> Vec<ExpectKey>;
    /// Show every record in `event` to `seen`, before `apply` merges it: an open
    /// confirmation learns this way which of its frozen entries were destroyed or
    /// re-created. Models without kernel records see nothing.
    fn observe(&self, event: &Self::Event, seen: &mut dyn FnMut(Event, &Record)) {
        let _ = (event, seen);
    }
    /// Housekeeping once a second (expire expectations, ask for re-checks). Returns
    /// whether the content changed.
    fn tick(&mut self, now: u32) -> bool {
        let _ = now;
        false
    }
    /// The store behind this model, for the helper-risk assessor (`crate::risk` reads the
    /// store's linkage, exactly as the JSON views do). `None`: no risk is shown.
    fn store(&self) -> Option<&Store> {
        None
    }
}

/// The store itself, fed by the engine's events (`engine::apply`). Housekeeping that needs
/// the engine (re-checks) lives in `live::LiveModel`.
impl Model for Store {
    type Event = EngineEvent;

    fn apply(&mut self, event: EngineEvent, now: u32) -> Applied {
        match event {
            EngineEvent::ActionDone(r) => Applied::Report(ActionReport::from(&r)),
            EngineEvent::Fatal(m) => Applied::Fatal(m),
            EngineEvent::DecodeErrors(n) => Applied::DecodeErrors(n),
            EngineEvent::Overrun => {
                engine::apply(self, EngineEvent::Overrun, now);
                Applied::Overrun
            }
            ev @ EngineEvent::DumpBegin { .. } => {
                engine::apply(self, ev, now);
                Applied::DumpStarted
            }
            ev @ EngineEvent::DumpEnd { .. } => {
                engine::apply(self, ev, now);
                Applied::DumpDone
            }
            ev => {
                if engine::apply(self, ev, now) {
                    Applied::Changed
                } else {
                    Applied::Nothing
                }
            }
        }
    }
    fn observe(&self, event: &EngineEvent, seen: &mut dyn FnMut(Event, &Record)) {
        observe_records(event, seen)
    }
    fn generation(&self) -> u64 {
        Store::generation(self)
    }
    fn stats(&self) -> Stats {
        Store::stats(self)
    }
    fn flow_count(&self) -> usize {
        Store::flow_count(self)
    }
    fn expect_count(&self) -> usize {
        Store::expect_count(self)
    }
    fn flow(&self, key: &FlowKey) -> Option<&Flow> {
        Store::flow(self, key)
    }
    fn expectation(&self, key: &ExpectKey) -> Option<&Expectation> {
        Store::expectation(self, key)
    }
    fn for_each_flow(&self, f: &mut dyn FnMut(&Flow)) {
        self.flows().for_each(f)
    }
    fn for_each_expectation(&self, f: &mut dyn FnMut(&Expectation)) {
        self.expectations().for_each(f)
    }
    fn master_of(&self, key: &FlowKey) -> Option<&Flow> {
        Store::master_of(self, key)
    }
    fn expectation_of(&self, key: &FlowKey) -> Option<&Expectation> {
        Store::expectation_of(self, key)
    }
    fn related_of(&self, master: &FlowKey) -> Vec<FlowKey> {
        Store::related_of(self, master)
    }
    fn expectations_of(&self, master: &FlowKey) -> Vec<ExpectKey> {
        Store::expectations_of(self, master)
    }
    fn store(&self) -> Option<&Store> {
        Some(self)
    }
}

/// The records of an engine event, in order.
pub fn observe_records(event: &EngineEvent, seen: &mut dyn FnMut(Event, &Record)) {
    if let EngineEvent::Records(batch) = event {
        for (e, r) in batch {
            seen(*e, r);
        }
    }
}

impl From<&actions::Report> for ActionReport {
    fn from(r: &actions::Report) -> ActionReport {
        let mut note = Vec::new();
        if r.recreated > 0 {
            note.push(format!("re-created since planning {} (kept)", r.recreated));
        }
        if !r.flushed.is_empty() {
            note.push(format!("flushed {}", r.flushed.join(", ")));
        }
        if let Some(e) = r.errors.first() {
            note.push(e.replace('\n', " "));
        }
        ActionReport {
            removed: r.removed as u64,
            already_gone: r.already_gone as u64,
            refused: r.refused as u64,
            note: (!note.is_empty()).then(|| note.join("; ")),
        }
    }
}

/// A compiled filter expression, as the filter module provides it.
pub trait RowFilter {
    fn match_flow(&self, flow: &Flow, now: u32) -> bool;
    fn match_expect(&self, e: &Expectation, now: u32) -> bool;
}

/// A parse error from the filter language: the bad span is `pos..pos+len` (in chars).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterFault {
    pub pos: usize,
    pub len: usize,
    pub message: String,
}

/// Compiles the filter bar's text (the filter module's `Filter::parse` in production).
pub type FilterFactory = Box<dyn Fn(&str) -> Result<Box<dyn RowFilter>, FilterFault>>;

/// A request to the engine: a destructive one the user confirmed, which the engine
/// executes (through the lead's adapter to `actions::Plan`), or a replay clock control.
/// The TUI never touches sockets or files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Steer a replay's clock (`engine::Command::Replay`); no confirmation, nothing removed.
    Replay(ReplayRequest),
    /// Delete these flows (the selected one, or a master's RELATED children).
    DeleteFlows(Vec<FlowKey>),
    /// Delete these expectations.
    DeleteExpects(Vec<ExpectKey>),
    /// Delete the flows that matched `filter` (the filter language; `None`: every flow)
    /// when the dialog opened: exactly `flows` (the user's own SSH session left out
    /// unless they included it). Flows created since are not touched.
    FlushFlows {
        filter: Option<String>,
        flows: Vec<FlowKey>,
    },
    /// Flush the expectations of one helper (`CTA_EXPECT_HELP_NAME` on delete).
    FlushHelperExpects(String),
    /// Delete every flow and expectation shown when the dialog opened: exactly these.
    FlushAll {
        flows: Vec<FlowKey>,
        expects: Vec<ExpectKey>,
    },
}

/// What a replay viewer asks of the replay's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayRequest {
    /// Hold the clock, or let it run again.
    TogglePause,
    /// While held: play the next recorded frame.
    Step,
    /// Play the rest of the recording at once.
    End,
    /// Play at this pace from here on.
    Speed(ReplaySpeed),
}

/// The replay paces the dashboard offers (the `x` key cycles them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReplaySpeed {
    /// The recorded pace.
    #[default]
    Normal,
    /// Ten times the recorded pace.
    Ten,
    /// As fast as the recording can be read (`--fast`).
    Fast,
}

impl ReplaySpeed {
    /// The next pace in the `x` cycle: 1x, 10x, fast, 1x…
    pub fn next(self) -> ReplaySpeed {
        match self {
            ReplaySpeed::Normal => ReplaySpeed::Ten,
            ReplaySpeed::Ten => ReplaySpeed::Fast,
            ReplaySpeed::Fast => ReplaySpeed::Normal,
        }
    }

    /// How the header spells it.
    pub fn label(self) -> &'static str {
        match self {
            ReplaySpeed::Normal => "1x",
            ReplaySpeed::Ten => "10x",
            ReplaySpeed::Fast => "fast",
        }
    }

    /// The engine's pace for it.
    pub fn engine(self) -> engine::Speed {
        match self {
            ReplaySpeed::Normal => engine::Speed::RealTime(1.0),
            ReplaySpeed::Ten => engine::Speed::RealTime(10.0),
            ReplaySpeed::Fast => engine::Speed::Fast,
        }
    }
}

/// Where confirmed requests go: in production `live::PlanSink` turns them into an
/// `actions::Plan` over the store and sends it to the engine. The model is passed so a
/// sink can resolve keys; an `Err` is shown in the status line.
pub trait CommandSink<M: ?Sized> {
    fn send(&mut self, model: &M, request: Request) -> Result<(), String>;
}

impl<M: ?Sized, F: FnMut(&M, Request) -> Result<(), String>> CommandSink<M> for F {
    fn send(&mut self, model: &M, request: Request) -> Result<(), String> {
        self(model, request)
    }
}

/// The app's clock: store seconds (the same clock the store's `seen` fields use) and the
/// wall time of store second zero, for absolute times in the detail pane.
pub trait Clock {
    fn now(&self) -> u32;
    fn epoch(&self) -> SystemTime;
    fn wall(&self, store_secs: u32) -> SystemTime {
        self.epoch() + Duration::from_secs(u64::from(store_secs))
    }
}

/// Wall-clock seconds since `epoch`.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock {
    pub epoch: SystemTime,
}

impl Clock for SystemClock {
    fn now(&self) -> u32 {
        SystemTime::now()
            .duration_since(self.epoch)
            .map(|d| d.as_secs().min(u64::from(u32::MAX)) as u32)
            .unwrap_or(0)
    }
    fn epoch(&self) -> SystemTime {
        self.epoch
    }
}
