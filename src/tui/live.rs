//! The production wiring of the dashboard: the engine's events, the terminal, the
//! engine's clock and the engine handle (where confirmed plans go) as the app's `Inputs`.
//!
//! Thin adapters only; the behaviour lives in `app` (UI) and in `actions`/`engine`. This
//! module must not render, and it never plans: the confirmation's plan is sent as it is.

use std::sync::mpsc::Receiver;
use std::time::{Duration, SystemTime};

use crate::engine::{self, EngineEvent, EngineHandle};
use crate::model::Store;

use super::inputs::{Clock, Inputs};
use super::TuiOptions;

/// The engine's clock (seconds since the source started) with the wall time of its start.
pub struct EngineClock {
    clock: engine::Clock,
    epoch: SystemTime,
}

impl EngineClock {
    /// A live source: store second zero is "now minus the time elapsed so far".
    pub fn new(clock: engine::Clock) -> EngineClock {
        let epoch = SystemTime::now() - Duration::from_nanos(clock.now_ns());
        EngineClock { clock, epoch }
    }

    /// A replay: store second zero is when the recording started
    /// (`Replay::recorded_start`), so absolute times are those of the recorded session,
    /// not of today.
    pub fn recorded(clock: engine::Clock, start: SystemTime) -> EngineClock {
        EngineClock {
            clock,
            epoch: start,
        }
    }
}

impl Clock for EngineClock {
    fn now(&self) -> u32 {
        self.clock.now()
    }
    fn epoch(&self) -> SystemTime {
        self.epoch
    }
}

/// Run the dashboard over a live (or replayed) engine: the one call `cli` needs.
///
/// `store` should already hold the initial load (e.g. from `engine::load`) or be empty;
/// `events`/`engine` come from `Engine::spawn`; the SSH session to spare and
/// `nf_conntrack_tcp_loose` come in `opts` (the planner's context is built from them);
/// `assessor` is the helper-risk assessor built once for the namespace shown (for a
/// replay, without this machine's sockets). A replay's `opts.recorded_start` becomes the
/// clock's epoch.
pub fn run_live(
    opts: TuiOptions,
    store: Store,
    events: Receiver<EngineEvent>,
    engine: EngineHandle,
    assessor: Option<crate::risk::Assessor>,
) -> anyhow::Result<()> {
    let clock = Box::new(match opts.recorded_start {
        Some(start) => EngineClock::recorded(engine.clock(), start),
        None => EngineClock::new(engine.clock()),
    });
    let inputs = Inputs {
        engine: events,
        terminal: Box::new(ratatui::crossterm::event::read),
        clock,
        commands: Box::new(engine),
    };
    super::run(
        opts,
        store,
        inputs,
        assessor.map(|a| Box::new(a) as Box<dyn super::risk::Assess>),
    )
}

/// Read `/proc/sys/net/netfilter/nf_conntrack_max` of the current namespace (the header's
/// gauge); `None` when it cannot be read.
pub fn conntrack_max_here() -> Option<u64> {
    std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_max")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::inputs::{Commands, ReplayRequest, Request};

    #[test]
    fn a_replay_dates_store_seconds_from_the_recording_start() {
        use std::sync::atomic::AtomicU64;
        use std::sync::Arc;
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_763_701_200);
        let t = Arc::new(AtomicU64::new(90 * 1_000_000_000));
        let c = EngineClock::recorded(engine::Clock::Virtual(t), start);
        assert_eq!(c.now(), 90);
        assert_eq!(c.epoch(), start);
        assert_eq!(c.wall(90), start + Duration::from_secs(90));
        // Live: the epoch is "now minus elapsed", i.e. close to today.
        let live = EngineClock::new(engine::Clock::Wall(std::time::Instant::now()));
        assert!(live.epoch() > start);
    }

    /// The whole path of a replay key below the app: the engine handle (the app's
    /// `Commands`) turns the request into a `Command::Replay` and the engine's replay obeys it. A recording whose last frame is
    /// an hour in ends at once after `End`, and a held replay delivers nothing.
    #[test]
    fn replay_requests_reach_the_engines_replay_clock() {
        use crate::engine::record::{Kind, Reader, Writer};
        use crate::engine::{Engine, Options, Replay, Speed, EXPECTS, FLOWS};
        use std::sync::mpsc::RecvTimeoutError;
        let mut w = Writer::new(Vec::new(), "mem".into(), 0).unwrap();
        w.frame(0, Kind::DumpBegin, &[FLOWS | EXPECTS]).unwrap();
        w.frame(0, Kind::DumpEnd, &[FLOWS | EXPECTS]).unwrap();
        w.frame(3_600_000_000_000, Kind::Overrun, &[]).unwrap();
        let bytes = w.into_inner().unwrap();
        let reader = Reader::new(std::io::Cursor::new(bytes), "mem".into()).unwrap();
        let replay = Replay::new(reader, Speed::RealTime(1.0));
        let (events, engine) = Engine::spawn(Box::new(replay), Options::default()).unwrap();
        let clock = engine.clock();
        let mut sink: Box<dyn Commands> = Box::new(engine);
        // Deadlines only bound a failure; a passing run never waits for them.
        let until_closed = |events: &Receiver<EngineEvent>| {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                let left = deadline.saturating_duration_since(std::time::Instant::now());
                match events.recv_timeout(left) {
                    Ok(_) => {}
                    Err(RecvTimeoutError::Disconnected) => return true,
                    Err(RecvTimeoutError::Timeout) => return false,
                }
            }
        };
        sink.send(Request::Replay(ReplayRequest::TogglePause))
            .unwrap();
        sink.send(Request::Replay(ReplayRequest::Speed(
            super::super::ReplaySpeed::Fast,
        )))
        .unwrap();
        // Held, even at full pace: the hour-later frame is not played.
        assert!(matches!(
            events.recv_timeout(Duration::from_millis(100)),
            Ok(_) | Err(RecvTimeoutError::Timeout)
        ));
        assert!(clock.now() < 3600, "held at {}", clock.now());
        sink.send(Request::Replay(ReplayRequest::End)).unwrap();
        assert!(until_closed(&events), "the replay did not end after End");
        assert_eq!(clock.now(), 3600);
    }
}
