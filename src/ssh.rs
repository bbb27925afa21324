//! Finding the admin's own SSH session without trusting the environment.
//!
//! `sudo` resets the environment by default (`Defaults env_reset` in Debian's sudoers), so
//! `SSH_CONNECTION` is gone exactly when an admin runs `sudo ctscope flush`. What survives
//! is the process tree: the shell's ancestors include the sshd process serving this
//! session, and that process holds the session's TCP socket. Its socket inodes
//! (`/proc/PID/fd` → `socket:[INODE]`) found in `/proc/PID/net/tcp{,6}` give the 4-tuple.
//! When no session can be found, the sshd listening sockets of the target namespace are
//! reported instead, so a caller can spare every flow to them.
//!
//! Reads procfs only; it never touches the conntrack table and never decides anything
//! (see `actions::Context`).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::actions::SshSession;
use crate::model::tuple::proto;
use crate::model::Flow;
use crate::netlink::{netns, Namespace};

/// How far up the process tree to look (a shell inside tmux inside sudo stays far below).
const MAX_DEPTH: usize = 64;
/// `TCP_ESTABLISHED` and `TCP_LISTEN` as `/proc/net/tcp` prints them (`st`).
const ESTABLISHED: u8 = 0x01;
const LISTEN: u8 = 0x0A;

/// A local TCP socket sshd listens on; `addr` `None` is the wildcard (0.0.0.0 or ::).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    pub addr: Option<IpAddr>,
    pub port: u16,
}

impl Listener {
    /// Whether `f` goes to this listener: its original destination, or the source of its
    /// reply (a DNAT in front of sshd).
    pub fn matches(&self, f: &Flow) -> bool {
        if f.orig.proto != proto::TCP {
            return false;
        }
        let hit = |ip: IpAddr, port: u16| {
            port == self.port && self.addr.is_none_or(|a| a == ip.to_canonical())
        };
        let reply = f.reply();
        hit(f.orig.dst_ip(), f.orig.dport) || hit(reply.src_ip(), reply.sport)
    }
}

/// One row of `/proc/net/tcp{,6}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Socket {
    pub local: (IpAddr, u16),
    pub remote: (IpAddr, u16),
    pub state: u8,
    pub inode: u64,
}

/// Parse the text of `/proc/net/tcp` or `/proc/net/tcp6`; malformed rows are skipped.
pub fn parse_tcp(text: &str) -> Vec<Socket> {
    text.lines().skip(1).filter_map(parse_row).collect()
}

fn parse_row(line: &str) -> Option<Socket> {
    let mut w = line.split_whitespace();
    let _slot = w.next()?;
    let local = endpoint(w.next()?)?;
    let remote = endpoint(w.next()?)?;
    let state = u8::from_str_radix(w.next()?, 16).ok()?;
    // tx:rx queue, tr:when, retrnsmt, uid, timeout, then the inode.
    let inode = w.nth(5)?.parse().ok()?;
    Some(Socket {
        local,
        remote,
        state,
        inode,
    })
}

/// `0100007F:0016` → 127.0.0.1:22. The kernel prints each 32-bit word of the address as
/// it lies in memory (`%08X` of a `__be32` read as a host integer), the port as a number.
fn endpoint(s: &str) -> Option<(IpAddr, u16)> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        let v = u32::from_str_radix(a.get(i * 8..i * 8 + 8)?, 16).ok()?;
        Some(v.to_ne_bytes())
    };
    let ip = match a.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some((ip, port))
}

