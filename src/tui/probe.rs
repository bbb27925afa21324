//! An opt-in frame log for benchmarks: for every key the dashboard reads, the time it was
//! read and the time the first frame drawn after it was flushed to the terminal, so
//! bench/tui.sh can time keypresses to the frame instead of polling `tmux capture-pane`.
//!
//! Enabled by `CTSCOPE_FRAME_LOG=PATH` (read once); otherwise every call is one atomic
//! load. The log is plain text, one line per key, written when its frame is flushed, and
//! one line per frame (so a benchmark polling the screen coarsely can still time the
//! frame that first showed something, instead of polling every few ms and taking the
//! CPU the dashboard is being timed on):
//!
//! ```text
//! <read_ns> <flushed_ns> <key>
//! frame <began_ns> <flushed_ns>
//! ```
//!
//! Times are `CLOCK_MONOTONIC` nanoseconds, the clock of Python's `time.monotonic_ns()`,
//! so the benchmark can also time from its own `tmux send-keys`. This module owns only
//! the log; the main loop makes the calls:
//!
//! ```text
//! input thread:  event::read() -> Key(k)  ─► probe::key_read(&k)
//! main loop:     let t = probe::now_ns(); terminal.draw(..)?; probe::flushed(t);
//! ```
//!
//! A key read while a frame was being drawn is answered by the next frame (the loop
//! handles it after this draw), so `flushed(t)` takes the time the draw *began* and
//! leaves keys read after it for the next frame. It must not change what is drawn.
//!
//! A second log, `CTSCOPE_BUILD_LOG=PATH`, says where the view builder's time goes (which
//! build held up the first complete view, what a rebuild under churn costs): one line per
//! finished build, from the worker thread,
//!
//! ```text
//! <started_ns> <scan_ns> <finish_ns> <generation> <key>
//! ```

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::{Mutex, OnceLock};

use ratatui::crossterm::event::KeyEvent;

/// The env variable naming the log file.
pub const ENV: &str = "CTSCOPE_FRAME_LOG";

/// Monotonic nanoseconds (`CLOCK_MONOTONIC`).
pub fn now_ns() -> u64 {
    // SAFETY: clock_gettime fills the timespec we pass.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The log: keys read and not yet answered by a frame, and where lines go.
pub struct FrameLog<W: Write> {
    out: W,
    keys: Vec<(u64, String)>,
}

impl<W: Write> FrameLog<W> {
    pub fn new(out: W) -> FrameLog<W> {
        FrameLog {
            out,
            keys: Vec::new(),
        }
    }

    /// A key was read at `at` (ns).
    pub fn key(&mut self, at: u64, label: String) {
        self.keys.push((at, label));
    }

    /// A frame whose drawing began at `began` was flushed at `at`: it answers every key
    /// read before `began`. Writes their lines and the frame's, and flushes the writer.
    pub fn frame(&mut self, began: u64, at: u64) -> io::Result<()> {
        let answered = self.keys.iter().take_while(|(t, _)| *t <= began).count();
        for (read, label) in self.keys.drain(..answered) {
            writeln!(self.out, "{read} {at} {label}")?;
        }
        writeln!(self.out, "frame {began} {at}")?;
        self.out.flush()
    }
}

static LOG: OnceLock<Option<Mutex<FrameLog<File>>>> = OnceLock::new();

fn log() -> Option<&'static Mutex<FrameLog<File>>> {
    LOG.get_or_init(|| {
        let path = std::env::var_os(ENV)?;
        // A log that cannot be created is no log: a benchmark notices the missing file
        // (and falls back to polling the screen); the dashboard must not fail for it.
        File::create(Path::new(&path))
            .ok()
            .map(|f| Mutex::new(FrameLog::new(f)))
    })
    .as_ref()
}

/// The env variable naming the build log file.
pub const BUILD_ENV: &str = "CTSCOPE_BUILD_LOG";

static BUILDS: OnceLock<Option<Mutex<File>>> = OnceLock::new();

/// Note a finished build of `key` (call on the worker thread): begun at `started` (from
/// [`now_ns`]), its scan and finish times, and the store generation it saw.
pub fn built(
    key: &dyn std::fmt::Debug,
    started: u64,
    scan: std::time::Duration,
    finish: std::time::Duration,
    generation: u64,
) {
    let log = BUILDS.get_or_init(|| {
        let path = std::env::var_os(BUILD_ENV)?;
        File::create(Path::new(&path)).ok().map(Mutex::new)
    });
    if let Some(Ok(mut f)) = log.as_ref().map(|l| l.lock()) {
        let label = format!("{key:?}").replace(' ', "_");
        // A full disk ends the log, not the dashboard.
        let _ = writeln!(
            f,
            "{started} {} {} {generation} {label}",
            scan.as_nanos(),
            finish.as_nanos()
        );
    }
}

/// Whether the frame log is on.
pub fn enabled() -> bool {
    log().is_some()
}

/// Note a key as it is read from the terminal (call on the input thread, right after
/// `event::read`).
pub fn key_read(k: &KeyEvent) {
    if let Some(l) = log() {
        let at = now_ns();
        let label = format!("{:?}", k.code).replace(' ', "_");
        if let Ok(mut l) = l.lock() {
            l.key(at, label);
        }
    }
}

/// Note that a frame whose drawing began at `began` (from [`now_ns`]) was flushed now.
pub fn flushed(began: u64) {
    if let Some(l) = log() {
        let at = now_ns();
        if let Ok(mut l) = l.lock() {
            // A full disk ends the log, not the dashboard.
            let _ = l.frame(began, at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_answered_by_the_first_frame_begun_after_it() {
        let mut l = FrameLog::new(Vec::new());
        l.key(100, "Char('j')".into());
        // A frame begun before the key was read does not answer it.
        l.frame(90, 150).unwrap();
        l.key(160, "PageDown".into());
        l.frame(170, 200).unwrap();
        l.key(210, "Tab".into());
        l.frame(205, 220).unwrap();
        l.frame(215, 230).unwrap();
        assert_eq!(
            String::from_utf8(l.out).unwrap(),
            "frame 90 150\n100 200 Char('j')\n160 200 PageDown\nframe 170 200\n\
             frame 205 220\n210 230 Tab\nframe 215 230\n"
        );
    }

    #[test]
    fn the_clock_is_monotonic_nanoseconds() {
        let a = now_ns();
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = now_ns();
        assert!(b - a >= 2_000_000 && b - a < 2_000_000_000, "{a} {b}");
    }
}
