//! Buffers for the view builder's largest build, made and written before it is due.
//!
//! Fresh memory costs a page fault the first time each 4 KiB page of it is written, about
//! 1.8 µs on the development machine. The first complete view of a million flows is one
//! build that writes ~130 MB of fresh buffers (the scan's rows, the sort's pairs, the
//! view's keys): on two threads it took 83-88 ms, and 50-53 ms with malloc told to keep
//! and reuse freed memory (`examples/view_build`). The dump before that build announces
//! the table's size (`EngineEvent::DumpProgress`), so the app asks for the buffers then
//! (`Screen::warm`): a low-priority thread (`worker::chore`) makes them and writes every
//! page while the dump streams, and the build takes them (`take`) instead of allocating.
//!
//! Only warmed buffers are held, and only until a build takes them or the app releases
//! the rest (`release`, once the first complete view is in): every build still frees its
//! buffers when it ends, so the dashboard's memory at rest is what it was.

use std::any::Any;
use std::mem::MaybeUninit;
use std::sync::{Mutex, MutexGuard};

/// Warmed buffers, how many times they were released (a warm-up that finds them released
/// since it began drops what it made), and how many builds took one. The process has one
/// (`take`, `warm`, `release`); tests make their own.
#[derive(Default)]
pub struct Pool {
    releases: u64,
    held: Vec<Box<dyn Any + Send>>,
    taken: u64,
}

/// Bytes between two writes that fault a buffer in: the smallest page.
const PAGE: usize = 4096;

impl Pool {
    /// An empty vector with room for `cap` values: a warmed one if one fits (room for
    /// `cap`, and no more than twice that, so a small build never takes a large one's
    /// buffer), else a new one.
    pub fn take<T: Send + 'static>(&mut self, cap: usize) -> Vec<T> {
        let best = (self.held.iter().enumerate())
            .filter_map(|(i, b)| b.downcast_ref::<Vec<T>>().map(|v| (i, v.capacity())))
            .filter(|&(_, room)| room >= cap && room <= cap.saturating_mul(2))
            .min_by_key(|&(_, room)| room);
        match best.map(|(i, _)| self.held.swap_remove(i).downcast::<Vec<T>>()) {
            Some(Ok(v)) => {
                self.taken += 1;
                *v
            }
            // Found by its type above: never another.
            Some(Err(_)) | None => Vec::with_capacity(cap),
        }
    }

    /// Hold `v`, made by a warm-up that began after `releases` releases, unless the pool
    /// was released since.
    fn hold(&mut self, v: Box<dyn Any + Send>, releases: u64) -> bool {
        if self.releases != releases {
            return false;
        }
        self.held.push(v);
        true
    }

    /// Everything held, taken out; no warm-up begun before this adds to the pool.
    fn release(&mut self) -> Vec<Box<dyn Any + Send>> {
        self.releases += 1;
        std::mem::take(&mut self.held)
    }

    /// Buffers of `T` held now.
    pub fn held<T: 'static>(&self) -> usize {
        (self.held.iter()).filter(|b| b.is::<Vec<T>>()).count()
    }
}

static POOL: Mutex<Pool> = Mutex::new(Pool {
    releases: 0,
    held: Vec::new(),
    taken: 0,
});

fn pool() -> MutexGuard<'static, Pool> {
    POOL.lock().unwrap_or_else(|e| e.into_inner())
}

/// `Pool::take` from the process's pool.
pub fn take<T: Send + 'static>(cap: usize) -> Vec<T> {
    pool().take(cap)
}

/// Warmed buffers the process's builds have taken so far (tests: a build used them).
pub fn taken() -> u64 {
    pool().taken
}

/// `v` without the room it does not use: a view is kept, and a warmed buffer was sized
/// for the table the dump announced, whose pages are all written (~3 MB at a million rows
/// held for nothing). Shrinking a buffer that large moves no data (`mremap`).
pub fn fit<T>(mut v: Vec<T>) -> Vec<T> {
    if v.capacity() > v.len() {
        v.shrink_to_fit();
    }
    v
}

/// A vector with room for `cap` values of `T`, every page of it written.
fn written<T>(cap: usize) -> Vec<T> {
    let mut v: Vec<T> = Vec::with_capacity(cap);
    let step = (PAGE / std::mem::size_of::<T>().max(1)).max(1);
    for slot in v.spare_capacity_mut().iter_mut().step_by(step) {
        *slot = MaybeUninit::zeroed();
    }
    v
}

/// Make `count` vectors with room for `cap` values of `T`, write every page of each, and
/// hold them in the process's pool for builds to `take`. Runs on the chores thread,
/// while the dump streams; the pool is locked only to hold each.
pub fn warm<T: Send + 'static>(count: usize, cap: usize) {
    let releases = pool().releases;
    for _ in 0..count {
        let v = Box::new(written::<T>(cap));
        if !pool().hold(v, releases) {
            return;
        }
    }
}

/// Drop what no build took from the process's pool (on the chores thread), and whatever
/// a warm-up still makes.
pub fn release() {
    let held = pool().release();
    if !held.is_empty() {
        super::worker::dispose(held);
    }
}

/// Buffers of `T` held now in the process's pool (tests).
pub fn held<T: 'static>() -> usize {
    pool().held::<T>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_warmed_buffer_goes_to_one_build_of_its_size_and_type() {
        let mut p = Pool::default();
        assert!(p.hold(Box::new(written::<u32>(10_000)), 0));
        assert_eq!(p.take::<u32>(4_000).capacity(), 4_000, "too small for it");
        assert!(p.take::<u64>(10_000).capacity() >= 10_000, "another type");
        assert_eq!((p.held::<u32>(), p.taken), (1, 0));
        let v = p.take::<u32>(9_000);
        assert!(v.capacity() >= 10_000 && v.is_empty(), "the warmed one");
        assert_eq!(p.take::<u32>(9_000).capacity(), 9_000, "taken once");
    }

    #[test]
    fn a_release_drops_what_no_build_took_and_what_a_warm_up_still_makes() {
        let mut p = Pool::default();
        let began = p.releases;
        assert!(p.hold(Box::new(written::<u32>(100)), began));
        assert_eq!(p.release().len(), 1);
        assert_eq!(p.held::<u32>(), 0);
        assert!(
            !p.hold(Box::new(written::<u32>(100)), began),
            "begun before"
        );
        assert_eq!(p.held::<u32>(), 0);
    }

    #[test]
    fn a_fitted_vector_keeps_its_values_and_no_spare_room() {
        let mut v: Vec<u32> = written(1_000);
        v.extend([1, 2, 3]);
        let v = fit(v);
        assert_eq!((v.as_slice(), v.capacity()), (&[1, 2, 3][..], 3));
    }
}
