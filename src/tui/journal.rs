//! The change journal: which flows the engine's records touched, in order, so a view built
//! from the store at one point can be brought up to date by looking again at those flows
//! alone instead of sorting the whole table (`screens::SortedTable::by_key`).
//!
//! Positions count records since the app started. A view remembers the position its rows
//! are complete up to; `since(p)` hands back every key touched after `p`, or `None` when
//! the journal cannot say (a dump, an overrun, anything that changes flows without a
//! record, or the journal grew past its cap and was dropped): the view is then built
//! from scratch. The main thread owns it; a build gets a copy of the keys it needs.

use std::sync::Arc;

use crate::model::store::FlowKey;

/// Keys kept at most before the journal gives up and views rebuild from scratch: a
/// backlog this long means the views fell far behind, and a full build is then cheaper
/// than merging a delta this big.
const CAP: usize = 1 << 18;

/// Capacity (keys) above which the journal gives memory back when it empties or shrinks:
/// a dump fills it to `CAP` (~11 MB at 44 B a key), which a still table then never needs.
const KEEP: usize = 16_384;

/// The keys touched since the oldest position any view may still ask about.
#[derive(Debug, Default)]
pub struct Journal {
    keys: Vec<FlowKey>,
    /// Position of `keys[0]`.
    base: u64,
    /// No position before this can be brought up to date from the journal.
    barrier: u64,
}

/// The flows touched between two positions, as a build takes them.
#[derive(Debug, Clone)]
pub struct Changes {
    /// The position the view's rows are complete up to.
    pub since: u64,
    /// The position these keys reach (what the rebuilt view is complete up to).
    pub upto: u64,
    /// The keys touched in between, in order, with repeats.
    pub keys: Arc<[FlowKey]>,
}

impl Journal {
    /// The position after the last record noted.
    pub fn pos(&self) -> u64 {
        self.base + self.keys.len() as u64
    }

    /// A record touched the flow `k`.
    pub fn touched(&mut self, k: FlowKey) {
        if self.keys.len() >= CAP {
            self.forget();
        }
        self.keys.push(k);
    }

    /// Flows changed in a way no record says (a dump's sweep, an overrun): no view can be
    /// brought up to date across this point.
    pub fn forget(&mut self) {
        self.base = self.pos();
        if self.keys.capacity() > KEEP {
            self.keys = Vec::new();
        } else {
            self.keys.clear();
        }
        self.barrier = self.base;
    }

    /// The keys touched after `since` up to `upto`, or `None` when the journal cannot
    /// tell them all.
    pub fn since(&self, since: u64, upto: u64) -> Option<Changes> {
        if since < self.barrier || since < self.base || since > upto || upto > self.pos() {
            return None;
        }
        let (from, to) = ((since - self.base) as usize, (upto - self.base) as usize);
        Some(Changes {
            since,
            upto,
            keys: self.keys[from..to].into(),
        })
    }

    /// Nothing before `pos` will be asked for again: drop it.
    pub fn trim(&mut self, pos: u64) {
        if pos <= self.base || pos > self.pos() {
            return;
        }
        self.keys.drain(..(pos - self.base) as usize);
        self.base = pos;
        if self.keys.capacity() > KEEP && self.keys.capacity() > 4 * self.keys.len() {
            self.keys.shrink_to(KEEP.max(2 * self.keys.len()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tuple::Tuple;

    fn key(i: u16) -> FlowKey {
        FlowKey::new(
            0,
            Tuple {
                sport: i,
                ..Tuple::default()
            },
        )
    }

    #[test]
    fn since_hands_back_what_came_after_and_refuses_across_a_barrier() {
        let mut j = Journal::default();
        j.touched(key(1));
        j.touched(key(2));
        let c = j.since(1, 2).unwrap();
        assert_eq!((c.since, c.upto, &*c.keys), (1, 2, &[key(2)][..]));
        assert_eq!(j.since(2, 2).unwrap().keys.len(), 0);
        assert_eq!(
            &*j.since(0, 1).unwrap().keys,
            &[key(1)][..],
            "up to what is applied"
        );
        j.trim(1);
        assert!(j.since(0, 2).is_none(), "trimmed away");
        assert_eq!(j.since(1, 2).unwrap().keys.len(), 1);
        j.forget();
        j.touched(key(3));
        assert!(j.since(1, 3).is_none(), "across the barrier");
        assert_eq!(&*j.since(2, 3).unwrap().keys, &[key(3)][..]);
        assert!(j.since(2, 9).is_none(), "ahead of the journal");
    }

    #[test]
    fn a_journal_past_its_cap_forgets_rather_than_grows() {
        let mut j = Journal::default();
        for i in 0..=CAP {
            j.touched(key(i as u16));
        }
        assert!(j.since(0, j.pos()).is_none());
        assert_eq!(j.keys.len(), 1);
        assert!(
            j.keys.capacity() <= KEEP,
            "the memory of the dropped keys is given back"
        );
    }

    #[test]
    fn a_trimmed_journal_gives_back_what_it_no_longer_holds() {
        let mut j = Journal::default();
        for i in 0..100_000u32 {
            j.touched(key(i as u16));
        }
        j.trim(99_990);
        assert_eq!(j.keys.len(), 10);
        assert!(j.keys.capacity() <= KEEP);
        assert_eq!(j.since(99_990, 100_000).unwrap().keys.len(), 10);
    }
}
