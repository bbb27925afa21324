//! `watch --ndjson` against the real kernel: the stream is complete (a consumer that
//! replays the initial `list` and then every line ends with the table `conntrack -L`
//! shows, through a background re-dump and through ENOBUFS), and each line carries what
//! the kernel sent, field for field, compared with a raw multicast listener written here.

mod common;
use common::lab::{privileged, Lab};

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

const SUBNET: u8 = 17;

/// A `ctscope` process whose stdout lines are collected as they come.
struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<JoinHandle<()>>,
}

impl Running {
    fn start(args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ctscope"));
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn ctscope");
        let out = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Running {
            child,
            lines,
            reader: Some(reader),
        }
    }

    fn json(&self) -> Vec<Value> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect()
    }

    /// Wait up to `secs` until `cond` holds for the lines so far.
    fn wait(&self, what: &str, secs: u64, cond: &dyn Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !cond(&self.json()) {
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; lines: {:#?}",
                self.json()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM (ctscope ends cleanly, flushing), then every line it wrote.
    fn stop(mut self) -> Vec<Value> {
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let status = self.child.wait().expect("wait ctscope");
        assert!(status.success(), "ctscope exited with {status}");
        if let Some(r) = self.reader.take() {
            r.join().unwrap();
        }
        self.json()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A table entry as a consumer keys it: proto, original tuple and zone → mark.
type Table = BTreeMap<(String, String, String, u64, u64, u64), u64>;

fn key_of(v: &Value) -> (String, String, String, u64, u64, u64) {
    let o = &v["orig"];
    (
        v["proto"].as_str().unwrap().to_owned(),
        o["src"].as_str().unwrap().to_owned(),
        o["dst"].as_str().unwrap().to_owned(),
        o["sport"].as_u64().unwrap_or(0),
        o["dport"].as_u64().unwrap_or(0),
        v["zone"].as_u64().unwrap(),
    )
}

/// Rebuild the flow table from an initial `list --ndjson` and the watch lines that
/// followed: kernel NEW/UPDATE and sweep add/update put an entry, DESTROY and sweep
/// remove take it away; resync markers carry no entry.
fn replay(initial: &[Value], lines: &[Value]) -> Table {
    let mut t: Table = initial
        .iter()
        .map(|v| (key_of(v), v["mark"].as_u64().unwrap()))
        .collect();
    for l in lines {
        if l["event"] == "resync" || l["kind"] != "flow" {
            continue;
        }
        let gone = l["event"] == "destroy" || l["change"] == "remove";
        if gone {
            t.remove(&key_of(l));
        } else {
            t.insert(key_of(l), l["mark"].as_u64().unwrap());
        }
    }
    t
}

/// `conntrack -L` in the server namespace, keyed like `replay`.
fn conntrack_l(lab: &Lab) -> Table {
    let out = lab.sh_ok(&lab.srv, "conntrack -L 2>/dev/null");
    let mut t = Table::new();
    for line in out.lines().filter(|l| !l.trim().is_empty()) {
        let words: Vec<&str> = line.split_whitespace().collect();
        let first = |k: &str| {
            words
                .iter()
                .find_map(|w| w.strip_prefix(k))
                .map(str::to_owned)
        };
        let num = |k: &str| first(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        t.insert(
            (
                words[0].to_owned(),
                first("src=").unwrap(),
                first("dst=").unwrap(),
                num("sport="),
                num("dport="),
                num("zone="),
            ),
            num("mark="),
        );
    }
    t
}

fn list_ndjson(lab: &Lab) -> Vec<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_ctscope"))
        .args(["--netns", &lab.srv, "list", "--ndjson"])
        .stdin(Stdio::null())
        .output()
        .expect("run ctscope list");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn insert(lab: &Lab, sport: u16, mark: u32) {
    lab.sh_ok(
        &lab.srv,
        &format!(
            "conntrack -I -p tcp -s {} -d {} --sport {sport} --dport 80 \
             --state ESTABLISHED -t 300 -u ASSURED -m {mark} 2>/dev/null",
            lab.cli4, lab.srv4
        ),
    );
}

fn resync_ends(lines: &[Value]) -> Vec<&Value> {
    lines
        .iter()
        .filter(|l| l["event"] == "resync" && l["phase"] == "end")
        .collect()
}

fn sweep_total(lines: &[Value]) -> u64 {
    resync_ends(lines)
        .iter()
        .map(|l| {
            l["added"].as_u64().unwrap()
                + l["changed"].as_u64().unwrap()
                + l["removed"].as_u64().unwrap()
        })
        .sum()
}

/// With `nf_conntrack_events=0` the kernel announces nothing: every change is found by
/// the background re-dump. The stream shows each as a sweep between resync markers, and
/// list + stream equals `conntrack -L`. `record` through the same re-dumps replays to the
/// same differences.
#[test]
fn a_background_resync_in_the_middle_of_watch_keeps_the_stream_complete() {
    if !privileged("a_background_resync_in_the_middle_of_watch_keeps_the_stream_complete") {
        return;
    }
    let lab = Lab::new("ws", SUBNET);
    lab.sh_ok(&lab.srv, "sysctl -qw net.netfilter.nf_conntrack_events=0");
    for sport in 9001..=9006 {
        insert(&lab, sport, 0);
    }
    let rec = std::env::temp_dir().join(format!("ctscope-ws-{}.rec", std::process::id()));
    let _ = std::fs::remove_file(&rec);
    let env = [("CTSCOPE_REDUMP_MIN", "300ms")];
    let record = Running::start(
        &["--netns", &lab.srv, "record", rec.to_str().unwrap()],
        &env,
    );
    let watch = Running::start(&["--netns", &lab.srv, "watch", "--ndjson"], &env);
    // A first background re-dump with nothing to report: the initial dump is done.
    watch.wait("a first resync", 10, &|l| !resync_ends(l).is_empty());
    let initial = list_ndjson(&lab);
    assert_eq!(initial.len(), 6);

    // Silent changes: two go, three come, one changes its mark (deleted and inserted
    // again: `conntrack -U` needs the labels extension in this namespace).
    for sport in [9001, 9002] {
        lab.sh_ok(
            &lab.srv,
            &format!("conntrack -D -p tcp --sport {sport} 2>/dev/null"),
        );
    }
    for sport in [9101, 9102, 9103] {
        insert(&lab, sport, 0);
    }
    lab.sh_ok(&lab.srv, "conntrack -D -p tcp --sport 9003 2>/dev/null");
    insert(&lab, 9003, 5);
    watch.wait("the differences", 15, &|l| {
        sweep_total(l) >= 6
            && l.iter()
                .any(|l| l["event"] == "sweep" && l["orig"]["sport"] == 9003 && l["mark"] == 5)
    });
    let seen = resync_ends(&watch.json()).len();
    watch.wait("one more quiet resync", 10, &|l| {
        resync_ends(l).len() > seen
    });
    let lines = watch.stop();
    let _ = record.stop();

    assert!(
        lines
            .iter()
            .all(|l| l["event"] == "resync" || l["event"] == "sweep"),
        "the kernel sent no event, so no line may claim one: {lines:#?}"
    );
    for l in &lines {
        assert!(
            l["time"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z') && t.len() == 30),
            "{l}"
        );
        assert!(l["host"].is_string(), "{l}");
        assert_eq!(l["netns"], lab.srv.as_str(), "{l}");
    }
    let sweeps: Vec<(String, u64, u64)> = lines
        .iter()
        .filter(|l| l["event"] == "sweep")
        .map(|l| {
            assert_eq!(l["source"], "resync", "{l}");
            (
                l["change"].as_str().unwrap().to_owned(),
                l["orig"]["sport"].as_u64().unwrap(),
                l["mark"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut sorted = sweeps.clone();
    sorted.sort();
    // 9003's new life is one update when one re-dump saw both steps, else remove + add.
    let mut want: Vec<(String, u64, u64)> = vec![
        ("add".into(), 9101, 0),
        ("add".into(), 9102, 0),
        ("add".into(), 9103, 0),
        ("remove".into(), 9001, 0),
        ("remove".into(), 9002, 0),
    ];
    if sorted.contains(&("update".into(), 9003, 5)) {
        want.push(("update".into(), 9003, 5));
    } else {
        want.push(("add".into(), 9003, 5));
        want.push(("remove".into(), 9003, 0));
    }
    want.sort();
    assert_eq!(sorted, want);
    let expected = conntrack_l(&lab);
    assert_eq!(expected.len(), 7);
    assert_eq!(replay(&initial, &lines), expected);

    // The recording holds the re-dumps: its replay shows the same differences.
    let out = Command::new(env!("CARGO_BIN_EXE_ctscope"))
        .args([
            "--replay",
            rec.to_str().unwrap(),
            "--fast",
            "watch",
            "--ndjson",
        ])
        .stdin(Stdio::null())
        .output()
        .expect("replay");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut replayed: Vec<(String, u64, u64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["event"] == "sweep")
        .map(|l| {
            (
                l["change"].as_str().unwrap().to_owned(),
                l["orig"]["sport"].as_u64().unwrap(),
                l["mark"].as_u64().unwrap(),
            )
        })
        .collect();
    replayed.sort();
    // `record` ran its own re-dumps at its own moments: one of them may have seen 9003's
    // delete and re-insert together (one update) where watch's saw them apart, or the
    // reverse. Either way its differences are the same set of changes.
    let with_9003_split = |v: &[(String, u64, u64)]| {
        let mut v: Vec<_> = v
            .iter()
            .flat_map(|c| {
                if c == &("update".to_string(), 9003, 5) {
                    vec![
                        ("add".to_string(), 9003, 5),
                        ("remove".to_string(), 9003, 0),
                    ]
                } else {
                    vec![c.clone()]
                }
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(with_9003_split(&replayed), with_9003_split(&sorted));
    let _ = std::fs::remove_file(&rec);
}

/// A tiny event buffer and a burst: the kernel drops events (ENOBUFS), watch says so in
/// band and prints what the re-dump found, and list + stream still equals `conntrack -L`.
#[test]
fn enobufs_in_the_middle_of_watch_keeps_the_stream_complete() {
    if !privileged("enobufs_in_the_middle_of_watch_keeps_the_stream_complete") {
        return;
    }
    let lab = Lab::new("ws", SUBNET);
    lab.sh_ok(&lab.srv, "sysctl -qw net.netfilter.nf_conntrack_events=1");
    for sport in 9001..=9004 {
        insert(&lab, sport, 0);
    }
    // 4 KiB (the kernel doubles it): a handful of events fit, a burst cannot.
    let watch = Running::start(
        &["--netns", &lab.srv, "watch", "--ndjson", "--flows-only"],
        &[("CTSCOPE_RCVBUF", "4096")],
    );
    // Ready once it prints a NEW for a probe flow (its subscription predates the dump).
    let mut probe = 9500;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        insert(&lab, probe, 0);
        std::thread::sleep(Duration::from_millis(300));
        if watch.json().iter().any(|l| l["event"] == "new") {
            break;
        }
        assert!(Instant::now() < deadline, "watch printed no NEW");
        probe += 1;
    }
    let initial = list_ndjson(&lab);

    // The burst: 3000 NEW events at once.
    let mut lines = String::new();
    for i in 0..3000u32 {
        lines.push_str(&format!(
            "-I -p udp -s {} -d {} --sport {} --dport 53 -t 300\n",
            lab.cli4,
            lab.srv4,
            20000 + i
        ));
    }
    lab.restore(&lab.srv, &lines);
    watch.wait("a resync after the overrun", 20, &|l| {
        resync_ends(l).iter().any(|e| e["reason"] == "overrun")
    });
    // Let any further resync of the same burst finish, then change two flows by events.
    let mut settled = watch.json().len();
    loop {
        std::thread::sleep(Duration::from_millis(700));
        let n = watch.json().len();
        if n == settled {
            break;
        }
        settled = n;
    }
    lab.sh_ok(&lab.srv, "conntrack -D -p tcp --sport 9001 2>/dev/null");
    lab.sh_ok(&lab.srv, "conntrack -D -p tcp --sport 9002 2>/dev/null");
    insert(&lab, 9002, 3);
    watch.wait("the events after the resync", 10, &|l| {
        l.iter().any(|l| l["event"] == "new" && l["mark"] == 3)
    });
    let out = watch.stop();

    let begins: Vec<_> = out
        .iter()
        .filter(|l| l["event"] == "resync" && l["phase"] == "begin")
        .collect();
    assert!(
        begins.iter().any(|b| b["reason"] == "overrun"),
        "no in-band overrun marker"
    );
    let added = out
        .iter()
        .filter(|l| l["event"] == "sweep" && l["change"] == "add" && l["source"] == "resync")
        .count();
    assert!(added > 0, "the re-dump's additions are in the stream");
    let expected = conntrack_l(&lab);
    assert_eq!(expected.len(), 4 + (probe - 9500 + 1) as usize + 3000 - 1);
    assert_eq!(replay(&initial, &out), expected);
}

/// On the committed lab recording (no root): `--count N` stops after N kernel events,
/// every line is dated in RFC 3339 with nanoseconds from the recorded time, a replay
/// names no host (live lines do, see the kernel tests), and text lines start with the
/// same time.
#[test]
fn watch_lines_are_dated_and_count_only_kernel_events() {
    let rec = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/lab-helpers.ctrec");
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_ctscope"))
            .args(["--replay", rec, "--fast", "watch"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run ctscope");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let all: Vec<Value> = run(&["--ndjson"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let kernel = all.iter().filter(|l| l["source"] == "kernel").count();
    assert!(kernel > 5, "the recording has events");
    let mut last = String::new();
    for l in &all {
        let t = l["time"].as_str().unwrap();
        // 2026-11-30T13:53:23.123456789Z
        assert_eq!(t.len(), 30, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[19] == b'.', "{t}");
        assert!(t >= last.as_str(), "time runs forward: {t} after {last}");
        last = t.to_owned();
        // A recording does not say where it was made: no host, and no netns given.
        assert!(l.get("host").is_none(), "{l}");
        assert!(l.get("netns").is_none(), "{l}");
        assert!(
            ["new", "update", "destroy"].contains(&l["event"].as_str().unwrap())
                == (l["source"] == "kernel"),
            "{l}"
        );
    }
    let counted: Vec<Value> = run(&["--ndjson", "--count", "5"])
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        counted.iter().filter(|l| l["source"] == "kernel").count(),
        5
    );
    let text = run(&["--count", "1"]);
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with(
            all.iter().find(|l| l["source"] == "kernel").unwrap()["time"]
                .as_str()
                .unwrap()
        ),
        "{first}"
    );
}
