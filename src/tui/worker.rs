//! The view builder: filters and sorts a screen's rows on a worker thread, so the main
//! thread only swaps in finished views and never waits for one.
//!
//! Owns the sharing of the store between the main thread (its only writer) and the
//! worker (a reader), the queue of build requests, their pacing, and the hand-back of
//! results. It knows nothing of screens, columns, filters or drawing: a screen hands it a
//! [`Job`] (what to read from the store, then what to compute from that) and gets back
//! whatever the job returns.
//!
//! ```text
//!  engine events ─► main thread ── StoreWriter::update ──► Arc<RwLock<Store>>
//!                   │   (try_write; queued while the worker reads)   │ read lock
//!                   │                                                ▼
//!                   ├─ Worker::request(key, Urgency, Job) ─► worker thread
//!                   │                                         scan(&Store)   (lock held)
//!                   │                                         finish(scan)   (no lock)
//!                   ◄─ Worker::try_recv() ◄── Built { key, value, generation } ─┘ + wake()
//! ```
//!
//! # Why this shape
//!
//! - **A snapshot by read lock, not deltas.** An incremental view would need every screen
//!   to translate store changes (inserts, swap-removes, updates that move a row's sort
//!   value) into its own order; a snapshot needs nothing from the screens but a scan and a
//!   sort, and cannot drift from the store. The lock is held only for the scan (filter and
//!   sort-value extraction, one linear pass); the sort, the expensive half, runs unlocked
//!   on what the scan copied out (see `examples/view_build.rs` for the split at 1M flows).
//! - **The main thread never blocks.** It writes with `try_write`; while the worker holds
//!   its read lock the writer queues the update and applies the queue, in order, at its
//!   next chance (the next update or [`StoreWriter::flush`], which the main loop calls once
//!   per turn). Drawing takes a read lock, which readers share. `std::sync::RwLock` is
//!   used because nothing here ever waits for a write.
//! - **Coalesced requests.** Only the newest pending request per key runs: a screen asks
//!   after every store change and the worker builds at the pace below, so a burst of
//!   engine batches costs one build, not one per batch. A request that arrives while a
//!   build of its key is running waits for the next turn; a spec request also tells that
//!   build it is stale ([`cancelled`]), and a long pass that asks stops there.
//! - **Stale results are dropped by sequence number.** A result whose key got a new
//!   *spec* (a sort or filter change, [`Urgency::Spec`]) after it was requested describes
//!   the old spec and is never handed out. A newer *data* request does not make an older
//!   result stale: it is still the right view, only a little older, and showing it beats
//!   showing nothing.
//! - **Paced by cost.** A data-driven rebuild of a key starts no sooner than [`Pacing::gap`]
//!   after that key's last build ended: long enough that rebuilds use at most
//!   [`Pacing::budget`] of one core, at least [`Pacing::min_gap`] (small tables under
//!   churn rebuild a few times a second, not after every batch), and never so long that
//!   the view falls more than [`Pacing::max_lag`] behind the store (a change just after a
//!   build's scan is seen by the next build: lag = gap + two builds). Where budget and lag
//!   disagree (a build slower than `budget * max_lag / 2`), lag wins: the issue's rule is
//!   "never more than 1 s behind at any table size". A spec change is built at once.
//!
//! One worker thread serves every screen: on two cores a second builder would compete
//! with the main thread and the engine, and only the visible screen needs fresh rows. A
//! spec build of a large table borrows a second thread for its own scan and sort
//! ([`Lanes`]): the admin is waiting for it, and the engine and the main thread are idle
//! then (at a million flows the end-of-dump build took 114-153 ms on two threads against
//! 172-212 ms on one, four runs each).

use std::collections::HashMap;
use std::hash::Hash;
use std::mem::MaybeUninit;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock, RwLock, RwLockReadGuard, TryLockError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use super::scratch;
use crate::model::Store;

/// The store as the main thread and the worker share it.
pub type SharedStore = Arc<RwLock<Store>>;

/// Read the shared store, whatever a panicked writer left behind: a panic on the main
/// thread ends the dashboard anyway, and the worker must not die of it first.
pub fn read(shared: &RwLock<Store>) -> RwLockReadGuard<'_, Store> {
    shared.read().unwrap_or_else(|e| e.into_inner())
}

/// An update to the store queued while the worker held its read lock.
type Update = Box<dyn FnOnce(&mut Store)>;

/// The main thread's side of the shared store: the only writer, which never waits.
pub struct StoreWriter {
    shared: SharedStore,
    queue: Vec<Update>,
}

impl StoreWriter {
    /// Share `store` with a worker.
    pub fn new(store: Store) -> StoreWriter {
        StoreWriter {
            shared: Arc::new(RwLock::new(store)),
            queue: Vec::new(),
        }
    }

    /// The store to hand to [`Worker::spawn`].
    pub fn shared(&self) -> SharedStore {
        Arc::clone(&self.shared)
    }

    /// Apply `f` to the store now if no build is reading it, after everything queued
    /// before; otherwise queue it. Returns whether the store is up to date (nothing queued).
    pub fn update(&mut self, f: impl FnOnce(&mut Store) + 'static) -> bool {
        self.queue.push(Box::new(f));
        self.flush()
    }

    /// Apply the queued updates if the store is free. Returns whether nothing is queued
    /// any more. The main loop calls this once per turn, so a queue left behind by a build
    /// is applied within one turn of the build's scan ending.
    pub fn flush(&mut self) -> bool {
        if self.queue.is_empty() {
            return true;
        }
        let mut store = match self.shared.try_write() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return false,
        };
        for f in self.queue.drain(..) {
            f(&mut store);
        }
        true
    }

    /// Updates waiting for the worker's read lock to end.
    pub fn pending(&self) -> usize {
        self.queue.len()
    }

    /// Read the store (to draw, or to answer a key). Shared with the worker's scan, so
    /// it does not wait for one; it waits only for this thread's own writes, which are
    /// never in progress when it is called.
    pub fn read(&self) -> RwLockReadGuard<'_, Store> {
        read(&self.shared)
    }
}

/// A build: `scan` runs with the store read-locked and copies out what the view needs
/// (filter, then sort values and keys); `finish` runs with no lock (the sort) and makes
/// the value handed back.
pub struct Job<T> {
    run: Scan<T>,
    /// This job's own share of a core for data-driven rebuilds, instead of the worker's
    /// `Pacing::budget` (`Job::budget`).
    budget: Option<f64>,
}

/// A job with its scan's type erased: scan now, get back the finish to run unlocked.
type Scan<T> = Box<dyn FnOnce(&Store, Lanes) -> Finish<T> + Send>;
type Finish<T> = Box<dyn FnOnce() -> T + Send>;

/// How many threads one build may use. A spec build (a sort or filter change, a screen
/// opened, the end of a dump) is what the admin is waiting for, and nothing else needs
/// the cores then: it may use every core, up to two (`sort_parts` merges two sorted
/// halves). A data build follows the table at a pace counted in one core's time
/// (`Pacing::budget`), and the main thread and the engine need the other core: it keeps
/// to one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lanes(usize);

impl Lanes {
    pub const ONE: Lanes = Lanes(1);
    pub const TWO: Lanes = Lanes(2);

