//! Recency state kept outside the conntrack table: the xt_recent lists and nftables
//! dynamic sets behind port knocking, the knock machine rebuilt from the rules, each
//! source's progress through it, and the live flows its last stage let in.
//!
//! Layout: `clock` (HZ and jiffies), `procfs` (xt_recent lists, the only writer to
//! /proc/net/xt_recent), `nftset` (stateful sets, `nft delete element`/`flush set`),
//! `machine` (the knock model from iptables-save and nft JSON, and progress), `audit`
//! (findings), `changes` (what moved between two looks; the polling period), `recorded`
//! (a snapshot as a recording's frame and back), `sampler` (snapshots on a timer, for
//! the recorder). This file
//! gathers a `Snapshot` inside a namespace and turns it into the JSON contract of
//! `ctscope recent --json`. No terminal code: names and elements stay raw here and are
//! escaped by whatever prints them to a terminal.

pub mod act;
pub mod audit;
pub mod changes;
pub mod clock;
pub mod machine;
pub mod nftset;
pub mod procfs;
pub mod recorded;
pub mod sampler;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::UNIX_EPOCH;

use serde::Serialize;

use crate::error::{Error, Hint};
use crate::model::Flow;
use crate::netlink::{netns, Namespace};
pub use clock::Clock;
pub use machine::{Lang, Machine, Presence, Progress};

/// What can go wrong reading or changing recency state. One line each, values quoted.
#[derive(Debug, thiserror::Error)]
pub enum RecentError {
    #[error("list name '{}' is not a plain name (no '/', no '..', 1 to 199 bytes){}", .0, Hint(Some("names are as 'ctscope recent' lists them")))]
    BadName(String),
    #[error(
        "this kernel shows no xt_recent lists (/proc/net/xt_recent is absent){}",
        Hint(Some("the recent match is not loaded until a rule uses it ('modprobe xt_recent')"))
    )]
    NoXtRecent,
    #[error("no xt_recent list or nft set named '{}' (it may have just been removed){}", .0, Hint(Some("'ctscope recent' lists them")))]
    NoSuchList(String),
    #[error("'{addr}' is not in list '{list}'")]
    NotInList { list: String, addr: IpAddr },
    #[error("'{path}': {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Nft(String),
    #[error("{0}")]
    Netns(String),
}

impl RecentError {
    pub fn io(path: &Path, source: std::io::Error) -> RecentError {
        RecentError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Everything `recent` shows, read at one moment in one namespace.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub clock: Clock,
    /// xt_recent lists; `Err` when the kernel shows none (the reason).
    pub lists: Result<Vec<procfs::List>, String>,
    /// nft sets and maps with state; `Err` when nft could not be read.
    pub sets: Result<Vec<nftset::Set>, String>,
    pub machines: Vec<Machine>,
    /// Rule sources that could not be read, as `what: why`.
    pub unreadable: Vec<String>,
}

/// Rule texts to rebuild machines from: iptables-save outputs and `nft -j list ruleset`.
#[derive(Debug, Clone, Default)]
pub struct Rulesets {
    /// `(family, iptables-save output)`, family `ip` or `ip6`.
    pub iptables: Vec<(String, String)>,
    pub nft_json: Option<String>,
}

impl Rulesets {
    /// Every rule that matters to knocks, from all sources.
    pub fn rules(&self) -> Vec<machine::RuleInfo> {
        let mut out: Vec<_> = self
            .iptables
            .iter()
            .flat_map(|(f, t)| machine::parse_iptables(t, f))
            .collect();
        if let Some(j) = &self.nft_json {
            out.extend(machine::parse_nft(j));
        }
        out
    }
}

/// Run a ruleset reader: its stdout, `None` when the tool is not installed (the machine
/// simply has no such backend), or why it failed.
fn run(cmd: &str, args: &[&str]) -> Result<Option<String>, Error> {
    crate::privilege::pass_net_admin_to_children();
    let failed = |reason: String| Error::Audit {
        step: std::iter::once(cmd)
            .chain(args.iter().copied())
            .collect::<Vec<_>>()
            .join(" "),
        reason,
        hint: None,
    };
    let out = match Command::new(cmd).args(args).stdin(Stdio::null()).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(failed(e.to_string())),
    };
    if out.status.success() {
        Ok(Some(String::from_utf8_lossy(&out.stdout).into_owned()))
    } else {
        Err(failed(
            String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        ))
    }
}

