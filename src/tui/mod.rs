//! The dashboard: a live ratatui TUI over the model store (flows, expectations, RELATED
//! chains), with a filter bar, confirmations for every destructive action, themes, and a
//! terminal that is always restored (panic, SIGINT, SIGTERM, SIGHUP).
//!
//! Owns the terminal and the app state. It must not touch sockets: the app owns the
//! `Store`, fed by engine events arriving on the app's channel, and confirmed plans leave
//! through the `Commands` of its `Inputs`.
//!
//! ```text
//! engine events ─┐                        ┌─► screens::<current>::draw ─┐
//! terminal keys ─┼─► App::handle ─► App ──┤   (rows swapped in from     ├─► frame (ui)
//! tick, signals ─┤   (one channel)  │  ▲  │    the view builder)        │
//! views built  ──┘                  │  │  └─► widgets, popups ─────────┘
//!                                   │  └── views::Views ◄─► worker thread: Screen::job,
//!                                   │      summary, risk (scan under the read lock)
//!                                   └─► Commands: a confirmed actions::Plan, replay
//!                                       controls, re-checks (the engine)
//! ```
//!
//! Rows are never built on the main thread: the app asks the view builder (`views` over
//! `worker`, one thread) for the visible screen's rows, the header summary and the risk
//! cache, and swaps them in when `AppEvent::Built` wakes the loop. The store is shared
//! behind a lock of which the main thread is the only writer and never waits (updates
//! queue while a build scans), so a key is answered by the next frame whatever is being
//! built. `probe` times that, key read to frame flushed, for the benchmark.
//!
//! Layout of the modules:
//! - `app`: state and event handling (`App::handle`); writes the `Store`, owns the screens;
//! - `views`: what is built off the main thread and when; `worker`: the builder thread
//!   (and the low-priority chores thread); `scratch`: the first complete view's buffers,
//!   made while the first dump streams;
//! - `journal`: the flows the engine's records touched, so a view sorted by key is
//!   refined from them instead of sorted again;
//! - `probe`: the opt-in frame log (`CTSCOPE_FRAME_LOG`);
//! - `inputs`: the injected outside inputs (engine events, terminal, clock, commands);
//! - `screens`: one module per screen and the one screen list (see its doc to add one);
//! - `popups`: confirmation (one `actions::Plan`), help, filter bar, detail pane;
//! - `widgets`: header and tab line, status line, gauge, the shared table tail;
//! - `keymap`: the one key table (dispatch and help);
//! - `view`: row keys and selection, the `Column` trait and width layout;
//! - `ui`: the frame's regions; `text`: formatting; `theme`: colours;
//! - `counters`: the kernel's per-CPU counters as rates (asked of the engine each tick);
//! - `risk`: the helper-risk assessments of `crate::risk`, cached per store generation;
//! - `live`: the production `Inputs` (engine, crossterm, engine clock).

pub mod app;
pub mod counters;
pub mod inputs;
pub mod journal;
pub mod keymap;
pub mod live;
pub mod popups;
pub mod probe;
pub mod risk;
pub mod scratch;
pub mod screens;
pub mod text;
pub mod theme;
pub mod ui;
pub mod view;
pub mod views;
pub mod widgets;
pub mod worker;

use std::io::{self, IsTerminal};
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread;
use std::time::Duration;

use ratatui::crossterm::event::Event as TermEvent;

use crate::engine::EngineEvent;
use crate::model::Store;

pub use app::{App, AppEvent, SshSession, TuiOptions};
pub use inputs::{
    ActionReport, Applied, Clock, Commands, FilterFault, Inputs, ReplayRequest, ReplaySpeed,
    Request, SystemClock, TerminalSource,
};
pub use theme::ThemeKind;

