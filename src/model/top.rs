//! Who fills the table: live flows grouped by one key (source, destination, destination
//! port, source network, zone, mark, helper, protocol and state, NAT target), with per
//! group the count, the UNREPLIED count (what early drop takes first), new and destroyed
//! flows per second over the last 10 s, and bytes per second where accounting is on.
//!
//! Two inputs, each used for what it is exact about:
//! - **Counts come from a pass over the store** ([`Top::rebuild`]), never from counters
//!   kept by event. The store changes by events, re-dump sweeps, re-checks and expiry;
//!   counting from its slab needs the previous version of every changed flow on each of
//!   those paths, and any missed path drifts forever. A pass cannot drift, and it is cheap:
//!   one key computation and one hash-map increment per flow (measured in
//!   `examples/top_bench.rs`: see README, "Top at a million flows"). A million distinct
//!   sources are a million groups, so a pass of many groups first copies its flows into
//!   partitions by the group's hash and counts each into a map that stays in the cache
//!   (`Lane::count`), may be split over threads by that hash ([`Top::count_split`]: no
//!   map to merge), may stop when its result is no longer
//!   wanted ([`Top::count_until`]), and ranks its groups where it ran
//!   ([`Counted::rank`]), so reading the rows costs the rows, not the groups.
//! - **Bytes/s compare a pass with the one before it** ([`Since`]): the pass takes the
//!   earlier pass's counts (shared, not copied) and the bytes of flows destroyed since,
//!   and ranks its groups by rate where it ran. Installing it walks no group; a row's rate
//!   is two lookups when it is read.
//! - **Rates come from the event stream** ([`Top::observe`]), one hash-map update per
//!   NEW or DESTROY into a 10-slot per-second ring. A DESTROY carries neither helper nor
//!   master, so its group is read from the store before the store applies it.
//!
//! Every group maps to a filter expression the planner understands
//! ([`Top::filter_of`]), so flushing a group is `ctscope flush --filter EXPR` (or the
//! dashboard's plan from the same filter); the expression selects exactly the group's
//! members (tested below), or is `None` when the language cannot say it exactly.
//!
//! This module is model-side only: no rendering, no sockets, no clock of its own (the
//! caller passes store seconds).

use std::fmt::Write as _;
use std::hash::BuildHasher;
use std::sync::Arc;

use hashbrown::HashMap;

use crate::model::flow::{status, CtState, NO_STATE};
use crate::model::store::FlowKey;
use crate::model::tuple::{proto, Family, Tuple};
use crate::model::{Event, Record};
use crate::model::{Flow, HelperId, Store};

/// Seconds the new/destroyed rates look back over.
pub const WINDOW: u32 = 10;

/// Flows between two looks at a pass's `stop` ([`Top::count_until`]): a few milliseconds
/// of a pass at most.
pub const STOP_EVERY: usize = 1 << 15;

/// Flows from which [`Top::count_split`] uses more than one thread.
pub const SPLIT_FROM: usize = 1 << 16;

/// The key flows are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupBy {
    /// Original source address.
    Src,
    /// Original destination address.
    Dst,
    /// Protocol and original destination port (protocols without ports: the protocol).
    Dport,
    /// Original source network: /24 for IPv4, /64 for IPv6.
    SrcNet,
    /// `CTA_ZONE`.
    Zone,
    /// Connection mark.
    Mark,
    /// Helper name.
    Helper,
    /// Protocol and its state (TCP/SCTP/DCCP state; otherwise the ctstate).
    State,
    /// The NAT target: the DNAT backend (reply source address and port), else the SNAT
    /// address (reply destination), else "no NAT".
    Nat,
}

impl GroupBy {
    /// Every key, in the order `--by` lists them.
    pub const ALL: [GroupBy; 9] = [
        GroupBy::Src,
        GroupBy::Dst,
        GroupBy::Dport,
        GroupBy::SrcNet,
        GroupBy::Zone,
        GroupBy::Mark,
        GroupBy::Helper,
        GroupBy::State,
        GroupBy::Nat,
    ];

    /// The name `--by` takes and JSON prints.
    pub fn name(self) -> &'static str {
        match self {
            GroupBy::Src => "src",
            GroupBy::Dst => "dst",
            GroupBy::Dport => "dport",
            GroupBy::SrcNet => "src-net",
            GroupBy::Zone => "zone",
            GroupBy::Mark => "mark",
            GroupBy::Helper => "helper",
            GroupBy::State => "state",
            GroupBy::Nat => "nat",
        }
    }

    pub fn parse(s: &str) -> Option<GroupBy> {
        let s = s.to_ascii_lowercase();
        let s = match s.as_str() {
            "src24" | "src64" | "net" | "src_net" => "src-net",
            "port" => "dport",
            "proto" | "proto-state" => "state",
            other => other,
        };
        GroupBy::ALL.into_iter().find(|g| g.name() == s)
    }
}

/// A protocol's state within a [`GroupKey::State`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StateKey {
    /// The protocol's own state number (`Flow::state`).
    Proto(u8),
    /// A protocol without states: its ctstate (`NEW`, `ESTABLISHED`, `RELATED`).
    Ct(CtState),
    /// A stateful protocol whose state is not known yet.
    Unknown,
}

/// Where a flow is translated to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NatTarget {
    None,
    /// Destination NAT: the reply source (the backend), address and port (0 without ports).
    Dnat(Family, [u8; 16], u16),
    /// Source NAT only: the reply destination address (ports are usually randomised).
    Snat(Family, [u8; 16]),
}

/// One group's identity. Which endpoint an `Addr` is depends on the [`GroupBy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupKey {
    Addr(Family, [u8; 16]),
    Net(Family, [u8; 16], u8),
    /// Protocol and port; `None` for a protocol without ports.
    Port(u8, Option<u16>),
    Zone(u16),
    Mark(u32),
    Helper(HelperId),
    State(u8, StateKey),
    Nat(NatTarget),
}

/// The group of `f` under `by`. Pure and allocation-free: called once per flow per pass.
pub fn key_of(by: GroupBy, f: &Flow) -> GroupKey {
    let o = &f.orig;
    match by {
        GroupBy::Src => GroupKey::Addr(o.family, o.src),
        GroupBy::Dst => GroupKey::Addr(o.family, o.dst),
        GroupBy::SrcNet => {
            let prefix = match o.family {
                Family::Ipv4 => 24,
                Family::Ipv6 => 64,
            };
            GroupKey::Net(o.family, masked(&o.src, prefix), prefix)
        }
        GroupBy::Dport => GroupKey::Port(o.proto, proto::has_ports(o.proto).then_some(o.dport)),
        GroupBy::Zone => GroupKey::Zone(f.zone),
        GroupBy::Mark => GroupKey::Mark(f.mark),
        GroupBy::Helper => GroupKey::Helper(f.helper),
        GroupBy::State => GroupKey::State(o.proto, state_key(f)),
        GroupBy::Nat => GroupKey::Nat(nat_target(f)),
    }
}

fn masked(a: &[u8; 16], prefix: u8) -> [u8; 16] {
    let mut out = [0u8; 16];
    let full = usize::from(prefix / 8);
    out[..full].copy_from_slice(&a[..full]);
    let rest = prefix % 8;
    if rest != 0 {
        out[full] = a[full] & (0xffu8 << (8 - rest));
    }
    out
}

fn stateful(p: u8) -> bool {
    matches!(p, proto::TCP | proto::SCTP | proto::DCCP)
}

fn state_key(f: &Flow) -> StateKey {
    if stateful(f.orig.proto) {
        if f.state == NO_STATE || f.state_name().is_none() {
            StateKey::Unknown
        } else {
            StateKey::Proto(f.state)
        }
    } else {
        StateKey::Ct(f.ct_state())
    }
}

/// The NAT target as conntrack(8)'s `-g`/`-n` decide NAT (`filter_nat`): the status bit
/// set and the address (or, with ports, the port) actually changed.
fn nat_target(f: &Flow) -> NatTarget {
    if !f.is_nat() {
        return NatTarget::None;
    }
    let (o, r) = (&f.orig, f.reply());
    let ports = proto::has_ports(o.proto);
    if f.has(status::DST_NAT) && (r.src != o.dst || (ports && r.sport != o.dport)) {
        return NatTarget::Dnat(r.family, r.src, if ports { r.sport } else { 0 });
    }
    if f.has(status::SRC_NAT) && (r.dst != o.src || (ports && r.dport != o.sport)) {
        return NatTarget::Snat(r.family, r.dst);
    }
    NatTarget::None
}

fn ip(family: Family, a: &[u8; 16]) -> std::net::IpAddr {
    let mut t = Tuple {
        family,
        ..Tuple::default()
    };
    t.src = *a;
    t.src_ip()
}

/// What a column is sorted by (largest first; `Key` ascending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    /// Flow count (also the share of `nf_conntrack_max`).
    #[default]
    Count,
    /// UNREPLIED flows.
    Unreplied,
    /// New flows per second.
    New,
    /// Destroyed flows per second.
    Destroyed,
    /// Bytes per second.
    Bytes,
    /// The group key itself.
    Key,
}

