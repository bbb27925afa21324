//! The flow store's hash index: slab positions by key hash. Owns only the slots; the keys
//! live in the store's slab, so every comparison goes through a closure the store passes.
//! It must not know what a flow is.
//!
//! Open addressing with linear probing in one `Vec<u64>`: a slot holds the slab position
//! plus one and the top 32 bits of the key's hash (its *tag*), 0 when empty. A lookup or
//! an insert touches one cache line in the common case, where `hashbrown::HashTable` (the
//! index before this one) touches two: its control bytes and, apart, its data. On a dump
//! of a million flows nearly every one of those lines is a cache miss, and they were the
//! largest single cost of the load; one line per key can also be fetched ahead
//! ([`Index::prefetch`]) for a batch. The price is 8 bytes per slot instead of 5.
//!
//! A key's home slot is its tag scaled to the table's length (`tag * len >> 32`), so
//! growing needs no rehash from the slab and removal can shift later entries back into the
//! gap (no tombstones: probe sequences stay as short as the load allows). Scaling, not the
//! tag's top bits, lets the length be any number: a table sized to a dump's announced count
//! takes the slots it needs, where rounding up to a power of two took up to twice as many
//! (a million flows took 2^21 slots, 16.8 MB, under half full).

/// At most this share of slots is used (3/4): linear probing's misses grow quickly above it.
const MAX_LOAD_NUM: usize = 3;
const MAX_LOAD_DEN: usize = 4;

/// A table is (re)made with this many slots per key it must hold (3/2, so 2/3 full): room
/// for the keys a dump brings beyond its announced count before the table must grow again.
const SIZE_NUM: usize = 3;
const SIZE_DEN: usize = 2;

/// The fewest slots a table is made with.
const MIN_SLOTS: usize = 16;

/// Slab positions by key hash.
#[derive(Debug, Default)]
pub(crate) struct Index {
    /// `(position + 1) << 32 | tag`, or 0; any length (0 until the first key).
    slots: Vec<u64>,
    /// Occupied slots.
    len: usize,
}

/// The tag of a hash: its top 32 bits (the home slot is the tag scaled to the length).
#[inline]
fn tag_of(hash: u64) -> u32 {
    (hash >> 32) as u32
}

