//! Differential test against conntrack(8): thousands of varied entries loaded into a
//! namespace with `conntrack -R`, then ctscope's JSON compared field for field with a parse
//! of `conntrack -L -o extended,id` (timeout ±2 s); expectations (real FTP PASV/EPSV through
//! the ftp helper) likewise against `conntrack -L expect -f ipv4` and `-f ipv6`.
//!
//! ctscope's side is the real binary, `ctscope list [--json] [--expect] --netns NS`.
//! Needs root (namespaces); see `common::lab::privileged`.

mod common;
use common::lab::{privileged, Lab};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::Command;

/// `ctscope list` output formats this test reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Out {
    Json,
    Text,
}

fn list_json(ns: &str, expect: bool) -> Vec<Value> {
    match serde_json::from_slice(&via_binary(ns, expect, Out::Json)) {
        Ok(Value::Array(v)) => v,
        other => panic!("not a JSON array: {other:?}"),
    }
}

fn list_text(ns: &str, expect: bool) -> Vec<String> {
    String::from_utf8(via_binary(ns, expect, Out::Text))
        .expect("UTF-8 text")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// What `ctscope list` prints in namespace `ns` (flows, or expectations with `expect`).
fn via_binary(ns: &str, expect: bool, out: Out) -> Vec<u8> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ctscope"));
    cmd.args(["list", "--netns", ns]);
    if out == Out::Json {
        cmd.arg("--json");
    }
    if expect {
        cmd.arg("--expect");
    }
    let res = cmd.output().expect("run ctscope");
    assert!(
        res.status.success(),
        "ctscope list failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    res.stdout
}

const TCP_STATES: [&str; 8] = [
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT",
    "CLOSE_WAIT",
    "LAST_ACK",
    "TIME_WAIT",
    "CLOSE",
];
const SCTP_STATES: [&str; 4] = ["ESTABLISHED", "COOKIE_WAIT", "CLOSED", "SHUTDOWN_SENT"];

/// `n` `conntrack -I` lines, unique by construction (the index is spread over the source
/// address), mixing every family, protocol, state, zone, mark and NAT shape we decode.
fn entries(n: u32) -> String {
    let mut out = String::new();
    for i in 0..n {
        let (a, b) = ((i >> 8) & 0xff, i & 0xff);
        let v6 = (i / 10) % 4 == 3;
        let (src, dst) = if v6 {
            (
                format!("fd00:213:2:1::{a:x}:{b:x}"),
                format!("fd00:213:2:2::{:x}", 1 + i % 50),
            )
        } else {
            (format!("10.214.{a}.{b}"), format!("192.0.2.{}", 1 + i % 50))
        };
        let sport = 1024 + (i % 50000) as u16;
        let timeout = 60 + (i * 37) % 3000;
        let mut line = String::new();
        match i % 10 {
            0..=3 => {
                let st = TCP_STATES[(i / 10) as usize % TCP_STATES.len()];
                let dport = [80, 443, 22, 3306][(i % 4) as usize];
                let _ = write!(line, "-I -p tcp -s {src} -d {dst} --sport {sport} --dport {dport} --state {st} -t {timeout}");
                if i % 3 == 0 {
                    line.push_str(" -u SEEN_REPLY,ASSURED");
                } else if i % 3 == 1 {
                    line.push_str(" -u SEEN_REPLY");
                }
                if i % 7 == 0 && !v6 {
                    let _ = write!(line, " --reply-src 198.51.100.{} --reply-dst {src} --reply-port-src {} --reply-port-dst {sport}", 1 + i % 200, 8000 + i % 100);
                }
            }
            4 | 5 => {
                let _ = write!(
                    line,
                    "-I -p udp -s {src} -d {dst} --sport {sport} --dport 53 -t {timeout}"
                );
                if i % 3 == 0 {
                    line.push_str(" -u SEEN_REPLY");
                }
                if i % 9 == 4 && v6 {
                    let _ = write!(line, " --reply-src fd00:213:2:3::{:x} --reply-dst {src} --reply-port-src 5353 --reply-port-dst {sport}", 1 + i % 99);
                }
            }
            6 => {
                let (p, ty, reqid) = if v6 {
                    ("icmpv6", 128, "icmpv6")
                } else {
                    ("icmp", 8, "icmp")
                };
                let _ = write!(line, "-I -p {p} -s {src} -d {dst} --{reqid}-type {ty} --{reqid}-code 0 --{reqid}-id {} -t {timeout}", i & 0xffff);
            }
            7 => {
                let st = SCTP_STATES[(i / 10) as usize % SCTP_STATES.len()];
                let _ = write!(line, "-I -p sctp -s {src} -d {dst} --sport {sport} --dport 2905 --state {st} --orig-vtag {i} --reply-vtag {} -t {timeout}", i + 1);
            }
            8 => {
                let _ = write!(
                    line,
                    "-I -p gre -s {src} -d {dst} --srckey {:#x} --dstkey {:#x} -t {timeout}",
                    i & 0xffff,
                    (i * 7) & 0xffff
                );
            }
            _ => {
                let p = if i % 20 == 9 { "udplite" } else { "tcp" };
                let st = if p == "tcp" {
                    " --state ESTABLISHED -u SEEN_REPLY"
                } else {
                    ""
                };
                let _ = write!(
                    line,
                    "-I -p {p} -s {src} -d {dst} --sport {sport} --dport 8443{st} -t {timeout}"
                );
                if i % 40 == 19 {
                    let _ = write!(line, " --orig-zone {}", 1 + i % 3);
                } else if i % 40 == 39 {
                    let _ = write!(line, " --reply-zone {}", 1 + i % 5);
                }
            }
        }
        // conntrack refuses `-w` together with a per-direction zone.
        if i % 6 == 1 && !line.contains("-zone") {
            let _ = write!(line, " -w {}", 1 + i % 4);
        }
        if i % 5 == 2 {
            let _ = write!(line, " -m {}", i % 1000);
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}

// ---- parsing conntrack(8) output ---------------------------------------------------

/// Collect a TUPLE object (same keys as our JSON) from `key=value` tokens starting at `*i`.
fn take_tuple(tok: &[&str], i: &mut usize, prefix: &str) -> Value {
    let mut m = Map::new();
    while let Some((k, v)) = tok.get(*i).and_then(|t| t.split_once('=')) {
        let k = k.strip_prefix(prefix).unwrap_or(k);
        let val = match k {
            "src" | "dst" => json!(v.parse::<std::net::IpAddr>().unwrap().to_string()),
            "sport" | "dport" => json!(v.parse::<u16>().unwrap()),
            "type" | "code" => json!(v.parse::<u8>().unwrap()),
            "id" => json!(v.parse::<u16>().unwrap()),
            "srckey" | "dstkey" => {
                json!(u16::from_str_radix(v.trim_start_matches("0x"), 16).unwrap())
            }
            _ => break,
        };
        let k = if k == "id" { "icmp_id" } else { k };
        if m.contains_key(k) {
            break; // the next tuple starts
        }
        m.insert(k.to_owned(), val);
        *i += 1;
    }
    Value::Object(m)
}

/// One `conntrack -L -o extended,id` line → the fields of our flow JSON it determines.
fn parse_flow(line: &str) -> Value {
    let tok: Vec<&str> = line.split_whitespace().collect();
    let mut v = Map::new();
    v.insert("family".into(), json!(tok[0]));
    v.insert("proto".into(), json!(tok[2]));
    v.insert("timeout".into(), json!(tok[4].parse::<u32>().unwrap()));
    let mut i = 5;
    let state = if tok[i].contains('=') {
        Value::Null
    } else {
        i += 1;
        json!(tok[i - 1])
    };
    v.insert("state".into(), state);
    v.insert("orig".into(), take_tuple(&tok, &mut i, ""));
    let (mut seen_reply, mut assured) = (true, false);
    let (mut zone, mut mark, mut id, mut use_count) = (0u64, 0u64, 0u64, 0u64);
    let (mut zone_orig, mut zone_reply) = (Value::Null, Value::Null);
    while i < tok.len() {
        let t = tok[i];
        if t == "[UNREPLIED]" {
            seen_reply = false;
        } else if t == "[ASSURED]" {
            assured = true;
        } else if t.starts_with("src=") {
            v.insert("reply".into(), take_tuple(&tok, &mut i, ""));
            continue;
        } else if let Some((k, val)) = t.split_once('=') {
            let n = val.parse::<u64>().unwrap_or(0);
            match k {
                "zone" => zone = n,
                "zone-orig" => zone_orig = json!(n),
                "zone-reply" => zone_reply = json!(n),
                "mark" => mark = n,
                "id" => id = n,
                "use" => use_count = n,
                _ => {}
            }
        }
        i += 1;
    }
    v.insert("seen_reply".into(), json!(seen_reply));
    v.insert("assured".into(), json!(assured));
    v.insert("zone".into(), json!(zone));
    v.insert("zone_orig".into(), zone_orig);
    v.insert("zone_reply".into(), zone_reply);
    v.insert("mark".into(), json!(mark));
    v.insert("id".into(), json!(id));
    v.insert("use".into(), json!(use_count));
    Value::Object(v)
}

/// One `conntrack -L expect` line → the fields of our expectation JSON it determines.
fn parse_expect(line: &str) -> Value {
    let tok: Vec<&str> = line.split_whitespace().collect();
    let mut v = Map::new();
    v.insert("timeout".into(), json!(tok[0].parse::<u32>().unwrap()));
    let proto: u8 = tok[1].strip_prefix("proto=").unwrap().parse().unwrap();
    v.insert("proto_num".into(), json!(proto));
    let mut i = 2;
    v.insert("tuple".into(), take_tuple(&tok, &mut i, ""));
    v.insert("mask".into(), take_tuple(&tok, &mut i, "mask-"));
    v.insert("master".into(), take_tuple(&tok, &mut i, "master-"));
    let mut flags = Vec::new();
    let (mut class, mut zone, mut helper) = (0u64, 0u64, Value::Null);
    for t in &tok[i..] {
        match t.split_once('=') {
            Some(("class", n)) => class = n.parse().unwrap(),
            Some(("zone", n)) => zone = n.parse().unwrap(),
            Some(("helper", h)) => helper = json!(h),
            Some(_) => {}
            None => flags.extend(t.split(',').map(|f| json!(f))),
        }
    }
    v.insert("flags".into(), Value::Array(flags));
    v.insert("class".into(), json!(class));
    v.insert("zone".into(), json!(zone));
    v.insert("helper".into(), helper);
    Value::Object(v)
}

fn conntrack(lab: &Lab, args: &str) -> Vec<String> {
    lab.sh_ok(&lab.srv, &format!("conntrack {args} 2>/dev/null"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

fn close(a: &Value, b: &Value, slack: i64) -> bool {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => (x - y).abs() <= slack,
        _ => false,
    }
}

// ---- the comparisons -----------------------------------------------------------------

#[test]
fn flows_agree_with_conntrack_list() {
    if !privileged("flows_agree_with_conntrack_list") {
        return;
    }
    let lab = Lab::new("dec", 2);
    let n = 3000;
    lab.restore(&lab.srv, &entries(n));

    let ours = list_json(&lab.srv, false);
    let theirs = conntrack(&lab, "-L -o extended,id");
    assert_eq!(theirs.len(), n as usize, "conntrack -R loaded every line");
    assert_eq!(ours.len(), theirs.len(), "same number of flows");

    let key = |v: &Value| format!("{}|{}", v["zone"], v["orig"]);
    let mut by_key: BTreeMap<String, &Value> = BTreeMap::new();
    for o in &ours {
        assert!(by_key.insert(key(o), o).is_none(), "duplicate flow {o}");
    }
    let (mut nat, mut zoned, mut protos) = (0, 0, std::collections::BTreeSet::new());
    let mut dir_zoned = 0;
    for line in &theirs {
        let t = parse_flow(line);
        let o = by_key
            .get(&key(&t))
            .unwrap_or_else(|| panic!("ctscope lacks: {line}"));
        let ctx = || format!("\nconntrack: {line}\nctscope:   {o}");
        for f in [
            "family", "proto", "state", "orig", "reply", "mark", "zone", "id", "use",
        ] {
            assert_eq!(o[f], t[f], "field {f}{}", ctx());
        }
        assert!(close(&o["timeout"], &t["timeout"], 2), "timeout{}", ctx());
        let status: Vec<&str> = o["status"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
        assert_eq!(
            status.contains(&"SEEN_REPLY"),
            t["seen_reply"] == json!(true),
            "SEEN_REPLY{}",
            ctx()
        );
        assert_eq!(
            status.contains(&"ASSURED"),
            t["assured"] == json!(true),
            "ASSURED{}",
            ctx()
        );
        for f in ["zone_orig", "zone_reply"] {
            assert_eq!(o.get(f).unwrap_or(&Value::Null), &t[f], "{f}{}", ctx());
            dir_zoned += usize::from(!t[f].is_null());
        }
        if o["reply"]["src"] != o["orig"]["dst"] {
            nat += 1;
        }
        if o["zone"] != json!(0) {
            zoned += 1;
        }
        protos.insert(o["proto"].as_str().unwrap().to_owned());
    }
    // The table really was varied.
    assert!(
        nat > 50 && zoned > 300 && dir_zoned > 50,
        "nat={nat} zoned={zoned} dir_zoned={dir_zoned}"
    );
    for p in ["tcp", "udp", "udplite", "icmp", "icmpv6", "sctp", "gre"] {
        assert!(protos.contains(p), "no {p} in {protos:?}");
    }

    // The text output is conntrack -L's own line, timeouts aside.
    let ours = sorted_lines(list_text(&lab.srv, false), 2);
    let theirs = sorted_lines(conntrack(&lab, "-L -o id"), 2);
    assert_eq!(ours.len(), theirs.len());
    for (o, t) in ours.iter().zip(&theirs) {
        assert_eq!(o.0, t.0, "text line");
        assert!((o.1 - t.1).abs() <= 2, "timeout: {o:?} vs {t:?}");
    }
}

/// Lines with the timeout token (at `at`) taken out, sorted, with the timeout alongside.
fn sorted_lines(lines: Vec<String>, at: usize) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = lines
        .iter()
        .map(|l| {
            let mut tok: Vec<&str> = l.split_whitespace().collect();
            let t = tok[at].parse().unwrap_or_else(|_| panic!("timeout in {l}"));
            tok[at] = "T";
            (tok.join(" "), t)
        })
        .collect();
    v.sort();
    v
}

#[test]
fn expectations_agree_with_conntrack_list_expect() {
    if !privileged("expectations_agree_with_conntrack_list_expect") {
        return;
    }
    let mut lab = Lab::new("dec", 2);
    let dir = std::env::temp_dir().join(format!("ctscope-dec-ftp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    lab.ftp_helper();
    lab.ftp_server(&dir.to_string_lossy());
    // Each control connection asks for a passive data port and holds: one expectation each.
    let per_family = 12;
    for (host, cmd) in [(lab.srv4.clone(), "PASV"), (lab.srv6.clone(), "EPSV")] {
        let script = format!(
            "import ftplib,time\n\
             cs=[]\n\
             for _ in range({per_family}):\n\
             \x20   f=ftplib.FTP(); f.connect('{host}',21,timeout=10); f.login(); f.sendcmd('{cmd}'); cs.append(f)\n\
             time.sleep(600)\n"
        );
        let cli = lab.cli.clone();
        lab.spawn(&cli, &format!("/usr/bin/python3 -c \"{script}\""));
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let n4 = conntrack(&lab, "-L expect -f ipv4").len();
        let n6 = conntrack(&lab, "-L expect -f ipv6").len();
        if n4 == per_family && n6 == per_family {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "expectations: {n4} v4, {n6} v6"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    let ours = list_json(&lab.srv, true);
    assert_eq!(
        ours.len(),
        2 * per_family,
        "ctscope shows both families together"
    );
    for (family, flag) in [("ipv4", "ipv4"), ("ipv6", "ipv6")] {
        let theirs = conntrack(&lab, &format!("-L expect -f {flag}"));
        let mine: Vec<&Value> = ours
            .iter()
            .filter(|o| o["family"] == json!(family))
            .collect();
        assert_eq!(mine.len(), theirs.len(), "{family}");
        for line in &theirs {
            let t = parse_expect(line);
            let o = mine
                .iter()
                .find(|o| o["tuple"] == t["tuple"] && o["zone"] == t["zone"])
                .unwrap_or_else(|| panic!("ctscope lacks: {line}"));
            let ctx = || format!("\nconntrack: {line}\nctscope:   {o}");
            for f in [
                "tuple", "mask", "master", "class", "zone", "helper", "flags",
            ] {
                assert_eq!(o[f], t[f], "field {f}{}", ctx());
            }
            assert_eq!(t["proto_num"], json!(6), "{line}");
            assert_eq!(o["proto"], json!("tcp"), "{}", ctx());
            assert!(close(&o["timeout"], &t["timeout"], 2), "timeout{}", ctx());
        }
    }
    // The text output is conntrack -L expect's own line, timeouts aside, followed by
    // ctscope's verdict (` freedom=… finding=…`).
    let ours: Vec<String> = list_text(&lab.srv, true)
        .into_iter()
        .map(|l| {
            let (line, verdict) = l.split_once(" freedom=").expect("verdict on the line");
            assert!(verdict.starts_with("src:"), "{verdict}");
            line.to_owned()
        })
        .collect();
    let ours = sorted_lines(ours, 0);
    let mut theirs = conntrack(&lab, "-L expect -f ipv4");
    theirs.extend(conntrack(&lab, "-L expect -f ipv6"));
    let theirs = sorted_lines(theirs, 0);
    assert_eq!(ours.len(), theirs.len());
    for (o, t) in ours.iter().zip(&theirs) {
        assert_eq!(o.0, t.0, "text line");
        assert!((o.1 - t.1).abs() <= 2, "timeout: {o:?} vs {t:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn conntrack_line_parser() {
    let t = parse_flow("ipv4     2 gre      47 99 src=10.1.0.1 dst=10.2.0.1 srckey=0x10 dstkey=0x20 [UNREPLIED] src=10.2.0.1 dst=10.1.0.1 srckey=0x20 dstkey=0x10 mark=5 zone=2 use=1 id=3337309789");
    assert_eq!(
        t["orig"],
        json!({"src":"10.1.0.1","dst":"10.2.0.1","srckey":16,"dstkey":32})
    );
    assert_eq!(t["reply"]["srckey"], 32);
    assert_eq!(
        (
            t["zone"].clone(),
            t["mark"].clone(),
            t["seen_reply"].clone()
        ),
        (json!(2), json!(5), json!(false))
    );
    assert_eq!(t["state"], Value::Null);
    let t = parse_flow("ipv6     10 tcp      6 99 TIME_WAIT src=fd00::1 dst=fd00::2 sport=1 dport=2 zone-orig=4 src=fd00::2 dst=fd00::1 sport=2 dport=1 [ASSURED] mark=0 use=1 id=393675918");
    assert_eq!(t["state"], "TIME_WAIT");
    assert_eq!(t["zone_orig"], 4);
    assert_eq!(t["reply"]["sport"], 2);
    assert_eq!(t["assured"], true);
    let t = parse_flow("ipv4     2 icmp     1 29 src=10.0.0.1 dst=10.0.0.2 type=8 code=0 id=77 [UNREPLIED] src=10.0.0.2 dst=10.0.0.1 type=0 code=0 id=77 mark=0 use=1 id=1039798324");
    assert_eq!(
        t["orig"],
        json!({"src":"10.0.0.1","dst":"10.0.0.2","type":8,"code":0,"icmp_id":77})
    );
    assert_eq!(t["id"], 1039798324u64);
    let e = parse_expect("299 proto=6 src=10.213.2.2 dst=10.213.2.1 sport=0 dport=40100 mask-src=255.255.255.255 mask-dst=255.255.255.255 sport=0 dport=65535 master-src=10.213.2.2 master-dst=10.213.2.1 sport=44836 dport=21 PERMANENT,USERSPACE class=0 helper=ftp");
    assert_eq!(e["mask"]["dport"], 65535);
    assert_eq!(e["master"]["sport"], 44836);
    assert_eq!(e["flags"], json!(["PERMANENT", "USERSPACE"]));
    assert_eq!(e["helper"], "ftp");
}