/// Read the rulesets in the calling thread's namespace. Tools that are not installed are
/// skipped silently (the machine simply has no such backend).
pub fn read_rulesets(unreadable: &mut Vec<String>) -> Rulesets {
    let mut r = Rulesets::default();
    for (family, cmd) in [
        ("ip", "iptables-nft-save"),
        ("ip6", "ip6tables-nft-save"),
        ("ip", "iptables-legacy-save"),
        ("ip6", "ip6tables-legacy-save"),
    ] {
        match run(cmd, &[]) {
            Ok(Some(t)) => r.iptables.push((family.to_owned(), t)),
            Ok(None) => {}
            Err(e) => unreadable.push(e.to_string()),
        }
    }
    match run("nft", &["-j", "list", "ruleset"]) {
        Ok(j) => r.nft_json = j,
        Err(e) => unreadable.push(e.to_string()),
    }
    r
}

/// Take a snapshot inside `ns`: lists, sets, rules and the kernel clock.
pub fn snapshot(ns: &Namespace) -> Result<Snapshot, RecentError> {
    netns::run_in(ns, || Ok(snapshot_here())).map_err(|e| RecentError::Netns(e.to_string()))
}

/// `snapshot` in the calling thread's namespace.
pub fn snapshot_here() -> Snapshot {
    let clock = Clock::read();
    let lists = procfs::read_all().map_err(|e| e.to_string());
    let mut unreadable = Vec::new();
    let rules = read_rulesets(&mut unreadable);
    let sets = match &rules.nft_json {
        Some(j) => nftset::parse(j).map_err(|e| e.to_string()),
        None => Ok(Vec::new()),
    };
    let machines = machine::build(&rules.rules());
    Snapshot {
        clock,
        lists,
        sets,
        machines,
        unreadable,
    }
}

impl Snapshot {
    /// How list `list` of machine `m` holds `addr`.
    pub fn presence(&self, m: &Machine, list: &str, addr: IpAddr) -> Option<Presence> {
        match m.lang {
            Lang::Iptables => {
                let l = self.lists.as_ref().ok()?.iter().find(|l| l.name == list)?;
                let e = l.entries.iter().find(|e| e.addr == addr)?;
                Some(Presence::Age {
                    secs: self.clock.age(e.last_seen).as_secs_f64(),
                    hits: e.stamps.len(),
                })
            }
            Lang::Nft => {
                let s = self.set_of(m, list)?;
                let want = addr.to_string();
                let e = s.elements.iter().find(|e| e.key == want)?;
                Some(Presence::Expires(e.expires))
            }
        }
    }

    fn set_of(&self, m: &Machine, list: &str) -> Option<&nftset::Set> {
        self.sets
            .as_ref()
            .ok()?
            .iter()
            .find(|s| format!("{} {}", s.family, s.table) == m.table && s.name == list)
    }

    /// The addresses held by any list of machine `m`.
    fn addresses(&self, m: &Machine) -> BTreeSet<IpAddr> {
        let mut out = BTreeSet::new();
        for st in &m.stages {
            match m.lang {
                Lang::Iptables => {
                    if let Some(l) = self
                        .lists
                        .as_ref()
                        .ok()
                        .and_then(|ls| ls.iter().find(|l| l.name == st.list))
                    {
                        out.extend(l.entries.iter().map(|e| e.addr));
                    }
                }
                Lang::Nft => {
                    if let Some(s) = self.set_of(m, &st.list) {
                        out.extend(
                            s.elements
                                .iter()
                                .filter_map(|e| e.key.parse::<IpAddr>().ok()),
                        );
                    }
                }
            }
        }
        out
    }

    /// Every source's progress, per machine (index into `machines`).
    pub fn progress(&self) -> Vec<(usize, Progress)> {
        let mut out = Vec::new();
        for (i, m) in self.machines.iter().enumerate() {
            let pres = |list: &str, addr: IpAddr| self.presence(m, list, addr);
            for p in machine::progress(m, &pres, &self.addresses(m)) {
                out.push((i, p));
            }
        }
        out
    }

