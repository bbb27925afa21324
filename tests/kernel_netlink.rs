//! The netlink layer against the real kernel, in throwaway network namespaces
//! (`ctscope-nl-…`, 10.213.1.0/24 and fd00:213:1::/64): dump counts agree with
//! conntrack(8), events arrive, a delete removes exactly one flow (and respects the id),
//! flushes (all, expectations, one helper's expectations), namespaces by name and by
//! /proc/PID/ns/net, and a missing namespace is a clear error.
//!
//! These tests look at raw messages (type, flags, a few attributes) so they prove the
//! socket layer independently of the decoder.

mod common;

use std::os::fd::AsRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::lab::{privileged, Lab};
use ctscope::abi::*;
use ctscope::model::tuple::{proto, Family, Tuple};
use ctscope::netlink::events::{Recv, Subscription, MIN_RCVBUF};
use ctscope::netlink::{Conn, Namespace, NlHeader, Table};
use ctscope::Error;

const SUBNET: u8 = 1;

/// The attribute at `path` (nested types) inside a ctnetlink message.
fn attr<'a>(msg: &'a [u8], path: &[u16]) -> Option<&'a [u8]> {
    let mut cur = msg.get(NLMSG_HDRLEN + NFGENMSG_LEN..)?;
    for (depth, want) in path.iter().enumerate() {
        let mut found = None;
        let mut rest = cur;
        while rest.len() >= 4 {
            let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
            let ty = u16::from_ne_bytes([rest[2], rest[3]]) & NLA_TYPE_MASK;
            if len < 4 || len > rest.len() {
                return None;
            }
            if ty == *want {
                found = Some(&rest[4..len]);
                break;
            }
            rest = &rest[((len + 3) & !3).min(rest.len())..];
        }
        cur = found?;
        if depth + 1 == path.len() {
            return Some(cur);
        }
    }
    None
}

fn be16(b: &[u8]) -> u16 {
    u16::from_be_bytes([b[0], b[1]])
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn orig_sport(msg: &[u8]) -> Option<u16> {
    attr(msg, &[CTA_TUPLE_ORIG, CTA_TUPLE_PROTO, CTA_PROTO_SRC_PORT]).map(be16)
}

fn tcp4(src: &str, sport: u16, dst: &str, dport: u16) -> Tuple {
    let mut t = Tuple {
        family: Family::Ipv4,
        proto: proto::TCP,
        sport,
        dport,
        ..Tuple::default()
    };
    t.set_src_ip(src.parse().unwrap());
    t.set_dst_ip(dst.parse().unwrap());
    t
}

/// Insert a TCP ESTABLISHED flow with conntrack(8).
fn insert_tcp(lab: &Lab, src: &str, sport: u16, dst: &str, dport: u16, zone: u16) {
    lab.sh_ok(
        &lab.srv,
        &format!(
            "conntrack -I -p tcp -s {src} -d {dst} --sport {sport} --dport {dport} \
             --state ESTABLISHED -t 100 -u ASSURED -w {zone} 2>/dev/null"
        ),
    );
}

fn conntrack_count(lab: &Lab, args: &str) -> usize {
    lab.sh_ok(&lab.srv, &format!("conntrack {args} 2>/dev/null"))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count()
}

fn dump_all(conn: &mut Conn, table: Table) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let outcome = conn.dump(table, &mut |m| out.push(m.to_vec())).unwrap();
    assert_eq!(outcome.messages, out.len());
    out
}

/// A varied table: both families, tcp/udp/icmp/icmpv6, several zones.
fn populate(lab: &Lab) {
    let (s4, c4, s6, c6) = (&lab.srv4, &lab.cli4, &lab.srv6, &lab.cli6);
    let mut cmds = String::new();
    for i in 0..20u16 {
        cmds.push_str(&format!(
            "conntrack -I -p tcp -s {c4} -d {s4} --sport {} --dport 80 --state ESTABLISHED -t 300 -u ASSURED -w {};",
            10000 + i,
            i % 3
        ));
        cmds.push_str(&format!(
            "conntrack -I -p udp -s {c6} -d {s6} --sport {} --dport 53 -t 300;",
            20000 + i
        ));
    }
    cmds.push_str(&format!(
        "conntrack -I -p icmp -s {c4} -d {s4} --icmp-type 8 --icmp-code 0 --icmp-id 77 -t 30;"
    ));
    cmds.push_str(&format!(
        "conntrack -I -p icmpv6 -s {c6} -d {s6} --icmpv6-type 128 --icmpv6-code 0 --icmpv6-id 78 -t 30;"
    ));
    lab.sh_ok(&lab.srv, &format!("{{ {cmds} }} 2>/dev/null"));
}

