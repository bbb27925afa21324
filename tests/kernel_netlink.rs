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
use std::time::{Duration, Instant};

use common::lab::{privileged, Lab};
use ctscope::model::tuple::{proto, Family, Tuple};
use ctscope::netlink::consts::*;
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
    let file = std::env::temp_dir().join(format!("ctscope-nl-burst-{}", std::process::id()));
    std::fs::write(&file, cmds).unwrap();
    lab.sh_ok(
        &lab.srv,
        &format!("conntrack -R {} 2>/dev/null", file.display()),
    );
    std::fs::remove_file(&file).ok();
    let mut overruns = 0;
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        match sub
            .recv(Duration::from_millis(100), 1000, &mut |_| n += 1)
            .unwrap()
        {
            Recv::Overrun => overruns += 1,
            Recv::Data(_) => {}
            Recv::Timeout => break,
        }
    }
    assert!(
        overruns >= 1,
        "received {n} of 300 events without an overrun"
    );
    assert!(n < 300);
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
        .delete_flow(0, &t, Some(id.wrapping_add(1)))
        .unwrap_err();
    assert!(
        matches!(e, Error::Netlink { errno, .. } if errno == libc::ENOENT),
        "{e}"
    );
    assert_eq!(conntrack_count(&lab, "-L"), 4);

    conn.delete_flow(0, &t, Some(id)).unwrap();
    let after = dump_all(&mut conn, Table::Flows);
    assert_eq!(after.len(), 3);
    assert!(after
        .iter()
        .all(|m| !(orig_sport(m) == Some(5002) && attr(m, &[CTA_ZONE]).is_none())));
    // The zone-7 twin is still there.
    assert_eq!(conntrack_count(&lab, "-L -p tcp --sport 5002"), 1);

    // Gone is gone: a second delete says ENOENT.
    let e = conn.delete_flow(0, &t, Some(id)).unwrap_err();
    assert!(
        matches!(e, Error::Netlink { errno, .. } if errno == libc::ENOENT),
        "{e}"
    );

    // get: present flow answers, absent one is Ok(false).
    let mut got = Vec::new();
    assert!(conn.get_flow(7, &t, &mut |m| got.push(m.to_vec())).unwrap());
    assert_eq!(got.len(), 1);
    assert_eq!(attr(&got[0], &[CTA_ZONE]).map(be16), Some(7));
    assert!(!conn.get_flow(0, &t, &mut |_| {}).unwrap());
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
        (dump, flush)
    })
    .join()
    .unwrap();
    for e in [err.0, err.1] {
        assert!(e.is_permission(), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("sudo") && text.contains("setcap cap_net_admin+ep"),
            "{text}"
        );
    }
}
