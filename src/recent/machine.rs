//! The knock machine, rebuilt from the ruleset: which packet moves a source into which
//! list, within which time, and what the last stage opens.
//!
//! Two rule languages feed one model. From `iptables-save`, the xt `recent` match
//! (`--set`, `--rcheck`, `--update`, `--remove`, `--seconds`, `--hitcount`, `--reap`,
//! `--rttl`, `--name`; xt_recent(8)) and `-j CHAIN`: a rule that checks list A and jumps to
//! a chain that `--set`s list B moves a source from A to B (seed 004's ADD_ECHO,
//! ADD_BACKEND). From `nft -j list ruleset`, lookups `ip saddr @A` and dynamic-set
//! statements `add|update @B { ip saddr timeout T }`, through `jump`/`goto` as well; the time
//! limit of a stage there is the timeout its elements are given.
//!
//! Pure: parses text, builds the model, and computes each source's progress from list
//! snapshots. Reads nothing from the system.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::nftset::render;

/// The rule language a scheme is written in (fixes are given in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Lang {
    Iptables,
    Nft,
}

/// What a rule does with a list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    /// `--set` / `add @s`: put the source in.
    Set,
    /// `--rcheck` / `ip saddr @s`: the source must be in.
    Check,
    /// `--update` / `update @s`: must be in (xt), and refresh its time.
    Update,
    /// `--remove` / `delete @s`.
    Remove,
}

/// One list operation of a rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListOp {
    pub list: String,
    pub op: Op,
    /// `--seconds` (xt) or the element timeout (nft add/update), seconds.
    pub seconds: Option<u64>,
    pub hitcount: Option<u32>,
    /// `--reap`: entries older than `--seconds` are purged.
    pub reap: bool,
    pub rttl: bool,
    /// `! --rcheck` and friends: the rule fires when the source is NOT in the list.
    pub inverted: bool,
}

/// The packet a rule matches, as far as a knock is concerned.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Packet {
    pub proto: Option<String>,
    /// Destination port(s) as written (`8000`, `7`, `echo`, `1000:2000`).
    pub dport: Option<String>,
    /// ICMP type as written (`8`, `echo-request`).
    pub icmp_type: Option<String>,
    /// A source restriction (`-s`, `ip saddr 10.0.0.0/8`).
    pub src: Option<String>,
}

impl Packet {
    /// The knock in one word: `8000`, `ping`, `tcp`, `any packet`.
    pub fn short(&self) -> String {
        if let Some(p) = &self.dport {
            return port_number(p).map_or_else(|| p.clone(), |n| n.to_string());
        }
        if self.is_ping() {
            return "ping".into();
        }
        if let Some(t) = &self.icmp_type {
            return format!("icmp {t}");
        }
        self.proto.clone().unwrap_or_else(|| "any packet".into())
    }

    /// Whether this is an ICMP echo request (what a ping sweep sends).
    pub fn is_ping(&self) -> bool {
        matches!(self.icmp_type.as_deref(), Some("8" | "echo-request"))
            || (self.icmp_type.is_none()
                && self.dport.is_none()
                && matches!(self.proto.as_deref(), Some("icmp" | "1")))
    }

    /// The destination port as a number, when it is one.
    pub fn port(&self) -> Option<u16> {
        self.dport.as_deref().and_then(port_number)
    }
}

/// A port as written in a rule: a number, or a name from the few services knocks use.
pub fn port_number(p: &str) -> Option<u16> {
    p.parse().ok().or(match p {
        "echo" => Some(7),
        "ssh" => Some(22),
        "telnet" => Some(23),
        "smtp" => Some(25),
        "domain" => Some(53),
        "http" | "www" => Some(80),
        "https" => Some(443),
        "mysql" => Some(3306),
        "postgresql" => Some(5432),
        "ms-sql-s" => Some(1433),
        "ms-wbt-server" => Some(3389),
        "microsoft-ds" => Some(445),
        _ => None,
    })
}

