//! Recency state beside the store: the latest snapshot of the xt_recent lists, nft sets
//! and knock machines (`EngineEvent::Recent`, live or replayed), what changed since the
//! one before, and a `RecentView` that joins it with the store's flows for a front end
//! (the dashboard's Recent screen, `ctscope recent --replay`).
//!
//! Plain data and pure logic: it reads no procfs and runs no nft (see `recent`), and knows
//! nothing of ratatui. Progress and the flow links are `recent`'s own (`Snapshot::progress`,
//! `Snapshot::admitted`), so every front end agrees with `ctscope recent`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::model::store::FlowKey;
use crate::model::Store;
use crate::recent::changes::{self, Change, EntryKey};
use crate::recent::{Admitted, Lang, Progress, Snapshot};

/// The latest recency snapshot and what changed with it. The owner of the store keeps
/// one and feeds it every `EngineEvent::Recent` (with the `Received` time before it).
#[derive(Debug, Clone, Default)]
pub struct RecentState {
    snapshot: Option<Snapshot>,
    /// When the snapshot was taken (live) or recorded (replay), ns since the Unix epoch.
    at: u64,
    changes: BTreeMap<EntryKey, Change>,
    generation: u64,
    /// The last damaged snapshot's message (a replay goes on without it).
    damaged: Option<String>,
}

impl RecentState {
    pub fn new() -> RecentState {
        RecentState::default()
    }

    /// Take `next`, received at `at` (ns since the epoch), and mark what changed since
    /// the previous snapshot (`changes::diff`). The first snapshot marks nothing: there
    /// was no earlier look to differ from.
    pub fn apply(&mut self, next: Snapshot, at: u64) {
        self.changes = match &self.snapshot {
            Some(prev) => changes::diff(prev, &next),
            None => BTreeMap::new(),
        };
        self.snapshot = Some(next);
        self.at = at;
        self.generation += 1;
    }

    /// Note a recorded snapshot that could not be read (`EngineEvent::RecentDamaged`).
    pub fn note_damaged(&mut self, message: String) {
        self.damaged = Some(message);
        self.generation += 1;
    }

    /// The latest snapshot, if any arrived.
    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// When the latest snapshot was taken, ns since the Unix epoch.
    pub fn at(&self) -> Option<u64> {
        self.snapshot.as_ref().map(|_| self.at)
    }

    /// Bumped by every `apply` and `note_damaged`: a front end rebuilds its view then.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The last damaged snapshot's message.
    pub fn damaged(&self) -> Option<&str> {
        self.damaged.as_deref()
    }

    /// What changed with the latest snapshot, per `(where, key)`.
    pub fn changes(&self) -> &BTreeMap<EntryKey, Change> {
        &self.changes
    }

    /// Lists, sets, progress and admitted flows, joined with `store`'s flows now. `None`
    /// before the first snapshot.
    pub fn view(&self, store: &Store) -> Option<RecentView> {
        let s = self.snapshot.as_ref()?;
        let admitted = s.admitted(store.flows());
        let mut lists = Vec::new();
        if let Ok(ls) = &s.lists {
            for l in ls {
                let place = format!("xt {}", l.name);
                let entries = l
                    .entries
                    .iter()
                    .map(|e| EntryRow {
                        key: e.addr.to_string(),
                        addr: Some(e.addr),
                        hits: Some(e.stamps.len()),
                        age_s: Some(s.clock.age(e.last_seen).as_secs_f64()),
                        expires_s: None,
                        change: self.change(&place, &e.addr.to_string()),
                        admitted: Vec::new(),
                    })
                    .collect();
                lists.push(ListRow {
                    lang: Lang::Iptables,
                    name: l.name.clone(),
                    place,
                    entries,
                    gone: self.gone(&format!("xt {}", l.name)),
                });
            }
        }
        if let Ok(ss) = &s.sets {
            for set in ss {
                let place = format!("nft {}", set.qualified());
                let entries = set
                    .elements
                    .iter()
                    .map(|e| {
                        let addr = e.key.parse::<IpAddr>().ok().map(|a| a.to_canonical());
                        EntryRow {
                            key: e.key.clone(),
                            addr,
                            hits: None,
                            age_s: None,
                            expires_s: e.expires,
                            change: self.change(&place, &e.key),
                            admitted: Vec::new(),
                        }
                    })
                    .collect();
                lists.push(ListRow {
                    lang: Lang::Nft,
                    name: set.name.clone(),
                    gone: self.gone(&place),
                    place,
                    entries,
                });
            }
        }
        // Link each admitted flow to the entry of the list that let it in.
        for a in &admitted {
            let Some(m) = s.machines.get(a.machine) else {
                continue;
            };
            let place = match m.lang {
                Lang::Iptables => format!("xt {}", a.list),
                Lang::Nft => format!("nft {} {}", m.table, a.list),
            };
            if let Some(e) = lists
                .iter_mut()
                .filter(|l| l.place == place)
                .flat_map(|l| l.entries.iter_mut())
                .find(|e| e.addr == Some(a.addr))
            {
                e.admitted.push(a.clone());
            }
        }
        let progress = s
            .progress()
            .into_iter()
            .map(|(machine, progress)| {
                let flows = admitted
                    .iter()
                    .filter(|a| a.machine == machine && a.addr == progress.addr && progress.open)
                    .map(|a| a.key)
                    .collect();
                SourceRow {
                    machine,
                    progress,
                    flows,
                }
            })
            .collect();
        let mut unreadable = Vec::new();
        if let Err(e) = &s.lists {
            unreadable.push(format!("xt_recent: {e}"));
        }
        if let Err(e) = &s.sets {
            unreadable.push(format!("nft sets: {e}"));
        }
        unreadable.extend(s.unreadable.iter().cloned());
        unreadable.extend(self.damaged.iter().cloned());
        Some(RecentView {
            at: self.at,
            lists,
            progress,
            admitted,
            unreadable,
        })
    }