    /// The lanes of a spec build on this machine.
    pub fn spec() -> Lanes {
        static CORES: OnceLock<usize> = OnceLock::new();
        Lanes(*CORES.get_or_init(|| thread::available_parallelism().map_or(1, |n| n.get().min(2))))
    }

    pub fn get(self) -> usize {
        self.0
    }
}

impl<T: 'static> Job<T> {
    pub fn new<S: Send + 'static>(
        scan: impl FnOnce(&Store) -> S + Send + 'static,
        finish: impl FnOnce(S) -> T + Send + 'static,
    ) -> Job<T> {
        Job::with_lanes(move |store: &Store, _| scan(store), finish)
    }

    /// A job whose scan (and, through what the scan hands on, the finish) may split its
    /// work over `Lanes` threads.
    pub fn with_lanes<S: Send + 'static>(
        scan: impl FnOnce(&Store, Lanes) -> S + Send + 'static,
        finish: impl FnOnce(S) -> T + Send + 'static,
    ) -> Job<T> {
        Job {
            run: Box::new(move |store: &Store, lanes: Lanes| -> Finish<T> {
                let s = scan(store, lanes);
                Box::new(move || finish(s))
            }),
            budget: None,
        }
    }

    /// Pace data-driven rebuilds of this job's key to `budget` of one core (the lag rule
    /// still applies): for builds a reader needs less often than a screen's rows, such as
    /// the header's numbers.
    pub fn budget(mut self, budget: f64) -> Job<T> {
        self.budget = Some(budget);
        self
    }

    /// The same job, its value passed through `f` after the finish (unlocked).
    pub fn map<U: 'static>(self, f: impl FnOnce(T) -> U + Send + 'static) -> Job<U> {
        let run = self.run;
        Job {
            run: Box::new(move |store: &Store, lanes: Lanes| -> Finish<U> {
                let finish = run(store, lanes);
                Box::new(move || f(finish()))
            }),
            budget: self.budget,
        }
    }

    /// Run the job here, scan then finish: for a screen's unit tests, which check the
    /// very job the worker runs without a thread.
    pub fn run(self, store: &Store) -> T {
        (self.run)(store, Lanes::ONE)()
    }
}

/// Why a build is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Urgency {
    /// The store changed: build when the key's pacing allows.
    Data,
    /// The view's spec changed (sort, filter, a screen opened): build at once, and never
    /// hand out a result requested before this one.
    Spec,
}

/// A finished build.
#[derive(Debug)]
pub struct Built<K, T> {
    pub key: K,
    pub value: T,
    /// `Store::generation` the scan saw: the view shows the store as of then.
    pub generation: u64,
    /// The request's sequence number (from [`Worker::request`]).
    pub seq: u64,
    /// Time spent scanning (store locked) and finishing (unlocked).
    pub scan: Duration,
    pub finish: Duration,
}

/// How data-driven rebuilds are paced (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pacing {
    /// Share of one core data-driven rebuilds of one key may use.
    pub budget: f64,
    /// The least time between the end of a build and the start of the next one.
    pub min_gap: Duration,
    /// The most a view may trail the store.
    pub max_lag: Duration,
}

impl Default for Pacing {
    /// 5% of a core: under churn the engine (decoding ~10,000 events/s, ~5%), the main
    /// thread (applying them, drawing, ~5%), the header's summary and the risk verdicts
    /// (1% each, `views.rs`) need the rest of the issue's 25% budget. Measured at a million flows: a
    /// refined flows view (~25 ms) then rebuilds about twice a second instead of four
    /// times, well inside the 1 s lag. 250 ms floor: four views a second is as fast as a
    /// reader follows a moving table, and a 20,000-flow build (~2 ms) then costs under 1%.
    fn default() -> Pacing {
        Pacing {
            budget: 0.05,
            min_gap: Duration::from_millis(250),
            max_lag: Duration::from_secs(1),
        }
    }
}

impl Pacing {
    /// Time to wait after a build that took `cost` before the next data-driven one.
    pub fn gap(&self, cost: Duration) -> Duration {
        let for_budget = cost.mul_f64((1.0 / self.budget.max(1e-3) - 1.0).max(0.0));
        let for_lag = self.max_lag.saturating_sub(cost.saturating_mul(2));
        for_budget.max(self.min_gap).min(for_lag)
    }
}

enum Msg<K, T> {
    Request {
        key: K,
        urgency: Urgency,
        seq: u64,
        job: Job<T>,
    },
    /// From now on, yield to the main thread (`Worker::yield_to_keys`).
    YieldToKeys,
}

/// The main thread's handle on the worker thread.
pub struct Worker<K, T> {
    tx: Option<Sender<Msg<K, T>>>,
    results: Receiver<Result<Built<K, T>, K>>,
    seq: u64,
    /// Per key, the sequence number of its newest spec request.
    spec: HashMap<K, u64>,
    failures: u64,
    thread: Option<JoinHandle<()>>,
    /// The build running now, so that a spec change of its key can cut it short.
    running: Running<K>,
}

/// The key of the build running on the worker, and the flag that cuts it short.
type Running<K> = Arc<Mutex<Option<(K, Arc<AtomicBool>)>>>;

thread_local! {
    /// The running build's flag, on the worker thread (see [`cancelled`]).
    static CANCEL: std::cell::RefCell<Option<Arc<AtomicBool>>> =
        const { std::cell::RefCell::new(None) };
}

/// Whether the build running on this thread was superseded by a spec change of its key
/// (a sort, a filter, a regrouping) since it started: its result will never be handed
/// out, so a long pass may stop early. Jobs that ask give the worker back at once to what
/// the admin is now waiting for, instead of finishing a view nobody will see. `false`
/// outside a build.
pub fn cancelled() -> bool {
    CANCEL.with(|c| {
        c.borrow()
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
    })
}

