//! Kernel-side dump filtering (issue 9) on the real kernel: for conntrack(8) selectors the
//! kernel can evaluate (family, mark with mask, zone, status, `CTA_FILTER` tuple fields),
//! `ctscope list` selects exactly what it selects with the pushdown turned off
//! (`CTSCOPE_KERNEL_FILTER=0`), the kernel really sent fewer messages (counted by the
//! dump itself, reported with `CTSCOPE_DEBUG_DUMP=1`, and flagged `NLM_F_DUMP_FILTERED` by
//! the kernel), a filter the kernel refuses falls back to the plain dump, and what a
//! filtered dump leaves out but the output depends on (the master of a RELATED flow, the
//! RELATED children a delete plan counts) is fetched back.
//! Namespaces `ctscope-kfilter-…`, 10.213.46-49.0/24. Needs root; see `common::lab`.

mod common;

use std::process::Command;

use common::lab::{privileged, Lab};
use common::varied::table;
use ctscope::netlink::dump::DumpFilter;
use ctscope::netlink::{Conn, Namespace, Table};
use serde_json::Value;

const SUBNET: u8 = 46;

/// `ctscope --netns NS ARGS` with the pushdown on or off and the dump report on.
fn ctscope(ns: &str, args: &[&str], pushdown: bool) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ctscope"))
        .args(["--netns", ns])
        .args(args)
        .env("CTSCOPE_DEBUG_DUMP", "1")
        .env("CTSCOPE_KERNEL_FILTER", if pushdown { "1" } else { "0" })
        .output()
        .expect("run ctscope")
}

