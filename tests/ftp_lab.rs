//! The engine against real FTP (and TFTP) traffic through the kernel's helpers, in the
//! shared namespace lab: the helper's expectation (tuple, mask, master, helper, timeout)
//! with its NEW and DESTROY events, the RELATED data flow linked to its master, deleting
//! exactly that one flow, and flushing one helper's expectations while another helper's
//! stay. Passive and active mode, IPv4 and IPv6.

mod common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use common::lab::{privileged, Lab};
use ctscope::actions::{self, Context, Plan};
use ctscope::engine::{
    self, Command as EngineCommand, Engine, EngineEvent, EngineHandle, Live, Options,
};
use ctscope::model::flow::status;
use ctscope::model::store::FlowKey;
use ctscope::model::tuple::{proto, Family};
use ctscope::model::{Event, Record};
use ctscope::model::{Expectation, Flow, Store};
use ctscope::netlink::Namespace;

const SUBNET: u8 = 1;

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An FTP client in the client namespace that fetches `file` (passive or active), prints
/// `done`, then keeps the control connection open until killed. With `file` empty it
/// only asks for a data port (PASV/EPSV) and never connects: the expectation stays.
fn ftp_client(
    lab: &Lab,
    host: &str,
    passive: bool,
    file: &str,
) -> (Kill, BufReader<std::process::ChildStdout>) {
    let script = format!(
        "import ftplib,sys,time\n\
         f=ftplib.FTP()\n\
         f.connect('{host}',21,timeout=10)\n\
         f.login()\n\
         f.set_pasv({pasv})\n\
         if '{file}':\n    buf=bytearray(); f.retrbinary('RETR {file}', buf.extend); print(len(buf))\n\
         else:\n    f.sendcmd('EPSV' if ':' in '{host}' else 'PASV'); print(0)\n\
         sys.stdout.flush()\n\
         time.sleep(120)\n",
        pasv = if passive { "True" } else { "False" },
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", &lab.cli, "/usr/bin/python3", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    (Kill(child), out)
}

struct Watch {
    rx: Receiver<EngineEvent>,
    handle: EngineHandle,
    store: Store,
    /// Every record event seen, in order.
    log: Vec<(Event, Record)>,
}

impl Watch {
    fn start(ns: &Namespace) -> Watch {
        let (rx, handle) =
            Engine::spawn(Box::new(Live::open(ns, true).unwrap()), Options::default()).unwrap();
        let mut w = Watch {
            rx,
            handle,
            store: Store::new(),
            log: Vec::new(),
        };
        w.until(&mut |ev| matches!(ev, EngineEvent::DumpEnd { .. }));
        w
    }

    /// Apply events until `stop` holds for one (checked before applying it).
    fn until(&mut self, stop: &mut dyn FnMut(&EngineEvent) -> bool) -> Option<actions::Report> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let ev = self.rx.recv_timeout(left).expect("engine event in time");
            if let EngineEvent::Fatal(m) = &ev {
                panic!("engine: {m}");
            }
            if let EngineEvent::Records(b) = &ev {
                self.log
                    .extend(b.iter().filter(|(e, _)| *e != Event::Dump).cloned());
            }
            let done = stop(&ev);
            let report = match &ev {
                EngineEvent::ActionDone(r) => Some(r.clone()),
                _ => None,
            };
            engine::apply(&mut self.store, ev, self.handle.now());
            if done {
                return report;
            }
        }
    }

    /// Apply events until `cond` holds.
    fn wait(&mut self, what: &str, cond: &dyn Fn(&Watch) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(15);
        while !cond(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            if let Ok(ev) = self.rx.recv_timeout(Duration::from_millis(200)) {
                if let EngineEvent::Records(b) = &ev {
                    self.log
                        .extend(b.iter().filter(|(e, _)| *e != Event::Dump).cloned());
                }
                engine::apply(&mut self.store, ev, self.handle.now());
            }
        }
    }

    fn execute(&mut self, plan: Plan) -> actions::Report {
        self.handle
            .send(EngineCommand::Execute(Box::new(plan)))
            .unwrap();
        self.until(&mut |ev| matches!(ev, EngineEvent::ActionDone(_)))
            .expect("a report")
    }
}

fn expect_events(log: &[(Event, Record)], ev: Event) -> Vec<Expectation> {
    log.iter()
        .filter(|(e, _)| *e == ev)
        .filter_map(|(_, r)| match r {
            Record::Expect(x) => Some(x.clone()),
            Record::Flow(_) => None,
        })
        .collect()
}

