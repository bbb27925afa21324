//! The `ctscope` binary's dashboard on a recording, in tmux (no root needed): absolute times
//! are those of the recorded session (its start, not "now minus elapsed"), the helper-risk
//! badge comes from `crate::risk`, and the end of the recording leaves the dashboard open
//! with "REPLAY ENDED" in the header.
//!
//! The recording is written here from byte fixtures captured from the kernel (the ftp
//! control connection and the PASV expectation it created). Needs tmux; skips with one
//! line otherwise (fails under CI=true). Polls the screen with a deadline: this drives a
//! real terminal, not the app.

mod common;
use common::tmux::{have_tmux, Tmux};
use std::path::{Path, PathBuf};

use std::time::Duration;

use ctscope::engine::record::{Kind, Writer, TABLE_EXPECTS, TABLE_FLOWS};

/// 2025-11-21T05:00:00Z, in ns since the epoch.
const START_NS: u64 = 1_763_701_200_000_000_000;

fn fixture(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// A recording file removed on drop.
struct Recording(PathBuf);

impl Recording {
    /// One dump of both tables at the recording's start: the ftp master and its expectation.
    fn write() -> Recording {
        let path =
            std::env::temp_dir().join(format!("ctscope-tu2-replay-{}.ctrec", std::process::id()));
        let file = std::fs::File::create(&path).unwrap();
        let mut w = Writer::new(
            std::io::BufWriter::new(file),
            path.display().to_string(),
            START_NS,
        )
        .unwrap();
        let tables = [TABLE_FLOWS | TABLE_EXPECTS];
        w.frame(0, Kind::DumpBegin, &tables).unwrap();
        w.frame(0, Kind::DumpMsg, &fixture("helper_master.bin"))
            .unwrap();
        w.frame(0, Kind::DumpMsg, &fixture("expect.bin")).unwrap();
        w.frame(0, Kind::DumpEnd, &tables).unwrap();
        w.into_inner().unwrap();
        Recording(path)
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn a_replay_dates_entries_from_its_recording_and_stays_open_at_its_end() {
    if !have_tmux() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "tmux is required under CI=true"
        );
        println!("skipped: needs tmux");
        return;
    }
    let rec = Recording::write();
    // `exec` so the pane's process is ctscope itself; NO_COLOR keeps the capture plain.
    let cmd = format!(
        "exec env NO_COLOR=1 {} --replay {}",
        env!("CARGO_BIN_EXE_ctscope"),
        rec.0.display()
    );
    let t = Tmux::start("replay", &cmd, 100, 30);
    let s = t.wait_for("the end of the replay", |s| s.contains("REPLAY ENDED"));
    assert!(
        s.contains("replay ended: the last state stays on screen"),
        "{s}"
    );
    assert!(s.contains("exp 1"), "{s}");
    // The expectation, its risk badge from crate::risk, and its detail pane.
    t.keys(&["2"]);
    let s = t.wait_for("the expectations table", |s| s.contains("IN-CMD"));
    assert!(s.contains("ftp"), "{s}");
    t.keys(&["Enter"]);
    let s = t.wait_for("the detail pane", |s| s.contains("reported"));
    // Reported at the recording's start, not at today's date.
    assert!(
        s.contains("at 2025-11-21T05:00:00Z"),
        "absolute time from the recording's start:\n{s}"
    );
    assert!(s.contains("table ftp data"), "{s}");
    // Still alive and answering after the end.
    std::thread::sleep(Duration::from_millis(300));
    t.keys(&["4"]);
    t.wait_for("the findings screen", |s| s.contains("Finding"));
    assert!(t.screen().contains("REPLAY ENDED"));
}