impl Index {
    /// The slot after `i`, wrapping at the end.
    #[inline]
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.slots.len() {
            0
        } else {
            i + 1
        }
    }

    /// How far `to` is past `from`, going forward and wrapping at the end.
    #[inline]
    fn distance(&self, from: usize, to: usize) -> usize {
        if to >= from {
            to - from
        } else {
            to + self.slots.len() - from
        }
    }

    /// The home slot of `tag` at the current size: the tag scaled to the length, so homes
    /// keep the tags' order and a tag alone places its entry when the table is remade.
    #[inline]
    fn home(&self, tag: u32) -> usize {
        ((u64::from(tag) * self.slots.len() as u64) >> 32) as usize
    }

    /// Whether `n` keys fit without passing the maximum load.
    #[inline]
    fn fits(&self, n: usize) -> bool {
        n.saturating_mul(MAX_LOAD_DEN) <= self.slots.len().saturating_mul(MAX_LOAD_NUM)
    }

    /// Make room for `additional` more keys without growing: a table of 3/2 slots per key
    /// when it must be remade (a dump's count is known, so no doubling's spare half).
    pub(crate) fn reserve(&mut self, additional: usize) {
        let need = self.len.saturating_add(additional);
        if !self.fits(need) {
            self.remake(need.saturating_mul(SIZE_NUM) / SIZE_DEN);
        }
    }

    /// Move every entry into a table of `slots` slots (at least `MIN_SLOTS`).
    fn remake(&mut self, slots: usize) {
        // Written, not allocated zeroed: `vec![0; n]` maps every page to the kernel's
        // shared zero page, and the probe's read of a slot before its first write made
        // each first write a copy-on-write fault with a TLB shootdown to every core the
        // process runs on. Under a hypervisor those cost ~15 µs each: the dashboard's
        // first three batches of a million-flow dump (12,288 flows) took ~100 ms of its
        // main thread, and the first rows waited for them; now the first batch takes ~3 ms.
        let old = std::mem::replace(&mut self.slots, written_zeros(slots.max(MIN_SLOTS)));
        for s in old.into_iter().filter(|&s| s != 0) {
            let mut i = self.home(s as u32);
            while self.slots[i] != 0 {
                i = self.next(i);
            }
            self.slots[i] = s;
        }
    }

    /// Read the home slot of `hash`, so a batch of lookups made just before the real ones
    /// overlaps its cache misses (see `Store::apply_flows`).
    #[inline]
    pub(crate) fn prefetch(&self, hash: u64) {
        if let Some(s) = self.slots.get(self.home(tag_of(hash))) {
            std::hint::black_box(*s);
        }
    }

    /// The position whose key hashes to `hash` and satisfies `eq`.
    #[inline]
    pub(crate) fn find(&self, hash: u64, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        if self.len == 0 {
            return None;
        }
        let tag = tag_of(hash);
        let mut i = self.home(tag);
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            let pos = (s >> 32) as u32 - 1;
            if s as u32 == tag && eq(pos) {
                return Some(pos);
            }
            i = self.next(i);
        }
    }

    /// Add `pos` under `hash`; the caller knows no equal key is present.
    #[inline]
    pub(crate) fn insert(&mut self, hash: u64, pos: u32) {
        if !self.fits(self.len + 1) {
            // Grown one key at a time: doubled, so inserts stay amortized O(1).
            let slots = self.slots.len().saturating_mul(2);
            self.remake(slots.max((self.len + 1) * SIZE_NUM / SIZE_DEN));
        }
        let tag = tag_of(hash);
        let mut i = self.home(tag);
        while self.slots[i] != 0 {
            i = self.next(i);
        }
        self.slots[i] = (u64::from(pos) + 1) << 32 | u64::from(tag);
        self.len += 1;
    }

    /// The slot holding `pos`, whose key hashes to `hash`.
    fn slot_of(&self, hash: u64, pos: u32) -> Option<usize> {
        if self.len == 0 {
            return None;
        }
        let want = u64::from(pos) + 1;
        let mut i = self.home(tag_of(hash));
        loop {
            let s = self.slots[i];
            if s == 0 {
                return None;
            }
            if s >> 32 == want {
                return Some(i);
            }
            i = self.next(i);
        }
    }

    /// Forget `pos` (whose key hashes to `hash`), shifting the entries after it back so no
    /// probe sequence is broken by the gap.
    pub(crate) fn remove(&mut self, hash: u64, pos: u32) -> bool {
        let Some(mut hole) = self.slot_of(hash, pos) else {
            return false;
        };
        let mut j = hole;
        loop {
            j = self.next(j);
            let s = self.slots[j];
            if s == 0 {
                break;
            }
            // `s` may fill the hole if its home is not between the hole and `j` (cyclically):
            // then the hole lies on its probe path.
            let home = self.home(s as u32);
            if self.distance(home, j) >= self.distance(hole, j) {
                self.slots[hole] = s;
                hole = j;
            }
        }
        self.slots[hole] = 0;
        self.len -= 1;
        true
    }

    /// Point the entry for `old` (key hashing to `hash`) at `new`: the slab moved it.
    pub(crate) fn repoint(&mut self, hash: u64, old: u32, new: u32) -> bool {
        match self.slot_of(hash, old) {
            Some(i) => {
                let tag = self.slots[i] & 0xffff_ffff;
                self.slots[i] = (u64::from(new) + 1) << 32 | tag;
                true
            }
            None => false,
        }
    }

    /// Heap bytes held.
    pub(crate) fn allocation_size(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<u64>()
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }
}