    /// Live flows a machine's last stage let in: toward an opened port, from a source its
    /// last list holds now.
    pub fn admitted<'f>(&self, flows: impl Iterator<Item = &'f Flow>) -> Vec<Admitted> {
        let mut out = Vec::new();
        for f in flows {
            let src = f.orig.src_ip().to_canonical();
            for (i, m) in self.machines.iter().enumerate() {
                for o in &m.opens {
                    let proto_ok = match o.packet.proto.as_deref() {
                        Some(p) => {
                            crate::model::protocols::system().number(p) == Some(f.orig.proto)
                        }
                        None => true,
                    };
                    if !proto_ok || o.packet.port().is_some_and(|p| p != f.orig.dport) {
                        continue;
                    }
                    if self.presence(m, &o.from, src).is_some() {
                        out.push(Admitted {
                            key: crate::model::store::FlowKey::of(f),
                            machine: i,
                            list: o.from.clone(),
                            addr: src,
                            flow: crate::actions::flow_line(f),
                            state: f.state_name().map(str::to_owned),
                            dport: f.orig.dport,
                        });
                    }
                }
            }
        }
        out
    }
}

/// A live flow linked to the list entry that let it in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Admitted {
    /// The flow's identity in the store (a front end selects or acts on it by this).
    #[serde(skip)]
    pub key: crate::model::store::FlowKey,
    pub machine: usize,
    pub list: String,
    pub addr: IpAddr,
    /// The flow as `delete` and the dashboard print it.
    pub flow: String,
    /// TCP state (`ESTABLISHED`), when the flow has one.
    pub state: Option<String>,
    pub dport: u16,
}

fn unix(t: std::time::SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The JSON of `ctscope recent --json` (see README "JSON contract").
pub fn to_json(s: &Snapshot, admitted: &[Admitted], netns: Option<&str>) -> serde_json::Value {
    use serde_json::json;
    let c = &s.clock;
    let lists = match &s.lists {
        Ok(ls) => ls
            .iter()
            .map(|l| {
                json!({
                    "name": l.name,
                    "entries": l.entries.iter().map(|e| json!({
                        "addr": e.addr,
                        "hits": e.stamps.len(),
                        "ttl": e.ttl,
                        "last_seen_ago_s": round1(c.age(e.last_seen).as_secs_f64()),
                        "last_seen_unix": round1(unix(c.when(e.last_seen))),
                        "last_seen_jiffies": e.last_seen,
                        "packets_jiffies": e.stamps,
                        "packets_ago_s": e.stamps.iter().map(|&j| round1(c.age(j).as_secs_f64())).collect::<Vec<_>>(),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect::<Vec<_>>(),
        Err(_) => Vec::new(),
    };
    let sets = match &s.sets {
        Ok(ss) => ss
            .iter()
            .map(|x| {
                json!({
                    "family": x.family, "table": x.table, "name": x.name, "kind": x.kind,
                    "key_type": x.key_type, "flags": x.flags, "timeout_s": x.timeout,
                    "filled_by_rules": x.filled_by_rules,
                    "elements": x.elements.iter().map(|e| json!({
                        "key": e.key, "data": e.data, "timeout_s": e.timeout, "expires_s": e.expires,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect::<Vec<_>>(),
        Err(_) => Vec::new(),
    };
    let progress: Vec<_> = s
        .progress()
        .into_iter()
        .map(|(i, p)| {
            let mut v = serde_json::to_value(&p).unwrap_or_default();
            if let Some(o) = v.as_object_mut() {
                o.insert("machine".into(), i.into());
                if let Some(l) = p.seconds_left {
                    o.insert("seconds_left".into(), round1(l).into());
                }
            }
            v
        })
        .collect();
    let mut errors = Vec::new();
    if let Err(e) = &s.lists {
        errors.push(format!("xt_recent: {e}"));
    }
    if let Err(e) = &s.sets {
        errors.push(format!("nft sets: {e}"));
    }
    errors.extend(s.unreadable.iter().cloned());
    json!({
        "netns": netns,
        "hz": c.hz,
        "hz_from": c.hz_from,
        "jiffies": c.jiffies,
        "at_unix": round1(unix(c.at)),
        "xt_recent": {"available": s.lists.is_ok(), "lists": lists},
        "sets": sets,
        "machines": s.machines,
        "progress": progress,
        "admitted": admitted,
        "unreadable": errors,
    })
}
