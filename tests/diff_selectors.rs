//! Differential test of the conntrack(8) selectors: one varied table (both families, tcp,
//! udp, icmp, sctp, gre; SNAT and DNAT set up by the kernel through `--src-nat`/`--dst-nat`,
//! reply tuples that differ without NAT, per-direction and CTA_ZONE zones, marks, states
//! and status bits) loaded with `conntrack -R`; for every selector of the one table in
//! `filter::selectors`, alone and in combinations, `ctscope list FLAGS` selects exactly the
//! ids `conntrack -L FLAGS` selects, and `ctscope delete FLAGS --yes` leaves exactly the
//! table `conntrack -D FLAGS` leaves (two namespaces, same table), with the same exit
//! status (1 when nothing matched). Namespaces `ctscope-selectors-…`, 10.213.42.0/24.
//! Needs root; see `common::lab::privileged`.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::lab::{privileged, Lab};
use common::varied::table;
use serde_json::Value;

const SUBNET: u8 = 42;

/// The ids `conntrack -L ARGS -o id` prints in `ns` (and its exit status).
fn conntrack_ids(lab: &Lab, ns: &str, args: &str) -> BTreeSet<u64> {
    lab.sh(ns, &format!("conntrack -L {args} -o id 2>/dev/null"))
        .stdout
        .split(|b| *b == b'\n')
        .filter_map(|l| {
            let l = String::from_utf8_lossy(l);
            l.split_whitespace()
                .rev()
                .find_map(|w| w.strip_prefix("id=").and_then(|v| v.parse().ok()))
        })
        .collect()
}

fn ctscope(ns: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ctscope"))
        .args(["--netns", ns])
        .args(args)
        .output()
        .expect("run ctscope")
}

