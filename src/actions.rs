//! Actions: what a delete or flush will remove (a `Plan`, described for the confirmation
//! the user sees before anything happens) and its execution over a `Conn` (a `Report`:
//! removed, already gone, re-created since planning, refused).
//!
//! A plan is a value: the exact entries shown, each in the life it had when planned
//! (`Lives`). Events seen after planning mark an entry destroyed or re-created, and such an
//! entry is skipped, never sent (see `Lives::observe` for what can and cannot be told).
//!
//! Two safety rules live here so every front end gets them: the flow carrying the admin's
//! own SSH session (found from the process tree, see `crate::ssh`; when it cannot be
//! found, every flow to a local sshd) is left out unless explicitly included, and a plan
//! that deletes established TCP flows warns when `nf_conntrack_tcp_loose=0`, because the
//! kernel will then not pick those sessions up again and they are cut.
//! This module never renders and never touches sockets except through `Conn`.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::decode::{self, Message};
use crate::engine::{Item, Poll, Source};
use crate::error::Error;
use crate::model::store::{ExpectKey, FlowKey};
use crate::model::tuple::{proto, Tuple};
use crate::model::{Event, Record};
use crate::model::{Expectation, Flow, Store};
use crate::netlink::{netns, Conn, Namespace, Table};

/// How many entries a plan shows as a sample.
const SAMPLE: usize = 5;
/// `TCP_CONNTRACK_ESTABLISHED` (enum tcp_conntrack).
const TCP_ESTABLISHED: u8 = 3;

/// One thing to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `conntrack -D`: one flow, only if its kernel id is still `id`.
    Flow { key: FlowKey, id: u32 },
    /// `conntrack -D expect`: one expectation, only if its id is still `id`.
    Expect { key: ExpectKey, id: u32 },
    /// `conntrack -F`: every flow.
    FlushFlows,
    /// `conntrack -F expect`: every expectation.
    FlushExpects,
    /// Every expectation created by this helper (no conntrack(8) equivalent).
    FlushHelper(String),
    /// `echo -ADDR > /proc/net/xt_recent/NAME` or `nft delete element`: one address of a
    /// recency list (`recent::act`).
    ListDelete {
        list: crate::recent::act::ListRef,
        addr: IpAddr,
    },
    /// `echo / > /proc/net/xt_recent/NAME` or `nft flush set`: a whole recency list.
    ListFlush(crate::recent::act::ListRef),
}

impl Target {
    /// Whether this acts on a recency list (run by `recent::act`, not over ctnetlink).
    pub fn is_list(&self) -> bool {
        matches!(self, Target::ListDelete { .. } | Target::ListFlush(_))
    }
}

/// One planned entry, by the kernel's identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entry {
    Flow(FlowKey),
    Expect(ExpectKey),
}

impl Entry {
    /// The flow, if this entry is one.
    pub fn flow(self) -> Option<FlowKey> {
        match self {
            Entry::Flow(k) => Some(k),
            Entry::Expect(_) => None,
        }
    }

    /// The expectation, if this entry is one.
    pub fn expect(self) -> Option<ExpectKey> {
        match self {
            Entry::Expect(k) => Some(k),
            Entry::Flow(_) => None,
        }
    }
}

impl From<FlowKey> for Entry {
    fn from(k: FlowKey) -> Entry {
        Entry::Flow(k)
    }
}

impl From<ExpectKey> for Entry {
    fn from(k: ExpectKey) -> Entry {
        Entry::Expect(k)
    }
}

/// One life of an entry: what tells a re-created entry under the same identity from the
/// one that was planned. `CTA_ID` alone cannot: `nf_ct_get_id` hashes the object's
/// address, so an entry re-created in the same slab slot gets the same id. The start
/// time (`CTA_TIMESTAMP_START`, with `nf_conntrack_timestamp=1`) is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Life {
    /// `CTA_ID` (0: not known).
    pub id: u32,
    /// Start in ns since the epoch (0: timestamps off).
    pub start: u64,
}

impl Life {
    pub fn of_flow(f: &Flow) -> Life {
        Life {
            id: f.id,
            start: f
                .extra
                .as_deref()
                .and_then(|e| e.timestamp)
                .map_or(0, |t| t.0),
        }
    }

    pub fn of_expect(e: &Expectation) -> Life {
        Life { id: e.id, start: 0 }
    }

    /// Whether `other` is this same life, as far as the kernel lets us tell: the start
    /// time when both have one, else the id (an unknown id cannot tell them apart).
    pub fn same(&self, other: &Life) -> bool {
        if self.start != 0 && other.start != 0 {
            return self.start == other.start;
        }
        self.id == 0 || other.id == 0 || self.id == other.id
    }
}

/// The identity and life a record reports.
pub fn sighting(record: &Record) -> (Entry, Life) {
    match record {
        Record::Flow(f) => (Entry::Flow(FlowKey::of(f)), Life::of_flow(f)),
        Record::Expect(e) => (Entry::Expect(ExpectKey::of(e)), Life::of_expect(e)),
    }
}

/// What happened to a planned entry after planning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// The planned life ended (its DESTROY was seen).
    Destroyed,
    /// Another life holds the identity now (a NEW, UPDATE or dump of a different life, or
    /// a NEW after the planned life's DESTROY).
    Recreated,
}

/// The lives a plan targets and what the event stream said about them since.
///
/// Fed every event (and re-dumped entry) that arrives after planning, by whoever holds the
/// subscription: the CLI from its dump until the delete ends, the dashboard while the
/// dialog is open, the engine until the plan has run. The planner must have applied every
/// event queued before it planned. What it cannot see: a re-creation after lost events
/// (ENOBUFS) that kept the id with timestamps off and sent no NEW (`nf_conntrack_events=0`);
/// and anything between the last event read and the delete request (microseconds), where
/// only the kernel's `CTA_ID` check guards.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lives {
    /// Planned entries and their lives, sorted by entry once planning is done: a sorted
    /// vector costs 64 bytes an entry where a hash map costs twice that, which matters
    /// for a plan over a million flows.
    planned: Vec<(Entry, Life)>,
    sorted: bool,
    /// Only entries something happened to (few).
    fates: HashMap<Entry, Fate>,
    /// Events were lost (ENOBUFS) since planning: fates may be missing.
    pub lost: bool,
}

impl Lives {
    pub fn plan(&mut self, entry: Entry, life: Life) {
        self.planned.push((entry, life));
        self.sorted = false;
    }

    pub fn plan_flow(&mut self, f: &Flow) {
        self.plan(Entry::Flow(FlowKey::of(f)), Life::of_flow(f));
    }

    pub fn plan_expect(&mut self, e: &Expectation) {
        self.plan(Entry::Expect(ExpectKey::of(e)), Life::of_expect(e));
    }

