//! Helper risk against the real kernel helpers, in network namespaces with real traffic:
//! a forged FTP `PORT` and `EPRT` (IPv4 and IPv6) aimed at ports where a database listens
//! (flagged: In CMD destination port, sensitive port, listening socket; and the RELATED
//! connection it opens passes a `RELATED,ESTABLISHED` rule); a legitimate passive FTP
//! transfer (not flagged); an IRC DCC offer (source address Full); a TFTP read request; a
//! SIP INVITE with an SDP body (In CMD media port).
//!
//! Issue 7: a forged PORT consumed before ctscope started is judged from the RELATED flow
//! itself (`list --json`, `watch`, `audit` and the dashboard over a one-dump store) and
//! names the listening process; legitimate passive and active FTP and a SIP REGISTER and
//! INVITE, whose RELATED flows reach the announcer's own sockets, give no findings.
//!
//! The tables are read over ctnetlink into a `Store` with `engine::load`, and judged with
//! the public `Assessor::expectation` / `Assessor::flow`. Helpers are
//! attached only with the raw-table CT target, as the netfilter authors recommend.

mod common;
mod tui_support;

use std::time::{Duration, Instant};

use common::lab::{privileged, Lab};
use ctscope::engine::{self, Live};
use ctscope::model::store::FlowKey;
use ctscope::model::{Expectation, Store};
use ctscope::netlink::Namespace;
use ctscope::risk::{Assessment, Assessor, FindingKind, Freedom, Level};

const SUBNET: u8 = 5;

