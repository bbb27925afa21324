//! The `ctscope` binary's dashboard on a recording, in tmux (no root needed): absolute times
//! are those of the recorded session (its start, not "now minus elapsed"), the helper-risk
//! badge comes from `crate::risk`, and the end of the recording leaves the dashboard open
//! with "REPLAY ENDED" in the header; the replay clock keys hold, speed up and jump to the end.
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
        Recording::write_with(false)
    }

    /// With `late`: the expectation only appears in a re-dump an hour into the recording
    /// (at the recorded pace, an hour of "exp 0").
    fn write_with(late: bool) -> Recording {
        // One file per test: the tests of this binary run in parallel.
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!(
            "ctscope-tu2-replay-{}-{n}.ctrec",
            std::process::id()
        ));
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
        if late {
            const HOUR: u64 = 3_600_000_000_000;
            w.frame(0, Kind::DumpEnd, &tables).unwrap();
            w.frame(HOUR, Kind::DumpBegin, &tables).unwrap();
            w.frame(HOUR, Kind::DumpMsg, &fixture("helper_master.bin"))
                .unwrap();
            w.frame(HOUR, Kind::DumpMsg, &fixture("expect.bin"))
                .unwrap();
            w.frame(HOUR, Kind::DumpEnd, &tables).unwrap();
        } else {
            w.frame(0, Kind::DumpMsg, &fixture("expect.bin")).unwrap();
            w.frame(0, Kind::DumpEnd, &tables).unwrap();
        }
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
    // The header's counts are built off the main thread: they may follow by a build.
    let s = t.wait_for("the end of the replay", |s| {
        s.contains("REPLAY ENDED") && s.contains("exp 1")
    });
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

fn skip_without_tmux() -> bool {
    if have_tmux() {
        return false;
    }
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "tmux is required under CI=true"
    );
    println!("skipped: needs tmux");
    true
}

/// Run the dashboard on `rec` in tmux; the pane's shell writes ctscope's exit status and
/// stderr to files next to the recording once it quits.
fn dashboard(tag: &str, rec: &Path) -> (Tmux, PathBuf, PathBuf) {
    let code = rec.with_extension("code");
    let err = rec.with_extension("err");
    let cmd = format!(
        "env NO_COLOR=1 {} --replay {} 2>{}; echo $? >{}; sleep 30",
        env!("CARGO_BIN_EXE_ctscope"),
        rec.display(),
        err.display(),
        code.display()
    );
    (Tmux::start(tag, &cmd, 100, 30), code, err)
}

fn wait_file(p: &Path) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(s) = std::fs::read_to_string(p) {
            if s.ends_with('\n') {
                return s;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} never written",
            p.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A recording cut inside its last frame is damaged, not ended: the header says so with
/// the byte offset of the bad frame, the entries read before it stay on screen, and
/// quitting exits 1 with the file and offset on stderr.
#[test]
fn a_truncated_recording_shows_as_damaged_and_exits_1() {
    if skip_without_tmux() {
        return;
    }
    let rec = Recording::write();
    let full = std::fs::read(&rec.0).unwrap();
    // Frames: header 20, dump-begin 14, the master, the expectation, dump-end 14; cut
    // 3 bytes into the dump-end frame's payload-less header.
    let expect_len = fixture("expect.bin").len();
    let master_len = fixture("helper_master.bin").len();
    let dump_end_at = 20 + 14 + 13 + master_len + 13 + expect_len;
    assert_eq!(full.len(), dump_end_at + 14);
    std::fs::write(&rec.0, &full[..dump_end_at + 3]).unwrap();
    let (t, code, err) = dashboard("damaged", &rec.0);
    let s = t.wait_for("the damage", |s| s.contains("DAMAGED"));
    assert!(s.contains(&format!("DAMAGED at byte {dump_end_at}")), "{s}");
    assert!(!s.contains("REPLAY ENDED"), "{s}");
    assert!(s.contains("recording damaged"), "{s}");
    t.keys(&["q"]);
    assert_eq!(wait_file(&code).trim(), "1");
    let e = std::fs::read_to_string(&err).unwrap();
    assert!(
        e.contains(&rec.0.display().to_string()) && e.contains(&format!("offset {dump_end_at}")),
        "{e}"
    );
    let _ = std::fs::remove_file(code);
    let _ = std::fs::remove_file(err);

    // Headless: the same file is an error naming file and offset, exit 1.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ctscope"))
        .args(["list", "--replay"])
        .arg(&rec.0)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains(&rec.0.display().to_string()) && e.contains(&format!("offset {dump_end_at}")),
        "{e}"
    );
}