    /// Sort (and deduplicate, the last planned life winning) before lookups.
    fn index(&mut self) {
        if !self.sorted {
            // Stable: of equal entries the last planned stays last, and dedup keeps the
            // first of a run, so reverse around it.
            self.planned.reverse();
            self.planned.sort_by_key(|p| p.0);
            self.planned.dedup_by(|a, b| a.0 == b.0);
            self.planned.shrink_to_fit();
            self.sorted = true;
        }
    }

    fn life(&mut self, entry: &Entry) -> Option<Life> {
        self.index();
        self.planned
            .binary_search_by(|p| p.0.cmp(entry))
            .ok()
            .map(|i| self.planned[i].1)
    }

    /// What happened to `entry` since planning (`None`: nothing seen).
    pub fn fate(&self, entry: &Entry) -> Option<Fate> {
        self.fates.get(entry).copied()
    }

    pub fn is_empty(&self) -> bool {
        self.planned.is_empty()
    }

    /// Add the entries (and fates) of `other`.
    pub fn extend(&mut self, other: Lives) {
        self.planned.extend(other.planned);
        self.sorted = false;
        self.fates.extend(other.fates);
        self.lost |= other.lost;
    }

    /// Take one event seen after planning into account.
    pub fn observe(&mut self, event: Event, record: &Record) {
        if self.planned.is_empty() {
            return;
        }
        let (entry, life) = sighting(record);
        self.observe_one(event, entry, life);
    }

    /// `observe` for a record already reduced to its identity and life.
    pub fn observe_one(&mut self, event: Event, entry: Entry, life: Life) {
        let Some(planned) = self.life(&entry) else {
            return;
        };
        let same = planned.same(&life);
        let fate = match (event, same, self.fates.get(&entry)) {
            (_, _, Some(Fate::Recreated)) => return,
            // Whoever plans has read every event queued before planning (netlink queues
            // an event on the socket as the kernel emits it), so a NEW read now was
            // emitted after planning: a new life, even with the same id and no DESTROY
            // (one created before anyone listened ends silently under events=2).
            (Event::New, _, _) => Fate::Recreated,
            (Event::Destroy, true, _) => Fate::Destroyed,
            // The DESTROY of an older life: not ours.
            (Event::Destroy, false, _) => return,
            (_, true, _) => return,
            // An UPDATE or re-dump of another life under the key.
            (_, false, _) => Fate::Recreated,
        };
        self.fates.insert(entry, fate);
    }

    /// Check one entry against the kernel's answer to a get, for when events were lost:
    /// `now` is the record the kernel returned, `None` if it had none.
    pub fn verify(&mut self, entry: Entry, now: Option<&Record>) {
        let Some(planned) = self.life(&entry) else {
            return;
        };
        let fate = match now {
            None => Fate::Destroyed,
            Some(Record::Flow(f)) if !planned.same(&Life::of_flow(f)) => Fate::Recreated,
            Some(Record::Expect(e)) if !planned.same(&Life::of_expect(e)) => Fate::Recreated,
            Some(_) => return,
        };
        self.fates.entry(entry).or_insert(fate);
    }
}

/// The admin's own SSH session, from `SSH_CONNECTION`
/// ("client_ip client_port server_ip server_port", set by sshd).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SshSession {
    pub client: IpAddr,
    pub client_port: u16,
    pub server: IpAddr,
    pub server_port: u16,
}

impl SshSession {
    /// Parse an `SSH_CONNECTION` value; `None` if it is not one.
    pub fn parse(s: &str) -> Option<SshSession> {
        let mut it = s.split_whitespace();
        let ip = |w: &str| -> Option<IpAddr> {
            // Link-local addresses may carry a scope (`fe80::1%eth0`).
            let w = w.split('%').next()?;
            w.parse::<IpAddr>().ok().map(|a| a.to_canonical())
        };
        let session = SshSession {
            client: ip(it.next()?)?,
            client_port: it.next()?.parse().ok()?,
            server: ip(it.next()?)?,
            server_port: it.next()?.parse().ok()?,
        };
        it.next().is_none().then_some(session)
    }

    /// From the environment of this process.
    pub fn from_env() -> Option<SshSession> {
        std::env::var("SSH_CONNECTION")
            .ok()
            .and_then(|v| SshSession::parse(&v))
    }

    /// Whether `f` carries this session, seen from either side and through NAT (the
    /// original or the reply tuple, in either direction).
    pub fn matches(&self, f: &Flow) -> bool {
        if f.orig.proto != proto::TCP {
            return false;
        }
        let hit = |t: &Tuple| {
            let (s, d) = (t.src_ip().to_canonical(), t.dst_ip().to_canonical());
            (s == self.client
                && t.sport == self.client_port
                && d == self.server
                && t.dport == self.server_port)
                || (s == self.server
                    && t.sport == self.server_port
                    && d == self.client
                    && t.dport == self.client_port)
        };
        hit(&f.orig) || hit(&f.reply())
    }
}

/// What a plan must know about the place it runs in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context {
    /// The admin's SSH session, if any.
    pub ssh: Option<SshSession>,
    /// When no session could be determined: the sockets sshd listens on in the target
    /// namespace. Every flow to one of them is spared, since any could be the admin's.
    pub sshd: Vec<crate::ssh::Listener>,
    /// Include the SSH session's flow anyway (the user asked explicitly).
    pub include_ssh: bool,
    /// `net.netfilter.nf_conntrack_tcp_loose` in the target namespace, if readable.
    pub tcp_loose: Option<bool>,
}

impl Context {
    /// The admin's SSH session from the process tree (which survives sudo's
    /// `env_reset`), else from `SSH_CONNECTION`; failing both, the sshd listeners of
    /// `ns`. And the namespace's `nf_conntrack_tcp_loose`.
    pub fn detect(ns: &Namespace) -> Context {
        let ssh = crate::ssh::session().or_else(SshSession::from_env);
        Context {
            sshd: if ssh.is_none() {
                crate::ssh::listeners(ns)
            } else {
                Vec::new()
            },
            ssh,
            include_ssh: false,
            tcp_loose: tcp_loose(ns),
        }
    }

    /// Whether `f` is spared to keep the admin's SSH session: it is the session's flow,
    /// or, with no session known, it goes to a local sshd. Never when `include_ssh`.
    pub fn spares(&self, f: &Flow) -> bool {
        if self.include_ssh {
            return false;
        }
        match &self.ssh {
            Some(s) => s.matches(f),
            None => self.sshd.iter().any(|l| l.matches(f)),
        }
    }
}

/// `net.netfilter.nf_conntrack_tcp_loose` as seen inside `ns`.
pub fn tcp_loose(ns: &Namespace) -> Option<bool> {
    netns::read_sysctl(ns, "net/netfilter/nf_conntrack_tcp_loose").map(|v| v != "0")
}