impl<K, T> Worker<K, T>
where
    K: Copy + Eq + Hash + std::fmt::Debug + Send + 'static,
    T: Send + 'static,
{
    /// Start the worker on `store` with the default pacing. `wake` is called (on the
    /// worker thread) after each result is ready, e.g. to post an event on the app's
    /// channel so the main loop wakes and calls [`try_recv`](Worker::try_recv).
    pub fn spawn(store: SharedStore, wake: impl Fn() + Send + 'static) -> std::io::Result<Self> {
        Worker::spawn_with(store, Pacing::default(), wake)
    }

    /// [`spawn`](Worker::spawn) with explicit pacing (tests, benchmarks).
    pub fn spawn_with(
        store: SharedStore,
        pacing: Pacing,
        wake: impl Fn() + Send + 'static,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let (rtx, results) = mpsc::channel();
        let running: Running<K> = Arc::default();
        let shared = running.clone();
        let thread = thread::Builder::new()
            .name("tui-views".into())
            .spawn(move || serve(store, pacing, rx, rtx, &shared, wake))?;
        Ok(Worker {
            tx: Some(tx),
            results,
            seq: 0,
            spec: HashMap::new(),
            failures: 0,
            thread: Some(thread),
            running,
        })
    }

    /// Ask for `job` to be built for `key`; it replaces any request of `key` not yet
    /// started. Returns the request's sequence number. Never blocks.
    pub fn request(&mut self, key: K, urgency: Urgency, job: Job<T>) -> u64 {
        self.seq += 1;
        let seq = self.seq;
        if urgency == Urgency::Spec {
            self.spec.insert(key, seq);
            self.cut_short(key);
        }
        if let Some(tx) = &self.tx {
            // A worker that died (it cannot: jobs run under catch_unwind) yields nothing.
            let _ = tx.send(Msg::Request {
                key,
                urgency,
                seq,
                job,
            });
        }
        seq
    }

    /// Builds from now on run at a lower priority than the main thread (`BUILDER_NICE`).
    /// Until then they run at its priority: the first rows of a dump, which the admin is
    /// waiting for, are built while the dump keeps both cores busy, and at nice 10 that
    /// small build waited behind the dump's threads for up to ~35 ms. Once they show,
    /// keys come first (`App` calls this then, or when the first dump ends).
    pub fn yield_to_keys(&mut self) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Msg::YieldToKeys);
        }
    }

    /// `key`'s spec changes now, before its next request is made: results of requests made
    /// so far describe the old spec and are never handed out. (A spec request does this
    /// itself; this closes the gap between a settings change and that request, in which a
    /// build in flight could otherwise still be swapped in.)
    pub fn supersede(&mut self, key: K) {
        self.spec.insert(key, self.seq + 1);
        self.cut_short(key);
    }

    /// Tell a running build of `key` that its result is stale (see [`cancelled`]).
    fn cut_short(&self, key: K) {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((k, flag)) = running.as_ref() {
            if *k == key {
                flag.store(true, Ordering::Relaxed);
            }
        }
    }

    /// The next finished build that is not stale, without waiting.
    pub fn try_recv(&mut self) -> Option<Built<K, T>> {
        loop {
            match self.results.try_recv() {
                Ok(r) => {
                    if let Some(b) = self.fresh(r) {
                        return Some(b);
                    }
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return None,
            }
        }
    }

    /// Like [`try_recv`](Worker::try_recv), waiting up to `timeout` (tests, benchmarks;
    /// the dashboard's main loop never waits for a build).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Option<Built<K, T>> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.results.recv_timeout(left) {
                Ok(r) => {
                    if let Some(b) = self.fresh(r) {
                        return Some(b);
                    }
                }
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Builds that panicked (their result is missing; the next request tries again).
    pub fn failures(&self) -> u64 {
        self.failures
    }

    /// Stop the worker and wait for the build in progress, if any, to end.
    pub fn stop(mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn fresh(&mut self, r: Result<Built<K, T>, K>) -> Option<Built<K, T>> {
        match r {
            Ok(b) if self.spec.get(&b.key).is_none_or(|&s| b.seq >= s) => Some(b),
            Ok(_) => None,
            Err(_) => {
                self.failures += 1;
                None
            }
        }
    }
}

impl<K, T> Drop for Worker<K, T> {
    /// Closing the channel ends the thread after its current build; a drop does not wait.
    fn drop(&mut self) {
        self.tx = None;
    }
}

/// A request waiting for its turn.
struct Pending<T> {
    urgency: Urgency,
    seq: u64,
    job: Job<T>,
}

/// The worker thread: take requests, coalesce them per key, run the one due first.
/// When a request may start: a data build of a key built before waits for the gap its
/// last build's cost earns under the pacing (with the job's own budget, if it has one);
/// anything else starts `now`.
fn due_at(
    pacing: &Pacing,
    urgency: Urgency,
    budget: Option<f64>,
    last: Option<(Instant, Duration)>,
    now: Instant,
) -> Instant {
    match (urgency, last) {
        (Urgency::Data, Some((end, cost))) => {
            let pacing = Pacing {
                budget: budget.unwrap_or(pacing.budget),
                ..*pacing
            };
            end + pacing.gap(cost)
        }
        _ => now,
    }
}

/// Run `f` on a background thread at the builder's low priority (`BUILDER_NICE`), after
/// the chores handed over before it; here, if the thread cannot be started or is gone.
pub fn chore(f: impl FnOnce() + Send + 'static) {
    type Chore = Box<dyn FnOnce() + Send>;
    static CHORES: OnceLock<Option<Mutex<Sender<Chore>>>> = OnceLock::new();
    let chores = CHORES.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Chore>();
        thread::Builder::new()
            .name("tui-chores".into())
            .spawn(move || {
                lower_priority();
                for f in rx {
                    f();
                }
            })
            .ok()
            .map(|_| Mutex::new(tx))
    });
    let f: Chore = Box::new(f);
    let back = match chores {
        Some(tx) => (tx.lock().unwrap_or_else(|e| e.into_inner()).send(f)).err(),
        None => Some(mpsc::SendError(f)),
    };
    if let Some(mpsc::SendError(f)) = back {
        f();
    }
}

/// Drop `value` on the chores thread. A view of a million rows is ~48 MB, and freeing it,
/// which hands its pages back to the kernel, took ~2 ms of the main thread at every swap
/// under churn.
pub fn dispose<T: Send + 'static>(value: T) {
    chore(move || drop(value));
}

/// Nice value of the builder thread once the app asks it to yield to keys
/// (`Worker::yield_to_keys`, when the first rows show). A key must be drawn within a
/// frame while a build runs; on two cores the builder, the engine's decoder and the main
/// thread compete, and at the default weight a woken main thread can wait behind a
/// build's time slice. At nice 10 the scheduler gives the main thread (nice 0) about ten
/// times the builder's share when both want a core, and the builder still has any idle
/// core to itself.
const BUILDER_NICE: libc::c_int = 10;

/// Lower this thread's priority to `BUILDER_NICE` (Linux sets nice per thread). Best
/// effort: without it builds only compete harder, so a refusal is ignored.
fn lower_priority() {
    // SAFETY: gettid has no preconditions; setpriority on our own thread id only reads
    // its arguments.
    unsafe {
        let tid = libc::gettid();
        let _ = libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, BUILDER_NICE);
    }
}

