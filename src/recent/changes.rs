//! What changed between two looks at the recency state, and how often to look. Lists and
//! sets send no events, so a front end polls: `interval` picks a period that fits the
//! state's size, and `diff` marks each entry new, changed (hit again, or refreshed) or gone
//! since the previous snapshot. Pure: the future dashboard screen and tests share it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use super::Snapshot;

/// How an entry differs from the previous look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    New,
    /// xt: another packet recorded (last seen moved); nft: timeout refreshed (expiry grew).
    Changed,
    Gone,
}

/// `(where, key)`: `xt NAME` or `nft FAMILY TABLE NAME`, and the address or element key.
pub type EntryKey = (String, String);

/// Per entry, a comparable state: xt last-seen jiffies, or nft expiry in milliseconds.
fn entries(s: &Snapshot) -> BTreeMap<EntryKey, i64> {
    let mut out = BTreeMap::new();
    if let Ok(ls) = &s.lists {
        for l in ls {
            for e in &l.entries {
                out.insert(
                    (format!("xt {}", l.name), e.addr.to_string()),
                    e.last_seen as i64,
                );
            }
        }
    }
    if let Ok(ss) = &s.sets {
        for set in ss {
            for e in &set.elements {
                let ms = e.expires.map_or(-1, |x| (x * 1000.0) as i64);
                out.insert((format!("nft {}", set.qualified()), e.key.clone()), ms);
            }
        }
    }
    out
}

/// Entries that differ between `prev` and `next`. An nft element counts as changed only
/// when its expiry moved later than time alone explains (a refresh), since every expiry
/// shrinks between looks.
pub fn diff(prev: &Snapshot, next: &Snapshot) -> BTreeMap<EntryKey, Change> {
    let a = entries(prev);
    let b = entries(next);
    let elapsed_ms = next
        .clock
        .at
        .duration_since(prev.clock.at)
        .map_or(0, |d| d.as_millis() as i64);
    let mut out = BTreeMap::new();
    for (k, v) in &b {
        match a.get(k) {
            None => {
                out.insert(k.clone(), Change::New);
            }
            Some(old) => {
                let changed = if k.0.starts_with("xt ") {
                    old != v
                } else {
                    // Allow a second of rounding: nft prints whole seconds.
                    *v > *old - elapsed_ms + 1000
                };
                if changed {
                    out.insert(k.clone(), Change::Changed);
                }
            }
        }
    }
    for k in a.keys() {
        if !b.contains_key(k) {
            out.insert(k.clone(), Change::Gone);
        }
    }
    out
}

/// How often to re-read: every second for small state, slower as it grows (reading a
/// list is a procfs walk of every entry; a set is one `nft -j` run), at most every 10 s.
pub fn interval(s: &Snapshot) -> Duration {
    let n = entries(s).len() as u64;
    Duration::from_secs((1 + n / 20_000).min(10))
}

#[cfg(test)]
mod tests {
    use super::super::{clock::Clock, nftset, procfs};
    use super::*;
    use std::time::UNIX_EPOCH;

    fn snap(at: u64, xt: &str, expires: Option<f64>) -> Snapshot {
        Snapshot {
            clock: Clock::fixed(250, 0, UNIX_EPOCH + Duration::from_secs(at)),
            lists: Ok(vec![procfs::parse("seenping", xt)]),
            sets: Ok(expires
                .map(|e| {
                    vec![nftset::Set {
                        family: "inet".into(),
                        table: "knock".into(),
                        name: "k1".into(),
                        kind: "set",
                        key_type: "ipv4_addr".into(),
                        flags: vec!["timeout".into()],
                        timeout: Some(10.0),
                        filled_by_rules: true,
                        elements: vec![nftset::Element {
                            key: "10.0.0.9".into(),
                            data: None,
                            timeout: Some(10.0),
                            expires: Some(e),
                        }],
                    }]
                })
                .unwrap_or_default()),
            machines: Vec::new(),
            unreadable: Vec::new(),
        }
    }

    const A: &str = "src=10.0.0.5 ttl: 64 last_seen: 100 oldest_pkt: 1 100\n";
    const A2: &str = "src=10.0.0.5 ttl: 64 last_seen: 350 oldest_pkt: 2 100, 350\n";
    const B: &str = "src=10.0.0.6 ttl: 64 last_seen: 90 oldest_pkt: 1 90\n";

    #[test]
    fn new_changed_and_gone() {
        let p = snap(100, A, Some(9.0));
        // Two seconds later: A hit again, B new, the nft element merely aged (not changed).
        let n = snap(102, &format!("{A2}{B}"), Some(7.0));
        let d = diff(&p, &n);
        let xt = |a: &str| d.get(&("xt seenping".to_string(), a.to_string())).copied();
        assert_eq!(xt("10.0.0.5"), Some(Change::Changed));
        assert_eq!(xt("10.0.0.6"), Some(Change::New));
        assert_eq!(d.len(), 2, "{d:?}");
        // Refreshed to its full timeout: changed. Then gone.
        let r = snap(104, A2, Some(10.0));
        assert_eq!(
            diff(&n, &r).get(&("nft inet knock k1".into(), "10.0.0.9".into())),
            Some(&Change::Changed)
        );
        let g = snap(106, "", None);
        assert!(diff(&r, &g).values().all(|c| *c == Change::Gone));
        assert_eq!(interval(&g), Duration::from_secs(1));
    }
}