#[test]
fn dump_counts_match_conntrack_and_cover_both_families() {
    if !privileged("dump_counts_match_conntrack_and_cover_both_families") {
        return;
    }
    let lab = Lab::new("nl", SUBNET);
    populate(&lab);
    let mut conn = Conn::open(&Namespace::parse(&lab.srv)).unwrap();
    let msgs = dump_all(&mut conn, Table::Flows);
    assert_eq!(msgs.len(), conntrack_count(&lab, "-L"));
    assert_eq!(msgs.len(), 42);
    let mut v4 = 0;
    let mut v6 = 0;
    for m in &msgs {
        let h = NlHeader::parse(m).unwrap();
        assert_eq!(h.len as usize, m.len());
        assert_eq!(
            h.nl_type,
            u16::from(NFNL_SUBSYS_CTNETLINK) << 8 | u16::from(IPCTNL_MSG_CT_NEW)
        );
        assert_ne!(h.flags & NLM_F_MULTI, 0, "dump entries are multipart");
        match m[NLMSG_HDRLEN] {
            2 => v4 += 1,
            10 => v6 += 1,
            f => panic!("family {f}"),
        }
    }
    assert_eq!((v4, v6), (21, 21));
    // Every message is one whole entry the decoder reads as a dumped flow.
    for m in &msgs {
        let (msg, used) = ctscope::decode::message(m).unwrap();
        assert_eq!(used, m.len());
        assert!(
            matches!(
                msg,
                ctscope::decode::Message::Record {
                    event: ctscope::model::Event::Dump,
                    record: ctscope::model::Record::Flow(_)
                }
            ),
            "{msg:?}"
        );
    }
    // Zones travel as CTA_ZONE; 13 of the 20 tcp flows are in zone 1 or 2.
    let zoned = msgs
        .iter()
        .filter(|m| attr(m, &[CTA_ZONE]).is_some_and(|z| be16(z) != 0))
        .count();
    assert_eq!(zoned, 13);
    // An empty expectation table dumps cleanly.
    assert!(dump_all(&mut conn, Table::Expects).is_empty());
}