/// Fetch a file over FTP and check what the engine saw: the control flow with the ftp
/// helper, the RELATED data flow linked to it, and the expectation's NEW and DESTROY
/// events. Returns the client (kept alive so its flows stay) and the two flow keys.
fn transfer_and_check(
    lab: &Lab,
    w: &mut Watch,
    v6: bool,
    passive: bool,
) -> (Kill, FlowKey, FlowKey) {
    let host = if v6 { &lab.srv6 } else { &lab.srv4 };
    let family = if v6 { Family::Ipv6 } else { Family::Ipv4 };
    let (client, mut out) = ftp_client(lab, host, passive, "data.bin");
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "4096", "transfer size");

    let is_ctl = move |f: &Flow| {
        f.orig.family == family && f.orig.dport == 21 && f.helper.name() == Some("ftp")
    };
    let is_data = move |f: &Flow| f.orig.family == family && f.is_related();
    w.wait("the control flow and its RELATED data flow", &|w| {
        w.store.flows().any(is_ctl) && w.store.flows().any(is_data)
    });
    let ctl = w.store.flows().find(|f| is_ctl(f)).unwrap().clone();
    let data = w.store.flows().find(|f| is_data(f)).unwrap().clone();
    assert_eq!(
        data.master(),
        Some(&ctl.orig),
        "CTA_TUPLE_MASTER is the control flow"
    );
    assert!(data.has(status::EXPECTED));
    assert_eq!(data.orig.proto, proto::TCP);
    if passive {
        // The client connects to the server's data port.
        assert_eq!((data.orig.src, data.orig.dst), (ctl.orig.src, ctl.orig.dst));
    } else {
        // Active mode: the server connects back to the client.
        assert_eq!((data.orig.src, data.orig.dst), (ctl.orig.dst, ctl.orig.src));
    }
    let (ctl_key, data_key) = (FlowKey::of(&ctl), FlowKey::of(&data));
    assert_eq!(w.store.master_of(&data_key).map(|m| m.orig), Some(ctl.orig));
    assert!(w.store.related_of(&ctl_key).contains(&data_key));

    // The helper's expectation was announced, then consumed by the data connection.
    let master = ctl.orig;
    w.wait("the expectation's DESTROY event", &|w| {
        expect_events(&w.log, Event::Destroy)
            .iter()
            .any(|e| e.master == master)
    });
    let news = expect_events(&w.log, Event::New);
    let e = news
        .iter()
        .find(|e| e.master == master)
        .expect("an expectation NEW event for this master");
    assert_eq!(e.helper.name(), Some("ftp"));
    assert!(e.timeout > 0 && e.timeout <= 300, "timeout {}", e.timeout);
    assert!(
        e.matches(&data.orig),
        "the data flow matches the expectation"
    );
    assert!(
        !e.dport_is_any() && e.sport_is_any(),
        "fixed data port, any source port"
    );
    assert_eq!(e.tuple.dport, data.orig.dport);
    assert!(
        !e.src_is_any() && !e.dst_is_any(),
        "ftp expects exact addresses"
    );
    (client, ctl_key, data_key)
}

#[test]
fn ftp_expectations_related_flows_delete_and_helper_flush() {
    if !privileged("ftp_expectations_related_flows_delete_and_helper_flush") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("ctscope-nl-ftplab-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("data.bin"), vec![7u8; 4096]).unwrap();
    let mut lab = Lab::new("nl", SUBNET);
    lab.ftp_helper();
    lab.sh_ok(
        &lab.srv,
        "iptables -t raw -A PREROUTING -p udp --dport 69 -j CT --helper tftp",
    );
    lab.ftp_server(&dir.to_string_lossy());
    let ns = Namespace::parse(&lab.srv);
    let mut w = Watch::start(&ns);

    let (_c1, ctl4, data4) = transfer_and_check(&lab, &mut w, false, true);
    let (_c2, ctl6, data6) = transfer_and_check(&lab, &mut w, true, false);

    // Delete exactly the IPv4 data flow.
    let before: HashSet<FlowKey> = w.store.flows().map(FlowKey::of).collect();
    let plan = Plan::flow(&w.store, &data4, &Context::default());
    assert_eq!((plan.flows, plan.related, plan.masters), (1, 1, 0));
    let report = w.execute(plan);
    assert_eq!(
        (report.removed, report.already_gone, report.refused),
        (1, 0, 0),
        "{report}"
    );
    w.wait("the data flow's DESTROY", &|w| {
        w.store.flow(&data4).is_none()
    });
    let after: HashSet<FlowKey> = w.store.flows().map(FlowKey::of).collect();
    let gone: Vec<_> = before.difference(&after).collect();
    assert_eq!(gone, [&data4]);
    for k in [ctl4, ctl6, data6] {
        assert!(w.store.flow(&k).is_some());
    }

    // One pending ftp expectation (PASV, never connected) and one tftp expectation.
    let (_c3, mut out) = ftp_client(&lab, &lab.srv4.clone(), true, "");
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    lab.sh_ok(
        &lab.cli,
        &format!(
            "/usr/bin/python3 -c \"import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);\
             s.bind(('{}',40069));s.sendto(b'\\x00\\x01hello\\x00octet\\x00',('{}',69))\"",
            lab.cli4, lab.srv4
        ),
    );
    let helpers = |s: &Store| {
        let mut h: Vec<&str> = s.expectations().filter_map(|e| e.helper.name()).collect();
        h.sort();
        h
    };
    w.wait("an ftp and a tftp expectation", &|w| {
        helpers(&w.store) == ["ftp", "tftp"]
    });
    let plan = Plan::flush_helper(&w.store, "ftp");
    assert_eq!(plan.expects, 1);
    let report = w.execute(plan);
    // The kernel answers a helper flush with a bare ACK: the count comes from the
    // expectation table before and after.
    assert_eq!(report.flushed, ["expectations of 'ftp' (1)"], "{report}");
    assert_eq!(report.removed, 1, "{report}");
    w.wait("the ftp expectation's DESTROY", &|w| {
        helpers(&w.store) == ["tftp"]
    });
    // conntrack(8) agrees, independently of ctscope.
    let listed = lab.sh_ok(&lab.srv, "conntrack -L expect 2>/dev/null");
    assert_eq!(listed.lines().count(), 1, "{listed}");
    assert!(listed.contains("dport=40069"), "{listed}");

    w.handle.send(EngineCommand::Stop).unwrap();
    std::fs::remove_dir_all(&dir).ok();
}