/// Where a rule's verdict sends the packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Accept,
    Drop,
    Jump(String),
    Other,
}

/// One rule that touches a list, or that a list rule jumps to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    pub lang: Lang,
    /// `ip filter`, `inet knock`.
    pub table: String,
    pub chain: String,
    /// The rule as the admin would write it.
    pub text: String,
    pub packet: Packet,
    pub ops: Vec<ListOp>,
    pub target: Target,
}

/// A transition: a packet that moves a source into `to` (from `from`, if a list was needed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Edge {
    pub from: Option<String>,
    pub to: String,
    pub packet: Packet,
    /// The source must have entered `from` at most this long ago.
    pub within: Option<u64>,
    pub hitcount: Option<u32>,
    /// The rule path: `INPUT: <rule>` then `ADD_ECHO: <rule>`.
    pub path: Vec<String>,
}

/// What the last list lets in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Opening {
    pub from: String,
    pub packet: Packet,
    pub within: Option<u64>,
    pub hitcount: Option<u32>,
    pub path: Vec<String>,
}

/// One stage: being in `list`, reached by `entered_by` (every rule path that puts a
/// source in it, from whatever list: more than one is an audit finding).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stage {
    pub list: String,
    pub entered_by: Vec<Edge>,
}

/// A whole knock: stages in order, then what the last one opens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    pub lang: Lang,
    pub table: String,
    pub stages: Vec<Stage>,
    pub opens: Vec<Opening>,
    /// Lists that some rule purges (`--remove`, `--reap`, `delete @s`).
    pub purged: BTreeSet<String>,
}

impl Machine {
    /// Stages plus the opening, the count a user knocks (seed 004: 4).
    pub fn total(&self) -> usize {
        self.stages.len() + usize::from(!self.opens.is_empty())
    }

    /// `--hitcount` required on the way out of stage `i`.
    pub fn hitcount_of(&self, i: usize) -> Option<u32> {
        let list = &self.stages.get(i)?.list;
        match self.stages.get(i + 1) {
            Some(next) => {
                next.entered_by
                    .iter()
                    .find(|e| e.from.as_deref() == Some(list))?
                    .hitcount
            }
            None => self.opens.iter().find(|o| &o.from == list)?.hitcount,
        }
    }

    /// The time limit and packet that lead out of stage `i` (the next stage's entry, or the
    /// opening after the last).
    pub fn next_of(&self, i: usize) -> Option<(Option<u64>, &Packet)> {
        let list = &self.stages.get(i)?.list;
        if let Some(next) = self.stages.get(i + 1) {
            let e = next
                .entered_by
                .iter()
                .find(|e| e.from.as_deref() == Some(list))?;
            return Some((e.within, &e.packet));
        }
        self.opens
            .iter()
            .find(|o| &o.from == list)
            .map(|o| (o.within, &o.packet))
    }
}

// ---------------------------------------------------------------------------------------
// iptables-save

