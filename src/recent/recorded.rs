//! Recency snapshots in recordings: a `Snapshot` as the payload of a recording's `Recent`
//! frame (kind 7, see `engine::record`), and back.
//!
//! The payload is the JSON object `ctscope recent --json` prints, without `admitted`: the
//! flows a last stage let in are state of the conntrack table, so a replay derives them
//! from the flows it replays beside the snapshot (`Snapshot::admitted`), exactly as the
//! live command does from its own dump. Reading back uses the exact fields of that shape
//! (`last_seen_jiffies`, `packets_jiffies`, `hz`, `jiffies`, the machines as they
//! serialize), never the rounded ages, so progress and ages computed from a replayed
//! snapshot equal what the live session computed. This file does no I/O.

use std::net::IpAddr;
use std::time::{Duration, UNIX_EPOCH};

use serde::Deserialize;

use super::clock::{Clock, HzSource};
use super::{machine::Machine, nftset, procfs, Snapshot};

/// The payload of a `Recent` frame for `s`, taken in `netns` (`None`: the current one).
pub fn encode(s: &Snapshot, netns: Option<&str>) -> Vec<u8> {
    let mut v = super::to_json(s, &[], netns);
    if let Some(o) = v.as_object_mut() {
        o.remove("admitted");
    }
    serde_json::to_vec(&v).unwrap_or_default()
}

/// A `Recent` payload read back. `Err` is one line saying what is wrong with it (the
/// caller names the recording and where in it).
pub fn decode(bytes: &[u8]) -> Result<Snapshot, String> {
    let d: Doc = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let mut unreadable = d.unreadable;
    // `to_json` carries the reasons the lists or sets were unreadable in `unreadable`,
    // prefixed; take them back out so the snapshot says so again.
    let mut take = |prefix: &str| {
        let i = unreadable.iter().position(|u| u.starts_with(prefix))?;
        Some(unreadable.remove(i)[prefix.len()..].to_owned())
    };
    let lists = if d.xt_recent.available {
        Ok(d.xt_recent
            .lists
            .into_iter()
            .map(|l| procfs::List {
                name: l.name,
                entries: l
                    .entries
                    .into_iter()
                    .map(|e| procfs::Entry {
                        addr: e.addr,
                        ttl: e.ttl,
                        last_seen: e.last_seen_jiffies,
                        stamps: e.packets_jiffies,
                    })
                    .collect(),
            })
            .collect())
    } else {
        Err(take("xt_recent: ").unwrap_or_else(|| "not available when recorded".into()))
    };
    let sets = match take("nft sets: ") {
        Some(e) => Err(e),
        None => Ok(d
            .sets
            .into_iter()
            .map(set_of)
            .collect::<Result<Vec<_>, String>>()?),
    };
    if !d.at_unix.is_finite() || d.at_unix < 0.0 {
        return Err(format!("'at_unix' {} is not a time", d.at_unix));
    }
    Ok(Snapshot {
        clock: Clock {
            hz: d.hz,
            hz_from: d.hz_from,
            jiffies: d.jiffies,
            at: UNIX_EPOCH + Duration::from_secs_f64(d.at_unix),
        },
        lists,
        sets,
        machines: d.machines,
        unreadable,
    })
}

fn set_of(s: SetDoc) -> Result<nftset::Set, String> {
    let kind = match s.kind.as_str() {
        "set" => "set",
        "map" => "map",
        other => return Err(format!("set kind '{other}' is neither 'set' nor 'map'")),
    };
    Ok(nftset::Set {
        family: s.family,
        table: s.table,
        name: s.name,
        kind,
        key_type: s.key_type,
        flags: s.flags,
        timeout: s.timeout_s,
        filled_by_rules: s.filled_by_rules,
        elements: s
            .elements
            .into_iter()
            .map(|e| nftset::Element {
                key: e.key,
                data: e.data,
                timeout: e.timeout_s,
                expires: e.expires_s,
            })
            .collect(),
    })
}

#[derive(Deserialize)]
struct Doc {
    hz: u32,
    hz_from: HzSource,
    jiffies: u64,
    at_unix: f64,
    xt_recent: XtDoc,
    sets: Vec<SetDoc>,
    machines: Vec<Machine>,
    #[serde(default)]
    unreadable: Vec<String>,
}

#[derive(Deserialize)]
struct XtDoc {
    available: bool,
    lists: Vec<ListDoc>,
}