/// A helper name from outside (a userspace cthelper names itself) carrying an escape
/// sequence is shown escaped on the dashboard, and the screen is not cleared by it.
#[test]
fn a_helper_name_with_an_escape_sequence_is_shown_escaped() {
    if skip_without_tmux() {
        return;
    }
    let rec = Recording::write();
    let mut bytes = std::fs::read(&rec.0).unwrap();
    // Same length as "ftp\0", so every attribute length stays right.
    let at = bytes
        .windows(4)
        .position(|w| w == b"ftp\0")
        .expect("helper name in the recording");
    bytes[at..at + 4].copy_from_slice(b"\x1b[H\0");
    std::fs::write(&rec.0, &bytes).unwrap();
    let (t, code, _err) = dashboard("evilhelper", &rec.0);
    // Rows are built off the main thread and may follow the end of the replay by a build.
    let s = t.wait_for("the end of the replay and its rows", |s| {
        s.contains("REPLAY ENDED") && s.contains(r"\x1b[H")
    });
    assert!(s.contains(r"\x1b[H"), "{s}");
    t.keys(&["q"]);
    assert_eq!(wait_file(&code).trim(), "0");
    let _ = std::fs::remove_file(code);
}

/// The replay clock keys in a real terminal: `p` holds the recorded pace, `x` changes it,
/// `e` plays the hour left at once, and the header says where the replay stands.
#[test]
fn replay_keys_hold_and_jump_to_the_end_of_an_hour_long_recording() {
    if !have_tmux() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "tmux is required under CI=true"
        );
        println!("skipped: needs tmux");
        return;
    }
    let rec = Recording::write_with(true);
    let cmd = format!(
        "exec env NO_COLOR=1 {} --replay {}",
        env!("CARGO_BIN_EXE_ctscope"),
        rec.0.display()
    );
    let t = Tmux::start("replaykeys", &cmd, 100, 30);
    let s = t.wait_for("the replay at its recorded pace", |s| s.contains(" 1x"));
    assert!(s.contains("exp 0"), "{s}");
    t.keys(&["p"]);
    t.wait_for("the held clock", |s| s.contains("1x held"));
    t.keys(&["x"]);
    t.wait_for("the 10x pace", |s| s.contains("10x held"));
    assert!(t.screen().contains("exp 0"));
    t.keys(&["e"]);
    let s = t.wait_for("the end of the replay", |s| {
        s.contains("REPLAY ENDED") && s.contains("exp 1")
    });
    assert!(s.contains("at 3600s fast"), "{s}");
}

/// The real signal path: SIGTERM, SIGHUP and SIGINT sent to the dashboard's process each
/// end it through the app's loop, so the terminal is restored (the alternate screen is
/// left: the shell's line after it is visible) and the exit status is 128 + the signal.
#[test]
fn a_signal_ends_the_dashboard_and_restores_the_terminal() {
    if !have_tmux() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "tmux is required under CI=true"
        );
        println!("skipped: needs tmux");
        return;
    }
    let rec = Recording::write_with(true);
    for (name, sig) in [("TERM", 15), ("HUP", 1), ("INT", 2)] {
        let pidfile =
            std::env::temp_dir().join(format!("ctscope-tu2-sig-{}-{name}.pid", std::process::id()));
        let _ = std::fs::remove_file(&pidfile);
        // The shell records ctscope's pid, waits for it and prints its status afterwards.
        let cmd = format!(
            "sh -c 'env NO_COLOR=1 {} --replay {} & echo $! > {}; wait $!; echo exit=$?; sleep 60'",
            env!("CARGO_BIN_EXE_ctscope"),
            rec.0.display(),
            pidfile.display()
        );
        let t = Tmux::start(&format!("sig{name}"), &cmd, 100, 30);
        t.wait_for("the dashboard", |s| s.contains("1x"));
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), pid.trim()])
            .status()
            .unwrap();
        assert!(status.success());
        let want = format!("exit={}", 128 + sig);
        let s = t.wait_for(&want, |s| s.contains("exit="));
        assert!(s.contains(&want), "SIG{name}:\n{s}");
        // The dashboard's screen is gone: the terminal is back to the shell's.
        assert!(
            !s.contains("1x"),
            "SIG{name}: the dashboard is still shown:\n{s}"
        );
        let _ = std::fs::remove_file(&pidfile);
    }
}