/// A confirmed-before-run list of removals, with what the confirmation shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub targets: Vec<Target>,
    /// One line: what this plan removes ("flows matching the filter", …).
    pub what: String,
    /// Flows it removes (for a flush: as the store knows them now).
    pub flows: usize,
    /// Of those, RELATED flows (created by an expectation).
    pub related: usize,
    /// Of those, masters (flows with RELATED children or expectations).
    pub masters: usize,
    /// Expectations it removes.
    pub expects: usize,
    /// Recency-list entries it removes (for a list flush: as the snapshot showed them).
    pub list_entries: usize,
    /// Addresses left out of a list plan because they are (or may be) the admin's SSH
    /// client (`i` takes them in).
    pub spared_addrs: Vec<IpAddr>,
    /// What a list plan was made from, so `replan` can make it again.
    pub list: Option<Box<crate::recent::act::ListScope>>,
    /// A few entries, as text.
    pub sample: Vec<String>,
    /// The SSH session's flow that was left out, as text (the first one, when every flow
    /// to a local sshd was left out).
    pub excluded_ssh: Option<String>,
    /// Flows left out because they go to a local sshd and the session itself could not be
    /// determined (0 when the session was known).
    pub excluded_sshd: usize,
    /// Every flow left out to keep the admin's SSH session, by key (its life is in
    /// `lives` too), so [`Plan::replan`] can take them in when the user asks.
    pub spared: Vec<FlowKey>,
    /// Things the user should know before confirming.
    pub warnings: Vec<String>,
    /// The life of every planned entry, and what happened to it since.
    pub lives: Lives,
    /// For a plan made from the engine's records: how many records the engine had
    /// delivered when the planner last looked. The engine shows the plan every record
    /// from there on, including those already on their way to the planner.
    pub after: Option<u64>,
}

/// Keys of every flow that is a master: of a RELATED flow or of a live expectation.
fn masters(store: &Store) -> HashSet<FlowKey> {
    let mut m = HashSet::new();
    for f in store.flows() {
        if let Some(t) = f.master() {
            m.insert(FlowKey {
                orig: *t,
                ..FlowKey::of(f)
            });
        }
    }
    for e in store.expectations() {
        m.insert(FlowKey::new(e.zone, e.master));
    }
    m
}

/// A flow as one sample line.
pub fn flow_line(f: &Flow) -> String {
    let mut s = f.orig.to_string();
    if let Some(st) = f.state_name() {
        s.push(' ');
        s.push_str(st);
    }
    if f.is_related() {
        s.push_str(" RELATED");
    }
    if let Some(h) = f.helper.name() {
        s.push_str(&format!(" helper={h}"));
    }
    if f.zone != 0 {
        s.push_str(&format!(" zone={}", f.zone));
    }
    s
}

impl Plan {
    /// Delete every flow for which `pred` holds.
    pub fn flows(store: &Store, pred: &dyn Fn(&Flow) -> bool, what: &str, ctx: &Context) -> Plan {
        let m = masters(store);
        let mut plan = Plan {
            what: what.to_owned(),
            ..Plan::default()
        };
        let mut established = 0;
        for f in store.flows().filter(|f| pred(f)) {
            if ctx.spares(f) {
                if ctx.ssh.is_none() {
                    plan.excluded_sshd += 1;
                }
                plan.excluded_ssh.get_or_insert_with(|| flow_line(f));
                plan.spared.push(FlowKey::of(f));
                plan.lives.plan_flow(f);
                continue;
            }
            plan.count_flow(f, &m, &mut established);
            plan.lives.plan_flow(f);
            plan.targets.push(Target::Flow {
                key: FlowKey::of(f),
                id: f.id,
            });
        }
        plan.finish(established, ctx);
        plan
    }

    /// Delete one flow.
    pub fn flow(store: &Store, key: &FlowKey, ctx: &Context) -> Plan {
        Plan::flows(store, &|f| FlowKey::of(f) == *key, "the selected flow", ctx)
    }

    /// Delete the RELATED children of `master`.
    pub fn related_of(store: &Store, master: &FlowKey, ctx: &Context) -> Plan {
        let children: HashSet<FlowKey> = store.related_of(master).into_iter().collect();
        Plan::flows(
            store,
            &|f| children.contains(&FlowKey::of(f)),
            "the RELATED flows of the selected master",
            ctx,
        )
    }

    /// `conntrack -F`. When the SSH session's flow would go, the flush becomes one delete
    /// per known flow so that flow can be left out.
    pub fn flush_flows(store: &Store, ctx: &Context) -> Plan {
        let ssh_present = store.flows().any(|f| ctx.spares(f));
        if ssh_present {
            return Plan::flows(store, &|_| true, "every flow except your SSH session", ctx);
        }
        let m = masters(store);
        let mut plan = Plan {
            what: "every flow (flush)".into(),
            targets: vec![Target::FlushFlows],
            ..Plan::default()
        };
        let mut established = 0;
        for f in store.flows() {
            plan.count_flow(f, &m, &mut established);
        }
        plan.finish(established, ctx);
        plan
    }

    /// Flush everything: every flow (`conntrack -F`, around the SSH session as in
    /// `flush_flows`) and every expectation (`conntrack -F expect`).
    pub fn flush_all(store: &Store, ctx: &Context) -> Plan {
        let mut plan = Plan::flush_flows(store, ctx);
        let expects = Plan::flush_expects(store);
        plan.what = if plan.excluded_ssh.is_some() {
            "everything except your SSH session".into()
        } else {
            "everything (flush)".into()
        };
        plan.expects = expects.expects;
        plan.targets.extend(expects.targets);
        plan.lives.extend(expects.lives);
        for line in expects.sample {
            if plan.sample.len() < SAMPLE + 2 {
                plan.sample.push(line);
            }
        }
        plan
    }

    /// Every flow and every expectation the store holds now, one delete each (not a
    /// kernel flush): entries created after planning are not touched. The dashboard's
    /// "flush everything", which removes exactly what its confirmation counted.
    pub fn each(store: &Store, ctx: &Context) -> Plan {
        Plan::flows(store, &|_| true, "every flow and expectation shown", ctx).merge(
            Plan::expectations(store, &|_| true, "every expectation shown"),
        )
    }

    /// This plan followed by `other` (targets, counts, samples, lives); `what` is ours.
    pub fn merge(mut self, other: Plan) -> Plan {
        self.targets.extend(other.targets);
        self.flows += other.flows;
        self.related += other.related;
        self.masters += other.masters;
        self.expects += other.expects;
        self.sample.extend(other.sample);
        self.excluded_ssh = self.excluded_ssh.or(other.excluded_ssh);
        self.excluded_sshd += other.excluded_sshd;
        self.spared.extend(other.spared);
        self.warnings.extend(other.warnings);
        self.lives.extend(other.lives);
        self
    }

