//! What the dashboard builds off the main thread, and when: the current screen's rows,
//! the header's `Summary`, the risk assessments and the tick's list of expired flows (a
//! pass over every flow), each a job of the view builder
//! (`worker`) under its own key. Owns the bookkeeping of requests (what was asked for,
//! for which store generation, whether a spec change is still to be sent, what is still
//! out); the app decides what is stale and swaps the results in.
//!
//! ```text
//!  App::prepare ── Views::ask(key, built, gen, follow, job) ──► Worker (one thread)
//!      ▲            Spec: first ask after `stale(key)` (sort, filter, screen, dump end)
//!      │            Data: the store moved past what was last asked (paced by the worker)
//!      └── AppEvent::Built (wake) ── Views::try_recv ◄── Built { key, value, generation }
//! ```
//!
//! Why the summary and the risk cache are worker jobs too, not incremental: both are a
//! pass over every flow (the summary counts RELATED flows, helpers and distinct masters;
//! risk assesses every RELATED flow, whose verdict depends on expectations and sockets
//! that change without the flow changing), so an incremental form would need the store to
//! report every change to them, and a risk verdict cannot be patched locally. As jobs they
//! share the scan-under-read-lock discipline and the pacing of the rows, and the main
//! thread only swaps a finished value in.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::model::store::FlowKey;
use crate::model::{HelperId, Store};

use super::app::Summary;
use super::risk::{Assess, RiskCache};
use super::screens::{BuiltRows, Facts};
use super::worker::{self, Job, Pacing, SharedStore, Urgency, Worker};

/// What is built off the main thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ViewKey {
    /// The rows of the screen at this index of `screens::all()`.
    Screen(usize),
    /// The header's numbers.
    Summary,
    /// The risk cache (badges, findings).
    Risk,
    /// Flows whose timeout passed without a DESTROY, for the engine to re-check (once a
    /// tick: a pass over every flow).
    Expired,
}

/// A finished build.
pub enum Built {
    Rows(BuiltRows),
    Summary(Summary),
    Risk(RiskCache),
    /// Flows whose timeout ran out, and when the next of the others does (`Store::expiry`).
    Expired((Vec<FlowKey>, Option<u32>)),
}

/// The last request of a key.
#[derive(Debug, Clone, Copy, Default)]
struct Asked {
    /// The current spec was requested (cleared by `stale`).
    spec: bool,
    /// The store generation current when it was last requested; `None`: ask again.
    gen: Option<u64>,
}

/// Called on the worker thread after each build: posts the app's wake-up event.
type Wake = Box<dyn Fn() + Send + Sync>;

/// The view builder as the app uses it.
pub struct Views {
    worker: Worker<ViewKey, Built>,
    asked: HashMap<ViewKey, Asked>,
    /// Keys with a request whose result has not come back: the newest request's sequence.
    out: HashMap<ViewKey, u64>,
    wake: Arc<OnceLock<Wake>>,
    /// `yield_to_keys` was sent.
    polite: bool,
}

impl Views {
    /// Start the builder on `store`.
    pub fn spawn(store: SharedStore, pacing: Pacing) -> std::io::Result<Views> {
        let wake: Arc<OnceLock<Wake>> = Arc::default();
        let w = Arc::clone(&wake);
        let worker = Worker::spawn_with(store, pacing, move || {
            if let Some(f) = w.get() {
                f();
            }
        })?;
        Ok(Views {
            worker,
            asked: HashMap::new(),
            out: HashMap::new(),
            wake,
            polite: false,
        })
    }

    /// Call `f` (on the worker thread) whenever a build is ready; set once (`run` sends
    /// `AppEvent::Built` on the app's channel). Without it results wait for the next frame.
    pub fn on_wake(&self, f: impl Fn() + Send + Sync + 'static) {
        let _ = self.wake.set(Box::new(f));
    }

    /// Ask for `key` if it needs a build: a spec request when its settings changed since
    /// the last one (`stale`), else a data request when `follow` and the store moved to
    /// `gen` since the last request. `job` is made only when a request is sent.
    pub fn ask(&mut self, key: ViewKey, gen: u64, follow: bool, job: impl FnOnce() -> Job<Built>) {
        let a = self.asked.entry(key).or_default();
        let urgency = if !a.spec {
            Urgency::Spec
        } else if follow && a.gen != Some(gen) {
            Urgency::Data
        } else {
            return;
        };
        *a = Asked {
            spec: true,
            gen: Some(gen),
        };
        let seq = self.worker.request(key, urgency, job());
        self.out.insert(key, seq);
    }

    /// `key`'s settings changed: its next `ask` is a spec request, built at once, and no
    /// result requested before it is handed out.
    pub fn stale(&mut self, key: ViewKey) {
        self.asked.remove(&key);
    }

    /// `key`'s settings changed (sort, filter): what was asked for before describes the
    /// old settings and is never handed out, even if it is already built; the next `ask`
    /// is a spec request.
    pub fn respec(&mut self, key: ViewKey) {
        self.asked.remove(&key);
        self.worker.supersede(key);
    }

    /// `key` should be rebuilt from the same store generation (what it reads besides the
    /// store changed, e.g. the risk cache a Risk sort uses): its next `ask` with `follow`
    /// is a data request.
    pub fn again(&mut self, key: ViewKey) {
        if let Some(a) = self.asked.get_mut(&key) {
            a.gen = None;
        }
    }

    /// The next finished build, without waiting.
    pub fn try_recv(&mut self) -> Option<worker::Built<ViewKey, Built>> {
        let b = self.worker.try_recv()?;
        self.received(&b);
        Some(b)
    }