#[derive(Deserialize)]
struct ListDoc {
    name: String,
    entries: Vec<EntryDoc>,
}

#[derive(Deserialize)]
struct EntryDoc {
    addr: IpAddr,
    ttl: u8,
    last_seen_jiffies: u64,
    packets_jiffies: Vec<u64>,
}

#[derive(Deserialize)]
struct SetDoc {
    family: String,
    table: String,
    name: String,
    kind: String,
    key_type: String,
    flags: Vec<String>,
    timeout_s: Option<f64>,
    filled_by_rules: bool,
    elements: Vec<ElementDoc>,
}

#[derive(Deserialize)]
struct ElementDoc {
    key: String,
    data: Option<String>,
    timeout_s: Option<f64>,
    expires_s: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::super::machine;
    use super::*;

    /// The seed's lists at HZ 250, one source at stage 2 (seenecho 1 s ago).
    fn seed() -> Snapshot {
        let rules = machine::parse_iptables(
            "*filter\n:INPUT DROP [0:0]\n:ADD_ECHO - [0:0]\n:ADD_BACKEND - [0:0]\n\
             -A INPUT -p icmp -m icmp --icmp-type 8 -m recent --set --name seenping --mask 255.255.255.255 --rsource -j ACCEPT\n\
             -A INPUT -p tcp -m tcp --dport 7 -m recent --rcheck --name seenping --mask 255.255.255.255 --rsource -j ADD_ECHO\n\
             -A INPUT -p tcp -m tcp --dport 8000 -m recent --rcheck --seconds 10 --name seenecho --mask 255.255.255.255 --rsource -j ADD_BACKEND\n\
             -A INPUT -m recent --remove --name seenecho --mask 255.255.255.255 --rsource\n\
             -A INPUT -p tcp -m tcp --dport 3306 -m recent --rcheck --name seenbackend --mask 255.255.255.255 --rsource -j ACCEPT\n\
             -A ADD_ECHO -m recent --set --name seenecho --mask 255.255.255.255 --rsource -j ACCEPT\n\
             -A ADD_BACKEND -m recent --set --name seenbackend --mask 255.255.255.255 --rsource -j ACCEPT\nCOMMIT\n",
            "ip",
        );
        Snapshot {
            clock: Clock::fixed(250, 10_000, UNIX_EPOCH + Duration::from_secs(1_700_000_000)),
            lists: Ok(vec![
                procfs::parse(
                    "seenping",
                    "src=10.0.0.5 ttl: 64 last_seen: 9500 oldest_pkt: 1 9500\n",
                ),
                procfs::parse(
                    "seenecho",
                    "src=10.0.0.5 ttl: 64 last_seen: 9750 oldest_pkt: 1 9750\n",
                ),
            ]),
            sets: Err("'nft' failed: permission denied".into()),
            machines: machine::build(&rules),
            unreadable: vec!["ip6tables-nft-save: gone".into()],
        }
    }

    #[test]
    fn a_snapshot_reads_back_whole_and_gives_the_same_progress() {
        let s = seed();
        assert_eq!(s.machines.len(), 1, "{:#?}", s.machines);
        let bytes = encode(&s, Some("srv"));
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert!(v.get("admitted").is_none());
        assert_eq!(v["progress"][0]["stage"], 2);
        let back = decode(&bytes).unwrap();
        assert_eq!(back.lists, s.lists);
        assert_eq!(back.sets, s.sets);
        assert_eq!(back.machines, s.machines);
        assert_eq!(back.unreadable, s.unreadable);
        assert_eq!((back.clock.hz, back.clock.jiffies), (250, 10_000));
        assert_eq!(back.progress(), s.progress());
        assert!(back.progress()[0].1.text.contains("9 s left to knock 8000"));
    }

    #[test]
    fn damaged_payloads_say_what_is_wrong_in_one_line() {
        let bytes = encode(&seed(), None);
        for (bad, want) in [
            (bytes[..bytes.len() / 2].to_vec(), "EOF"),
            (b"not json".to_vec(), "expected"),
            (b"{}".to_vec(), "missing field"),
            (
                String::from_utf8(bytes.clone())
                    .unwrap()
                    .replace("\"hz\":250", "\"hz\":-1")
                    .into_bytes(),
                "invalid value",
            ),
        ] {
            let e = decode(&bad).unwrap_err();
            assert!(e.contains(want) && !e.contains('\n'), "{e}");
        }
    }
}
