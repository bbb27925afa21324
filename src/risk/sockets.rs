//! Local sockets, their owning processes, and the local addresses and networks of one
//! network namespace, read from procfs.
//!
//! Owns parsing `net/tcp`, `net/tcp6`, `net/udp`, `net/udp6`, `net/fib_trie` and
//! `net/if_inet6` under a given proc root, and mapping a socket's inode to the processes
//! holding it (`/proc/PID/fd/* → socket:[INODE]`). The root is injected so the reader works
//! for the current namespace (`/proc/self`), another namespace (`/proc/<pid>` of a process in
//! it, or `/proc/thread-self` from a thread that entered it with setns) and fixtures in
//! tests. Socket inodes are unique across namespaces, so owners are found under the
//! machine's `/proc` whatever namespace the socket lives in. It must not enter namespaces
//! itself (see `netlink::netns`) nor judge what a listener means (see `assess`).

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::model::tuple::proto;

/// One socket waiting for peers: TCP in LISTEN, or an unconnected bound UDP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Listener {
    pub proto: u8,
    pub addr: IpAddr,
    pub port: u16,
    /// The socket's inode (`0` when unknown): the key to its owning processes.
    pub inode: u64,
}

/// One connected socket (TCP in any state but LISTEN, UDP with a remote port): what a
/// master connection's local end looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Conn {
    pub proto: u8,
    pub local: IpAddr,
    pub lport: u16,
    pub remote: IpAddr,
    pub rport: u16,
    pub inode: u64,
}

/// A process holding a socket: its pid and `comm`, kept exactly as the kernel gives it
/// (front ends escape it before it reaches a terminal).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner {
    pub pid: u32,
    pub name: String,
}

/// Socket inode → the processes holding it.
pub type OwnerMap = HashMap<u64, Vec<Owner>>;

/// The kernel default `net.ipv4.ip_local_port_range`.
pub const DEFAULT_EPHEMERAL: (u16, u16) = (32768, 60999);

/// Listeners, connected sockets and local addresses of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listeners {
    pub sockets: Vec<Listener>,
    /// Connected sockets: where the local end of a master connection is found.
    pub conns: Vec<Conn>,
    /// Addresses configured on the namespace's interfaces (IPv4 `LOCAL` routes, IPv6
    /// `if_inet6`). Empty when unreadable: then every address counts as possibly local.
    pub local: Vec<IpAddr>,
    /// Directly connected IPv4 networks (`link UNICAST` routes of `fib_trie`), for the
    /// table's `iface` level (a broadcast reply from any host of the interface's network).
    pub networks: Vec<(Ipv4Addr, u8)>,
    /// `ip_local_port_range`: where sockets a protocol opens for itself get their port
    /// (ftplib's active-mode listener, pyftpdlib's passive one bind port 0).
    pub ephemeral: (u16, u16),
    /// Where to look for socket owners (`/proc` of the machine); `None` leaves owners
    /// unknown unless given with `with_owners`.
    pub owner_root: Option<PathBuf>,
    /// Owners of this snapshot's sockets, read on first need (one pass over
    /// `/proc/*/fd`), so a table without RELATED traffic toward a listener costs nothing.
    pub owner_cache: OwnerCache,
}

/// The lazily read owners of a snapshot (see `Listeners::owners`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OwnerCache(OnceLock<Option<OwnerMap>>);

impl Default for Listeners {
    fn default() -> Self {
        Listeners {
            sockets: Vec::new(),
            conns: Vec::new(),
            local: Vec::new(),
            networks: Vec::new(),
            ephemeral: DEFAULT_EPHEMERAL,
            owner_root: None,
            owner_cache: OwnerCache::default(),
        }
    }
}

/// TCP_LISTEN in the `st` column.
const TCP_LISTEN: u8 = 0x0a;