fn serve<K, T>(
    store: SharedStore,
    pacing: Pacing,
    rx: Receiver<Msg<K, T>>,
    tx: Sender<Result<Built<K, T>, K>>,
    running: &Running<K>,
    wake: impl Fn(),
) where
    K: Copy + Eq + Hash + std::fmt::Debug,
{
    let mut pending: HashMap<K, Pending<T>> = HashMap::new();
    // Per key: when its last build ended and what it cost.
    let mut last: HashMap<K, (Instant, Duration)> = HashMap::new();
    let mut open = true;
    while open || !pending.is_empty() {
        let now = Instant::now();
        let due = |key: &K, p: &Pending<T>| -> Instant {
            due_at(
                &pacing,
                p.urgency,
                p.job.budget,
                last.get(key).copied(),
                now,
            )
        };
        let next = choose(&pending, due);
        let wait = match next {
            Some((_, at)) => at.saturating_duration_since(now),
            None => Duration::from_secs(3600),
        };
        if !wait.is_zero() || !open {
            if open {
                match rx.recv_timeout(wait) {
                    Ok(m) => {
                        take(&mut pending, m);
                        continue;
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => {
                        // The app is gone: nobody will read what is pending.
                        return;
                    }
                }
            } else {
                return;
            }
        }
        // Whatever arrived meanwhile replaces what it supersedes before we choose.
        loop {
            match rx.try_recv() {
                Ok(m) => take(&mut pending, m),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    open = false;
                    break;
                }
            }
        }
        let Some((key, at)) = choose(&pending, due) else {
            continue;
        };
        if at > Instant::now() {
            continue;
        }
        let Some(p) = pending.remove(&key) else {
            continue;
        };
        let t0 = Instant::now();
        let started = super::probe::now_ns();
        let flag = Arc::new(AtomicBool::new(false));
        *running.lock().unwrap_or_else(|e| e.into_inner()) = Some((key, flag.clone()));
        CANCEL.with(|c| *c.borrow_mut() = Some(flag));
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let guard = read(&store);
            let generation = guard.generation();
            let lanes = match p.urgency {
                Urgency::Spec => Lanes::spec(),
                Urgency::Data => Lanes::ONE,
            };
            let finish = (p.job.run)(&guard, lanes);
            drop(guard);
            let t1 = Instant::now();
            let value = finish();
            (value, generation, t1)
        }));
        CANCEL.with(|c| *c.borrow_mut() = None);
        *running.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let end = Instant::now();
        last.insert(key, (end, end - t0));
        let sent = match outcome {
            Ok((value, generation, t1)) => {
                super::probe::built(&key, started, t1 - t0, end - t1, generation);
                tx.send(Ok(Built {
                    key,
                    value,
                    generation,
                    seq: p.seq,
                    scan: t1 - t0,
                    finish: end - t1,
                }))
            }
            Err(_) => tx.send(Err(key)),
        };
        if sent.is_err() {
            return;
        }
        wake();
    }
}

/// The request to run next and when it is due: spec requests first, then the data
/// request due soonest (ties: the oldest request).
fn choose<K: Copy, T>(
    pending: &HashMap<K, Pending<T>>,
    due: impl Fn(&K, &Pending<T>) -> Instant,
) -> Option<(K, Instant)> {
    pending
        .iter()
        .map(|(k, p)| (*k, due(k, p), p))
        .min_by_key(|(_, at, p)| (std::cmp::Reverse(p.urgency), *at, p.seq))
        .map(|(k, at, _)| (k, at))
}

/// Queue a request, replacing the pending one of its key. A newer request always carries
/// the newest spec, so it inherits a pending spec request's urgency. (Or lower this
/// thread's priority, when asked to.)
fn take<K: Eq + Hash, T>(pending: &mut HashMap<K, Pending<T>>, m: Msg<K, T>) {
    let (key, urgency, seq, job) = match m {
        Msg::Request {
            key,
            urgency,
            seq,
            job,
        } => (key, urgency, seq, job),
        Msg::YieldToKeys => {
            lower_priority();
            return;
        }
    };
    let urgency = pending
        .get(&key)
        .map_or(urgency, |old| old.urgency.max(urgency));
    pending.insert(key, Pending { urgency, seq, job });
}

/// Sort a view's rows by value, then by `cmp` on their keys, and keep the keys: the
/// finish of a table build, cheaper at a million rows than sorting `(value, key)` pairs.
///
/// A comparison sort of 48-byte keys spends its time moving them and comparing tuples
/// byte by byte. This sorts 16-byte `(word, row)` pairs instead: `word` holds the value in
/// as few high bits as the largest value needs and the first word of `prefix(key)` in the
/// rest (64 bits that order like the key's first bytes, e.g. the source address); then
/// only runs of equal words are sorted by the full `(value, key)`, and the keys are
/// gathered in one pass. Where no value needs a bit (a sort by the key alone), a long run
/// of one first word is radix-sorted by the second word of `prefix(key)` first (the next
/// 64 bits, e.g. the rest of an IPv6 source).
/// The pairs are radix-sorted on the bytes of `word` that differ between rows (an IPv4
/// prefix leaves four bytes constant: at most four passes, not eight); with the runs
/// found by walking, the finish of a million-flow view sorted by connection took 117 ms
/// instead of 181 (`examples/view_build`).
///
/// `prefix` must agree with `cmp`: `prefix(a) < prefix(b)` (as `[u64; 2]`, the first word
/// first) implies `a` sorts before `b`.
pub fn sort_rows<K: Copy + Send + Sync + 'static>(
    rows: Vec<(u64, K)>,
    prefix: impl Fn(&K) -> [u64; 2] + Sync,
    cmp: impl Fn(&K, &K) -> std::cmp::Ordering + Sync,
) -> Vec<K> {
    sort_parts(vec![rows], prefix, cmp)
}

