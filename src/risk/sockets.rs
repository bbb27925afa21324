//! Local listening sockets and local addresses of one network namespace, read from procfs.
//!
//! Owns parsing `net/tcp`, `net/tcp6`, `net/udp`, `net/udp6`, `net/fib_trie` and
//! `net/if_inet6` under a given proc root. The root is injected so the reader works for
//! the current namespace (`/proc/self`), another namespace (`/proc/<pid>` of a process in
//! it, or `/proc/thread-self` from a thread that entered it with setns) and fixtures in
//! tests. It must not enter namespaces itself (see `audit::netns`) nor judge what a listener
//! means (see `assess`).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use crate::model::tuple::proto;

/// One socket waiting for peers: TCP in LISTEN, or an unconnected bound UDP socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Listener {
    pub proto: u8,
    pub addr: IpAddr,
    pub port: u16,
}

/// The kernel default `net.ipv4.ip_local_port_range`.
pub const DEFAULT_EPHEMERAL: (u16, u16) = (32768, 60999);

/// Listeners and local addresses of one namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listeners {
    pub sockets: Vec<Listener>,
    /// Addresses configured on the namespace's interfaces (IPv4 `LOCAL` routes, IPv6
    /// `if_inet6`). Empty when unreadable: then every address counts as possibly local.
    pub local: Vec<IpAddr>,
    /// `ip_local_port_range`: where sockets a protocol opens for itself get their port
    /// (ftplib's active-mode listener, pyftpdlib's passive one bind port 0).
    pub ephemeral: (u16, u16),
}

impl Default for Listeners {
    fn default() -> Self {
        Listeners {
            sockets: Vec::new(),
            local: Vec::new(),
            ephemeral: DEFAULT_EPHEMERAL,
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
                    out.sockets.extend(parse_sockets(&text, p, v6));
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
        }
        if let Ok(t) = std::fs::read_to_string(net.join("if_inet6")) {
            out.local.extend(parse_if_inet6(&t));
        }
        out.sockets.sort_unstable();
        out.sockets.dedup();
        out.local.sort_unstable();
        out.local.dedup();
        Ok(out)
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
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let mut f = line.split_whitespace();
        let (Some(_sl), Some(local), Some(remote), Some(st)) =
            (f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let Some((addr, port)) = parse_hex_endpoint(local, v6) else {
            continue;
        };
        let Ok(st) = u8::from_str_radix(st, 16) else {
            continue;
        };
        let listening = if p == proto::TCP {
            st == TCP_LISTEN
        } else {
            parse_hex_endpoint(remote, v6).is_some_and(|(_, rport)| rport == 0)
        };
        if listening && port != 0 {
            out.push(Listener {
                proto: p,
                addr,
                port,
            });
        }
    }
    out
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
        IpAddr::V6(Ipv6Addr::from(bytes))
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
                port: 3306
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
    }

    #[test]
    fn port_range_parses() {
        assert_eq!(parse_port_range("32768\t60999\n"), Some((32768, 60999)));
        assert_eq!(parse_port_range("9 1"), None);
        assert_eq!(parse_port_range(""), None);
    }
}