/// The rules of `iptables-save` output (`family` `ip` for iptables, `ip6` for ip6tables),
/// in order; tables are named `FAMILY TABLE` so IPv4 and IPv6 schemes stay apart.
pub fn parse_iptables(text: &str, family: &str) -> Vec<RuleInfo> {
    let mut out = Vec::new();
    let mut table = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(t) = line.strip_prefix('*') {
            table = t.trim().to_owned();
            continue;
        }
        if !line.starts_with("-A ") {
            continue;
        }
        let w = crate::audit::rules::words(line);
        let chain = w.get(1).cloned().unwrap_or_default();
        let mut packet = Packet::default();
        let mut ops = Vec::new();
        let mut target = Target::Other;
        let mut in_recent = false;
        let mut cur: Option<ListOp> = None;
        let mut negate = false;
        let mut i = 2;
        let at = |i: usize| w.get(i).cloned();
        while i < w.len() {
            let word = w[i].as_str();
            match word {
                "!" => {
                    negate = true;
                    i += 1;
                    continue;
                }
                "-m" | "--match" => {
                    if let Some(op) = cur.take() {
                        ops.push(op);
                    }
                    in_recent = at(i + 1).as_deref() == Some("recent");
                    if in_recent {
                        cur = Some(ListOp {
                            list: "DEFAULT".into(),
                            op: Op::Check,
                            seconds: None,
                            hitcount: None,
                            reap: false,
                            rttl: false,
                            inverted: false,
                        });
                    }
                    i += 2;
                }
                "-p" | "--protocol" => {
                    packet.proto = at(i + 1);
                    i += 2;
                }
                "-s" | "--source" => {
                    packet.src = at(i + 1);
                    i += 2;
                }
                "--dport" | "--destination-port" | "--dports" | "--destination-ports" => {
                    packet.dport = at(i + 1);
                    i += 2;
                }
                "--icmp-type" | "--icmpv6-type" => {
                    packet.icmp_type = at(i + 1);
                    i += 2;
                }
                "-j" | "-g" | "--jump" | "--goto" => {
                    target = match at(i + 1).as_deref() {
                        Some("ACCEPT") => Target::Accept,
                        Some("DROP" | "REJECT") => Target::Drop,
                        Some("RETURN" | "LOG" | "MARK" | "CONNMARK" | "NFLOG" | "") | None => {
                            Target::Other
                        }
                        Some(c) => Target::Jump(c.to_owned()),
                    };
                    i += 2;
                }
                _ if in_recent => {
                    if let Some(op) = cur.as_mut() {
                        match word {
                            "--name" => op.list = at(i + 1).unwrap_or_default(),
                            "--set" => op.op = Op::Set,
                            "--rcheck" => op.op = Op::Check,
                            "--update" => op.op = Op::Update,
                            "--remove" => op.op = Op::Remove,
                            "--seconds" => op.seconds = at(i + 1).and_then(|s| s.parse().ok()),
                            "--hitcount" => op.hitcount = at(i + 1).and_then(|s| s.parse().ok()),
                            "--reap" => op.reap = true,
                            "--rttl" => op.rttl = true,
                            _ => {}
                        }
                        if matches!(word, "--set" | "--rcheck" | "--update" | "--remove") {
                            op.inverted = negate;
                        }
                    }
                    i += if matches!(word, "--name" | "--seconds" | "--hitcount" | "--mask") {
                        2
                    } else {
                        1
                    };
                }
                _ => i += 1,
            }
            negate = false;
        }
        if let Some(op) = cur.take() {
            ops.push(op);
        }
        out.push(RuleInfo {
            lang: Lang::Iptables,
            table: format!("{family} {table}"),
            chain,
            text: line.to_owned(),
            packet,
            ops,
            target,
        });
    }
    out
}

// ---------------------------------------------------------------------------------------
// nft -j list ruleset