/// `sort_rows` of the rows of every part together: a scan split over two threads
/// (`Lanes`) hands over two parts, and each is sorted on its own thread, then the two
/// sorted halves are merged on two threads (each makes one half of the output, split
/// where the merged order crosses its middle). Parts beyond two are joined to the second.
pub fn sort_parts<K: Copy + Send + Sync + 'static>(
    mut parts: Vec<Vec<(u64, K)>>,
    prefix: impl Fn(&K) -> [u64; 2] + Sync,
    cmp: impl Fn(&K, &K) -> std::cmp::Ordering + Sync,
) -> Vec<K> {
    while parts.len() > 2 {
        let last = parts.pop().unwrap_or_default();
        if let Some(p) = parts.last_mut() {
            p.extend(last);
        }
    }
    let max = parts
        .iter()
        .flat_map(|p| p.iter().map(|(v, _)| *v))
        .max()
        .unwrap_or(0);
    let bits = 64 - max.leading_zeros();
    let word = |(v, k): &(u64, K)| match bits {
        0 => prefix(k)[0],
        64 => *v,
        b => v << (64 - b) | prefix(k)[0] >> b,
    };
    // Ties of a word that is the key's first word alone go on by its second.
    let second = |k: &K| prefix(k)[1];
    let next = (bits == 0).then_some(&second as &(dyn Fn(&K) -> u64 + Sync));
    let full = |x: &(u64, K), y: &(u64, K)| x.0.cmp(&y.0).then_with(|| cmp(&x.1, &y.1));
    let b = parts.pop().unwrap_or_default();
    let Some(a) = parts.pop() else {
        let order = sort_part(&b, word, next, full);
        let mut out = scratch::take(order.len());
        out.extend(order.iter().map(|&(_, i)| b[i as usize].1));
        return scratch::fit(out);
    };
    let (oa, ob) = thread::scope(|s| {
        let ob = s.spawn(|| sort_part(&b, word, next, full));
        let oa = sort_part(&a, word, next, full);
        (
            oa,
            ob.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
        )
    });
    // Does a's element `x` go before (or beside) b's `y`?
    let first = |x: &(u64, u32), y: &(u64, u32)| {
        x.0.cmp(&y.0)
            .then_with(|| full(&a[x.1 as usize], &b[y.1 as usize]))
            .is_le()
    };
    // Merge path: how many of a's elements are among the first `half` of the merged
    // order (the rest come from b).
    let half = (oa.len() + ob.len()) / 2;
    let (mut lo, mut hi) = (half.saturating_sub(ob.len()), half.min(oa.len()));
    while lo < hi {
        let mid = (lo + hi) / 2;
        if first(&oa[mid], &ob[half - mid - 1]) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    let (i, j) = (lo, half - lo);
    // Merge into `out`, which holds exactly as many slots as both inputs have items, and
    // say how many were written.
    let merge = |xa: &[(u64, u32)], xb: &[(u64, u32)], out: &mut [MaybeUninit<K>]| {
        let (mut p, mut q) = (0, 0);
        let mut slots = out.iter_mut();
        let mut put = |k: K| slots.next().map(|s| s.write(k)).is_some();
        let mut written = 0;
        while p < xa.len() && q < xb.len() {
            let k = if first(&xa[p], &xb[q]) {
                p += 1;
                a[xa[p - 1].1 as usize].1
            } else {
                q += 1;
                b[xb[q - 1].1 as usize].1
            };
            written += usize::from(put(k));
        }
        for e in &xa[p..] {
            written += usize::from(put(a[e.1 as usize].1));
        }
        for e in &xb[q..] {
            written += usize::from(put(b[e.1 as usize].1));
        }
        written
    };
    // Both halves are written in place, each by its thread: no copy of the second half
    // after the join (`examples/view_build` on two lanes: 107 -> 80 ms at a million rows).
    let n = oa.len() + ob.len();
    let mut out: Vec<K> = scratch::take(n);
    let (low, high) = out.spare_capacity_mut()[..n].split_at_mut(half);
    let (nl, nh) = (low.len(), high.len());
    let (wl, wh) = thread::scope(|s| {
        let wh = s.spawn(|| merge(&oa[i..], &ob[j..], high));
        let wl = merge(&oa[..i], &ob[..j], low);
        (
            wl,
            wh.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
        )
    });
    assert!(
        wl == nl && wh == nh,
        "the merge filled {wl} + {wh} of {nl} + {nh} slots"
    );
    // SAFETY: the first `n` slots of `out`'s buffer were all written just above (the two
    // halves, each filled whole, as the assert checks), with `K: Copy` values.
    unsafe { out.set_len(n) };
    scratch::fit(out)
}

/// Warm what `sort_parts` takes (`scratch::take`) to sort `rows` rows of keys `K` split
/// over `lanes` parts: per part its pairs and the radix sort's second buffer, and the
/// sorted keys.
pub fn warm_sort<K: Send + 'static>(rows: usize, lanes: Lanes) {
    let part = rows.div_ceil(lanes.get());
    scratch::warm::<(u64, u32)>(2 * lanes.get(), part);
    scratch::warm::<K>(1, rows);
}

/// One part's rows in sorted order, as `(word, row)` pairs: radix-sorted by word, then
/// runs of equal words by `full` (value, then key), a long one by `next` first, where
/// given (the key's second word, when the word is the key's first).
fn sort_part<K>(
    rows: &[(u64, K)],
    word: impl Fn(&(u64, K)) -> u64,
    next: Option<&(dyn Fn(&K) -> u64 + Sync)>,
    full: impl Fn(&(u64, K), &(u64, K)) -> std::cmp::Ordering,
) -> Vec<(u64, u32)> {
    let mut order: Vec<(u64, u32)> = scratch::take(rows.len());
    order.extend(rows.iter().enumerate().map(|(i, r)| (word(r), i as u32)));
    radix_sort(&mut order);
    let by_rows = |x: u32, y: u32| full(&rows[x as usize], &rows[y as usize]);
    let mut at = 0;
    while let Some(run) = next_run(&order, at) {
        at = run.end;
        let run = &mut order[run];
        match next {
            // A long run of one first word of the key (IPv6 sources of one /64: a tenth of
            // the bench's table, one run): radix-sorted by its second word, it is left
            // with short runs to compare. Compared whole, that one run took about a
            // quarter of a million-flow build.
            Some(next) if run.len() >= RADIX_RUN => {
                let mut by_next: Vec<(u64, u32)> = (run.iter())
                    .map(|&(_, i)| (next(&rows[i as usize].1), i))
                    .collect();
                radix_sort(&mut by_next);
                settle(&mut by_next, by_rows);
                let word = run[0].0;
                for (slot, (_, i)) in run.iter_mut().zip(by_next) {
                    *slot = (word, i);
                }
            }
            _ => run.sort_unstable_by(|x, y| by_rows(x.1, y.1)),
        }
    }
    order
}

/// Runs of one word this long or longer are radix-sorted by the key's next word
/// (`sort_part`); shorter ones are compared whole.
const RADIX_RUN: usize = 1024;

/// The first run of equal words longer than one, from `at` on, in pairs sorted by word.
/// Runs are short (a source address's flows): found by walking, not by binary searches
/// over the rest.
fn next_run(v: &[(u64, u32)], mut at: usize) -> Option<std::ops::Range<usize>> {
    while at < v.len() {
        let word = v[at].0;
        let end = at + v[at..].iter().take_while(|e| e.0 == word).count();
        if end - at > 1 {
            return Some(at..end);
        }
        at = end;
    }
    None
}

/// Sort each run of equal words of `v` (pairs sorted by word) by `cmp` of their rows.
fn settle(v: &mut [(u64, u32)], cmp: impl Fn(u32, u32) -> std::cmp::Ordering) {
    let mut at = 0;
    while let Some(run) = next_run(v, at) {
        at = run.end;
        v[run].sort_unstable_by(|x, y| cmp(x.1, y.1));
    }
}