    fn change(&self, place: &str, key: &str) -> Option<Change> {
        self.changes
            .get(&(place.to_owned(), key.to_owned()))
            .copied()
    }

    /// Keys of `place` that the latest snapshot no longer holds.
    fn gone(&self, place: &str) -> Vec<String> {
        self.changes
            .iter()
            .filter(|((p, _), c)| p == place && **c == Change::Gone)
            .map(|((_, k), _)| k.clone())
            .collect()
    }
}

/// What a Recent screen shows, as of one snapshot and the store now.
#[derive(Debug, Clone)]
pub struct RecentView {
    /// When the snapshot was taken, ns since the Unix epoch.
    pub at: u64,
    /// xt_recent lists first, then nft sets, each in the order the kernel gave them.
    pub lists: Vec<ListRow>,
    /// Each source's place in each machine (index into the snapshot's `machines`).
    pub progress: Vec<SourceRow>,
    /// Every live flow a last stage let in (also linked from `lists` and `progress`).
    pub admitted: Vec<Admitted>,
    /// What could not be read, one line each (a damaged recorded snapshot included).
    pub unreadable: Vec<String>,
}

/// One xt_recent list or nft set.
#[derive(Debug, Clone)]
pub struct ListRow {
    pub lang: Lang,
    /// The list or set name (raw: escape before printing).
    pub name: String,
    /// `xt NAME` or `nft FAMILY TABLE NAME`: the first half of `changes::EntryKey`.
    pub place: String,
    pub entries: Vec<EntryRow>,
    /// Keys present in the previous snapshot and gone from this one.
    pub gone: Vec<String>,
}

/// One address (xt) or element (nft) of a list.
#[derive(Debug, Clone)]
pub struct EntryRow {
    /// The address or element as the kernel or nft prints it.
    pub key: String,
    /// The key as an address, when it is one.
    pub addr: Option<IpAddr>,
    /// xt: recorded packets (what `--hitcount` counts).
    pub hits: Option<usize>,
    /// xt: seconds since the last packet, at the snapshot.
    pub age_s: Option<f64>,
    /// nft: seconds left before the kernel drops it, at the snapshot.
    pub expires_s: Option<f64>,
    /// New or changed since the previous snapshot.
    pub change: Option<Change>,
    /// Live flows this entry let in (when the list is a machine's last stage).
    pub admitted: Vec<Admitted>,
}