/// The flow dump's report line: (what was asked, messages received, kernel filtered).
fn flow_dump(stderr: &[u8]) -> (String, usize, bool, bool) {
    let s = String::from_utf8_lossy(stderr);
    let line = s
        .lines()
        .find(|l| l.starts_with("ctscope: debug: dump flows:"))
        .unwrap_or_else(|| panic!("no flow dump report in {s}"));
    let asked = line
        .split("kernel filter ")
        .nth(1)
        .and_then(|r| r.split(';').next())
        .unwrap_or("")
        .to_owned();
    let messages = line
        .split("; ")
        .find_map(|p| p.strip_suffix(" messages"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no message count in {line}"));
    (
        asked,
        messages,
        line.contains("kernel filtered: yes"),
        line.contains("dumped unfiltered"),
    )
}

/// `list --json ARGS` as comparable values: every entry without its timeout (it ticks
/// between two runs), in output order.
fn listed(ns: &str, args: &[&str], pushdown: bool) -> (Vec<Value>, (String, usize, bool, bool)) {
    let mut all = vec!["list", "--json"];
    all.extend_from_slice(args);
    let out = ctscope(ns, &all, pushdown);
    assert!(
        out.status.success(),
        "ctscope {all:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let mut rows = v.as_array().expect("array").clone();
    for r in &mut rows {
        r.as_object_mut().expect("object").remove("timeout");
    }
    (rows, flow_dump(&out.stderr))
}

/// Cases the kernel filters (each must make it send fewer messages), with what the
/// request must carry.
const PUSHED: &[(&str, &str)] = &[
    ("-f ipv6", "family=ipv6"),
    ("-m 2", "mark=0x2/0xffffffff"),
    ("-m 0x2/0x3", "mark=0x2/0x3"),
    ("-w 2", "zone=2"),
    ("--orig-zone 1", "zone=1"),
    ("--reply-zone 3", "zone=3"),
    ("-u SEEN_REPLY,ASSURED", "status=0x6/0x6"),
    ("-u UNREPLIED", "status=0x0/0x2"),
    // IPv6 addresses stay in userspace (the kernel's IPv6 test is inverted); the family goes.
    ("-s fd00:42::a", "family=ipv6"),
    ("-d 192.0.2.3", "family=ipv4 orig-flags=0x2"),
    ("-r 10.7.7.7", "family=ipv4 reply-flags=0x1"),
    ("-f ipv4 -p udp --dport 53", "family=ipv4 orig-flags=0x28"),
    (
        "-f ipv6 -p tcp --orig-port-src 2009",
        "family=ipv6 orig-flags=0x18",
    ),
    (
        "-f ipv4 -p udp --reply-port-src 5353",
        "family=ipv4 orig-flags=0x8 reply-flags=0x18",
    ),
    (
        "-f ipv4 -p icmp --icmp-type 8 --icmp-id 2",
        "family=ipv4 orig-flags=0x148",
    ),
    (
        "-p tcp -u SEEN_REPLY -m 2",
        "mark=0x2/0xffffffff status=0x2/0x2",
    ),
    (
        "-f ipv4 -p tcp --state ESTABLISHED -d 192.0.2.3",
        "family=ipv4 orig-flags=0xa",
    ),
    ("-s 10.214.1.0/24", "family=ipv4"),
];

/// Cases the kernel cannot filter: the plain dump, and the same selection.
const NOT_PUSHED: &[&str] = &[
    "-p udp",
    "-w 0",
    "-n",
    "-p tcp --dport 443",
    "-j 198.51.100.1",
];

#[test]
fn pushdown_selects_the_same_and_the_kernel_sends_less() {
    if !privileged("pushdown_selects_the_same_and_the_kernel_sends_less") {
        return;
    }
    let lab = Lab::new("kfilter", SUBNET);
    lab.restore(&lab.srv, &table(900));
    let (all, (asked, total, filtered, _)) = listed(&lab.srv, &[], true);
    assert_eq!((all.len(), total), (900, 900));
    assert_eq!((asked.as_str(), filtered), ("none", false));
    for (case, want) in PUSHED {
        let args: Vec<&str> = case.split_whitespace().collect();
        let (ours, (asked, n, filtered, fallback)) = listed(&lab.srv, &args, true);
        let (plain, (plain_asked, plain_n, ..)) = listed(&lab.srv, &args, false);
        assert_eq!(
            ours, plain,
            "`{case}`: the selection changed with the pushdown"
        );
        assert!(!ours.is_empty(), "`{case}` selects nothing: a weak case");
        assert_eq!(asked, *want, "`{case}`: the request");
        assert_eq!(
            (plain_asked.as_str(), plain_n),
            ("none", 900),
            "`{case}` off"
        );
        assert!(filtered && !fallback, "`{case}`: the kernel did not filter");
        assert!(
            n < total && n >= ours.len(),
            "`{case}`: {n} messages for {} entries of {total}",
            ours.len()
        );
    }
    for case in NOT_PUSHED {
        let args: Vec<&str> = case.split_whitespace().collect();
        let (ours, (asked, n, ..)) = listed(&lab.srv, &args, true);
        let (plain, _) = listed(&lab.srv, &args, false);
        assert_eq!(ours, plain, "`{case}`");
        assert!(!ours.is_empty(), "`{case}` selects nothing: a weak case");
        assert_eq!((asked.as_str(), n), ("none", total), "`{case}`");
    }
    // A free-form expression: only its required conjuncts go to the kernel.
    let (ours, (asked, ..)) = listed(
        &lab.srv,
        &["-F", "mark=2 and (proto=udp or dport=22)"],
        true,
    );
    let (plain, _) = listed(
        &lab.srv,
        &["-F", "mark=2 and (proto=udp or dport=22)"],
        false,
    );
    assert_eq!(ours, plain);
    assert_eq!(asked, "mark=0x2/0xffffffff");
    let (_, (asked, n, ..)) = listed(&lab.srv, &["-F", "mark=2 or mark=3"], true);
    assert_eq!((asked.as_str(), n), ("none", total));
}

/// A 1,000-entry table where 1% carries mark 0x110: `-m 0x10/0xff` receives 10 messages
/// from the kernel, against 1,000 without the pushdown, and `top` and `delete` agree.
#[test]
fn mark_with_mask_is_filtered_by_the_kernel() {
    if !privileged("mark_with_mask_is_filtered_by_the_kernel") {
        return;
    }
    let lab = Lab::new("kfilter-mark", SUBNET + 1);
    let lines: String = (0..1000u32)
        .map(|i| {
            let mark = if i % 100 == 7 { 0x110 } else { i % 5 };
            format!(
                "-I -p tcp -s 10.215.{}.{} -d 192.0.2.1 --sport {} --dport 80 --state ESTABLISHED -u SEEN_REPLY,ASSURED -t 600 --mark {mark}\n",
                i / 250,
                i % 250 + 1,
                2000 + i
            )
        })
        .collect();
    lab.restore(&lab.srv, &lines);
    let (ours, (asked, n, filtered, _)) = listed(&lab.srv, &["-m", "0x10/0xff"], true);
    assert_eq!(asked, "mark=0x10/0xff");
    assert_eq!((ours.len(), n, filtered), (10, 10, true));
    let (plain, (_, plain_n, plain_filtered, _)) = listed(&lab.srv, &["-m", "0x10/0xff"], false);
    assert_eq!((plain_n, plain_filtered), (1000, false));
    assert_eq!(ours, plain);
    assert!(ours.iter().all(|f| f["mark"] == 0x110));

    // `top` groups the same ten flows from a ten-message dump.
    let top = ctscope(
        &lab.srv,
        &["top", "--by", "dport", "--json", "-m", "0x10/0xff"],
        true,
    );
    assert!(
        top.status.success(),
        "{}",
        String::from_utf8_lossy(&top.stderr)
    );
    assert_eq!(flow_dump(&top.stderr).1, 10);
    let top_plain = ctscope(
        &lab.srv,
        &["top", "--by", "dport", "--json", "-m", "0x10/0xff"],
        false,
    );
    let strip = |b: &[u8]| -> Value {
        let mut v: Value = serde_json::from_slice(b).expect("top JSON");
        // The share of nf_conntrack_max reads a global sysctl another test may move.
        let o = v.as_object_mut().expect("top object");
        o.retain(|k, _| ["by", "flows", "groups", "rows"].contains(&k.as_str()));
        for r in o["rows"].as_array_mut().expect("rows") {
            r.as_object_mut().expect("row").remove("share_of_max");
        }
        v
    };
    assert_eq!(strip(&top.stdout), strip(&top_plain.stdout));

    // `delete` removes exactly those ten, from a ten-message dump.
    let del = ctscope(&lab.srv, &["delete", "--yes", "-m", "0x10/0xff"], true);
    assert!(
        del.status.success(),
        "{}",
        String::from_utf8_lossy(&del.stderr)
    );
    assert_eq!(flow_dump(&del.stderr).1, 10);
    let left = lab.sh_ok(&lab.srv, "conntrack -C");
    assert_eq!(left.trim(), "990");
    let again = lab.sh_ok(&lab.srv, "conntrack -L -m 0x10/0xff 2>/dev/null | wc -l");
    assert_eq!(again.trim(), "0");
}

/// The kernel refuses a filter (an ICMP type it cannot invert, `icmp_nlattr_to_tuple`;
/// `CTA_STATUS` with a zero mask): the plain dump follows, once, and the output is the
/// same as without the pushdown.
#[test]
fn a_refused_filter_falls_back_to_the_plain_dump() {
    if !privileged("a_refused_filter_falls_back_to_the_plain_dump") {
        return;
    }
    let lab = Lab::new("kfilter-fallback", SUBNET + 2);
    let mut lines = table(200);
    lines.push_str(&format!(
        "-I -p icmp -s {} -d {} --icmp-type 13 --icmp-code 0 --icmp-id 9 -t 500\n",
        "10.215.9.1", "10.215.9.2"
    ));
    lab.restore(&lab.srv, &lines);
    // The command line: type 3 (unreachable) has no reply type; the kernel says EINVAL.
    let args = ["-f", "ipv4", "-p", "icmp", "--icmp-type", "3"];
    let (ours, (asked, n, filtered, fallback)) = listed(&lab.srv, &args, true);
    let (plain, _) = listed(&lab.srv, &args, false);
    assert_eq!(ours, plain);
    assert_eq!(asked, "family=ipv4 orig-flags=0x48");
    assert!(fallback && !filtered, "expected the fallback");
    assert_eq!(n, 201, "the whole table after the fallback");
    // A type the kernel takes (timestamp request, 13) is filtered there.
    let args = ["-f", "ipv4", "-p", "icmp", "--icmp-type", "13"];
    let (ours, (_, n, filtered, fallback)) = listed(&lab.srv, &args, true);
    assert_eq!((ours.len(), n, filtered, fallback), (1, 1, true, false));

    // The library: an invalid attribute (CTA_STATUS with mask 0) comes back EINVAL and
    // the dump is redone without it; a valid one is flagged NLM_F_DUMP_FILTERED.
    let mut conn = Conn::open(&Namespace::parse(&lab.srv)).expect("open");
    let bad = DumpFilter {
        status: Some((0, 0)),
        ..DumpFilter::default()
    };
    let mut got = 0;
    let out = conn
        .dump_filtered(Table::Flows, &bad, &mut |_| got += 1)
        .expect("dump with fallback");
    assert_eq!(out.fallback, Some(libc::EINVAL));
    assert_eq!((out.messages, got, out.filtered), (201, 201, false));
    let ipv6 = DumpFilter {
        family: libc::AF_INET6 as u8,
        ..DumpFilter::default()
    };
    let out = conn
        .dump_filtered(Table::Flows, &ipv6, &mut |_| {})
        .expect("ipv6 dump");
    assert!(out.filtered && out.fallback.is_none());
    assert!(out.messages > 0 && out.messages < 201);
    // The connection still works for a plain dump afterwards.
    assert_eq!(conn.dump(Table::Flows, &mut |_| {}).unwrap().messages, 201);
}

/// A real FTP transfer leaves a master (helper ftp) and its RELATED data flow. Selecting
/// the RELATED flow only (`-u EXPECTED`, filtered by the kernel) still judges it with its
/// master's reply tuple and helper, fetched back; a delete plan over the master only
/// (`-p tcp --dport 21`) still counts it as a master with children.
#[test]
fn what_the_output_depends_on_is_fetched_back() {
    if !privileged("what_the_output_depends_on_is_fetched_back") {
        return;
    }
    let mut lab = Lab::new("kfilter-ftp", SUBNET + 3);
    let dir = std::env::temp_dir().join(format!("ctscope-kfilter-ftp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("f.bin"), vec![7u8; 4096]).unwrap();
    lab.ftp_helper();
    lab.ftp_server(dir.to_str().unwrap());
    assert_eq!(lab.ftp_get(false, true, "f.bin", 0).len(), 4096);
    let _ = std::fs::remove_dir_all(&dir);

    let (ours, (asked, n, filtered, _)) = listed(&lab.srv, &["-u", "EXPECTED"], true);
    let (plain, _) = listed(&lab.srv, &["-u", "EXPECTED"], false);
    assert_eq!(asked, "status=0x1/0x1");
    assert!(
        filtered && n == ours.len(),
        "{n} messages, {} flows",
        ours.len()
    );
    assert!(!ours.is_empty(), "no RELATED flow after the transfer");
    assert_eq!(
        ours, plain,
        "RELATED flows judged differently with the pushdown"
    );
    assert!(
        ours.iter().all(|f| !f["freedom"].is_null()),
        "RELATED flows carry a verdict: {ours:?}"
    );
    let out = ctscope(&lab.srv, &["list", "-u", "EXPECTED"], true);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("masters of RELATED flows fetched: 1 of 1"),
        "{err}"
    );

    let args = [
        "delete",
        "--dry-run",
        "-f",
        "ipv4",
        "-p",
        "tcp",
        "--dport",
        "21",
    ];
    let ours = ctscope(&lab.srv, &args, true);
    let plain = ctscope(&lab.srv, &args, false);
    assert!(
        ours.status.success(),
        "{}",
        String::from_utf8_lossy(&ours.stderr)
    );
    assert_eq!(flow_dump(&ours.stderr).0, "family=ipv4 orig-flags=0x28");
    assert_eq!(
        String::from_utf8_lossy(&ours.stdout),
        String::from_utf8_lossy(&plain.stdout),
        "the delete plan changed with the pushdown"
    );
    let err = String::from_utf8_lossy(&ours.stderr);
    assert!(err.contains("dump RELATED flows"), "{err}");
}
