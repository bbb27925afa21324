//! End to end: the `ctscope` binary's dashboard in tmux against a live network namespace
//! with real FTP traffic through the kernel's ftp helper. It watches the expectation and the
//! RELATED data flow appear, filters to them, removes them with the flush actions after the
//! confirmation, and checks with conntrack(8) that the kernel no longer has them; then quits
//! and checks the terminal was restored.
//!
//! Needs root (namespaces, ctnetlink) and tmux; skips with one line otherwise (fails under
//! CI=true). Polls the screen with a deadline: this drives a real terminal, not the app.

mod common;
use common::tmux::{have_tmux, Tmux};

use common::lab::{privileged, Lab};

#[test]
fn dashboard_shows_and_flushes_a_real_ftp_chain() {
    if !privileged("dashboard_shows_and_flushes_a_real_ftp_chain") {
        return;
    }
    if !have_tmux() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("tmux is required under CI=true");
        }
        println!("skipped: dashboard_shows_and_flushes_a_real_ftp_chain needs tmux");
        return;
    }
    let dir = std::env::temp_dir().join(format!("ctscope-tui-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hello.txt"), b"hello through the ftp helper\n").unwrap();
    let mut lab = Lab::new("tui", 4);
    lab.ftp_helper();
    lab.ftp_server(&dir.to_string_lossy());

    let bin = env!("CARGO_BIN_EXE_ctscope");
    let cmd = format!(
        "{bin} --netns {}; echo EXIT=$?; stty -a | tr ' ' '\\n' | grep -x -- '-*icanon'; sleep 60",
        lab.srv
    );
    let tmux = Tmux::start("e2e", &cmd, 110, 30);
    tmux.wait_for("the dashboard", |s| s.contains("1 Flows"));

    // A passive transfer (its data flow is RELATED), then a PASV nobody connects to (an
    // expectation that stays), with the control connection held open.
    let script = format!(
        "import ftplib,time\n\
         f=ftplib.FTP()\n\
         f.connect('{srv}',21,timeout=10)\n\
         f.login()\n\
         f.set_pasv(True)\n\
         b=bytearray()\n\
         f.retrbinary('RETR hello.txt', b.extend)\n\
         f.sendcmd('PASV')\n\
         time.sleep(120)\n",
        srv = lab.srv4
    );
    let cli = lab.cli.clone();
    let py = format!("/usr/bin/python3 -c \"{}\"", script.replace('"', "\\\""));
    lab.spawn(&cli, &py);

    let s = tmux.wait_for("the expectation and the RELATED flow", |s| {
        s.contains("exp 1/") && s.contains("RELATED 1")
    });
    assert!(s.contains("ftp 1/1"), "helper counts: {s}");
    let ansi = tmux.screen_ansi();
    assert!(ansi.contains("\x1b["), "the dashboard is coloured");

    // Filter to RELATED flows and expectations.
    tmux.keys(&["/"]);
    tmux.type_text("related or expect");
    tmux.keys(&["Enter"]);
    // The tab line names the filter, or with six tabs only its match count ("1/2 match").
    let s = tmux.wait_for("the filter", |s| {
        s.contains("filter: related or expect") || s.contains("/2 match")
    });
    assert!(s.contains("RELATED"), "{s}");

    // Flush the flows matching the filter: the RELATED data flow.
    tmux.keys(&["F"]);
    let s = tmux.wait_for("the confirmation", |s| s.contains("Flush flows matching"));
    assert!(s.contains("1 flow(s): 1 RELATED, 0 master(s)"), "{s}");
    tmux.keys(&["y"]);
    tmux.wait_for("the flush report", |s| {
        s.contains("removed 1, already gone 0, refused 0")
    });
    let tcp = lab.sh_ok(&lab.srv, "conntrack -L -p tcp 2>/dev/null");
    let data: Vec<&str> = tcp.lines().filter(|l| !l.contains("dport=21 ")).collect();
    assert!(
        data.is_empty(),
        "RELATED data flow still in the kernel: {data:?}"
    );
    assert!(
        tcp.contains("dport=21 "),
        "the control connection stays: {tcp}"
    );

    // Flush the ftp helper's expectations from the expectations screen.
    tmux.keys(&["2"]);
    tmux.wait_for("the expectation row", |s| {
        s.contains("ftp") && s.contains(":any →")
    });
    tmux.keys(&["H"]);
    let s = tmux.wait_for("the helper confirmation", |s| {
        s.contains("Flush the expectations of helper 'ftp'")
    });
    assert!(s.contains("1 expectation(s)"), "{s}");
    tmux.keys(&["y"]);
    tmux.wait_for("the expectation gone", |s| s.contains("exp 0/"));
    let exp = lab.sh_ok(&lab.srv, "conntrack -L expect 2>/dev/null | wc -l");
    assert_eq!(exp.trim(), "0", "expectations left in the kernel");

    // Quit: exit 0 and a cooked terminal again.
    tmux.keys(&["q"]);
    let s = tmux.wait_for("the exit and the terminal mode", |s| {
        s.contains("EXIT=") && s.lines().any(|l| l.trim().ends_with("icanon"))
    });
    assert!(s.contains("EXIT=0"), "{s}");
    assert!(
        s.lines().any(|l| l.trim() == "icanon"),
        "terminal left raw: {s}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
