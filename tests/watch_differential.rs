//! `watch --ndjson` beside a raw NETLINK_NETFILTER multicast listener written here, with
//! its own minimal attribute walk (nothing from ctscope's decoder): for every event the
//! kernel sent, ctscope prints exactly one line, in the same order, and every field the
//! kernel put in that message (event type, tuples, zone, id, status bits, protocol state,
//! timeout, mark, counters, timestamps) appears unchanged. Traffic is real TCP and UDP
//! between two namespaces with accounting and timestamps on; the UDP flow times out, and
//! gives exactly one DESTROY line with the kernel's values.

mod common;
use common::lab::{privileged, Lab};

use std::io::{BufRead, BufReader};
use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};
use serde_json::Value;

const SUBNET: u8 = 18;

// include/uapi/linux/netfilter/nfnetlink_conntrack.h, written out here on purpose.
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_TUPLE_REPLY: u16 = 2;
const CTA_STATUS: u16 = 3;
const CTA_PROTOINFO: u16 = 4;
const CTA_TIMEOUT: u16 = 7;
const CTA_MARK: u16 = 8;
const CTA_COUNTERS_ORIG: u16 = 9;
const CTA_COUNTERS_REPLY: u16 = 10;
const CTA_ID: u16 = 12;
const CTA_ZONE: u16 = 18;
const CTA_TIMESTAMP: u16 = 20;

const STATUS: [&str; 16] = [
    "EXPECTED",
    "SEEN_REPLY",
    "ASSURED",
    "CONFIRMED",
    "SRC_NAT",
    "DST_NAT",
    "SEQ_ADJUST",
    "SRC_NAT_DONE",
    "DST_NAT_DONE",
    "DYING",
    "FIXED_TIMEOUT",
    "TEMPLATE",
    "UNTRACKED",
    "HELPER",
    "OFFLOAD",
    "HW_OFFLOAD",
];
const TCP_STATES: [&str; 10] = [
    "NONE",
    "SYN_SENT",
    "SYN_RECV",
    "ESTABLISHED",
    "FIN_WAIT",
    "CLOSE_WAIT",
    "LAST_ACK",
    "TIME_WAIT",
    "CLOSE",
    "SYN_SENT2",
];

/// Top-level or nested attributes of `b`: (type without flag bits, payload).
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16::from_ne_bytes([b[0], b[1]]) as usize;
        let kind = u16::from_ne_bytes([b[2], b[3]]) & 0x3fff;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((kind, &b[4..len]));
        b = &b[((len + 3) & !3).min(b.len())..];
    }
    out
}

fn get<'a>(a: &[(u16, &'a [u8])], kind: u16) -> Option<&'a [u8]> {
    a.iter().find(|(k, _)| *k == kind).map(|(_, p)| *p)
}

fn be(p: &[u8]) -> u64 {
    p.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
}

/// One event as the kernel sent it, in the JSON words ctscope's contract uses.
#[derive(Debug)]
struct KernelEvent {
    event: &'static str,
    attrs: Vec<(u16, Vec<u8>)>,
}

impl KernelEvent {
    fn parse(msg: &[u8]) -> Option<KernelEvent> {
        let nl_type = u16::from_ne_bytes([msg[4], msg[5]]);
        let flags = u16::from_ne_bytes([msg[6], msg[7]]);
        if nl_type >> 8 != 1 {
            return None; // not NFNL_SUBSYS_CTNETLINK
        }
        let event = match (nl_type & 0xff, flags & 0x400 != 0) {
            (0, true) => "new",
            (0, false) => "update",
            (2, _) => "destroy",
            _ => return None,
        };
        let body = &msg[16 + 4..];
        Some(KernelEvent {
            event,
            attrs: attrs(body)
                .into_iter()
                .map(|(k, p)| (k, p.to_vec()))
                .collect(),
        })
    }

