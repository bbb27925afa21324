//! A vector of bits kept parallel to the flow slab: one bit a flow where a `u32` a flow
//! cost 4 MB at a million flows. It follows the slab's `push` and `swap_remove`, and must
//! not know what the bits mean (the store says that: reported by a re-dump, announced by an
//! event).

/// Bits by position, `len` of them, packed 64 to a word.
#[derive(Debug, Default)]
pub(crate) struct Bits {
    words: Vec<u64>,
    len: usize,
}

impl Bits {
    /// Make room for `additional` more bits at once.
    pub(crate) fn reserve(&mut self, additional: usize) {
        let words = self.len.saturating_add(additional).div_ceil(64);
        self.words
            .reserve_exact(words.saturating_sub(self.words.len()));
    }

    /// Append `bit`.
    pub(crate) fn push(&mut self, bit: bool) {
        if self.len.is_multiple_of(64) {
            self.words.push(0);
        }
        self.len += 1;
        self.put(self.len - 1, bit);
    }

    pub(crate) fn get(&self, i: usize) -> bool {
        debug_assert!(i < self.len);
        self.words[i / 64] >> (i % 64) & 1 == 1
    }

    pub(crate) fn put(&mut self, i: usize, bit: bool) {
        debug_assert!(i < self.len);
        let w = &mut self.words[i / 64];
        *w = *w & !(1 << (i % 64)) | u64::from(bit) << (i % 64);
    }

    /// Remove bit `i`, moving the last one into its place (as `Vec::swap_remove` does).
    pub(crate) fn swap_remove(&mut self, i: usize) -> bool {
        let bit = self.get(i);
        let last = self.get(self.len - 1);
        self.put(i, last);
        self.len -= 1;
        if self.len.is_multiple_of(64) {
            self.words.pop();
        }
        bit
    }

    /// Set every bit to `false`, keeping the length.
    pub(crate) fn clear_all(&mut self) {
        self.words.fill(0);
    }

    /// Heap bytes held.
    pub(crate) fn allocation_size(&self) -> usize {
        self.words.capacity() * std::mem::size_of::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_a_vec_of_bools_through_pushes_swap_removes_and_clears() {
        let mut bits = Bits::default();
        let mut model: Vec<bool> = Vec::new();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for step in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            match x % 7 {
                0..=2 => {
                    bits.push(x & 64 != 0);
                    model.push(x & 64 != 0);
                }
                3 | 4 if !model.is_empty() => {
                    let i = (x >> 20) as usize % model.len();
                    assert_eq!(bits.swap_remove(i), model.swap_remove(i), "step {step}");
                }
                5 if !model.is_empty() => {
                    let i = (x >> 20) as usize % model.len();
                    bits.put(i, x & 128 != 0);
                    model[i] = x & 128 != 0;
                }
                6 if step % 500 == 0 => {
                    bits.clear_all();
                    model.iter_mut().for_each(|b| *b = false);
                }
                _ => {}
            }
            assert_eq!(bits.len, model.len());
            assert_eq!(bits.words.len(), model.len().div_ceil(64), "step {step}");
        }
        for (i, b) in model.iter().enumerate() {
            assert_eq!(bits.get(i), *b, "{i}");
        }
    }
}
