//! conntrack(8)'s words against the real kernel: one table in a namespace, filled with
//! `conntrack -I` (igmp and protocol 40 entries of both families, UNREPLIED and replied
//! flows, labels set by name), read by conntrack(8) and by ctscope side by side.
//!
//! Labels need a connlabel.conf, and conntrack(8) reads only /etc/xtables/connlabel.conf.
//! The host's /etc is never written: every command of this test runs in a private mount
//! namespace (`unshare -m`) where /etc is a read-only overlay of a temporary directory
//! holding `xtables/connlabel.conf` over the real /etc. ctscope, run in the same mount
//! namespace without `--netns`, must find the same file by itself.
//!
//! Needs root (namespaces, mounts); see `common::lab::privileged`.

mod common;
use common::lab::{privileged, Lab};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

/// The label map of this test: bit 64 proves the high half of the 128-bit set.
const CONNLABEL: &str = "# ctscope test map\n3 blue\n5 red team\n64 far\n";

/// A temporary directory laid over /etc inside each command's mount namespace.
struct EtcOverlay {
    top: PathBuf,
}

impl EtcOverlay {
    fn new() -> EtcOverlay {
        let top = std::env::temp_dir().join(format!("ctscope-words-etc-{}", std::process::id()));
        std::fs::create_dir_all(top.join("xtables")).unwrap();
        std::fs::write(top.join("xtables/connlabel.conf"), CONNLABEL).unwrap();
        EtcOverlay { top }
    }

    /// Run `argv` in namespace `ns` with the overlay mounted on /etc (private mount
    /// namespace, so nothing reaches the host's mount table).
    fn run(&self, ns: &str, argv: &[&str]) -> Output {
        let script = format!(
            "mount -t overlay ctscope-words -o lowerdir={}:/etc /etc && exec \"$@\"",
            self.top.display()
        );
        Command::new("ip")
            .args([
                "netns",
                "exec",
                ns,
                "unshare",
                "-m",
                "--propagation",
                "private",
            ])
            .args(["sh", "-c", &script, "sh"])
            .args(argv)
            .env_remove("CTSCOPE_CONNLABEL_CONF")
            .stdin(Stdio::null())
            .output()
            .expect("run in the overlay")
    }

    /// Like `run`, panicking on failure; returns stdout.
    fn ok(&self, ns: &str, argv: &[&str]) -> String {
        let out = self.run(ns, argv);
        assert!(
            out.status.success(),
            "{argv:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for EtcOverlay {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.top);
    }
}

const BIN: &str = env!("CARGO_BIN_EXE_ctscope");

/// Lines with the timeout (token 2) and conntrack's `delta-time=` (ctscope's line does not
/// carry it) taken out, sorted.
fn comparable(text: &str) -> Vec<String> {
    let mut v: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut tok: Vec<&str> = l.split(' ').filter(|t| !t.is_empty()).collect();
            tok[2] = "T";
            tok.retain(|t| !t.starts_with("delta-time="));
            tok.join(" ")
        })
        .collect();
    v.sort();
    v
}

fn json_array(s: &str) -> Vec<Value> {
    match serde_json::from_str(s) {
        Ok(Value::Array(v)) => v,
        other => panic!("not a JSON array: {other:?}\n{s}"),
    }
}