impl Sort {
    pub const NAMES: [&'static str; 6] = ["count", "unreplied", "new", "destroyed", "bytes", "key"];

    pub fn parse(s: &str) -> Option<Sort> {
        Some(match s.to_ascii_lowercase().as_str() {
            "count" | "share" => Sort::Count,
            "unreplied" => Sort::Unreplied,
            "new" => Sort::New,
            "destroyed" | "destroy" => Sort::Destroyed,
            "bytes" => Sort::Bytes,
            "key" => Sort::Key,
            _ => return None,
        })
    }
}

/// One slot of a group's per-second ring: the store second it counts and its counts.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    sec: u32,
    new: u32,
    destroyed: u32,
}

/// Per-group event counts over the last [`WINDOW`] seconds.
#[derive(Debug, Clone, Default)]
struct Rates {
    slots: [Slot; WINDOW as usize],
    /// Bytes the group's destroyed flows had when they went, since the last pass: what the
    /// pass no longer sees in the store but the group moved.
    destroyed_bytes: u64,
}

impl Rates {
    fn slot(&mut self, now: u32) -> &mut Slot {
        let s = &mut self.slots[(now % WINDOW) as usize];
        if s.sec != now {
            *s = Slot {
                sec: now,
                ..Slot::default()
            };
        }
        s
    }

    /// (new, destroyed) summed over the slots within the window ending at `now`.
    fn sums(&self, now: u32) -> (u64, u64) {
        self.slots
            .iter()
            .filter(|s| now.wrapping_sub(s.sec) < WINDOW && s.sec <= now)
            .fold((0, 0), |(n, d), s| {
                (n + u64::from(s.new), d + u64::from(s.destroyed))
            })
    }

    fn is_idle(&self, now: u32) -> bool {
        self.sums(now) == (0, 0) && self.destroyed_bytes == 0
    }
}

/// What a pass counted for one group. Kept to 16 bytes (a group's key is 20): a pass by
/// source holds one per source, a million of them, and its time goes in reaching them in
/// memory. A table holds at most `nf_conntrack_max` (a u32) flows.
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    flows: u32,
    unreplied: u32,
    /// Bytes of both directions over the members that have counters, plus one; zero when
    /// no member has counters (`nf_conntrack_acct=0`): a flag would cost 8 bytes more.
    metered: u64,
}

impl Counts {
    /// The group's bytes, when any member has counters.
    fn bytes(&self) -> Option<u64> {
        self.metered.checked_sub(1)
    }

    /// One member more: whether it is unreplied, and its bytes as `metered` holds them
    /// (plus one, zero without counters).
    fn add(&mut self, unreplied: bool, metered: u64) {
        self.flows += 1;
        self.unreplied += u32::from(unreplied);
        if metered > 0 {
            self.metered = self.metered.max(1).saturating_add(metered - 1);
        }
    }
}

/// A pass's counts per group: one map, or one per thread that counted (each holding the
/// groups whose hash picks it), looked up through the same hash.
#[derive(Debug, Clone)]
struct Shards {
    maps: Vec<HashMap<GroupKey, Counts>>,
    hasher: hashbrown::DefaultHashBuilder,
}

/// The map of `n` that `k` belongs in: a lane decides by itself whether a flow's group is
/// its own. From the hash's bits 24 to 55, which the maps themselves leave alone: a map
/// finds a slot by the low bits and tells keys apart by the top seven, and keys that all
/// agreed on those (one map's share, routed by them) would crowd one slot or look alike.
fn shard_of(hasher: &hashbrown::DefaultHashBuilder, k: &GroupKey, n: usize) -> usize {
    match n {
        1 => 0,
        n => (((hasher.hash_one(k) >> 24) & 0xFFFF_FFFF) as usize * n) >> 32,
    }
}

impl Default for Shards {
    fn default() -> Shards {
        Shards::new(1)
    }
}

impl Shards {
    fn new(n: usize) -> Shards {
        let hasher = hashbrown::DefaultHashBuilder::default();
        Shards {
            maps: (0..n.max(1))
                .map(|_| HashMap::with_hasher(hasher))
                .collect(),
            hasher,
        }
    }

    fn shard(&self, k: &GroupKey) -> usize {
        shard_of(&self.hasher, k, self.maps.len())
    }

    fn get(&self, k: &GroupKey) -> Option<&Counts> {
        self.maps[self.shard(k)].get(k)
    }

    fn contains_key(&self, k: &GroupKey) -> bool {
        self.get(k).is_some()
    }

    fn iter(&self) -> impl Iterator<Item = (&GroupKey, &Counts)> {
        self.maps.iter().flatten()
    }

    fn keys(&self) -> impl Iterator<Item = &GroupKey> {
        self.iter().map(|(k, _)| k)
    }

    fn len(&self) -> usize {
        self.maps.iter().map(HashMap::len).sum()
    }
}

/// One pass's counts ([`Top::count_where`]), not yet taken in by a [`Top`].
#[derive(Debug, Clone)]
pub struct Counted {
    by: GroupBy,
    counts: Shards,
    total: u64,
    generation: u64,
    /// Whether any group has byte counters: a pass without them needs no walk of the
    /// groups for bytes/s.
    acct: bool,
    ranked: Option<Ranked>,
    /// What its bytes/s are measured against ([`Counted::rated`]); `None`: no bytes/s.
    since: Option<Since>,
}

/// What a pass needs to rate bytes/s against the pass before it, taken where passes are
/// installed ([`Top::since`]) and carried to where the pass runs: rating and ranking by
/// rate look at every group (a million sources are a million groups), and that walk took
/// 99–126 ms of the thread that reads keys when the install made it.
#[derive(Debug, Clone)]
pub struct Since {
    /// The earlier pass's counts, shared with the `Top` that installed them.
    base: Arc<Shards>,
    /// Seconds from the earlier pass to the one being rated (never zero).
    dt: u32,
    /// Bytes each group's flows had when they were destroyed since the earlier pass (the
    /// later pass no longer sees them), as of [`Top::since`].
    gone: Arc<HashMap<GroupKey, u64>>,
}

impl Since {
    /// Bytes per second of the group `k` counted `c`: `None` when no member has counters.
    /// What the group's flows moved: their bytes now plus those of the destroyed ones,
    /// less what they had at the earlier pass.
    fn rate(&self, k: &GroupKey, c: &Counts) -> Option<f64> {
        let now = c.bytes()?;
        let before = self.base.get(k).and_then(Counts::bytes).unwrap_or(0);
        let gone = self.gone.get(k).copied().unwrap_or(0);
        Some(now.saturating_add(gone).saturating_sub(before) as f64 / f64::from(self.dt))
    }
}

/// The first groups of a pass by each order that depends on its counts alone, made where
/// the pass ran ([`Counted::rank`]). With them, [`Top::rows`] looks at those and at the
/// groups that have rates, not at every group: a million distinct sources are a million
/// groups, and the rows are re-read every second on the thread that reads keys.
#[derive(Debug, Clone)]
struct Ranked {
    /// How many each list holds at most.
    limit: usize,
    by_count: Vec<GroupKey>,
    by_unreplied: Vec<GroupKey>,
    by_key: Vec<GroupKey>,
    /// The first by bytes/s (groups with counters, rated against [`Counted::since`]);
    /// empty while no group has a byte rate.
    by_bytes: Vec<GroupKey>,
}

/// Keep the first `limit` items by `Ord` (smallest first) in `heap`: a max-heap whose top
/// is the one to drop, so an item that does not beat it costs one comparison.
fn keep<T: Ord>(heap: &mut std::collections::BinaryHeap<T>, limit: usize, item: T) {
    if heap.len() < limit {
        heap.push(item);
    } else if let Some(mut last) = heap.peek_mut() {
        if item < *last {
            *last = item;
        }
    }
}

/// The keys of a ranking heap, in no order (the rows sort what they take).
fn firsts<T>(heap: std::collections::BinaryHeap<(T, GroupKey)>) -> Vec<GroupKey> {
    heap.into_vec().into_iter().map(|(_, k)| k).collect()
}

impl Counted {
    /// A pass's result as its lanes summed it: `(flows counted, any byte counters)`.
    fn unranked(by: GroupBy, counts: Shards, (total, acct): (u64, bool), store: &Store) -> Self {
        Counted {
            by,
            counts,
            total,
            generation: store.generation(),
            acct,
            ranked: None,
            since: None,
        }
    }

    /// Measure bytes/s against `since` ([`Top::since`] of the `Top` that will install
    /// this pass; `None`: no bytes/s). Before [`rank`](Counted::rank), which ranks by them.
    pub fn rated(mut self, since: Option<Since>) -> Counted {
        self.since = since.filter(|_| self.acct);
        self
    }

