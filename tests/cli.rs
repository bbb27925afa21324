//! The binary as a user meets it: usage errors exit 2 with a readable message, a missing
//! privilege names sudo and setcap, a closed pipe exits 0, and a recording made live
//! replays without root through every headless command.

mod common;
use common::lab::{privileged, Lab};
use std::process::{Command, Output, Stdio};

fn ctscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ctscope"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ctscope")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn help_lists_every_command_and_the_privilege_hint() {
    let out = ctscope(&["--help"]);
    assert!(out.status.success());
    let help = text(&out.stdout);
    for cmd in ["list", "watch", "delete", "flush", "record", "audit"] {
        assert!(help.contains(&format!("  {cmd}")), "{cmd} missing:\n{help}");
    }
    assert!(help.contains("setcap cap_net_admin+ep"), "{help}");
}

#[test]
fn bad_filter_is_a_usage_error_with_a_caret() {
    let out = ctscope(&[
        "list",
        "--replay",
        "/nonexistent",
        "--filter",
        "dport=21 and (helper=ftp",
    ]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(err.contains("dport=21 and (helper=ftp"), "{err}");
    assert!(err.contains('^'), "{err}");
}

#[test]
fn bad_regex_is_a_usage_error() {
    let out = ctscope(&["list", "--replay", "/nonexistent", "--filter", "/tcp[/"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn bad_port_flag_is_a_usage_error() {
    let out = ctscope(&["list", "--dport", "http"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn unknown_helper_is_refused_with_the_known_names() {
    let out = ctscope(&["flush", "--expect", "--helper", "no such!", "--dry-run"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("unknown helper 'no such!'") && err.contains("ftp"),
        "{err}"
    );
}

/// Durations too long for the clock are a usage error, never a panic (this one used to
/// overflow `Instant + Duration`).
#[test]
fn an_absurd_duration_is_a_usage_error() {
    for cmd in ["watch", "record"] {
        let mut args = vec![cmd, "--duration", "300000000000y"];
        if cmd == "record" {
            args.push("/nonexistent/never-created.ctrec");
        }
        let out = ctscope(&args);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
        assert!(
            text(&out.stderr).contains("--duration"),
            "{}",
            text(&out.stderr)
        );
        assert!(!text(&out.stderr).contains("panicked"));
    }
    // The largest humantime accepts overflows differently; it is refused the same way.
    let out = ctscope(&["watch", "--duration", "584542046090y"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn delete_without_a_filter_is_refused() {
    let out = ctscope(&["delete", "--dry-run"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("ctscope flush"));
}

#[test]
fn missing_recording_names_the_file() {
    let out = ctscope(&["list", "--replay", "/nonexistent/rec.ctrec"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/rec.ctrec"));
}

#[test]
fn garbage_recording_is_an_error_not_a_panic() {
    let path = std::env::temp_dir().join(format!("ctscope-garbage-{}.ctrec", std::process::id()));
    std::fs::write(&path, b"this is not a recording at all\n").unwrap();
    let out = ctscope(&["list", "--replay", path.to_str().unwrap()]);
    let _ = std::fs::remove_file(&path);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(!text(&out.stderr).contains("panicked"));
}

#[test]
fn missing_namespace_is_explained() {
    if !privileged("missing_namespace_is_explained") {
        return;
    }
    let out = ctscope(&["--netns", "ctscope-cli-does-not-exist", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.contains("'ctscope-cli-does-not-exist'") && err.contains("hint:"),
        "{err}"
    );
}

/// As an unprivileged user, reading the table fails with the sudo/setcap hint.
#[test]
fn unprivileged_user_gets_the_sudo_and_setcap_hint() {
    if !privileged("unprivileged_user_gets_the_sudo_and_setcap_hint") {
        return;
    }
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_ctscope"))
        .arg("list")
        .stdin(Stdio::null())
        .output()
        .expect("setpriv");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    assert!(
        err.contains("sudo") && err.contains("setcap cap_net_admin+ep"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

/// Record a live namespace, then use the recording as an unprivileged user: list (text,
/// JSON), a filter, watch, and a closed pipe — and actions refused.
#[test]
fn record_then_replay_without_root() {
    if !privileged("record_then_replay_without_root") {
        return;
    }
    let lab = Lab::new("cli", 8);
    for i in 0..300 {
        lab.sh_ok(
            &lab.srv,
            &format!(
                "conntrack -I -p tcp -s 10.213.8.{} -d 10.213.8.1 --sport {} --dport 22 \
                 --state ESTABLISHED -t 600 -u ASSURED,SEEN_REPLY 2>/dev/null",
                2 + i % 200,
                20000 + i
            ),
        );
    }
    let rec = std::env::temp_dir().join(format!("ctscope-cli-{}.ctrec", std::process::id()));
    let _ = std::fs::remove_file(&rec);
    let recs = rec.to_str().unwrap().to_owned();
    // Record until told to stop (SIGINT), and change the table only once the recorder has
    // subscribed (it says "recording to" after opening its event socket), so the test does
    // not depend on how fast a loaded machine starts processes.
    let mut child = Command::new(env!("CARGO_BIN_EXE_ctscope"))
        .args(["--netns", &lab.srv, "record", &recs])
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut first).unwrap();
    assert!(first.contains("recording to"), "{first}");
    // Two udp flows appear while recording and one of them goes. (A flow that existed
    // before the subscription would send no DESTROY under nf_conntrack_events=2.)
    for sport in [5353, 5354] {
        lab.sh_ok(
            &lab.srv,
            &format!(
                "conntrack -I -p udp -s 10.213.8.2 -d 10.213.8.1 --sport {sport} --dport 53 -t 30"
            ),
        );
    }
    lab.sh_ok(
        &lab.srv,
        "conntrack -D -p udp --sport 5354 --dport 53 >/dev/null 2>&1",
    );
    std::thread::sleep(std::time::Duration::from_secs(1));
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    assert!(child.wait().unwrap().success());
    // Private by default (it lists every flow); opened up here only for the nobody reads.
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&rec).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    std::fs::set_permissions(&rec, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();

    let as_nobody = |args: &[&str]| {
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .arg(env!("CARGO_BIN_EXE_ctscope"))
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("setpriv")
    };
    // `list` shows the table as the recording left it: the 300 dumped tcp flows plus the
    // udp flow that stayed (the other one was deleted while recording).
    let out = as_nobody(&["--replay", &recs, "list", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let flows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(flows.len(), 301);
    let tcp = flows
        .iter()
        .filter(|f| f["proto"] == "tcp" && f["orig"]["dport"] == 22);
    assert_eq!(tcp.count(), 300);
    let udp: Vec<_> = flows.iter().filter(|f| f["proto"] == "udp").collect();
    assert_eq!(udp.len(), 1, "{udp:?}");
    assert_eq!(udp[0]["orig"]["sport"], 5353);

    // watch replays the recorded events: the NEW udp flows and the DESTROY of one of them.
    let out = as_nobody(&["--replay", &recs, "--fast", "watch", "--ndjson"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "new" && l["kind"] == "flow" && l["proto"] == "udp"),
        "{lines:?}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["event"] == "destroy" && l["orig"]["sport"] == 5354),
        "{lines:?}"
    );

    // A filter on a replay, and a closed pipe exits 0.
    let out = as_nobody(&["--replay", &recs, "list", "--sport", "20001"]);
    assert_eq!(
        text(&out.stdout).lines().count(),
        1,
        "{}",
        text(&out.stdout)
    );
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "'{}' --replay '{recs}' list | head -n 1 >/dev/null; echo ${{PIPESTATUS[0]}}",
            env!("CARGO_BIN_EXE_ctscope")
        ))
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout).trim(), "0", "closed pipe must exit 0");

    // Actions on a replay are refused, clearly.
    let out = as_nobody(&["--replay", &recs, "flush", "--yes"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("replay"),
        "{}",
        text(&out.stderr)
    );

    // The recording is never overwritten unasked; --force does it.
    let again = |force: bool| {
        let mut args = vec!["--netns", &lab.srv, "record", "--duration", "200ms"];
        if force {
            args.push("--force");
        }
        args.push(&recs);
        ctscope(&args)
    };
    let before = std::fs::read(&rec).unwrap();
    let out = again(false);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("already exists") && text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read(&rec).unwrap(), before);
    let out = again(true);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_ne!(std::fs::read(&rec).unwrap(), before);
    let _ = std::fs::remove_file(&rec);
}

/// `delete --expect` removes exactly the expectations its filter selects: two pending
/// passive-FTP expectations (PASV sent, data connection never opened), one deleted by its
/// port, the other left in the kernel.
#[test]
fn delete_expect_removes_only_the_selected_expectation() {
    if !privileged("delete_expect_removes_only_the_selected_expectation") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ctscope-cli-ftp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut lab = Lab::new("clix", 10);
    lab.ftp_helper();
    lab.ftp_server(dir.to_str().unwrap());
    let srv4 = lab.srv4.clone();
    let cli = lab.cli.clone();
    for _ in 0..2 {
        lab.spawn(
            &cli,
            &format!(
                "/usr/bin/python3 -c \"import ftplib,time; f=ftplib.FTP(); f.connect('{srv4}',21,timeout=10); \
                 f.login(); f.sendcmd('PASV'); time.sleep(30)\""
            ),
        );
    }
    let list = || -> Vec<serde_json::Value> {
        let out = ctscope(&["--netns", &lab.srv, "list", "--expect", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut exps = list();
    while exps.len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        exps = list();
    }
    assert_eq!(exps.len(), 2, "{exps:?}");
    let port = exps[0]["tuple"]["dport"].as_u64().unwrap().to_string();
    let keep = exps[1]["tuple"]["dport"].clone();

    let out = ctscope(&[
        "--netns",
        &lab.srv,
        "delete",
        "--expect",
        "--dport",
        &port,
        "--dry-run",
    ]);
    assert!(out.status.success());
    assert_eq!(list().len(), 2, "a dry run removes nothing");

    let out = ctscope(&[
        "--netns", &lab.srv, "delete", "--expect", "--dport", &port, "--yes",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("removed 1"),
        "{}",
        text(&out.stderr)
    );
    let left = list();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0]["tuple"]["dport"], keep);

    // The helper flush gets a bare ACK from the kernel; the result still counts what went.
    let out = ctscope(&[
        "--netns", &lab.srv, "flush", "--expect", "--helper", "ftp", "--yes",
    ]);
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("removed 1, already gone 0, refused 0; flushed expectations of 'ftp' (1)"),
        "{err}"
    );
    assert!(list().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

/// `watch` shows each entry as the store holds it after merging: an UPDATE that omits an
/// unchanged attribute (here the labels of the lab's labelled SSH and web flows) still
/// prints it. Uses the committed lab recording, no root.
#[test]
fn watch_updates_keep_what_the_kernel_did_not_repeat() {
    let rec = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/lab-helpers.ctrec");
    let out = ctscope(&[
        "--replay",
        rec,
        "--fast",
        "watch",
        "--ndjson",
        "--flows-only",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut labelled = std::collections::HashSet::new();
    let mut checked = 0;
    for line in text(&out.stdout).lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = v["orig"].to_string();
        let has = v["labels"].as_array().is_some_and(|l| !l.is_empty());
        if v["event"] == "update" && labelled.contains(&key) {
            assert!(has, "labels lost on update: {line}");
            checked += 1;
        }
        if has {
            labelled.insert(key);
        }
    }
    assert!(checked > 0, "the recording has updates of labelled flows");
}

// ---- conntrack(8) words: -f, -p, -l, --filter /regex/ ---------------------------------

const LAB_REC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/assets/lab-helpers.ctrec");

/// `ctscope ARGS` with the label map taken from `labels` (`""`: no map), whatever the
/// machine's /etc holds.
fn ctscope_labels(labels: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ctscope"))
        .args(args)
        .env("CTSCOPE_CONNLABEL_CONF", labels)
        .stdin(Stdio::null())
        .output()
        .expect("run ctscope")
}

fn json_list(out: &Output) -> Vec<serde_json::Value> {
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    match serde_json::from_slice(&out.stdout) {
        Ok(serde_json::Value::Array(v)) => v,
        other => panic!("not a JSON array: {other:?}"),
    }
}

/// `-f` is conntrack's `--family`, not the filter expression (which was `-f` before and
/// turned `-f ipv6` into a text search that matched nothing, exit 0).
#[test]
fn dash_f_is_the_address_family() {
    let all = json_list(&ctscope(&["list", "--replay", LAB_REC, "--json"]));
    for fam in ["ipv4", "ipv6"] {
        let got = json_list(&ctscope(&[
            "list", "--replay", LAB_REC, "--json", "-f", fam,
        ]));
        let want = all.iter().filter(|v| v["family"] == fam).count();
        assert!(want > 0, "the recording has {fam} flows");
        assert_eq!(got.len(), want, "-f {fam}");
        assert!(got.iter().all(|v| v["family"] == fam), "-f {fam}");
        let long = json_list(&ctscope(&[
            "list", "--replay", LAB_REC, "--json", "--family", fam,
        ]));
        assert_eq!(long, got, "--family {fam} is -f {fam}");
    }
    let out = ctscope(&["list", "--replay", LAB_REC, "-f", "ipv5"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("unknown family 'ipv5'"));
    // The old spelling of the filter expression is told where it went.
    let out = ctscope(&["list", "--replay", LAB_REC, "-f", "helper=ftp"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("hint: -f is the address family"));
}

/// As conntrack(8): a selection mixing families is a usage error, not an empty result.
#[test]
fn mixed_families_are_a_usage_error() {
    for args in [
        &["-s", "::1", "-d", "2.2.2.2"][..],
        &["-f", "ipv6", "-s", "10.0.0.1"],
        &["-f", "ipv4", "-d", "fd00::/8"],
        &["-s", "10.0.0.0/8", "-d", "[::1]"],
    ] {
        for cmd in ["list", "watch", "delete"] {
            let mut a = vec![cmd, "--replay", LAB_REC];
            a.extend_from_slice(args);
            let out = ctscope(&a);
            assert_eq!(out.status.code(), Some(2), "{a:?}: {}", text(&out.stderr));
            let err = text(&out.stderr);
            assert!(
                err.contains("mismatched address family") && !err.contains("panicked"),
                "{a:?}: {err}"
            );
        }
    }
    // One family throughout is fine.
    let out = ctscope(&["list", "--replay", LAB_REC, "-f", "ipv6", "-s", "::/0"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// `-p` takes any /etc/protocols name (or the built-in table's) and numbers; a name that
/// is none is a usage error.
#[test]
fn dash_p_takes_system_protocol_names_and_numbers() {
    for p in ["igmp", "IGMP", "2", "40", "esp", "ospf", "tcp", "ipv6-icmp"] {
        let out = ctscope(&["list", "--replay", LAB_REC, "-p", p]);
        assert_eq!(out.status.code(), Some(0), "-p {p}: {}", text(&out.stderr));
    }
    let tcp = json_list(&ctscope(&[
        "list", "--replay", LAB_REC, "--json", "-p", "6",
    ]));
    assert!(!tcp.is_empty() && tcp.iter().all(|v| v["proto"] == "tcp"));
    for p in ["bogus", "256"] {
        let out = ctscope(&["list", "--replay", LAB_REC, "-p", p]);
        assert_eq!(out.status.code(), Some(2), "-p {p}");
        assert!(text(&out.stderr).contains(&format!("unknown protocol '{p}'")));
    }
}

/// A CLI `/regex/` searches the line ctscope prints, so `dport=3306` finds the flow to
/// port 3306 (it searched the dashboard's row text before and found nothing).
#[test]
fn cli_regex_matches_the_printed_line() {
    let out = ctscope(&["list", "--replay", LAB_REC, "-F", "/dport=3306 /"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines: Vec<String> = text(&out.stdout).lines().map(str::to_owned).collect();
    assert!(!lines.is_empty(), "the recording has a flow to 3306");
    assert!(lines.iter().all(|l| l.contains("dport=3306 ")), "{lines:?}");
    // The same selection by field agrees, and so does the long spelling.
    let by_field = ctscope(&["list", "--replay", LAB_REC, "--filter", "port=3306"]);
    assert_eq!(text(&by_field.stdout), text(&out.stdout));
    // Words of the printed line: helper=, [UNREPLIED]-style tags, use=.
    let out = ctscope(&["list", "--replay", LAB_REC, "--filter", "/helper=ftp/"]);
    assert!(text(&out.stdout).lines().count() > 0);
    assert!(text(&out.stdout).lines().all(|l| l.contains("helper=ftp")));
    // Expectations search their own printed line.
    let out = ctscope(&["list", "--replay", LAB_REC, "--expect", "-F", "/class=0/"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

/// Labels: names from the connlabel.conf ctscope is pointed at, in JSON and text, and as
/// `--label`/`label=` values; an unknown name is a usage error naming the file.
#[test]
fn labels_use_connlabel_names() {
    let conf = std::env::temp_dir().join(format!("ctscope-connlabel-{}.conf", std::process::id()));
    std::fs::write(&conf, "# test map\n1 ssh-ok\n3 web team\n").unwrap();
    let c = conf.to_str().unwrap();
    let unnamed = json_list(&ctscope_labels(
        "",
        &["list", "--replay", LAB_REC, "--json"],
    ));
    let named = json_list(&ctscope_labels(c, &["list", "--replay", LAB_REC, "--json"]));
    assert_eq!(unnamed.len(), named.len());
    let mut seen = 0;
    for (u, n) in unnamed.iter().zip(&named) {
        let want: Vec<serde_json::Value> = u["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| match b.as_u64() {
                Some(1) => serde_json::json!("ssh-ok"),
                Some(3) => serde_json::json!("web team"),
                _ => b.clone(),
            })
            .collect();
        seen += want.len();
        assert_eq!(n["labels"], serde_json::Value::Array(want), "{n}");
    }
    assert!(seen > 0, "the recording has labelled flows");

    let by_name = json_list(&ctscope_labels(
        c,
        &["list", "--replay", LAB_REC, "--json", "-l", "web team"],
    ));
    let by_bit = json_list(&ctscope_labels(
        "",
        &["list", "--replay", LAB_REC, "--json", "--label", "3"],
    ));
    let by_expr = json_list(&ctscope_labels(
        c,
        &[
            "list",
            "--replay",
            LAB_REC,
            "--json",
            "-F",
            "label=\"web team\"",
        ],
    ));
    let repeated = json_list(&ctscope_labels(
        c,
        &[
            "list", "--replay", LAB_REC, "--json", "-l", "web team", "-l", "3",
        ],
    ));
    assert!(!by_name.is_empty());
    assert_eq!(repeated, by_name);
    assert_eq!(by_name.len(), by_bit.len());
    assert_eq!(by_name, by_expr);
    assert!(by_name
        .iter()
        .all(|v| v["labels"].as_array().unwrap().contains(&"web team".into())));

    let txt = ctscope_labels(c, &["list", "--replay", LAB_REC, "-l", "ssh-ok"]);
    assert_eq!(txt.status.code(), Some(0), "{}", text(&txt.stderr));
    let lines = text(&txt.stdout);
    assert!(lines.lines().count() > 0);
    assert!(
        lines.lines().all(|l| l.contains(" labels=ssh-ok")),
        "{lines}"
    );

    let out = ctscope_labels(c, &["list", "--replay", LAB_REC, "-l", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(
        err.contains("unknown label 'nosuch'") && err.contains(c),
        "{err}"
    );
    let _ = std::fs::remove_file(&conf);
}

/// A copy of the binary carrying file capabilities `caps`, in a directory `nobody` can
/// reach (the target directory may not be). Removed on drop.
struct CapCopy {
    dir: std::path::PathBuf,
    bin: std::path::PathBuf,
}

impl CapCopy {
    fn new(tag: &str, caps: &str) -> CapCopy {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("ctscope-caps-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = dir.join("ctscope");
        std::fs::copy(env!("CARGO_BIN_EXE_ctscope"), &bin).unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        let out = Command::new("setcap")
            .arg(caps)
            .arg(&bin)
            .output()
            .expect("setcap (package libcap2-bin)");
        assert!(out.status.success(), "setcap: {}", text(&out.stderr));
        CapCopy { dir, bin }
    }

    /// Run the copy as `nobody` with no inherited capabilities: only the file's count.
    fn run(&self, args: &[&str]) -> Output {
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--inh-caps=-all",
            ])
            .arg(&self.bin)
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .expect("setpriv")
    }
}

impl Drop for CapCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What `setcap cap_net_admin+ep` covers, tried as `nobody`: reading this host's table
/// (read-only: `count`, `list`) works, `audit` reads the nftables ruleset through its `nft`
/// child (CAP_NET_ADMIN passed on as an ambient capability), and `--netns` fails naming
/// CAP_SYS_ADMIN with the exact setcap line that adds it. With that line, `--netns` works.
#[test]
fn file_capabilities_cover_what_the_readme_says() {
    if !privileged("file_capabilities_cover_what_the_readme_says") {
        return;
    }
    let net = CapCopy::new("net", "cap_net_admin+ep");
    // Host table: read only.
    let out = net.run(&["count"]);
    assert!(out.status.success(), "count: {}", text(&out.stderr));
    assert!(
        text(&out.stdout).trim().parse::<u64>().is_ok(),
        "{}",
        text(&out.stdout)
    );
    let out = net.run(&["list", "--json"]);
    assert!(out.status.success(), "list: {}", text(&out.stderr));

    let out = net.run(&["audit"]);
    let report = text(&out.stdout);
    assert!(
        !report.contains("'nft -j list ruleset' failed"),
        "nft did not get CAP_NET_ADMIN:\n{report}"
    );

    let lab = Lab::new("caps", 61);
    lab.restore(
        &lab.srv.clone(),
        "-I -p tcp -s 10.213.61.2 -d 10.213.61.1 --sport 40000 --dport 22 --state ESTABLISHED -t 300",
    );
    let out = net.run(&["--netns", &lab.srv, "count"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("CAP_SYS_ADMIN") && err.contains("setcap cap_net_admin,cap_sys_admin+ep"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 2, "one line and a hint: {err}");

    let both = CapCopy::new("both", "cap_net_admin,cap_sys_admin+ep");
    let out = both.run(&["--netns", &lab.srv, "count"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).trim(), "1");
    // audit inside the namespace: nft runs from the namespace thread, so the ambient
    // capability must be raised there too.
    lab.sh_ok(&lab.srv, "nft add table inet capsprobe");
    let out = both.run(&["--netns", &lab.srv, "audit"]);
    let report = text(&out.stdout);
    assert!(
        !report.contains("'nft -j list ruleset' failed"),
        "nft inside the namespace did not get CAP_NET_ADMIN:\n{report}"
    );
}
