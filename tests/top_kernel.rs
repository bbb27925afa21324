//! `ctscope top` against the real kernel, in a throwaway namespace (10.213.91.0/24): known
//! flow counts per source loaded with `conntrack -R` (5,000 from one address, 50 from each
//! of 20 others, some UNREPLIED), the groups `top` prints, the new/destroyed rates while a
//! generator inserts and deletes flows (`top --interval` following events), and a group
//! flush through the filter `top` gives for the group.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::lab::{privileged, Lab};
use serde_json::Value;

const SUBNET: u8 = 91;

fn ctscope(ns: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ctscope"))
        .args(["--netns", ns])
        .args(args)
        .output()
        .expect("run ctscope")
}

fn ctscope_json(ns: &str, args: &[&str]) -> Value {
    let out = ctscope(ns, args);
    assert!(
        out.status.success(),
        "ctscope {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn row<'a>(doc: &'a Value, group: &str) -> Option<&'a Value> {
    doc["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["group"] == group)
}

/// `-I` lines for `n` TCP flows from `src` (source ports from `port0`), every
/// `unreplied_every`-th one without SEEN_REPLY (0: none).
fn flows(src: &str, port0: u16, n: u16, unreplied_every: u16) -> String {
    (0..n)
        .map(|i| {
            let status = if unreplied_every != 0 && i % unreplied_every == 0 {
                "-u ASSURED".to_owned()
            } else {
                "-u SEEN_REPLY,ASSURED".to_owned()
            };
            format!(
                "-I -p tcp -s {src} -d 10.9.0.1 --sport {} --dport 80 --state ESTABLISHED {status} -t 600\n",
                port0 + i
            )
        })
        .collect()
}

fn count(lab: &Lab, args: &str) -> usize {
    lab.sh_ok(
        &lab.srv,
        &format!("conntrack -L {args} 2>/dev/null | wc -l"),
    )
    .trim()
    .parse()
    .unwrap()
}

#[test]
fn top_groups_rates_and_group_flush() {
    if !privileged("top_groups_rates_and_group_flush") {
        return;
    }
    let lab = Lab::new("top", SUBNET);
    // Every entry reports its DESTROY, also those created before ctscope subscribed.
    lab.sh_ok(&lab.srv, "sysctl -qw net.netfilter.nf_conntrack_events=1");
    let mut load = flows("10.9.1.1", 1000, 5000, 0);
    for s in 1..=20 {
        // 10 of each 50 UNREPLIED.
        load.push_str(&flows(&format!("10.9.2.{s}"), 1000, 50, 5));
    }
    lab.restore(&lab.srv, &load);
    assert_eq!(count(&lab, ""), 6000);

    // One dump, grouped by source.
    let doc = ctscope_json(&lab.srv, &["top", "--by", "src", "--limit", "30", "--json"]);
    assert_eq!(doc["by"], "src");
    assert_eq!(doc["flows"], 6000);
    assert_eq!(doc["groups"], 21);
    let rows = doc["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 21);
    assert_eq!(rows[0]["group"], "10.9.1.1");
    assert_eq!(rows[0]["flows"], 5000);
    assert_eq!(rows[0]["unreplied"], 0);
    assert_eq!(rows[0]["filter"], "flow and src=10.9.1.1");
    let max = doc["max"].as_u64().expect("nf_conntrack_max");
    let share = rows[0]["share_of_max"].as_f64().unwrap();
    assert!((share - 5000.0 / max as f64).abs() < 1e-12, "{share}");
    for r in &rows[1..] {
        assert_eq!(r["flows"], 50, "{r}");
        assert_eq!(r["unreplied"], 10, "{r}");
        assert_eq!(r["unreplied_share"], 0.2, "{r}");
        assert!(
            r["new_per_s"].is_null(),
            "a one-shot dump has no rates: {r}"
        );
    }
    // Sorted by UNREPLIED and by key, and grouped by network.
    let doc = ctscope_json(
        &lab.srv,
        &["top", "--sort", "unreplied", "--limit", "1", "--json"],
    );
    assert_eq!(doc["rows"][0]["unreplied"], 10);
    let doc = ctscope_json(&lab.srv, &["top", "--by", "src-net", "--json"]);
    assert_eq!(row(&doc, "10.9.1.0/24").unwrap()["flows"], 5000);
    assert_eq!(row(&doc, "10.9.2.0/24").unwrap()["flows"], 1000);
    assert_eq!(row(&doc, "10.9.2.0/24").unwrap()["unreplied"], 200);

    // Rates: `top --interval` follows events while a generator inserts 600 flows from
    // 10.9.3.1 and deletes the 50 of 10.9.2.1.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ctscope"))
        .args(["--netns", &lab.srv, "top", "--by", "src", "--limit", "100"])
        .args(["--interval", "1s", "--count", "40", "--ndjson"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn top --interval");
    let (tx, rx) = mpsc::channel::<Value>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let Ok(v) = serde_json::from_str(&line) else {
                break;
            };
            if tx.send(v).is_err() {
                break;
            }
        }
    });
    // The first print comes after the dump: events from here on are counted.
    let first = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("first top line");
    assert_eq!(first["flows"], 6000);
    let started = Instant::now();
    for batch in 0..3u16 {
        lab.restore(&lab.srv, &flows("10.9.3.1", 2000 + batch * 200, 200, 0));
        std::thread::sleep(Duration::from_millis(300));
    }
    lab.sh_ok(&lab.srv, "conntrack -D -s 10.9.2.1 >/dev/null 2>&1");
    let deadline = Instant::now() + Duration::from_secs(30);
    let settled = loop {
        let v = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("a top line where the generator's work shows");
        let done = row(&v, "10.9.3.1").is_some_and(|r| r["flows"] == 600)
            && row(&v, "10.9.2.1").is_some_and(|r| r["flows"] == 0);
        if done {
            break v;
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    // Every insert and delete happened within the 10 s window of this line (the
    // generator took well under it): rates are the event counts over 10 s.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the machine was too slow for the 10 s window ({:?})",
        started.elapsed()
    );
    let gen = row(&settled, "10.9.3.1").unwrap();
    assert_eq!(gen["new_per_s"], 60.0, "{gen}");
    assert_eq!(gen["destroyed_per_s"], 0.0, "{gen}");
    let gone = row(&settled, "10.9.2.1").unwrap();
    assert_eq!(gone["destroyed_per_s"], 5.0, "{gone}");
    assert_eq!(gone["new_per_s"], 0.0, "{gone}");
    let big = row(&settled, "10.9.1.1").unwrap();
    assert_eq!(
        (big["new_per_s"].as_f64(), big["flows"].as_u64()),
        (Some(0.0), Some(5000))
    );
    assert_eq!(settled["flows"], 6000 + 600 - 50);

    // Group flush: the filter top printed for the biggest group removes exactly it.
    let filter = big["filter"].as_str().unwrap().to_owned();
    let out = ctscope(&lab.srv, &["flush", "--filter", &filter, "--yes"]);
    assert!(
        out.status.success(),
        "flush --filter '{filter}': {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&lab, "-s 10.9.1.1"), 0);
    assert_eq!(count(&lab, ""), 600 + 19 * 50);
    let doc = ctscope_json(&lab.srv, &["top", "--json"]);
    assert!(row(&doc, "10.9.1.1").is_none());
    assert_eq!(row(&doc, "10.9.3.1").unwrap()["flows"], 600);
}

/// `age` reads the kernel's start timestamp (`nf_conntrack_timestamp=1`): a flow inserted
/// now is younger than a minute and not older than an hour; without timestamps no flow
/// has an age, so neither matches.
#[test]
fn age_terms_read_the_start_timestamp() {
    if !privileged("age_terms_read_the_start_timestamp") {
        return;
    }
    let lab = Lab::new("age", SUBNET + 2);
    let listed = |expr: &str| {
        let out = ctscope(&lab.srv, &["list", "--filter", expr]);
        assert!(out.status.success(), "{expr}");
        String::from_utf8_lossy(&out.stdout).lines().count()
    };
    lab.restore(&lab.srv, &flows("10.9.4.1", 1000, 3, 0));
    assert_eq!(
        (listed("age<1m"), listed("age>=0")),
        (0, 0),
        "no timestamps yet"
    );
    lab.sh_ok(
        &lab.srv,
        "sysctl -qw net.netfilter.nf_conntrack_timestamp=1",
    );
    lab.restore(&lab.srv, &flows("10.9.4.2", 1000, 2, 0));
    assert_eq!(listed("age<1m"), 2);
    assert_eq!(listed("age>1h"), 0);
    assert_eq!(
        listed("not age>1h"),
        5,
        "flows without an age are not older than an hour"
    );
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(listed("age>=2 and age<=10"), 2);
}
