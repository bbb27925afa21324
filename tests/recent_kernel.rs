//! `ctscope recent` against the real kernel (issue 11): seed 004's four-stage knock
//! (ping → TCP echo → TCP 8000 within the limit → MySQL 3306) built once with iptables
//! (xt_recent lists) and once in native nftables (dynamic sets), in the server namespace
//! of a two-namespace lab. The client namespace sends the knocks with a small Python
//! script (raw-socket ping, TCP connects) and a real listener on 3306 answers.
//!
//! Three sequences each: a correct knock within the limits, which reaches 3306 and leaves
//! an ESTABLISHED flow linked to `seenbackend`; a knock too slow for the (scaled-down,
//! 2 s) window, which stops at a stage; and a scan, which advances none. Progress is read
//! from `recent --json` and from the dashboard in tmux (both schemes); remove
//! and flush are checked against /proc/net/xt_recent and
//! `nft list set`; the audit flags the seed's exact rules and passes a fixed version.

mod common;

use std::process::{Command, Output};
use std::time::Duration;

use common::lab::{privileged, Lab};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ctscope");

/// Knock client: `knock.py ADDR STEP…` with steps `ping`, `PORT` (one connect attempt,
/// 0.5 s), `sleepSECS`, `holdPORT` (connect, print connected/refused, keep it open 30 s).
const KNOCK_PY: &str = r#"
import os, socket, struct, sys, time
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return ~s & 0xffff
def ping(a):
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    # A fresh echo id per run: a repeated id would match the earlier ping's conntrack
    # entry, and the ESTABLISHED accept rule would take it before the knock rule.
    h = struct.pack('!BBHHH', 8, 0, 0, os.getpid() & 0xffff, 1) + b'knock'
    s.sendto(h[:2] + struct.pack('!H', csum(h)) + h[4:], (a, 0)); s.close()
def tcp(a, p, t=0.5):
    s = socket.socket(); s.settimeout(t)
    try:
        s.connect((a, p)); return s
    except Exception:
        return None
for step in sys.argv[2:]:
    if step == 'ping': ping(sys.argv[1])
    elif step.startswith('sleep'): time.sleep(float(step[5:]))
    elif step.startswith('hold'):
        c = tcp(sys.argv[1], int(step[4:]), 1.5)
        print('connected' if c else 'refused', flush=True)
        if c: time.sleep(30)
    else: tcp(sys.argv[1], int(step))
    time.sleep(0.05)
"#;

/// Seed 004's commands, with `--seconds 10` scaled to 2 and a default-drop INPUT so an
/// unknocked 3306 is refused (established traffic accepted first).
const SEED_IPTABLES: &str = "\
iptables -P INPUT DROP
iptables -A INPUT -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
iptables -A INPUT -p icmp --icmp-type 8 -m recent --name seenping --set -j ACCEPT
iptables -N ADD_ECHO
iptables -A INPUT -p tcp --dport echo -m recent --name seenping --rcheck -j ADD_ECHO
iptables -A ADD_ECHO -m recent --name seenecho --set -j ACCEPT
iptables -N ADD_BACKEND
iptables -A INPUT -p tcp --dport 8000 -m recent --name seenecho --rcheck --seconds 2 -j ADD_BACKEND
iptables -A INPUT -m recent --name seenecho --remove
iptables -A ADD_BACKEND -m recent --name seenbackend --set -j ACCEPT
iptables -A INPUT -p tcp --dport 3306 -m recent --name seenbackend --rcheck -j ACCEPT
";

/// The same scheme in native nftables: dynamic sets, the 2 s window as seenecho's
/// element timeout, `delete @seenecho` for the seed's `--remove`.
const SEED_NFT: &str = "
table inet knock {
  set seenping { type ipv4_addr; flags dynamic; }
  set seenecho { type ipv4_addr; flags dynamic,timeout; }
  set seenbackend { type ipv4_addr; flags dynamic; }
  chain add_echo { add @seenecho { ip saddr timeout 2s } accept; }
  chain add_backend { add @seenbackend { ip saddr } accept; }
  chain input {
    type filter hook input priority 0; policy drop;
    ct state established,related accept
    icmp type echo-request add @seenping { ip saddr } accept
    tcp dport 7 ip saddr @seenping jump add_echo
    tcp dport 8000 ip saddr @seenecho jump add_backend
    delete @seenecho { ip saddr }
    tcp dport 3306 ip saddr @seenbackend accept
  }
}
";

