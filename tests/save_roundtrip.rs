//! `ctscope list -o save` writes `conntrack -I` lines that `conntrack -R` loads: a varied
//! table (common::varied: both families, NAT, zones, marks, states, several protocols)
//! dumped from namespace A with `-o save` and restored into namespace B gives the same
//! `conntrack -L` (timeouts within 3 s, ids and use counts aside). Also: `-o extended` is
//! conntrack's `-o extended` line, and `-o save` refuses expectations (usage, exit 2).
//! Namespaces `ctscope-save-…`, 10.213.45.0/24. Needs root.

mod common;

use std::process::Command;

use common::lab::{privileged, Lab};
use common::varied::table;

/// `conntrack -L ARGS` of `ns`, each line with the timeout (token `at`) taken out,
/// sorted; the timeouts alongside.
fn listing(lab: &Lab, ns: &str, args: &str, at: usize) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = lab
        .sh_ok(ns, &format!("conntrack -L {args} 2>/dev/null"))
        .lines()
        .map(|l| {
            let mut t: Vec<&str> = l
                .split_whitespace()
                .filter(|w| !w.starts_with("use="))
                .collect();
            let timeout = t[at].parse().unwrap_or_else(|_| panic!("timeout in {l}"));
            t[at] = "T";
            (t.join(" "), timeout)
        })
        .collect();
    v.sort();
    v
}

fn ctscope(ns: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ctscope"))
        .args(["--netns", ns])
        .args(args)
        .output()
        .expect("run ctscope")
}

#[test]
fn save_output_round_trips_through_conntrack_restore() {
    if !privileged("save_output_round_trips_through_conntrack_restore") {
        return;
    }
    let lab = Lab::new("save", 45);
    lab.restore(&lab.srv, &table(600));
    let out = ctscope(&lab.srv, &["list", "-o", "save"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let saved = String::from_utf8(out.stdout).unwrap();
    assert_eq!(saved.lines().count(), 600);
    assert!(saved.contains("--src-nat") && saved.contains("--dst-nat") && saved.contains(" -r "));
    lab.restore(&lab.cli, &saved);

    let (a, b) = (
        listing(&lab, &lab.srv, "", 2),
        listing(&lab, &lab.cli, "", 2),
    );
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.0, y.0, "restored line differs");
        assert!((x.1 - y.1).abs() <= 3, "timeout {x:?} vs {y:?}");
    }
    // NAT came back as NAT (the kernel's status), not as a bare reply tuple.
    for args in ["-n", "-g", "-u SEEN_REPLY", "-m 2", "--orig-zone 1"] {
        let (x, y) = (
            listing(&lab, &lab.srv, args, 2),
            listing(&lab, &lab.cli, args, 2),
        );
        assert!(!x.is_empty(), "`{args}` selects something");
        assert_eq!(
            x.iter().map(|l| &l.0).collect::<Vec<_>>(),
            y.iter().map(|l| &l.0).collect::<Vec<_>>(),
            "`conntrack -L {args}` differs after the round trip"
        );
    }

    // -o extended is conntrack's own extended line, timeouts aside.
    let out = ctscope(&lab.srv, &["list", "-o", "extended"]);
    assert!(out.status.success());
    let mut ours: Vec<(String, i64)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let mut t: Vec<&str> = l
                .split_whitespace()
                .filter(|w| !w.starts_with("use="))
                .collect();
            // ctscope ends its line with the id, which conntrack prints only with -o id.
            if t.last().is_some_and(|w| w.starts_with("id=")) {
                t.pop();
            }
            let timeout = t[4].parse().unwrap();
            t[4] = "T";
            (t.join(" "), timeout)
        })
        .collect();
    ours.sort();
    let theirs = listing(&lab, &lab.srv, "-o extended", 4);
    assert_eq!(ours.len(), theirs.len());
    for (x, y) in ours.iter().zip(&theirs) {
        assert_eq!(x.0, y.0, "extended line");
    }

    let out = ctscope(&lab.srv, &["list", "--expect", "-o", "save"]);
    assert_eq!(out.status.code(), Some(2));
}