    fn a(&self, kind: u16) -> Option<&[u8]> {
        self.attrs
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, p)| p.as_slice())
    }

    /// A tuple as `{src,dst,sport,dport}` plus its proto number and zone, if sent.
    fn tuple(&self, kind: u16) -> (Value, u8, Option<u64>) {
        let t = attrs(self.a(kind).expect("tuple"));
        let ip = attrs(get(&t, 1).expect("CTA_TUPLE_IP"));
        let addr = |k4: u16, k6: u16| -> String {
            if let Some(p) = get(&ip, k4) {
                std::net::Ipv4Addr::new(p[0], p[1], p[2], p[3]).to_string()
            } else {
                let p: [u8; 16] = get(&ip, k6).expect("address").try_into().unwrap();
                std::net::Ipv6Addr::from(p).to_string()
            }
        };
        let proto = attrs(get(&t, 2).expect("CTA_TUPLE_PROTO"));
        let num = get(&proto, 1).expect("CTA_PROTO_NUM")[0];
        let mut v = serde_json::json!({"src": addr(1, 3), "dst": addr(2, 4)});
        if let (Some(s), Some(d)) = (get(&proto, 2), get(&proto, 3)) {
            v["sport"] = be(s).into();
            v["dport"] = be(d).into();
        }
        (v, num, get(&t, 3).map(be))
    }

    /// Check every attribute the kernel sent against ctscope's line.
    fn check(&self, line: &Value) {
        let ctx = || format!("kernel {self:?}\nline {line}");
        assert_eq!(line["event"], self.event, "{}", ctx());
        assert_eq!(line["source"], "kernel", "{}", ctx());
        assert_eq!(line["kind"], "flow", "{}", ctx());
        let (orig, num, zone_orig) = self.tuple(CTA_TUPLE_ORIG);
        let (reply, _, zone_reply) = self.tuple(CTA_TUPLE_REPLY);
        assert_eq!(
            line["proto"],
            match num {
                6 => "tcp",
                17 => "udp",
                _ => unreachable!("only tcp and udp here"),
            },
            "{}",
            ctx()
        );
        for k in ["src", "dst", "sport", "dport"] {
            assert_eq!(line["orig"][k], orig[k], "orig {k}: {}", ctx());
            assert_eq!(line["reply"][k], reply[k], "reply {k}: {}", ctx());
        }
        if let Some(z) = zone_orig {
            assert_eq!(line["zone_orig"], z, "{}", ctx());
        }
        if let Some(z) = zone_reply {
            assert_eq!(line["zone_reply"], z, "{}", ctx());
        }
        if let Some(z) = self.a(CTA_ZONE) {
            assert_eq!(line["zone"], be(z), "{}", ctx());
        }
        if let Some(id) = self.a(CTA_ID) {
            assert_eq!(line["id"], be(id), "{}", ctx());
        }
        let bits = be(self.a(CTA_STATUS).expect("CTA_STATUS is always sent"));
        let names: Vec<&str> = (0..16)
            .filter(|i| bits & (1 << i) != 0)
            .map(|i| STATUS[i])
            .collect();
        // ctscope may add the conntrack(8) word UNREPLIED (not a bit); nothing else.
        let shown: Vec<&str> = line["status"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .filter(|s| *s != "UNREPLIED")
            .collect();
        assert_eq!(shown, names, "status: {}", ctx());
        if let Some(p) = self.a(CTA_PROTOINFO) {
            let tcp = attrs(p);
            if let Some(t) = get(&tcp, 1) {
                let state = get(&attrs(t), 1).expect("CTA_PROTOINFO_TCP_STATE")[0];
                assert_eq!(line["state"], TCP_STATES[state as usize], "{}", ctx());
            }
        }
        match self.a(CTA_TIMEOUT) {
            Some(t) => assert_eq!(line["timeout"], be(t), "{}", ctx()),
            // A DESTROY leaves out a timeout of 0.
            None => assert_eq!(line["timeout"], 0, "{}", ctx()),
        }
        match self.a(CTA_MARK) {
            Some(m) => assert_eq!(line["mark"], be(m), "{}", ctx()),
            // The kernel leaves out a zero mark it did not just change.
            None => assert_eq!(line["mark"], 0, "{}", ctx()),
        }
        for (kind, dir) in [(CTA_COUNTERS_ORIG, "orig"), (CTA_COUNTERS_REPLY, "reply")] {
            if let Some(c) = self.a(kind) {
                let c = attrs(c);
                assert_eq!(
                    line["counters"][dir]["packets"],
                    be(get(&c, 1).unwrap()),
                    "{}",
                    ctx()
                );
                assert_eq!(
                    line["counters"][dir]["bytes"],
                    be(get(&c, 2).unwrap()),
                    "{}",
                    ctx()
                );
            }
        }
        if let Some(ts) = self.a(CTA_TIMESTAMP) {
            let ts = attrs(ts);
            assert_eq!(
                line["timestamp"]["start"],
                be(get(&ts, 1).expect("start")),
                "{}",
                ctx()
            );
            match get(&ts, 2) {
                Some(stop) => assert_eq!(line["timestamp"]["stop"], be(stop), "{}", ctx()),
                None => assert!(
                    line["timestamp"]["stop"] == 0 || line["timestamp"]["stop"].is_null(),
                    "{}",
                    ctx()
                ),
            }
        }
    }
}

