//! `ctscope stats`, `count` and the special lists against the real kernel and conntrack(8),
//! in a throwaway namespace pair (10.213.41.0/24): per-CPU counters agree with
//! `conntrack -S` / `-S expect` (each of conntrack's values lies between two ctscope
//! readings taken around it), `count` with `conntrack -C` and `-C expect` after real FTP
//! traffic left a pending expectation, `list --dying` answers, and `list --unconfirmed`
//! refuses to print an empty list on a kernel that keeps none (exit 3).

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::lab::{privileged, Lab};
use serde_json::Value;

const SUBNET: u8 = 41;

fn ctscope(ns: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ctscope"))
        .args(["--netns", ns])
        .args(args)
        .output()
        .expect("run ctscope")
}

fn ctscope_ok(ns: &str, args: &[&str]) -> String {
    let out = ctscope(ns, args);
    assert!(
        out.status.success(),
        "ctscope {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

/// `cpu=N \tname=value …` lines (conntrack -S, and ctscope stats' text) as
/// (cpu, name) → value.
fn parse_s(text: &str) -> BTreeMap<(u32, String), u64> {
    let mut m = BTreeMap::new();
    for line in text.lines() {
        let mut cpu = None;
        for word in line.split_whitespace() {
            let (k, v) = word.split_once('=').expect("name=value");
            let v: u64 = v.parse().expect("number");
            if k == "cpu" {
                cpu = Some(v as u32);
            } else {
                m.insert((cpu.expect("cpu first"), k.to_owned()), v);
            }
        }
    }
    m
}

/// The same map from `ctscope stats --json` (`cpus`, or `expect_cpus`).
fn parse_json(v: &Value, key: &str) -> BTreeMap<(u32, String), u64> {
    let mut m = BTreeMap::new();
    for c in v[key].as_array().expect("array") {
        let cpu = c["cpu"].as_u64().unwrap() as u32;
        for (k, x) in c.as_object().unwrap() {
            if k != "cpu" {
                m.insert((cpu, k.clone()), x.as_u64().unwrap());
            }
        }
    }
    m
}

/// Every conntrack(8) counter lies between ctscope's reading before and after it, and both
/// sides name exactly the same (cpu, counter) pairs.
fn assert_between(
    what: &str,
    before: &BTreeMap<(u32, String), u64>,
    theirs: &BTreeMap<(u32, String), u64>,
    after: &BTreeMap<(u32, String), u64>,
) {
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "{what}: ctscope and conntrack name different cpu/counter pairs"
    );
    for (k, t) in theirs {
        assert!(
            before[k] <= *t && *t <= after[k],
            "{what} {k:?}: conntrack says {t}, ctscope {} then {}",
            before[k],
            after[k]
        );
    }
}

/// A control connection that asks for PASV and then idles: the ftp helper leaves one
/// pending expectation while it lives.
fn hold_pasv(lab: &mut Lab) {
    let script = format!(
        "import ftplib,time\n\
         f=ftplib.FTP()\n\
         f.connect('{}',21,timeout=10)\n\
         f.login()\n\
         f.sendcmd('PASV')\n\
         time.sleep(60)\n",
        lab.srv4
    );
    let cli = lab.cli.clone();
    lab.spawn(&cli, &format!("/usr/bin/python3 -c \"{script}\""));
}

#[test]
fn stats_count_and_special_lists_agree_with_conntrack() {
    if !privileged("stats_count_and_special_lists_agree_with_conntrack") {
        return;
    }
    let mut lab = Lab::new("pressure", SUBNET);
    let dir = std::env::temp_dir().join(format!("ctscope-pressure-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hello.txt"), b"hello\n").unwrap();
    lab.ftp_helper();
    lab.ftp_server(dir.to_str().unwrap());
    // Real traffic: finished transfers (inserts, found) and one held PASV expectation.
    assert_eq!(lab.ftp_get(false, true, "hello.txt", 0), b"hello\n");
    assert_eq!(lab.ftp_get(true, false, "hello.txt", 0), b"hello\n");
    hold_pasv(&mut lab);
    // On this kernel `insert` counts ctnetlink inserts (nf_conntrack_hash_check_insert);
    // packet-path confirmation no longer increments it. Three of them make the counter move.
    let restore: String = (1..=3)
        .map(|p| format!("-I -p udp -s 10.9.0.1 -d 10.9.0.2 --sport {p} --dport 53 -t 300\n"))
        .collect();
    lab.restore(&lab.srv, &restore);
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab
        .sh_ok(&lab.srv, "conntrack -L expect 2>/dev/null | wc -l")
        .trim()
        == "0"
    {
        assert!(
            Instant::now() < deadline,
            "no pending expectation after 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // conntrack -S and -S expect, each between two ctscope readings.
    let read = |key: &str| {
        let v: Value = serde_json::from_str(&ctscope_ok(&lab.srv, &["stats", "--json"])).unwrap();
        parse_json(&v, key)
    };
    let before = read("cpus");
    let theirs = parse_s(&lab.sh_ok(&lab.srv, "conntrack -S"));
    let after = read("cpus");
    assert_between("conntrack -S", &before, &theirs, &after);
    let inserted: u64 = after
        .iter()
        .filter(|((_, k), _)| k == "insert")
        .map(|(_, v)| v)
        .sum();
    assert!(
        inserted >= 3,
        "three -I ran but insert is {inserted}: {after:?}"
    );
    let before = read("expect_cpus");
    let theirs = parse_s(&lab.sh_ok(&lab.srv, "conntrack -S expect"));
    let after = read("expect_cpus");
    assert_between("conntrack -S expect", &before, &theirs, &after);
    let created: u64 = after
        .iter()
        .filter(|((_, k), _)| k == "expect_create")
        .map(|(_, v)| v)
        .sum();
    assert!(
        created >= 1,
        "a PASV expectation exists but none was counted"
    );

    // The text form is conntrack's, value for value (the table is quiet now).
    let text = parse_s(&ctscope_ok(&lab.srv, &["stats"]));
    let theirs = parse_s(&lab.sh_ok(&lab.srv, "conntrack -S"));
    assert_eq!(text, theirs, "ctscope stats text differs from conntrack -S");

    // Global count and max, flows and expectations.
    let v: Value = serde_json::from_str(&ctscope_ok(&lab.srv, &["stats", "--json"])).unwrap();
    let max: u64 = lab
        .sh_ok(&lab.srv, "cat /proc/sys/net/netfilter/nf_conntrack_max")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(v["global"]["max_entries"].as_u64(), Some(max));
    let count: u64 = ctscope_ok(&lab.srv, &["count"]).trim().parse().unwrap();
    let theirs: u64 = lab.sh_ok(&lab.srv, "conntrack -C").trim().parse().unwrap();
    assert!(
        count >= 2,
        "the held control flow and others exist: {count}"
    );
    assert_eq!(count, theirs, "count vs conntrack -C");
    let v: Value = serde_json::from_str(&ctscope_ok(&lab.srv, &["count", "--json"])).unwrap();
    assert_eq!(
        (v["count"].as_u64(), v["max"].as_u64()),
        (Some(theirs), Some(max))
    );
    let exp: u64 = ctscope_ok(&lab.srv, &["count", "--expect"])
        .trim()
        .parse()
        .unwrap();
    let theirs: u64 = lab
        .sh_ok(&lab.srv, "conntrack -C expect")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(
        (exp, theirs),
        (1, 1),
        "count --expect vs conntrack -C expect"
    );

    // The special lists: dying answers (what it holds is said on stderr); unconfirmed on a
    // kernel without that list is an error line and exit 3, never an empty list.
    let out = ctscope(&lab.srv, &["list", "--dying"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("redelivery"));
    let out = ctscope(&lab.srv, &["list", "--unconfirmed", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "unconfirmed must not succeed empty"
    );
    assert!(
        out.stdout.is_empty(),
        "nothing printed as if it were the list"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("keeps no 'unconfirmed' list"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stats_on_a_recording_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_ctscope"))
        .args(["--replay", "assets/lab-helpers.ctrec", "stats"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("hint: drop --replay"));
}
