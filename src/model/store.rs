//! The model store: every flow and expectation the kernel has reported, keyed by the
//! kernel's own identity of an entry (original tuple plus its zones, per direction), with
//! the master ↔ expectation ↔ RELATED linkage.
//!
//! Keyed by tuple and zones, not by `CTA_ID`: the kernel's id is a hash of the object's
//! address (`nf_ct_get_id`), so it collides on large tables (observed at 250k entries) and
//! is reused when a slab slot is. DESTROY events carry neither the helper nor the master
//! tuple, so linkage is kept from what the store already knows. The store is fed by one
//! owner (the engine or the app's main thread); it never touches sockets or ratatui.
//!
//! # Layout (why it fits in 120 bytes per flow)
//!
//! Flows live in a slab (`Vec<Flow>`, 72 bytes each) with two parallel bits a flow
//! (`model::bits`: reported by the current re-dump; announced by an event), and an index
//! (`model::index`) of slab positions with 32 bits of each key's hash, 8 bytes a slot at
//! most 3/4 full, sized to the count a dump announces. A `HashMap<FlowKey, Flow>` would
//! store the 40-byte key twice and pay the load factor on 112-byte buckets (~250 bytes a
//! flow at 1M); the index pays it on 8-byte slots only, and a lookup touches one cache line
//! of it. Removal is `swap_remove` plus one index fix-up for the entry that moved.
//! Everything about linkage (RELATED children, orphans, the expectation that created a
//! RELATED flow) sits in small side maps sized by the number of RELATED flows, not the
//! table. A NATed flow costs the same as any other when one IPv4 side of its reply differs
//! (DNAT, SNAT, masquerade): that delta is packed into the flow's `extra` word
//! (`flow::ExtraSlot`).
//!
//! # Linkage rules
//!
//! - A RELATED flow (`IPS_EXPECTED`) names its master with `CTA_TUPLE_MASTER`; the master is
//!   the flow with that original tuple in the same zone. The children index is by master key,
//!   so a child reported before its master (dump order) links as soon as the master arrives.
//! - When a master goes (DESTROY or resync sweep), its children stay, listed as orphans:
//!   `master_of` answers `None` even if a new connection later reuses the master's tuple.
//! - The kernel sends an expectation's DESTROY just before the NEW of the RELATED flow it
//!   created (`nf_ct_find_expectation` unlinks it in `init_conntrack`, the NEW goes out at
//!   confirm time), so destroyed expectations are kept for a while (the last 256, at most
//!   120 s) and a new RELATED flow takes the one with the same master whose tuple and mask
//!   match its original tuple. `expectation_of` keeps it for the life of the flow.
//! - UPDATE events carry fewer attributes than a dump (`ctnetlink_conntrack_event` sends
//!   protoinfo, helper and master only when they changed): updates are merged so a known
//!   state, helper, master, counters or timestamps are not lost.

use std::collections::VecDeque;
use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashMap, HashSet};

use super::bits::Bits;
use super::index::Index;

use crate::model::flow::NO_STATE;
use crate::model::{Event, Expectation, Extra, Flow, Record, Tuple};

/// The store's key for a flow: the kernel's identity of a conntrack entry.
///
/// The kernel gives an entry one zone (`struct nf_conntrack_zone`: an id and the
/// directions it applies to) and looks entries up by tuple *and* the zone id of the
/// tuple's direction (`nf_ct_key_equal`). ctnetlink reports a zone for both directions as
/// `CTA_ZONE` and a per-direction one as `CTA_TUPLE_ZONE` inside the tuple
/// (`ctnetlink_dump_zone_id`), so six flows with the same original tuple and zone-orig
/// 1..6 (NAT keeps their reply tuples apart) are six entries and six keys. Zone id 0 is
/// the default and never reported, so 0 here means "not set".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlowKey {
    /// `CTA_ZONE`: the zone of both directions.
    pub zone: u16,
    /// `CTA_TUPLE_ZONE` of the original tuple.
    pub zone_orig: u16,
    /// `CTA_TUPLE_ZONE` of the reply tuple.
    pub zone_reply: u16,
    pub orig: Tuple,
}

impl FlowKey {
    /// A key with only a zone for both directions (`CTA_ZONE`), e.g. a master named by an
    /// expectation, which reports its master's tuple and zone id only.
    pub fn new(zone: u16, orig: Tuple) -> FlowKey {
        FlowKey {
            zone,
            zone_orig: 0,
            zone_reply: 0,
            orig,
        }
    }

