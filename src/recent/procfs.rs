//! xt_recent lists through procfs: `/proc/net/xt_recent/NAME` read and parsed, one address
//! removed (`echo -ADDR > NAME`) or the list flushed (`echo / > NAME`), as
//! `xt_recent(8)`'s "/proc/net/xt_recent/*" section documents.
//!
//! `/proc/net` shows the namespace of the thread that reads it, so callers run these
//! inside the namespace (`netlink::netns::run_in`). Names are checked before any path is
//! built: a list name is a file name, never a path. Only this module writes to procfs.

use std::io::{ErrorKind, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::RecentError;

/// Where the kernel exposes the lists of the reading thread's namespace. Not
/// `/proc/net/…`: that is a link to `/proc/self/net`, which shows the namespace of the
/// process's main thread, not of the thread that entered `--netns`.
pub const DIR: &str = "/proc/thread-self/net/xt_recent";

/// One address of a list, as the kernel prints it (times in jiffies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub addr: IpAddr,
    /// TTL of the last packet (`--rttl` compares it).
    pub ttl: u8,
    /// jiffies of the newest packet.
    pub last_seen: u64,
    /// jiffies of every recorded packet, in the kernel's ring order (at most
    /// `ip_pkt_list_tot`, 20 by default); its length is the hit count `--hitcount` sees.
    pub stamps: Vec<u64>,
}

/// One list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List {
    pub name: String,
    pub entries: Vec<Entry>,
}

/// Refuse a list name that is not a plain file name in the xt_recent directory.
pub fn check_name(name: &str) -> Result<(), RecentError> {
    // xt_recent names are at most XT_RECENT_NAME_LEN-1 = 199 bytes.
    if name.is_empty()
        || name.contains('/')
        || name.contains("..")
        || name.contains('\0')
        || name.len() > 199
    {
        return Err(RecentError::BadName(name.to_owned()));
    }
    Ok(())
}

/// Parse one list file. Lines the kernel did not write (truncated by a concurrent
/// change, or garbage) are skipped, never fatal.
///
/// The kernel's format (net/netfilter/xt_recent.c, `recent_seq_show`):
/// `src=ADDR ttl: T last_seen: J oldest_pkt: I J1, J2, …`.
pub fn parse(name: &str, text: &str) -> List {
    List {
        name: name.to_owned(),
        entries: text.lines().filter_map(parse_line).collect(),
    }
}

fn parse_line(line: &str) -> Option<Entry> {
    let rest = line.trim().strip_prefix("src=")?;
    let (addr, rest) = rest.split_once(' ')?;
    let addr: IpAddr = addr.parse().ok()?;
    let rest = rest.trim_start().strip_prefix("ttl:")?.trim_start();
    let (ttl, rest) = rest.split_once(' ')?;
    let ttl = ttl.parse().ok()?;
    let rest = rest.trim_start().strip_prefix("last_seen:")?.trim_start();
    let (last_seen, rest) = rest.split_once(' ')?;
    let last_seen = last_seen.parse().ok()?;
    let rest = rest.trim_start().strip_prefix("oldest_pkt:")?.trim_start();
    let mut words = rest.splitn(2, ' ');
    words.next()?.parse::<u32>().ok()?;
    let stamps = words
        .next()
        .unwrap_or("")
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    Some(Entry {
        addr: addr.to_canonical(),
        ttl,
        last_seen,
        stamps,
    })
}

/// Every list of the calling thread's namespace, by name. A list removed between the
/// directory read and its own read (its last rule deleted) is left out, not an error.
/// `Err(NoXtRecent)` when the directory does not exist (no xt_recent in this kernel, or
/// never loaded: the module creates it on load).
pub fn read_all() -> Result<Vec<List>, RecentError> {
    read_dir(Path::new(DIR))
}

/// `read_all` over any directory (tests point it at a temporary one).
pub fn read_dir(dir: &Path) -> Result<Vec<List>, RecentError> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == ErrorKind::NotFound => return Err(RecentError::NoXtRecent),
        Err(e) => return Err(RecentError::io(dir, e)),
    };
    let mut out = Vec::new();
    for ent in rd.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        match std::fs::read_to_string(ent.path()) {
            Ok(text) => out.push(parse(&name, &text)),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(RecentError::io(&ent.path(), e)),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

fn path_of(dir: &Path, name: &str) -> Result<PathBuf, RecentError> {
    check_name(name)?;
    Ok(dir.join(name))
}

/// Write one command to a list file; a missing file is `NoSuchList`.
fn command(dir: &Path, name: &str, cmd: &str) -> Result<(), RecentError> {
    let path = path_of(dir, name)?;
    let mut f = match std::fs::OpenOptions::new().write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(RecentError::NoSuchList(name.to_owned()))
        }
        Err(e) => return Err(RecentError::io(&path, e)),
    };
    f.write_all(cmd.as_bytes())
        .map_err(|e| RecentError::io(&path, e))
}