/// Sort `(word, row)` pairs by word (ties in their current order): a least-significant-
/// digit radix sort, one stable scatter pass per byte of the word that is not the same in
/// every pair, after one pass that counts all eight bytes. Small inputs take a comparison
/// sort.
fn radix_sort(v: &mut Vec<(u64, u32)>) {
    if v.len() < 4096 {
        v.sort_by_key(|e| e.0);
        return;
    }
    let mut counts = vec![[0usize; 256]; 8];
    for e in v.iter() {
        for (byte, count) in counts.iter_mut().enumerate() {
            count[((e.0 >> (byte * 8)) & 0xff) as usize] += 1;
        }
    }
    let mut tmp: Vec<(u64, u32)> = scratch::take(v.len());
    tmp.resize(v.len(), (0, 0));
    for (byte, count) in counts.iter_mut().enumerate() {
        // A byte every word shares has one bucket holding them all: nothing to move.
        if count.contains(&v.len()) {
            continue;
        }
        let mut at = 0;
        for c in count.iter_mut() {
            let n = *c;
            *c = at;
            at += n;
        }
        let shift = byte * 8;
        for e in v.iter() {
            let b = ((e.0 >> shift) & 0xff) as usize;
            tmp[count[b]] = *e;
            count[b] += 1;
        }
        std::mem::swap(v, &mut tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::Filter;
    use crate::model::store::FlowKey;
    use crate::model::tuple::proto;
    use crate::model::{Event, Record};
    use crate::model::{Family, Flow, Tuple};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// A job's own budget paces its data builds instead of the worker's; spec builds
    /// and first builds start at once.
    #[test]
    fn a_job_budget_paces_its_key() {
        let p = Pacing::default();
        let (t0, cost) = (Instant::now(), Duration::from_millis(20));
        let at = |u, b| due_at(&p, u, b, Some((t0, cost)), t0);
        // 5%: 19 x 20 ms = 380 ms.
        assert_eq!(at(Urgency::Data, None), t0 + Duration::from_millis(380));
        // 3%: about 32 x 20 ms.
        let slow = at(Urgency::Data, Some(0.03)) - t0;
        assert!(slow > Duration::from_millis(600) && slow < Duration::from_millis(700));
        assert_eq!(at(Urgency::Spec, Some(0.03)), t0);
        assert_eq!(due_at(&p, Urgency::Data, Some(0.03), None, t0), t0);
    }

    const WAIT: Duration = Duration::from_secs(10);

    /// No pacing: every data request is due at once (the property test's stream is about
    /// ordering and staleness, not about time).
    const UNPACED: Pacing = Pacing {
        budget: 1.0,
        min_gap: Duration::ZERO,
        max_lag: Duration::from_secs(1),
    };

    #[test]
    fn pacing_keeps_the_budget_and_never_trails_by_more_than_a_second() {
        let p = Pacing::default();
        let ms = Duration::from_millis;
        // A 20k-flow build (~2 ms): the floor, well under the budget.
        assert_eq!(p.gap(ms(2)), ms(250));
        // 25 ms (a refined million-flow view): 5% of a core means 475 ms between builds.
        assert_eq!(p.gap(ms(25)), ms(475));
        // 150 ms: the budget asks 2850 ms, the lag allows 1000 - 300.
        assert_eq!(p.gap(ms(150)), ms(700));
        for cost in (0..=450).step_by(10).map(ms) {
            let g = p.gap(cost);
            assert!(g + cost * 2 <= p.max_lag, "{cost:?}: {g:?}");
            // Budget and lag agree while cost * (1/budget + 1) fits in the lag; past that
            // the lag wins (module docs).
            if cost.as_secs_f64() * (1.0 / p.budget + 1.0) <= p.max_lag.as_secs_f64() {
                let share = cost.as_secs_f64() / (cost + g).as_secs_f64();
                assert!(share <= p.budget + 1e-9, "{cost:?}: {share}");
            }
        }
    }

    #[test]
    fn the_writer_queues_while_a_build_reads_and_applies_in_order_after() {
        let mut w = StoreWriter::new(Store::new());
        let shared = w.shared();
        let guard = shared.read().unwrap();
        let seen = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        for i in 0..3 {
            let seen = seen.clone();
            assert!(!w.update(move |s| {
                s.apply(Event::New, Record::Flow(flow(i, 1)), 0);
                seen.borrow_mut().push(i);
            }));
        }
        // The writer does not wait and readers still share the store.
        assert_eq!(w.pending(), 3);
        assert_eq!(w.read().flow_count(), 0);
        assert!(!w.flush());
        drop(guard);
        assert!(w.flush());
        assert_eq!(*seen.borrow(), [0, 1, 2]);
        assert_eq!((w.pending(), w.read().flow_count()), (0, 3));
    }

    /// A job that waits for `gate` to open before scanning, and counts its runs.
    fn gated(gate: &Arc<Mutex<()>>, runs: &Arc<AtomicUsize>, tag: u32) -> Job<u32> {
        let (gate, runs) = (gate.clone(), runs.clone());
        Job::new(
            move |_: &Store| {
                drop(gate.lock().unwrap());
                runs.fetch_add(1, Ordering::SeqCst);
                tag
            },
            |t| t,
        )
    }

    #[test]
    fn requests_coalesce_and_an_old_spec_is_never_handed_out() {
        let w = StoreWriter::new(Store::new());
        let wakes = Arc::new(AtomicUsize::new(0));
        let wk = wakes.clone();
        let mut worker: Worker<u8, u32> = Worker::spawn_with(w.shared(), UNPACED, move || {
            wk.fetch_add(1, Ordering::SeqCst);
        })
        .unwrap();
        let gate = Arc::new(Mutex::new(()));
        let runs = Arc::new(AtomicUsize::new(0));
        let closed = gate.lock().unwrap();
        // The first build starts and blocks on the gate; while it runs, a new spec and
        // then three data requests arrive: only the newest of them runs.
        worker.request(0, Urgency::Spec, gated(&gate, &runs, 1));
        thread::sleep(Duration::from_millis(50));
        worker.request(0, Urgency::Spec, gated(&gate, &runs, 2));
        for tag in 3..=5 {
            worker.request(0, Urgency::Data, gated(&gate, &runs, tag));
        }
        drop(closed);
        let b = worker.recv_timeout(WAIT).expect("a build");
        // Build 1 (the old spec) was dropped; 5 carries the new spec and came next.
        assert_eq!((b.key, b.value), (0, 5));
        assert!(worker.recv_timeout(Duration::from_millis(100)).is_none());
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(wakes.load(Ordering::SeqCst), 2);
        worker.stop();
    }

    #[test]
    fn data_rebuilds_wait_for_their_gap_and_a_spec_change_does_not() {
        let w = StoreWriter::new(Store::new());
        let pacing = Pacing {
            min_gap: Duration::from_millis(300),
            ..Pacing::default()
        };
        let mut worker: Worker<u8, Instant> =
            Worker::spawn_with(w.shared(), pacing, || {}).unwrap();
        let job = || Job::new(|_: &Store| (), |()| Instant::now());
        worker.request(1, Urgency::Data, job());
        let first = worker.recv_timeout(WAIT).unwrap().value;
        worker.request(1, Urgency::Data, job());
        let second = worker.recv_timeout(WAIT).unwrap().value;
        assert!(second - first >= Duration::from_millis(300));
        // Another key has its own pace; a spec change of a paced key goes at once.
        let t = Instant::now();
        worker.request(2, Urgency::Data, job());
        worker.recv_timeout(WAIT).unwrap();
        worker.request(1, Urgency::Spec, job());
        worker.recv_timeout(WAIT).unwrap();
        assert!(
            t.elapsed() < Duration::from_millis(250),
            "{:?}",
            t.elapsed()
        );
        worker.stop();
    }

    #[test]
    fn a_panicking_build_is_counted_and_the_worker_goes_on() {
        let w = StoreWriter::new(Store::new());
        let mut worker: Worker<u8, u8> = Worker::spawn_with(w.shared(), UNPACED, || {}).unwrap();
        worker.request(
            0,
            Urgency::Spec,
            Job::new(|_: &Store| (), |()| panic!("bad")),
        );
        worker.request(
            1,
            Urgency::Spec,
            Job::new(|s: &Store| s.flow_count(), |n| n as u8),
        );
        let b = worker.recv_timeout(WAIT).expect("the second build");
        assert_eq!((b.key, b.value), (1, 0));
        assert_eq!(worker.failures(), 1);
        worker.stop();
    }

    /// What is disposed of is dropped, on another thread.
    #[test]
    fn disposed_values_are_dropped_elsewhere() {
        let value = Arc::new(vec![0u8; 1 << 20]);
        let weak = Arc::downgrade(&value);
        dispose(value);
        let end = Instant::now() + WAIT;
        while weak.upgrade().is_some() {
            assert!(Instant::now() < end, "never dropped");
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Builds run at the app's priority until it asks them to yield to keys, then
    /// `BUILDER_NICE` lower (the first rows of a dump are built at full priority).
    #[test]
    fn builds_yield_to_keys_once_asked() {
        // On Linux getpriority(PRIO_PROCESS, 0) is the calling thread's nice.
        // SAFETY: getpriority only reads its arguments.
        let nice = || unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let base = nice();
        let w = StoreWriter::new(Store::new());
        let mut worker: Worker<u8, i32> = Worker::spawn_with(w.shared(), UNPACED, || {}).unwrap();
        let built_at = |worker: &mut Worker<u8, i32>| {
            worker.request(0, Urgency::Spec, Job::new(move |_: &Store| nice(), |n| n));
            worker.recv_timeout(WAIT).expect("a build").value
        };
        assert_eq!(
            built_at(&mut worker),
            base,
            "the first builds: the app's priority"
        );
        worker.yield_to_keys();
        assert_eq!(built_at(&mut worker), (base + BUILDER_NICE).min(19));
        worker.stop();
    }

    /// A build asked for before its key's spec changed is never handed out, even when it
    /// finishes before the new spec's request is made.
    #[test]
    fn a_build_asked_for_before_a_spec_change_is_dropped() {
        let writer = StoreWriter::new(Store::new());
        let mut w: Worker<u8, u8> = Worker::spawn(writer.shared(), || {}).expect("spawn");
        w.request(1, Urgency::Data, Job::new(|_: &Store| (), |_| 7));
        w.supersede(1);
        assert!(w.recv_timeout(Duration::from_millis(500)).is_none());
        w.request(1, Urgency::Spec, Job::new(|_: &Store| (), |_| 8));
        let b = w
            .recv_timeout(Duration::from_secs(10))
            .expect("the new spec's build");
        assert_eq!(b.value, 8);
    }

    /// A spec request of the key being built tells that build it is stale: a pass that
    /// asks stops, and the worker turns to the new request instead of finishing a view
    /// that would be dropped. Another key's spec request does not stop it.
    #[test]
    fn a_spec_change_cuts_short_the_running_build_of_its_key() {
        let writer = StoreWriter::new(Store::new());
        let mut w: Worker<u8, (bool, Duration)> =
            Worker::spawn(writer.shared(), || {}).expect("spawn");
        assert!(!cancelled(), "outside a build");
        // Spins until told it is stale, or for 5 s.
        let spin = |started: Arc<AtomicBool>, ended: Arc<AtomicBool>| {
            Job::new(
                move |_: &Store| {
                    started.store(true, Ordering::Relaxed);
                    let t0 = Instant::now();
                    while !cancelled() && t0.elapsed() < Duration::from_secs(5) {
                        thread::yield_now();
                    }
                    ended.store(true, Ordering::Relaxed);
                    (cancelled(), t0.elapsed())
                },
                |r| r,
            )
        };
        let wait = |flag: &AtomicBool| {
            let t0 = Instant::now();
            while !flag.load(Ordering::Relaxed) {
                assert!(
                    t0.elapsed() < Duration::from_secs(10),
                    "the build did not start"
                );
                thread::yield_now();
            }
        };
        let (started, ended) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        w.request(1, Urgency::Data, spin(started.clone(), ended.clone()));
        wait(&started);
        // Another key's spec request leaves it running.
        w.request(
            2,
            Urgency::Spec,
            Job::new(|_: &Store| (), |_| (false, Duration::ZERO)),
        );
        thread::sleep(Duration::from_millis(50));
        assert!(
            !ended.load(Ordering::Relaxed),
            "another key's spec stopped it"
        );
        let t0 = Instant::now();
        w.request(
            1,
            Urgency::Spec,
            Job::new(|_: &Store| (), |_| (false, Duration::ZERO)),
        );
        // The stale build is dropped; key 2's and the new key 1's come.
        let mut got = Vec::new();
        while got.len() < 2 {
            let b = w
                .recv_timeout(Duration::from_secs(10))
                .expect("the two spec builds");
            got.push(b.key);
        }
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "the stale build ran on: {:?}",
            t0.elapsed()
        );
    }

    /// The radix sort is a stable sort by word, whichever bytes vary (it skips the rest).
    #[test]
    fn radix_sort_is_a_stable_sort_by_word() {
        let mut rng = Rng(11);
        for mask in [
            u64::MAX,
            0xff,
            0xff00_0000_00ff_0000,
            0x0000_ffff_0000_0000,
            0,
        ] {
            for n in [5_000usize, 70_000] {
                // Few distinct words: ties, whose order must stay that of the input.
                let mut v: Vec<(u64, u32)> = (0..n)
                    .map(|i| (rng.next() & mask & !(0x0f0f_0f0f_0f0f_0f0f_u64), i as u32))
                    .collect();
                let mut plain = v.clone();
                plain.sort_by_key(|e| e.0);
                radix_sort(&mut v);
                assert!(v == plain, "mask {mask:#x}, {n} pairs");
            }
        }
    }

    #[test]
    fn sort_rows_and_parts_are_the_order_of_a_plain_sort_by_value_then_key() {
        let mut rng = Rng(7);
        // 20,000 rows take the radix sort (from 4,096), the others the comparison sort.
        for n in [0usize, 1, 2, 50, 3000, 20_000] {
            for spread in [1u64, 40, 1 << 40, u64::MAX] {
                let rows: Vec<(u64, FlowKey)> = (0..n)
                    .map(|_| {
                        let mut f = flow(rng.below(400) as u32, 0);
                        match rng.below(4) {
                            // IPv6 beside IPv4: prefixes of mixed families.
                            0 => {
                                f.orig.family = Family::Ipv6;
                                f.orig.src[..8].copy_from_slice(&rng.next().to_be_bytes());
                            }
                            // Sources of one /64: a run of one first word, past
                            // `RADIX_RUN` at 20,000 rows, and ties in the second word.
                            1 => {
                                f.orig.family = Family::Ipv6;
                                f.orig.src[..8].copy_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 1]);
                                let low = rng.below(50).to_be_bytes();
                                f.orig.src[8..].copy_from_slice(&low);
                            }
                            _ => {}
                        }
                        f.zone = rng.below(3) as u16;
                        let v = if spread == u64::MAX {
                            rng.next()
                        } else {
                            rng.below(spread)
                        };
                        (v, FlowKey::of(&f))
                    })
                    .collect();
                let by = |a: &FlowKey, b: &FlowKey| (a.orig, a.zone).cmp(&(b.orig, b.zone));
                let mut plain = rows.clone();
                plain.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| by(&a.1, &b.1)));
                let plain: Vec<FlowKey> = plain.into_iter().map(|(_, k)| k).collect();
                let prefix = crate::tui::screens::flows::src_prefix;
                // The same rows in two parts, cut anywhere (either may be empty), and in
                // three (the third joins the second).
                let cut = rng.below(n as u64 + 1) as usize;
                let two = vec![rows[..cut].to_vec(), rows[cut..].to_vec()];
                let cut2 = cut + rng.below((n - cut) as u64 + 1) as usize;
                let three = vec![
                    rows[..cut].to_vec(),
                    rows[cut..cut2].to_vec(),
                    rows[cut2..].to_vec(),
                ];
                assert_eq!(
                    sort_parts(two, prefix, by),
                    plain,
                    "{n} rows in two at {cut}"
                );
                assert_eq!(sort_parts(three, prefix, by), plain, "{n} rows in three");
                assert_eq!(
                    sort_rows(rows, prefix, by),
                    plain,
                    "{n} rows, spread {spread}"
                );
            }
        }
    }

    // ---- the property: the worker's view equals a from-scratch filter and sort ----------

    /// A small xorshift generator: seeded, so a failure names its case.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// Flow `i` of a small key space (so updates and destroys hit live entries), built as
    /// the decoder builds a dumped or NEW entry.
    fn flow(i: u32, gen: u32) -> Flow {
        let mut t = Tuple {
            family: Family::Ipv4,
            proto: [proto::TCP, proto::UDP, proto::ICMP][i as usize % 3],
            sport: 1024 + (i % 7) as u16,
            dport: [22, 53, 80, 443][i as usize % 4],
            ..Tuple::default()
        };
        t.src[..4].copy_from_slice(&[10, 0, (i >> 8) as u8, i as u8]);
        t.dst[..4].copy_from_slice(&[192, 0, 2, (i % 5) as u8]);
        let mut f = Flow::new(t);
        f.id = i + 1;
        f.timeout = 30 + gen % 300;
        f.mark = gen % 4;
        f.status = crate::model::flow::status::CONFIRMED | (gen % 2) << 2;
        f
    }

    /// The spec a screen would hold: a filter, a sort column and a direction.
    #[derive(Clone)]
    struct Spec {
        filter: Arc<Filter>,
        col: u8,
        desc: bool,
    }

    fn sort_val(col: u8, f: &Flow) -> u64 {
        match col {
            0 => u64::from(f.orig.proto),
            1 => u64::from(f.timeout),
            2 => u64::from(f.mark),
            3 => u64::from(f.status),
            _ => 0, // by connection only
        }
    }

    /// The build a flows screen runs: scan (filter, copy out sort value and key) under
    /// the lock, sort without it (`sort_rows`); ties by original tuple and zone, so the order is total.
    /// `slow` holds the lock a little longer, so the writer meets a busy store and queues.
    fn job(spec: &Spec, slow: bool) -> Job<Vec<FlowKey>> {
        let s = spec.clone();
        let desc = s.desc;
        Job::new(
            move |store: &Store| -> Vec<(u64, FlowKey)> {
                if slow {
                    thread::sleep(Duration::from_micros(500));
                }
                store
                    .flows()
                    .filter(|f| s.filter.match_flow(f, 0))
                    .map(|f| (sort_val(s.col, f), FlowKey::of(f)))
                    .collect()
            },
            move |pairs| {
                let mut keys = sort_rows(pairs, crate::tui::screens::flows::src_prefix, |a, b| {
                    (a.orig, a.zone).cmp(&(b.orig, b.zone))
                });
                if desc {
                    keys.reverse();
                }
                keys
            },
        )
    }

    /// The same view computed from scratch, the obvious way, on a store.
    fn oracle(store: &Store, spec: &Spec) -> Vec<FlowKey> {
        let mut flows: Vec<&Flow> = store
            .flows()
            .filter(|f| spec.filter.match_flow(f, 0))
            .collect();
        flows.sort_by_key(|f| (sort_val(spec.col, f), f.orig, f.zone));
        if spec.desc {
            flows.reverse();
        }
        flows.into_iter().map(FlowKey::of).collect()
    }

    const FILTERS: [&str; 5] = [
        "",
        "proto=tcp",
        "not proto=udp",
        "dport=80 or dport=443",
        "mark=2",
    ];

    fn spec(rng: &mut Rng) -> Spec {
        Spec {
            filter: Arc::new(Filter::parse(FILTERS[rng.below(5) as usize]).expect("filter")),
            col: rng.below(5) as u8,
            desc: rng.below(2) == 1,
        }
    }

    #[test]
    fn a_worker_view_equals_a_from_scratch_filter_and_sort() {
        // Batches that met a build holding the store, over all cases: the queue was used.
        let mut queued = 0u32;
        for case in 0..48u64 {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (case + 1).wrapping_mul(0x2545_f491));
            let mut writer = StoreWriter::new(Store::new());
            // The same stream applied directly: the writer's queue must lose nothing.
            let mut reference = Store::new();
            let mut worker: Worker<u8, Vec<FlowKey>> =
                Worker::spawn_with(writer.shared(), UNPACED, || {}).unwrap();
            let mut cur = spec(&mut rng);
            let mut spec_seq = worker.request(0, Urgency::Spec, job(&cur, false));
            let mut shown: Option<Built<u8, Vec<FlowKey>>> = None;
            let steps = 50 + rng.below(300);
            for step in 0..steps {
                match rng.below(10) {
                    // A batch of kernel records, applied or queued behind a build.
                    0..=5 => {
                        let n = 1 + rng.below(20);
                        let batch: Vec<(Event, Record)> = (0..n)
                            .map(|_| {
                                let i = rng.below(120) as u32;
                                let ev = [Event::New, Event::Update, Event::Destroy, Event::Dump]
                                    [rng.below(4) as usize];
                                (ev, Record::Flow(flow(i, rng.below(1000) as u32)))
                            })
                            .collect();
                        let now = step as u32;
                        for (ev, r) in &batch {
                            reference.apply(*ev, r.clone(), now);
                        }
                        let applied = writer.update(move |s| {
                            for (ev, r) in batch {
                                s.apply(ev, r, now);
                            }
                        });
                        queued += u32::from(!applied);
                        worker.request(0, Urgency::Data, job(&cur, rng.below(3) == 0));
                    }
                    6 => {
                        cur = spec(&mut rng);
                        spec_seq = worker.request(0, Urgency::Spec, job(&cur, false));
                    }
                    7 => {
                        writer.flush();
                    }
                    _ => {
                        while let Some(b) = worker.try_recv() {
                            assert!(b.seq >= spec_seq, "case {case}: a stale spec was shown");
                            if let Some(old) = &shown {
                                assert!(b.generation >= old.generation, "case {case}");
                            }
                            shown = Some(b);
                        }
                    }
                }
            }
            // The main loop goes on flushing; once the store is current, the view catches up.
            while !writer.flush() {
                thread::yield_now();
            }
            let last = worker.request(0, Urgency::Data, job(&cur, false));
            let generation = writer.read().generation();
            loop {
                let b = worker.recv_timeout(WAIT).expect("the final build");
                assert!(b.seq >= spec_seq, "case {case}: a stale spec was shown");
                if b.seq == last {
                    assert_eq!(b.generation, generation, "case {case}");
                    shown = Some(b);
                    break;
                }
            }
            let view = shown.expect("a view").value;
            assert_eq!(view, oracle(&reference, &cur), "case {case}");
            assert_eq!(view, oracle(&writer.read(), &cur), "case {case}");
            worker.stop();
        }
        assert!(
            queued > 0,
            "no batch ever waited for a build: the queue went untested"
        );
    }
}
