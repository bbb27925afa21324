//! Dev tool: capture raw ctnetlink messages from the running kernel into a fixture file.
//!
//! It owns nothing in the library: it talks to the kernel with netlink-sys directly so
//! fixtures do not depend on the code they test. Run it inside a namespace with
//! `ip netns exec NS`; `tests/fixtures/capture.sh` drives it. The output file is the raw
//! netlink messages back to back, exactly as received (host byte order headers).
//!
//! ```text
//! capture_fixture dump     OUT [--first N] [--done] [--status-bit B]   # conntrack -L
//! capture_fixture dump-exp OUT [--first N] [--done]   # conntrack -L expect
//! capture_fixture events   OUT --groups 1,2,3 --count N [--timeout SECS]   # conntrack -E
//! capture_fixture get-missing OUT                     # a GET of an absent tuple → NLMSG_ERROR
//! ```
//! `events` creates `OUT.ready` once subscribed, so a script knows when to act.
//! `--status-bit B` keeps only flows whose `CTA_STATUS` has bit B (0: `IPS_EXPECTED`), so a
//! RELATED flow can be picked out of a table that also holds its master.

use netlink_sys::{constants::NETLINK_NETFILTER, Socket};
use std::io::Write;
use std::os::fd::AsRawFd;

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

fn main() {
    if let Err(e) = run() {
        eprintln!("capture_fixture: {e}");
        std::process::exit(1);
    }
}

struct Opts {
    first: usize,
    done: bool,
    groups: Vec<u32>,
    count: usize,
    timeout_ms: i32,
    status_bit: Option<u32>,
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(mode), Some(out)) = (args.first(), args.get(1)) else {
        return Err("usage: capture_fixture dump|dump-exp|events|get-missing OUT [options]".into());
    };
    let mut o = Opts {
        first: usize::MAX,
        done: false,
        groups: vec![],
        count: 1,
        timeout_ms: 10_000,
        status_bit: None,
    };
    let mut it = args[2..].iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--first" => o.first = val()?.parse().map_err(|e| format!("--first: {e}"))?,
            "--done" => o.done = true,
            "--status-bit" => {
                o.status_bit = Some(val()?.parse().map_err(|e| format!("--status-bit: {e}"))?)
            }
            "--groups" => {
                o.groups = val()?
                    .split(',')
                    .map(|g| g.parse().map_err(|e| format!("--groups: {e}")))
                    .collect::<Result<_, _>>()?
            }
            "--count" => o.count = val()?.parse().map_err(|e| format!("--count: {e}"))?,
            "--timeout" => {
                let s: f64 = val()?.parse().map_err(|e| format!("--timeout: {e}"))?;
                o.timeout_ms = (s * 1000.0) as i32;
            }
            other => return Err(format!("unknown option '{other}'")),
        }
    }
    let mut sock = Socket::new(NETLINK_NETFILTER).map_err(|e| format!("socket: {e}"))?;
    sock.bind_auto().map_err(|e| format!("bind: {e}"))?;
    let mut out_buf = Vec::new();
    match mode.as_str() {
        "dump" | "dump-exp" => {
            let subsys = if mode == "dump" { 1u16 } else { 2 };
            // IPCTNL_MSG_CT_GET / IPCTNL_MSG_EXP_GET, AF_UNSPEC: every family.
            send(&sock, (subsys << 8) | 1, NLM_F_REQUEST | NLM_F_DUMP, 0, &[])?;
            let mut n = 0;
            recv_loop(&sock, o.timeout_ms, |m, ty| {
                if ty == NLMSG_DONE || ty == NLMSG_ERROR {
                    if o.done {
                        out_buf.extend_from_slice(m);
                    }
                    return false;
                }
                if let Some(bit) = o.status_bit {
                    if status(m).is_none_or(|s| s & (1 << bit) == 0) {
                        return true;
                    }
                }
                if n < o.first {
                    out_buf.extend_from_slice(m);
                }
                n += 1;
                true
            })?;
        }
        "events" => {
            for g in &o.groups {
                sock.add_membership(*g)
                    .map_err(|e| format!("join group {g}: {e}"))?;
            }
            std::fs::write(format!("{out}.ready"), b"").map_err(|e| e.to_string())?;
            let mut n = 0;
            recv_loop(&sock, o.timeout_ms, |m, _| {
                out_buf.extend_from_slice(m);
                n += 1;
                n < o.count
            })?;
            if n < o.count {
                return Err(format!("timed out after {n} of {} events", o.count));
            }
        }
        "get-missing" => {
            // IPCTNL_MSG_CT_GET of 10.213.2.250:1 -> 10.213.2.251:2/tcp, which nobody created.
            let ip = nest(
                1,
                &[attr(1, &[10, 213, 2, 250]), attr(2, &[10, 213, 2, 251])].concat(),
            );
            let proto = nest(
                2,
                &[
                    attr(1, &[6]),
                    attr(2, &1u16.to_be_bytes()),
                    attr(3, &2u16.to_be_bytes()),
                ]
                .concat(),
            );
            let body = nest(1, &[ip, proto].concat());
            send(&sock, (1 << 8) | 1, NLM_F_REQUEST, 2, &body)?;
            recv_loop(&sock, o.timeout_ms, |m, _| {
                out_buf.extend_from_slice(m);
                false
            })?;
        }
        other => return Err(format!("unknown mode '{other}'")),
    }
    let mut f = std::fs::File::create(out).map_err(|e| format!("{out}: {e}"))?;
    f.write_all(&out_buf).map_err(|e| format!("{out}: {e}"))?;
    Ok(())
}