/// Run the dashboard until the user quits, a signal arrives or the terminal goes away.
///
/// - `store`: already holding the initial dump, or empty (events fill it);
/// - `inputs`: the engine's events (forwarded onto the app's one channel), the terminal's
///   events, the clock (store seconds, the same clock the store's `seen` values were
///   taken with) and where requests go (confirmed plans, never sent in read-only mode);
/// - `assessor`: helper risk (`risk::Assessor`, built once by the caller); `None` shows
///   no risk badges or findings.
///
/// When the engine's channel closes (a replay reached its end) the dashboard stays open
/// on the last state and says so; only the user, a signal or a lost terminal end it. If
/// the engine stopped on an error (a damaged recording), that stays in the header and the
/// status line, and `run` returns it as an error after the terminal is restored.
///
/// The terminal is restored on every exit path: normal return, error, panic (ratatui's
/// panic hook) and SIGINT/SIGTERM/SIGHUP (signal-hook's self-pipe turns them into
/// `AppEvent::Signal`).
pub fn run(
    opts: TuiOptions,
    store: Store,
    inputs: Inputs,
    assessor: Option<Box<dyn risk::Assess>>,
) -> anyhow::Result<()> {
    let Inputs {
        engine,
        terminal,
        clock,
        commands,
    } = inputs;
    big_buffers_off_the_heap();
    let (tx, rx) = mpsc::channel::<AppEvent>();
    let signals = SignalThread::spawn(tx.clone())?;
    spawn_forwarder(engine, tx.clone());
    spawn_input(terminal, tx.clone());
    let tick = opts.tick;
    let mut app = App::new(store, opts, clock, commands);
    if let Some(a) = assessor {
        app = app.with_assessor(a);
    }
    // A finished build wakes the loop to swap it in. `Sender` is `Sync`; a closed channel
    // means the loop is gone and nobody needs waking.
    let wake = tx.clone();
    app.on_built(move || {
        let _ = wake.send(AppEvent::Built);
    });
    if !io::stdout().is_terminal() {
        // Exit 1 as before: nothing was wrong with the command line.
        anyhow::bail!(
            "the dashboard needs a terminal on stdout{}",
            crate::error::Hint(Some("use 'ctscope list' or 'ctscope watch'"))
        );
    }
    let mut terminal =
        ratatui::try_init().map_err(|e| anyhow::anyhow!("cannot set up the terminal: {e}"))?;
    let result = event_loop(&mut app, &mut terminal, &rx, tick);
    ratatui::restore();
    drop(signals);
    result?;
    // A damaged recording (or a failed engine) is an error once the admin has seen it.
    match app.failure() {
        Some(m) => Err(anyhow::anyhow!("{m}")),
        None => Ok(()),
    }
}

/// Make glibc's malloc serve every block of 4 MiB or more from its own mapping, given
/// back when freed. By default it raises that threshold to the size of each large block
/// freed (up to 32 MiB), so after the first dump and build have freed theirs, the next
/// view builds (tens of MB at a million flows) come from the heap, whose freed memory
/// stays resident: ~17 MB more at a million flows after the first view.
fn big_buffers_off_the_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; called before the threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
    }
}

/// The last of SIGINT/SIGTERM/SIGHUP received by `run` (0: none), so a caller can choose an
/// exit status (128 + signal) after the terminal is restored.
pub fn last_signal() -> i32 {
    LAST_SIGNAL.load(Ordering::Relaxed)
}

/// The longest the loop applies queued events before drawing a frame.
const DRAIN_BUDGET: Duration = Duration::from_millis(30);

/// The least time between two frames drawn only because the store moved (`App::data_moved`).
/// Under churn engine batches arrive hundreds of times a second; the rows change only when
/// a build is swapped in (a few times a second), so ten frames a second show the visible
/// rows' own fields moving without spending a core on identical frames. Keys, builds and
/// resizes are drawn at once.
pub const DATA_FRAME_GAP: Duration = Duration::from_millis(100);

/// Draw a frame, noting it in the frame log (`probe`) as the answer to the keys read
/// before it began.
fn draw(app: &mut App, terminal: &mut ratatui::DefaultTerminal) -> io::Result<()> {
    let t = probe::now_ns();
    app.draw(terminal)?;
    probe::flushed(t);
    Ok(())
}