/// The parent pid from the text of `/proc/PID/stat` (the field after the command name,
/// which may itself hold spaces and parentheses: parse after the last `)`).
pub fn parent_of(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// Whether a process name is sshd's: `sshd`, or OpenSSH 9.8+'s per-session
/// `sshd-session`.
pub fn is_sshd(comm: &str) -> bool {
    let c = comm.trim();
    c == "sshd" || c == "sshd-session" || c.starts_with("sshd-")
}

/// Socket inodes held open by `pid`, in file-descriptor order.
fn socket_inodes(proc: &Path, pid: u32) -> Vec<u64> {
    let Ok(dir) = std::fs::read_dir(proc.join(pid.to_string()).join("fd")) else {
        return Vec::new();
    };
    let mut fds: Vec<(u32, u64)> = dir
        .flatten()
        .filter_map(|e| {
            let fd = e.file_name().to_str()?.parse().ok()?;
            let l = std::fs::read_link(e.path()).ok()?;
            let l = l.to_string_lossy().into_owned();
            Some((
                fd,
                l.strip_prefix("socket:[")?
                    .strip_suffix(']')?
                    .parse()
                    .ok()?,
            ))
        })
        .collect();
    fds.sort_unstable();
    fds.into_iter().map(|(_, inode)| inode).collect()
}

fn tcp_of(dir: &Path) -> Vec<Socket> {
    ["tcp", "tcp6"]
        .iter()
        .filter_map(|f| std::fs::read_to_string(dir.join(f)).ok())
        .flat_map(|t| parse_tcp(&t))
        .collect()
}

/// The SSH session this process runs in, from the process tree under `proc` (normally
/// `/proc`), starting at `pid`'s parent: the nearest sshd ancestor holding an established
/// TCP socket. Needs to read that process's `fd` directory, i.e. root (as under sudo).
pub fn session_from(proc: &Path, pid: u32) -> Option<SshSession> {
    let mut cur = pid;
    for _ in 0..MAX_DEPTH {
        let stat = std::fs::read_to_string(proc.join(cur.to_string()).join("stat")).ok()?;
        let parent = parent_of(&stat)?;
        if parent <= 1 {
            return None;
        }
        cur = parent;
        let comm =
            std::fs::read_to_string(proc.join(cur.to_string()).join("comm")).unwrap_or_default();
        if !is_sshd(&comm) {
            continue;
        }
        // The session's socket is the first one sshd holds (accepted before anything
        // else); a forwarded port's connections come later, on higher descriptors.
        let sockets = tcp_of(&proc.join(cur.to_string()).join("net"));
        let found = socket_inodes(proc, cur).into_iter().find_map(|inode| {
            sockets
                .iter()
                .find(|s| s.state == ESTABLISHED && s.inode == inode)
                .copied()
        });
        if let Some(s) = found {
            return Some(SshSession {
                client: s.remote.0.to_canonical(),
                client_port: s.remote.1,
                server: s.local.0.to_canonical(),
                server_port: s.local.1,
            });
        }
    }
    None
}

/// The SSH session of this process (see `session_from`).
pub fn session() -> Option<SshSession> {
    session_from(Path::new("/proc"), std::process::id())
}

/// The TCP sockets sshd processes listen on in namespace `ns`: the sockets listening
/// there whose inode an sshd process holds.
pub fn listeners(ns: &Namespace) -> Vec<Listener> {
    let proc = Path::new("/proc");
    let mut inodes = HashSet::new();
    if let Ok(dir) = std::fs::read_dir(proc) {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            if is_sshd(&comm) {
                inodes.extend(socket_inodes(proc, pid));
            }
        }
    }
    if inodes.is_empty() {
        return Vec::new();
    }
    // /proc/thread-self/net shows the namespace of the thread that reads it.
    let sockets =
        netns::run_in(ns, || Ok(tcp_of(Path::new("/proc/thread-self/net")))).unwrap_or_default();
    let mut out: Vec<Listener> = sockets
        .into_iter()
        .filter(|s| s.state == LISTEN && inodes.contains(&s.inode))
        .map(|s| Listener {
            addr: (!s.local.0.is_unspecified()).then(|| s.local.0.to_canonical()),
            port: s.local.1,
        })
        .collect();
    out.sort_by_key(|l| (l.port, l.addr));
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_net_tcp_rows_decode() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0\n\
   1: 0100D50A:0016 0200D50A:C350 01 00000000:00000000 02:000A7D6B 00000000     0        0 777 2 0000000000000000 20 4 30 10 -1\n\
   2: garbage\n";
        let s = parse_tcp(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].state, LISTEN);
        assert_eq!(s[0].local, ("0.0.0.0".parse().unwrap(), 22));
        assert_eq!(s[0].inode, 4242);
        assert_eq!(s[1].local, ("10.213.0.1".parse().unwrap(), 22));
        assert_eq!(s[1].remote, ("10.213.0.2".parse().unwrap(), 50000));
        assert_eq!(s[1].state, ESTABLISHED);
        let v6 = "h\n   0: 0000000000000000FFFF00000100D50A:0016 0000000000000000FFFF00000200D50A:C350 01 0:0 0:0 0 0 0 99 1\n";
        let s = parse_tcp(v6);
        assert_eq!(
            s[0].local.0.to_canonical(),
            "10.213.0.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(s[0].inode, 99);
    }

    #[test]
    fn parent_pid_survives_odd_command_names() {
        assert_eq!(parent_of("812 (sshd) S 1 812 812 0 -1"), Some(1));
        assert_eq!(parent_of("900 (a) b (c) R 812 900 0"), Some(812));
        assert_eq!(parent_of("garbage"), None);
        assert!(is_sshd("sshd\n") && is_sshd("sshd-session") && !is_sshd("bash"));
    }

    /// A fake /proc: shell 30 → sshd 20 (holding socket 777) → sshd 10 (listening).
    #[test]
    fn the_nearest_sshd_ancestor_with_an_established_socket_is_the_session() {
        let root = std::env::temp_dir().join(format!("ctscope-ssh-proc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        // 888: a connection sshd opened for a forwarded port (`ssh -L`), on a higher fd.
        let tcp = "h\n   0: 00000000:0016 00000000:0000 0A 0:0 0:0 0 0 0 4242 1\n   1: 0100D50A:0016 0200D50A:C350 01 0:0 0:0 0 0 0 777 1\n   2: 0100D50A:9C40 0900D50A:0CEA 01 0:0 0:0 0 0 0 888 1\n";
        for (pid, comm, ppid, sock) in [
            (30, "bash", 20, None),
            (20, "sshd", 10, Some(777)),
            (10, "sshd", 1, Some(4242)),
        ] {
            let d = root.join(pid.to_string());
            std::fs::create_dir_all(d.join("fd")).unwrap();
            std::fs::create_dir_all(d.join("net")).unwrap();
            std::fs::write(d.join("stat"), format!("{pid} ({comm}) S {ppid} 0 0")).unwrap();
            std::fs::write(d.join("comm"), format!("{comm}\n")).unwrap();
            std::fs::write(d.join("net/tcp"), tcp).unwrap();
            if let Some(i) = sock {
                std::os::unix::fs::symlink(format!("socket:[{i}]"), d.join("fd/3")).unwrap();
            }
            if pid == 20 {
                std::os::unix::fs::symlink("socket:[888]", d.join("fd/10")).unwrap();
                std::os::unix::fs::symlink("/dev/null", d.join("fd/0")).unwrap();
            }
        }
        // Our own process (40) is the shell's child.
        let d = root.join("40");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("stat"), "40 (ctscope) R 30 0 0").unwrap();
        let s = session_from(&root, 40).expect("session");
        assert_eq!(
            s,
            SshSession::parse("10.213.0.2 50000 10.213.0.1 22").unwrap()
        );
        // A process outside any SSH session finds none.
        std::fs::write(root.join("30/stat"), "30 (bash) S 1 0 0").unwrap();
        assert_eq!(session_from(&root, 40), None);
        std::fs::remove_dir_all(&root).ok();
    }
}