impl Listeners {
    /// Read `<proc_root>/net/{tcp,tcp6,udp,udp6,fib_trie,if_inet6}`. Files that are
    /// missing (IPv6 disabled) are skipped; fails only when none of the socket tables
    /// could be read.
    pub fn read(proc_root: &Path) -> std::io::Result<Listeners> {
        let net = proc_root.join("net");
        let mut out = Listeners::default();
        let mut read_any = None;
        for (file, p, v6) in [
            ("tcp", proto::TCP, false),
            ("tcp6", proto::TCP, true),
            ("udp", proto::UDP, false),
            ("udp6", proto::UDP, true),
        ] {
            match std::fs::read_to_string(net.join(file)) {
                Ok(text) => {
                    let (l, c) = parse_table(&text, p, v6);
                    out.sockets.extend(l);
                    out.conns.extend(c);
                    read_any = Some(Ok(()));
                }
                Err(e) => {
                    if read_any.is_none() {
                        read_any = Some(Err(e));
                    }
                }
            }
        }
        if let Some(Err(e)) = read_any {
            return Err(e);
        }
        if let Ok(t) = std::fs::read_to_string(net.join("fib_trie")) {
            out.local.extend(parse_fib_trie_local(&t));
            out.networks = parse_fib_trie_networks(&t);
        }
        if let Ok(t) = std::fs::read_to_string(net.join("if_inet6")) {
            out.local.extend(parse_if_inet6(&t));
        }
        out.sockets.sort_unstable();
        out.sockets.dedup();
        out.conns.sort_unstable();
        out.conns.dedup();
        out.local.sort_unstable();
        out.local.dedup();
        Ok(out)
    }

    /// Resolve owners under `root` (normally `/proc`) when first needed.
    pub fn with_owner_root(mut self, root: impl Into<PathBuf>) -> Listeners {
        self.owner_root = Some(root.into());
        self.owner_cache = OwnerCache::default();
        self
    }

    /// Use these owners instead of reading procfs (fixtures).
    pub fn with_owners(mut self, owners: OwnerMap) -> Listeners {
        self.owner_cache = OwnerCache(OnceLock::from(Some(owners)));
        self
    }

    /// The processes holding socket `inode`; `None` when that cannot be known (no owner
    /// root, procfs unreadable, or no process found: another user's process without
    /// the privilege to read its fds).
    pub fn owners(&self, inode: u64) -> Option<&[Owner]> {
        if inode == 0 {
            return None;
        }
        let map = self.owner_cache.0.get_or_init(|| {
            let root = self.owner_root.as_deref()?;
            let wanted: HashSet<u64> = self
                .sockets
                .iter()
                .map(|l| l.inode)
                .chain(self.conns.iter().map(|c| c.inode))
                .filter(|i| *i != 0)
                .collect();
            read_owners(root, &wanted).ok()
        });
        map.as_ref()?
            .get(&inode)
            .map(Vec::as_slice)
            .filter(|o| !o.is_empty())
    }

    /// The socket holding the local end of a connection `local` ↔ `remote` over
    /// `proto`: a connected socket with exactly these ends, or (UDP) an unconnected socket
    /// bound to the local end, which sends and receives for every peer.
    pub fn socket_of(&self, proto: u8, local: (IpAddr, u16), remote: (IpAddr, u16)) -> Option<u64> {
        let (la, lp) = (local.0.to_canonical(), local.1);
        let (ra, rp) = (remote.0.to_canonical(), remote.1);
        if let Some(c) = self.conns.iter().find(|c| {
            c.proto == proto
                && c.lport == lp
                && c.rport == rp
                && c.remote == ra
                && (c.local == la || c.local.is_unspecified())
        }) {
            return Some(c.inode);
        }
        if proto != proto::UDP {
            return None;
        }
        self.sockets
            .iter()
            .find(|l| l.proto == proto && l.port == lp && (l.addr == la || l.addr.is_unspecified()))
            .map(|l| l.inode)
    }

    /// Whether `a` and `b` are in one directly connected IPv4 network; `None` when the
    /// networks are unknown (not read, or IPv6).
    pub fn same_network(&self, a: IpAddr, b: IpAddr) -> Option<bool> {
        let (IpAddr::V4(a), IpAddr::V4(b)) = (a.to_canonical(), b.to_canonical()) else {
            return None;
        };
        if self.networks.is_empty() {
            return None;
        }
        Some(self.networks.iter().any(|(net, len)| {
            let mask = u32::MAX.checked_shl(32 - u32::from(*len)).unwrap_or(0);
            let n = u32::from(*net) & mask;
            u32::from(a) & mask == n && u32::from(b) & mask == n
        }))
    }

    /// Set the ephemeral port range (from `/proc/sys/net/ipv4/ip_local_port_range` read
    /// inside the namespace).
    pub fn with_ephemeral(mut self, range: (u16, u16)) -> Listeners {
        self.ephemeral = range;
        self
    }

    pub fn is_ephemeral(&self, port: u16) -> bool {
        (self.ephemeral.0..=self.ephemeral.1).contains(&port)
    }