/// Remove `addr` from list `name` (`echo -ADDR > /proc/net/xt_recent/NAME`). The kernel
/// answers ENOENT when the address is not in the list; that is `NotInList`.
pub fn delete(dir: &Path, name: &str, addr: IpAddr) -> Result<(), RecentError> {
    match command(dir, name, &format!("-{addr}\n")) {
        Err(RecentError::Io { source, .. }) if source.raw_os_error() == Some(libc::ENOENT) => {
            Err(RecentError::NotInList {
                list: name.to_owned(),
                addr,
            })
        }
        other => other,
    }
}

/// Empty list `name` (`echo / > /proc/net/xt_recent/NAME`).
pub fn flush(dir: &Path, name: &str) -> Result<(), RecentError> {
    command(dir, name, "/\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines as Linux 6.18 prints them (`cat /proc/net/xt_recent/seenping` after pings).
    const SEENPING: &str = "src=10.213.7.2 ttl: 64 last_seen: 4295785130 oldest_pkt: 3 4295784880, 4295785005, 4295785130\n\
src=fd00:213:7::2 ttl: 255 last_seen: 4295785000 oldest_pkt: 1 4295785000\n";

    #[test]
    fn kernel_lines_parse() {
        let l = parse("seenping", SEENPING);
        assert_eq!(l.entries.len(), 2);
        let e = &l.entries[0];
        assert_eq!(e.addr, "10.213.7.2".parse::<IpAddr>().unwrap());
        assert_eq!(e.ttl, 64);
        assert_eq!(e.last_seen, 4_295_785_130);
        assert_eq!(e.stamps, vec![4_295_784_880, 4_295_785_005, 4_295_785_130]);
        assert_eq!(l.entries[1].stamps.len(), 1);
    }

    #[test]
    fn truncated_and_garbage_lines_are_skipped() {
        for bad in [
            "src=",
            "src=10.0.0.1",
            "src=10.0.0.1 ttl: x last_seen: 1 oldest_pkt: 1 1",
            "src=10.0.0.1 ttl: 64 last_seen: 1",
            "src=nonsense ttl: 64 last_seen: 1 oldest_pkt: 1 1",
            "\u{1b}[2J",
        ] {
            assert!(parse("l", bad).entries.is_empty(), "{bad:?}");
        }
        // No stamps printed (a just-created entry mid-update) still gives the entry.
        let l = parse("l", "src=10.0.0.1 ttl: 64 last_seen: 5 oldest_pkt: 0");
        assert_eq!(l.entries.len(), 1);
        assert!(l.entries[0].stamps.is_empty());
    }

    #[test]
    fn names_with_paths_are_refused() {
        for bad in ["", "a/b", "..", "../etc", "x..y", "/etc/passwd"] {
            assert!(
                matches!(check_name(bad), Err(RecentError::BadName(_))),
                "{bad:?}"
            );
        }
        assert!(check_name("seenping").is_ok());
        assert!(check_name("DEFAULT").is_ok());
    }

    #[test]
    fn missing_directory_and_vanished_list() {
        let base = std::env::temp_dir().join(format!("ctscope-xtr-{}", std::process::id()));
        assert!(matches!(
            read_dir(&base.join("absent")),
            Err(RecentError::NoXtRecent)
        ));
        std::fs::create_dir_all(&base).unwrap();
        std::fs::write(base.join("seenping"), SEENPING).unwrap();
        // A list removed between the directory read and its own read (its last rule
        // deleted) is a name whose file is gone: a dangling link stands in for that race.
        std::os::unix::fs::symlink(base.join("removed-meanwhile"), base.join("vanished")).unwrap();
        let lists = read_dir(&base).unwrap();
        assert_eq!(lists.len(), 1);
        assert_eq!(lists[0].name, "seenping");
        assert!(matches!(
            delete(&base, "gone", "10.0.0.1".parse().unwrap()),
            Err(RecentError::NoSuchList(_))
        ));
        assert!(matches!(
            flush(&base, "../seenping"),
            Err(RecentError::BadName(_))
        ));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
