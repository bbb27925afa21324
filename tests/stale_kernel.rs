//! Stale helper state against the real kernel's ftp helper, in a throwaway namespace pair
//! (10.213.92.0/24) with pyftpdlib and Python ftplib clients:
//! - an FTP control connection closed while its PASV expectation is pending
//!   (`master_closing`),
//! - a RELATED data connection (an upload that sends nothing) whose control flow was
//!   deleted, idle past `--related-idle` (`orphan_idle`),
//! - a live download (its data flow busy, its control flow alive).
//!
//! `list --filter stale=…` names them, `flush --stale --dry-run` lists the reasons and
//! removes nothing, and `flush --stale --yes` removes exactly the first two and leaves
//! the live transfer alone (it keeps receiving afterwards).

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::lab::{privileged, Lab};

const SUBNET: u8 = 92;

fn ctscope(ns: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ctscope"))
        .args(["--netns", ns])
        .args(args)
        .output()
        .expect("run ctscope")
}

/// A Python ftplib client in the client namespace; its stdout lines are read as it goes.
struct Client {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Client {
    fn start(lab: &Lab, body: &str) -> Client {
        let script = format!(
            "import ftplib,socket,sys,time\n\
             f=ftplib.FTP()\n\
             f.connect('{}',21,timeout=30)\n\
             f.login()\n\
             print(f.sock.getsockname()[1],flush=True)\n\
             {body}",
            lab.srv4
        );
        let mut child = Command::new("ip")
            .args(["netns", "exec", &lab.cli, "/usr/bin/python3", "-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn ftp client");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        Client { child, lines }
    }

    fn line(&mut self) -> String {
        self.lines
            .next()
            .expect("a line from the ftp client")
            .expect("readable")
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn lines(lab: &Lab, cmd: &str) -> Vec<String> {
    lab.sh_ok(&lab.srv, &format!("{cmd} 2>/dev/null"))
        .lines()
        .map(str::to_owned)
        .collect()
}

fn wait_for(what: &str, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn flush_stale_removes_closed_masters_expectations_and_idle_orphans_only() {
    if !privileged("flush_stale_removes_closed_masters_expectations_and_idle_orphans_only") {
        return;
    }
    let mut lab = Lab::new("stale", SUBNET);
    let dir = std::env::temp_dir().join(format!("ctscope-stale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // A sparse 1 GiB file: the live download never runs out during the test.
    std::fs::File::create(dir.join("big.bin"))
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    lab.ftp_helper();
    let srv = lab.srv.clone();
    lab.spawn(
        &srv,
        &format!(
            "/usr/bin/python3 -m pyftpdlib -w -i {} -p 21 -d {}",
            lab.srv4,
            dir.display()
        ),
    );
    lab.wait_listen(&srv, 21);

    // The live transfer: a download read slowly, so its data flow is busy throughout.
    let mut live = Client::start(
        &lab,
        "c=f.transfercmd('RETR big.bin')\n\
         print(c.getsockname()[1],flush=True)\n\
         end=time.time()+120\n\
         while time.time()<end:\n\
         \x20   c.recv(16384)\n\
         \x20   time.sleep(0.05)\n",
    );
    let live_ctrl = live.line();
    let live_data = live.line();
    // The orphan-to-be: an upload that connects its data connection and sends nothing.
    let mut idle = Client::start(
        &lab,
        "c=f.transfercmd('STOR idle.bin')\n\
         print(c.getsockname()[1],flush=True)\n\
         time.sleep(120)\n",
    );
    let idle_ctrl = idle.line();
    let idle_data = idle.line();
    // The closed master: PASV, then the control connection closes with the expectation
    // still pending.
    let mut closed = Client::start(&lab, "f.sendcmd('PASV')\nf.close()\ntime.sleep(120)\n");
    let closed_ctrl = closed.line();

    let cli4 = lab.cli4.clone();
    let flow_of = |sport: &str| {
        lines(
            &lab,
            &format!("conntrack -L -p tcp -s {cli4} --sport {sport}"),
        )
    };
    wait_for("the data flows", || {
        !flow_of(&live_data).is_empty() && !flow_of(&idle_data).is_empty()
    });
    wait_for("the closed control flow's pending expectation", || {
        lines(&lab, "conntrack -L expect").len() == 1
    });
    let closing = flow_of(&closed_ctrl);
    assert!(
        closing.iter().any(|l| l.contains("TIME_WAIT")
            || l.contains("FIN_WAIT")
            || l.contains("CLOSE")
            || l.contains("LAST_ACK")),
        "the closed control flow: {closing:?}"
    );
    // Delete the upload's control flow: its RELATED data flow stays, now without master.
    lab.sh_ok(
        &lab.srv,
        &format!("conntrack -D -p tcp -s {cli4} --sport {idle_ctrl} --dport 21 >/dev/null 2>&1"),
    );
    assert!(flow_of(&idle_ctrl).is_empty());
    assert_eq!(
        flow_of(&idle_data).len(),
        1,
        "the RELATED data flow outlives its master"
    );
    std::thread::sleep(Duration::from_secs(3));

    // The filter language names the expectation's reason (default thresholds).
    let out = ctscope(
        &lab.srv,
        &["list", "--expect", "--filter", "stale=master_closing"],
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text.lines().count(), 1, "{text}");
    let out = ctscope(&lab.srv, &["list", "--filter", "stale=orphan_idle"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        0,
        "idle 3 s is below the default 60 s"
    );

    let flows_before = lines(&lab, "conntrack -L");
    let args = ["flush", "--stale", "--related-idle", "2s"];
    let dry = ctscope(&lab.srv, &[&args[..], &["--dry-run"]].concat());
    let plan = String::from_utf8_lossy(&dry.stderr).into_owned();
    assert!(dry.status.success(), "{plan}");
    assert!(
        plan.contains("reasons: master_closing 1, orphan_idle 1"),
        "the confirmation lists the reasons: {plan}"
    );
    assert!(
        plan.contains("1 flow (1 RELATED") && plan.contains("1 expectation"),
        "{plan}"
    );
    assert!(plan.contains("[stale: orphan_idle]") && plan.contains("[stale: master_closing]"));
    assert!(plan.contains("dry run, nothing removed"));
    assert_eq!(lines(&lab, "conntrack -L expect").len(), 1);

    let out = ctscope(&lab.srv, &[&args[..], &["--yes"]].concat());
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    assert!(
        lines(&lab, "conntrack -L expect").is_empty(),
        "the pending expectation went"
    );
    assert!(flow_of(&idle_data).is_empty(), "the idle orphan went");
    let flows_after = lines(&lab, "conntrack -L");
    // Compared by tuple (the text before the timeout moves); exactly the orphan went.
    let key = |l: &str| {
        l.split_whitespace()
            .filter(|w| w.contains('=') && !w.starts_with("mark") && !w.starts_with("use"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let before: Vec<String> = flows_before.iter().map(|l| key(l)).collect();
    let after: Vec<String> = flows_after.iter().map(|l| key(l)).collect();
    let gone: Vec<&String> = before.iter().filter(|k| !after.contains(k)).collect();
    assert_eq!(gone.len(), 1, "exactly one flow removed: {gone:?}");
    assert!(gone[0].contains(&format!("sport={idle_data}")), "{gone:?}");
    // The live transfer is untouched and still moving.
    assert_eq!(flow_of(&live_data).len(), 1);
    assert_eq!(flow_of(&live_ctrl).len(), 1);
    std::thread::sleep(Duration::from_millis(500));
    assert!(live.alive(), "the live download kept going");
    let again = ctscope(&lab.srv, &args);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("nothing to remove"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    drop((live, idle, closed));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A SIP phone registers through the sip helper (on the phone's host, whose table is under
/// test) and goes away: the registration's PERMANENT expectation stays behind. `flush
/// --stale --helper sip` removes it, with its reason; `--helper ftp` finds nothing.
#[test]
fn flush_stale_removes_a_gone_phones_registration_expectation() {
    if !privileged("flush_stale_removes_a_gone_phones_registration_expectation") {
        return;
    }
    let mut lab = Lab::new("stalesip", SUBNET + 1);
    let (srv, cli) = (lab.srv.clone(), lab.cli.clone());
    lab.sh_ok(
        &cli,
        "iptables -t raw -A OUTPUT -p udp --dport 5060 -j CT --helper sip",
    );
    let (c, s) = (lab.cli4.clone(), lab.srv4.clone());
    let msg = |first: &str, contact: &str| {
        let lines = [
            first.to_owned(),
            format!("Via: SIP/2.0/UDP {c}:5060;branch=z9hG4bK1"),
            "Max-Forwards: 70".into(),
            format!("To: <sip:alice@{s}>"),
            format!("From: <sip:alice@{s}>;tag=a1"),
            format!("Call-ID: reg1@{c}"),
            "CSeq: 1 REGISTER".into(),
            contact.to_owned(),
            "Content-Length: 0".into(),
        ];
        let m = format!("{}\r\n\r\n", lines.join("\r\n"));
        m.bytes().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let register = msg(
        &format!("REGISTER sip:{s} SIP/2.0"),
        &format!("Contact: <sip:alice@{c}:5060>\r\nExpires: 3600"),
    );
    let ok = msg(
        "SIP/2.0 200 OK",
        &format!("Contact: <sip:alice@{c}:5060>;expires=3600"),
    );
    lab.spawn(
        &srv,
        &format!(
            "/usr/bin/python3 -c \"import socket,time\n\
             s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('{s}',5060))\n\
             _,p=s.recvfrom(4096); s.sendto(bytes.fromhex('{ok}'),p); time.sleep(60)\""
        ),
    );
    std::thread::sleep(Duration::from_millis(300));
    // The phone registers, reads the 200 OK and exits: the UA is gone.
    lab.sh_ok(
        &cli,
        &format!(
            "/usr/bin/python3 -c \"import socket\n\
             s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(('{c}',5060)); s.settimeout(10)\n\
             s.sendto(bytes.fromhex('{register}'),('{s}',5060)); s.recvfrom(4096)\""
        ),
    );
    let expects = || {
        lab.sh_ok(&cli, "conntrack -L expect 2>/dev/null")
            .lines()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    wait_for("the registration's expectation", || expects().len() == 1);
    assert!(expects()[0].contains("PERMANENT"), "{:?}", expects());

    let out = ctscope(&cli, &["flush", "--stale", "--helper", "ftp", "--dry-run"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to remove"));
    let out = ctscope(&cli, &["flush", "--stale", "--helper", "sip", "--yes"]);
    let report = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{report}");
    assert!(
        report.contains("stale helper state of helper 'sip' (reasons: permanent 1)"),
        "{report}"
    );
    assert!(report.contains("1 expectation"), "{report}");
    assert!(expects().is_empty(), "the registration's expectation went");
    // The registration's own signalling flow is kept: its master_idle verdict needs an
    // idle time, and the sip helper re-arms it with the registration's expiry.
    let flows = lab.sh_ok(&cli, "conntrack -L -p udp --dport 5060 2>/dev/null");
    assert_eq!(flows.lines().count(), 1, "{flows}");
    let timeout: u32 = flows.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert!(timeout > 180, "re-armed beyond udp_timeout_stream: {flows}");
}
