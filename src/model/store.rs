//! The model store: every flow and expectation the kernel has reported, keyed by
//! (zone, original tuple), with the master ↔ expectation ↔ RELATED linkage.
//!
//! Keyed by tuple, not by `CTA_ID`: the kernel's id is a hash and collides on large tables
//! (observed at 250k entries). DESTROY events carry neither the helper nor the master
//! tuple, so linkage is kept from what the store already knows. The store is fed by one
//! owner (the engine or the app's main thread); it never touches sockets or ratatui.
//!
//! API CONTRACT (fixed; the store helper fills in the bodies).

use crate::decode::{Event, Record};
use crate::model::{Expectation, Flow, Tuple};

/// The store's key for a flow: conntrack zone and original tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    pub zone: u16,
    pub orig: Tuple,
}

impl FlowKey {
    pub fn of(f: &Flow) -> FlowKey {
        FlowKey {
            zone: f.zone,
            orig: f.orig,
        }
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

/// Flows, expectations and their linkage.
#[derive(Debug, Default)]
pub struct Store {
    _private: (),
}

impl Store {
    pub fn new() -> Store {
        todo!()
    }

    /// Apply one decoded record at store time `now` (whole seconds since the store's epoch;
    /// the caller owns the clock so tests and replays are deterministic). Sets `seen`.
    pub fn apply(&mut self, event: Event, record: Record, now: u32) -> Change {
        let _ = (event, record, now);
        todo!()
    }

    /// Start a full re-dump: entries not reported again before `end_resync` are removed.
    pub fn begin_resync(&mut self) {
        todo!()
    }

    /// Finish a re-dump started with `begin_resync`, sweeping entries it did not report.
    /// `flows_only` / `expects_only` dumps sweep only their own table. Returns how many went.
    pub fn end_resync(&mut self, flows: bool, expects: bool) -> usize {
        let _ = (flows, expects);
        todo!()
    }

    /// Count one ENOBUFS-triggered resync.
    pub fn note_resync(&mut self) {
        todo!()
    }

    /// Keys of flows whose reported timeout has run out at `now`: with
    /// `nf_conntrack_events=2` a pre-existing flow sends no DESTROY, so the engine re-checks these.
    pub fn expired_flows(&self, now: u32) -> Vec<FlowKey> {
        let _ = now;
        todo!()
    }

    /// Remove expectations whose timeout has passed (expectations never outlive it).
    pub fn expire_expectations(&mut self, now: u32) -> usize {
        let _ = now;
        todo!()
    }

    pub fn flow_count(&self) -> usize {
        todo!()
    }

    pub fn expect_count(&self) -> usize {
        todo!()
    }

    pub fn flow(&self, key: &FlowKey) -> Option<&Flow> {
        let _ = key;
        todo!()
    }

    pub fn expectation(&self, key: &ExpectKey) -> Option<&Expectation> {
        let _ = key;
        todo!()
    }

    /// Every flow, in no particular order.
    pub fn flows(&self) -> impl Iterator<Item = &Flow> + '_ {
        std::iter::empty()
    }

    /// Every live expectation, in no particular order.
    pub fn expectations(&self) -> impl Iterator<Item = &Expectation> + '_ {
        std::iter::empty()
    }

    /// The master flow of a RELATED flow (from `CTA_TUPLE_MASTER`, same zone).
    pub fn master_of(&self, key: &FlowKey) -> Option<&Flow> {
        let _ = key;
        todo!()
    }

    /// The expectation that created a RELATED flow, kept after the kernel dropped it.
    pub fn expectation_of(&self, key: &FlowKey) -> Option<&Expectation> {
        let _ = key;
        todo!()
    }

    /// RELATED flows whose master is `master`.
    pub fn related_of(&self, master: &FlowKey) -> Vec<FlowKey> {
        let _ = master;
        todo!()
    }

    /// Live expectations whose master is `master`.
    pub fn expectations_of(&self, master: &FlowKey) -> Vec<ExpectKey> {
        let _ = master;
        todo!()
    }

    /// A number that changes whenever the content changes: views rebuild only then.
    pub fn generation(&self) -> u64 {
        todo!()
    }

    pub fn stats(&self) -> Stats {
        todo!()
    }
}