#[test]
fn conntrack_words_agree_with_conntrack() {
    if !privileged("conntrack_words_agree_with_conntrack") {
        return;
    }
    let lab = Lab::new("words", 47);
    let etc = EtcOverlay::new();
    let ns = lab.srv.clone();
    // Timestamps on (per namespace), so `timestamp.start` is set and `stop` must be null.
    lab.sh_ok(&ns, "sysctl -qw net.netfilter.nf_conntrack_timestamp=1");
    // The kernel gives new entries a label area only while a labels user exists.
    etc.ok(
        &ns,
        &[
            "iptables",
            "-A",
            "INPUT",
            "-p",
            "udp",
            "--dport",
            "9",
            "-m",
            "connlabel",
            "--label",
            "blue",
            "--set",
        ],
    );
    let inserts: &[&str] = &[
        "-I -p igmp -s 10.213.47.7 -d 224.0.0.1 -t 200",
        "-I -p 40 -s 10.213.47.8 -d 10.213.47.9 -t 200 -u SEEN_REPLY",
        "-I -p igmp -s fd00:213:47::7 -d ff02::1 -t 200",
        "-I -p 40 -s fd00:213:47::8 -d fd00:213:47::9 -t 200",
        "-I -p gre -s 10.213.47.12 -d 10.213.47.13 --srckey 0x1 --dstkey 0x2 -t 200",
        "-I -p udp -s 10.213.47.10 -d 10.213.47.11 --sport 1000 --dport 53 -t 200 -u SEEN_REPLY",
        "-I -p udp -s fd00:213:47::a -d fd00:213:47::b --sport 1000 --dport 53 -t 200",
        "-I -p tcp -s 10.213.47.14 -d 10.213.47.15 --sport 2000 --dport 3306 --state ESTABLISHED -u SEEN_REPLY,ASSURED -t 200",
    ];
    for i in inserts {
        let argv: Vec<&str> = std::iter::once("conntrack").chain(i.split(' ')).collect();
        etc.ok(&ns, &argv);
    }
    for (src, labels) in [
        ("10.213.47.10", &["blue", "far"][..]),
        ("fd00:213:47::a", &["blue", "red team"]),
    ] {
        for l in labels {
            etc.ok(
                &ns,
                &["conntrack", "-U", "-p", "udp", "-s", src, "--label-add", l],
            );
        }
    }

    // 1. Text lines: conntrack -L (with ids and label names) and ctscope list, per family
    //    and protocol, are the same lines (timeouts aside).
    let mut igmp6 = 0;
    for fam in ["ipv4", "ipv6"] {
        for proto in [None, Some("igmp"), Some("40"), Some("2")] {
            let mut theirs = vec!["conntrack", "-L", "-f", fam, "-o", "id,labels"];
            let mut ours = vec![BIN, "list", "-f", fam];
            if let Some(p) = proto {
                theirs.extend(["-p", p]);
                ours.extend(["-p", p]);
            }
            let t = comparable(&etc.ok(&ns, &theirs));
            let o = comparable(&etc.ok(&ns, &ours));
            assert!(!t.is_empty(), "{theirs:?} shows entries");
            assert_eq!(o, t, "ctscope {ours:?} vs {theirs:?}");
            if fam == "ipv6" && proto == Some("igmp") {
                igmp6 = o.len();
                assert!(o.iter().all(|l| l.starts_with("unknown 2 T src=")), "{o:?}");
                assert!(o.iter().all(|l| !l.contains("port=")), "no ports: {o:?}");
            }
        }
    }
    assert_eq!(igmp6, 1);

    // 2. Label selection by name agrees with conntrack -l.
    for fam in ["ipv4", "ipv6"] {
        for sel in ["blue", "blue,red team", "far", "red team"] {
            let t = comparable(&etc.ok(
                &ns,
                &["conntrack", "-L", "-f", fam, "-o", "id,labels", "-l", sel],
            ));
            let o = comparable(&etc.ok(&ns, &[BIN, "list", "-f", fam, "-l", sel]));
            assert_eq!(o, t, "-f {fam} -l {sel}");
        }
    }
    let out = etc.run(&ns, &[BIN, "list", "-l", "green"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/etc/xtables/connlabel.conf"));

    // 3. JSON says what the text says.
    let all = json_array(&etc.ok(&ns, &[BIN, "list", "--json"]));
    assert_eq!(all.len(), inserts.len());
    for v in &all {
        let status: Vec<&str> = v["status"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_ne!(
            status.contains(&"UNREPLIED"),
            status.contains(&"SEEN_REPLY"),
            "UNREPLIED exactly when SEEN_REPLY is not set: {v}"
        );
        let ts = &v["timestamp"];
        assert!(ts["start"].as_u64().is_some_and(|s| s > 0), "{v}");
        assert_eq!(ts["stop"], Value::Null, "a live flow has no stop: {v}");
        let portless = !matches!(v["proto"].as_str(), Some("tcp" | "udp" | "gre"));
        if portless {
            for t in ["orig", "reply"] {
                let mut keys: Vec<&String> = v[t].as_object().unwrap().keys().collect();
                keys.sort();
                assert_eq!(keys, ["dst", "src"], "{t} of {v}");
            }
        }
    }
    let by_src = |a: &str| {
        all.iter()
            .find(|v| v["orig"]["src"] == a)
            .unwrap_or_else(|| panic!("no flow from {a}"))
    };
    assert_eq!(by_src("10.213.47.10")["labels"], json!(["blue", "far"]));
    assert_eq!(
        by_src("fd00:213:47::a")["labels"],
        json!(["blue", "red team"])
    );
    assert_eq!(by_src("10.213.47.7")["proto"], json!(2));
    assert_eq!(by_src("10.213.47.8")["proto"], json!(40));
    assert!(by_src("fd00:213:47::a")["status"]
        .as_array()
        .unwrap()
        .contains(&json!("UNREPLIED")));

    // 4. The same selections from outside the mount namespace via --netns, with the map
    //    named by CTSCOPE_CONNLABEL_CONF instead.
    let conf = etc.top.join("xtables/connlabel.conf");
    let out = Command::new(BIN)
        .args([
            "--netns", &ns, "list", "--json", "-f", "ipv6", "-l", "red team",
        ])
        .env("CTSCOPE_CONNLABEL_CONF", &conf)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json_array(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(v.len(), 1);
    assert_eq!(v[0]["labels"], json!(["blue", "red team"]));

    // 5. Mixed families: both tools refuse (exit 2) on the same table.
    for args in [
        &["-s", "::1", "-d", "2.2.2.2"][..],
        &["-f", "ipv6", "-s", "10.213.47.7"],
    ] {
        let mut theirs = vec!["conntrack", "-L"];
        theirs.extend_from_slice(args);
        let mut ours = vec![BIN, "list"];
        ours.extend_from_slice(args);
        assert_eq!(etc.run(&ns, &theirs).status.code(), Some(2), "{theirs:?}");
        let o = etc.run(&ns, &ours);
        assert_eq!(o.status.code(), Some(2), "{ours:?}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("mismatched address family"));
    }

    // 6. A CLI regex searches the printed line: conntrack's words find the entry.
    let out = etc.ok(&ns, &[BIN, "list", "-F", "/dport=3306 /"]);
    assert_eq!(out.lines().count(), 1, "{out}");
    let out = etc.ok(&ns, &[BIN, "list", "-F", "/\\[UNREPLIED\\]/", "--json"]);
    let v = json_array(&out);
    assert_eq!(
        v.len(),
        all.iter()
            .filter(|v| v["status"]
                .as_array()
                .unwrap()
                .contains(&json!("UNREPLIED")))
            .count()
    );

    // The host's /etc is untouched.
    assert!(
        !std::path::Path::new("/etc/xtables/connlabel.conf").exists() || {
            std::fs::read_to_string("/etc/xtables/connlabel.conf").unwrap() != CONNLABEL
        }
    );
}
