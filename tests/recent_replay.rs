//! Recency state from a recording, without root (issue 11): `assets/lab-knock.ctrec`,
//! recorded by `assets/lab/make-knock-recording.sh` from seed 004's knock in a real lab
//! (iptables xt_recent lists, and the same scheme as nft dynamic sets beside it).
//! The admin (10.214.6.2) scans, then knocks within the limits and connects to 3306; the
//! slowpoke (10.214.6.3) knocks 8000 13 s late and is refused.
//!
//! Checked: the snapshots' place in the recording (after the initial dump, in time order
//! with the flow events, at the recorder's cadence); the progress they give through the
//! replay, fed through the engine exactly as live state is; `recent --replay [--at]`; a
//! damaged snapshot (one line, nothing else lost); and a version-1 recording (no
//! snapshots: a clear refusal, the flows still replay).

use std::path::Path;
use std::process::{Command, Output};

use ctscope::engine::record::{Kind, Reader};
use ctscope::engine::{self, Engine, EngineEvent, Options, Replay, Speed};
use ctscope::model::recent::RecentState;
use ctscope::model::Store;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ctscope");
const KNOCK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/lab-knock.ctrec");
const HELPERS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/lab-helpers.ctrec");
const ADMIN: &str = "10.214.6.2";
const SLOW: &str = "10.214.6.3";

fn ctscope(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run ctscope")
}