    /// Rank the groups for [`Top::rows`] up to `limit`, here rather than where the rows are
    /// read: one walk over every group, keeping the first `limit` by each order in a
    /// bounded heap (a group that does not beat the heap's last costs one comparison).
    pub fn rank(&mut self, limit: usize) {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;

        // Largest count first, ties by key: the order `Top::rows` sorts in. Rates are
        // never negative, and the bits of non-negative floats order as the floats do.
        let (mut count, mut unreplied, mut key, mut bytes) = (
            BinaryHeap::new(),
            BinaryHeap::new(),
            BinaryHeap::new(),
            BinaryHeap::new(),
        );
        if limit > 0 {
            for (k, c) in self.counts.iter() {
                keep(&mut count, limit, (Reverse(c.flows), *k));
                keep(&mut unreplied, limit, (Reverse(c.unreplied), *k));
                keep(&mut key, limit, *k);
                if let Some(rate) = self.since.as_ref().and_then(|s| s.rate(k, c)) {
                    keep(&mut bytes, limit, (Reverse(rate.to_bits()), *k));
                }
            }
        }
        self.ranked = Some(Ranked {
            limit,
            by_count: firsts(count),
            by_unreplied: firsts(unreplied),
            by_key: key.into_vec(),
            by_bytes: firsts(bytes),
        });
    }
}

/// One group as a screen or a headless mode shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub key: GroupKey,
    /// The key as text (`10.0.0.1`, `10.0.0.0/24`, `tcp/80`, `tcp ESTABLISHED`, `ftp`, …).
    pub label: String,
    pub flows: u64,
    /// Flows without `SEEN_REPLY`: those go first under early drop.
    pub unreplied: u64,
    /// New flows per second over the last [`WINDOW`] seconds (events seen only).
    pub new_per_s: f64,
    /// Destroyed flows per second over the last [`WINDOW`] seconds (events seen only).
    pub destroyed_per_s: f64,
    /// Bytes per second between the last two passes; `None` without accounting or before
    /// a second pass.
    pub bytes_per_s: Option<f64>,
    /// The filter expression that selects exactly this group, when there is one.
    pub filter: Option<String>,
}

impl Row {
    /// The group's share of `nf_conntrack_max` (0.0–1.0).
    pub fn share_of(&self, max: u64) -> f64 {
        if max == 0 {
            0.0
        } else {
            self.flows as f64 / max as f64
        }
    }

    /// The share of the group's flows that are UNREPLIED (0.0–1.0).
    pub fn unreplied_share(&self) -> f64 {
        if self.flows == 0 {
            0.0
        } else {
            self.unreplied as f64 / self.flows as f64
        }
    }
}

/// Flows grouped by one key, kept live from a store and its event stream.
///
/// Use: construct with [`Top::new`]; for every record the engine delivers, call
/// [`Top::observe`] *before* `Store::apply`; call [`Top::rebuild`] when the view should
/// refresh (e.g. once a second, or when `store.generation()` moved); read [`Top::rows`].
#[derive(Debug, Clone)]
pub struct Top {
    by: GroupBy,
    counts: Arc<Shards>,
    rates: HashMap<GroupKey, Rates>,
    /// The pass the next one is rated against, and its store time: the first pass
    /// installed in each second.
    base: Option<(Arc<Shards>, u32)>,
    /// What the installed pass's bytes/s were measured against (`None`: none known).
    rated: Option<Since>,
    /// Flows counted by the last pass.
    total: u64,
    /// The last pass's store time.
    at: u32,
    /// The store generation of the last pass.
    generation: Option<u64>,
    /// Events observed since construction (NEW and DESTROY of flows).
    observed: u64,
    /// Whether passes sum bytes (see [`Top::set_bytes`]).
    bytes: bool,
    /// The last pass's ranking, when it was ranked.
    ranked: Option<Ranked>,
}

impl Top {
    pub fn new(by: GroupBy) -> Top {
        Top {
            by,
            counts: Arc::default(),
            rates: HashMap::new(),
            base: None,
            rated: None,
            total: 0,
            at: 0,
            generation: None,
            observed: 0,
            bytes: true,
            ranked: None,
        }
    }

    /// Whether passes sum each flow's byte counters for bytes/s (default on). Counters
    /// sit behind a pointer, so on a big table with accounting on a pass costs about
    /// twice as much with them (see README, "Top at a million flows"); a view that does
    /// not show bytes turns them off.
    pub fn set_bytes(&mut self, on: bool) {
        self.bytes = on;
        if !on {
            self.rated = None;
            if let Some(r) = self.ranked.as_mut() {
                r.by_bytes.clear();
            }
        }
    }

    pub fn by(&self) -> GroupBy {
        self.by
    }

    /// Group by another key. Counts need a new pass; the event rates of the old key are
    /// dropped (they cannot be re-keyed), so the rates restart from zero.
    pub fn set_by(&mut self, by: GroupBy) {
        if by != self.by {
            *self = Top::new(by);
        }
    }

    /// Flows counted by the last pass.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Groups found by the last pass.
    pub fn groups(&self) -> usize {
        self.counts.len()
    }

    /// Flow NEW/DESTROY events observed so far: zero means the rates are not known (a
    /// one-shot dump), not that nothing happened.
    pub fn observed(&self) -> u64 {
        self.observed
    }

    /// Note one record before the store applies it (the store still has a destroyed
    /// flow, so its helper and mark, which a DESTROY does not carry, are known). Cost:
    /// one key computation, at most one store lookup, one hash-map update.
    pub fn observe(&mut self, store: &Store, event: Event, record: &Record, now: u32) {
        let Record::Flow(f) = record else { return };
        match event {
            Event::New => {
                self.observed += 1;
                let key = key_of(self.by, f);
                self.rates.entry(key).or_default().slot(now).new += 1;
            }
            Event::Destroy => {
                self.observed += 1;
                let known = store.flow(&FlowKey::of(f));
                let key = key_of(self.by, known.unwrap_or(f));
                let bytes = byte_sum(f).or_else(|| known.and_then(byte_sum));
                let r = self.rates.entry(key).or_default();
                r.slot(now).destroyed += 1;
                r.destroyed_bytes += bytes.unwrap_or(0);
            }
            Event::Update | Event::Dump => {}
        }
    }

    /// Count every flow of `store` at store time `now` (one pass), and compute bytes per
    /// second against the previous pass.
    pub fn rebuild(&mut self, store: &Store, now: u32) {
        self.rebuild_where(store, now, 0, |_| true);
    }

    /// [`rebuild`](Top::rebuild) over the flows `keep` accepts (a `--filter`), ranked up
    /// to `rank` rows ([`Counted::rank`]; 0: not ranked) so that reading that many looks
    /// at `rank` groups of each order, not at every group. The caller then passes only
    /// accepted records to [`observe`](Top::observe).
    pub fn rebuild_where(
        &mut self,
        store: &Store,
        now: u32,
        rank: usize,
        keep: impl Fn(&Flow) -> bool,
    ) {
        let mut counted = Top::count_where(self.by, self.bytes, store, keep).rated(self.since(now));
        if rank > 0 {
            counted.rank(rank);
        }
        self.install(counted, now);
    }

    /// The pass of [`rebuild_where`](Top::rebuild_where) alone: counts per group of the
    /// flows `keep` accepts, touching nothing but `store`. Split out so a dashboard can
    /// run it on another thread (under the store's read lock) and [`install`](Top::install)
    /// the result on its own.
    pub fn count_where(
        by: GroupBy,
        bytes: bool,
        store: &Store,
        keep: impl Fn(&Flow) -> bool,
    ) -> Counted {
        Top::count_until(by, bytes, store, keep, || false)
    }

    /// [`count_where`](Top::count_where), stopping early once `stop` says so (asked every
    /// [`STOP_EVERY`] flows): a pass whose result nobody will use (the grouping changed
    /// while it ran) gives its thread back. What a stopped pass returns counts part of the
    /// table and must be thrown away.
    pub fn count_until(
        by: GroupBy,
        bytes: bool,
        store: &Store,
        keep: impl Fn(&Flow) -> bool,
        stop: impl Fn() -> bool,
    ) -> Counted {
        let flows = store.flow_slice();
        let pick = |f: &Flow| keep(f).then(|| key_of(by, f));
        let likely = likely_groups(flows, pick);
        let mut counts = Shards::new(parts_for(likely, 1));
        let lane = Lane::all(&mut counts, likely);
        let summed = lane.count(bytes, flows, pick, stop);
        Counted::unranked(by, counts, summed, store)
    }