/// `n` zero slots, each page written (see `Index::reserve`): what `vec![0; n]` is not.
#[allow(clippy::slow_vector_initialization)]
fn written_zeros(n: usize) -> Vec<u64> {
    let mut v = Vec::with_capacity(n);
    v.resize(n, 0);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hashes chosen so that many keys share few homes: long probe runs that wrap.
    fn h(k: u64) -> u64 {
        (k % 5).rotate_right(3) ^ (k << 40) ^ (k.wrapping_mul(0x9e37_79b9) << 8)
    }

    #[test]
    fn insert_find_remove_repoint_against_a_model() {
        // Grown from empty (lengths 16, 32, 64, …) and reserved up front at lengths that are
        // no power of two (1,500 and 2,005 slots), where homes are scaled, not masked.
        for reserved in [0, 1000, 1337] {
            against_a_model(reserved);
        }
    }

    fn against_a_model(reserved: usize) {
        let mut ix = Index::default();
        ix.reserve(reserved);
        // pos -> key: the "slab".
        let mut slab: Vec<u64> = Vec::new();
        let find = |ix: &Index, slab: &[u64], k: u64| ix.find(h(k), |p| slab[p as usize] == k);
        for k in 0..2000u64 {
            assert_eq!(find(&ix, &slab, k), None);
            slab.push(k);
            ix.insert(h(k), (slab.len() - 1) as u32);
        }
        // Remove every third key as the store does: swap_remove and repoint the moved one.
        for k in (0..2000u64).step_by(3) {
            let p = slab.iter().position(|&x| x == k).unwrap();
            assert!(ix.remove(h(k), p as u32));
            let last = slab.len() - 1;
            slab.swap_remove(p);
            if p != last {
                assert!(ix.repoint(h(slab[p]), last as u32, p as u32));
            }
        }
        assert_eq!(ix.len(), slab.len());
        for k in 0..2000u64 {
            let got = find(&ix, &slab, k);
            if k % 3 == 0 {
                assert_eq!(got, None, "{k} was removed");
            } else {
                assert_eq!(slab[got.expect("still there") as usize], k);
            }
        }
        assert!(!ix.remove(h(0), 12345));
        assert!(ix.allocation_size() >= slab.len() * 8);
    }

    #[test]
    fn a_reserved_table_takes_the_slots_its_count_needs() {
        let mut ix = Index::default();
        ix.reserve(1_062_500);
        // 3/2 slots per key, not the next power of two (2^21, 8.4 MB more).
        assert_eq!(ix.slots.len(), 1_593_750);
        for p in 0..1_062_500u32 {
            ix.insert(u64::from(p).wrapping_mul(0x9e37_79b9_7f4a_7c15), p);
        }
        assert_eq!(ix.slots.len(), 1_593_750, "the reserved count fits");
        // One more than 3/4 of the slots doubles the table.
        for p in 1_062_500..1_195_313u32 {
            ix.insert(u64::from(p).wrapping_mul(0x9e37_79b9_7f4a_7c15), p);
        }
        assert_eq!(ix.slots.len(), 3_187_500);
        for p in (0..1_195_313u32).step_by(9_973) {
            let h = u64::from(p).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            assert_eq!(ix.find(h, |q| q == p), Some(p));
        }
    }

    #[test]
    fn colliding_homes_wrap_around_the_end() {
        let mut ix = Index::default();
        ix.reserve(8);
        // Every key's home is the last slot: the run wraps to the start.
        let last_home = u64::MAX;
        for p in 0..10u32 {
            ix.insert(last_home - u64::from(p), p);
        }
        for p in (0..10u32).rev().step_by(2) {
            assert!(ix.remove(last_home - u64::from(p), p));
        }
        for p in 0..10u32 {
            let got = ix.find(last_home - u64::from(p), |q| q == p);
            assert_eq!(got.is_some(), p % 2 == 0, "{p}");
        }
    }

    #[test]
    fn empty_index_finds_nothing() {
        let mut ix = Index::default();
        assert_eq!(ix.find(7, |_| true), None);
        assert!(!ix.remove(7, 0));
        assert!(!ix.repoint(7, 0, 1));
        ix.prefetch(7);
    }
}