    /// Like `try_recv`, waiting up to `timeout` (`App::settle`: tests and benchmarks).
    pub fn recv_timeout(
        &mut self,
        timeout: std::time::Duration,
    ) -> Option<worker::Built<ViewKey, Built>> {
        let b = self.worker.recv_timeout(timeout)?;
        self.received(&b);
        Some(b)
    }

    fn received(&mut self, b: &worker::Built<ViewKey, Built>) {
        if self.out.get(&b.key).is_some_and(|&seq| b.seq >= seq) {
            self.out.remove(&b.key);
        }
    }

    /// Builds from now on yield to the main thread (`Worker::yield_to_keys`); once is
    /// enough, later calls do nothing.
    pub fn yield_to_keys(&mut self) {
        if !self.polite {
            self.polite = true;
            self.worker.yield_to_keys();
        }
    }

    /// Whether a request of `key` has not come back yet.
    pub fn pending(&self, key: ViewKey) -> bool {
        self.out.contains_key(&key)
    }

    /// Whether every request sent has come back.
    pub fn idle(&self) -> bool {
        self.out.is_empty()
    }

    /// Builds that panicked (each leaves its key's result missing until the next request).
    pub fn failures(&self) -> u64 {
        self.worker.failures()
    }
}

/// The flows whose timeout passed by store second `now`, as a job.
pub fn expired_job(now: u32) -> Job<Built> {
    Job::new(move |store: &Store| store.expiry(now), Built::Expired)
}

/// The header's numbers, as a job: one pass over flows and expectations under the lock.
pub fn summary_job(facts: Facts, now: u32) -> Job<Built> {
    Job::new(
        move |store: &Store| summarize(store, facts, now),
        Built::Summary,
    )
    .budget(SUMMARY_BUDGET)
}

/// Share of a core the header's data-driven rebuilds may take. A line of counts is read
/// at a glance, not followed row by row: at 1% a 7 ms summary (a million flows) is
/// rebuilt about every 0.7 s, inside the 1 s lag, where the screens' 5% rebuilt it four
/// times a second for ~3% of a core under churn.
const SUMMARY_BUDGET: f64 = 0.01;

/// The risk cache of the store's generation, as a job. The assessor re-reads the sockets
/// it snapshots first (a new FTP session's data listener must be seen to tell the
/// announcer's own socket from another service).
pub fn risk_job(assessor: Arc<Mutex<Box<dyn Assess>>>) -> Job<Built> {
    Job::new(
        move |store: &Store| {
            let mut a = assessor.lock().unwrap_or_else(|e| e.into_inner());
            a.refresh();
            let mut risk = RiskCache::default();
            risk.rebuild(store, Some(&**a), store.generation());
            risk
        },
        Built::Risk,
    )
    .budget(RISK_BUDGET)
}

/// Share of a core the risk verdicts' data-driven rebuilds may take: rows that bring a
/// RELATED flow the verdicts have not seen ask for one at once (`App::swap_in`), so the
/// paced rebuilds only follow expectations and sockets, at least once a second. At 3% a
/// million-flow table under churn rebuilt them three times a second (~2% of a core).
const RISK_BUDGET: f64 = 0.01;

/// Count what the header shows: flows, expectations, RELATED flows, chains (masters with
/// expectations or RELATED children) and the helpers' flows and expectations.
pub fn summarize(store: &Store, facts: Facts, now: u32) -> Summary {
    let mut related = 0usize;
    let mut per: Vec<(HelperId, usize, usize)> = Vec::new();
    let mut bump = |h: HelperId, flow: bool| {
        if !h.is_none() {
            crate::model::helper::tally(&mut per, h, flow);
        }
    };
    let mut masters: std::collections::HashSet<FlowKey> = Default::default();
    store.flows().for_each(|f| {
        related += usize::from(f.is_related());
        bump(f.helper, true);
        if let Some(t) = f.master() {
            masters.insert(FlowKey {
                orig: *t,
                ..FlowKey::of(f)
            });
        }
    });
    store.expectations().for_each(|e| {
        bump(e.helper, false);
        masters.insert(FlowKey::new(e.zone, e.master));
    });
    let mut helpers: Vec<(&'static str, usize, usize)> = per
        .into_iter()
        .map(|(h, f, e)| (h.shown().unwrap_or("?"), f, e))
        .collect();
    helpers.sort_unstable();
    let stale = facts
        .judge(store)
        .per_helper(now)
        .into_iter()
        .map(|(h, f, e)| (h.shown().unwrap_or("-"), f, e))
        .collect();
    Summary {
        flows: store.flow_count(),
        expects: store.expect_count(),
        related,
        chains: masters.len(),
        helpers,
        stale,
        judged_at: now,
        stats: store.stats(),
        built: Some(store.generation()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tuple::proto;
    use crate::model::{Event, Flow, Record, Tuple};

    /// Only entries whose stale verdict can move with time (expectations, helper and
    /// RELATED flows) make a still table worth re-judging.
    #[test]
    fn a_table_of_plain_flows_does_not_move_with_time() {
        let mut store = Store::new();
        let t = |sport| Tuple {
            proto: proto::TCP,
            sport,
            dport: 80,
            ..Tuple::default()
        };
        store.apply(Event::New, Record::Flow(Flow::new(t(1))), 0);
        assert!(!summarize(&store, Facts::default(), 9).moves_with_time());
        let mut helped = Flow::new(t(2));
        helped.helper = crate::model::helper::intern("ftp");
        store.apply(Event::New, Record::Flow(helped), 0);
        assert!(summarize(&store, Facts::default(), 9).moves_with_time());
    }
}