fn ctscope_ids(ns: &str, args: &[&str]) -> BTreeSet<u64> {
    let mut all = vec!["list", "--json"];
    all.extend_from_slice(args);
    let out = ctscope(ns, &all);
    assert!(
        out.status.success(),
        "ctscope {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    v.as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_u64().unwrap())
        .collect()
}

/// `conntrack -L` of `ns` without the timeouts, ids and use counts, sorted: the table as
/// two namespaces can compare it.
fn table_of(lab: &Lab, ns: &str) -> Vec<String> {
    let mut v: Vec<String> = lab
        .sh_ok(ns, "conntrack -L 2>/dev/null")
        .lines()
        .map(|l| {
            l.split_whitespace()
                .enumerate()
                .filter(|(i, w)| *i != 2 && !w.starts_with("use="))
                .map(|(_, w)| w)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    v.sort();
    v
}

/// Selector cases: (conntrack flags, the same for ctscope). Each is one selector of the
/// table, or a combination; spelled as conntrack spells them.
const CASES: &[&str] = &[
    "-f ipv6",
    "-f ipv4",
    "-p udp",
    "-p sctp",
    "-p gre",
    "-s 10.214.1.0/24",
    "-s fd00:42::a",
    "-d 192.0.2.3",
    "--orig-src 10.214.0.6",
    "--orig-dst 192.0.2.3",
    "-r 10.7.7.7",
    "-r 10.9.9.1",
    "-q 198.51.100.2",
    "-q fd00:99::1",
    "-p tcp --orig-port-src 2009",
    "-p tcp --orig-port-dst 443",
    "-p udp --sport 2003",
    "-p udp --dport 53",
    "-p udp --reply-port-src 5353",
    "-p udp --reply-port-src 5300",
    "-p tcp --reply-port-dst 40001",
    "-n",
    "-n 198.51.100.1",
    "-n 198.51.100.1:40000",
    "-g",
    "-g 10.9.9.2",
    "-g 10.9.9.2:5354",
    "-j",
    "-j 198.51.100.1",
    "-p tcp --state ESTABLISHED",
    "-p tcp --state TIME_WAIT",
    "-u SEEN_REPLY",
    "-u ASSURED",
    "-u UNREPLIED",
    "-u SEEN_REPLY,ASSURED",
    "-m 2",
    "-m 6",
    "-m 0x2/0x3",
    "-w 2",
    "-w 0",
    "--orig-zone 1",
    "--reply-zone 3",
    "-p icmp --icmp-type 8",
    "-p icmp --icmp-id 2",
    "-p icmp --icmp-code 0",
    "-f ipv4 -p tcp --state ESTABLISHED -d 192.0.2.3",
    "-p tcp -u SEEN_REPLY -m 2",
    "-n -p tcp",
    "-f ipv6 -j",
    "-p tcp -s 10.214.0.0/16 --dport 443",
    "-w 2 -p udp",
    "-p udp -d 192.0.2.1 -u UNREPLIED",
];

#[test]
fn selectors_select_what_conntrack_selects() {
    if !privileged("selectors_select_what_conntrack_selects") {
        return;
    }
    let lab = Lab::new("selectors", SUBNET);
    let lines = table(900);
    lab.restore(&lab.srv, &lines);
    let all = conntrack_ids(&lab, &lab.srv, "");
    assert_eq!(all.len(), 900, "the whole table loaded");
    let mut empty = Vec::new();
    for case in CASES {
        let theirs = conntrack_ids(&lab, &lab.srv, case);
        let args: Vec<&str> = case.split_whitespace().collect();
        let ours = ctscope_ids(&lab.srv, &args);
        assert_eq!(
            ours,
            theirs,
            "`{case}`: ctscope only {:?}, conntrack only {:?}",
            ours.difference(&theirs).take(5).collect::<Vec<_>>(),
            theirs.difference(&ours).take(5).collect::<Vec<_>>()
        );
        assert!(
            theirs.len() < all.len(),
            "`{case}` selects everything: a weak case"
        );
        if theirs.is_empty() {
            empty.push(*case);
        }
    }
    assert!(
        empty.is_empty(),
        "cases that select nothing prove nothing: {empty:?}"
    );
}

#[test]
fn delete_leaves_what_conntrack_delete_leaves() {
    if !privileged("delete_leaves_what_conntrack_delete_leaves") {
        return;
    }
    let lab = Lab::new("selectors-del", SUBNET + 1);
    let lines = table(400);
    let cases = [
        "-p udp --dport 53",
        "-n",
        "-g 10.9.9.2:5354",
        // Not `-j`: conntrack -D refuses it ("Illegal option"); ctscope accepts it.
        "-n 198.51.100.1",
        "-r 10.7.7.7",
        // Not `-u UNREPLIED`: conntrack 1.4.7's -D ignores it and deletes every flow of the
        // family (seen on this kernel); see `delete_unreplied_removes_only_unreplied`.
        "-u SEEN_REPLY -f ipv4",
        "-m 0x2/0x3",
        "--reply-zone 3",
        "-p icmp --icmp-id 2",
        "-p tcp --state TIME_WAIT -s 10.214.0.0/16",
        "-d 192.0.2.99",
    ];
    for case in cases {
        for ns in [&lab.srv, &lab.cli] {
            lab.sh_ok(ns, "conntrack -F 2>/dev/null");
            lab.restore(ns, &lines);
        }
        let args: Vec<&str> = case.split_whitespace().collect();
        let mut all = vec!["delete", "--yes"];
        all.extend_from_slice(&args);
        let ours = ctscope(&lab.srv, &all);
        let theirs = lab.sh(&lab.cli, &format!("conntrack -D {case} >/dev/null 2>&1"));
        assert_eq!(
            ours.status.code(),
            theirs.status.code(),
            "`{case}`: exit status; ctscope said {}",
            String::from_utf8_lossy(&ours.stderr)
        );
        let (a, b) = (table_of(&lab, &lab.srv), table_of(&lab, &lab.cli));
        assert!(
            a.len() < 400 || case.contains("192.0.2.99"),
            "`{case}` deleted nothing"
        );
        if a != b {
            let (sa, sb): (BTreeSet<_>, BTreeSet<_>) = (a.iter().collect(), b.iter().collect());
            panic!(
                "`{case}`: the tables differ after the delete; kept only by ctscope {:?}, only by conntrack {:?}",
                sa.difference(&sb).take(4).collect::<Vec<_>>(),
                sb.difference(&sa).take(4).collect::<Vec<_>>()
            );
        }
    }
}

/// `delete -u UNREPLIED` removes exactly what `conntrack -L -u UNREPLIED` lists, where
/// conntrack 1.4.7's own `-D -u UNREPLIED` removes replied flows too.
#[test]
fn delete_unreplied_removes_only_unreplied() {
    if !privileged("delete_unreplied_removes_only_unreplied") {
        return;
    }
    let lab = Lab::new("selectors-unr", SUBNET + 2);
    lab.restore(&lab.srv, &table(300));
    let norm = |lines: &str| -> BTreeSet<String> {
        lines
            .lines()
            .map(|l| {
                l.split_whitespace()
                    .enumerate()
                    .filter(|(i, w)| *i != 2 && !w.starts_with("use="))
                    .map(|(_, w)| w)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    };
    let before = norm(&lab.sh_ok(&lab.srv, "conntrack -L 2>/dev/null"));
    let unreplied = norm(&lab.sh_ok(&lab.srv, "conntrack -L -u UNREPLIED 2>/dev/null"));
    assert!(!unreplied.is_empty() && unreplied.len() < before.len());
    let out = ctscope(&lab.srv, &["delete", "--yes", "-u", "UNREPLIED"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = norm(&lab.sh_ok(&lab.srv, "conntrack -L 2>/dev/null"));
    let expected: BTreeSet<String> = before.difference(&unreplied).cloned().collect();
    assert_eq!(after, expected);
}