    pub fn of(f: &Flow) -> FlowKey {
        let (zone_orig, zone_reply) = f.dir_zones();
        FlowKey {
            zone: f.zone,
            zone_orig,
            zone_reply,
            orig: f.orig,
        }
    }

    /// The zone id whatever its direction: the kernel sets at most one of the three, and
    /// an expectation reports its master's zone as this id (`CTA_EXPECT_ZONE`).
    pub fn zone_id(&self) -> u16 {
        [self.zone, self.zone_orig, self.zone_reply]
            .into_iter()
            .find(|&z| z != 0)
            .unwrap_or(0)
    }

    /// The key of the master a RELATED flow names (`CTA_TUPLE_MASTER`): the expected flow
    /// was created under the master's zone (`init_conntrack` takes it from the template
    /// the expectation matched in), so the child's zones are the master's.
    pub fn master_of(f: &Flow) -> Option<FlowKey> {
        f.master().map(|m| FlowKey {
            orig: *m,
            ..FlowKey::of(f)
        })
    }
}

/// Hashed as six 64-bit words rather than field by field: the derived `Hash` makes a dozen
/// hasher calls (two slice lengths among them) for every lookup of a dump's million flows.
/// Every field goes in, so keys equal under `Eq` hash equally.
impl std::hash::Hash for FlowKey {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        let t = &self.orig;
        let word = |a: &[u8; 16], i: usize| {
            u64::from_ne_bytes([
                a[i],
                a[i + 1],
                a[i + 2],
                a[i + 3],
                a[i + 4],
                a[i + 5],
                a[i + 6],
                a[i + 7],
            ])
        };
        h.write_u64(word(&t.src, 0));
        h.write_u64(word(&t.src, 8));
        h.write_u64(word(&t.dst, 0));
        h.write_u64(word(&t.dst, 8));
        h.write_u64(
            u64::from(t.sport)
                | u64::from(t.dport) << 16
                | u64::from(t.family as u8) << 32
                | u64::from(t.proto) << 40
                | u64::from(self.zone) << 48,
        );
        h.write_u64(u64::from(self.zone_orig) | u64::from(self.zone_reply) << 16);
    }
}

/// The store's key for an expectation: zone and expected tuple (the kernel refuses two
/// clashing expectations, `nf_ct_expect_insert`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ExpectKey {
    pub zone: u16,
    pub tuple: Tuple,
}

impl ExpectKey {
    pub fn of(e: &Expectation) -> ExpectKey {
        ExpectKey {
            zone: e.zone,
            tuple: e.tuple,
        }
    }
}

/// What applying one record changed, so views can update incrementally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    FlowAdded,
    FlowUpdated,
    FlowRemoved,
    ExpectAdded,
    ExpectUpdated,
    ExpectRemoved,
    /// A DESTROY for something the store never had, or an update identical to what it had.
    Nothing,
}

/// Counters the UI and headless modes show: lost updates are never silent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Records applied from events (NEW/UPDATE/DESTROY), all kinds.
    pub events: u64,
    /// Times the kernel said events were lost (ENOBUFS) and we re-dumped.
    pub resyncs: u64,
    /// Full dumps completed (initial, resync and background convergence dumps).
    pub dumps: u64,
    /// Entries removed because a dump no longer contained them (missed DESTROYs).
    pub swept: u64,
}

/// Heap bytes the store holds, by part, computed from capacities (not from the allocator).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    /// The flow slab and its re-dump bits.
    pub slab: usize,
    /// The hash index over the slab.
    pub index: usize,
    /// Boxed `Extra` records (master, counters, an unusual NAT reply, …), with allocator
    /// overhead. A common NAT reply is inline in the flow (`flow::ExtraSlot`): no bytes here.
    pub extras: usize,
    /// Expectations, recently destroyed expectations and every linkage side map.
    pub side: usize,
}

impl MemoryUsage {
    pub fn total(&self) -> usize {
        self.slab + self.index + self.extras + self.side
    }
}

/// Seconds past its timeout before a flow an event announced is re-checked. Such an entry
/// carries the kernel's event extension, so its DESTROY comes when the kernel's garbage
/// collector reaps it, which it does in bursts a few seconds apart (every 3–4 s under a
/// churn of ~4,000 short flows a second at a million entries). Re-checking it sooner cost
/// one netlink GET per flow, half of the engine thread's time under such a churn, for an
/// answer the DESTROY brings anyway. A flow kept alive by traffic without an event (a
/// refreshed UDP timeout) shows its time left as 0 for these few seconds longer before
/// the re-check refreshes it.
pub const DESTROY_GRACE: u32 = 5;