/// The rules of `nft -j list ruleset` (native tables; iptables-nft's xt rules are read from
/// iptables-save instead), with each lookup's time limit taken from the timeout its set's
/// elements get: an add/update timeout, else the set's default.
pub fn parse_nft(json: &str) -> Vec<RuleInfo> {
    let Ok(root) = serde_json::from_str::<Value>(json) else {
        return Vec::new();
    };
    let Some(items) = root.get("nftables").and_then(Value::as_array) else {
        return Vec::new();
    };
    let mut defaults: BTreeMap<(String, String), Option<u64>> = BTreeMap::new();
    for it in items {
        if let Some(s) = it.get("set").or_else(|| it.get("map")) {
            let key = (table_of(s), s["name"].as_str().unwrap_or("").to_owned());
            defaults.insert(
                key,
                s.get("timeout").and_then(Value::as_f64).map(|t| t as u64),
            );
        }
    }
    let mut out = Vec::new();
    for it in items {
        let Some(r) = it.get("rule") else { continue };
        let table = table_of(r);
        let chain = r["chain"].as_str().unwrap_or("").to_owned();
        let mut packet = Packet::default();
        let mut ops = Vec::new();
        let mut target = Target::Other;
        let mut text = Vec::new();
        for e in r
            .get("expr")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(m) = e.get("match") {
                let left = render(&m["left"]);
                let right = &m["right"];
                let op = m["op"].as_str().unwrap_or("==");
                let neg = op == "!=";
                match right.as_str() {
                    Some(set) if set.starts_with('@') => {
                        ops.push(ListOp {
                            list: set[1..].to_owned(),
                            op: Op::Check,
                            seconds: None,
                            hitcount: None,
                            reap: false,
                            rttl: false,
                            inverted: neg,
                        });
                    }
                    _ => {
                        let field = m["left"]["payload"]["field"].as_str().unwrap_or("");
                        let proto = m["left"]["payload"]["protocol"].as_str().unwrap_or("");
                        match (proto, field) {
                            (p @ ("tcp" | "udp" | "sctp"), "dport") => {
                                packet.proto = Some(p.to_owned());
                                packet.dport = Some(render(right));
                            }
                            (p @ ("icmp" | "icmpv6"), "type") => {
                                packet.proto = Some(p.to_owned());
                                packet.icmp_type = Some(render(right));
                            }
                            ("ip" | "ip6", "saddr") => packet.src = Some(render(right)),
                            _ => {
                                if m["left"]["meta"]["key"].as_str() == Some("l4proto") {
                                    packet.proto = Some(render(right));
                                }
                            }
                        }
                    }
                }
                let op_text = if op == "==" || op == "in" {
                    String::new()
                } else {
                    format!("{op} ")
                };
                text.push(format!("{left} {op_text}{}", render(right)));
            } else if let Some(s) = e.get("set").or_else(|| e.get("map")) {
                let name = s
                    .get("set")
                    .or_else(|| s.get("map"))
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .trim_start_matches('@')
                    .to_owned();
                let verb = s["op"].as_str().unwrap_or("add");
                let elem = s.get("elem").unwrap_or(&Value::Null);
                let inner = elem.get("elem").unwrap_or(elem);
                let key = inner.get("val").unwrap_or(inner);
                let timeout = inner
                    .get("timeout")
                    .and_then(Value::as_f64)
                    .map(|t| t as u64);
                let timeout = timeout.or_else(|| {
                    defaults
                        .get(&(table.clone(), name.clone()))
                        .copied()
                        .flatten()
                });
                let op = match verb {
                    "delete" => Op::Remove,
                    _ => Op::Set,
                };
                ops.push(ListOp {
                    list: name.clone(),
                    op,
                    seconds: if op == Op::Set { timeout } else { None },
                    hitcount: None,
                    reap: false,
                    rttl: false,
                    inverted: false,
                });
                let t = inner
                    .get("timeout")
                    .and_then(Value::as_f64)
                    .map(|t| format!(" timeout {t}s"))
                    .unwrap_or_default();
                text.push(format!("{verb} @{name} {{ {}{t} }}", render(key)));
            } else if e.get("accept").is_some() {
                target = Target::Accept;
                text.push("accept".into());
            } else if e.get("drop").is_some() || e.get("reject").is_some() {
                target = Target::Drop;
                text.push("drop".into());
            } else if let Some(j) = e.get("jump").or_else(|| e.get("goto")) {
                let c = j["target"].as_str().unwrap_or("").to_owned();
                text.push(format!(
                    "{} {c}",
                    if e.get("jump").is_some() {
                        "jump"
                    } else {
                        "goto"
                    }
                ));
                target = Target::Jump(c);
            } else if e.get("counter").is_some() {
                text.push("counter".into());
            }
        }
        out.push(RuleInfo {
            lang: Lang::Nft,
            table: table.clone(),
            chain,
            text: text.join(" "),
            packet,
            ops,
            target,
        });
    }
    // The time a source may stay in a set is the timeout it was added with.
    let limits: BTreeMap<(String, String), u64> = out
        .iter()
        .flat_map(|r| {
            r.ops
                .iter()
                .filter(|o| o.op == Op::Set)
                .filter_map(move |o| Some(((r.table.clone(), o.list.clone()), o.seconds?)))
        })
        .collect();
    for r in &mut out {
        for o in &mut r.ops {
            if o.op == Op::Check {
                o.seconds = limits.get(&(r.table.clone(), o.list.clone())).copied();
            }
        }
    }
    out
}