    /// Whether `a` is an address of this namespace (unknown counts as yes).
    pub fn is_local(&self, a: IpAddr) -> bool {
        self.local.is_empty() || self.local.contains(&a)
    }

    /// A socket that a connection to `dst:port` over `proto` would reach: bound to `dst`
    /// itself, or to the wildcard address while `dst` is local (an IPv6 wildcard also
    /// takes IPv4 unless the socket is v6only, which procfs does not show). `dst` is
    /// `None` when the expectation's destination is a wildcard.
    pub fn find(&self, proto: u8, dst: Option<IpAddr>, port: u16) -> Option<&Listener> {
        self.sockets.iter().find(|l| {
            l.proto == proto
                && l.port == port
                && match dst {
                    None => true,
                    Some(d) => {
                        l.addr == d
                            || (l.addr.is_unspecified()
                                && (d.is_ipv4() || l.addr.is_ipv6())
                                && self.is_local(d))
                    }
                }
        })
    }
}

/// Parse `ip_local_port_range` ("32768\t60999").
pub fn parse_port_range(text: &str) -> Option<(u16, u16)> {
    let mut it = text.split_whitespace().map(|s| s.parse::<u16>());
    match (it.next(), it.next()) {
        (Some(Ok(a)), Some(Ok(b))) if a <= b => Some((a, b)),
        _ => None,
    }
}

/// Parse one of `/proc/net/{tcp,tcp6,udp,udp6}`: TCP sockets in LISTEN, UDP sockets
/// with no remote port (bound, unconnected). Malformed lines are skipped.
pub fn parse_sockets(text: &str, p: u8, v6: bool) -> Vec<Listener> {
    parse_table(text, p, v6).0
}

/// Parse one of `/proc/net/{tcp,tcp6,udp,udp6}` into listeners and connected sockets,
/// with their inodes (the tenth column). IPv4-mapped IPv6 addresses (a dual-stack socket
/// talking IPv4) are given as IPv4, as conntrack shows them. Malformed lines are skipped.
pub fn parse_table(text: &str, p: u8, v6: bool) -> (Vec<Listener>, Vec<Conn>) {
    let (mut listeners, mut conns) = (Vec::new(), Vec::new());
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().take(10).collect();
        let (Some(local), Some(remote), Some(st)) = (f.get(1), f.get(2), f.get(3)) else {
            continue;
        };
        let Some((addr, port)) = parse_hex_endpoint(local, v6) else {
            continue;
        };
        let Some((raddr, rport)) = parse_hex_endpoint(remote, v6) else {
            continue;
        };
        let Ok(st) = u8::from_str_radix(st, 16) else {
            continue;
        };
        let inode = f.get(9).and_then(|i| i.parse::<u64>().ok()).unwrap_or(0);
        let listening = if p == proto::TCP {
            st == TCP_LISTEN
        } else {
            rport == 0
        };
        if port == 0 {
            continue;
        }
        if listening {
            listeners.push(Listener {
                proto: p,
                addr,
                port,
                inode,
            });
        } else if rport != 0 {
            conns.push(Conn {
                proto: p,
                local: addr,
                lport: port,
                remote: raddr,
                rport,
                inode,
            });
        }
    }
    (listeners, conns)
}

/// Owners of the socket inodes in `wanted`: every `/proc/PID/fd/*` under `root` that links
/// to `socket:[INODE]`, with the process's `comm`. Processes that vanish or whose fds
/// cannot be read are skipped; fails only when `root` itself cannot be listed.
pub fn read_owners(root: &Path, wanted: &HashSet<u64>) -> std::io::Result<OwnerMap> {
    let mut out = OwnerMap::new();
    if wanted.is_empty() {
        return Ok(out);
    }
    for ent in std::fs::read_dir(root)?.flatten() {
        let name = ent.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(ent.path().join("fd")) else {
            continue;
        };
        let mut comm: Option<String> = None;
        for fd in fds.flatten() {
            let Ok(target) = std::fs::read_link(fd.path()) else {
                continue;
            };
            let Some(inode) = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok())
            else {
                continue;
            };
            if !wanted.contains(&inode) {
                continue;
            }
            let name = comm
                .get_or_insert_with(|| {
                    std::fs::read(ent.path().join("comm"))
                        .map(|b| {
                            let t = String::from_utf8_lossy(&b).into_owned();
                            t.strip_suffix('\n').map(str::to_string).unwrap_or(t)
                        })
                        .unwrap_or_default()
                })
                .clone();
            let owners = out.entry(inode).or_default();
            if !owners.iter().any(|o| o.pid == pid) {
                owners.push(Owner { pid, name });
            }
        }
    }
    for v in out.values_mut() {
        v.sort_unstable();
    }
    Ok(out)
}