    /// The same entries planned again under `ctx` (the dashboard's `i`: the SSH flow taken
    /// in, or left out again). The flows are exactly those this plan targeted or spared,
    /// as the store holds them now; its other targets stay as they are, and `lives` keeps
    /// what was observed since the first planning (spared flows were planned there too),
    /// so the plan never widens beyond what the confirmation first counted.
    pub fn replan(&self, store: &Store, ctx: &Context) -> Plan {
        if let Some(scope) = &self.list {
            let mut plan = Plan::list((**scope).clone(), ctx.include_ssh);
            plan.after = self.after;
            return plan;
        }
        let keys: HashSet<FlowKey> = self
            .flow_keys()
            .chain(self.spared.iter().copied())
            .collect();
        let mut plan = Plan::flows(store, &|f| keys.contains(&FlowKey::of(f)), &self.what, ctx);
        plan.targets.extend(
            self.targets
                .iter()
                .filter(|t| !matches!(t, Target::Flow { .. }))
                .cloned(),
        );
        plan.expects = self.expects;
        plan.sample.extend(
            self.sample
                .iter()
                .filter(|l| l.starts_with("expect "))
                .cloned(),
        );
        plan.lives = self.lives.clone();
        plan.after = self.after;
        plan
    }

    /// Delete one expectation.
    pub fn expectation(store: &Store, key: &ExpectKey) -> Plan {
        Plan::expectations(
            store,
            &|e| ExpectKey::of(e) == *key,
            "the selected expectation",
        )
    }

    /// Delete every expectation for which `pred` holds, one by one (`conntrack -D expect`),
    /// each by tuple, zone and id.
    pub fn expectations(store: &Store, pred: &dyn Fn(&Expectation) -> bool, what: &str) -> Plan {
        let mut plan = Plan {
            what: what.to_owned(),
            ..Plan::default()
        };
        for e in store.expectations().filter(|e| pred(e)) {
            plan.expects += 1;
            if plan.sample.len() < SAMPLE {
                plan.sample.push(expect_line(e));
            }
            plan.lives.plan_expect(e);
            plan.targets.push(Target::Expect {
                key: ExpectKey::of(e),
                id: e.id,
            });
        }
        plan
    }

    /// `conntrack -F expect`.
    pub fn flush_expects(store: &Store) -> Plan {
        let mut plan = Plan {
            what: "every expectation (flush)".into(),
            targets: vec![Target::FlushExpects],
            ..Plan::default()
        };
        for e in store.expectations() {
            plan.expects += 1;
            if plan.sample.len() < SAMPLE {
                plan.sample.push(expect_line(e));
            }
        }
        plan
    }

    /// Every expectation of helper `name`.
    pub fn flush_helper(store: &Store, name: &str) -> Plan {
        let mut plan = Plan {
            what: format!("every expectation of helper '{name}'"),
            targets: vec![Target::FlushHelper(name.to_owned())],
            ..Plan::default()
        };
        for e in store
            .expectations()
            .filter(|e| e.helper.name() == Some(name))
        {
            plan.expects += 1;
            if plan.sample.len() < SAMPLE {
                plan.sample.push(expect_line(e));
            }
        }
        plan
    }

    fn count_flow(&mut self, f: &Flow, masters: &HashSet<FlowKey>, established: &mut usize) {
        self.flows += 1;
        if f.is_related() {
            self.related += 1;
        }
        if masters.contains(&FlowKey::of(f)) {
            self.masters += 1;
        }
        if f.orig.proto == proto::TCP && f.state == TCP_ESTABLISHED {
            *established += 1;
        }
        if self.sample.len() < SAMPLE {
            self.sample.push(flow_line(f));
        }
    }

    fn finish(&mut self, established: usize, ctx: &Context) {
        if established > 0 && ctx.tcp_loose == Some(false) {
            self.warnings.push(format!(
                "nf_conntrack_tcp_loose=0: {established} established TCP session(s) will be cut \
                 (the kernel will not pick them up again mid-stream)"
            ));
        }
    }

    /// The flows this plan deletes one by one, in plan order.
    pub fn flow_keys(&self) -> impl Iterator<Item = FlowKey> + '_ {
        self.targets.iter().filter_map(|t| match t {
            Target::Flow { key, .. } => Some(*key),
            _ => None,
        })
    }

    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// The confirmation text: what, how many, how many RELATED and masters, a sample,
    /// what was left out and the warnings.
    pub fn describe(&self) -> String {
        use std::fmt::Write as _;
        let mut s = format!("remove {}: ", self.what);
        let mut parts = Vec::new();
        if self.flows > 0 || self.expects == 0 {
            parts.push(format!(
                "{} flow{} ({} RELATED, {} master{})",
                self.flows,
                plural(self.flows),
                self.related,
                self.masters,
                plural(self.masters)
            ));
        }
        if self.expects > 0 {
            parts.push(format!(
                "{} expectation{}",
                self.expects,
                plural(self.expects)
            ));
        }
        s.push_str(&parts.join(", "));
        for line in &self.sample {
            let _ = write!(s, "\n  {line}");
        }
        let shown = self.sample.len();
        let total = self.flows + self.expects;
        if total > shown {
            let _ = write!(s, "\n  … and {} more", total - shown);
        }
        match (&self.excluded_ssh, self.excluded_sshd) {
            (Some(ssh), 0) => {
                let _ = write!(s, "\nleft out (your SSH session): {ssh}");
            }
            (_, n) if n > 0 => {
                let _ = write!(
                    s,
                    "\nleft out: {n} flow{} to the local sshd (your SSH session could not \
                     be determined; --include-own-ssh includes them)",
                    plural(n)
                );
            }
            _ => {}
        }
        for w in &self.warnings {
            let _ = write!(s, "\nwarning: {w}");
        }
        s
    }
}