fn table_of(v: &Value) -> String {
    format!(
        "{} {}",
        v["family"].as_str().unwrap_or(""),
        v["table"].as_str().unwrap_or("")
    )
}

// ---------------------------------------------------------------------------------------
// building

/// Set operations a jump from `rule` reaches unconditionally, with the rules that do them
/// and any ACCEPT found on the way (depth-limited: chains may loop).
fn reached<'r>(
    rules: &'r [RuleInfo],
    rule: &'r RuleInfo,
    depth: usize,
    sets: &mut Vec<(&'r ListOp, Vec<&'r RuleInfo>)>,
    accepts: &mut Vec<Vec<&'r RuleInfo>>,
    path: &mut Vec<&'r RuleInfo>,
) {
    path.push(rule);
    for op in rule.ops.iter().filter(|o| o.op == Op::Set && !o.inverted) {
        sets.push((op, path.clone()));
    }
    match &rule.target {
        Target::Accept => accepts.push(path.clone()),
        Target::Jump(c) if depth < 8 => {
            for r in rules
                .iter()
                .filter(|r| &r.chain == c && r.table == rule.table && r.lang == rule.lang)
            {
                // A rule with its own list condition is a transition of its own.
                if r.ops.iter().any(|o| matches!(o.op, Op::Check | Op::Update)) {
                    continue;
                }
                reached(rules, r, depth + 1, sets, accepts, path);
            }
        }
        _ => {}
    }
    path.pop();
}

fn path_text(path: &[&RuleInfo]) -> Vec<String> {
    path.iter()
        .map(|r| format!("{}: {}", r.chain, r.text))
        .collect()
}

fn merged(path: &[&RuleInfo]) -> Packet {
    let mut p = Packet::default();
    for r in path {
        let q = &r.packet;
        p.proto = q.proto.clone().or(p.proto);
        p.dport = q.dport.clone().or(p.dport);
        p.icmp_type = q.icmp_type.clone().or(p.icmp_type);
        p.src = q.src.clone().or(p.src);
    }
    p
}