/// A raw listener joined to NFNLGRP_CONNTRACK_NEW/UPDATE/DESTROY inside a namespace.
struct Listener {
    msgs: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Listener {
    fn start(ns: &str) -> Listener {
        let msgs = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let path = format!("/var/run/netns/{ns}");
        let (m, s) = (msgs.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let f = std::fs::File::open(&path).expect("open netns");
            // SAFETY: setns on a namespace fd we hold, for this thread only.
            assert_eq!(unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) }, 0);
            let mut sock = Socket::new(NETLINK_NETFILTER).expect("socket");
            sock.bind(&SocketAddr::new(0, 0)).expect("bind");
            for g in [1, 2, 3] {
                sock.add_membership(g).expect("join group");
            }
            let big: libc::c_int = 32 << 20;
            let tv = libc::timeval {
                tv_sec: 0,
                tv_usec: 100_000,
            };
            // SAFETY: setsockopt reads exactly the sizes given from live locals.
            unsafe {
                libc::setsockopt(
                    sock.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    (&big as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
                libc::setsockopt(
                    sock.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVTIMEO,
                    (&tv as *const libc::timeval).cast(),
                    std::mem::size_of::<libc::timeval>() as libc::socklen_t,
                );
            }
            ready_tx.send(()).unwrap();
            let mut buf = vec![0u8; 1 << 20];
            while !s.load(Ordering::SeqCst) {
                let n = match sock.recv(&mut &mut buf[..], 0) {
                    Ok(n) => n,
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                        ) =>
                    {
                        continue
                    }
                    Err(e) => panic!("raw listener: {e} (events lost: the comparison is void)"),
                };
                let mut b = &buf[..n];
                while b.len() >= 16 {
                    let len = u32::from_ne_bytes([b[0], b[1], b[2], b[3]]) as usize;
                    if len < 16 || len > b.len() {
                        break;
                    }
                    m.lock().unwrap().push(b[..len].to_vec());
                    b = &b[((len + 3) & !3).min(b.len())..];
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .expect("listener ready");
        Listener {
            msgs,
            stop,
            thread: Some(thread),
        }
    }

    fn events(&self) -> Vec<KernelEvent> {
        self.msgs
            .lock()
            .unwrap()
            .iter()
            .filter_map(|m| KernelEvent::parse(m))
            .collect()
    }

    fn finish(mut self) -> Vec<KernelEvent> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        self.events()
    }
}

fn watch_lines(lines: &Arc<Mutex<Vec<String>>>) -> Vec<Value> {
    lines
        .lock()
        .unwrap()
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn wait(what: &str, secs: u64, cond: &dyn Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn is_udp_9999(v: &Value) -> bool {
    v["proto"] == "udp" && v["orig"]["dport"] == 9999
}

#[test]
fn every_field_the_kernel_sent_appears_unchanged_in_watch() {
    if !privileged("every_field_the_kernel_sent_appears_unchanged_in_watch") {
        return;
    }
    let mut lab = Lab::new("wd", SUBNET);
    lab.sh_ok(
        &lab.srv,
        "sysctl -qw net.netfilter.nf_conntrack_events=1 net.netfilter.nf_conntrack_acct=1 \
         net.netfilter.nf_conntrack_timestamp=1 net.netfilter.nf_conntrack_udp_timeout=3 \
         net.netfilter.nf_conntrack_udp_timeout_stream=3",
    );
    // A conntrack match makes the kernel track this namespace's traffic at all.
    lab.sh_ok(
        &lab.srv,
        "iptables -A INPUT -m conntrack --ctstate NEW,ESTABLISHED,RELATED -j ACCEPT",
    );
    let srv = lab.srv.clone();
    lab.spawn(
        &srv,
        "/usr/bin/python3 -c \"import socket\ns=socket.socket()\n\
         s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind(('0.0.0.0',8080))\n\
         s.listen()\nwhile True:\n  c,_=s.accept();c.recv(100);c.sendall(b'hi'*500);c.close()\"",
    );
    lab.wait_listen(&srv, 8080);

    let listener = Listener::start(&lab.srv);
    let mut child: Child = Command::new(env!("CARGO_BIN_EXE_ctscope"))
        .args(["--netns", &lab.srv, "watch", "--ndjson", "--flows-only"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn watch");
    let out = child.stdout.take().unwrap();
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    let reader = std::thread::spawn(move || {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            sink.lock().unwrap().push(l);
        }
    });

    // Probe flows (zone 4, mark 7) until watch shows one: from that probe on, both
    // subscribers see every event.
    let mut probe = 9600u16;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        lab.sh_ok(
            &lab.srv,
            &format!(
                "conntrack -I -p tcp -s {} -d {} --sport {probe} --dport 80 --state ESTABLISHED \
                 -t 300 -u ASSURED -w 4 -m 7 2>/dev/null",
                lab.cli4, lab.srv4
            ),
        );
        std::thread::sleep(Duration::from_millis(300));
        if watch_lines(&lines)
            .iter()
            .any(|l| l["event"] == "new" && l["orig"]["sport"] == probe)
        {
            break;
        }
        assert!(Instant::now() < deadline, "watch printed no NEW");
        probe += 1;
    }

    // Real TCP: handshake, data, close; then its DESTROY with counters and timestamps.
    lab.sh_ok(
        &lab.cli,
        &format!(
            "/usr/bin/python3 -c \"import socket\nc=socket.create_connection(('{}',8080),5)\n\
             c.sendall(b'hello')\nwhile c.recv(4096): pass\nc.close()\"",
            lab.srv4
        ),
    );
    std::thread::sleep(Duration::from_millis(300));
    lab.sh_ok(&lab.srv, "conntrack -D -p tcp --dport 8080 2>/dev/null");
    // The probe goes: a DESTROY that carries a zone and a mark.
    lab.sh_ok(
        &lab.srv,
        &format!("conntrack -D -p tcp --sport {probe} -w 4 2>/dev/null"),
    );
    // Real UDP that times out after 3 s (nobody answers, so it stays UNREPLIED).
    lab.sh_ok(
        &lab.cli,
        &format!(
            "/usr/bin/python3 -c \"import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n\
             s.sendto(b'ping'*10,('{}',9999))\"",
            lab.srv4
        ),
    );
    wait("the UDP flow's DESTROY from the kernel", 20, &|| {
        listener
            .events()
            .iter()
            .any(|e| e.event == "destroy" && e.tuple(CTA_TUPLE_ORIG).0["dport"] == 9999)
    });
    // Give watch a moment to print the last of it, then stop both.
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: kill(2) on our own, unreaped child.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
    }
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    let kernel = listener.finish();
    let watched = watch_lines(&lines);

    // Align on the probe's NEW, then pair the kernel's events with watch's kernel lines.
    let start = kernel
        .iter()
        .position(|e| e.event == "new" && e.tuple(CTA_TUPLE_ORIG).0["sport"] == u64::from(probe))
        .expect("the listener saw the probe");
    let kernel = &kernel[start..];
    let from = watched
        .iter()
        .position(|l| l["event"] == "new" && l["orig"]["sport"] == probe)
        .unwrap();
    let ours: Vec<&Value> = watched[from..]
        .iter()
        .filter(|l| l["source"] == "kernel")
        .collect();
    assert_eq!(
        ours.len(),
        kernel.len(),
        "one line per kernel event;\nkernel: {kernel:#?}\nwatch: {ours:#?}"
    );
    for (k, l) in kernel.iter().zip(&ours) {
        k.check(l);
    }
    println!("compared {} kernel events field by field", kernel.len());
    assert!(kernel.len() >= 8, "{kernel:#?}");
    // The traffic really produced what this test claims to compare.
    let has = |ev: &str, f: &dyn Fn(&Value) -> bool| ours.iter().any(|l| l["event"] == ev && f(l));
    assert!(has("update", &|l| l["proto"] == "tcp"
        && l["state"] == "ESTABLISHED"));
    assert!(has("destroy", &|l| l["proto"] == "tcp"
        && l["orig"]["dport"] == 8080
        && l["counters"]["reply"]["bytes"].as_u64() > Some(1000)
        && l["timestamp"]["stop"].as_u64() > Some(0)
        && l["status"].as_array().unwrap().contains(&"DYING".into())));
    assert!(has("destroy", &|l| l["zone"] == 4 && l["mark"] == 7));

    // The UDP timeout: exactly one DESTROY line, with the kernel's counters; ctscope's
    // own re-check, if it came first, is a labelled sweep.
    let udp_destroys: Vec<&&Value> = ours
        .iter()
        .filter(|l| l["event"] == "destroy" && is_udp_9999(l))
        .collect();
    assert_eq!(udp_destroys.len(), 1, "{udp_destroys:#?}");
    assert_eq!(udp_destroys[0]["counters"]["orig"]["packets"], 1);
    assert_eq!(udp_destroys[0]["counters"]["orig"]["bytes"], 68);
    for l in watched
        .iter()
        .filter(|l| is_udp_9999(l) && l["source"] != "kernel")
    {
        assert_eq!(
            (&l["event"], &l["change"], &l["source"]),
            (&"sweep".into(), &"remove".into(), &"recheck".into()),
            "{l}"
        );
    }
}