/// How many destroyed expectations are kept to link the RELATED flows they create.
pub const RECENT_EXPECT_MAX: usize = 256;
/// How long (store seconds) a destroyed expectation is kept for that linking.
pub const RECENT_EXPECT_SECS: u32 = 120;

/// One live expectation and its resync mark.
#[derive(Debug, Clone)]
struct ExpectEntry {
    exp: Expectation,
    mark: u32,
}

/// Flows, expectations and their linkage.
#[derive(Debug, Default)]
pub struct Store {
    /// The flow slab; `index` holds positions into it.
    flows: Vec<Flow>,
    /// Whether `flows[i]` was reported since the current re-dump of flows began: one bit,
    /// not a re-dump number, because the sweep asks only that (a re-dump that starts
    /// again clears them all, so only the newest one counts).
    reported: Bits,
    /// Whether `flows[i]` was announced by a kernel event (NEW or UPDATE): the entry carries
    /// the kernel's event extension, so its DESTROY will come too (see `DESTROY_GRACE`).
    evented: Bits,
    index: Index,
    hasher: DefaultHashBuilder,
    expects: HashMap<ExpectKey, ExpectEntry>,
    /// Destroyed expectations with the store time they went, newest last.
    recent: VecDeque<(Expectation, u32)>,
    /// Master key → keys of live RELATED flows naming it (not yet orphaned).
    children: HashMap<FlowKey, Vec<FlowKey>>,
    /// RELATED flows whose master was destroyed while they lived.
    orphans: HashSet<FlowKey>,
    /// RELATED flow → the expectation that created it.
    origin: HashMap<FlowKey, Expectation>,
    expect_mark: u32,
    flow_resync: bool,
    expect_resync: bool,
    generation: u64,
    stats: Stats,
}

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    /// Make room for `additional` more flows at once (e.g. from `nf_conntrack_count` before
    /// a dump), so the slab and index grow once instead of doubling their way up.
    pub fn reserve_flows(&mut self, additional: usize) {
        self.flows.reserve_exact(additional);
        self.reported.reserve(additional);
        self.evented.reserve(additional);
        self.index.reserve(additional);
    }

    /// Apply one decoded record at store time `now` (whole seconds since the store's epoch;
    /// the caller owns the clock so tests and replays are deterministic). Sets `seen`.
    pub fn apply(&mut self, event: Event, record: Record, now: u32) -> Change {
        self.count(event);
        let change = match record {
            Record::Flow(f) => self.apply_flow(event, f, now),
            Record::Expect(e) => self.apply_expect(event, e, now),
        };
        self.note(change);
        change
    }

    /// Count a record from an event (a dumped one is not an event).
    #[inline]
    fn count(&mut self, event: Event) {
        if event != Event::Dump {
            self.stats.events += 1;
        }
    }

    /// Move the generation when a record changed something.
    #[inline]
    fn note(&mut self, change: Change) {
        if change != Change::Nothing {
            self.generation += 1;
        }
    }

    /// Apply `flows` in order, exactly as one `apply` each would, and leave the vector
    /// empty (its capacity is kept for the next batch). Meant for a few dozen at a time.
    ///
    /// Why a batch: on a large table nearly every index lookup misses the CPU cache
    /// (~130 ns each on the development machine, the largest single cost of a dump into
    /// the store). Looking every flow of the batch up first, back to back, lets those
    /// misses overlap; the lookups that `apply` then makes find the lines in cache. The
    /// first pass only reads, so a batch holding the same key twice is still applied in
    /// order with the right outcome.
    pub fn apply_flows(&mut self, flows: &mut Vec<(Event, Flow)>, now: u32) {
        for (_, f) in flows.iter() {
            self.index.prefetch(self.hash(&FlowKey::of(f)));
        }
        for (event, f) in flows.drain(..) {
            self.count(event);
            let change = self.apply_flow(event, f, now);
            self.note(change);
        }
    }

    /// Apply `records` in order, exactly as one `apply` each would; returns whether any of
    /// them changed the store. Flows go through [`apply_flows`](Store::apply_flows) a few
    /// dozen at a time, so an engine batch (a dump's 4,096 entries) overlaps its lookups'
    /// cache misses as the headless load does.
    pub fn apply_records(&mut self, records: Vec<(Event, Record)>, now: u32) -> bool {
        /// Flows looked up together (see `apply_flows`).
        const RUN: usize = 32;
        let before = self.generation;
        let mut flows = Vec::with_capacity(RUN.min(records.len()));
        for (event, record) in records {
            match record {
                Record::Flow(f) => {
                    flows.push((event, f));
                    if flows.len() == RUN {
                        self.apply_flows(&mut flows, now);
                    }
                }
                expect => {
                    // The flows before it go first: order is the kernel's.
                    self.apply_flows(&mut flows, now);
                    self.apply(event, expect, now);
                }
            }
        }
        self.apply_flows(&mut flows, now);
        self.generation != before
    }

    /// Start a full re-dump of both tables: entries not reported again before `end_resync`
    /// are removed.
    pub fn begin_resync(&mut self) {
        self.begin_resync_tables(true, true);
    }

    /// Start a re-dump of only the named tables, so a flows dump and an expectations dump
    /// can run at different times without one disturbing the other's marks.
    pub fn begin_resync_tables(&mut self, flows: bool, expects: bool) {
        if flows {
            self.reported.clear_all();
            self.flow_resync = true;
        }
        if expects {
            self.expect_mark = self.expect_mark.wrapping_add(1);
            self.expect_resync = true;
        }
    }

    /// Finish a re-dump started with `begin_resync`, sweeping entries it did not report.
    /// `flows_only` / `expects_only` dumps sweep only their own table. Returns how many went.
    ///
    /// A table with no re-dump in progress is left alone (a stray call sweeps nothing).
    /// Each table swept counts as one completed dump in `stats().dumps`.
    pub fn end_resync(&mut self, flows: bool, expects: bool) -> usize {
        self.end_resync_with(flows, expects, &mut |_| {})
    }

    /// [`end_resync`](Store::end_resync), handing every swept entry to `swept` before it
    /// goes, so a stream can report what the re-dump removed.
    pub fn end_resync_with(
        &mut self,
        flows: bool,
        expects: bool,
        swept: &mut dyn FnMut(Record),
    ) -> usize {
        let mut gone = 0;
        if flows && self.flow_resync {
            self.flow_resync = false;
            self.stats.dumps += 1;
            let mut i = 0;
            while i < self.flows.len() {
                if !self.reported.get(i) {
                    swept(Record::Flow(self.remove_flow_at(i)));
                    gone += 1;
                } else {
                    i += 1;
                }
            }
        }
        if expects && self.expect_resync {
            self.expect_resync = false;
            self.stats.dumps += 1;
            let mark = self.expect_mark;
            let stale: Vec<ExpectKey> = self
                .expects
                .iter()
                .filter(|(_, e)| e.mark != mark)
                .map(|(k, _)| *k)
                .collect();
            for k in stale {
                if let Some(e) = self.expects.remove(&k) {
                    // No clock here: date it by its last report, so `prune_recent` ages it
                    // from when the kernel last showed it.
                    let at = e.exp.seen;
                    swept(Record::Expect(e.exp.clone()));
                    self.remember_destroyed(e.exp, at);
                    gone += 1;
                }
            }
        }
        if gone > 0 {
            self.stats.swept += gone as u64;
            self.generation += 1;
        }
        gone
    }

    /// Whether a re-dump of either table is in progress.
    pub fn resyncing(&self) -> bool {
        self.flow_resync || self.expect_resync
    }

    /// Count one ENOBUFS-triggered resync.
    pub fn note_resync(&mut self) {
        self.stats.resyncs += 1;
        self.generation += 1;
    }

    /// Count one full dump that was not bracketed by `begin_resync`/`end_resync`
    /// (e.g. the first dump into an empty store).
    pub fn note_dump(&mut self) {
        self.stats.dumps += 1;
        self.generation += 1;
    }

    /// Keys of flows whose reported timeout has run out at `now` with no DESTROY seen, for
    /// the engine to re-check: with `nf_conntrack_events=2` a flow created before anyone
    /// listened sends no DESTROY, and one kept alive by traffic sends no event at all. A
    /// flow an event announced is due `DESTROY_GRACE` seconds later than its timeout.
    pub fn expired_flows(&self, now: u32) -> Vec<FlowKey> {
        self.expiry(now).0
    }

    /// [`expired_flows`](Store::expired_flows), and the store second at which the next of
    /// the others is due (`None`: no other flow). Until then, or until a record changes
    /// a flow, another pass would find nothing new: a dashboard on a still table skips it.
    pub fn expiry(&self, now: u32) -> (Vec<FlowKey>, Option<u32>) {
        let mut next: Option<u32> = None;
        let mut expired = Vec::new();
        for (i, f) in self.flows.iter().enumerate() {
            let grace = if self.evented.get(i) {
                DESTROY_GRACE
            } else {
                0
            };
            let at = f.seen.saturating_add(f.timeout).saturating_add(grace);
            if f.remaining(now) == 0 && now >= at {
                expired.push(FlowKey::of(f));
            } else {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        (expired, next)
    }

    /// Remove expectations whose timeout has passed (expectations never outlive it).
    ///
    /// The kernel rounds the timeout it reports down to whole seconds, so an expectation
    /// goes only once more than `timeout` seconds have passed since it was reported.
    /// Also forgets destroyed expectations older than `RECENT_EXPECT_SECS`.
    pub fn expire_expectations(&mut self, now: u32) -> usize {
        self.expire_expectations_with(now, &mut |_| {})
    }

    /// [`expire_expectations`](Store::expire_expectations), handing each expired one to
    /// `gone` (housekeeping a stream reports apart from the kernel's DESTROY).
    pub fn expire_expectations_with(
        &mut self,
        now: u32,
        gone: &mut dyn FnMut(&Expectation),
    ) -> usize {
        let stale: Vec<ExpectKey> = self
            .expects
            .iter()
            .filter(|(_, e)| now.saturating_sub(e.exp.seen) > e.exp.timeout)
            .map(|(k, _)| *k)
            .collect();
        for k in &stale {
            if let Some(e) = self.expects.remove(k) {
                gone(&e.exp);
                self.remember_destroyed(e.exp, now);
            }
        }
        self.prune_recent(now);
        if !stale.is_empty() {
            self.generation += 1;
        }
        stale.len()
    }

    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    pub fn expect_count(&self) -> usize {
        self.expects.len()
    }

    pub fn flow(&self, key: &FlowKey) -> Option<&Flow> {
        self.find(key).map(|i| &self.flows[i])
    }

    pub fn expectation(&self, key: &ExpectKey) -> Option<&Expectation> {
        self.expects.get(key).map(|e| &e.exp)
    }

    /// Every flow, in no particular order.
    pub fn flows(&self) -> impl Iterator<Item = &Flow> + '_ {
        self.flows.iter()
    }

    /// Every flow as one slice, in no particular order. Positions are stable until the next
    /// change (`generation()`), so views may sort `u32` positions instead of 40-byte keys
    /// and rebuild them when the generation moves.
    pub fn flow_slice(&self) -> &[Flow] {
        &self.flows
    }

    /// The position of `key` in `flow_slice()`, valid until the generation changes: lets a
    /// view keep its selection on the same entry across rebuilds.
    pub fn position(&self, key: &FlowKey) -> Option<usize> {
        self.find(key)
    }

    /// Every live expectation, in no particular order.
    pub fn expectations(&self) -> impl Iterator<Item = &Expectation> + '_ {
        self.expects.values().map(|e| &e.exp)
    }

    /// Destroyed expectations still remembered for linking, oldest first, with the store
    /// time they went.
    pub fn recent_expectations(&self) -> impl Iterator<Item = (&Expectation, u32)> + '_ {
        self.recent.iter().map(|(e, t)| (e, *t))
    }

    /// Masters of RELATED flows that are not in the store, though no DESTROY said they
    /// went (a flow whose master went while it lived is an orphan, not listed here): what
    /// a dump left out, for the loader to ask the kernel about (`engine::load`). Each
    /// once, in no particular order.
    pub fn missing_masters(&self) -> Vec<FlowKey> {
        let mut missing: Vec<FlowKey> = self
            .flows
            .iter()
            .filter_map(|f| self.missing_master(f))
            .collect();
        missing.sort_unstable();
        missing.dedup();
        missing
    }

    /// The master of `f` if `f` is a RELATED flow whose master the store lacks though no
    /// DESTROY said it went ([`missing_masters`](Store::missing_masters), one flow).
    pub fn missing_master(&self, f: &Flow) -> Option<FlowKey> {
        if !f.is_related() || self.orphans.contains(&FlowKey::of(f)) {
            return None;
        }
        let master = FlowKey::master_of(f)?;
        self.flow(&master).is_none().then_some(master)
    }

    /// The master flow of a RELATED flow (from `CTA_TUPLE_MASTER`, same zone).
    /// `None` once the master was destroyed, even if its tuple was reused since.
    pub fn master_of(&self, key: &FlowKey) -> Option<&Flow> {
        if self.orphans.contains(key) {
            return None;
        }
        let mk = FlowKey::master_of(self.flow(key)?)?;
        self.flow(&mk)
    }

    /// Whether `key` is a RELATED flow whose master was destroyed while it lived.
    pub fn is_orphan(&self, key: &FlowKey) -> bool {
        self.orphans.contains(key)
    }

    /// The expectation that created a RELATED flow, kept after the kernel dropped it.
    pub fn expectation_of(&self, key: &FlowKey) -> Option<&Expectation> {
        self.origin.get(key)
    }

    /// RELATED flows whose master is `master` (not those orphaned by an earlier flow that
    /// had the same tuple).
    pub fn related_of(&self, master: &FlowKey) -> Vec<FlowKey> {
        self.children.get(master).cloned().unwrap_or_default()
    }

    /// Live expectations whose master is `master`.
    pub fn expectations_of(&self, master: &FlowKey) -> Vec<ExpectKey> {
        self.expects
            .iter()
            .filter(|(_, e)| e.exp.master == master.orig && e.exp.zone == master.zone_id())
            .map(|(k, _)| *k)
            .collect()
    }

    /// Remove one flow (e.g. after a successful delete), keeping linkage as a DESTROY would.
    pub fn remove_flow(&mut self, key: &FlowKey) -> Option<Flow> {
        let i = self.find(key)?;
        self.generation += 1;
        Some(self.remove_flow_at(i))
    }

    /// Remove a flow that housekeeping found gone (a re-check the kernel answered with
    /// nothing): it counts as swept, like a re-dump's removal, never as an event.
    pub fn sweep_flow(&mut self, key: &FlowKey) -> Option<Flow> {
        let f = self.remove_flow(key)?;
        self.stats.swept += 1;
        Some(f)
    }

    /// Remove one expectation, remembering it for RELATED linking as a DESTROY would.
    pub fn remove_expectation(&mut self, key: &ExpectKey, now: u32) -> Option<Expectation> {
        let e = self.expects.remove(key)?;
        self.generation += 1;
        self.remember_destroyed(e.exp.clone(), now);
        Some(e.exp)
    }

    /// A number that changes whenever the content changes: views rebuild only then.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Heap bytes held, from capacities: the figure behind the 120-bytes-per-flow budget.
    pub fn memory(&self) -> MemoryUsage {
        use std::mem::size_of;
        let extras = self
            .flows
            .iter()
            .filter_map(|f| f.extra.as_deref())
            .map(|e| {
                malloc_size(size_of::<Extra>())
                    + e.secctx.as_ref().map_or(0, |s| malloc_size(s.len()))
            })
            .sum();
        let expect_bytes = |e: &Expectation| e.func.as_ref().map_or(0, |s| malloc_size(s.len()));
        let side = self.expects.allocation_size()
            + self
                .expects
                .values()
                .map(|e| expect_bytes(&e.exp))
                .sum::<usize>()
            + self.recent.capacity() * size_of::<(Expectation, u32)>()
            + self.children.allocation_size()
            + self
                .children
                .values()
                .map(|v| v.capacity() * size_of::<FlowKey>())
                .sum::<usize>()
            + self.orphans.allocation_size()
            + self.origin.allocation_size()
            + self.origin.values().map(expect_bytes).sum::<usize>();
        MemoryUsage {
            slab: self.flows.capacity() * size_of::<Flow>()
                + self.reported.allocation_size()
                + self.evented.allocation_size(),
            index: self.index.allocation_size(),
            extras,
            side,
        }
    }

    // ---- flows -------------------------------------------------------------------------

    fn hash(&self, key: &FlowKey) -> u64 {
        self.hasher.hash_one(key)
    }

    fn find(&self, key: &FlowKey) -> Option<usize> {
        self.find_hashed(key, self.hash(key))
    }

    fn find_hashed(&self, key: &FlowKey, hash: u64) -> Option<usize> {
        let flows = &self.flows;
        self.index
            .find(hash, |i| FlowKey::of(&flows[i as usize]) == *key)
            .map(|i| i as usize)
    }

    fn apply_flow(&mut self, event: Event, mut f: Flow, now: u32) -> Change {
        let key = FlowKey::of(&f);
        let hash = self.hash(&key);
        let found = self.find_hashed(&key, hash);
        if event == Event::Destroy {
            return match found {
                Some(i) => {
                    self.remove_flow_at(i);
                    Change::FlowRemoved
                }
                None => Change::Nothing,
            };
        }
        f.seen = now;
        let Some(i) = found else {
            if f.is_related() {
                if let Some(e) = self.take_origin(&f) {
                    self.origin.insert(key, e);
                }
                self.link_child(&f);
            }
            self.insert_flow(f, hash, event != Event::Dump);
            return Change::FlowAdded;
        };
        self.reported.put(i, true);
        if event != Event::Dump {
            self.evented.put(i, true);
        }
        let old = &self.flows[i];
        let merged = match event {
            Event::Update => merge_update(old, f),
            _ => replace(old, f),
        };
        if merged == *old {
            return Change::Nothing;
        }
        let old_master = FlowKey::master_of(old);
        let new_master = FlowKey::master_of(&merged);
        let recycled = event == Event::New && old.id != merged.id;
        if old_master != new_master || recycled {
            // A different connection under the same key (a missed DESTROY), or a master
            // tuple that changed: start its linkage afresh.
            self.unlink_child(&key, old_master);
            self.orphans.remove(&key);
            if recycled {
                self.origin.remove(&key);
            }
            if merged.is_related() {
                self.link_child(&merged);
            }
        }
        if merged.is_related() && !self.origin.contains_key(&key) {
            if let Some(e) = self.take_origin(&merged) {
                self.origin.insert(key, e);
            }
        } else if !merged.is_related() {
            self.origin.remove(&key);
        }
        self.flows[i] = merged;
        Change::FlowUpdated
    }

    /// Append `f` (whose key hashes to `h`, announced by an event or not) to the slab and
    /// index it.
    fn insert_flow(&mut self, f: Flow, h: u64, evented: bool) {
        let i = self.flows.len() as u32;
        self.flows.push(f);
        self.reported.push(true);
        self.evented.push(evented);
        self.index.insert(h, i);
    }

    /// Remove the flow at slab position `i`, fixing the index for the entry that moves into
    /// its place and keeping linkage the way a DESTROY must: its children become orphans.
    fn remove_flow_at(&mut self, i: usize) -> Flow {
        let key = FlowKey::of(&self.flows[i]);
        let h = self.hash(&key);
        self.index.remove(h, i as u32);
        let last = self.flows.len() - 1;
        let f = self.flows.swap_remove(i);
        self.reported.swap_remove(i);
        self.evented.swap_remove(i);
        if i != last {
            let moved = self.hash(&FlowKey::of(&self.flows[i]));
            self.index.repoint(moved, last as u32, i as u32);
        }
        self.unlink_child(&key, FlowKey::master_of(&f));
        self.orphans.remove(&key);
        self.origin.remove(&key);
        if let Some(kids) = self.children.remove(&key) {
            self.orphans.extend(kids);
        }
        f
    }

    fn link_child(&mut self, f: &Flow) {
        let key = FlowKey::of(f);
        if self.orphans.contains(&key) {
            return;
        }
        if let Some(mk) = FlowKey::master_of(f) {
            let kids = self.children.entry(mk).or_default();
            if !kids.contains(&key) {
                kids.push(key);
            }
        }
    }

    fn unlink_child(&mut self, key: &FlowKey, master: Option<FlowKey>) {
        let Some(mk) = master else { return };
        if let Some(kids) = self.children.get_mut(&mk) {
            kids.retain(|k| k != key);
            if kids.is_empty() {
                self.children.remove(&mk);
            }
        }
    }

    /// The expectation that created RELATED flow `f`: the newest recently destroyed one with
    /// the same master that matches (consumed, as the kernel consumed it), else a live one
    /// (a PERMANENT expectation stays live after creating flows).
    fn take_origin(&mut self, f: &Flow) -> Option<Expectation> {
        let master = *f.master()?;
        let fits = |e: &Expectation| e.zone == f.zone && e.master == master && e.matches(&f.orig);
        if let Some(pos) = self.recent.iter().rposition(|(e, _)| fits(e)) {
            return self.recent.remove(pos).map(|(e, _)| e);
        }
        self.expects
            .values()
            .find(|e| fits(&e.exp))
            .map(|e| e.exp.clone())
    }

    // ---- expectations --------------------------------------------------------------------

    fn apply_expect(&mut self, event: Event, mut e: Expectation, now: u32) -> Change {
        let key = ExpectKey::of(&e);
        if event == Event::Destroy {
            self.prune_recent(now);
            return match self.expects.remove(&key) {
                Some(old) => {
                    self.remember_destroyed(merge_expect(&old.exp, e), now);
                    Change::ExpectRemoved
                }
                None => {
                    // Never seen live (created and consumed between dumps): still worth
                    // remembering for the RELATED flow that follows.
                    self.remember_destroyed(e, now);
                    Change::Nothing
                }
            };
        }
        e.seen = now;
        let mark = self.expect_mark;
        match self.expects.get_mut(&key) {
            None => {
                self.expects.insert(key, ExpectEntry { exp: e, mark });
                Change::ExpectAdded
            }
            Some(old) => {
                old.mark = mark;
                let merged = match event {
                    Event::Update => merge_expect(&old.exp, e),
                    _ => e,
                };
                if merged == old.exp {
                    Change::Nothing
                } else {
                    old.exp = merged;
                    Change::ExpectUpdated
                }
            }
        }
    }

    fn remember_destroyed(&mut self, e: Expectation, at: u32) {
        while self.recent.len() >= RECENT_EXPECT_MAX {
            self.recent.pop_front();
        }
        self.recent.push_back((e, at));
    }

    fn prune_recent(&mut self, now: u32) {
        while self
            .recent
            .front()
            .is_some_and(|(_, at)| now.saturating_sub(*at) > RECENT_EXPECT_SECS)
        {
            self.recent.pop_front();
        }
    }
}