/// `0100007F:0CEA` → 127.0.0.1:3306. The kernel prints each 32-bit word of the
/// network-order address with `%08X` in host order, so each word is converted back with
/// the native byte order.
fn parse_hex_endpoint(s: &str, v6: bool) -> Option<(IpAddr, u16)> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let words = if v6 { 4 } else { 1 };
    if a.len() != words * 8 {
        return None;
    }
    let mut bytes = [0u8; 16];
    for i in 0..words {
        let w = u32::from_str_radix(a.get(i * 8..i * 8 + 8)?, 16).ok()?;
        bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
    }
    let ip = if v6 {
        IpAddr::V6(Ipv6Addr::from(bytes)).to_canonical()
    } else {
        IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
    };
    Some((ip, port))
}

/// IPv4 addresses with a `/32 host LOCAL` leaf in `/proc/net/fib_trie`.
pub fn parse_fib_trie_local(text: &str) -> Vec<IpAddr> {
    let mut out = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("|-- ") {
            last = rest.trim().parse().ok();
        } else if t.starts_with("/32 host LOCAL") {
            if let Some(a) = last {
                out.push(IpAddr::V4(a));
            }
        }
    }
    out
}

/// Directly connected IPv4 networks in `/proc/net/fib_trie`: a leaf followed by a
/// `/N link UNICAST` route (`|-- 10.213.5.0` then `/24 link UNICAST`).
pub fn parse_fib_trie_networks(text: &str) -> Vec<(Ipv4Addr, u8)> {
    let mut out = Vec::new();
    let mut last: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("|-- ") {
            last = rest.trim().parse().ok();
        } else if let Some(rest) = t.strip_prefix('/') {
            let mut w = rest.split_whitespace();
            if let (Some(len), Some("link"), Some("UNICAST"), Some(a)) =
                (w.next(), w.next(), w.next(), last)
            {
                if let Ok(len) = len.parse::<u8>() {
                    if len <= 32 && !out.contains(&(a, len)) {
                        out.push((a, len));
                    }
                }
            }
        }
    }
    out
}