/// Rebuild every knock machine of a ruleset (one per table and entry list).
pub fn build(rules: &[RuleInfo]) -> Vec<Machine> {
    let mut edges: Vec<(Lang, String, Edge)> = Vec::new();
    let mut opens: Vec<(Lang, String, Opening)> = Vec::new();
    let mut purged: BTreeSet<(Lang, String, String)> = BTreeSet::new();
    for r in rules {
        for o in &r.ops {
            if o.op == Op::Remove || o.reap {
                purged.insert((r.lang, r.table.clone(), o.list.clone()));
            }
        }
        // Only rules on a path from a base chain start transitions; rules inside a jumped-to
        // chain are walked from their caller (unless they check a list themselves).
        let cond = r
            .ops
            .iter()
            .find(|o| matches!(o.op, Op::Check | Op::Update) && !o.inverted);
        let called = rules
            .iter()
            .any(|c| c.table == r.table && c.target == Target::Jump(r.chain.clone()));
        if cond.is_none() && called {
            continue;
        }
        if cond.is_none() && r.ops.iter().all(|o| o.op != Op::Set) {
            continue;
        }
        let mut sets = Vec::new();
        let mut accepts = Vec::new();
        reached(rules, r, 0, &mut sets, &mut accepts, &mut Vec::new());
        for (op, path) in &sets {
            if cond.is_some_and(|c| c.list == op.list) {
                continue;
            }
            edges.push((
                r.lang,
                r.table.clone(),
                Edge {
                    from: cond.map(|c| c.list.clone()),
                    to: op.list.clone(),
                    packet: merged(path),
                    within: cond.and_then(|c| c.seconds),
                    hitcount: cond.and_then(|c| c.hitcount),
                    path: path_text(path),
                },
            ));
        }
        if let (Some(c), true) = (cond, sets.is_empty()) {
            for path in &accepts {
                opens.push((
                    r.lang,
                    r.table.clone(),
                    Opening {
                        from: c.list.clone(),
                        packet: merged(path),
                        within: c.seconds,
                        hitcount: c.hitcount,
                        path: path_text(path),
                    },
                ));
            }
        }
    }
    // Chain the edges into machines, from each list entered without a condition.
    let mut out = Vec::new();
    let mut entries: Vec<(Lang, String, String)> = edges
        .iter()
        .filter(|(_, _, e)| e.from.is_none())
        .map(|(l, t, e)| (*l, t.clone(), e.to.clone()))
        .collect();
    entries.dedup();
    let mut seen_entry = BTreeSet::new();
    for (lang, table, first) in entries {
        if !seen_entry.insert((lang, table.clone(), first.clone())) {
            continue;
        }
        let mut stages: Vec<Stage> = Vec::new();
        let mut list = first;
        loop {
            let entered_by: Vec<Edge> = edges
                .iter()
                .filter(|(l, t, e)| *l == lang && *t == table && e.to == list)
                .map(|(_, _, e)| e.clone())
                .collect();
            stages.push(Stage {
                list: list.clone(),
                entered_by,
            });
            let next = edges.iter().find(|(l, t, e)| {
                *l == lang
                    && *t == table
                    && e.from.as_deref() == Some(list.as_str())
                    && !stages.iter().any(|s| s.list == e.to)
            });
            match next {
                Some((_, _, e)) => list = e.to.clone(),
                None => break,
            }
        }
        let last = stages.last().map(|s| s.list.clone()).unwrap_or_default();
        let machine_opens = opens
            .iter()
            .filter(|(l, t, o)| *l == lang && *t == table && o.from == last)
            .map(|(_, _, o)| o.clone())
            .collect();
        let purged = purged
            .iter()
            .filter(|(l, t, _)| *l == lang && *t == table)
            .map(|(_, _, n)| n.clone())
            .collect();
        out.push(Machine {
            lang,
            table: table.clone(),
            stages,
            opens: machine_opens,
            purged,
        });
    }
    out
}

// ---------------------------------------------------------------------------------------
// progress

/// How long ago a source entered a list (xt: its newest stamp), or how long it has left
/// there (nft: the element's expiry).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Presence {
    /// Seconds since the source was last recorded, and how many packets the list holds
    /// for it (what `--hitcount` counts).
    Age { secs: f64, hits: usize },
    /// Seconds until the kernel drops the element (`None`: never).
    Expires(Option<f64>),
}

/// One source's place in a machine.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    pub addr: IpAddr,
    /// 1-based stage reached.
    pub stage: usize,
    pub of: usize,
    pub list: String,
    /// The knock that moves it on (`8000`), or what is now open (`3306`).
    pub next: String,
    /// Whether the source has reached the last stage (the opening is available).
    pub open: bool,
    /// Seconds left to knock `next`; `None` when there is no limit.
    pub seconds_left: Option<f64>,
    /// The limit ran out: the source is stuck at this stage.
    pub expired: bool,
    /// `10.0.0.5: stage 2/4 (seenecho), 7 s left to knock 8000`.
    pub text: String,
}