fn ctscope(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run ctscope")
}

fn recent_json(ns: &str) -> Value {
    let out = ctscope(&["--netns", ns, "recent", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

/// The progress entry of `addr`, if any.
fn progress_of(v: &Value, addr: &str) -> Option<Value> {
    v["progress"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["addr"] == addr)
        .cloned()
}

/// The knock client on disk for the lab's lifetime; removed on drop.
struct Script(std::path::PathBuf);

impl Drop for Script {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Script {
    fn path(&self) -> String {
        self.0.display().to_string()
    }
}

fn setup(lab: &mut Lab) -> Script {
    // One file per lab: the tests of this file run in parallel.
    let script = Script(std::env::temp_dir().join(format!("{}-knock.py", lab.srv)));
    std::fs::write(&script.0, KNOCK_PY).unwrap();
    lab.spawn(
        &lab.srv.clone(),
        "/usr/bin/python3 -c \"import socket,time\ns=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', 3306)); s.listen(16)\nc=[]\nwhile True: c.append(s.accept())\"",
    );
    lab.wait_listen(&lab.srv.clone(), 3306);
    script
}

fn knock(lab: &Lab, script: &str, steps: &str) -> String {
    lab.sh_ok(
        &lab.cli,
        &format!("/usr/bin/python3 {script} {} {steps}", lab.srv4),
    )
}

/// Start a knock whose last step holds 3306 open in the background; return when it has
/// printed its verdict.
fn knock_and_hold(lab: &mut Lab, script: &str, steps: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let out = std::env::temp_dir().join(format!("ctscope-knock-{}-{n}.out", std::process::id()));
    let _ = std::fs::remove_file(&out);
    lab.spawn(
        &lab.cli.clone(),
        &format!(
            "/usr/bin/python3 {script} {} {steps} hold3306 > {}",
            lab.srv4,
            out.display()
        ),
    );
    for _ in 0..200 {
        let s = std::fs::read_to_string(&out).unwrap_or_default();
        if !s.trim().is_empty() {
            let _ = std::fs::remove_file(&out);
            return s.trim().to_owned();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the knock client printed nothing");
}

fn xt(lab: &Lab, list: &str) -> String {
    lab.sh_ok(&lab.srv, &format!("cat /proc/net/xt_recent/{list}"))
}

/// Bad input is refused before anything is read or touched (no root needed).
#[test]
fn bad_names_and_replay_are_usage_errors() {
    for bad in ["../seenping", "a/b", "..", "/proc/net/xt_recent/x"] {
        let out = ctscope(&["recent", "flush", bad, "--yes"]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("not a plain name"), "{err}");
        let out = ctscope(&["recent", "delete", bad, "10.0.0.1", "--yes"]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
    }
    let out = ctscope(&["recent", "delete", "seenping", "10.0.0.999", "--yes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("'10.0.0.999' is not an IPv4 or IPv6 address"));
    // A recording cannot be changed; reading one that is missing names it.
    let out = ctscope(&[
        "--replay",
        "/nonexistent.ctrec",
        "recent",
        "flush",
        "x",
        "--yes",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("drop --replay"));
    let out = ctscope(&["--replay", "/nonexistent.ctrec", "recent"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("'/nonexistent.ctrec'"));
}

#[test]
fn iptables_seed_knock_progress_links_and_actions() {
    if !privileged("iptables_seed_knock_progress_links_and_actions") {
        return;
    }
    let mut lab = Lab::new("rcx", 61);
    let srv = lab.srv.clone();
    lab.sh_ok(&srv, SEED_IPTABLES);
    let script_file = setup(&mut lab);
    let script = script_file.path();
    let cli4 = lab.cli4.clone();

    // The machine as rebuilt from the rules.
    let v = recent_json(&srv);
    assert_eq!(v["hz"].as_u64().map(|h| h > 0), Some(true));
    let m = &v["machines"][0];
    let lists: Vec<_> = m["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["list"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(lists, ["seenping", "seenecho", "seenbackend"], "{m:#}");
    assert_eq!(m["opens"][0]["packet"]["dport"], "3306");

    // (c) A scan first: nothing advances.
    knock(&lab, &script, "7 8000 3306 22 80 443");
    let v = recent_json(&srv);
    assert!(progress_of(&v, &cli4).is_none(), "{v:#}");
    assert!(!xt(&lab, "seenping").contains(&cli4));

    // A knock halfway: stage 2/4 with time left to knock 8000.
    knock(&lab, &script, "ping 7");
    let p = progress_of(&recent_json(&srv), &cli4).expect("progress after ping, echo");
    assert_eq!(p["stage"], 2, "{p:#}");
    assert_eq!(p["of"], 4);
    assert_eq!(p["list"], "seenecho");
    assert!(p["seconds_left"].as_f64().unwrap() > 0.0, "{p:#}");
    assert!(
        p["text"].as_str().unwrap().contains("s left to knock 8000"),
        "{p:#}"
    );
    // The text report says the same.
    let out = ctscope(&["--netns", &srv, "recent"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("{cli4}: stage 2/4 (seenecho), "))
            && text.contains("s left to knock 8000"),
        "{text}"
    );
    assert!(
        text.contains(
            "ping → seenping → 7 → seenecho → 8000 within 2 s → seenbackend → 3306 opens"
        ),
        "{text}"
    );
    // Entries carry hits and ages converted from jiffies (seconds, not ticks).
    let v = recent_json(&srv);
    let seenping = v["xt_recent"]["lists"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "seenping")
        .unwrap()
        .clone();
    let e = &seenping["entries"][0];
    assert_eq!(e["addr"], cli4.as_str());
    assert_eq!(e["hits"], 1);
    let age = e["last_seen_ago_s"].as_f64().unwrap();
    assert!(
        (0.0..5.0).contains(&age),
        "age {age} s: jiffies converted wrongly?"
    );

    // (a) Complete it within the window: 3306 answers and the flow links to seenbackend.
    assert_eq!(knock_and_hold(&mut lab, &script, "8000"), "connected");
    let v = recent_json(&srv);
    let p = progress_of(&v, &cli4).unwrap();
    assert_eq!(p["stage"], 3, "{p:#}");
    assert_eq!(p["list"], "seenbackend");
    assert_eq!(p["open"], true);
    let admitted = v["admitted"].as_array().unwrap();
    assert!(
        admitted.iter().any(|a| a["list"] == "seenbackend"
            && a["addr"] == cli4.as_str()
            && a["dport"] == 3306
            && a["state"] == "ESTABLISHED"),
        "{v:#}"
    );

    // Flush every list, verified in procfs.
    for l in ["seenping", "seenecho", "seenbackend"] {
        let out = ctscope(&["--netns", &srv, "recent", "flush", l, "--yes"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(xt(&lab, l).trim(), "", "{l} not flushed");
    }

    // (b) Too slow: the window to knock 8000 runs out at stage 2, and 3306 stays shut.
    knock(&lab, &script, "ping 7 sleep2.6");
    let p = progress_of(&recent_json(&srv), &cli4).unwrap();
    assert_eq!(p["stage"], 2, "{p:#}");
    assert_eq!(p["expired"], true, "{p:#}");
    assert!(p["text"].as_str().unwrap().contains("too slow"), "{p:#}");
    assert_eq!(knock_and_hold(&mut lab, &script, "8000"), "refused");
    let v = recent_json(&srv);
    let p = progress_of(&v, &cli4).unwrap();
    // The late 8000 fell through to the --remove rule: back to stage 1.
    assert_eq!(p["stage"], 1, "{p:#}");
    assert!(!xt(&lab, "seenbackend").contains(&cli4));

    // Delete one address: dry run leaves it, --yes removes it (procfs agrees).
    let out = ctscope(&[
        "--netns",
        &srv,
        "recent",
        "delete",
        "seenping",
        &cli4,
        "--dry-run",
    ]);
    assert!(out.status.success());
    assert!(xt(&lab, "seenping").contains(&cli4));
    let out = ctscope(&["--netns", &srv, "recent", "delete", "seenping", &cli4]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "no --yes with stdin not a terminal"
    );
    // The admin's own SSH address is never removed without asking: here the session is
    // named by SSH_CONNECTION (honoured when no sshd is among ctscope's ancestors; under a
    // real SSH login the process tree names the session and this part is not checked).
    if ctscope::ssh::session().is_none() {
        let own = format!("{cli4} 40000 {} 22", lab.srv4);
        for args in [
            vec![
                "--netns", &srv, "recent", "delete", "seenping", &cli4, "--yes",
            ],
            vec!["--netns", &srv, "recent", "flush", "seenping", "--yes"],
        ] {
            let out = Command::new(BIN)
                .args(&args)
                .env("SSH_CONNECTION", &own)
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap();
            assert_eq!(out.status.code(), Some(1), "{args:?}");
            assert!(
                String::from_utf8_lossy(&out.stderr).contains("your own SSH session"),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(xt(&lab, "seenping").contains(&cli4), "{args:?} removed it");
        }
        let out = Command::new(BIN)
            .args([
                "--netns",
                &srv,
                "recent",
                "delete",
                "seenping",
                &cli4,
                "--yes",
                "--include-own-ssh",
            ])
            .env("SSH_CONNECTION", &own)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    } else {
        let out = ctscope(&[
            "--netns", &srv, "recent", "delete", "seenping", &cli4, "--yes",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(!xt(&lab, "seenping").contains(&cli4));

    // Bad names touch nothing and say why.
    for bad in ["../seenping", "a/b", ".."] {
        let out = ctscope(&["--netns", &srv, "recent", "flush", bad, "--yes"]);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("not a plain name"));
    }

    // Audit: the seed's exact rules (10 s) are flagged, seenping as never purged.
    lab.sh_ok(
        &lab.cli,
        &SEED_IPTABLES.replace("--seconds 2", "--seconds 10"),
    );
    let rep = ctscope::audit::run(
        &ctscope::audit::collect::collect(&ctscope::audit::Options {
            netns: Some(lab.cli.clone()),
            ..Default::default()
        })
        .unwrap(),
    );
    let kinds: Vec<_> = rep.knock_findings.iter().map(|f| f.kind.name()).collect();
    for k in [
        "knock_no_time_limit",
        "knock_never_purged",
        "knock_scan_completes",
        "knock_opens_sensitive_port",
    ] {
        assert!(kinds.contains(&k), "{k} missing: {kinds:?}");
    }
    assert!(rep
        .knock_findings
        .iter()
        .any(|f| f.kind.name() == "knock_never_purged" && f.detail.contains("'seenping'")));
    assert!(rep.render_text().contains("Port-knock findings"));
    assert_eq!(
        rep.to_json()["knock_findings"]
            .as_array()
            .map(|a| a.is_empty()),
        Some(false)
    );

    // A list that disappears (its rules removed) is reported, not guessed at.
    lab.sh_ok(
        &srv,
        "iptables -F && iptables -X && iptables -P INPUT ACCEPT",
    );
    let out = ctscope(&["--netns", &srv, "recent", "flush", "seenping", "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr)
        .contains("no xt_recent list or nft set named 'seenping'"));
    let v = recent_json(&srv);
    assert!(v["machines"].as_array().unwrap().is_empty());
}

/// The seed's scheme with every weakness fixed: a first knock on an unused high port,
/// time limits and purges on every list, one path per stage, and the opening limited to
/// an admin network. The audit has no knock finding.
#[test]
fn fixed_knock_audits_clean() {
    if !privileged("fixed_knock_audits_clean") {
        return;
    }
    let lab = Lab::new("rcf", 63);
    lab.sh_ok(
        &lab.srv,
        "iptables -N ADD_ECHO && iptables -N ADD_BACKEND && \
         iptables -A INPUT -p tcp --dport 47213 -m recent --name seenping --set -j DROP && \
         iptables -A INPUT -p tcp --dport 51234 -m recent --name seenping --rcheck --seconds 10 --reap -j ADD_ECHO && \
         iptables -A ADD_ECHO -m recent --name seenecho --set -j DROP && \
         iptables -A INPUT -p tcp --dport 40111 -m recent --name seenecho --rcheck --seconds 10 -j ADD_BACKEND && \
         iptables -A INPUT -m recent --name seenecho --remove && \
         iptables -A ADD_BACKEND -m recent --name seenbackend --set -j DROP && \
         iptables -A INPUT -s 10.213.63.0/24 -p tcp --dport 3306 -m recent --name seenbackend --rcheck --seconds 30 --reap -j ACCEPT",
    );
    let rep = ctscope::audit::run(
        &ctscope::audit::collect::collect(&ctscope::audit::Options {
            netns: Some(lab.srv.clone()),
            ..Default::default()
        })
        .unwrap(),
    );
    assert!(rep.knock_findings.is_empty(), "{:#?}", rep.knock_findings);
    // …and the machine is still seen: the audit is clean because the scheme is, not blind.
    let v = recent_json(&lab.srv);
    assert_eq!(
        v["machines"][0]["stages"].as_array().map(Vec::len),
        Some(3),
        "{v:#}"
    );
}

#[test]
fn nft_dynamic_set_knock_progress_links_and_actions() {
    if !privileged("nft_dynamic_set_knock_progress_links_and_actions") {
        return;
    }
    let mut lab = Lab::new("rcn", 62);
    let srv = lab.srv.clone();
    // No sets yet: an empty ruleset is no error and shows nothing.
    let v = recent_json(&srv);
    assert!(v["sets"].as_array().unwrap().is_empty());
    assert!(v["machines"].as_array().unwrap().is_empty());
    let out = ctscope(&["--netns", &srv, "recent", "flush", "seenping", "--yes"]);
    assert_eq!(out.status.code(), Some(1));

    lab.sh_ok(&srv, &format!("nft -f - <<'EOF'\n{SEED_NFT}\nEOF"));
    let script_file = setup(&mut lab);
    let script = script_file.path();
    let cli4 = lab.cli4.clone();
    let v = recent_json(&srv);
    let m = &v["machines"][0];
    assert_eq!(m["lang"], "nft", "{v:#}");
    assert_eq!(m["stages"].as_array().map(Vec::len), Some(3), "{m:#}");
    // The 2 s window is the timeout seenecho's elements get.
    assert_eq!(m["stages"][2]["entered_by"][0]["within"], 2, "{m:#}");

    // (c) Scan: no stage.
    knock(&lab, &script, "7 8000 3306 22");
    assert!(progress_of(&recent_json(&srv), &cli4).is_none());

    // Halfway, then (a) within the window: connected and linked.
    knock(&lab, &script, "ping 7");
    let p = progress_of(&recent_json(&srv), &cli4).unwrap();
    assert_eq!(p["stage"], 2, "{p:#}");
    assert!(p["seconds_left"].as_f64().unwrap() <= 2.0);
    assert_eq!(knock_and_hold(&mut lab, &script, "8000"), "connected");
    let v = recent_json(&srv);
    let p = progress_of(&v, &cli4).unwrap();
    assert_eq!(p["list"], "seenbackend", "{p:#}");
    assert!(
        v["admitted"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["list"] == "seenbackend"
                && a["state"] == "ESTABLISHED"
                && a["addr"] == cli4.as_str()),
        "{v:#}"
    );
    let sets = v["sets"].as_array().unwrap();
    assert!(sets
        .iter()
        .any(|s| s["name"] == "seenbackend" && s["elements"][0]["key"] == cli4.as_str()));

    // Remove and flush, verified with nft list set.
    let list =
        |lab: &Lab, set: &str| lab.sh_ok(&lab.srv, &format!("nft list set inet knock {set}"));
    let out = ctscope(&[
        "--netns",
        &srv,
        "recent",
        "delete",
        "seenbackend",
        &cli4,
        "--yes",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!list(&lab, "seenbackend").contains(&cli4));
    assert!(list(&lab, "seenping").contains(&cli4));
    let out = ctscope(&[
        "--netns",
        &srv,
        "recent",
        "flush",
        "inet:knock:seenping",
        "--yes",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!list(&lab, "seenping").contains(&cli4));

    // (b) Too slow: seenecho's element times out, the late 8000 is refused, 3306 shut.
    knock(&lab, &script, "ping 7 sleep2.5");
    let p = progress_of(&recent_json(&srv), &cli4).unwrap();
    assert_eq!(p["stage"], 1, "{p:#}");
    assert_eq!(knock_and_hold(&mut lab, &script, "8000"), "refused");
    assert!(!list(&lab, "seenbackend").contains(&cli4));
}

/// Record while a knock happens, then replay without the lab: the recording's snapshots
/// show the progress the live `recent --json` showed at the same moments (stage 2 halfway,
/// then the open last stage with its ESTABLISHED 3306 flow linked to seenbackend).
#[test]
fn a_recorded_knock_replays_with_the_same_progress() {
    if !privileged("a_recorded_knock_replays_with_the_same_progress") {
        return;
    }
    let mut lab = Lab::new("rcr", 64);
    let srv = lab.srv.clone();
    lab.sh_ok(&srv, "sysctl -qw net.netfilter.nf_conntrack_events=1");
    // The seed's own 10 s window: room for a snapshot to land between the knocks even on a
    // loaded machine (the sampler takes one about every second).
    lab.sh_ok(&srv, &SEED_IPTABLES.replace("--seconds 2", "--seconds 10"));
    let script_file = setup(&mut lab);
    let script = script_file.path();
    let cli4 = lab.cli4.clone();
    let rec = std::env::temp_dir().join(format!("{srv}.ctrec"));
    let _ = std::fs::remove_file(&rec);
    let rec_s = rec.display().to_string();
    let recorder = Command::new(BIN)
        .args(["--netns", &srv, "record", &rec_s, "--duration", "11s"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start the recorder");
    std::thread::sleep(Duration::from_millis(1500));

    let unix = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
    };
    knock(&lab, &script, "ping 7");
    std::thread::sleep(Duration::from_millis(3000));
    let halfway_at = unix();
    let live_half = progress_of(&recent_json(&srv), &cli4).expect("live progress halfway");
    assert_eq!(live_half["stage"], 2, "{live_half:#}");
    assert_eq!(knock_and_hold(&mut lab, &script, "8000"), "connected");
    std::thread::sleep(Duration::from_millis(1500));
    let live_open = recent_json(&srv);
    let p = progress_of(&live_open, &cli4).unwrap();
    assert_eq!(
        (p["stage"].as_u64(), p["open"].as_bool()),
        (Some(3), Some(true))
    );

    let out = recorder.wait_with_output().expect("recorder");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let start = ctscope::engine::record::Reader::open(&rec).unwrap().start();

    // Halfway, as of the last snapshot taken by then: the same stage and list, and the
    // time left within the sampling interval of what the live command said.
    let at = format!("{}ms", (halfway_at - start) / 1_000_000);
    let v = ctscope(&["--replay", &rec_s, "recent", "--json", "--at", &at]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    let v: Value = serde_json::from_slice(&v.stdout).unwrap();
    let r = progress_of(&v, &cli4).expect("replayed progress halfway");
    for k in ["stage", "of", "list", "next", "open", "expired"] {
        assert_eq!(r[k], live_half[k], "{k}: replay {r:#} live {live_half:#}");
    }
    let left = |p: &Value| p["seconds_left"].as_f64().unwrap();
    assert!(
        (-0.2..=3.0).contains(&(left(&r) - left(&live_half))),
        "replay {r:#} live {live_half:#}"
    );

    // At the end: the open stage and the same admitted flow, linked to seenbackend.
    let v = ctscope(&["--replay", &rec_s, "recent", "--json"]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    let v: Value = serde_json::from_slice(&v.stdout).unwrap();
    let r = progress_of(&v, &cli4).unwrap();
    for k in ["stage", "of", "list", "open"] {
        assert_eq!(r[k], p[k], "{k}: replay {r:#} live {p:#}");
    }
    let flows = |v: &Value| -> Vec<(String, String, String)> {
        v["admitted"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| {
                (
                    a["list"].as_str().unwrap_or_default().to_owned(),
                    a["flow"].as_str().unwrap_or_default().to_owned(),
                    a["state"].as_str().unwrap_or_default().to_owned(),
                )
            })
            .collect()
    };
    let live_flows = flows(&live_open);
    assert!(
        live_flows
            .iter()
            .any(|(l, _, s)| l == "seenbackend" && s == "ESTABLISHED"),
        "{live_open:#}"
    );
    assert_eq!(flows(&v), live_flows);
    std::fs::remove_file(&rec).ok();
}

/// The dashboard in tmux on the server namespace, Recent screen (key 5), while the seed's
/// iptables knock runs: a scan shows no progress, ping+echo shows stage 2/4 with time left,
/// 8000 then 3306 shows stage 3/4 with the ESTABLISHED flow under it, a late knock shows
/// the stage it stopped at, and F on `seenbackend` (confirmed with y) empties the list in
/// /proc/net/xt_recent: the engine ran the plan, the dashboard wrote nothing itself.
#[test]
fn the_dashboard_shows_each_step_of_the_knock() {
    if !privileged("the_dashboard_shows_each_step_of_the_knock") {
        return;
    }
    if !common::tmux::have_tmux() {
        assert!(
            std::env::var("CI").is_err(),
            "tmux is required under CI=true"
        );
        println!("skipped: the_dashboard_shows_each_step_of_the_knock needs tmux");
        return;
    }
    let mut lab = Lab::new("rct", 65);
    let srv = lab.srv.clone();
    lab.sh_ok(&srv, SEED_IPTABLES);
    let script_file = setup(&mut lab);
    let script = script_file.path();
    let (cli4, srv4) = (lab.cli4.clone(), lab.srv4.clone());
    let tmux =
        common::tmux::Tmux::start("recent", &format!("{BIN} --netns {srv}; sleep 60"), 120, 40);
    tmux.wait_for("the dashboard", |s| s.contains("1 Flows"));
    tmux.keys(&["6"]);
    // The sampler's first look: the lists exist once a rule uses them.
    tmux.wait_for("the first snapshot", |s| {
        s.contains("Knock progress · snapshot") && s.contains("xt seenping")
    });

    knock(&lab, &script, "7 8000 3306 22");
    // A scan advances nothing (give the sampler two looks).
    std::thread::sleep(Duration::from_millis(2500));
    let s = tmux.screen();
    assert!(s.contains("no source has knocked"), "{s}");

    knock(&lab, &script, "ping 7");
    tmux.wait_for("stage 2/4", |s| {
        s.contains(&format!("xt {cli4}: stage 2/4 (seenecho), "))
            && s.contains("left to knock 8000")
    });

    assert_eq!(knock_and_hold(&mut lab, &script, "8000"), "connected");
    let s = tmux.wait_for("stage 3/4 and the admitted flow", |s| {
        s.contains(&format!("xt {cli4}: stage 3/4 (seenbackend)"))
            && s.contains(&format!("→ {srv4}:3306 ESTABLISHED"))
    });
    // The flow is listed under the progress row and under seenbackend's entry.
    let lines: Vec<&str> = s.lines().collect();
    let under = |row: &str| {
        let i = lines.iter().position(|l| l.contains(row)).unwrap();
        lines[i + 1].contains(&format!("└ tcp {cli4}:"))
    };
    assert!(under(&format!("xt {cli4}: stage 3/4")), "{s}");

    // F on seenbackend: the one confirmation, then the engine flushes it.
    let row = lines
        .iter()
        .position(|l| l.contains("xt seenbackend ·"))
        .expect("the seenbackend list");
    // The table's first row is the screen's fifth line (header, tab line, column titles).
    tmux.keys(&["g"]);
    for _ in 0..row - 4 {
        tmux.keys(&["Down"]);
    }
    tmux.keys(&["F"]);
    tmux.wait_for("the confirmation", |s| s.contains("Flush xt seenbackend"));
    tmux.keys(&["y"]);
    tmux.wait_for("the report", |s| s.contains("removed 1"));
    assert_eq!(
        xt(&lab, "seenbackend").trim(),
        "",
        "seenbackend not flushed"
    );
    tmux.wait_for("the entry gone", |s| {
        s.contains("(gone)") || s.contains("xt seenbackend · 0 entries")
    });

    // Too slow: the window runs out at stage 2 and the screen says so.
    knock(&lab, &script, "ping 7 sleep2.6");
    tmux.wait_for("too slow at stage 2", |s| {
        s.contains(&format!("xt {cli4}: stage 2/4 (seenecho), too slow"))
    });
    tmux.keys(&["q"]);
}

/// The same in native nft, on the dashboard: a scan shows nothing, ping+echo shows stage
/// 2/4 within the 2 s element timeout, 8000 then 3306 shows stage 3/4 with the flow under
/// it, and `d` on the seenbackend element (confirmed with y) deletes it: `nft list set`
/// agrees.
#[test]
fn the_dashboard_follows_the_nft_knock_and_deletes_an_element() {
    if !privileged("the_dashboard_follows_the_nft_knock_and_deletes_an_element") {
        return;
    }
    if !common::tmux::have_tmux() {
        assert!(
            std::env::var("CI").is_err(),
            "tmux is required under CI=true"
        );
        println!("skipped: the_dashboard_follows_the_nft_knock_and_deletes_an_element needs tmux");
        return;
    }
    let mut lab = Lab::new("rctn", 66);
    let srv = lab.srv.clone();
    lab.sh_ok(&srv, &format!("nft -f - <<'EOF'\n{SEED_NFT}\nEOF"));
    let script_file = setup(&mut lab);
    let script = script_file.path();
    let (cli4, srv4) = (lab.cli4.clone(), lab.srv4.clone());
    let tmux = common::tmux::Tmux::start(
        "recentnft",
        &format!("{BIN} --netns {srv}; sleep 60"),
        120,
        40,
    );
    tmux.wait_for("the dashboard", |s| s.contains("1 Flows"));
    tmux.keys(&["6"]);
    tmux.wait_for("the first snapshot", |s| {
        s.contains("nft inet knock seenbackend ·") && s.contains("no source has knocked")
    });

    knock(&lab, &script, "7 8000 3306 22");
    std::thread::sleep(Duration::from_millis(2500));
    let s = tmux.screen();
    assert!(s.contains("no source has knocked"), "{s}");

    knock(&lab, &script, "ping 7");
    tmux.wait_for("stage 2/4", |s| {
        s.contains(&format!("nft {cli4}: stage 2/4 (seenecho)"))
    });
    assert_eq!(knock_and_hold(&mut lab, &script, "8000"), "connected");
    let s = tmux.wait_for("stage 3/4 and the admitted flow", |s| {
        s.contains(&format!("nft {cli4}: stage 3/4 (seenbackend)"))
            && s.contains(&format!("→ {srv4}:3306 ESTABLISHED"))
    });

    // d on seenbackend's element: the row after the set's own.
    let lines: Vec<&str> = s.lines().collect();
    let set = lines
        .iter()
        .position(|l| l.contains("nft inet knock seenbackend ·"))
        .expect("the seenbackend set");
    assert!(lines[set + 1].trim_start().starts_with(&cli4), "{s}");
    tmux.keys(&["g"]);
    for _ in 0..set + 1 - 4 {
        tmux.keys(&["Down"]);
    }
    tmux.keys(&["d"]);
    tmux.wait_for("the confirmation", |s| {
        s.contains(&format!("Remove {cli4} from nft inet knock seenbackend"))
    });
    tmux.keys(&["y"]);
    tmux.wait_for("the report", |s| s.contains("removed 1"));
    let left = lab.sh_ok(&srv, "nft list set inet knock seenbackend");
    assert!(!left.contains(&cli4), "{left}");
    tmux.keys(&["q"]);
}