/// Addresses in `/proc/net/if_inet6` (32 hex digits, network order, per line).
pub fn parse_if_inet6(text: &str) -> Vec<IpAddr> {
    text.lines()
        .filter_map(|l| {
            let hex = l.split_whitespace().next()?;
            if hex.len() != 32 {
                return None;
            }
            let mut b = [0u8; 16];
            for (i, byte) in b.iter_mut().enumerate() {
                *byte = u8::from_str_radix(hex.get(i * 2..i * 2 + 2)?, 16).ok()?;
            }
            Some(IpAddr::V6(Ipv6Addr::from(b)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    // Written in the kernel's /proc/net format as a little-endian host prints it: a
    // listener on 10.213.5.2:3306 and one established connection.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0205D50A:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0205D50A:9C40 0105D50A:0015 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0000000000000000 20 4 30 10 -1
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1 0000000000000000 100 0 0 10 0
";
    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  1: 00000000:0045 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4 2 0000000000000000 0
  2: 0205D50A:A000 0105D50A:0045 01 00000000:00000000 00:00000000 00000000     0        0 5 2 0000000000000000 0
";
    const FIB: &str = "Main:
  +-- 0.0.0.0/0 3 0 5
     +-- 10.213.5.0/24 2 0 2
        |-- 10.213.5.0
           /24 link UNICAST
        |-- 10.213.5.2
           /32 host LOCAL
        |-- 10.213.5.255
           /32 link BROADCAST
";
    const IF6: &str = "fd000213000500000000000000000002 02 40 00 80      ct1\n";

    #[test]
    #[cfg(target_endian = "little")]
    fn parses_listeners_and_skips_connected_sockets() {
        let l = parse_sockets(TCP, proto::TCP, false);
        assert_eq!(
            l,
            vec![Listener {
                proto: proto::TCP,
                addr: "10.213.5.2".parse().unwrap(),
                port: 3306,
                inode: 1,
            }]
        );
        let (_, conns) = parse_table(TCP, proto::TCP, false);
        assert_eq!(
            conns,
            vec![Conn {
                proto: proto::TCP,
                local: "10.213.5.2".parse().unwrap(),
                lport: 40000,
                remote: "10.213.5.1".parse().unwrap(),
                rport: 21,
                inode: 2,
            }]
        );
        let l6 = parse_sockets(TCP6, proto::TCP, true);
        assert_eq!(l6[0].addr, "::".parse::<IpAddr>().unwrap());
        assert_eq!(l6[0].port, 22);
        let u = parse_sockets(UDP, proto::UDP, false);
        assert_eq!(u.len(), 1);
        assert_eq!(u[0].port, 69);
        assert!(
            parse_sockets("header\n garbage line\n 0: zz:zz 0 0A", proto::TCP, false).is_empty()
        );
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn reads_a_proc_root_and_matches_wildcards_only_for_local_addresses() {
        let root = std::env::temp_dir().join(format!("ctscope-rk-proc-{}", std::process::id()));
        std::fs::create_dir_all(root.join("net")).unwrap();
        for (f, t) in [
            ("tcp", TCP),
            ("tcp6", TCP6),
            ("udp", UDP),
            ("fib_trie", FIB),
            ("if_inet6", IF6),
        ] {
            std::fs::write(root.join("net").join(f), t).unwrap();
        }
        let l = Listeners::read(&root).unwrap();
        std::fs::remove_dir_all(&root).unwrap();
        let me: IpAddr = "10.213.5.2".parse().unwrap();
        let other: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(l.local.contains(&me));
        assert!(l.local.contains(&"fd00:213:5::2".parse().unwrap()));
        assert!(l.find(proto::TCP, Some(me), 3306).is_some());
        assert!(l.find(proto::TCP, Some(me), 3307).is_none());
        // [::]:22 takes IPv4 too, but only for addresses of this namespace.
        assert!(l.find(proto::TCP, Some(me), 22).is_some());
        assert!(l.find(proto::TCP, Some(other), 22).is_none());
        assert!(l.find(proto::UDP, Some(me), 69).is_some());
        assert!(l.find(proto::UDP, None, 69).is_some());
        assert!(Listeners::read(Path::new("/nonexistent-ctscope")).is_err());
        assert_eq!(l.networks, vec![("10.213.5.0".parse().unwrap(), 24)]);
        assert_eq!(
            l.same_network(me, "10.213.5.77".parse().unwrap()),
            Some(true)
        );
        assert_eq!(l.same_network(me, other), Some(false));
        // The master's local end: the connected socket, or for UDP the bound one.
        let srv: IpAddr = "10.213.5.1".parse().unwrap();
        assert_eq!(l.socket_of(proto::TCP, (me, 40000), (srv, 21)), Some(2));
        assert_eq!(l.socket_of(proto::TCP, (me, 40001), (srv, 21)), None);
        assert_eq!(l.socket_of(proto::UDP, (me, 69), (srv, 5000)), Some(4));
        // Owners are unknown without a root, and come from fixtures when given.
        assert_eq!(l.owners(2), None);
        let mut owners = OwnerMap::new();
        owners.insert(
            2,
            vec![Owner {
                pid: 7,
                name: "ftp".into(),
            }],
        );
        let l = l.with_owners(owners);
        assert_eq!(l.owners(2).unwrap()[0].pid, 7);
        assert_eq!(l.owners(1), None);
    }

    #[test]
    fn owners_come_from_proc_fd_links() {
        // This process's own listening socket is found under the real /proc.
        let s = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = s.local_addr().unwrap().port();
        let l = Listeners::read(Path::new("/proc/thread-self"))
            .unwrap()
            .with_owner_root("/proc");
        let me = l
            .sockets
            .iter()
            .find(|x| x.port == port && x.proto == proto::TCP)
            .expect("own listener");
        let owners = l.owners(me.inode).expect("own socket's owner");
        assert!(owners.iter().any(|o| o.pid == std::process::id()));
    }

    #[test]
    fn v4_mapped_addresses_read_as_ipv4() {
        let line = "  sl local remote st\n   0: 0000000000000000FFFF00000205D50A:9C40 0000000000000000FFFF00000105D50A:0015 01 0:0 0:0 0 0 0 9 1\n";
        let (_, c) = parse_table(line, proto::TCP, true);
        assert_eq!(c[0].local, "10.213.5.2".parse::<IpAddr>().unwrap());
        assert_eq!(c[0].inode, 9);
    }

    #[test]
    fn port_range_parses() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_port_range("9 1"), None);
        assert_eq!(parse_port_range(""), None);
    }
}