/// A per-test scratch directory for scripts, removed on drop.
struct Scratch(std::path::PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let d = std::env::temp_dir().join(format!("ctscope-rk-{}-{test}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }

    /// Write a python script and return its path.
    fn script(&self, name: &str, body: &str) -> String {
        let p = self.0.join(format!("{name}.py"));
        std::fs::write(&p, body).unwrap();
        p.to_string_lossy().into_owned()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A TCP server on `port` (all addresses, both families) that accepts and holds every
/// connection, answering nothing: enough for the helpers, which parse the client side.
fn hold_server(t: &Scratch, name: &str, ports: &[u16]) -> String {
    let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
    t.script(
        name,
        &format!(
            "import socket, select, time\n\
             socks = []\n\
             for port in [{}]:\n\
             \x20   s = socket.socket(socket.AF_INET6)\n\
             \x20   s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             \x20   s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n\
             \x20   s.bind(('::', port)); s.listen(16); socks.append(s)\n\
             held = []\n\
             while True:\n\
             \x20   r, _, _ = select.select(socks, [], [], 1)\n\
             \x20   for s in r:\n\
             \x20       c, _ = s.accept(); held.append(c)\n",
            ports.join(", ")
        ),
    )
}

/// Dump both tables of namespace `ns` over ctnetlink into `store` (a re-dump when the
/// store already holds entries: what vanished is swept, and linkage kept).
fn load(ns: &str, store: &mut Store) {
    let mut live = Live::open(&Namespace::parse(ns), false).expect("open ctnetlink");
    engine::load(&mut live, store, 0).expect("dump");
}

/// Poll until `n` expectations satisfying `pred` exist in `ns` (5 s); returns the store
/// holding them and clones of them.
fn wait_expectations(
    ns: &str,
    n: usize,
    pred: impl Fn(&Expectation) -> bool,
) -> (Store, Vec<Expectation>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let mut store = Store::new();
        load(ns, &mut store);
        let got: Vec<_> = store.expectations().filter(|e| pred(e)).cloned().collect();
        if got.len() >= n {
            return (store, got);
        }
        if Instant::now() > deadline {
            panic!("expected {n} expectations in {ns}, have {got:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An assessor for namespace `ns`: live module options, and listeners plus ephemeral
/// range read from inside the namespace (setns on a thread, /proc/thread-self).
fn assessor(ns: &str) -> Assessor {
    let a = Assessor::system_in(None, Some(ns)).unwrap();
    assert!(a.listeners.is_some(), "listeners of {ns} readable");
    a
}

fn kinds(a: &Assessment) -> Vec<FindingKind> {
    let mut k: Vec<_> = a.findings.iter().map(|f| f.kind).collect();
    k.sort();
    k
}

fn py(t: &Scratch, lab: &Lab, ns: &str, code: &str) -> String {
    let p = t.script("inline", code);
    let out = lab.sh(ns, &format!("/usr/bin/python3 {p}"));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn forged_port_and_eprt_toward_listening_databases_are_flagged() {
    if !privileged("forged_port_and_eprt_toward_listening_databases_are_flagged") {
        return;
    }
    let t = Scratch::new("forged");
    let mut lab = Lab::new("rk", SUBNET);
    let (srv, cli) = (lab.srv.clone(), lab.cli.clone());
    // The victim (cli) runs the firewall: the FTP helper on its outgoing control
    // connections, the classic rule accepting RELATED, and databases that the rules never
    // open to the network.
    for ipt in ["iptables", "ip6tables"] {
        lab.sh_ok(
            &cli,
            &format!(
                "{ipt} -t raw -A OUTPUT -p tcp --dport 21 -j CT --helper ftp && \
                 {ipt} -A INPUT -i lo -j ACCEPT && \
                 {ipt} -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT && \
                 {ipt} -P INPUT DROP"
            ),
        );
    }
    lab.sh_ok(&cli, "ip6tables -I INPUT -p icmpv6 -j ACCEPT");
    let dbs = hold_server(&t, "dbs", &[3306, 5432, 6379]);
    lab.spawn(&cli, &format!("/usr/bin/python3 {dbs}"));
    let ftp = hold_server(&t, "ftp", &[21]);
    lab.spawn(&srv, &format!("/usr/bin/python3 {ftp}"));
    lab.wait_listen(&cli, 3306);
    lab.wait_listen(&srv, 21);

    // The firewall works: the database is unreachable from the attacker.
    let cli4 = lab.cli4.clone();
    let probe = |port: u16| {
        format!(
            "import socket\n\
             s = socket.socket(); s.settimeout(1)\n\
             try:\n\
             \x20   s.connect(('{}', {port})); print('connected')\n\
             except Exception as e:\n\
             \x20   print('refused', e)\n",
            cli4
        )
    };
    assert!(py(&t, &lab, &srv, &probe(3306)).starts_with("refused"));

    // The forged commands: the victim's side of the control connection names its own
    // database ports (as a browser tricked into talking FTP would).
    let client = t.script(
        "forge",
        &format!(
            "import socket, time\n\
             def go(addr, line):\n\
             \x20   c = socket.create_connection((addr, 21))\n\
             \x20   c.send(b'USER anonymous\\r\\n'); time.sleep(0.2)\n\
             \x20   c.send(line); return c\n\
             held = [go('{s4}', b'PORT 10,213,{n},2,12,234\\r\\n'),\n\
             \x20       go('{s4}', b'EPRT |1|{c4}|5432|\\r\\n'),\n\
             \x20       go('{s6}', b'EPRT |2|{c6}|6379|\\r\\n')]\n\
             time.sleep(60)\n",
            s4 = lab.srv4,
            c4 = lab.cli4,
            s6 = lab.srv6,
            c6 = lab.cli6,
            n = SUBNET
        ),
    );
    lab.spawn(&cli, &format!("/usr/bin/python3 {client}"));
    let (mut store, exps) = wait_expectations(&cli, 3, |e| e.helper.name() == Some("ftp"));
    let a = assessor(&cli);
    for port in [3306u16, 5432, 6379] {
        let e = exps
            .iter()
            .find(|e| e.tuple.dport == port)
            .unwrap_or_else(|| panic!("no expectation for {port}: {exps:?}"));
        let r = a.expectation(&store, e);
        assert_eq!(
            r.freedom,
            Freedom {
                src: Level::Fixed,
                sport: Level::Full,
                dst: Level::Fixed,
                dport: Level::InCmd
            },
            "{port}"
        );
        assert_eq!(r.row.as_deref(), Some("ftp data (loose=0)"));
        assert_eq!(
            kinds(&r),
            vec![FindingKind::SensitivePort, FindingKind::ListeningSocket],
            "{port}: {:#?}",
            r.findings
        );
        let listening = r
            .findings
            .iter()
            .find(|f| f.kind == FindingKind::ListeningSocket)
            .unwrap();
        assert!(
            listening.detail.contains(&format!(":{port}")),
            "{}",
            listening.detail
        );
        assert!(listening.fix.contains("-m helper --helper ftp"));
        let j = r.findings_json();
        assert!(j.as_array().unwrap().iter().all(|f| f["fix"].is_string()));
    }

    // The same through the binary: `list --expect --json` carries freedom and findings,
    // and `audit` reports the unrestricted RELATED rule and the forged expectation.
    let bin = env!("CARGO_BIN_EXE_ctscope");
    let out = std::process::Command::new(bin)
        .args(["--netns", &cli, "list", "--expect", "--json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let x = list
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["tuple"]["dport"] == 3306)
        .expect("3306 listed");
    assert_eq!(
        x["freedom"],
        serde_json::json!({"src":"fixed","sport":"full","dst":"fixed","dport":"in_cmd"})
    );
    let k: Vec<&str> = x["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(k, ["sensitive_port", "listening_socket"]);
    let out = std::process::Command::new(bin)
        .args(["--netns", &cli, "audit", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let audit_kinds: Vec<&str> = rep["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert!(
        audit_kinds.contains(&"unrestricted_related"),
        "{audit_kinds:?}"
    );
    let listening = audit_kinds
        .iter()
        .filter(|k| **k == "listening_socket")
        .count();
    assert_eq!(listening, 3, "{audit_kinds:?}");

    // The seed's story: the forged expectation lets the attacker through to the database.
    let e3306 = exps.iter().find(|e| e.tuple.dport == 3306).unwrap().clone();
    assert_eq!(py(&t, &lab, &srv, &probe(3306)), "connected");
    // A re-dump into the same store: the kernel consumed the expectation, the store keeps
    // it as the origin of the RELATED flow.
    load(&cli, &mut store);
    let related = store
        .flows()
        .find(|f| f.orig.dport == 3306)
        .expect("the RELATED flow to 3306")
        .clone();
    assert!(related.is_related(), "{related:?}");
    assert!(e3306.matches(&related.orig));
    assert!(store.expectations().all(|e| e.tuple.dport != 3306));
    // The RELATED flow inherits the expectation's classification and findings.
    let r = a
        .flow(&store, &FlowKey::of(&related))
        .expect("assessed through its expectation");
    assert_eq!(r.freedom.dport, Level::InCmd);
    assert!(kinds(&r).contains(&FindingKind::ListeningSocket));
    assert!(r
        .findings
        .iter()
        .all(|f| f.detail.starts_with("RELATED flow")));
}

#[test]
fn legitimate_passive_ftp_transfer_is_not_flagged() {
    if !privileged("legitimate_passive_ftp_transfer_is_not_flagged") {
        return;
    }
    let t = Scratch::new("legitimate");
    let dir = std::env::temp_dir().join(format!("ctscope-rk-ftp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hello.txt"), b"hello through the ftp helper\n").unwrap();
    let mut lab = Lab::new("rk", SUBNET);
    lab.ftp_helper();
    lab.ftp_server(&dir.to_string_lossy());
    let (srv, cli) = (lab.srv.clone(), lab.cli.clone());
    // A real passive transfer, paused between PASV and the data connection so the
    // expectation can be read.
    let client = t.script(
        "pasv",
        &format!(
            "import ftplib, socket, time, sys\n\
             f = ftplib.FTP(); f.connect('{}', 21, timeout=10); f.login()\n\
             f.voidcmd('TYPE I')\n\
             host, port = f.makepasv()\n\
             open('{go}.port', 'w').write(str(port))\n\
             while not __import__('os').path.exists('{go}'): time.sleep(0.05)\n\
             d = socket.create_connection((host, port))\n\
             f.sendcmd('RETR hello.txt')\n\
             data = b''\n\
             while True:\n\
             \x20   b = d.recv(4096)\n\
             \x20   if not b: break\n\
             \x20   data += b\n\
             d.close(); f.voidresp(); f.quit()\n\
             sys.stdout.write(data.decode())\n",
            lab.srv4,
            go = dir.join("go").display()
        ),
    );
    let client_cli = cli.clone();
    let lab_ref = &lab;
    let result = std::thread::scope(|s| {
        let h = s.spawn(move || lab_ref.sh(&client_cli, &format!("/usr/bin/python3 {client}")));
        let (store, exps) = wait_expectations(&srv, 1, |e| e.helper.name() == Some("ftp"));
        let port: u16 = std::fs::read_to_string(dir.join("go.port"))
            .unwrap()
            .parse()
            .unwrap();
        let a = assessor(&srv);
        let e = exps.iter().find(|e| e.tuple.dport == port).unwrap();
        let r = a.expectation(&store, e);
        std::fs::write(dir.join("go"), b"").unwrap();
        let out = h.join().unwrap();
        (r, out)
    });
    let (r, out) = result;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello through the ftp helper\n"
    );
    assert_eq!(
        r.freedom,
        Freedom {
            src: Level::Fixed,
            sport: Level::Full,
            dst: Level::Fixed,
            dport: Level::InCmd
        }
    );
    // pyftpdlib listens on its passive port, but in the ephemeral range, on port 21 of the
    // helper's normal port, toward the server itself: nothing to report.
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn irc_dcc_offer_has_a_full_source_address() {
    if !privileged("irc_dcc_offer_has_a_full_source_address") {
        return;
    }
    let t = Scratch::new("irc");
    let mut lab = Lab::new("rk", SUBNET);
    let (srv, cli) = (lab.srv.clone(), lab.cli.clone());
    lab.sh_ok(
        &cli,
        "iptables -t raw -A OUTPUT -p tcp --dport 6667 -j CT --helper irc",
    );
    let irc = hold_server(&t, "irc", &[6667]);
    lab.spawn(&srv, &format!("/usr/bin/python3 {irc}"));
    lab.wait_listen(&srv, 6667);
    let ip: u32 = u32::from(lab.cli4.parse::<std::net::Ipv4Addr>().unwrap());
    let client = t.script(
        "dcc",
        &format!(
            "import socket, time\n\
             c = socket.create_connection(('{}', 6667))\n\
             c.send(b'NICK alice\\r\\n'); time.sleep(0.2)\n\
             c.send(b'PRIVMSG bob :\\x01DCC SEND notes.txt {ip} 5000 1234\\x01\\r\\n')\n\
             time.sleep(60)\n",
            lab.srv4
        ),
    );
    lab.spawn(&cli, &format!("/usr/bin/python3 {client}"));
    let (store, exps) = wait_expectations(&cli, 1, |e| e.helper.name() == Some("irc"));
    let e = &exps[0];
    assert_eq!(e.tuple.dport, 5000);
    let r = assessor(&cli).expectation(&store, e);
    assert_eq!(
        r.freedom,
        Freedom {
            src: Level::Full,
            sport: Level::Full,
            dst: Level::Fixed,
            dport: Level::InCmd
        }
    );
    assert_eq!(r.row.as_deref(), Some("irc dcc"));
    // The table expects exactly this shape for irc: no mismatch, no other finding.
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
    assert_eq!(r.freedom_json()["src"], "full");
}

#[test]
fn tftp_read_request_expects_the_clients_port() {
    if !privileged("tftp_read_request_expects_the_clients_port") {
        return;
    }
    let t = Scratch::new("tftp");
    let lab = Lab::new("rk", SUBNET);
    let cli = lab.cli.clone();
    lab.sh_ok(
        &cli,
        "iptables -t raw -A OUTPUT -p udp --dport 69 -j CT --helper tftp",
    );
    py(
        &t,
        &lab,
        &cli,
        &format!(
            "import socket\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             s.bind(('{}', 40069))\n\
             s.sendto(b'\\x00\\x01boot.img\\x00octet\\x00', ('{}', 69))\n",
            lab.cli4, lab.srv4
        ),
    );
    let (store, exps) = wait_expectations(&cli, 1, |e| e.helper.name() == Some("tftp"));
    let e = &exps[0];
    assert_eq!(e.tuple.dport, 40069);
    assert_eq!(e.tuple.src_ip().to_string(), lab.srv4);
    let r = assessor(&cli).expectation(&store, e);
    // The client's source port comes from the packet header (the table's In Packet); live
    // it equals an endpoint of the master, so it is Fixed, which the table allows.
    assert_eq!(
        r.freedom,
        Freedom {
            src: Level::Fixed,
            sport: Level::Full,
            dst: Level::Fixed,
            dport: Level::Fixed
        }
    );
    assert_eq!(r.expected.unwrap().dport, Level::InPacket);
    assert!(r.findings.is_empty(), "{:#?}", r.findings);
}

#[test]
fn sip_invite_with_sdp_expects_an_in_cmd_media_port() {
    if !privileged("sip_invite_with_sdp_expects_an_in_cmd_media_port") {
        return;
    }
    let t = Scratch::new("sip");
    let lab = Lab::new("rk", SUBNET);
    let cli = lab.cli.clone();
    lab.sh_ok(
        &cli,
        "iptables -t raw -A OUTPUT -p udp --dport 5060 -j CT --helper sip",
    );
    let (c, s) = (lab.cli4.clone(), lab.srv4.clone());
    let sdp = format!(
        "v=0\r\no=alice 2890844526 2890844526 IN IP4 {c}\r\ns=-\r\nc=IN IP4 {c}\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    );
    let invite = format!(
        "INVITE sip:bob@{s} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {c}:5060;branch=z9hG4bK776asdhds\r\n\
         Max-Forwards: 70\r\n\
         To: Bob <sip:bob@{s}>\r\n\
         From: Alice <sip:alice@{c}>;tag=1928301774\r\n\
         Call-ID: a84b4c76e66710@{c}\r\n\
         CSeq: 314159 INVITE\r\n\
         Contact: <sip:alice@{c}:5060>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        sdp.len()
    );
    let hex: String = invite.bytes().map(|b| format!("{b:02x}")).collect();
    py(
        &t,
        &lab,
        &cli,
        &format!(
            "import socket\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             s.bind(('{c}', 5060))\n\
             s.sendto(bytes.fromhex('{hex}'), ('{s}', 5060))\n"
        ),
    );
    let (store, exps) = wait_expectations(&cli, 2, |e| e.helper.name() == Some("sip"));
    let a = assessor(&cli);
    for port in [49170u16, 49171] {
        let e = exps
            .iter()
            .find(|e| e.tuple.dport == port)
            .unwrap_or_else(|| panic!("no expectation for {port}: {exps:?}"));
        let r = a.expectation(&store, e);
        assert_eq!(r.freedom.dport, Level::InCmd, "{port}");
        assert_eq!(r.freedom.dst, Level::Fixed, "{port}");
        assert_eq!(
            r.row.as_deref(),
            Some("sip rtp_rtcp (sip_direct_media=1)"),
            "{port}"
        );
        assert!(r.findings.is_empty(), "{port}: {:#?}", r.findings);
    }
}

// ---------------------------------------------------------------------------------------
// Issue 7: risk on every RELATED flow, whatever ctscope saw before.
// ---------------------------------------------------------------------------------------

/// `ctscope --netns NS ARGS…` → its JSON stdout (asserting success).
fn ctscope_json(ns: &str, args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ctscope"))
        .args(["--netns", ns])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ctscope {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The RELATED flows `list --json` prints for `ns`.
fn related_flows(ns: &str) -> Vec<serde_json::Value> {
    ctscope_json(ns, &["list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| {
            f["status"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s == "EXPECTED")
        })
        .cloned()
        .collect()
}

/// Poll `list --json` until a RELATED flow satisfying `pred` exists (10 s).
fn wait_related(ns: &str, pred: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(f) = related_flows(ns).into_iter().find(|f| pred(f)) {
            return f;
        }
        if Instant::now() > deadline {
            panic!("no such RELATED flow in {ns}: {:#?}", related_flows(ns));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Wait until `path` exists (20 s).
fn wait_file(path: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn finding_kinds(v: &serde_json::Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap_or_else(|| panic!("no findings array: {v:#}"))
        .iter()
        .map(|f| f["kind"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn forged_port_consumed_before_ctscope_started_is_judged_from_the_flow() {
    if !privileged("forged_port_consumed_before_ctscope_started_is_judged_from_the_flow") {
        return;
    }
    let t = Scratch::new("after");
    let mut lab = Lab::new("rka", SUBNET);
    let (srv, cli) = (lab.srv.clone(), lab.cli.clone());
    for ipt in ["iptables", "ip6tables"] {
        lab.sh_ok(
            &cli,
            &format!(
                "{ipt} -t raw -A OUTPUT -p tcp --dport 21 -j CT --helper ftp && \
                 {ipt} -A INPUT -i lo -j ACCEPT && \
                 {ipt} -A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT && \
                 {ipt} -P INPUT DROP"
            ),
        );
    }
    lab.sh_ok(&cli, "ip6tables -I INPUT -p icmpv6 -j ACCEPT");
    // The victim's database, named as the real one is (comm 'mariadbd').
    let pidfile = t.0.join("mariadbd.pid");
    let db = t.script(
        "mariadbd",
        &format!(
            "import ctypes, os, socket\n\
             ctypes.CDLL(None).prctl(15, b'mariadbd', 0, 0, 0)\n\
             s = socket.socket(socket.AF_INET6)\n\
             s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
             s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)\n\
             s.bind(('::', 3306)); s.listen(16)\n\
             open('{}', 'w').write(str(os.getpid()))\n\
             held = []\n\
             while True:\n\
             \x20   c, _ = s.accept(); held.append(c)\n",
            pidfile.display()
        ),
    );
    lab.spawn(&cli, &format!("/usr/bin/python3 {db}"));
    let ftp = hold_server(&t, "ftp", &[21]);
    lab.spawn(&srv, &format!("/usr/bin/python3 {ftp}"));
    lab.wait_listen(&cli, 3306);
    lab.wait_listen(&srv, 21);
    wait_file(&pidfile);
    let db_pid: u32 = std::fs::read_to_string(&pidfile).unwrap().parse().unwrap();

    // The forged PORT from the victim's side of the control connection, then the
    // attacker's server connects from 47000 to the database: the kernel consumes the
    // expectation and lets the flow in as RELATED. ctscope has not run yet.
    let forge = t.script(
        "forge",
        &format!(
            "import socket, time\n\
             def go(addr, line):\n\
             \x20   c = socket.create_connection((addr, 21))\n\
             \x20   c.send(b'USER anonymous\\r\\n'); time.sleep(0.2)\n\
             \x20   c.send(line); return c\n\
             held = [go('{s4}', b'PORT 10,213,{n},2,12,234\\r\\n'),\n\
             \x20       go('{s6}', b'EPRT |2|{c6}|3306|\\r\\n')]\n\
             time.sleep(60)\n",
            s4 = lab.srv4,
            s6 = lab.srv6,
            c6 = lab.cli6,
            n = SUBNET
        ),
    );
    lab.spawn(&cli, &format!("/usr/bin/python3 {forge}"));
    wait_expectations(&cli, 2, |e| e.tuple.dport == 3306);
    let attack = t.script(
        "attack",
        &format!(
            "import socket, time\n\
             s = socket.socket(); s.bind(('{s4}', 47000))\n\
             s.connect(('{c4}', 3306))\n\
             s6 = socket.socket(socket.AF_INET6); s6.bind(('{s6}', 47001))\n\
             s6.connect(('{c6}', 3306)); time.sleep(60)\n",
            s4 = lab.srv4,
            c4 = lab.cli4,
            s6 = lab.srv6,
            c6 = lab.cli6
        ),
    );
    // `watch`, subscribed after the expectation was made: the NEW line of the RELATED
    // flow carries the verdict too.
    let watch = std::process::Command::new(env!("CARGO_BIN_EXE_ctscope"))
        .args([
            "--netns",
            &cli,
            "watch",
            "--ndjson",
            "--flows-only",
            "--count",
            "1",
        ])
        .args(["--duration", "20s", "-p", "tcp", "--dport", "3306"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    lab.spawn(&srv, &format!("/usr/bin/python3 {attack}"));
    let out = watch.wait_with_output().unwrap();
    let line: serde_json::Value = serde_json::from_slice(
        out.stdout
            .split(|b| *b == b'\n')
            .next()
            .unwrap_or_else(|| panic!("{}", String::from_utf8_lossy(&out.stderr))),
    )
    .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(line["event"], "new", "{line:#}");
    assert!(line["risk_from"].is_string(), "{line:#}");
    assert_eq!(line["freedom"]["dport"], "in_cmd", "{line:#}");
    assert!(
        finding_kinds(&line).contains(&"listening_socket".to_string()),
        "{line:#}"
    );

    // Dashboard-free: `list --json`, started after the fact.
    let flow = wait_related(&cli, |f| {
        f["orig"]["dport"] == 3306 && f["orig"]["sport"] == 47000
    });
    assert!(
        ctscope_json(&cli, &["list", "--expect", "--json"])
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["tuple"]["dport"] != 3306),
        "the expectation is consumed"
    );
    assert_eq!(flow["risk_from"], "flow", "{flow:#}");
    assert_eq!(
        flow["freedom"],
        serde_json::json!({"src":"fixed","sport":"full","dst":"fixed","dport":"in_cmd"})
    );
    assert_eq!(flow["table"]["row"], "ftp data (loose=0)", "{flow:#}");
    assert_eq!(flow["table"]["dport"], "in_cmd");
    assert_eq!(
        finding_kinds(&flow),
        ["sensitive_port", "listening_socket"],
        "{flow:#}"
    );
    let listening = flow["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "listening_socket")
        .unwrap();
    let named = format!("RELATED reaches 'mariadbd' (pid {db_pid}) listening on :3306");
    assert!(
        listening["detail"].as_str().unwrap().contains(&named),
        "{listening:#}"
    );
    assert_eq!(flow["listener"]["check"], "other_process");
    assert_eq!(flow["listener"]["listener"]["pid"], db_pid);
    // The same over IPv6 (EPRT |2|…|3306|): tcp6 sockets, the master's included.
    let flow6 = wait_related(&cli, |f| f["orig"]["sport"] == 47001);
    assert_eq!(flow6["family"], "ipv6");
    assert_eq!(flow6["risk_from"], "flow");
    assert_eq!(
        finding_kinds(&flow6),
        ["sensitive_port", "listening_socket"],
        "{flow6:#}"
    );
    assert_eq!(flow6["listener"]["check"], "other_process", "{flow6:#}");
    assert_eq!(flow6["listener"]["listener"]["process"], "mariadbd");

    // `audit` judges the live RELATED flow the same way.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ctscope"))
        .args(["--netns", &cli, "audit", "--json"])
        .output()
        .unwrap();
    let rep: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rf = rep["related_flows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["tuple"].as_str().unwrap().ends_with(":3306"))
        .unwrap_or_else(|| panic!("{rep:#}"));
    assert_eq!(rf["risk_from"], "flow");
    assert!(rep["findings"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["detail"].as_str().unwrap().contains(&named)));

    // The dashboard, started after the fact: a fresh store from one dump, the real
    // assessor of the namespace, drawn into a TestBackend.
    let mut store = Store::new();
    load(&cli, &mut store);
    let key = store
        .flows()
        .find(|f| f.orig.dport == 3306 && f.orig.sport == 47000)
        .map(FlowKey::of)
        .unwrap();
    assert!(
        store.expectation_of(&key).is_none(),
        "never saw the expectation"
    );
    let mut h = tui_support::Harness::with_assessor(
        store,
        tui_support::opts(),
        160,
        30,
        Box::new(assessor(&cli)),
    );
    h.draw();
    let screen = h.screen();
    let row = screen
        .lines()
        .find(|l| l.contains(":47000") && l.contains(":3306"))
        .unwrap_or_else(|| panic!("{screen}"));
    assert!(row.contains("!3306"), "badge on the RELATED row: {row}");
    assert!(!row.split_whitespace().any(|w| w == "?"), "{row}");
    use ratatui::crossterm::event::KeyCode;
    h.ch('4');
    let mut seen = false;
    for _ in 0..6 {
        let j: String = h
            .screen()
            .lines()
            .map(str::trim)
            .collect::<Vec<_>>()
            .join(" ");
        if j.contains(&named) {
            seen = true;
            break;
        }
        h.key(KeyCode::Down);
    }
    assert!(seen, "findings screen names mariadbd:\n{}", h.screen());
    // Its detail says where the verdict came from and whose listener it reaches.
    h.ch('1')
        .ch('/')
        .typed("related and dport=3306")
        .key(KeyCode::Enter)
        .key(KeyCode::Enter);
    let j: String = h
        .screen()
        .lines()
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ");
    assert!(j.contains("from the flow itself"), "{}", h.screen());
    assert!(
        j.contains(&format!("'mariadbd' (pid {db_pid}) listens on :3306")),
        "{}",
        h.screen()
    );
}

/// Every RELATED flow of `ns` carries a verdict from the flow with the ftp row and no
/// finding; returns how many there were.
fn assert_clean_related(ns: &str, row: &str) -> usize {
    let flows = related_flows(ns);
    for f in &flows {
        assert_eq!(f["risk_from"], "flow", "{f:#}");
        assert_eq!(f["table"]["row"], row, "{f:#}");
        assert!(finding_kinds(f).is_empty(), "false alarm: {f:#}");
    }
    flows.len()
}

#[test]
fn legitimate_passive_and_active_ftp_transfers_give_no_findings() {
    if !privileged("legitimate_passive_and_active_ftp_transfers_give_no_findings") {
        return;
    }
    let t = Scratch::new("legit-ftp");
    let dir = t.0.join("root");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("hello.txt"), b"hello through the ftp helper\n").unwrap();
    let mut lab = Lab::new("rkl", SUBNET);
    let (srv, cli) = (lab.srv.clone(), lab.cli.clone());
    // The helper on both hosts: the server's (passive: its own data listener is reached)
    // and the client's (active: its own data listener is reached).
    lab.ftp_helper();
    lab.sh_ok(
        &cli,
        "iptables -t raw -A OUTPUT -p tcp --dport 21 -j CT --helper ftp",
    );
    lab.ftp_server(&dir.to_string_lossy());

    // Passive, with ftplib: the RELATED flow reaches pyftpdlib's own passive socket.
    let lab_ref = &lab;
    std::thread::scope(|s| {
        let h = s.spawn(|| lab_ref.ftp_get(false, true, "hello.txt", 4));
        let f = wait_related(&srv, |f| f["orig"]["dst"] == lab_ref.srv4.as_str());
        assert_eq!(
            f["freedom"],
            serde_json::json!({"src":"fixed","sport":"full","dst":"fixed","dport":"in_cmd"})
        );
        assert!(assert_clean_related(&srv, "ftp data (loose=0)") >= 1);
        assert_eq!(h.join().unwrap(), b"hello through the ftp helper\n");
    });

    // Active, announced on a fixed port outside the ephemeral range (where the old rule
    // cried wolf). pyftpdlib connects as soon as it accepts PORT, so the expectation is
    // consumed at once: the RELATED flow is judged from the flow, while the client still
    // has its data listener open (the connection waits in its accept queue).
    let step = |n: &str| t.0.join(n);
    let client = t.script(
        "active",
        &format!(
            "import ftplib, socket, os, time\n\
             def wait(p):\n\
             \x20   while not os.path.exists(p): time.sleep(0.05)\n\
             f = ftplib.FTP(); f.connect('{s4}', 21, timeout=10); f.login()\n\
             f.voidcmd('TYPE I')\n\
             l = socket.socket(); l.bind(('{c4}', 20000)); l.listen(1)\n\
             f.voidcmd('PORT 10,213,{n},2,78,32')\n\
             open('{announced}', 'w').close(); wait('{go}')\n\
             f.sendcmd('RETR hello.txt')\n\
             d, _ = l.accept(); data = b''\n\
             while True:\n\
             \x20   b = d.recv(4096)\n\
             \x20   if not b: break\n\
             \x20   data += b\n\
             d.close(); l.close(); f.voidresp()\n\
             open('{connected}', 'w').write(data.decode())\n\
             f.quit()\n",
            s4 = lab.srv4,
            c4 = lab.cli4,
            n = SUBNET,
            announced = step("announced").display(),
            go = step("go").display(),
            connected = step("connected").display(),
        ),
    );
    lab.spawn(&cli, &format!("/usr/bin/python3 {client}"));
    wait_file(&step("announced"));
    let f = wait_related(&cli, |f| f["orig"]["dport"] == 20000);
    assert_eq!(f["listener"]["check"], "same_process", "{f:#}");
    assert_eq!(f["listener"]["listener"]["process"], "python3");
    assert_eq!(
        f["freedom"],
        serde_json::json!({"src":"fixed","sport":"full","dst":"fixed","dport":"in_cmd"})
    );
    // The client's table also holds the passive transfer's flow toward the server: there
    // the listener is on another host, and the check says it does not apply.
    assert_eq!(assert_clean_related(&cli, "ftp data (loose=0)"), 2);
    let passive = wait_related(&cli, |f| f["orig"]["dst"] == lab.srv4.as_str());
    assert_eq!(passive["listener"]["check"], "not_local", "{passive:#}");
    std::fs::write(step("go"), b"").unwrap();
    wait_file(&step("connected"));
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        std::fs::read_to_string(step("connected")).unwrap(),
        "hello through the ftp helper\n"
    );
}

#[test]
fn legitimate_sip_register_and_invite_give_no_findings() {
    if !privileged("legitimate_sip_register_and_invite_give_no_findings") {
        return;
    }
    let t = Scratch::new("legit-sip");
    let mut lab = Lab::new("rks", SUBNET);
    let (srv, cli) = (lab.srv.clone(), lab.cli.clone());
    // The phone's host runs the helper (and the registrar is another host).
    lab.sh_ok(
        &cli,
        "iptables -t raw -A OUTPUT -p udp --dport 5060 -j CT --helper sip",
    );
    let (c, s) = (lab.cli4.clone(), lab.srv4.clone());
    let step = |n: &str| t.0.join(n);
    let crlf = |lines: &[String], body: &str| {
        let mut m = lines.join("\r\n");
        m.push_str(&format!("\r\nContent-Length: {}\r\n\r\n{body}", body.len()));
        m.bytes().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let head = |first: &str, cseq: &str| -> Vec<String> {
        vec![
            first.to_string(),
            format!(
                "Via: SIP/2.0/UDP {c}:5060;branch=z9hG4bK{}",
                cseq.replace(' ', "")
            ),
            "Max-Forwards: 70".into(),
            format!("To: <sip:alice@{s}>"),
            format!("From: <sip:alice@{s}>;tag=a1"),
            format!("Call-ID: call-{}@{c}", cseq.replace(' ', "")),
            format!("CSeq: {cseq}"),
        ]
    };
    let mut register = head(&format!("REGISTER sip:{s} SIP/2.0"), "1 REGISTER");
    register.push(format!("Contact: <sip:alice@{c}:5060>"));
    register.push("Expires: 3600".into());
    let register = crlf(&register, "");
    let mut ok = head("SIP/2.0 200 OK", "1 REGISTER");
    ok.push(format!("Contact: <sip:alice@{c}:5060>;expires=3600"));
    let ok = crlf(&ok, "");
    let options = crlf(
        &[
            format!("OPTIONS sip:alice@{c}:5060 SIP/2.0"),
            format!("Via: SIP/2.0/UDP {s}:5070;branch=z9hG4bKopt"),
            format!("To: <sip:alice@{c}>"),
            format!("From: <sip:registrar@{s}>;tag=r1"),
            format!("Call-ID: opt@{s}"),
            "CSeq: 1 OPTIONS".into(),
        ],
        "",
    );
    let sdp = format!(
        "v=0\r\no=alice 1 1 IN IP4 {c}\r\ns=-\r\nc=IN IP4 {c}\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    );
    let mut invite = head(&format!("INVITE sip:bob@{s} SIP/2.0"), "2 INVITE");
    invite.push(format!("Contact: <sip:alice@{c}:5060>"));
    invite.push("Content-Type: application/sdp".into());
    let invite = crlf(&invite, &sdp);

    let registrar = t.script(
        "registrar",
        &format!(
            "import socket, time\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('{s}', 5060))\n\
             o = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); o.bind(('{s}', 5070))\n\
             _, peer = s.recvfrom(4096)\n\
             s.sendto(bytes.fromhex('{ok}'), peer)\n\
             time.sleep(0.3)\n\
             o.sendto(bytes.fromhex('{options}'), ('{c}', 5060))\n\
             s.recvfrom(4096)\n\
             time.sleep(0.3)\n\
             m = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); m.bind(('{s}', 30000))\n\
             m.sendto(b'\\x80\\x00' + b'\\x00' * 170, ('{c}', 49170))\n\
             time.sleep(60)\n"
        ),
    );
    lab.spawn(&srv, &format!("/usr/bin/python3 {registrar}"));
    let phone = t.script(
        "phone",
        &format!(
            "import socket, os, time\n\
             def wait(p):\n\
             \x20   while not os.path.exists(p): time.sleep(0.05)\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('{c}', 5060))\n\
             rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rtp.bind(('{c}', 49170))\n\
             rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); rtcp.bind(('{c}', 49171))\n\
             time.sleep(0.5)\n\
             s.sendto(bytes.fromhex('{register}'), ('{s}', 5060))\n\
             s.recvfrom(4096)\n\
             open('{registered}', 'w').close()\n\
             s.recvfrom(4096)\n\
             open('{optioned}', 'w').close(); wait('{go}')\n\
             s.sendto(bytes.fromhex('{invite}'), ('{s}', 5060))\n\
             rtp.recvfrom(4096)\n\
             open('{media}', 'w').close()\n\
             time.sleep(60)\n",
            registered = step("registered").display(),
            optioned = step("optioned").display(),
            go = step("go").display(),
            media = step("media").display(),
        ),
    );
    lab.spawn(&cli, &format!("/usr/bin/python3 {phone}"));

    // REGISTER: the helper expects the registrar at the phone's contact port, 5060,
    // where the phone itself listens (outside the ephemeral range).
    wait_file(&step("optioned"));
    let exps = ctscope_json(&cli, &["list", "--expect", "--json"]);
    let e = exps
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["tuple"]["dport"] == 5060)
        .unwrap_or_else(|| panic!("no signalling expectation: {exps:#}"));
    assert_eq!(
        e["table"]["row"],
        "sip signalling (sip_direct_signalling=1)"
    );
    assert_eq!(e["listener"]["check"], "same_process", "{e:#}");
    assert!(finding_kinds(e).is_empty(), "false alarm: {e:#}");
    let sig = wait_related(&cli, |f| f["orig"]["sport"] == 5070);
    assert_eq!(
        sig["helper"], "sip",
        "the signalling expectation attaches sip"
    );
    assert_eq!(sig["risk_from"], "flow");
    assert_eq!(
        sig["table"]["row"], "sip signalling (sip_direct_signalling=1)",
        "{sig:#}"
    );
    assert_eq!(sig["listener"]["check"], "same_process", "{sig:#}");
    assert!(finding_kinds(&sig).is_empty(), "false alarm: {sig:#}");

    // INVITE with SDP: media from the registrar reaches the phone's own RTP socket.
    std::fs::write(step("go"), b"").unwrap();
    wait_file(&step("media"));
    let media = wait_related(&cli, |f| f["orig"]["dport"] == 49170);
    assert_eq!(
        media["table"]["row"], "sip rtp_rtcp (sip_direct_media=1)",
        "{media:#}"
    );
    assert_eq!(
        media["freedom"],
        serde_json::json!({"src":"fixed","sport":"full","dst":"fixed","dport":"in_cmd"})
    );
    assert_eq!(media["listener"]["check"], "same_process", "{media:#}");
    assert!(finding_kinds(&media).is_empty(), "false alarm: {media:#}");
    for f in related_flows(&cli) {
        assert!(finding_kinds(&f).is_empty(), "false alarm: {f:#}");
    }
}