/// What malloc really hands out for `n` bytes: 8 bytes of header, rounded up to 16.
fn malloc_size(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (n + 8).div_ceil(16) * 16
    }
}

/// What a kernel event says about a flow, completed from what the store knew of the same
/// connection (`known`): the kernel's value wins for every attribute it sent, and only
/// the ones it leaves out of that message (a DESTROY carries no helper, master, labels or
/// secctx; an UPDATE no counters) come from `known`. Nothing is taken from another life
/// of the tuple (a different non-zero `CTA_ID`).
pub fn complete_flow(known: &Flow, kernel: Flow) -> Flow {
    if known.id != 0 && kernel.id != 0 && known.id != kernel.id {
        return kernel;
    }
    merge_update(known, kernel)
}

/// [`complete_flow`] for an expectation event.
pub fn complete_expect(known: &Expectation, kernel: Expectation) -> Expectation {
    merge_expect(known, kernel)
}

/// Merge an UPDATE into what the store knew. `ctnetlink_conntrack_event` always sends the
/// tuples, status and timeout (and the mark whenever it is non-zero or changed), but the
/// protocol state, helper, master, counters and timestamps only when they changed or at
/// destroy time: absent ones keep their known value.
fn merge_update(old: &Flow, mut new: Flow) -> Flow {
    if new.state == NO_STATE {
        new.state = old.state;
    }
    if new.helper.is_none() {
        new.helper = old.helper;
    }
    if new.id == 0 {
        new.id = old.id;
    }
    if new.use_count == 0 {
        new.use_count = old.use_count;
    }
    if let Some(oe) = old.extra.as_deref() {
        let ne = new.extra_mut();
        if ne.master.is_none() {
            ne.master = oe.master;
        }
        if ne.counters.is_none() {
            ne.counters = oe.counters;
        }
        if ne.timestamp.is_none() {
            ne.timestamp = oe.timestamp;
        }
        if ne.labels == 0 {
            ne.labels = oe.labels;
        }
        if ne.secctx.is_none() {
            ne.secctx.clone_from(&oe.secctx);
        }
        if ne.zone_orig.is_none() {
            ne.zone_orig = oe.zone_orig;
        }
        if ne.zone_reply.is_none() {
            ne.zone_reply = oe.zone_reply;
        }
        new.shrink_extra();
    }
    new
}

/// A dump entry or NEW is a full record and replaces what the store knew, except that a
/// RELATED flow never loses a master tuple the store already had.
fn replace(old: &Flow, mut new: Flow) -> Flow {
    if new.is_related() && new.master().is_none() && old.id == new.id {
        if let Some(m) = old.master() {
            new.extra_mut().master = Some(*m);
        }
    }
    new
}

/// Keep what an expectation record lacks from the copy the store had.
fn merge_expect(old: &Expectation, mut new: Expectation) -> Expectation {
    if new.helper.is_none() {
        new.helper = old.helper;
    }
    if new.func.is_none() {
        new.func.clone_from(&old.func);
    }
    if new.nat.is_none() {
        new.nat = old.nat;
    }
    if new.id == 0 {
        new.id = old.id;
    }
    if new.master == Tuple::default() {
        new.master = old.master;
    }
    if new.seen < old.seen {
        new.seen = old.seen;
    }
    new
}
