//! The dashboard's outside inputs, as one `Inputs` value: the engine's events, terminal
//! events, the clock and where requests go (`Commands`). Every outside input is injected
//! through these so tests drive the real `App` over the real `Store` with fakes and no
//! sleeps. Also what an engine event means for the UI (`apply`).
//!
//! This module must not hold state of its own or touch the terminal.

use std::time::{Duration, SystemTime};

use std::sync::mpsc::Receiver;

use ratatui::crossterm::event::Event as TermEvent;

use crate::actions::{self, Plan};
use crate::engine::{self, Command, EngineEvent, EngineHandle, ReplayControl};
use crate::model::store::FlowKey;
use crate::model::Store;
use crate::model::{Event, Record};

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
    /// The kernel's counters the app asked for (`Request::Stats`), or why not.
    Stats(Result<Box<crate::model::stats::Stats>, String>),
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

/// What one engine event means for the UI, after applying it to `store` at store time
/// `now` (`engine::apply`; reports, decode errors and failures leave the store alone).
pub fn apply(store: &mut Store, event: EngineEvent, now: u32) -> Applied {
    match event {
        EngineEvent::ActionDone(r) => Applied::Report(ActionReport::from(&r)),
        EngineEvent::Fatal(m) => Applied::Fatal(m),
        EngineEvent::DecodeErrors(n) => Applied::DecodeErrors(n),
        EngineEvent::Stats(r) => Applied::Stats(r),
        EngineEvent::Overrun => {
            engine::apply(store, EngineEvent::Overrun, now);
            Applied::Overrun
        }
        ev @ EngineEvent::DumpBegin { .. } => {
            engine::apply(store, ev, now);
            Applied::DumpStarted
        }
        ev @ EngineEvent::DumpEnd { .. } => {
            engine::apply(store, ev, now);
            Applied::DumpDone
        }
        ev => {
            if engine::apply(store, ev, now) {
                Applied::Changed
            } else {
                Applied::Nothing
            }
        }
    }
}

/// What an engine event means for the UI, from the event alone (the app applies it to the
/// store later, possibly queued behind a build): `apply`'s answer, except that any event
/// that may change the store is `Changed` (one frame too many at worst).
pub fn meaning(event: &EngineEvent) -> Applied {
    match event {
        EngineEvent::ActionDone(r) => Applied::Report(ActionReport::from(r)),
        EngineEvent::Fatal(m) => Applied::Fatal(m.clone()),
        EngineEvent::DecodeErrors(n) => Applied::DecodeErrors(*n),
        EngineEvent::Overrun => Applied::Overrun,
        EngineEvent::DumpBegin { .. } => Applied::DumpStarted,
        EngineEvent::DumpEnd { .. } => Applied::DumpDone,
        EngineEvent::DumpProgress(_) => Applied::Nothing,
        _ => Applied::Changed,
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

/// A parse error from the filter language: the bad span is `pos..pos+len` (in chars).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterFault {
    pub pos: usize,
    pub len: usize,
    pub message: String,
}

impl FilterFault {
    /// The filter module's error for `text`, its byte span turned into chars (the bar
    /// counts characters).
    pub fn of(text: &str, e: crate::filter::FilterError) -> FilterFault {
        let chars = |b: usize| {
            text.get(..b.min(text.len()))
                .map_or(b, |s| s.chars().count())
        };
        let pos = chars(e.pos);
        FilterFault {
            pos,
            len: chars(e.pos + e.len).saturating_sub(pos),
            message: e.message,
        }
    }
}

/// What the app asks of the engine. The TUI never touches sockets or files: in
/// production these become `engine::Command`s (`impl Commands for EngineHandle`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Run a plan the user confirmed: exactly the plan the confirmation showed.
    Execute(Box<Plan>),
    /// Steer a replay's clock (`engine::Command::Replay`); no confirmation, nothing removed.
    Replay(ReplayRequest),
    /// Ask the kernel about flows whose timeout passed without a DESTROY (pre-existing
    /// flows under `nf_conntrack_events=2`): `engine::Command::Recheck`.
    Recheck(Vec<FlowKey>),
    /// Read the kernel's per-CPU counters (`engine::Command::Stats`); the answer comes
    /// back as an engine event, so the app never waits on a socket.
    Stats,
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

/// Where the app's requests go (the engine in production, a recorder in tests); an
/// `Err` is shown in the status line.
pub trait Commands {
    fn send(&mut self, request: Request) -> Result<(), String>;
}

impl<F: FnMut(Request) -> Result<(), String>> Commands for F {
    fn send(&mut self, request: Request) -> Result<(), String> {
        self(request)
    }
}

impl Commands for EngineHandle {
    fn send(&mut self, request: Request) -> Result<(), String> {
        let cmd = match request {
            Request::Execute(plan) => Command::Execute(plan),
            Request::Recheck(keys) => Command::Recheck(keys),
            Request::Stats => Command::Stats,
            Request::Replay(r) => Command::Replay(match r {
                ReplayRequest::TogglePause => ReplayControl::TogglePause,
                ReplayRequest::Step => ReplayControl::Step,
                ReplayRequest::End => ReplayControl::End,
                ReplayRequest::Speed(s) => ReplayControl::Speed(s.engine()),
            }),
        };
        EngineHandle::send(self, cmd).map_err(|e| e.to_string())
    }
}

/// Reads one terminal event, blocking (crossterm's `event::read` in production).
pub type TerminalSource = Box<dyn FnMut() -> std::io::Result<TermEvent> + Send>;

/// Every outside input of the dashboard, injected as one value (bandwhich's style): tests
/// build it from channels, a manual clock and a recorder, and drive the real app.
pub struct Inputs {
    /// The engine's events (a live table or a replay).
    pub engine: Receiver<EngineEvent>,
    /// Key presses and resizes.
    pub terminal: TerminalSource,
    /// Store seconds, the same clock the store's `seen` values were taken with.
    pub clock: Box<dyn Clock>,
    /// Where confirmed plans, replay controls and re-checks go.
    pub commands: Box<dyn Commands>,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_errors_become_char_spans() {
        let text = "é=1 and dprt=21";
        let e = crate::filter::Filter::parse(text).expect_err("must fail");
        let e = FilterFault::of(text, e);
        assert!(e.len > 0);
        assert!(e.pos + e.len <= text.chars().count(), "{e:?}");
    }
}
