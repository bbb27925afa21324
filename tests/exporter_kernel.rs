//! `ctscope exporter`, `audit --prom` and `list --prom` against the real kernel and the
//! real consumers: a lab namespace where a forged FTP `PORT` aims at a listening 3306
//! and a legitimate passive transfer runs, scraped by Debian's `prometheus` while
//! `prometheus-node-exporter` serves the textfiles. The test asks Prometheus's HTTP API
//! (`/api/v1/query`) for the series, as a dashboard or an alert would. Both servers bind
//! to loopback on free ports and are stopped by PID.
//!
//! Bad input, without Prometheus: a port in use, a bad or non-loopback address (no root
//! needed: the exporter binds before it opens netlink), a client that hangs up in the
//! middle of a large response, and 1,000 scrapes in parallel while events keep coming.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::lab::{privileged, Lab};

const SUBNET: u8 = 31;

const EXPECT_IN_CMD: &str =
    r#"ctscope_expectations{job="ctscope",helper="ftp",family="ipv4",freedom="in_cmd"}"#;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ctscope"))
}

/// A free loopback port (bound, read, released).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A background process stopped by its PID on drop (SIGTERM, then SIGKILL after 5 s).
struct Proc {
    child: Child,
    what: &'static str,
}

impl Proc {
    fn start(what: &'static str, cmd: &mut Command) -> Proc {
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e} (installed by .ci/run)"));
        Proc { child, what }
    }

    /// Stop it with SIGTERM and return its exit status and stderr.
    fn stop(mut self) -> (std::process::ExitStatus, String) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: a signal to our own child's PID, which it keeps until we wait for it.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                break self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        (status, err)
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
            eprintln!("stopped {} (pid {})", self.what, self.child.id());
        }
    }
}

/// `GET path` over HTTP/1.0 (the server closes after the answer): (status, body).
fn get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_string()))
}

