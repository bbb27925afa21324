//! `ctscope watch -e MASK` prints the events `conntrack -E -e MASK` prints: both watch the
//! same namespace (`ctscope-evmask-…`, 10.213.46.0/24, nf_conntrack_events=1) while entries
//! are created (`conntrack -I`: NEW), changed (`conntrack -U -m`: UPDATE) and deleted
//! (`conntrack -D`: DESTROY); the kinds and counts of the lines each printed agree for every
//! mask. Needs root.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::lab::{privileged, Lab};
use serde_json::Value;

/// Lines read from a child's stdout in the background.
struct Reader {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reader {
    fn start(mut cmd: Command) -> Reader {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn watcher");
        let out = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let thread = std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(l);
            }
        });
        Reader {
            child,
            lines,
            thread: Some(thread),
        }
    }

    fn stop(mut self) -> Vec<String> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let v = self.lines.lock().unwrap().clone();
        v
    }
}

/// NETLINK_NETFILTER sockets in `ns` that joined at least one multicast group.
fn subscribers(lab: &Lab, ns: &str) -> usize {
    lab.sh_ok(ns, "cat /proc/net/netlink")
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1] == "12" && !f[3].trim_start_matches('0').is_empty()
        })
        .count()
}

#[test]
fn event_mask_prints_what_conntrack_e_prints() {
    if !privileged("event_mask_prints_what_conntrack_e_prints") {
        return;
    }
    let lab = Lab::new("evmask", 46);
    lab.sh_ok(&lab.srv, "sysctl -qw net.netfilter.nf_conntrack_events=1");
    for (round, mask) in ["NEW", "UPDATES", "DESTROY", "NEW,DESTROY", "ALL"]
        .into_iter()
        .enumerate()
    {
        let base = subscribers(&lab, &lab.srv);
        let mut ct = Command::new("ip");
        ct.args(["netns", "exec", &lab.srv, "conntrack", "-E", "-e", mask]);
        let theirs = Reader::start(ct);
        let mut us = Command::new(env!("CARGO_BIN_EXE_ctscope"));
        us.args([
            "--netns",
            &lab.srv,
            "watch",
            "--flows-only",
            "--ndjson",
            "-e",
            mask,
        ]);
        let ours = Reader::start(us);
        let deadline = Instant::now() + Duration::from_secs(10);
        while subscribers(&lab, &lab.srv) < base + 2 {
            assert!(Instant::now() < deadline, "watchers did not subscribe");
            std::thread::sleep(Duration::from_millis(50));
        }
        // ctscope dumps after subscribing; give the dump a moment to finish.
        std::thread::sleep(Duration::from_millis(500));
        let port = |i: u32| 10000 + round as u32 * 100 + i;
        let mut script = String::new();
        for i in 0..6 {
            script.push_str(&format!(
                "conntrack -I -p udp -s 10.9.0.1 -d 10.9.0.2 --sport {} --dport 53 -t 300 >/dev/null 2>&1; ",
                port(i)
            ));
        }
        for i in 0..3 {
            script.push_str(&format!(
                "conntrack -U -s 10.9.0.1 -p udp --sport {} -m {} >/dev/null 2>&1; ",
                port(i),
                i + 1
            ));
        }
        for i in 3..5 {
            script.push_str(&format!(
                "conntrack -D -p udp --sport {} >/dev/null 2>&1; ",
                port(i)
            ));
        }
        lab.sh(&lab.srv, &script);
        std::thread::sleep(Duration::from_millis(800));
        let (theirs, ours) = (theirs.stop(), ours.stop());
        let count =
            |lines: &[String], word: &str| lines.iter().filter(|l| l.contains(word)).count();
        let ours_kinds: Vec<String> = ours
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|v| v["source"] == "kernel")
            .map(|v| v["event"].as_str().unwrap_or("").to_owned())
            .collect();
        let mine = |e: &str| ours_kinds.iter().filter(|k| *k == e).count();
        let got = (mine("new"), mine("update"), mine("destroy"));
        let want = (
            count(&theirs, "[NEW]"),
            count(&theirs, "[UPDATE]"),
            count(&theirs, "[DESTROY]"),
        );
        assert_eq!(
            got, want,
            "-e {mask}: ctscope (new, update, destroy) vs conntrack -E"
        );
        let expected = match mask {
            "NEW" => (6, 0, 0),
            "UPDATES" => (0, 3, 0),
            "DESTROY" => (0, 0, 2),
            "NEW,DESTROY" => (6, 0, 2),
            _ => (6, 3, 2),
        };
        assert_eq!(got, expected, "-e {mask}: the events the script caused");
    }
}