    /// [`count_until`](Top::count_until) of every flow (no filter) on `lanes` threads:
    /// each walks the whole table and counts the groups whose hash picks it, so no map is
    /// merged after. For the pass the admin is waiting for (a regrouping, the screen
    /// opened).
    pub fn count_split(
        by: GroupBy,
        bytes: bool,
        store: &Store,
        lanes: usize,
        stop: impl Fn() -> bool,
    ) -> Counted {
        let flows = store.flow_slice();
        // A small table is not worth a thread.
        let lanes = if flows.len() < SPLIT_FROM {
            1
        } else {
            lanes.clamp(1, 4)
        };
        let likely = likely_groups(flows, |f| Some(key_of(by, f)));
        let mut counts = Shards::new(parts_for(likely, lanes));
        let summed = if lanes == 1 {
            let lane = Lane::all(&mut counts, likely);
            lane.count(bytes, flows, |f| Some(key_of(by, f)), stop)
        } else {
            // `stop` is asked on this thread only (it may read this thread's state, as
            // the view builder's does); the other lanes follow its answer.
            let halt = std::sync::atomic::AtomicBool::new(false);
            let halted = || halt.load(std::sync::atomic::Ordering::Relaxed);
            let ask = || {
                if stop() {
                    halt.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                halted()
            };
            std::thread::scope(|scope| {
                let mut split = Lane::split(&mut counts, lanes, likely).into_iter();
                let mine = split.next().expect("one lane at least");
                let others: Vec<_> = split
                    .map(|lane| {
                        scope.spawn(move || {
                            lane.count(bytes, flows, |f| Some(key_of(by, f)), halted)
                        })
                    })
                    .collect();
                let mut sum = mine.count(bytes, flows, |f| Some(key_of(by, f)), ask);
                for t in others {
                    // A lane only panics if counting does, which the caller's unwind
                    // catches: pass it on.
                    let (n, a) = t.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
                    sum = (sum.0 + n, sum.1 || a);
                }
                sum
            })
        };
        Counted::unranked(by, counts, summed, store)
    }

    /// What a pass made for store time `now` rates its bytes/s against ([`Counted::rated`]):
    /// the base pass and the bytes destroyed since, `None` without a base older than `now`
    /// or with bytes off. Cheap: it shares the base and copies only the destroyed bytes
    /// (one entry per group that lost a flow since the base).
    pub fn since(&self, now: u32) -> Option<Since> {
        let (base, at) = self
            .base
            .as_ref()
            .filter(|(_, at)| now > *at && self.bytes)?;
        let gone = self
            .rates
            .iter()
            .filter(|(_, r)| r.destroyed_bytes > 0)
            .map(|(k, r)| (*k, r.destroyed_bytes))
            .collect();
        Some(Since {
            base: Arc::clone(base),
            dt: now - at,
            gone: Arc::new(gone),
        })
    }

    /// Take in a pass made by [`count_where`](Top::count_where) at store time `now`, with
    /// the bytes/s it was [`rated`](Counted::rated) with. A pass of another grouping (the
    /// key changed while it ran) is dropped; returns whether it was taken. Walks no group.
    pub fn install(&mut self, counted: Counted, now: u32) -> bool {
        if counted.by != self.by {
            return false;
        }
        let Counted {
            counts,
            total,
            generation,
            ranked,
            mut since,
            ..
        } = counted;
        if self.base.is_none() {
            // Rated against a base this `Top` never had (one it was reset from). A ranking
            // by bytes left behind is harmless: with no rates every group's is zero, and
            // `candidates` adds the first keys, which is what zeros sort to.
            since = None;
        }
        let counts = Arc::new(counts);
        self.total = total;
        // The first pass of a new second becomes the base, unless it was rated against an
        // older base than the current one (asked for before the current one came in): the
        // destroyed bytes it took are then not all the current base's to forget.
        let new_second = self.base.as_ref().is_none_or(|(_, at)| now > *at);
        let rebase = match (&since, &self.base) {
            (Some(s), Some((base, _))) => Arc::ptr_eq(&s.base, base),
            _ => true,
        };
        if new_second && rebase {
            match &since {
                // What the pass took is now inside the base; what went after it stays.
                Some(s) => {
                    for (k, g) in s.gone.iter() {
                        if let Some(r) = self.rates.get_mut(k) {
                            r.destroyed_bytes = r.destroyed_bytes.saturating_sub(*g);
                        }
                    }
                }
                None => self.rates.values_mut().for_each(|r| r.destroyed_bytes = 0),
            }
            self.base = Some((Arc::clone(&counts), now));
        }
        // Groups that have neither members nor recent events are forgotten.
        self.rates
            .retain(|k, r| counts.contains_key(k) || !r.is_idle(now));
        self.counts = counts;
        self.rated = since.filter(|_| self.bytes);
        self.ranked = ranked;
        self.at = now;
        self.generation = Some(generation);
        true
    }

    /// The bytes/s of the group `k` as the installed pass measured them.
    fn byte_rate(&self, k: &GroupKey) -> Option<f64> {
        self.rated.as_ref()?.rate(k, self.counts.get(k)?)
    }

    /// Whether passes sum bytes (what [`count_where`](Top::count_where) is given).
    pub fn sums_bytes(&self) -> bool {
        self.bytes
    }

    /// [`rebuild`](Top::rebuild) unless the store has not changed since the last pass and
    /// no time passed: what a screen calls on every tick. Returns whether it ran.
    pub fn refresh(&mut self, store: &Store, now: u32) -> bool {
        if self.generation == Some(store.generation()) && self.at == now {
            return false;
        }
        self.rebuild(store, now);
        true
    }

    /// The groups sorted by `sort` (largest first, ties by key), at most `limit`, with
    /// rates as of store time `now`. Groups that lost every member but had events in the
    /// window are listed with zero flows (a source whose flows all went is news).
    pub fn rows(&self, sort: Sort, limit: usize, now: u32) -> Vec<Row> {
        let mut keys = self.candidates(sort, limit);
        keys.extend(
            self.rates
                .iter()
                .filter(|(k, r)| !self.counts.contains_key(k) && r.sums(now) != (0, 0))
                .map(|(k, _)| *k),
        );
        let metric = |k: &GroupKey| -> f64 {
            let c = self.counts.get(k).copied().unwrap_or_default();
            let (n, d) = self.rates.get(k).map_or((0, 0), |r| r.sums(now));
            match sort {
                Sort::Count | Sort::Key => c.flows as f64,
                Sort::Unreplied => c.unreplied as f64,
                Sort::New => n as f64,
                Sort::Destroyed => d as f64,
                Sort::Bytes => self.byte_rate(k).unwrap_or(0.0),
            }
        };
        let order = |a: &GroupKey, b: &GroupKey| {
            if sort == Sort::Key {
                a.cmp(b)
            } else {
                metric(b).total_cmp(&metric(a)).then_with(|| a.cmp(b))
            }
        };
        if limit < keys.len() {
            keys.select_nth_unstable_by(limit, order);
            keys.truncate(limit);
        }
        keys.sort_unstable_by(order);
        keys.into_iter().map(|k| self.row(k, now)).collect()
    }

    /// The groups of the last pass that can be among the first `limit` by `sort`; the
    /// groups known only by their rates are added by the caller.
    ///
    /// With a ranking of at least `limit` (a pass ranked by [`Counted::rank`]): by a
    /// count or the key, that ranking's list, since a group outside it has `limit`
    /// groups before it already. By a rate, the groups that have rates, then the first
    /// by key, since every other group's rate is zero and zeros go by key. Bytes/s are
    /// computed per group at each pass, so by bytes (and without a ranking) every group.
    fn candidates(&self, sort: Sort, limit: usize) -> Vec<GroupKey> {
        let Some(r) = self.ranked.as_ref().filter(|r| r.limit >= limit) else {
            return self.counts.keys().copied().collect();
        };
        // The groups whose metric may be above zero, then the first keys: a group with
        // none ranks by its key among the zeros. A group in both must come once (the rows
        // are one per group).
        let then_keys = |mut keys: Vec<GroupKey>| {
            let listed: hashbrown::HashSet<GroupKey> = keys.iter().copied().collect();
            keys.extend(r.by_key.iter().filter(|k| !listed.contains(*k)));
            keys
        };
        match sort {
            Sort::Count => r.by_count.clone(),
            Sort::Unreplied => r.by_unreplied.clone(),
            Sort::Key => r.by_key.clone(),
            Sort::New | Sort::Destroyed => then_keys(
                self.rates
                    .keys()
                    .filter(|k| self.counts.contains_key(k))
                    .copied()
                    .collect(),
            ),
            Sort::Bytes => then_keys(r.by_bytes.clone()),
        }
    }

    /// The row of one group (zero counts when the group is unknown).
    pub fn row(&self, key: GroupKey, now: u32) -> Row {
        let c = self.counts.get(&key).copied().unwrap_or_default();
        let (n, d) = self.rates.get(&key).map_or((0, 0), |r| r.sums(now));
        Row {
            key,
            label: self.label_of(&key),
            flows: u64::from(c.flows),
            unreplied: u64::from(c.unreplied),
            new_per_s: n as f64 / f64::from(WINDOW),
            destroyed_per_s: d as f64 / f64::from(WINDOW),
            bytes_per_s: self.byte_rate(&key),
            filter: self.filter_of(&key),
        }
    }

    /// The group key as text.
    pub fn label_of(&self, key: &GroupKey) -> String {
        match *key {
            GroupKey::Addr(f, a) => ip(f, &a).to_string(),
            GroupKey::Net(f, a, p) => format!("{}/{p}", ip(f, &a)),
            GroupKey::Port(p, Some(port)) => format!("{}/{port}", proto_name(p)),
            GroupKey::Port(p, None) => proto_name(p),
            GroupKey::Zone(z) => z.to_string(),
            GroupKey::Mark(m) => format!("{m:#x}"),
            GroupKey::Helper(h) => h.name().unwrap_or("-").to_owned(),
            GroupKey::State(p, s) => format!("{} {}", proto_name(p), state_label(p, s)),
            GroupKey::Nat(NatTarget::None) => "-".to_owned(),
            GroupKey::Nat(NatTarget::Dnat(f, a, port)) => {
                let ip = ip(f, &a);
                match (port, ip) {
                    (0, ip) => format!("dnat {ip}"),
                    (p, std::net::IpAddr::V6(v6)) => format!("dnat [{v6}]:{p}"),
                    (p, ip) => format!("dnat {ip}:{p}"),
                }
            }
            GroupKey::Nat(NatTarget::Snat(f, a)) => format!("snat {}", ip(f, &a)),
        }
    }

    /// The filter expression (the `--filter` language) that selects exactly this group's
    /// flows, or `None` where the language cannot say it exactly: flows without a helper,
    /// and a stateful protocol's flows whose state is not known.
    pub fn filter_of(&self, key: &GroupKey) -> Option<String> {
        let mut s = String::new();
        match (*key, self.by) {
            (GroupKey::Addr(f, a), GroupBy::Dst) => {
                let _ = write!(s, "flow and dst={}", ip(f, &a));
            }
            (GroupKey::Addr(f, a), _) => {
                let _ = write!(s, "flow and src={}", ip(f, &a));
            }
            (GroupKey::Net(f, a, p), _) => {
                let _ = write!(s, "flow and src={}/{p}", ip(f, &a));
            }
            (GroupKey::Port(p, port), _) => {
                let _ = write!(s, "flow and proto={}", proto_word(p));
                if let Some(port) = port {
                    let _ = write!(s, " and dport={port}");
                }
            }
            (GroupKey::Zone(z), _) => {
                let _ = write!(s, "flow and zone={z}");
            }
            (GroupKey::Mark(m), _) => {
                let _ = write!(s, "flow and mark={m:#x}");
            }
            (GroupKey::Helper(h), _) => {
                let _ = write!(s, "flow and helper={}", h.name()?);
            }
            (GroupKey::State(p, st), _) => {
                let _ = write!(s, "flow and proto={} and ", proto_word(p));
                match st {
                    StateKey::Proto(_) => {
                        let _ = write!(s, "state={}", state_label(p, st));
                    }
                    StateKey::Ct(c) => {
                        let _ = write!(s, "ctstate={}", c.name());
                    }
                    StateKey::Unknown => return None,
                }
            }
            (GroupKey::Nat(NatTarget::None), _) => s.push_str("flow and not anynat"),
            (GroupKey::Nat(NatTarget::Dnat(f, a, port)), _) => {
                let _ = write!(s, "dnat and reply_src={}", ip(f, &a));
                if port != 0 {
                    let _ = write!(s, " and reply_sport={port}");
                }
            }
            (GroupKey::Nat(NatTarget::Snat(f, a)), _) => {
                let _ = write!(s, "snat and not dnat and reply_dst={}", ip(f, &a));
            }
        }
        Some(s)
    }
}

/// A protocol as the filter language reads it back: its name when that name parses to
/// the same number, else the number.
fn proto_word(p: u8) -> String {
    proto::name(p)
        .filter(|n| proto::parse(n) == Some(p))
        .map_or_else(|| p.to_string(), str::to_owned)
}

fn proto_name(p: u8) -> String {
    proto::name(p).map_or_else(|| p.to_string(), str::to_owned)
}

fn state_label(p: u8, s: StateKey) -> String {
    match s {
        StateKey::Proto(n) => {
            let mut f = Flow::new(Tuple {
                proto: p,
                ..Tuple::default()
            });
            f.state = n;
            f.state_name().unwrap_or("?").to_owned()
        }
        StateKey::Ct(c) => c.name().to_owned(),
        StateKey::Unknown => "?".to_owned(),
    }
}

/// Bytes of both directions, when the flow has counters.
fn byte_sum(f: &Flow) -> Option<u64> {
    f.extra
        .as_ref()
        .and_then(|e| e.counters)
        .map(|[a, b]| a.bytes.saturating_add(b.bytes))
}

/// Flows a pass samples to size its maps ([`likely_groups`]).
const SAMPLE: usize = 4096;

/// How many groups a pass over `flows` will likely find: it decides how the pass counts
/// ([`parts_for`]) and how large its maps are made at once (growing a map step by step
/// moves every entry again at each doubling).
///
/// From `SAMPLE` flows, one at random from each of `SAMPLE` equal stretches of the table
/// (a table's order often follows its addresses, which an even stride would step in time
/// with): when no two picked flows share a group, there are likely about as many groups
/// as picked flows (a pass by source of a table of distinct sources); otherwise the
/// birthday estimate, `s² / 2c` groups for `c` repeats among `s` picks, at least the groups
/// seen. Zero (let the map grow) for a table too small to be worth it. A wrong guess costs
/// time or unused memory, never a wrong count.
fn likely_groups(flows: &[Flow], pick: impl Fn(&Flow) -> Option<GroupKey>) -> usize {
    if flows.len() < 4 * SAMPLE {
        return 0;
    }
    let step = flows.len() / SAMPLE;
    let mut seen = hashbrown::HashSet::with_capacity(SAMPLE);
    let mut picked = 0usize;
    // xorshift64: any fixed sequence that does not follow the table's order will do.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for stretch in 0..SAMPLE {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let i = stretch * step + (x % step as u64) as usize;
        if let Some(k) = pick(&flows[i]) {
            picked += 1;
            seen.insert(k);
        }
    }
    // Picked flows in the whole table, scaled from the sample.
    let members = flows.len() * picked / SAMPLE;
    let repeats = picked - seen.len();
    if repeats == 0 {
        return members;
    }
    (picked * picked / (2 * repeats))
        .max(seen.len())
        .min(members)
}