impl Plan {
    /// Flush stale helper state (`ctscope flush --stale`, the dashboard's stale key):
    /// every flow and expectation `judge` finds stale at store time `now`, of helper
    /// `helper` when given (an expectation's helper; a flow's own, else that of the
    /// expectation that created it, when the store saw it). Each sample line and the
    /// summary name the reasons, so the confirmation says why each entry goes.
    pub fn stale(
        judge: &crate::model::stale::Staleness<'_>,
        now: u32,
        helper: Option<&str>,
        ctx: &Context,
    ) -> Plan {
        use crate::model::stale::Reason;
        let store = judge.store;
        let of_helper = |h: crate::model::HelperId| {
            helper.is_none_or(|want| h.name().is_some_and(|n| n.eq_ignore_ascii_case(want)))
        };
        let flow_helper = |f: &Flow| {
            if f.helper.is_none() {
                store
                    .expectation_of(&FlowKey::of(f))
                    .map_or(f.helper, |e| e.helper)
            } else {
                f.helper
            }
        };
        let flow_pred = |f: &Flow| !judge.flow(f, now).is_empty() && of_helper(flow_helper(f));
        let exp_pred =
            |e: &Expectation| !judge.expectation(e, now).is_empty() && of_helper(e.helper);
        let mut plan = Plan::flows(store, &flow_pred, "", ctx);
        let expects = Plan::expectations(store, &exp_pred, "");
        plan.expects = expects.expects;
        plan.targets.extend(expects.targets);
        plan.lives.extend(expects.lives);
        // Samples and the summary with reasons.
        let mut counts = [0usize; Reason::ALL.len()];
        plan.sample.clear();
        for f in store.flows().filter(|f| flow_pred(f) && !ctx.spares(f)) {
            let r = judge.flow(f, now);
            r.iter().for_each(|x| counts[x as usize] += 1);
            if plan.sample.len() < SAMPLE {
                plan.sample
                    .push(format!("{}  [stale: {}]", flow_line(f), r.names()));
            }
        }
        let mut shown_expects = 0;
        for e in store.expectations().filter(|e| exp_pred(e)) {
            let r = judge.expectation(e, now);
            r.iter().for_each(|x| counts[x as usize] += 1);
            if shown_expects < SAMPLE {
                plan.sample
                    .push(format!("{}  [stale: {}]", expect_line(e), r.names()));
                shown_expects += 1;
            }
        }
        let reasons: Vec<String> = Reason::ALL
            .iter()
            .zip(counts)
            .filter(|(_, n)| *n > 0)
            .map(|(r, n)| format!("{} {n}", r.name()))
            .collect();
        plan.what = format!(
            "stale helper state{}{}",
            helper.map_or(String::new(), |h| format!(" of helper '{h}'")),
            if reasons.is_empty() {
                String::new()
            } else {
                format!(" (reasons: {})", reasons.join(", "))
            }
        );
        plan
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn expect_line(e: &crate::model::Expectation) -> String {
    let mut s = format!("expect {}", e.tuple);
    if let Some(h) = e.helper.name() {
        s.push_str(&format!(" helper={h}"));
    }
    s.push_str(&format!(" master: {}", e.master));
    s
}

/// What happened when a plan ran.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Entries deleted one by one, plus what flushes removed (counted before and after,
    /// since the kernel answers a flush with one ACK and no count).
    pub removed: usize,
    /// Entries the kernel no longer had under that identity (ENOENT), or whose DESTROY was
    /// seen after planning (not sent).
    pub already_gone: usize,
    /// Entries re-created under the same identity after planning: skipped, the new entry
    /// stays.
    pub recreated: usize,
    /// Requests the kernel refused (or that were not sent after a refusal).
    pub refused: usize,
    /// Flushes that succeeded, described with their count.
    pub flushed: Vec<String>,
    /// The distinct error messages, first ones first (a few at most).
    pub errors: Vec<String>,
    /// A refusal was a missing privilege.
    pub permission: bool,
}

impl Report {
    /// A plan that could not run at all (e.g. on a replay).
    pub fn refused_all(plan: &Plan, reason: String) -> Report {
        Report {
            refused: plan.targets.len(),
            errors: vec![reason],
            ..Report::default()
        }
    }

    fn refuse(&mut self, e: &Error) {
        self.refused += 1;
        self.permission |= e.is_permission();
        let msg = e.to_string();
        if self.errors.len() < 3 && !self.errors.contains(&msg) {
            self.errors.push(msg);
        }
    }

    /// Whether everything went (already-gone and re-created entries count as done).
    pub fn is_ok(&self) -> bool {
        self.refused == 0
    }
}

/// The status line: `removed 3, already gone 1, refused 0` (+ re-created entries, flushes
/// and the first error).
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "removed {}, already gone {}, refused {}",
            self.removed, self.already_gone, self.refused
        )?;
        if self.recreated > 0 {
            write!(f, ", re-created since planning {} (kept)", self.recreated)?;
        }
        if !self.flushed.is_empty() {
            write!(f, "; flushed {}", self.flushed.join(", "))?;
        }
        if let Some(e) = self.errors.first() {
            write!(f, "\n{e}")?;
        }
        Ok(())
    }
}

/// Run `plan` against the kernel with no event stream: only what `plan.lives` already
/// knows is skipped. Never stops at ENOENT (gone is gone); stops at the first missing
/// privilege, counting the rest as refused (every one would fail the same way).
pub fn execute(conn: &mut Conn, plan: &Plan) -> Report {
    let mut report = Report::default();
    execute_some(conn, plan, 0, usize::MAX, &mut report);
    report
}

/// Targets run between two reads of the event stream in `execute_watched`.
const WATCH_SLICE: usize = 64;

/// Run `plan` over a live `source` whose event subscription was opened before the dump the
/// plan came from: every event queued since is read first and between slices of targets,
/// so an entry destroyed or re-created after planning is skipped. If events were lost
/// (ENOBUFS), each remaining flow is checked with a get before its delete instead.
pub fn execute_watched(source: &mut dyn Source, plan: &mut Plan) -> Report {
    let mut report = Report::default();
    let mut next = 0;
    while next < plan.targets.len() {
        drain_events(source, &mut plan.lives);
        let conn = match source.conn() {
            Ok(c) => c,
            Err(e) => {
                report.refuse(&e);
                report.refused += plan.targets.len() - next - 1;
                break;
            }
        };
        if plan.lives.lost {
            verify_slice(conn, plan, next, WATCH_SLICE);
        }
        next = execute_some(conn, plan, next, WATCH_SLICE, &mut report);
    }
    report
}

/// Apply every event queued on `source`'s subscription to `store` (without waiting): run
/// after the dump and before planning, so the plan is made from the newest state and any
/// event read after it was emitted after it (see `Lives`). Returns whether events were
/// lost meanwhile (ENOBUFS): then set `plan.lives.lost`, so each flow is checked again.
pub fn catch_up(
    source: &mut dyn Source,
    store: &mut Store,
    now: u32,
) -> crate::error::Result<bool> {
    let mut lost = false;
    loop {
        let polled = source.poll(Duration::ZERO, 4096, &mut |item| match item {
            Item::Event(m) => {
                if let Ok((Message::Record { event, record }, _)) = decode::message(m) {
                    store.apply(event, record, now);
                }
            }
            Item::Overrun => lost = true,
            _ => {}
        })?;
        if polled != Poll::Items {
            return Ok(lost);
        }
    }
}