fn event_loop(
    app: &mut App,
    terminal: &mut ratatui::DefaultTerminal,
    rx: &Receiver<AppEvent>,
    tick: Duration,
) -> anyhow::Result<()> {
    draw(app, terminal)?;
    let mut last_frame = std::time::Instant::now();
    let mut next_tick = last_frame + tick;
    while !app.should_quit() {
        let now = std::time::Instant::now();
        let mut wait = next_tick.saturating_duration_since(now);
        if app.data_moved() {
            wait = wait.min((last_frame + DATA_FRAME_GAP).saturating_duration_since(now));
        }
        match rx.recv_timeout(wait) {
            Ok(ev) => app.handle(ev),
            // Woken for a data frame or the tick.
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        // The tick is due by the clock, whether or not events kept the channel busy.
        if std::time::Instant::now() >= next_tick {
            app.handle(AppEvent::Tick);
            next_tick = std::time::Instant::now() + tick;
        }
        // Coalesce a burst: apply what is queued, then draw once. Bounded in time so a
        // stream that never pauses still gets frames (and keys behind it get answered).
        let budget = std::time::Instant::now() + DRAIN_BUDGET;
        while std::time::Instant::now() < budget {
            let Ok(ev) = rx.try_recv() else { break };
            app.handle(ev);
            if app.should_quit() {
                break;
            }
        }
        let data_due = app.data_moved() && last_frame.elapsed() >= DATA_FRAME_GAP;
        if (app.needs_draw() || data_due) && !app.should_quit() {
            draw(app, terminal)?;
            last_frame = std::time::Instant::now();
        }
    }
    Ok(())
}

fn spawn_forwarder(engine: Receiver<EngineEvent>, tx: Sender<AppEvent>) {
    thread::Builder::new()
        .name("tui-engine-fwd".into())
        .spawn(move || {
            for ev in engine {
                if tx.send(AppEvent::Engine(ev)).is_err() {
                    return;
                }
            }
            // The engine hung up (end of a replay, or it stopped): say so, keep the app.
            let _ = tx.send(AppEvent::SourceEnded);
        })
        .ok();
}

fn spawn_input(mut read: TerminalSource, tx: Sender<AppEvent>) {
    thread::Builder::new()
        .name("tui-input".into())
        .spawn(move || loop {
            let ev = match read() {
                Ok(TermEvent::Key(k)) => {
                    probe::key_read(&k);
                    AppEvent::Key(k)
                }
                Ok(TermEvent::Resize(w, h)) => AppEvent::Resize(w, h),
                Ok(_) => continue,
                // The terminal is gone (SSH dropped): ask the app to leave.
                Err(_) => AppEvent::Signal(libc::SIGHUP),
            };
            let stop = matches!(ev, AppEvent::Signal(_));
            if tx.send(ev).is_err() || stop {
                break;
            }
        })
        .ok();
}

static LAST_SIGNAL: AtomicI32 = AtomicI32::new(0);

/// SIGINT/SIGTERM/SIGHUP → `AppEvent::Signal` on the app's channel, so the main loop
/// wakes, leaves normally and restores the terminal.
///
/// `signal_hook::iterator::Signals` is the same self-pipe this module used to hand-roll
/// (an async-signal-safe handler writes a byte, a thread reads it), kept by the crate the
/// `watch` and `record` commands already use for their flags: no `unsafe` here, and one
/// signal registry in the process. Dropping it closes the iterator (its thread ends) and
/// unregisters our actions; unlike the old code it does not reinstate the previous
/// handler (signal-hook never does), which matters only in the instant between the
/// dashboard's end and the process's exit.
struct SignalThread {
    handle: signal_hook::iterator::Handle,
}

const SIGNALS: [i32; 3] = [
    signal_hook::consts::SIGINT,
    signal_hook::consts::SIGTERM,
    signal_hook::consts::SIGHUP,
];

impl SignalThread {
    fn spawn(tx: Sender<AppEvent>) -> io::Result<SignalThread> {
        let mut signals = signal_hook::iterator::Signals::new(SIGNALS)?;
        let handle = signals.handle();
        thread::Builder::new()
            .name("tui-signals".into())
            .spawn(move || {
                // `forever` ends when the handle is closed.
                for sig in signals.forever() {
                    LAST_SIGNAL.store(sig, Ordering::Relaxed);
                    if tx.send(AppEvent::Signal(sig)).is_err() {
                        break;
                    }
                }
            })?;
        Ok(SignalThread { handle })
    }
}

impl Drop for SignalThread {
    fn drop(&mut self) {
        self.handle.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_hanging_up_becomes_source_ended_not_a_quit() {
        let (etx, erx) = mpsc::channel::<EngineEvent>();
        let (tx, rx) = mpsc::channel::<AppEvent>();
        spawn_forwarder(erx, tx);
        etx.send(EngineEvent::DecodeErrors(7)).unwrap();
        drop(etx);
        let first = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(
            matches!(first, AppEvent::Engine(EngineEvent::DecodeErrors(7))),
            "{first:?}"
        );
        let second = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(matches!(second, AppEvent::SourceEnded), "{second:?}");
    }
}