/// Wait up to 5 s for events until `done` says enough was seen.
fn collect_events(
    sub: &mut Subscription,
    out: &mut Vec<Vec<u8>>,
    done: &dyn Fn(&[Vec<u8>]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done(out) && Instant::now() < deadline {
        match sub
            .recv(Duration::from_millis(100), 1000, &mut |m| {
                out.push(m.to_vec())
            })
            .unwrap()
        {
            Recv::Data(_) | Recv::Timeout => {}
            Recv::Overrun => panic!("unexpected overrun"),
        }
    }
}

#[test]
fn events_new_and_destroy_arrive_with_a_large_buffer() {
    if !privileged("events_new_and_destroy_arrive_with_a_large_buffer") {
        return;
    }
    let lab = Lab::new("nl", SUBNET);
    let mut sub = Subscription::open(&Namespace::parse(&lab.srv), 0).unwrap();
    // The kernel reports twice what was set; forced past rmem_max as root.
    assert!(sub.rcvbuf() >= MIN_RCVBUF, "rcvbuf {}", sub.rcvbuf());
    insert_tcp(&lab, &lab.cli4, 4242, &lab.srv4, 80, 0);
    lab.sh_ok(
        &lab.srv,
        &format!(
            "conntrack -D -p tcp -s {} --sport 4242 2>/dev/null",
            lab.cli4
        ),
    );
    let mut evs = Vec::new();
    let new_t = u16::from(NFNL_SUBSYS_CTNETLINK) << 8 | u16::from(IPCTNL_MSG_CT_NEW);
    let del_t = u16::from(NFNL_SUBSYS_CTNETLINK) << 8 | u16::from(IPCTNL_MSG_CT_DELETE);
    collect_events(&mut sub, &mut evs, &|e| {
        e.iter()
            .any(|m| NlHeader::parse(m).unwrap().nl_type == del_t)
    });
    let kinds: Vec<(u16, bool)> = evs
        .iter()
        .map(|m| {
            let h = NlHeader::parse(m).unwrap();
            (h.nl_type, h.flags & NLM_F_CREATE != 0)
        })
        .collect();
    let new_at = kinds.iter().position(|k| *k == (new_t, true));
    let del_at = kinds.iter().position(|k| k.0 == del_t);
    assert!(new_at.is_some() && del_at.is_some(), "{kinds:?}");
    assert!(new_at < del_at, "{kinds:?}");
    for m in &evs {
        assert_eq!(orig_sport(m), Some(4242));
    }
}

#[test]
fn events_overrun_is_reported_not_silent() {
    if !privileged("events_overrun_is_reported_not_silent") {
        return;
    }
    let lab = Lab::new("nl", SUBNET);
    let mut sub = Subscription::open(&Namespace::parse(&lab.srv), 0).unwrap();
    // Shrink the buffer to the minimum so a burst overflows it.
    let v: libc::c_int = 0;
    // SAFETY: setsockopt on the subscription's own fd with a c_int value.
    let r = unsafe {
        libc::setsockopt(
            sub.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(r, 0);
    let mut cmds = String::new();
    for i in 0..300u16 {
        cmds.push_str(&format!(
            "-I -p udp -s {} -d {} --sport {} --dport 53 -t 100\n",
            lab.cli4,
            lab.srv4,
            30000 + i
        ));
    }
    lab.restore(&lab.srv, &cmds);
    // The loss is reported first, before any queued data.
    let mut n = 0;
    let first = sub
        .recv(Duration::from_millis(100), 1000, &mut |_| n += 1)
        .unwrap();
    assert_eq!(first, Recv::Overrun, "after {n} events");
    // The queue is still full: discarding it empties it (and ends the congestion, or a
    // new event would be dropped without another ENOBUFS).
    let dropped = sub.discard().unwrap();
    assert!(dropped > 0 && dropped < 300, "dropped {dropped}");
    insert_tcp(&lab, &lab.cli4, 4343, &lab.srv4, 80, 0);
    let mut evs = Vec::new();
    collect_events(&mut sub, &mut evs, &|e| !e.is_empty());
    assert_eq!(evs.len(), 1, "only the new event");
    assert_eq!(orig_sport(&evs[0]), Some(4343));
}

#[test]
fn delete_removes_exactly_one_flow_and_respects_the_id() {
    if !privileged("delete_removes_exactly_one_flow_and_respects_the_id") {
        return;
    }
    let lab = Lab::new("nl", SUBNET);
    for p in [5001, 5002, 5003] {
        insert_tcp(&lab, &lab.cli4, p, &lab.srv4, 80, 0);
    }
    insert_tcp(&lab, &lab.cli4, 5002, &lab.srv4, 80, 7); // same tuple, other zone
    let mut conn = Conn::open(&Namespace::parse(&lab.srv)).unwrap();
    let msgs = dump_all(&mut conn, Table::Flows);
    let target = msgs
        .iter()
        .find(|m| orig_sport(m) == Some(5002) && attr(m, &[CTA_ZONE]).is_none())
        .expect("flow 5002 zone 0");
    let id = be32(attr(target, &[CTA_ID]).unwrap());
    let t = tcp4(&lab.cli4, 5002, &lab.srv4, 80);

    // A stale id (the tuple was recycled) must not delete.
    let e = conn
        .delete_flow(&FlowKey::new(0, t), Some(id.wrapping_add(1)))
        .unwrap_err();
    assert!(
        matches!(e, Error::Netlink { errno, .. } if errno == libc::ENOENT),
        "{e}"
    );
    assert_eq!(conntrack_count(&lab, "-L"), 4);

    conn.delete_flow(&FlowKey::new(0, t), Some(id)).unwrap();
    let after = dump_all(&mut conn, Table::Flows);
    assert_eq!(after.len(), 3);
    assert!(after
        .iter()
        .all(|m| !(orig_sport(m) == Some(5002) && attr(m, &[CTA_ZONE]).is_none())));
    // The zone-7 twin is still there.
    assert_eq!(conntrack_count(&lab, "-L -p tcp --sport 5002"), 1);

    // Gone is gone: a second delete says ENOENT.
    let e = conn.delete_flow(&FlowKey::new(0, t), Some(id)).unwrap_err();
    assert!(
        matches!(e, Error::Netlink { errno, .. } if errno == libc::ENOENT),
        "{e}"
    );

    // get: present flow answers, absent one is Ok(false).
    let mut got = Vec::new();
    assert!(conn
        .get_flow(&FlowKey::new(7, t), &mut |m| got.push(m.to_vec()))
        .unwrap());
    assert_eq!(got.len(), 1);
    assert_eq!(attr(&got[0], &[CTA_ZONE]).map(be16), Some(7));
    assert!(!conn.get_flow(&FlowKey::new(0, t), &mut |_| {}).unwrap());
}

#[test]
fn flush_flows_empties_the_table() {
    if !privileged("flush_flows_empties_the_table") {
        return;
    }
    let lab = Lab::new("nl", SUBNET);
    populate(&lab);
    let mut conn = Conn::open(&Namespace::parse(&lab.srv)).unwrap();
    assert_eq!(dump_all(&mut conn, Table::Flows).len(), 42);
    conn.flush_flows().unwrap();
    assert_eq!(conntrack_count(&lab, "-L"), 0);
    assert!(dump_all(&mut conn, Table::Flows).is_empty());
}

/// Run a Python script in the client namespace, in the background.
fn spawn_py(lab: &Lab, script: &str) -> Child {
    Command::new("ip")
        .args(["netns", "exec", &lab.cli, "/usr/bin/python3", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

struct Kill(Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_for(what: &str, f: &dyn Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out waiting for {what}");
}

fn expect_helpers(conn: &mut Conn) -> Vec<String> {
    let mut names: Vec<String> = dump_all(conn, Table::Expects)
        .iter()
        .map(|m| {
            let h = attr(m, &[CTA_EXPECT_HELP_NAME]).unwrap_or(b"");
            String::from_utf8_lossy(h).trim_end_matches('\0').to_owned()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn flush_expectations_of_one_helper_keeps_the_others() {
    if !privileged("flush_expectations_of_one_helper_keeps_the_others") {
        return;
    }
    let mut lab = Lab::new("nl", SUBNET);
    lab.ftp_helper();
    lab.sh_ok(
        &lab.srv,
        "iptables -t raw -A PREROUTING -p udp --dport 69 -j CT --helper tftp",
    );
    let dir = std::env::temp_dir().join(format!("ctscope-nl-ftp-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    lab.ftp_server(&dir.to_string_lossy());
    let ns = Namespace::parse(&lab.srv);
    let mut conn = Conn::open(&ns).unwrap();

    // FTP: ask for passive mode over v4 and v6 and never open the data connection: the
    // helper's expectations stay until they time out.
    let mut clients = Vec::new();
    for host in [lab.srv4.clone(), lab.srv6.clone()] {
        clients.push(Kill(spawn_py(
            &lab,
            &format!(
                "import ftplib,time\nf=ftplib.FTP()\nf.connect('{host}',21,timeout=10)\n\
                 f.login()\nf.sendcmd('PASV' if ':' not in '{host}' else 'EPSV')\ntime.sleep(60)\n"
            ),
        )));
    }
    // TFTP: a read request creates the tftp helper's expectation for the reply.
    lab.sh_ok(
        &lab.cli,
        &format!(
            "/usr/bin/python3 -c \"import socket;s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);\
             s.bind(('{}',40069));s.sendto(b'\\x00\\x01hello\\x00octet\\x00',('{}',69))\"",
            lab.cli4, lab.srv4
        ),
    );
    wait_for("two ftp and one tftp expectations", &|| {
        let mut c = Conn::open(&ns).unwrap();
        expect_helpers(&mut c) == ["ftp", "ftp", "tftp"]
    });
    // conntrack -L expect shows only IPv4 unless told; we dumped both families.
    assert_eq!(conntrack_count(&lab, "-L expect"), 2);

    conn.flush_helper_expects("ftp").unwrap();
    assert_eq!(expect_helpers(&mut conn), ["tftp"]);

    conn.flush_expects().unwrap();
    assert!(expect_helpers(&mut conn).is_empty());
    drop(clients);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn netns_by_name_and_by_proc_path_reach_the_same_table() {
    if !privileged("netns_by_name_and_by_proc_path_reach_the_same_table") {
        return;
    }
    let lab = Lab::new("nl", SUBNET);
    insert_tcp(&lab, &lab.cli4, 6001, &lab.srv4, 80, 0);
    let holder = Kill(
        Command::new("ip")
            .args(["netns", "exec", &lab.srv, "sleep", "60"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let by_name = dump_all(
        &mut Conn::open(&Namespace::parse(&lab.srv)).unwrap(),
        Table::Flows,
    );
    let path = format!("/proc/{}/ns/net", holder.0.id());
    // `ip netns exec` enters the namespace, then execs in the same process: wait until it has.
    wait_for("the holder to enter the namespace", &|| {
        std::fs::read_link(&path).ok() != std::fs::read_link("/proc/self/ns/net").ok()
    });
    let by_path = dump_all(
        &mut Conn::open(&Namespace::parse(&path)).unwrap(),
        Table::Flows,
    );
    assert_eq!(by_name.len(), 1);
    assert_eq!(by_path.len(), 1);
    assert_eq!(orig_sport(&by_path[0]), Some(6001));
    assert_eq!(attr(&by_name[0], &[CTA_ID]), attr(&by_path[0], &[CTA_ID]));
    // The host namespace's table does not have it (the socket did not leak out).
    let host = dump_all(&mut Conn::open(&Namespace::Current).unwrap(), Table::Flows);
    assert!(host.iter().all(|m| orig_sport(m) != Some(6001)));
}

#[test]
fn missing_namespace_is_an_error_value() {
    // Needs no privilege: the namespace file does not exist.
    let e = Conn::open(&Namespace::parse("ctscope-nl-missing")).unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, Error::Netns { .. }), "{text}");
    assert!(
        text.contains("'ctscope-nl-missing'") && text.contains("hint:"),
        "{text}"
    );
    let e = Subscription::open(&Namespace::parse("/proc/999999999/ns/net"), 0).unwrap_err();
    assert!(matches!(e, Error::Netns { .. }), "{e}");
}

/// Drop every effective capability of the calling thread only (capabilities are
/// per-thread in Linux), so the privilege path can be tested as root.
fn drop_thread_caps() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    let mut h = Header {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let mut d = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: capget/capset with a v3 header and two data structs, as capget(2) documents.
    unsafe {
        assert_eq!(libc::syscall(libc::SYS_capget, &mut h, d.as_mut_ptr()), 0);
        for x in &mut d {
            x.effective = 0;
        }
        assert_eq!(libc::syscall(libc::SYS_capset, &mut h, d.as_ptr()), 0);
    }
}

#[test]
fn missing_privilege_names_sudo_and_setcap() {
    if !privileged("missing_privilege_names_sudo_and_setcap") {
        return;
    }
    let lab = Lab::new("nl", SUBNET);
    let ns = Namespace::parse(&lab.srv);
    // Open the socket in the namespace first (entering it needs privilege too), then
    // drop the thread's capabilities: ctnetlink checks the sender's CAP_NET_ADMIN.
    let err = std::thread::spawn(move || {
        let mut conn = Conn::open(&ns).unwrap();
        drop_thread_caps();
        let dump = conn.dump(Table::Flows, &mut |_| {}).unwrap_err();
        let flush = conn.flush_flows().unwrap_err();
        // Joining the event groups needs CAP_NET_ADMIN too (netlink_allowed).
        let subscribe = Subscription::open(&Namespace::Current, 0).unwrap_err();
        (dump, flush, subscribe)
    })
    .join()
    .unwrap();
    for e in [err.0, err.1, err.2] {
        assert!(e.is_permission(), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("sudo") && text.contains("setcap cap_net_admin+ep"),
            "{text}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// The engine over the live kernel, and its recording replayed.

use ctscope::actions::{Context, Plan};
use ctscope::engine::{
    self, record, Command as EngineCommand, Engine, EngineEvent, Item, Live, Options, Poll, Replay,
    Source, Speed,
};
use ctscope::model::store::FlowKey;
use ctscope::model::Store;
use ctscope::model::{Event, Record};

/// Receive and apply engine events until `until` holds for one (checked before it is
/// applied); every record event is also appended to `log` as (event, key).
fn pump(
    rx: &std::sync::mpsc::Receiver<EngineEvent>,
    store: &mut Store,
    log: &mut Vec<(Event, FlowKey)>,
    until: &mut dyn FnMut(&EngineEvent) -> bool,
) -> EngineEvent {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ev = rx.recv_timeout(left).expect("engine event in time");
        if let EngineEvent::Records(batch) | EngineEvent::Rechecked(batch) = &ev {
            for (e, r) in batch {
                if let Record::Flow(f) = r {
                    log.push((*e, FlowKey::of(f)));
                }
            }
        }
        if let EngineEvent::Fatal(m) = &ev {
            panic!("engine: {m}");
        }
        let stop = until(&ev);
        let keep = match &ev {
            EngineEvent::ActionDone(r) => Some(EngineEvent::ActionDone(r.clone())),
            _ => None,
        };
        engine::apply(store, ev, 0);
        if stop {
            return keep.unwrap_or(EngineEvent::Overrun);
        }
    }
}

fn has_flow_event(ev: &EngineEvent, want: Event, sport: u16) -> bool {
    matches!(ev, EngineEvent::Records(b) | EngineEvent::Rechecked(b) if b.iter().any(|(e, r)| {
        *e == want && matches!(r, Record::Flow(f) if f.orig.sport == sport)
    }))
}

#[test]
fn engine_follows_acts_rechecks_and_its_recording_replays_the_same() {
    if !privileged("engine_follows_acts_rechecks_and_its_recording_replays_the_same") {
        return;
    }
    let lab = Lab::new("nl", SUBNET);
    let ns = Namespace::parse(&lab.srv);
    // A flow from before we subscribed.
    insert_tcp(&lab, &lab.cli4, 7001, &lab.srv4, 80, 0);
    let rec = std::env::temp_dir().join(format!("ctscope-nl-engine-{}.rec", std::process::id()));
    let opts = Options {
        record: Some(record::Writer::create(&rec, true).unwrap()),
        ..Options::default()
    };
    let (rx, handle) = Engine::spawn(Box::new(Live::open(&ns, true).unwrap()), opts).unwrap();
    let mut store = Store::new();
    let mut log = Vec::new();
    pump(&rx, &mut store, &mut log, &mut |e| {
        matches!(e, EngineEvent::DumpEnd { .. })
    });
    assert_eq!(store.flow_count(), 1);

    // A new flow arrives as an event.
    insert_tcp(&lab, &lab.cli4, 7002, &lab.srv4, 80, 0);
    pump(&rx, &mut store, &mut log, &mut |e| {
        has_flow_event(e, Event::New, 7002)
    });
    assert_eq!(store.flow_count(), 2);

    // Delete it through a plan: exactly one removed, and its DESTROY comes back.
    let plan = Plan::flows(
        &store,
        &|f| f.orig.sport == 7002,
        "test",
        &Context::default(),
    );
    assert_eq!(plan.flows, 1);
    handle.send(EngineCommand::Execute(Box::new(plan))).unwrap();
    let done = pump(&rx, &mut store, &mut log, &mut |e| {
        matches!(e, EngineEvent::ActionDone(_))
    });
    let EngineEvent::ActionDone(report) = done else {
        unreachable!()
    };
    assert_eq!(
        (report.removed, report.already_gone, report.refused),
        (1, 0, 0),
        "{report}"
    );
    if store.flow_count() == 2 {
        pump(&rx, &mut store, &mut log, &mut |e| {
            has_flow_event(e, Event::Destroy, 7002)
        });
    }
    assert_eq!(store.flow_count(), 1);

    // The old flow goes; a re-check reports it gone whether or not the kernel announced it
    // (recheck_finds_flows_that_changed_or_vanished_silently proves it with events off).
    lab.sh_ok(
        &lab.srv,
        &format!(
            "conntrack -D -p tcp --sport 7001 -s {} 2>/dev/null",
            lab.cli4
        ),
    );
    let key = FlowKey::new(0, tcp4(&lab.cli4, 7001, &lab.srv4, 80));
    handle.send(EngineCommand::Recheck(vec![key])).unwrap();
    pump(&rx, &mut store, &mut log, &mut |e| {
        has_flow_event(e, Event::Destroy, 7001)
    });
    assert_eq!(store.flow_count(), 0);
    // Whatever the engine sent before stopping is in the recording too.
    handle.stop();
    for ev in rx.try_iter() {
        if let EngineEvent::Records(batch) | EngineEvent::Rechecked(batch) = &ev {
            for (e, r) in batch {
                if let Record::Flow(f) = r {
                    log.push((*e, FlowKey::of(f)));
                }
            }
        }
    }

    // The recording replays to the same sequence, without any privilege needed.
    let (rx, handle) = Engine::spawn(
        Box::new(Replay::open(&rec, Speed::Fast).unwrap()),
        Options::default(),
    )
    .unwrap();
    let mut replayed = Store::new();
    let mut replay_log = Vec::new();
    let t0 = Instant::now();
    while let Ok(ev) = rx.recv_timeout(Duration::from_secs(10)) {
        if let EngineEvent::Records(batch) | EngineEvent::Rechecked(batch) = &ev {
            for (e, r) in batch {
                if let Record::Flow(f) = r {
                    replay_log.push((*e, FlowKey::of(f)));
                }
            }
        }
        engine::apply(&mut replayed, ev, 0);
    }
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "the replay ends by itself"
    );
    assert_eq!(replay_log, log);
    assert_eq!(replayed.flow_count(), 0);
    // The replay ended on its own; stopping joins a finished thread.
    handle.stop();
    std::fs::remove_file(&rec).ok();
}

#[test]
fn load_fills_a_store_with_both_families_and_both_tables() {
    if !privileged("load_fills_a_store_with_both_families_and_both_tables") {
        return;
    }
    let lab = Lab::new("nl", SUBNET);
    populate(&lab);
    let mut live = Live::open(&Namespace::parse(&lab.srv), false).unwrap();
    let mut store = Store::new();
    let stats = engine::load(&mut live, &mut store, 0).unwrap();
    assert_eq!(stats.decode_errors, 0);
    assert_eq!(stats.messages, 42);
    assert_eq!(store.flow_count(), 42);
    let v6 = store
        .flows()
        .filter(|f| f.orig.family == Family::Ipv6)
        .count();
    assert_eq!(v6, 21);
    assert_eq!(store.flows().filter(|f| f.zone == 2).count(), 6);
}

#[test]
fn engine_runs_a_large_plan_in_slices_without_losing_events() {
    if !privileged("engine_runs_a_large_plan_in_slices_without_losing_events") {
        return;
    }
    let lab = Lab::new("nl", SUBNET);
    let ns = Namespace::parse(&lab.srv);
    let (rx, handle) =
        Engine::spawn(Box::new(Live::open(&ns, true).unwrap()), Options::default()).unwrap();
    let mut store = Store::new();
    let mut log = Vec::new();
    pump(&rx, &mut store, &mut log, &mut |e| {
        matches!(e, EngineEvent::DumpEnd { .. })
    });
    // 5000 flows created while subscribed, so each will also send a DESTROY.
    let mut lines = String::new();
    for i in 0..5000u32 {
        lines.push_str(&format!(
            "-I -p udp -s {} -d {} --sport {} --dport {} -t 300\n",
            lab.cli4,
            lab.srv4,
            10000 + i % 50000,
            1000 + i / 50000
        ));
    }
    lab.restore(&lab.srv, &lines);
    let mut new = 0;
    pump(&rx, &mut store, &mut log, &mut |e| {
        if let EngineEvent::Records(b) = e {
            new += b.iter().filter(|(ev, _)| *ev == Event::New).count();
        }
        new >= 5000
    });
    assert_eq!(store.flow_count(), 5000);

    let plan = Plan::flows(&store, &|_| true, "all", &Context::default());
    assert_eq!(plan.targets.len(), 5000);
    handle.send(EngineCommand::Execute(Box::new(plan))).unwrap();
    let mut overruns = 0;
    let done = pump(&rx, &mut store, &mut log, &mut |e| {
        overruns += usize::from(matches!(e, EngineEvent::Overrun));
        matches!(e, EngineEvent::ActionDone(_))
    });
    let EngineEvent::ActionDone(report) = done else {
        unreachable!()
    };
    assert_eq!(
        (report.removed, report.already_gone, report.refused),
        (5000, 0, 0)
    );
    // The last DESTROY events may still be on their way.
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.flow_count() > 0 && Instant::now() < deadline {
        if let Ok(ev) = rx.recv_timeout(Duration::from_millis(100)) {
            overruns += usize::from(matches!(ev, EngineEvent::Overrun));
            engine::apply(&mut store, ev, 0);
        }
    }
    assert_eq!(store.flow_count(), 0);
    assert_eq!(overruns, 0);
    assert_eq!(store.stats().resyncs, 0);
    handle.stop();
}

/// A live source that can be told to stop reading for a while, as a busy consumer would.
struct Stalling {
    inner: Live,
    stall: Arc<AtomicBool>,
    stalled: Arc<AtomicBool>,
}

impl Source for Stalling {
    fn dump(&mut self, tables: u8, sink: &mut dyn FnMut(Item<'_>)) -> ctscope::Result<bool> {
        self.inner.dump(tables, sink)
    }
    fn poll(
        &mut self,
        timeout: Duration,
        max: usize,
        sink: &mut dyn FnMut(Item<'_>),
    ) -> ctscope::Result<Poll> {
        if self.stall.load(Ordering::SeqCst) {
            self.stalled.store(true, Ordering::SeqCst);
            while self.stall.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        self.inner.poll(timeout, max, sink)
    }
    fn recheck(&mut self, keys: &[FlowKey], sink: &mut dyn FnMut(Item<'_>)) -> ctscope::Result<()> {
        self.inner.recheck(keys, sink)
    }
    fn conn(&mut self) -> ctscope::Result<&mut Conn> {
        self.inner.conn()
    }
    fn clock(&self) -> ctscope::engine::Clock {
        self.inner.clock()
    }
    fn is_live(&self) -> bool {
        true
    }
    fn discard_events(&mut self) -> ctscope::Result<()> {
        self.inner.discard_events()
    }
}

#[test]
fn engine_recovers_from_enobufs_by_redumping() {
    if !privileged("engine_recovers_from_enobufs_by_redumping") {
        return;
    }
    let lab = Lab::new("nl", SUBNET);
    let ns = Namespace::parse(&lab.srv);
    let stall = Arc::new(AtomicBool::new(false));
    let stalled = Arc::new(AtomicBool::new(false));
    let src = Stalling {
        inner: Live::open_with(&ns, true, MIN_RCVBUF).unwrap(),
        stall: stall.clone(),
        stalled: stalled.clone(),
    };
    let (rx, handle) = Engine::spawn(Box::new(src), Options::default()).unwrap();
    let mut store = Store::new();
    let drain_until = |store: &mut Store, cond: &dyn Fn(&Store) -> bool, overruns: &mut usize| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !cond(store) && Instant::now() < deadline {
            if let Ok(ev) = rx.recv_timeout(Duration::from_millis(100)) {
                *overruns += usize::from(matches!(ev, EngineEvent::Overrun));
                engine::apply(store, ev, 0);
            }
        }
    };
    let mut overruns = 0;
    drain_until(&mut store, &|s| s.stats().dumps > 0, &mut overruns);
    let n = 30_000u32;
    let mut lines = String::new();
    for i in 0..n {
        lines.push_str(&format!(
            "-I -p udp -s {} -d {} --sport {} --dport {} -t 300\n",
            lab.cli4,
            lab.srv4,
            1024 + i % 60000,
            1 + i / 60000
        ));
    }
    lab.restore(&lab.srv, &lines);
    drain_until(&mut store, &|s| s.flow_count() == n as usize, &mut overruns);
    assert_eq!(store.flow_count(), n as usize);
    // A busy machine may already have overflowed during the insert: count from here.
    let resyncs_before = store.stats().resyncs;
    overruns = 0;

    // Stop reading, flush (30k DESTROY events ≈ 39 MB, more than the 16 MiB buffer holds),
    // then read again: the kernel reports ENOBUFS and the engine must re-dump.
    stall.store(true, Ordering::SeqCst);
    let t0 = Instant::now();
    while !stalled.load(Ordering::SeqCst) {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "engine did not reach poll"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    lab.sh_ok(&lab.srv, "conntrack -F 2>/dev/null");
    stall.store(false, Ordering::SeqCst);
    drain_until(&mut store, &|s| s.flow_count() == 0, &mut overruns);
    assert_eq!(store.flow_count(), 0);
    assert!(overruns >= 1, "no overrun reported");
    assert_eq!(store.stats().resyncs, resyncs_before + overruns as u64);
    assert!(
        store.stats().swept > 0,
        "the re-dump swept what the lost events would have removed"
    );
    handle.stop();
}

#[test]
fn engine_store_converges_after_a_flush_burst_with_the_smallest_buffer() {
    if !privileged("engine_store_converges_after_a_flush_burst_with_the_smallest_buffer") {
        return;
    }
    let lab = Lab::new("nl", SUBNET);
    let ns = Namespace::parse(&lab.srv);
    let live = Live::open_with(&ns, true, MIN_RCVBUF).unwrap();
    let (rx, handle) = Engine::spawn(Box::new(live), Options::default()).unwrap();
    let mut store = Store::new();
    let mut log = Vec::new();
    pump(&rx, &mut store, &mut log, &mut |e| {
        matches!(e, EngineEvent::DumpEnd { .. })
    });
    let n = 30_000u32;
    let mut lines = String::new();
    for i in 0..n {
        lines.push_str(&format!(
            "-I -p udp -s {} -d {} --sport {} --dport {} -t 300\n",
            lab.cli4,
            lab.srv4,
            1024 + i % 60000,
            1 + i / 60000
        ));
    }
    lab.restore(&lab.srv, &lines);
    // Converge on the insert (events, or a resync if they overflowed).
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.flow_count() < n as usize && Instant::now() < deadline {
        if let Ok(ev) = rx.recv_timeout(Duration::from_millis(100)) {
            engine::apply(&mut store, ev, 0);
        }
    }
    assert_eq!(store.flow_count(), n as usize);
    // The kernel flushes far faster than anyone reads: a DESTROY burst.
    lab.sh_ok(&lab.srv, "conntrack -F 2>/dev/null");
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.flow_count() > 0 && Instant::now() < deadline {
        if let Ok(ev) = rx.recv_timeout(Duration::from_millis(100)) {
            engine::apply(&mut store, ev, 0);
        }
    }
    assert_eq!(store.flow_count(), 0, "resyncs: {}", store.stats().resyncs);
    println!(
        "burst of {n}: resyncs={} dumps={}",
        store.stats().resyncs,
        store.stats().dumps
    );
    handle.stop();
}

/// Turn conntrack events off in the server namespace (`nf_conntrack_events=0`): every
/// change is then silent, as changes to flows without an event cache are (flows created
/// before anyone subscribed, under the default `=2`, on kernels that skip their events).
fn silence_events(lab: &Lab) {
    lab.sh_ok(&lab.srv, "sysctl -qw net.netfilter.nf_conntrack_events=0");
}

fn drain_for(
    rx: &std::sync::mpsc::Receiver<EngineEvent>,
    store: &mut Store,
    log: &mut Vec<(Event, FlowKey)>,
    cond: &dyn Fn(&Store) -> bool,
) {
    // Only bounds a failure: a loaded machine can take seconds for a background re-dump.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond(store) && Instant::now() < deadline {
        if let Ok(ev) = rx.recv_timeout(Duration::from_millis(50)) {
            if let EngineEvent::Records(b) | EngineEvent::Rechecked(b) = &ev {
                for (e, r) in b {
                    if let Record::Flow(f) = r {
                        log.push((*e, FlowKey::of(f)));
                    }
                }
            }
            engine::apply(store, ev, 0);
        }
    }
}

fn has_sport(s: &Store, sport: u16) -> bool {
    s.flows().any(|f| f.orig.sport == sport)
}

#[test]
fn recheck_finds_flows_that_changed_or_vanished_silently() {
    if !privileged("recheck_finds_flows_that_changed_or_vanished_silently") {
        return;
    }
    let lab = Lab::new("nl", SUBNET);
    silence_events(&lab);
    let ns = Namespace::parse(&lab.srv);
    insert_tcp(&lab, &lab.cli4, 7301, &lab.srv4, 80, 0);
    insert_tcp(&lab, &lab.cli4, 7302, &lab.srv4, 80, 5);
    let (rx, handle) =
        Engine::spawn(Box::new(Live::open(&ns, true).unwrap()), Options::default()).unwrap();
    let mut store = Store::new();
    let mut log = Vec::new();
    drain_for(&rx, &mut store, &mut log, &|s| s.flow_count() == 2);
    assert_eq!(store.flow_count(), 2);
    // Let the initial dump's batches all arrive before counting answers.
    std::thread::sleep(Duration::from_millis(100));
    for ev in rx.try_iter() {
        engine::apply(&mut store, ev, 0);
    }
    lab.sh_ok(
        &lab.srv,
        &format!(
            "conntrack -D -p tcp --sport 7301 -s {} 2>/dev/null",
            lab.cli4
        ),
    );
    let gone = FlowKey::new(0, tcp4(&lab.cli4, 7301, &lab.srv4, 80));
    let kept = FlowKey::new(5, tcp4(&lab.cli4, 7302, &lab.srv4, 80));
    handle
        .send(EngineCommand::Recheck(vec![gone, kept]))
        .unwrap();
    // Both answers come in one batch (re-checks are flushed together).
    let before = log.len();
    drain_for(&rx, &mut store, &mut log, &|s| !has_sport(s, 7301));
    assert!(
        !has_sport(&store, 7301),
        "the vanished flow is gone from the store"
    );
    assert!(store.flow(&kept).is_some(), "the present flow stays");
    // A present flow's answer is a get reply, which the kernel marks NLM_F_MULTI like a
    // dumped entry: it refreshes the record without counting as an event.
    let answers = &log[before..];
    assert_eq!(answers.len(), 2, "{answers:?}");
    assert!(answers.contains(&(Event::Destroy, gone)), "{answers:?}");
    assert!(answers.contains(&(Event::Dump, kept)), "{answers:?}");
    // Housekeeping, not kernel events: the removal counts as swept, and no event at all
    // was applied (the kernel is silent here).
    assert_eq!(store.stats().swept, 1);
    assert_eq!(store.stats().events, 0);
    handle.stop();
}

#[test]
fn background_redump_catches_changes_that_sent_no_event() {
    if !privileged("background_redump_catches_changes_that_sent_no_event") {
        return;
    }
    let lab = Lab::new("nl", SUBNET);
    silence_events(&lab);
    let ns = Namespace::parse(&lab.srv);
    insert_tcp(&lab, &lab.cli4, 7401, &lab.srv4, 80, 0);
    let opts = Options {
        min_redump: Duration::from_millis(300),
        ..Options::default()
    };
    let (rx, handle) = Engine::spawn(Box::new(Live::open(&ns, true).unwrap()), opts).unwrap();
    let mut store = Store::new();
    let mut log = Vec::new();
    drain_for(&rx, &mut store, &mut log, &|s| s.flow_count() == 1);
    assert!(has_sport(&store, 7401));
    // One flow goes and one comes, and the kernel says nothing.
    lab.sh_ok(
        &lab.srv,
        &format!(
            "conntrack -D -p tcp --sport 7401 -s {} 2>/dev/null",
            lab.cli4
        ),
    );
    insert_tcp(&lab, &lab.cli4, 7402, &lab.srv4, 80, 0);
    drain_for(&rx, &mut store, &mut log, &|s| {
        !has_sport(s, 7401) && has_sport(s, 7402)
    });
    assert!(!has_sport(&store, 7401) && has_sport(&store, 7402));
    assert_eq!(store.stats().swept, 1);
    assert!(store.stats().dumps >= 2);
    assert!(
        log.iter().all(|(e, _)| *e == Event::Dump),
        "events arrived after all: {log:?}"
    );
    handle.stop();
}

#[test]
fn delete_one_expectation_by_tuple_zone_and_id() {
    if !privileged("delete_one_expectation_by_tuple_zone_and_id") {
        return;
    }
    let mut lab = Lab::new("nl", SUBNET);
    lab.ftp_helper();
    let dir = std::env::temp_dir().join(format!("ctscope-nl-ftpdel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    lab.ftp_server(&dir.to_string_lossy());
    let ns = Namespace::parse(&lab.srv);
    let mut clients = Vec::new();
    for host in [lab.srv4.clone(), lab.srv6.clone()] {
        clients.push(Kill(spawn_py(
            &lab,
            &format!(
                "import ftplib,time\nf=ftplib.FTP()\nf.connect('{host}',21,timeout=10)\n\
                 f.login()\nf.sendcmd('PASV' if ':' not in '{host}' else 'EPSV')\ntime.sleep(60)\n"
            ),
        )));
    }
    let decoded = |conn: &mut Conn| -> Vec<ctscope::model::Expectation> {
        dump_all(conn, Table::Expects)
            .iter()
            .filter_map(|m| match ctscope::decode::message(m) {
                Ok((
                    ctscope::decode::Message::Record {
                        record: Record::Expect(e),
                        ..
                    },
                    _,
                )) => Some(e),
                _ => None,
            })
            .collect()
    };
    let mut conn = Conn::open(&ns).unwrap();
    wait_for("two ftp expectations", &|| {
        decoded(&mut Conn::open(&ns).unwrap()).len() == 2
    });
    let all = decoded(&mut conn);
    let v6 = all
        .iter()
        .find(|e| e.tuple.family == Family::Ipv6)
        .unwrap()
        .clone();
    // A stale id must not delete (the tuple could now belong to a new expectation).
    let e = conn
        .delete_expect(v6.zone, &v6.tuple, Some(v6.id.wrapping_add(1)))
        .unwrap_err();
    assert!(
        matches!(e, Error::Netlink { errno, .. } if errno == libc::ENOENT),
        "{e}"
    );
    assert_eq!(decoded(&mut conn).len(), 2);
    conn.delete_expect(v6.zone, &v6.tuple, Some(v6.id)).unwrap();
    let left = decoded(&mut conn);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].tuple.family, Family::Ipv4);
    drop(clients);
    std::fs::remove_dir_all(&dir).ok();
}

/// The engine reads the namespace's count before a dump and reports flows received
/// against it: the first rows of a large table come with a gauge.
#[test]
fn a_dump_reports_progress_against_the_namespace_count() {
    use ctscope::engine::{Engine, EngineEvent, Live, Options};
    if !privileged("a_dump_reports_progress_against_the_namespace_count") {
        return;
    }
    let lab = Lab::new("nl", SUBNET);
    populate(&lab);
    let ns = Namespace::parse(&lab.srv);
    let opts = Options {
        follow: false,
        batch: 16,
        ..Options::default()
    };
    let (rx, _handle) = Engine::spawn(Box::new(Live::open(&ns, false).unwrap()), opts).unwrap();
    let progress: Vec<_> = rx
        .iter()
        .filter_map(|ev| match ev {
            EngineEvent::DumpProgress(p) => Some(p),
            _ => None,
        })
        .collect();
    let counts: Vec<u64> = progress.iter().map(|p| p.received).collect();
    // Before the first entry, then after each batch of 16 (42 flows: 16, 32, 42).
    assert_eq!(counts, [0, 16, 32, 42], "{progress:?}");
    assert!(
        progress.iter().all(|p| p.expected == Some(42)),
        "{progress:?}"
    );
}