/// The top-level `CTA_STATUS` of a ctnetlink message, read without the library.
fn status(m: &[u8]) -> Option<u32> {
    let mut rest = m.get(20..)?;
    while rest.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & 0x3fff;
        if len < 4 || len > rest.len() {
            return None;
        }
        if kind == 3 && len == 8 {
            return Some(u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]));
        }
        rest = rest.get((len + 3) & !3..).unwrap_or(&[]);
    }
    None
}

fn attr(kind: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&((4 + payload.len()) as u16).to_ne_bytes());
    v.extend_from_slice(&kind.to_ne_bytes());
    v.extend_from_slice(payload);
    while v.len() % 4 != 0 {
        v.push(0);
    }
    v
}

fn nest(kind: u16, payload: &[u8]) -> Vec<u8> {
    attr(kind | 0x8000, payload)
}

fn send(sock: &Socket, ty: u16, flags: u16, family: u8, body: &[u8]) -> Result<(), String> {
    let len = 16 + 4 + body.len();
    let mut m = Vec::with_capacity(len);
    m.extend_from_slice(&(len as u32).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // portid: the kernel
    m.extend_from_slice(&[family, 0, 0, 0]); // nfgenmsg: family, NFNETLINK_V0, res_id
    m.extend_from_slice(body);
    sock.send(&m, 0).map_err(|e| format!("send: {e}"))?;
    Ok(())
}

/// Receive datagrams and hand each netlink message to `f` until it returns false.
fn recv_loop(
    sock: &Socket,
    timeout_ms: i32,
    mut f: impl FnMut(&[u8], u16) -> bool,
) -> Result<(), String> {
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    loop {
        let mut pfd = libc::pollfd {
            fd: sock.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        if r == 0 {
            return Ok(());
        }
        if r < 0 {
            return Err(format!("poll: {}", std::io::Error::last_os_error()));
        }
        buf.clear();
        let n = sock.recv(&mut buf, 0).map_err(|e| format!("recv: {e}"))?;
        let mut rest = &buf[..n.min(buf.len())];
        while rest.len() >= 16 {
            let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let ty = u16::from_ne_bytes([rest[4], rest[5]]);
            if len < 16 || len > rest.len() {
                return Err("kernel sent a malformed message".into());
            }
            if !f(&rest[..len], ty) {
                return Ok(());
            }
            rest = &rest[((len + 3) & !3).min(rest.len())..];
        }
    }
}