/// Read every queued event into `lives` (without waiting).
pub fn drain_events(source: &mut dyn Source, lives: &mut Lives) {
    loop {
        let mut overrun = false;
        let r = source.poll(Duration::ZERO, 4096, &mut |item| match item {
            Item::Event(m) | Item::DumpMsg(m) | Item::Recheck(m) => {
                if let Ok((Message::Record { event, record }, _)) = decode::message(m) {
                    lives.observe(event, &record);
                }
            }
            Item::Overrun => overrun = true,
            Item::DumpBegin(_) | Item::DumpEnd(_) | Item::Recent(_) => {}
        });
        lives.lost |= overrun;
        if !matches!(r, Ok(Poll::Items)) {
            break;
        }
    }
}

/// Ask the kernel for each flow target in `from..from+max` and note re-created ones.
pub fn verify_slice(conn: &mut Conn, plan: &mut Plan, from: usize, max: usize) {
    let end = from.saturating_add(max).min(plan.targets.len());
    for t in &plan.targets[from..end] {
        let Target::Flow { key, .. } = t else {
            continue;
        };
        let mut now = None;
        let asked = conn.get_flow(key, &mut |m| {
            if let Ok((Message::Record { record, .. }, _)) = decode::message(m) {
                now = Some(record);
            }
        });
        if asked.is_ok() {
            plan.lives.verify(Entry::Flow(*key), now.as_ref());
        }
    }
}

/// Run up to `max` targets of `plan` starting at `from`, adding to `report`; returns where
/// to continue (`plan.targets.len()` when done). The engine runs a large plan in slices so
/// it keeps reading the DESTROY events the plan itself causes, instead of letting them
/// overflow the event buffer. Entries `plan.lives` knows to be destroyed or re-created
/// since planning are skipped, not sent.
pub fn execute_some(
    conn: &mut Conn,
    plan: &Plan,
    from: usize,
    max: usize,
    report: &mut Report,
) -> usize {
    let end = from.saturating_add(max).min(plan.targets.len());
    for (i, t) in plan.targets.iter().enumerate().take(end).skip(from) {
        if t.is_list() {
            // Not a ctnetlink request: the engine runs these with `recent::act::execute`.
            continue;
        }
        let entry = match t {
            Target::Flow { key, .. } => Some(Entry::Flow(*key)),
            Target::Expect { key, .. } => Some(Entry::Expect(*key)),
            _ => None,
        };
        match entry.and_then(|e| plan.lives.fate(&e)) {
            Some(Fate::Destroyed) => {
                report.already_gone += 1;
                continue;
            }
            Some(Fate::Recreated) => {
                report.recreated += 1;
                continue;
            }
            None => {}
        }
        let r = match t {
            Target::Flow { key, id } => conn.delete_flow(key, id_opt(*id)).map(|()| 1),
            Target::Expect { key, id } => conn
                .delete_expect(key.zone, &key.tuple, id_opt(*id))
                .map(|()| 1),
            Target::FlushFlows => counted(conn, Table::Flows, None, |c| c.flush_flows()),
            Target::FlushExpects => counted(conn, Table::Expects, None, |c| c.flush_expects()),
            Target::FlushHelper(name) => counted(conn, Table::Expects, Some(name), |c| {
                c.flush_helper_expects(name)
            }),
            Target::ListDelete { .. } | Target::ListFlush(_) => continue,
        };
        match r {
            Ok(n) => {
                report.removed += n;
                match t {
                    Target::Flow { .. } | Target::Expect { .. } => {}
                    Target::FlushFlows => report.flushed.push(format!("all flows ({n})")),
                    Target::FlushExpects => report.flushed.push(format!("all expectations ({n})")),
                    Target::FlushHelper(h) => {
                        report.flushed.push(format!("expectations of '{h}' ({n})"))
                    }
                    Target::ListDelete { .. } | Target::ListFlush(_) => {}
                }
            }
            Err(Error::Netlink { errno, .. }) if errno == libc::ENOENT => report.already_gone += 1,
            Err(e) => {
                report.refuse(&e);
                if e.is_permission() {
                    report.refused += plan.targets.len() - i - 1;
                    return plan.targets.len();
                }
            }
        }
    }
    end
}

/// Run a flush and return how many entries it removed: the kernel answers a flush with a
/// bare ACK, so the table (or, for a helper flush, that helper's expectations) is counted
/// before and after. Entries created or expiring in the same moment move the count too.
fn counted(
    conn: &mut Conn,
    table: Table,
    helper: Option<&str>,
    flush: impl FnOnce(&mut Conn) -> crate::error::Result<()>,
) -> crate::error::Result<usize> {
    let before = count(conn, table, helper)?;
    flush(conn)?;
    let after = count(conn, table, helper)?;
    Ok(before.saturating_sub(after))
}

/// Entries of `table` (of expectations: only those of `helper`, when given).
fn count(conn: &mut Conn, table: Table, helper: Option<&str>) -> crate::error::Result<usize> {
    let mut n = 0;
    conn.dump(table, &mut |m| {
        n += match helper {
            None => 1,
            Some(h) => match decode::message(m) {
                Ok((
                    Message::Record {
                        record: Record::Expect(e),
                        ..
                    },
                    _,
                )) => usize::from(e.helper.name() == Some(h)),
                _ => 0,
            },
        }
    })?;
    Ok(n)
}