/// Groups from which a pass partitions its flows first ([`Lane::count`]): about where
/// one map of them outgrows the caches.
const PARTITION_FROM: usize = 1 << 16;

/// Partitions of such a pass: a million groups make partitions of ~4,000 groups, whose
/// maps (~160 KB each) stay in a core's cache while they are filled.
const PARTS: usize = 256;

/// How many maps a pass of `likely` groups on `lanes` threads counts into.
fn parts_for(likely: usize, lanes: usize) -> usize {
    if likely >= PARTITION_FROM {
        PARTS
    } else {
        lanes
    }
}

/// The maps one thread of a pass fills: the run of a [`Shards`]' maps from `first`, the
/// groups whose hash routes them there.
struct Lane<'a> {
    maps: &'a mut [HashMap<GroupKey, Counts>],
    first: usize,
    /// Maps of the whole pass (what [`shard_of`] routes among).
    parts: usize,
    hasher: hashbrown::DefaultHashBuilder,
    /// Groups the pass likely finds in all (for sizing).
    likely: usize,
}

/// A flow as a partition holds it until its partition is counted.
struct Member {
    key: GroupKey,
    unreplied: bool,
    /// As [`Counts::metered`]: bytes plus one, zero without counters.
    metered: u64,
}

impl<'a> Lane<'a> {
    /// The one lane of a pass on one thread.
    fn all(shards: &'a mut Shards, likely: usize) -> Lane<'a> {
        Lane::split(shards, 1, likely).pop().expect("one lane")
    }

    /// The lanes of a pass on `lanes` threads: each takes an equal run of the maps (the
    /// runs cover every map once, so every group is counted by exactly one lane).
    fn split(shards: &'a mut Shards, lanes: usize, likely: usize) -> Vec<Lane<'a>> {
        let parts = shards.maps.len();
        let hasher = shards.hasher;
        let per = parts / lanes;
        shards
            .maps
            .chunks_mut(per)
            .enumerate()
            .map(|(i, maps)| Lane {
                maps,
                first: i * per,
                parts,
                hasher,
                likely,
            })
            .collect()
    }

    /// Count the flows `pick` gives a group this lane holds; returns how many, and
    /// whether any had byte counters. Stops when `stop` says so (asked every
    /// [`STOP_EVERY`] flows).
    ///
    /// With one map, each flow goes straight into it. With many (a pass of many groups),
    /// the flows are first copied into one partition per map, in order (writes that run
    /// on in memory), and then each partition is counted into its own small map: one
    /// large map would be reached at a random place per flow, a cache miss each, and a
    /// million distinct sources took ~500 ms on one thread that way.
    fn count(
        self,
        bytes: bool,
        flows: &[Flow],
        pick: impl Fn(&Flow) -> Option<GroupKey>,
        stop: impl Fn() -> bool,
    ) -> (u64, bool) {
        let Lane {
            maps,
            first,
            parts,
            hasher,
            likely,
        } = self;
        let mine = first..first + maps.len();
        // Groups a map likely gets, with room for the hash's unevenness.
        let each = (likely / parts) + (likely / parts) / 4 + 16;
        let (mut total, mut acct) = (0, false);
        let metered = |f: &Flow| -> u64 {
            // The one pointer chase of the pass (counters live in the boxed `Extra`):
            // skipped when the caller does not show bytes.
            match bytes.then(|| byte_sum(f)).flatten() {
                Some(b) => b.saturating_add(1),
                None => 0,
            }
        };
        if maps.len() == 1 {
            let map = &mut maps[0];
            map.reserve(if likely == 0 { 0 } else { each });
            for (i, f) in flows.iter().enumerate() {
                if i % STOP_EVERY == STOP_EVERY - 1 && stop() {
                    break;
                }
                let Some(key) = pick(f) else { continue };
                if parts > 1 && !mine.contains(&shard_of(&hasher, &key, parts)) {
                    continue;
                }
                total += 1;
                let m = metered(f);
                acct |= m > 0;
                map.entry(key)
                    .or_default()
                    .add(!f.has(status::SEEN_REPLY), m);
            }
            return (total, acct);
        }
        // Each partition is made large enough for its share of the flows at once.
        let room = flows.len() / parts + flows.len() / parts / 8 + 16;
        let mut held: Vec<Vec<Member>> =
            (0..maps.len()).map(|_| Vec::with_capacity(room)).collect();
        for (i, f) in flows.iter().enumerate() {
            if i % STOP_EVERY == STOP_EVERY - 1 && stop() {
                return (total, acct);
            }
            let Some(key) = pick(f) else { continue };
            let p = shard_of(&hasher, &key, parts);
            if !mine.contains(&p) {
                continue;
            }
            total += 1;
            let m = metered(f);
            acct |= m > 0;
            held[p - first].push(Member {
                key,
                unreplied: !f.has(status::SEEN_REPLY),
                metered: m,
            });
        }
        for (map, members) in maps.iter_mut().zip(held) {
            map.reserve(each.min(members.len()));
            for m in members {
                map.entry(m.key).or_default().add(m.unreplied, m.metered);
            }
        }
        (total, acct)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::Filter;
    use crate::model::Counter;

    fn tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Flow {
        let mut t = Tuple {
            proto: proto::TCP,
            sport,
            dport,
            family: Family::Ipv4,
            ..Tuple::default()
        };
        t.src[..4].copy_from_slice(&src);
        t.dst[..4].copy_from_slice(&dst);
        let mut f = Flow::new(t);
        f.state = 3; // ESTABLISHED
        f.status = status::SEEN_REPLY | status::ASSURED | status::CONFIRMED;
        f.timeout = 100;
        f
    }

    /// A varied table: sources with known counts, UNREPLIED flows, udp, icmp, IPv6, zones,
    /// marks, a helper, DNAT and SNAT.
    fn table() -> (Store, Vec<Flow>) {
        let mut flows = Vec::new();
        for i in 0..50u16 {
            flows.push(tcp([10, 0, 0, 1], 1000 + i, [10, 0, 1, 1], 80));
        }
        for s in 2..6u8 {
            for i in 0..5u16 {
                let mut f = tcp([10, 0, 0, s], 2000 + i, [10, 0, 1, 2], 443);
                if i % 2 == 0 {
                    f.status = status::CONFIRMED;
                    f.state = 1; // SYN_SENT
                }
                f.mark = u32::from(s % 2);
                f.zone = u16::from(s % 3);
                flows.push(f);
            }
        }
        let mut udp = tcp([10, 0, 2, 9], 53000, [10, 0, 1, 53], 53);
        udp.orig.proto = proto::UDP;
        udp.state = NO_STATE;
        flows.push(udp.clone());
        udp.orig.sport = 53001;
        udp.status = 0;
        flows.push(udp);
        let mut icmp = tcp([10, 0, 2, 9], 7, [10, 0, 1, 1], 0x0800);
        icmp.orig.proto = proto::ICMP;
        icmp.state = NO_STATE;
        flows.push(icmp);
        let mut v6 = tcp([0; 4], 5000, [0; 4], 22);
        v6.orig.family = Family::Ipv6;
        v6.orig.src = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        v6.orig.dst = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
        flows.push(v6);
        let mut ftp = tcp([10, 0, 0, 1], 3000, [10, 0, 1, 3], 21);
        ftp.helper = crate::model::helper::intern("ftp");
        flows.push(ftp);
        // DNAT to a backend, with counters.
        let mut dnat = tcp([10, 0, 3, 1], 4000, [10, 96, 0, 1], 80);
        let mut r = dnat.orig.inverted();
        r.src[..4].copy_from_slice(&[10, 244, 0, 7]);
        r.sport = 8080;
        dnat.set_reply(r);
        dnat.status |= status::DST_NAT;
        dnat.extra_mut().counters = Some([
            Counter {
                packets: 1,
                bytes: 100,
            },
            Counter {
                packets: 1,
                bytes: 50,
            },
        ]);
        flows.push(dnat);
        // SNAT (masquerade).
        let mut snat = tcp([10, 0, 3, 2], 4001, [8, 8, 8, 8], 443);
        let mut r = snat.orig.inverted();
        r.dst[..4].copy_from_slice(&[192, 0, 2, 1]);
        r.dport = 61000;
        snat.set_reply(r);
        snat.status |= status::SRC_NAT;
        flows.push(snat);
        let mut store = Store::new();
        for f in &flows {
            store.apply(Event::New, Record::Flow(f.clone()), 1);
        }
        (store, flows)
    }

    #[test]
    fn counts_per_source_with_unreplied() {
        let (store, _) = table();
        let mut top = Top::new(GroupBy::Src);
        top.rebuild(&store, 1);
        let rows = top.rows(Sort::Count, 3, 1);
        assert_eq!(rows[0].label, "10.0.0.1");
        assert_eq!(rows[0].flows, 51);
        assert_eq!(rows[0].unreplied, 0);
        assert_eq!(rows[1].flows, 5);
        assert_eq!(rows[1].unreplied, 3);
        assert_eq!(rows.len(), 3);
        assert_eq!(top.total(), store.flow_count() as u64);
        let by_unreplied = top.rows(Sort::Unreplied, 1, 1);
        assert_eq!(by_unreplied[0].unreplied, 3);
        assert!((rows[0].share_of(102) - 0.5).abs() < 1e-9);
    }

    /// Every group's filter selects exactly the group's members, for every key.
    #[test]
    fn each_group_filter_selects_exactly_its_members() {
        let (store, flows) = table();
        for by in GroupBy::ALL {
            let mut top = Top::new(by);
            top.rebuild(&store, 1);
            let rows = top.rows(Sort::Key, usize::MAX, 1);
            assert_eq!(
                rows.iter().map(|r| r.flows).sum::<u64>(),
                flows.len() as u64,
                "{by:?}"
            );
            for row in rows {
                let Some(expr) = &row.filter else {
                    assert!(
                        matches!(row.key, GroupKey::Helper(h) if h.is_none()),
                        "{by:?} {row:?} has no filter"
                    );
                    continue;
                };
                let filter = Filter::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
                let selected = store.flows().filter(|f| filter.match_flow(f, 1)).count();
                let members = store.flows().filter(|f| key_of(by, f) == row.key).count();
                assert_eq!(selected as u64, row.flows, "{by:?} '{expr}'");
                assert_eq!(selected, members, "{by:?} '{expr}'");
                assert!(store
                    .flows()
                    .filter(|f| filter.match_flow(f, 1))
                    .all(|f| key_of(by, f) == row.key));
            }
        }
    }

    #[test]
    fn labels_name_the_key() {
        let (store, _) = table();
        let labels = |by| {
            let mut top = Top::new(by);
            top.rebuild(&store, 1);
            top.rows(Sort::Count, usize::MAX, 1)
                .into_iter()
                .map(|r| r.label)
                .collect::<Vec<_>>()
        };
        assert!(labels(GroupBy::SrcNet).contains(&"10.0.0.0/24".to_owned()));
        assert!(labels(GroupBy::SrcNet).contains(&"fd00::/64".to_owned()));
        assert!(labels(GroupBy::Dport).contains(&"tcp/80".to_owned()));
        assert!(labels(GroupBy::Dport).contains(&"icmp".to_owned()));
        assert!(labels(GroupBy::State).contains(&"tcp SYN_SENT".to_owned()));
        assert!(labels(GroupBy::State).contains(&"udp NEW".to_owned()));
        assert!(labels(GroupBy::Nat).contains(&"dnat 10.244.0.7:8080".to_owned()));
        assert!(labels(GroupBy::Nat).contains(&"snat 192.0.2.1".to_owned()));
        assert!(labels(GroupBy::Helper).contains(&"ftp".to_owned()));
    }

    #[test]
    fn rates_count_events_in_the_last_ten_seconds() {
        let mut store = Store::new();
        let mut top = Top::new(GroupBy::Src);
        // 3 NEW a second from .1 during seconds 0..20, each destroyed the next second.
        for now in 0..20u32 {
            for i in 0..3u16 {
                let f = tcp([10, 0, 0, 1], (now as u16) * 10 + i, [10, 0, 1, 1], 80);
                let rec = Record::Flow(f);
                top.observe(&store, Event::New, &rec, now);
                store.apply(Event::New, rec, now);
            }
            if now > 0 {
                for i in 0..3u16 {
                    let mut f = tcp(
                        [10, 0, 0, 1],
                        ((now - 1) as u16) * 10 + i,
                        [10, 0, 1, 1],
                        80,
                    );
                    // A DESTROY carries no mark: the group comes from the store.
                    f.mark = 0;
                    let rec = Record::Flow(f);
                    top.observe(&store, Event::Destroy, &rec, now);
                    store.apply(Event::Destroy, rec, now);
                }
            }
        }
        top.rebuild(&store, 19);
        let row = &top.rows(Sort::New, 1, 19)[0];
        assert_eq!(row.flows, 3);
        assert!((row.new_per_s - 3.0).abs() < 1e-9, "{row:?}");
        assert!((row.destroyed_per_s - 3.0).abs() < 1e-9, "{row:?}");
        // Nothing more for 5 s: half the window; after 10 s, nothing.
        let row = top.row(row.key, 24);
        assert!((row.new_per_s - 1.5).abs() < 1e-9, "{row:?}");
        assert_eq!(top.row(row.key, 29).new_per_s, 0.0);
        assert_eq!(top.observed(), 3 * 20 + 3 * 19);
    }

    #[test]
    fn destroy_takes_the_group_from_the_store() {
        let mut store = Store::new();
        let mut top = Top::new(GroupBy::Mark);
        let mut f = tcp([10, 0, 0, 1], 1, [10, 0, 1, 1], 80);
        f.mark = 7;
        store.apply(Event::New, Record::Flow(f.clone()), 0);
        f.mark = 0;
        top.observe(&store, Event::Destroy, &Record::Flow(f), 1);
        let row = top.row(GroupKey::Mark(7), 1);
        assert!(row.destroyed_per_s > 0.0);
    }

    #[test]
    fn bytes_per_second_between_passes_counts_destroyed_members() {
        let (mut store, _) = table();
        let mut top = Top::new(GroupBy::Nat);
        top.rebuild(&store, 1);
        let key = top
            .rows(Sort::Count, usize::MAX, 1)
            .into_iter()
            .find(|r| r.label.starts_with("dnat"))
            .unwrap()
            .key;
        assert_eq!(top.row(key, 1).bytes_per_s, None, "no previous pass");
        // The DNAT flow moves 1000 bytes, then goes with 2000.
        let mut f = store
            .flows()
            .find(|f| key_of(GroupBy::Nat, f) == key)
            .unwrap()
            .clone();
        f.extra_mut().counters.as_mut().unwrap()[0].bytes += 1000;
        store.apply(Event::Update, Record::Flow(f.clone()), 2);
        top.rebuild(&store, 3);
        assert_eq!(top.row(key, 3).bytes_per_s, Some(500.0));
        f.extra_mut().counters.as_mut().unwrap()[0].bytes += 2000;
        let rec = Record::Flow(f);
        top.observe(&store, Event::Destroy, &rec, 4);
        store.apply(Event::Destroy, rec, 4);
        top.rebuild(&store, 5);
        // The group is empty now; its destroyed flow moved 2000 bytes in 2 s. No members
        // with counters left: no byte rate, but the DESTROY keeps the row listed.
        let row = top.row(key, 5);
        assert_eq!(row.flows, 0);
        assert!(top.rows(Sort::Destroyed, 1, 5)[0].key == key);
    }

    /// Bytes/s are measured where the pass runs, against what [`Top::since`] gave when it
    /// was asked for. A pass asked for before another came in is rated against the older
    /// base and leaves the newer base alone: the bytes of flows destroyed since are counted
    /// once, by the pass after; those destroyed while a pass runs, by the pass after it.
    #[test]
    fn a_pass_rated_against_an_older_base_leaves_the_destroyed_bytes_to_the_next() {
        let dst = [10, 0, 0, 1];
        let with_bytes = |mut f: Flow, bytes: u64| {
            f.extra_mut().counters = Some([
                Counter { packets: 1, bytes },
                Counter {
                    packets: 0,
                    bytes: 0,
                },
            ]);
            f
        };
        let (f1, f2, f3, f4) = (
            with_bytes(tcp([10, 1, 0, 1], 1000, dst, 80), 100),
            with_bytes(tcp([10, 1, 0, 2], 1000, dst, 80), 100),
            with_bytes(tcp([10, 1, 0, 3], 1000, dst, 80), 100),
            with_bytes(tcp([10, 1, 0, 4], 1000, dst, 80), 100),
        );
        let mut store = Store::new();
        for f in [&f1, &f2, &f3, &f4] {
            store.apply(Event::Dump, Record::Flow(f.clone()), 0);
        }
        let mut top = Top::new(GroupBy::Dst);
        top.rebuild(&store, 1);
        let key = key_of(GroupBy::Dst, &f1);
        assert_eq!(
            top.row(key, 1).bytes_per_s,
            None,
            "nothing to compare with yet"
        );
        let destroy = |top: &mut Top, store: &mut Store, f: Flow, now| {
            let rec = Record::Flow(f);
            top.observe(store, Event::Destroy, &rec, now);
            store.apply(Event::Destroy, rec, now);
        };
        // f1 moves 1,000 bytes; f2 goes having moved 500.
        store.apply(Event::Update, Record::Flow(with_bytes(f1.clone(), 1100)), 2);
        destroy(&mut top, &mut store, with_bytes(f2.clone(), 600), 2);
        // Pass B is asked for (rated against the pass at 1), but pass C comes in first.
        let early = top.since(3);
        let b = Top::count_where(GroupBy::Dst, true, &store, |_| true).rated(early);
        top.rebuild(&store, 3);
        assert_eq!(
            top.row(key, 3).bytes_per_s,
            Some(750.0),
            "(1000 + 500) / 2 s"
        );
        // f3 goes having moved 300, after C and before B is installed.
        destroy(&mut top, &mut store, with_bytes(f3.clone(), 400), 3);
        // Installed even at a later second, B does not become the base: the bytes f3 took
        // with it went after C and belong to the pass after C.
        assert!(top.install(b, 4));
        assert_eq!(
            top.row(key, 4).bytes_per_s,
            Some(750.0),
            "B, against the pass at 1"
        );
        // f1 moves 200 more: pass D at 5 compares with C and counts f3's 300 once.
        store.apply(Event::Update, Record::Flow(with_bytes(f1.clone(), 1300)), 4);
        let d = Top::count_where(GroupBy::Dst, true, &store, |_| true).rated(top.since(5));
        // f1 goes having moved 100 more while D runs: D counted it alive.
        destroy(&mut top, &mut store, with_bytes(f1, 1400), 5);
        assert!(top.install(d, 5));
        assert_eq!(
            top.row(key, 5).bytes_per_s,
            Some(250.0),
            "(200 + 300) / 2 s"
        );
        // The pass at 7 counts f1's last 100 (only f4 is left, which moved nothing).
        top.rebuild(&store, 7);
        assert_eq!(top.row(key, 7).bytes_per_s, Some(50.0), "100 / 2 s");
        // Sorted by bytes, the group leads (it is the only one).
        assert_eq!(top.rows(Sort::Bytes, 1, 7)[0].key, key);
    }

    #[test]
    fn group_by_names_parse() {
        for by in GroupBy::ALL {
            assert_eq!(GroupBy::parse(by.name()), Some(by));
        }
        assert_eq!(GroupBy::parse("src24"), Some(GroupBy::SrcNet));
        assert_eq!(GroupBy::parse("bogus"), None);
        assert_eq!(Sort::parse("destroyed"), Some(Sort::Destroyed));
    }

    /// The rows of a ranked pass are those of a walk over every group, for every sort and
    /// limit: many sources (ties in counts among them), events that give some groups
    /// rates, groups whose flows all went but whose rates remain.
    #[test]
    fn a_ranked_pass_lists_the_rows_a_walk_over_every_group_lists() {
        let mut flows = Vec::new();
        for s in 0..300u16 {
            let src = [10, 1, (s >> 8) as u8, s as u8];
            for i in 0..(s % 7 + 1) {
                let mut f = tcp(src, 1000 + i, [10, 0, 1, (s % 5) as u8], 80);
                if (s + i) % 3 == 0 {
                    f.status = status::CONFIRMED;
                }
                // Byte counters on most flows (ties among their groups' rates too), none
                // in one destination's group: it ranks among the zeros by its key.
                if s % 5 != 0 {
                    let bytes = u64::from(s % 13) * 100;
                    f.extra_mut().counters = Some([Counter { packets: 1, bytes }; 2]);
                }
                flows.push(f);
            }
        }
        for by in [GroupBy::Src, GroupBy::Dst] {
            let mut store = Store::new();
            for f in &flows {
                store.apply(Event::Dump, Record::Flow(f.clone()), 1);
            }
            let (mut walked, mut ranked) = (Top::new(by), Top::new(by));
            // NEW events for every 11th flow, and a source whose flows all go.
            for f in flows.iter().step_by(11) {
                for top in [&mut walked, &mut ranked] {
                    top.observe(&store, Event::New, &Record::Flow(f.clone()), 2);
                }
            }
            for f in flows.iter().filter(|f| f.orig.src[2..4] == [0, 7]) {
                for top in [&mut walked, &mut ranked] {
                    top.observe(&store, Event::Destroy, &Record::Flow(f.clone()), 2);
                }
                store.apply(Event::Destroy, Record::Flow(f.clone()), 2);
            }
            // Two passes, so that groups have bytes/s: between them every 5th flow with
            // counters moves a number of bytes of its own.
            let passes = |walked: &mut Top, ranked: &mut Top, store: &Store, now| {
                let c = Top::count_where(by, true, store, |_| true).rated(walked.since(now));
                walked.install(c, now);
                let mut c = Top::count_where(by, true, store, |_| true).rated(ranked.since(now));
                c.rank(40);
                ranked.install(c, now);
            };
            passes(&mut walked, &mut ranked, &store, 3);
            for (n, f) in flows.iter().enumerate().step_by(5) {
                let mut f = f.clone();
                if f.orig.src[2..4] == [0, 7] {
                    continue; // gone
                }
                if let Some(c) = f.extra_mut().counters.as_mut() {
                    c[0].bytes += (n as u64 % 17) * 1000;
                    store.apply(Event::Update, Record::Flow(f), 4);
                }
            }
            passes(&mut walked, &mut ranked, &store, 5);
            // By source, more groups have bytes/s than are ranked.
            let rates: Vec<f64> = walked
                .counts
                .keys()
                .filter_map(|k| walked.byte_rate(k))
                .collect();
            let rated = rates.iter().filter(|r| **r > 0.0).count();
            assert!(by == GroupBy::Dst || rated > 40, "{rated}");
            let ranked_bytes = ranked.ranked.as_ref().map_or(0, |r| r.by_bytes.len());
            assert_eq!(ranked_bytes, rates.len().min(40));
            for sort in [
                Sort::Count,
                Sort::Unreplied,
                Sort::New,
                Sort::Destroyed,
                Sort::Key,
                Sort::Bytes,
            ] {
                for limit in [1, 7, 40] {
                    assert_eq!(
                        ranked.rows(sort, limit, 5),
                        walked.rows(sort, limit, 5),
                        "{by:?} {sort:?} {limit}"
                    );
                }
                // More rows than ranked: every group is walked.
                assert_eq!(ranked.rows(sort, 500, 5), walked.rows(sort, 500, 5));
            }
        }
    }

    /// A pass told to stop does, within `STOP_EVERY` flows, and one never told counts all.
    #[test]
    fn a_pass_stops_when_told() {
        let mut store = Store::new();
        for i in 0..(2 * STOP_EVERY) as u32 {
            let f = tcp(
                [10, 2, (i >> 8) as u8, i as u8],
                (i >> 16) as u16 + 1,
                [10, 0, 0, 1],
                80,
            );
            store.apply(Event::Dump, Record::Flow(f), 1);
        }
        let all = Top::count_where(GroupBy::Dst, false, &store, |_| true);
        assert_eq!(all.total, (2 * STOP_EVERY) as u64);
        let cut = Top::count_until(GroupBy::Dst, false, &store, |_| true, || true);
        assert!(cut.total < STOP_EVERY as u64, "{}", cut.total);
        // Split over two threads, the lane that is not asked stops too.
        let cut = Top::count_split(GroupBy::Src, false, &store, 2, || true);
        assert!(cut.total < 2 * STOP_EVERY as u64, "{}", cut.total);
    }

    /// A pass split over threads finds the groups and counts one thread finds.
    #[test]
    fn a_split_pass_counts_what_one_thread_counts() {
        let mut store = Store::new();
        for i in 0..SPLIT_FROM as u32 + 5_000 {
            let mut f = tcp(
                [10, 3, (i >> 8) as u8 & 0x3f, i as u8],
                (i >> 14) as u16 + 1,
                [10, 0, 0, (i % 7) as u8],
                80,
            );
            if i % 3 == 0 {
                f.status = status::CONFIRMED;
            }
            store.apply(Event::Dump, Record::Flow(f), 1);
        }
        for by in [GroupBy::Src, GroupBy::Dst, GroupBy::SrcNet] {
            let one = Top::count_where(by, true, &store, |_| true);
            let two = Top::count_split(by, true, &store, 2, || false);
            assert_eq!(two.counts.maps.len(), 2, "{by:?}: split");
            assert!(two.counts.maps.iter().all(|m| !m.is_empty()), "{by:?}");
            assert_eq!((two.total, two.counts.len()), (one.total, one.counts.len()));
            let (mut a, mut b) = (Top::new(by), Top::new(by));
            a.install(one, 2);
            b.install(two, 2);
            for sort in [Sort::Count, Sort::Unreplied, Sort::Key] {
                assert_eq!(
                    b.rows(sort, usize::MAX, 2),
                    a.rows(sort, usize::MAX, 2),
                    "{by:?}"
                );
            }
        }
    }

    /// A pass of many groups (partitioned first, one map per partition) counts what a
    /// plain count of the same flows finds, on one thread and on two, filtered or not, and
    /// its groups are found where `Top` looks them up.
    #[test]
    fn a_partitioned_pass_counts_what_a_plain_count_finds() {
        let mut store = Store::new();
        let n = 4 * PARTITION_FROM as u32;
        for i in 0..n {
            // About 3 flows a source for the first half, one each after: many groups,
            // some with several members.
            let s = if i < n / 2 { i / 3 } else { i };
            let mut f = tcp(
                [10, (s >> 16) as u8, (s >> 8) as u8, s as u8],
                (i % 60_000) as u16 + 1,
                [10, 0, 0, (i % 7) as u8],
                80,
            );
            if i % 5 == 0 {
                f.status = status::CONFIRMED;
            }
            if i % 4 == 0 {
                f.extra_mut().counters = Some([
                    Counter {
                        packets: 1,
                        bytes: u64::from(i % 1000),
                    },
                    Counter {
                        packets: 1,
                        bytes: 7,
                    },
                ]);
            }
            store.apply(Event::Dump, Record::Flow(f), 1);
        }
        let keep = |f: &Flow| !f.orig.sport.is_multiple_of(3);
        let plain = |keep: &dyn Fn(&Flow) -> bool| {
            let mut m: HashMap<GroupKey, (u64, u64, Option<u64>)> = HashMap::new();
            for f in store.flows().filter(|f| keep(f)) {
                let e = m.entry(key_of(GroupBy::Src, f)).or_default();
                e.0 += 1;
                e.1 += u64::from(!f.has(status::SEEN_REPLY));
                if let Some(b) = byte_sum(f) {
                    e.2 = Some(e.2.unwrap_or(0) + b);
                }
            }
            m
        };
        let passes = [
            (
                Top::count_where(GroupBy::Src, true, &store, |_| true),
                plain(&|_| true),
            ),
            (
                Top::count_split(GroupBy::Src, true, &store, 1, || false),
                plain(&|_| true),
            ),
            (
                Top::count_split(GroupBy::Src, true, &store, 2, || false),
                plain(&|_| true),
            ),
            (
                Top::count_where(GroupBy::Src, true, &store, keep),
                plain(&keep),
            ),
        ];
        for (i, (counted, want)) in passes.into_iter().enumerate() {
            assert_eq!(counted.counts.maps.len(), PARTS, "pass {i} partitioned");
            let total: u64 = want.values().map(|c| c.0).sum();
            assert_eq!(
                (counted.total, counted.counts.len()),
                (total, want.len()),
                "pass {i}"
            );
            for (k, c) in &want {
                let got = counted
                    .counts
                    .get(k)
                    .copied()
                    .expect("found where looked up");
                assert_eq!(
                    (u64::from(got.flows), u64::from(got.unreplied), got.bytes()),
                    *c,
                    "pass {i} {k:?}"
                );
            }
        }
    }

    /// The size guess of a pass is near the groups there are: as many as the flows when
    /// each has its own, close for tens of thousands, and small for a few (so a pass of
    /// few groups is not partitioned).
    #[test]
    fn a_pass_guesses_its_groups_from_a_sample() {
        let flows = |groups: u32| -> Vec<Flow> {
            (0..200_000u32)
                .map(|i| {
                    // Sources in the order of the table, as a dump of a busy host lists them.
                    let s = i % groups;
                    tcp(
                        [10, (s >> 16) as u8, (s >> 8) as u8, s as u8],
                        1,
                        [10, 0, 0, 1],
                        80,
                    )
                })
                .collect()
        };
        let guess = |groups| likely_groups(&flows(groups), |f| Some(key_of(GroupBy::Src, f)));
        assert_eq!(guess(200_000), 200_000);
        for groups in [20_000, 70_000] {
            let g = guess(groups) as f64 / f64::from(groups);
            assert!((0.6..1.6).contains(&g), "{groups}: {g}");
        }
        assert!(guess(8) < PARTITION_FROM / 8, "{}", guess(8));
        assert_eq!(likely_groups(&flows(8)[..1000], |_| None), 0, "small table");
    }
}