/// One source's progress through one machine.
#[derive(Debug, Clone)]
pub struct SourceRow {
    pub machine: usize,
    pub progress: Progress,
    /// The flows it opened (non-empty only at the last stage).
    pub flows: Vec<FlowKey>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Event, Record};
    use crate::model::{Flow, Tuple};
    use crate::recent::{clock::Clock, machine, procfs};
    use std::time::{Duration, UNIX_EPOCH};

    const RULES: &str = "*filter\n:INPUT DROP [0:0]\n:ADD_ECHO - [0:0]\n:ADD_BACKEND - [0:0]\n\
        -A INPUT -p icmp -m icmp --icmp-type 8 -m recent --set --name seenping --mask 255.255.255.255 --rsource -j ACCEPT\n\
        -A INPUT -p tcp -m tcp --dport 7 -m recent --rcheck --name seenping --mask 255.255.255.255 --rsource -j ADD_ECHO\n\
        -A INPUT -p tcp -m tcp --dport 8000 -m recent --rcheck --seconds 10 --name seenecho --mask 255.255.255.255 --rsource -j ADD_BACKEND\n\
        -A INPUT -m recent --remove --name seenecho --mask 255.255.255.255 --rsource\n\
        -A INPUT -p tcp -m tcp --dport 3306 -m recent --rcheck --name seenbackend --mask 255.255.255.255 --rsource -j ACCEPT\n\
        -A ADD_ECHO -m recent --set --name seenecho --mask 255.255.255.255 --rsource -j ACCEPT\n\
        -A ADD_BACKEND -m recent --set --name seenbackend --mask 255.255.255.255 --rsource -j ACCEPT\nCOMMIT\n";

    fn snap(at: u64, lists: &[(&str, &str)]) -> Snapshot {
        Snapshot {
            clock: Clock::fixed(250, 10_000, UNIX_EPOCH + Duration::from_secs(at)),
            lists: Ok(lists.iter().map(|(n, t)| procfs::parse(n, t)).collect()),
            sets: Ok(Vec::new()),
            machines: machine::build(&machine::parse_iptables(RULES, "ip")),
            unreadable: Vec::new(),
        }
    }

    fn mysql_flow(src: [u8; 4]) -> Flow {
        let mut f = Flow::new(Tuple {
            proto: crate::model::tuple::proto::TCP,
            dport: 3306,
            sport: 40000,
            family: crate::model::Family::Ipv4,
            ..Default::default()
        });
        f.orig.set_src_ip(IpAddr::from(src));
        f.orig.set_dst_ip(IpAddr::from([10, 0, 0, 1]));
        f
    }

    #[test]
    fn the_view_links_admitted_flows_to_the_last_list_entry_and_marks_changes() {
        let entry = "src=10.0.0.5 ttl: 64 last_seen: 9750 oldest_pkt: 1 9750\n";
        let mut state = RecentState::new();
        let store = {
            let mut s = Store::new();
            s.apply(Event::New, Record::Flow(mysql_flow([10, 0, 0, 5])), 0);
            s.apply(Event::New, Record::Flow(mysql_flow([10, 0, 0, 6])), 0);
            s
        };
        assert!(state.view(&store).is_none());
        state.apply(snap(100, &[("seenping", entry)]), 7);
        let v = state.view(&store).unwrap();
        assert_eq!(v.at, 7);
        assert_eq!(v.progress.len(), 1);
        assert_eq!(v.progress[0].progress.stage, 1);
        assert!(v.admitted.is_empty() && v.progress[0].flows.is_empty());
        assert!(
            v.lists[0].entries[0].change.is_none(),
            "a first look marks nothing"
        );

        // The source reaches seenbackend: its 3306 flow (not 10.0.0.6's) is linked there.
        let g = state.generation();
        state.apply(snap(101, &[("seenping", entry), ("seenbackend", entry)]), 8);
        assert!(state.generation() > g);
        let v = state.view(&store).unwrap();
        let sb = v.lists.iter().find(|l| l.name == "seenbackend").unwrap();
        assert_eq!(sb.place, "xt seenbackend");
        let e = &sb.entries[0];
        assert_eq!(e.change, Some(Change::New));
        assert_eq!(e.hits, Some(1));
        assert_eq!(e.age_s, Some(1.0));
        assert_eq!(e.admitted.len(), 1);
        assert_eq!(e.admitted[0].addr.to_string(), "10.0.0.5");
        assert_eq!(e.admitted[0].dport, 3306);
        let p = &v.progress[0];
        assert!(p.progress.open && p.progress.stage == 3);
        assert_eq!(p.flows, vec![e.admitted[0].key]);
        assert_eq!(store.flow(&p.flows[0]).map(|f| f.orig.sport), Some(40000));

        // Flushed: the entry is gone, and the flow is no longer linked.
        state.apply(snap(102, &[("seenping", ""), ("seenbackend", "")]), 9);
        let v = state.view(&store).unwrap();
        assert!(v.admitted.is_empty());
        let sb = v.lists.iter().find(|l| l.name == "seenbackend").unwrap();
        assert_eq!(sb.gone, ["10.0.0.5"]);

        state.note_damaged("the recency snapshot at 3.000 s is damaged".into());
        let v = state.view(&store).unwrap();
        assert!(v.unreadable.iter().any(|u| u.contains("damaged")));
    }
}