/// Each source's progress: the furthest stage whose list holds it. `presence(list, addr)`
/// says whether and how a list holds an address.
pub fn progress(
    m: &Machine,
    presence: &dyn Fn(&str, IpAddr) -> Option<Presence>,
    addrs: &BTreeSet<IpAddr>,
) -> Vec<Progress> {
    let mut out = Vec::new();
    for &addr in addrs {
        let Some((i, pres)) = m
            .stages
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, s)| presence(&s.list, addr).map(|p| (i, p)))
        else {
            continue;
        };
        let list = m.stages[i].list.clone();
        let open = i + 1 == m.stages.len() && !m.opens.is_empty();
        let (limit, packet) = match m.next_of(i) {
            Some((w, p)) => (w, p.short()),
            None => (None, "nothing (no rule leads on)".into()),
        };
        let left = match (pres, limit) {
            (Presence::Age { secs, .. }, Some(l)) => Some(l as f64 - secs),
            (Presence::Age { .. }, None) => None,
            (Presence::Expires(e), _) => e,
        };
        let expired = left.is_some_and(|l| l <= 0.0);
        // `--hitcount N` on the way out: the knock into this stage must be repeated.
        let hits_needed = match (pres, m.hitcount_of(i)) {
            (Presence::Age { hits, .. }, Some(n)) if hits < n as usize => {
                format!(" (needs {n} hits in {list}, has {hits})")
            }
            _ => String::new(),
        };
        let head = format!(
            "{addr}: stage {}/{} ({list}){hits_needed}",
            i + 1,
            m.total()
        );
        let text = match (open, left) {
            (true, Some(l)) if l > 0.0 => {
                format!("{head}, open: {l:.0} s left to connect to {packet}")
            }
            (true, Some(l)) => format!(
                "{head}, too slow: the time to connect to {packet} ran out {:.0} s ago",
                -l
            ),
            (true, None) => format!("{head}, open: may connect to {packet} (no time limit)"),
            (false, Some(l)) if l > 0.0 => format!("{head}, {l:.0} s left to knock {packet}"),
            (false, Some(l)) => format!(
                "{head}, too slow: the time to knock {packet} ran out {:.0} s ago",
                -l
            ),
            (false, None) => format!("{head}, next knock {packet} (no time limit)"),
        };
        out.push(Progress {
            addr,
            stage: i + 1,
            of: m.total(),
            list,
            next: packet,
            open,
            seconds_left: left.map(|l| l.max(0.0)),
            expired,
            text,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seed 004's rules as `iptables-save` prints them after the seed's commands.
    pub const SEED: &str = "*filter
:INPUT ACCEPT [0:0]
:ADD_BACKEND - [0:0]
:ADD_ECHO - [0:0]
-A INPUT -p icmp -m icmp --icmp-type 8 -m recent --set --name seenping --mask 255.255.255.255 --rsource -j ACCEPT
-A INPUT -p tcp -m tcp --dport 7 -m recent --rcheck --name seenping --mask 255.255.255.255 --rsource -j ADD_ECHO
-A INPUT -p tcp -m tcp --dport 8000 -m recent --rcheck --seconds 10 --name seenecho --mask 255.255.255.255 --rsource -j ADD_BACKEND
-A INPUT -m recent --remove --name seenecho --mask 255.255.255.255 --rsource
-A INPUT -p tcp -m tcp --dport 3306 -m recent --rcheck --name seenbackend --mask 255.255.255.255 --rsource -j ACCEPT
-A ADD_BACKEND -m recent --set --name seenbackend --mask 255.255.255.255 --rsource -j ACCEPT
-A ADD_ECHO -m recent --set --name seenecho --mask 255.255.255.255 --rsource -j ACCEPT
COMMIT
";

    #[test]
    fn seed_knock_rebuilds_as_four_stages() {
        let ms = build(&parse_iptables(SEED, "ip"));
        assert_eq!(ms.len(), 1, "{ms:#?}");
        let m = &ms[0];
        let lists: Vec<_> = m.stages.iter().map(|s| s.list.as_str()).collect();
        assert_eq!(lists, ["seenping", "seenecho", "seenbackend"]);
        assert_eq!(m.total(), 4);
        assert!(m.stages[0].entered_by[0].packet.is_ping());
        assert_eq!(m.stages[1].entered_by[0].packet.short(), "7");
        assert_eq!(m.stages[1].entered_by[0].within, None);
        assert_eq!(m.stages[2].entered_by[0].within, Some(10));
        assert_eq!(m.stages[2].entered_by[0].path.len(), 2);
        assert!(m.stages[2].entered_by[0].path[1].starts_with("ADD_BACKEND: "));
        assert_eq!(m.opens.len(), 1);
        assert_eq!(m.opens[0].packet.port(), Some(3306));
        assert_eq!(m.purged.iter().collect::<Vec<_>>(), ["seenecho"]);
    }

    #[test]
    fn progress_reads_like_the_issue() {
        let m = &build(&parse_iptables(SEED, "ip"))[0];
        let a: IpAddr = "10.0.0.5".parse().unwrap();
        let b: IpAddr = "10.0.0.6".parse().unwrap();
        let pres = |list: &str, addr: IpAddr| match (list, addr == a) {
            ("seenping" | "seenecho", true) => Some(Presence::Age { secs: 3.0, hits: 1 }),
            ("seenping" | "seenecho", false) => Some(Presence::Age {
                secs: 12.0,
                hits: 1,
            }),
            _ => None,
        };
        let p = progress(m, &pres, &[a, b].into_iter().collect());
        assert_eq!(
            p[0].text,
            "10.0.0.5: stage 2/4 (seenecho), 7 s left to knock 8000"
        );
        assert!(p[1].expired);
        assert!(p[1].text.contains("too slow"), "{}", p[1].text);
        let open =
            |list: &str, _| (list == "seenbackend").then_some(Presence::Age { secs: 1.0, hits: 1 });
        let p = progress(m, &open, &[a].into_iter().collect());
        assert!(p[0].open);
        assert_eq!(
            p[0].text,
            "10.0.0.5: stage 3/4 (seenbackend), open: may connect to 3306 (no time limit)"
        );
    }

    #[test]
    fn hitcount_on_the_way_out_is_shown() {
        let rules = "*filter
-A INPUT -p tcp -m tcp --dport 1111 -m recent --set --name k1 -j DROP
-A INPUT -p tcp -m tcp --dport 22 -m recent --rcheck --seconds 10 --hitcount 3 --name k1 -j ACCEPT
";
        let m = &build(&parse_iptables(rules, "ip"))[0];
        assert_eq!(m.hitcount_of(0), Some(3));
        let a: IpAddr = "10.0.0.7".parse().unwrap();
        let pres = |_: &str, _| Some(Presence::Age { secs: 2.0, hits: 1 });
        let p = progress(m, &pres, &[a].into_iter().collect());
        assert_eq!(
            p[0].text,
            "10.0.0.7: stage 1/2 (k1) (needs 3 hits in k1, has 1), open: 8 s left to connect to 22"
        );
    }

    #[test]
    fn odd_rules_never_panic() {
        for t in [
            "-A",
            "-A X -m recent",
            "-A X -m recent --name",
            "-A X -j",
            "-A X ! --rcheck -m recent --seconds x",
        ] {
            let _ = build(&parse_iptables(t, "ip"));
        }
        assert!(parse_nft("nope").is_empty());
        // A chain that jumps to itself ends.
        let loops =
            "*filter\n-A L -m recent --name a --rcheck -j L\n-A L -m recent --name b --set -j L\n";
        let _ = build(&parse_iptables(loops, "ip"));
    }
}