/// Id 0 means "not known" (a record built without `CTA_ID`): skip the check then.
fn id_opt(id: u32) -> Option<u32> {
    (id != 0).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::flow::status;
    use crate::model::tuple::Family;

    fn flow(src: &str, sport: u16, dst: &str, dport: u16) -> Flow {
        let mut t = Tuple {
            family: if src.contains(':') {
                Family::Ipv6
            } else {
                Family::Ipv4
            },
            proto: proto::TCP,
            sport,
            dport,
            ..Tuple::default()
        };
        t.set_src_ip(src.parse().unwrap());
        t.set_dst_ip(dst.parse().unwrap());
        let mut f = Flow::new(t);
        f.state = TCP_ESTABLISHED;
        f.status = status::ASSURED | status::SEEN_REPLY;
        f
    }

    #[test]
    fn ssh_connection_parses_and_rejects_junk() {
        let s = SshSession::parse("192.0.2.7 51000 10.213.1.1 22").unwrap();
        assert_eq!(s.client_port, 51000);
        assert_eq!(s.server_port, 22);
        let v6 = SshSession::parse("fe80::1%eth0 4000 ::ffff:10.0.0.1 22").unwrap();
        assert_eq!(v6.server, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert!(SshSession::parse("").is_none());
        assert!(SshSession::parse("1.2.3.4 x 5.6.7.8 22").is_none());
        assert!(SshSession::parse("1.2.3.4 1 5.6.7.8 22 extra").is_none());
    }

    #[test]
    fn ssh_flow_matches_in_either_direction_and_through_nat() {
        let s = SshSession::parse("192.0.2.7 51000 10.213.1.1 22").unwrap();
        assert!(s.matches(&flow("192.0.2.7", 51000, "10.213.1.1", 22)));
        // Seen from the other side (the flow was opened by the server).
        assert!(s.matches(&flow("10.213.1.1", 22, "192.0.2.7", 51000)));
        // DNAT: the client spoke to a public address, the reply comes from the server.
        let mut nat = flow("192.0.2.7", 51000, "203.0.113.1", 22);
        let mut reply = nat.orig.inverted();
        reply.set_src_ip("10.213.1.1".parse().unwrap());
        nat.set_reply(reply);
        assert!(s.matches(&nat));
        // Another port of the same client is not the session.
        assert!(!s.matches(&flow("192.0.2.7", 51001, "10.213.1.1", 22)));
        let mut udp = flow("192.0.2.7", 51000, "10.213.1.1", 22);
        udp.orig.proto = proto::UDP;
        assert!(!s.matches(&udp));
    }

    /// The dashboard's `i`: the same entries planned again with the SSH flow taken in;
    /// nothing created after the first planning joins, and what was observed stays.
    #[test]
    fn replan_takes_the_spared_flow_in_and_never_widens() {
        let ssh = SshSession::parse("192.0.2.7 51000 10.213.1.1 22").unwrap();
        let mut store = Store::new();
        let own = flow("192.0.2.7", 51000, "10.213.1.1", 22);
        let other = flow("192.0.2.8", 40000, "10.213.1.1", 80);
        store.apply(Event::New, Record::Flow(own.clone()), 0);
        store.apply(Event::New, Record::Flow(other.clone()), 0);
        let ctx = Context {
            ssh: Some(ssh),
            tcp_loose: Some(false),
            ..Context::default()
        };
        let mut plan = Plan::each(&store, &ctx);
        assert_eq!((plan.flows, plan.spared.len()), (1, 1));
        assert_eq!(plan.warnings.len(), 1, "one established session is cut");
        plan.lives
            .observe(Event::Destroy, &Record::Flow(other.clone()));
        let late = flow("192.0.2.9", 40001, "10.213.1.1", 80);
        store.apply(Event::New, Record::Flow(late.clone()), 0);
        let with = plan.replan(
            &store,
            &Context {
                include_ssh: true,
                ..ctx.clone()
            },
        );
        let keys: Vec<FlowKey> = with.flow_keys().collect();
        assert_eq!(with.flows, 2);
        assert!(keys.contains(&FlowKey::of(&own)));
        assert!(
            !keys.contains(&FlowKey::of(&late)),
            "created after planning"
        );
        assert_eq!(
            with.lives.fate(&Entry::Flow(FlowKey::of(&other))),
            Some(Fate::Destroyed)
        );
        // And back: left out again.
        let without = with.replan(&store, &ctx);
        assert_eq!((without.flows, without.spared.len()), (1, 1));
    }

    #[test]
    fn report_line_counts_each_outcome() {
        let r = Report {
            removed: 3,
            already_gone: 1,
            refused: 0,
            flushed: vec!["expectations of 'ftp'".into()],
            ..Report::default()
        };
        assert_eq!(
            r.to_string(),
            "removed 3, already gone 1, refused 0; flushed expectations of 'ftp'"
        );
        assert!(r.is_ok());
        let p = Plan {
            targets: vec![Target::FlushFlows],
            ..Plan::default()
        };
        let refused = Report::refused_all(&p, "no".into());
        assert_eq!(refused.refused, 1);
        assert!(!refused.is_ok());
    }

    fn store_with(flows: Vec<Flow>) -> Store {
        let mut st = Store::new();
        for f in flows {
            st.apply(crate::model::Event::New, crate::model::Record::Flow(f), 0);
        }
        st
    }

    /// An FTP control flow, its RELATED data flow, the admin's SSH flow and a UDP flow.
    fn lab_store() -> (Store, SshSession) {
        let ctl = flow("10.213.1.2", 40000, "10.213.1.1", 21);
        let mut data = flow("10.213.1.2", 40001, "10.213.1.1", 50000);
        data.status |= status::EXPECTED;
        data.extra_mut().master = Some(ctl.orig);
        let ssh = flow("192.0.2.7", 51000, "10.213.1.1", 22);
        let mut udp = flow("10.213.1.2", 5353, "10.213.1.1", 53);
        udp.orig.proto = proto::UDP;
        udp.state = crate::model::flow::NO_STATE;
        let session = SshSession::parse("192.0.2.7 51000 10.213.1.1 22").unwrap();
        (store_with(vec![ctl, data, ssh, udp]), session)
    }

    #[test]
    fn plan_leaves_out_the_ssh_session_unless_included() {
        let (st, ssh) = lab_store();
        let ctx = Context {
            ssh: Some(ssh),
            include_ssh: false,
            tcp_loose: Some(true),
            ..Context::default()
        };
        let plan = Plan::flows(&st, &|f| f.orig.proto == proto::TCP, "tcp", &ctx);
        assert_eq!(plan.flows, 2);
        assert_eq!(plan.targets.len(), 2);
        assert!(plan.excluded_ssh.as_deref().unwrap().contains(":22"));
        assert!(plan.describe().contains("left out (your SSH session)"));
        let all = Plan::flows(
            &st,
            &|f| f.orig.proto == proto::TCP,
            "tcp",
            &Context {
                include_ssh: true,
                ..ctx.clone()
            },
        );
        assert_eq!(all.flows, 3);
        assert!(all.excluded_ssh.is_none());

        // A flush that would cut the session becomes per-flow deletes without it.
        let flush = Plan::flush_flows(&st, &ctx);
        assert!(!flush.targets.contains(&Target::FlushFlows));
        assert_eq!(flush.targets.len(), 3);
        // Without a session in the table (or without SSH), a flush is one request.
        let plain = Plan::flush_flows(&st, &Context::default());
        assert_eq!(plain.targets, [Target::FlushFlows]);
        assert_eq!(plain.flows, 4);
        // Flushing everything adds the expectation table.
        let all = Plan::flush_all(&st, &Context::default());
        assert_eq!(all.targets, [Target::FlushFlows, Target::FlushExpects]);
        assert!(all
            .describe()
            .starts_with("remove everything (flush): 4 flows"));
        let around = Plan::flush_all(&st, &ctx);
        assert_eq!(around.targets.len(), 4);
        assert_eq!(around.targets.last(), Some(&Target::FlushExpects));
    }

    #[test]
    fn plan_counts_related_and_masters_and_warns_about_tcp_loose() {
        let (st, _) = lab_store();
        let strict = Context {
            tcp_loose: Some(false),
            ..Context::default()
        };
        let plan = Plan::flows(&st, &|f| f.orig.dport != 53, "not dns", &strict);
        assert_eq!((plan.flows, plan.related, plan.masters), (3, 1, 1));
        assert_eq!(plan.warnings.len(), 1);
        assert!(
            plan.warnings[0].contains("3 established TCP"),
            "{:?}",
            plan.warnings
        );
        let text = plan.describe();
        assert!(
            text.starts_with("remove not dns: 3 flows (1 RELATED, 1 master)"),
            "{text}"
        );
        assert!(text.contains("RELATED") && text.contains("warning: nf_conntrack_tcp_loose=0"));

        // Only the UDP flow: nothing established is cut, no warning.
        let udp = Plan::flows(&st, &|f| f.orig.proto == proto::UDP, "udp", &strict);
        assert_eq!(udp.flows, 1);
        assert!(udp.warnings.is_empty());
        // With loose pickup on, no warning either.
        let loose = Plan::flows(&st, &|_| true, "all", &Context::default());
        assert!(loose.warnings.is_empty());

        // The RELATED children of the control flow.
        let ctl = FlowKey::of(st.flows().find(|f| f.orig.dport == 21).unwrap());
        let children = Plan::related_of(&st, &ctl, &Context::default());
        assert_eq!((children.flows, children.related), (1, 1));
    }

    /// Six flows that differ only by zone-orig (nft_nat_zones.sh): six keys, six targets.
    fn zoned(z: u16, id: u32) -> Flow {
        let mut f = flow("10.1.0.3", 10000, "10.3.0.99", 5201);
        f.id = id;
        f.extra_mut().zone_orig = Some(z);
        let mut reply = f.orig.inverted();
        reply.dport = 30000 + z;
        f.set_reply(reply);
        f
    }

    #[test]
    fn flows_differing_only_by_zone_orig_are_distinct_targets() {
        let st = store_with((1..=6).map(|z| zoned(z, 100 + u32::from(z))).collect());
        assert_eq!(st.flow_count(), 6);
        let plan = Plan::flows(&st, &|f| f.orig.dport == 5201, "zones", &Context::default());
        assert_eq!(plan.flows, 6);
        let mut zones: Vec<u16> = plan
            .targets
            .iter()
            .map(|t| match t {
                Target::Flow { key, .. } => key.zone_orig,
                other => panic!("{other:?}"),
            })
            .collect();
        zones.sort_unstable();
        assert_eq!(zones, [1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn lives_tell_a_recreated_entry_from_the_planned_one() {
        use crate::model::{Event, Record};
        // A million-flow plan keeps 64 bytes a flow for this.
        assert!(std::mem::size_of::<(Entry, Life)>() <= 64);
        let planned = zoned(3, 7);
        let key = Entry::Flow(FlowKey::of(&planned));
        let fresh = || {
            let mut l = Lives::default();
            l.plan_flow(&planned);
            l
        };
        // An UPDATE or re-dump of the same life changes nothing.
        let mut l = fresh();
        l.observe(Event::Update, &Record::Flow(planned.clone()));
        l.observe(Event::Dump, &Record::Flow(planned.clone()));
        assert_eq!(l.fate(&key), None);
        // A NEW read after planning is a new life even with the same id and no DESTROY
        // (the planned one ended silently: created before anyone listened, events=2).
        l.observe(Event::New, &Record::Flow(planned.clone()));
        assert_eq!(l.fate(&key), Some(Fate::Recreated));
        // DESTROY then NEW with the same id (same slab slot): re-created.
        let mut l = fresh();
        l.observe(Event::Destroy, &Record::Flow(planned.clone()));
        assert_eq!(l.fate(&key), Some(Fate::Destroyed));
        l.observe(Event::New, &Record::Flow(planned.clone()));
        assert_eq!(l.fate(&key), Some(Fate::Recreated));
        // Another id under the key: re-created, even without a DESTROY (events=2).
        let mut l = fresh();
        l.observe(Event::New, &Record::Flow(zoned(3, 8)));
        assert_eq!(l.fate(&key), Some(Fate::Recreated));
        // The DESTROY of an older life is not ours.
        let mut l = fresh();
        l.observe(Event::Destroy, &Record::Flow(zoned(3, 6)));
        assert_eq!(l.fate(&key), None);
        // Another zone is another entry.
        let mut l = fresh();
        l.observe(Event::Destroy, &Record::Flow(zoned(4, 7)));
        assert_eq!(l.fate(&key), None);
        // With timestamps, the start time decides even when the id repeats.
        let mut ts = planned.clone();
        ts.extra_mut().timestamp = Some((1_000, 0));
        let mut l = Lives::default();
        l.plan_flow(&ts);
        let mut again = ts.clone();
        again.extra_mut().timestamp = Some((2_000, 0));
        l.observe(Event::Dump, &Record::Flow(again.clone()));
        assert_eq!(l.fate(&key), Some(Fate::Recreated));
        // Planned twice (as when plans are merged): the last life planned counts.
        let mut l = Lives::default();
        l.plan_flow(&zoned(3, 1));
        l.plan_flow(&planned);
        l.observe(Event::Destroy, &Record::Flow(planned.clone()));
        assert_eq!(l.fate(&key), Some(Fate::Destroyed));
        // A get after lost events: gone, or another life.
        let mut l = fresh();
        l.verify(key, None);
        assert_eq!(l.fate(&key), Some(Fate::Destroyed));
        let mut l = Lives::default();
        l.plan_flow(&ts);
        l.verify(key, Some(&Record::Flow(again)));
        assert_eq!(l.fate(&key), Some(Fate::Recreated));
    }

    #[test]
    fn report_line_names_recreated_entries_and_flush_counts() {
        let r = Report {
            removed: 6,
            recreated: 1,
            flushed: vec!["expectations of 'ftp' (6)".into()],
            ..Report::default()
        };
        assert_eq!(
            r.to_string(),
            "removed 6, already gone 0, refused 0, re-created since planning 1 (kept); \
             flushed expectations of 'ftp' (6)"
        );
    }

    /// No session known, sshd listening on :22: every flow to it is spared (the session
    /// is one of them), the others go; `--include-own-ssh` includes them.
    #[test]
    fn without_a_session_every_flow_to_a_local_sshd_is_spared() {
        let (st, _) = lab_store();
        let ctx = Context {
            sshd: vec![crate::ssh::Listener {
                addr: None,
                port: 22,
            }],
            ..Context::default()
        };
        let flush = Plan::flush_flows(&st, &ctx);
        assert!(!flush.targets.contains(&Target::FlushFlows));
        assert_eq!(flush.excluded_sshd, 1);
        assert_eq!(flush.flows, st.flow_count() - 1);
        let text = flush.describe();
        assert!(
            text.contains("left out: 1 flow to the local sshd")
                && text.contains("--include-own-ssh"),
            "{text}"
        );
        let all = Plan::flush_flows(
            &st,
            &Context {
                include_ssh: true,
                ..ctx
            },
        );
        assert_eq!(all.targets, vec![Target::FlushFlows]);
    }
}