/// Percent-encode a PromQL query for a URL.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Ask Prometheus until `query` returns a result whose value satisfies `ok` (60 s).
fn wait_query(prom: SocketAddr, query: &str, ok: impl Fn(f64) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        if let Ok((200, body)) = get(prom, &format!("/api/v1/query?query={}", encode(query))) {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
            let values: Vec<f64> = result
                .iter()
                .filter_map(|r| r["value"][1].as_str()?.parse().ok())
                .collect();
            if values.len() == 1 && ok(values[0]) {
                return result[0].clone();
            }
            last = body;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("Prometheus never answered `{query}` as expected; last answer: {last}");
}

/// Start `ctscope --netns NS exporter` on a free loopback port and wait for `/healthz`.
fn start_exporter(ns: &str, extra: &[&str]) -> (Proc, SocketAddr) {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut cmd = bin();
    cmd.args(["--netns", ns, "exporter", "--listen", &addr.to_string()])
        .args(extra);
    let mut p = Proc::start("ctscope exporter", &mut cmd);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((200, body)) = get(addr, "/healthz") {
            assert_eq!(body, "ok\n");
            return (p, addr);
        }
        assert!(p.alive(), "the exporter exited: {:?}", p.stop());
        assert!(
            Instant::now() < deadline,
            "no /healthz from the exporter in 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The value of the one sample `series` (exact text before the value) in a scrape.
fn value(scrape: &str, series: &str) -> Option<f64> {
    scrape.lines().find_map(|l| {
        let (name, v) = l.rsplit_once(' ')?;
        (name == series).then(|| v.parse().ok()).flatten()
    })
}

#[test]
fn prometheus_and_node_exporter_see_the_forged_port_and_the_textfiles() {
    if !privileged("prometheus_and_node_exporter_see_the_forged_port_and_the_textfiles") {
        return;
    }
    let scratch = std::env::temp_dir().join(format!("ctscope-exk-{}", std::process::id()));
    let textdir = scratch.join("textfile");
    let ftproot = scratch.join("ftp");
    std::fs::create_dir_all(&textdir).unwrap();
    std::fs::create_dir_all(&ftproot).unwrap();
    std::fs::write(ftproot.join("hello.txt"), b"hello through the ftp helper\n").unwrap();
    let _cleanup = Cleanup(scratch.clone());

    let mut lab = Lab::new("exk", SUBNET);
    let (srv, cli) = (lab.srv.clone(), lab.cli.clone());
    // The table under watch is the client's: its helper parses the commands it sends.
    lab.sh_ok(
        &cli,
        "sysctl -qw net.netfilter.nf_conntrack_events=1 && \
         iptables -t raw -A OUTPUT -p tcp --dport 21 -j CT --helper ftp",
    );
    // The victim's database on 3306 in the client namespace.
    let db = scratch.join("db.py");
    std::fs::write(
        &db,
        "import socket\n\
         s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('0.0.0.0', 3306)); s.listen(16); held = []\n\
         while True:\n\
         \x20   c, _ = s.accept(); held.append(c)\n",
    )
    .unwrap();
    lab.spawn(&cli, &format!("/usr/bin/python3 {}", db.display()));
    lab.ftp_server(&ftproot.to_string_lossy());
    lab.wait_listen(&cli, 3306);

    let (exporter, exp_addr) = start_exporter(&cli, &["--audit-interval", "2s"]);

    // node_exporter with only the textfile collector, and Prometheus scraping both.
    let node_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let node = Proc::start(
        "prometheus-node-exporter",
        Command::new("prometheus-node-exporter").args([
            &format!("--web.listen-address={node_addr}"),
            "--collector.disable-defaults",
            "--collector.textfile",
            &format!("--collector.textfile.directory={}", textdir.display()),
        ]),
    );
    let prom_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let config = scratch.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n\
             \x20 - job_name: ctscope\n    static_configs:\n      - targets: ['{exp_addr}']\n\
             \x20 - job_name: node\n    static_configs:\n      - targets: ['{node_addr}']\n"
        ),
    )
    .unwrap();
    let prom = Proc::start(
        "prometheus",
        Command::new("prometheus").args([
            &format!("--config.file={}", config.display()),
            &format!("--storage.tsdb.path={}", scratch.join("tsdb").display()),
            &format!("--web.listen-address={prom_addr}"),
        ]),
    );

    // The pipeline's command, exactly as assets/exporter/vector.toml runs it, on this
    // namespace: its first line must be the forged PORT's expectation, with the fields a
    // log pipeline keys on. (Vector itself is not run here.)
    let vector: toml::Value =
        toml::from_str(include_str!("../assets/exporter/vector.toml")).unwrap();
    let argv: Vec<String> = vector["sources"]["ctscope_expectations"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(argv[0], "ctscope");
    let pipeline = bin()
        .args(&argv[1..])
        .args(["--netns", &cli, "--count", "1", "--duration", "60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));

    // The forged PORT toward 3306, sent before logging in (the server refuses it, the
    // helper has already made the expectation), on a control connection kept open.
    let forge = scratch.join("forge.py");
    std::fs::write(
        &forge,
        format!(
            "import socket, time\n\
             c = socket.create_connection(('{s4}', 21)); c.recv(512)\n\
             c.send(b'USER anonymous\\r\\n'); c.recv(512)\n\
             c.send(b'PORT 10,213,{n},2,12,234\\r\\n'); time.sleep(120)\n",
            s4 = lab.srv4,
            n = SUBNET
        ),
    )
    .unwrap();
    lab.spawn(&cli, &format!("/usr/bin/python3 {}", forge.display()));
    let q = |s: &str| format!("{s}{{job=\"ctscope\",helper=\"ftp\"}}");
    wait_query(prom_addr, EXPECT_IN_CMD, |v| v == 1.0);
    wait_query(
        prom_addr,
        r#"ctscope_findings{job="ctscope",kind="sensitive_port",helper="ftp"}"#,
        |v| v == 1.0,
    );
    let out = pipeline.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(line["event"], "new", "{line}");
    assert_eq!(line["kind"], "expect", "{line}");
    assert_eq!(line["netns"], cli.as_str(), "{line}");
    assert!(
        line["host"].as_str().is_some_and(|h| !h.is_empty()),
        "{line}"
    );
    assert!(line["time"].as_str().unwrap().ends_with('Z'), "{line}");
    assert_eq!(line["tuple"]["dport"], 3306, "{line}");

    // The attacker connects to the database: the kernel consumes the expectation and
    // lets the flow in as RELATED; the finding moves to the flow, the count stays 1.
    lab.spawn(
        &srv,
        &format!(
            "/usr/bin/python3 -c \"import socket,time; s=socket.socket(); s.bind(('{s4}',47000)); s.connect(('{c4}',3306)); time.sleep(120)\"",
            s4 = lab.srv4,
            c4 = lab.cli4
        ),
    );
    wait_query(
        prom_addr,
        r#"ctscope_related_flows{job="ctscope",helper="ftp",risk_from="expectation"}"#,
        |v| v == 1.0,
    );
    wait_query(prom_addr, EXPECT_IN_CMD, |v| v == 0.0);
    wait_query(
        prom_addr,
        r#"ctscope_findings{job="ctscope",kind="sensitive_port",helper="ftp"}"#,
        |v| v == 1.0,
    );

    // The forged flow's findings, every kind (a listening socket too): the legitimate
    // transfer below must add none.
    let forged = wait_query(prom_addr, &format!("sum({})", q("ctscope_findings")), |v| {
        v >= 1.0
    })["value"][1]
        .clone();
    wait_query(
        prom_addr,
        r#"ctscope_findings{job="ctscope",kind="listening_socket",helper="ftp"}"#,
        |v| v == 1.0,
    );
    // A legitimate passive transfer: one more RELATED flow, no new finding.
    assert_eq!(
        lab.ftp_get(false, true, "hello.txt", 0),
        b"hello through the ftp helper\n"
    );
    wait_query(
        prom_addr,
        &format!("sum({})", q("ctscope_related_flows")),
        |v| v == 2.0,
    );
    let findings = wait_query(prom_addr, &format!("sum({})", q("ctscope_findings")), |v| {
        v >= 1.0
    });
    assert_eq!(
        findings["value"][1], forged,
        "only the forged flow has findings"
    );
    wait_query(
        prom_addr,
        r#"ctscope_events_total{job="ctscope",kind="expectation",event="new"}"#,
        |v| v >= 2.0,
    );
    wait_query(
        prom_addr,
        r#"sum(ctscope_flows{job="ctscope",family="ipv4",proto="tcp"})"#,
        |v| v >= 4.0,
    );
    wait_query(prom_addr, r#"ctscope_flows_max{job="ctscope"}"#, |v| {
        v > 0.0
    });
    wait_query(
        prom_addr,
        r#"ctscope_conntrack_stat_total{job="ctscope",counter="insert"}"#,
        |_| true,
    );
    wait_query(
        prom_addr,
        r#"ctscope_audit_findings{job="ctscope",kind="sensitive_port"}"#,
        |v| v >= 1.0,
    );

    // The textfiles, written as a timer would, read by node_exporter.
    let audit = bin()
        .args(["--netns", &cli, "audit", "--prom"])
        .arg(&textdir)
        .output()
        .unwrap();
    assert!(
        audit.status.success(),
        "audit --prom: {}",
        String::from_utf8_lossy(&audit.stderr)
    );
    let list = bin()
        .args(["--netns", &cli, "list", "--prom"])
        .arg(textdir.join("ctscope_list.prom"))
        .output()
        .unwrap();
    assert!(
        list.status.success(),
        "list --prom: {}",
        String::from_utf8_lossy(&list.stderr)
    );
    let mut names: Vec<_> = std::fs::read_dir(&textdir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["ctscope_audit.prom", "ctscope_list.prom"],
        "no temp file left"
    );
    wait_query(
        prom_addr,
        r#"ctscope_audit_findings{job="node",kind="sensitive_port"}"#,
        |v| v >= 1.0,
    );
    wait_query(
        prom_addr,
        r#"ctscope_audit_findings{job="node",kind="no_reverse_path_filter"}"#,
        |v| v >= 0.0,
    );
    wait_query(
        prom_addr,
        r#"ctscope_findings{job="node",kind="sensitive_port",helper="ftp"}"#,
        |v| v == 1.0,
    );
    wait_query(
        prom_addr,
        r#"sum(ctscope_related_flows{job="node",helper="ftp"})"#,
        |v| v == 2.0,
    );
    // node_exporter reports a textfile it could not parse; ours parse.
    wait_query(
        prom_addr,
        r#"node_textfile_scrape_error{job="node"}"#,
        |v| v == 0.0,
    );

    let (status, err) = exporter.stop();
    assert!(
        status.success(),
        "exporter exit on SIGTERM: {status:?}\n{err}"
    );
    drop(prom);
    drop(node);
}

/// Removes the scratch directory on drop.
struct Cleanup(std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_port_in_use_and_bad_addresses_are_one_line_errors() {
    let held = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap().to_string();
    let out = bin()
        .args(["exporter", "--listen", &addr])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err.lines().next().unwrap(),
        format!("ctscope: cannot listen on '{addr}': the address is already in use")
    );
    assert!(err.lines().nth(1).unwrap().starts_with("hint: "), "{err}");
    assert_eq!(err.lines().count(), 2, "{err}");

    for (bad, want) in [
        ("127.0.0.1:99999", "bad --listen address '127.0.0.1:99999'"),
        ("fw1:9469", "bad --listen address 'fw1:9469'"),
        ("0.0.0.0:9469", "'0.0.0.0:9469' is not a loopback address"),
        ("[::]:9469", "'[::]:9469' is not a loopback address"),
    ] {
        let out = bin().args(["exporter", "--listen", bad]).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.starts_with(&format!("ctscope: {want}")), "{bad}: {err}");
    }
}

#[test]
fn clients_that_hang_up_and_a_thousand_parallel_scrapes_leave_it_serving() {
    if !privileged("clients_that_hang_up_and_a_thousand_parallel_scrapes_leave_it_serving") {
        return;
    }
    let lab = Lab::new("exb", SUBNET + 1);
    let ns = lab.srv.clone();
    lab.sh_ok(&ns, "sysctl -qw net.netfilter.nf_conntrack_events=1");
    // Enough flows of many protocols and states for a response of several KB.
    let mut lines = String::new();
    for i in 0..3000u32 {
        let (a, b) = (i / 250, i % 250);
        let (p, st) = match i % 4 {
            0 => ("tcp", "--state ESTABLISHED"),
            1 => ("tcp", "--state TIME_WAIT"),
            2 => ("udp", ""),
            _ => ("sctp", "--state ESTABLISHED --orig-vtag 1 --reply-vtag 2"),
        };
        lines.push_str(&format!(
            "-I -s 10.50.{a}.{b} -d 10.60.0.1 -p {p} --sport {} --dport 80 {st} -t 600\n",
            1024 + i
        ));
    }
    lab.restore(&ns, &lines);
    let (exporter, addr) = start_exporter(&ns, &["--audit-interval", "0"]);
    let (status, body) = get(addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        value(
            &body,
            r#"ctscope_flows{family="ipv4",proto="tcp",state="ESTABLISHED"}"#
        ),
        Some(750.0),
        "{body}"
    );
    assert!(!body.contains("ctscope_audit_findings"), "audit turned off");

    // Clients that send a request and close at once, or read a few bytes and reset.
    for i in 0..50 {
        let mut s = TcpStream::connect(addr).unwrap();
        let _ = write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        if i % 2 == 0 {
            let mut b = [0u8; 16];
            let _ = s.read(&mut b);
        }
        // SO_LINGER 0: close with a RST, the rudest hang-up there is.
        let l = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: setsockopt on a socket we own, with a correctly sized linger struct.
        unsafe {
            use std::os::fd::AsRawFd;
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &l as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        drop(s);
    }
    // Half a request, then gone.
    {
        let mut s = TcpStream::connect(addr).unwrap();
        let _ = s.write_all(b"GET /met");
    }
    assert_eq!(get(addr, "/healthz").unwrap(), (200, "ok\n".into()));

    // 1,000 scrapes at once (bounded, loopback only), while new flows keep arriving.
    let before = get(addr, "/metrics").unwrap().1;
    let new_before = value(&before, r#"ctscope_events_total{kind="flow",event="new"}"#).unwrap();
    let started = Instant::now();
    let mut conns: Vec<TcpStream> = (0..1000)
        .map(|_| {
            let s = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            s
        })
        .collect();
    for s in &mut conns {
        write!(s, "GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    }
    let mut inserts = String::new();
    for i in 0..200u32 {
        inserts.push_str(&format!(
            "-I -s 10.70.0.{} -d 10.60.0.2 -p udp --sport {} --dport 53 -t 600\n",
            i % 250,
            2000 + i
        ));
    }
    lab.restore(&ns, &inserts);
    let mut ok = 0;
    for mut s in conns {
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        if raw.starts_with("HTTP/1.0 200") || raw.starts_with("HTTP/1.1 200") {
            assert!(raw.contains("ctscope_flows{"), "{raw}");
            ok += 1;
        }
    }
    let storm = started.elapsed();
    assert_eq!(ok, 1000, "every parallel scrape answered");
    // The engine kept applying events: the 200 NEWs are counted within seconds.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = get(addr, "/metrics").unwrap().1;
        let new = value(&body, r#"ctscope_events_total{kind="flow",event="new"}"#).unwrap();
        if new >= new_before + 200.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "events stalled: {new} after {new_before}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("1000 parallel scrapes answered in {storm:?}");
    let (status, err) = exporter.stop();
    assert!(status.success(), "exporter exit: {status:?}\n{err}");
}