fn json(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A source's (stage, list, open, expired).
type Place = (usize, String, bool, bool);

/// One step of the replay as a consumer sees it: each snapshot, when it was taken, and
/// each source's (stage, list, open, expired) in the iptables machine, with the flows the
/// view links to the admin's seenbackend entry.
#[derive(Debug)]
struct Seen {
    at_s: f64,
    admin: Option<Place>,
    slow: Option<Place>,
    linked: Vec<String>,
    /// Kernel events for flows toward 8000 from the admin, applied before this snapshot.
    admin_8000_events: usize,
}

fn replay_through_engine(path: &str) -> (Vec<Seen>, Vec<String>) {
    let source = Replay::open(Path::new(path), Speed::Fast).unwrap();
    let start = source.recorded_start();
    let (rx, handle) = Engine::spawn(Box::new(source), Options::default()).unwrap();
    let mut store = Store::new();
    let mut state = RecentState::new();
    let (mut received, mut last) = (start, start);
    let (mut seen, mut damaged) = (Vec::new(), Vec::new());
    let mut admin_8000 = 0;
    for ev in rx.iter() {
        match ev {
            EngineEvent::Received(t) => {
                assert!(t >= last, "time runs backwards: {t} after {last}");
                (received, last) = (t, t);
            }
            EngineEvent::Recent(s) => {
                state.apply(*s, received);
                let view = state.view(&store).unwrap();
                let snap = state.snapshot().unwrap();
                let of = |addr: &str| {
                    view.progress
                        .iter()
                        .find(|r| {
                            r.progress.addr.to_string() == addr
                                && snap.machines[r.machine].lang == ctscope::recent::Lang::Iptables
                        })
                        .map(|r| {
                            let p = &r.progress;
                            (p.stage, p.list.clone(), p.open, p.expired)
                        })
                };
                let linked = view
                    .lists
                    .iter()
                    .filter(|l| l.place == "xt seenbackend")
                    .flat_map(|l| &l.entries)
                    .filter(|e| e.key == ADMIN)
                    .flat_map(|e| &e.admitted)
                    .map(|a| format!("{} {}", a.dport, a.state.clone().unwrap_or_default()))
                    .collect();
                seen.push(Seen {
                    at_s: (received - start) as f64 / 1e9,
                    admin: of(ADMIN),
                    slow: of(SLOW),
                    linked,
                    admin_8000_events: admin_8000,
                });
            }
            EngineEvent::RecentDamaged(m) => damaged.push(m),
            EngineEvent::Fatal(m) => panic!("{m}"),
            ev => {
                if let EngineEvent::Records(b) = &ev {
                    admin_8000 += b
                        .iter()
                        .filter(|(e, r)| {
                            *e != ctscope::model::Event::Dump
                                && matches!(r, ctscope::model::Record::Flow(f)
                                    if f.orig.dport == 8000 && f.orig.src_ip().to_string() == ADMIN)
                        })
                        .count();
                }
                let now = ((received - start) / 1_000_000_000) as u32;
                engine::apply(&mut store, ev, now);
            }
        }
    }
    handle.stop();
    (seen, damaged)
}

/// The frames themselves: snapshots come after the initial dump, in time order with the
/// rest, at the recorder's cadence (every second for state this small).
#[test]
fn snapshots_sit_in_time_order_at_the_recorder_cadence() {
    let mut r = Reader::open(Path::new(KNOCK)).unwrap();
    let mut frames = Vec::new();
    while let Some(f) = r.next_frame().unwrap() {
        frames.push((f.t, f.kind));
    }
    assert!(
        frames.windows(2).all(|w| w[0].0 <= w[1].0),
        "frames out of order"
    );
    let first_end = frames.iter().position(|f| f.1 == Kind::DumpEnd).unwrap();
    let recent: Vec<u64> = frames
        .iter()
        .filter(|f| f.1 == Kind::Recent)
        .map(|f| f.0)
        .collect();
    assert!(recent.len() >= 20, "{} snapshots in ~28 s", recent.len());
    assert!(frames[..first_end].iter().all(|f| f.1 != Kind::Recent));
    for w in recent.windows(2) {
        let gap = (w[1] - w[0]) as f64 / 1e9;
        assert!((0.9..2.5).contains(&gap), "snapshots {gap:.2} s apart");
    }
    // Events are interleaved with them, not bunched before or after.
    let events_between = frames
        .iter()
        .filter(|f| f.1 == Kind::EventMsg && f.0 > recent[0] && f.0 < *recent.last().unwrap())
        .count();
    assert!(events_between > 0);
}

/// Through the engine, as a dashboard would get them: the scan advances nothing, the
/// admin goes through stage 2 to the open last stage with its 3306 flow linked, the
/// slowpoke's window runs out and the late knock puts it back to stage 1.
#[test]
fn replayed_snapshots_show_the_knocks_progress_in_order() {
    let (seen, damaged) = replay_through_engine(KNOCK);
    assert!(damaged.is_empty(), "{damaged:?}");
    let stages = |who: fn(&Seen) -> &Option<Place>| {
        let mut out: Vec<String> = Vec::new();
        for s in &seen {
            let word = match who(s) {
                None => "none".to_string(),
                Some((st, list, open, expired)) => format!(
                    "{st}:{list}{}{}",
                    if *open { ":open" } else { "" },
                    if *expired { ":expired" } else { "" }
                ),
            };
            if out.last() != Some(&word) {
                out.push(word);
            }
        }
        out
    };
    assert_eq!(
        stages(|s| &s.admin),
        ["none", "2:seenecho", "3:seenbackend:open"],
        "{seen:#?}"
    );
    assert_eq!(
        stages(|s| &s.slow),
        ["none", "2:seenecho", "2:seenecho:expired", "1:seenping"],
        "{seen:#?}"
    );
    // Ordering with the flow events: the admin is never seen in seenbackend before the
    // kernel's event for its 8000 knock has been applied.
    let first_open = seen
        .iter()
        .find(|s| s.admin.as_ref().is_some_and(|a| a.2))
        .unwrap();
    assert!(first_open.admin_8000_events > 0, "{first_open:#?}");
    // And the open stage is linked to the ESTABLISHED 3306 flow in the list's entry.
    let last = seen.last().unwrap();
    assert_eq!(last.linked, ["3306 ESTABLISHED"], "{last:#?}");
}

/// `recent --replay FILE --at D` prints the last snapshot taken by D, with the flows of the
/// replayed table at that moment; without --at, the end.
#[test]
fn recent_replay_at_a_moment_and_at_the_end() {
    let (seen, _) = replay_through_engine(KNOCK);
    let halfway = seen
        .iter()
        .find(|s| s.admin.as_ref().is_some_and(|a| a.0 == 2))
        .unwrap();
    let at = format!("{}ms", (halfway.at_s * 1000.0).ceil() as u64);
    let v = json(&ctscope(&[
        "--replay", KNOCK, "recent", "--json", "--at", &at,
    ]));
    let offset = v["replay_offset_s"].as_f64().unwrap();
    assert!(
        (offset - halfway.at_s).abs() < 0.01,
        "{offset} vs {}",
        halfway.at_s
    );
    let admin: Vec<&Value> = v["progress"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["addr"] == ADMIN)
        .collect();
    assert!(
        !admin.is_empty() && admin.iter().all(|p| p["stage"] == 2),
        "{v:#}"
    );
    assert!(v["admitted"].as_array().unwrap().is_empty(), "{v:#}");

    let v = json(&ctscope(&["--replay", KNOCK, "recent", "--json"]));
    let a = v["admitted"].as_array().unwrap();
    assert!(
        a.iter().any(|a| a["addr"] == ADMIN
            && a["list"] == "seenbackend"
            && a["dport"] == 3306
            && a["state"] == "ESTABLISHED"),
        "{v:#}"
    );
    // Both schemes were recorded: the xt lists and the nft sets.
    assert!(v["xt_recent"]["lists"]
        .as_array()
        .unwrap()
        .iter()
        .any(|l| l["name"] == "seenbackend"));
    assert!(v["sets"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["name"] == "seenbackend" && s["elements"][0]["key"] == ADMIN));
    let text = String::from_utf8(ctscope(&["--replay", KNOCK, "recent"]).stdout).unwrap();
    assert!(text.starts_with("Recorded in '"), "{text}");
    assert!(
        text.contains(&format!("{SLOW}: stage 1/4 (seenping)")),
        "{text}"
    );

    // Before the first snapshot there is nothing to show, and that is said.
    let out = ctscope(&["--replay", KNOCK, "recent", "--at", "0s"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("holds no recency snapshot in its first 0s"),
        "{err}"
    );
    // Usage: --at without --replay, and actions on a recording.
    let out = ctscope(&["recent", "--at", "3s"]);
    assert_eq!(out.status.code(), Some(2));
    let out = ctscope(&["--replay", KNOCK, "recent", "flush", "seenping", "--yes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("drop --replay"));
}

/// A version-1 recording (before snapshots) still replays; `recent` says it holds none.
#[test]
fn old_recordings_replay_and_hold_no_recency_state() {
    let mut r = Reader::open(Path::new(HELPERS)).unwrap();
    assert!(std::iter::from_fn(|| r.next_frame().unwrap()).count() > 100);
    let out = ctscope(&["--replay", HELPERS, "recent", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("holds no recency snapshot"), "{err}");
    assert!(err.contains("hint:"), "{err}");
}

/// A damaged snapshot payload: one line naming the recording and where, the replay goes
/// on, and every flow and every other snapshot arrives as before.
#[test]
fn a_damaged_snapshot_is_one_line_and_loses_nothing_else() {
    let bytes = std::fs::read(KNOCK).unwrap();
    // Find the third Recent frame and break its JSON without changing its length.
    let mut r = Reader::new(&bytes[..], "x".into()).unwrap();
    let mut at = 20usize;
    let mut n = 0;
    let (mut damaged_at, mut frame_t) = (0, 0);
    while let Some(f) = r.next_frame().unwrap() {
        if f.kind == Kind::Recent {
            n += 1;
            if n == 3 {
                damaged_at = at + 13;
                frame_t = f.t;
                break;
            }
        }
        at += 13 + f.bytes.len();
    }
    assert_eq!(bytes[damaged_at], b'{');
    let mut broken = bytes.clone();
    broken[damaged_at] = b'#';
    let dir = std::env::temp_dir().join(format!("ctscope-recent-damaged-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("damaged.ctrec");
    std::fs::write(&path, &broken).unwrap();
    let p = path.to_str().unwrap();

    let out = ctscope(&["--replay", p, "recent", "--json"]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("damaged.ctrec")
            && err.contains(&format!(
                "the recency snapshot at {:.3} s is damaged and skipped",
                frame_t as f64 / 1e9
            )),
        "{err}"
    );
    // The final state is the same (the damaged snapshot was an early one), and so is
    // every flow of the replayed table.
    assert_eq!(
        json(&out),
        json(&ctscope(&["--replay", KNOCK, "recent", "--json"]))
    );
    // (`list --replay` dates the table by the replay clock as it reads it, so remaining
    // timeouts may differ by a second between two runs: compare the entries without them.)
    let list = |f: &str| {
        let mut v = json(&ctscope(&["--replay", f, "list", "--json"]));
        for e in v.as_array_mut().unwrap() {
            e.as_object_mut().unwrap().remove("timeout");
        }
        v
    };
    assert_eq!(list(p), list(KNOCK));

    // Through the engine: exactly one snapshot fewer, one damage report.
    let (seen_ok, _) = replay_through_engine(KNOCK);
    let (seen_bad, damaged) = replay_through_engine(p);
    assert_eq!(damaged.len(), 1, "{damaged:?}");
    assert_eq!(seen_bad.len() + 1, seen_ok.len());
    std::fs::remove_dir_all(&dir).ok();
}
