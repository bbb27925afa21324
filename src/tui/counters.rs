//! The kernel's per-CPU conntrack counters (`conntrack -S`, `-S expect`) as rates per
//! second, for the header and the Top screen. The engine reads them when the app asks
//! (`Request::Stats` once a tick: the app's thread never waits on a socket) and answers
//! with `EngineEvent::Stats`; this module turns two successive readings into rates.
//!
//! Pure state: no sockets, no clock of its own (readings are dated in store seconds).

use crate::model::stats::{ExpectCpuCounters, Stats};

/// The counters `conntrack -S` prints whose growth means trouble: packets dropped or
/// refused, insert races, chains too long. Shown in the header whenever they move.
pub const TROUBLE: [&str; 8] = [
    "invalid",
    "insert_failed",
    "drop",
    "early_drop",
    "error",
    "search_restart",
    "clash_resolve",
    "chaintoolong",
];

/// Successive readings and the rates between the last two.
#[derive(Debug, Clone, Default)]
pub struct KernelCounters {
    /// The last reading and the store second it arrived at.
    last: Option<(u32, Stats)>,
    /// Per second since the reading before: `conntrack -S`'s ten counters in its order,
    /// then the three expectation counters. `None` until two readings are apart in time.
    pub rates: Option<Vec<(&'static str, f64)>>,
    /// Why the last request failed (a replay has no counters; a refused request).
    pub error: Option<String>,
}

impl KernelCounters {
    /// Take one answer of the engine at store second `now`. A reading within the same
    /// second as the last one is kept for the next rate instead (no division by zero).
    ///
    /// Returns whether what a frame shows of the counters (the rates, the error) changed:
    /// on a still table the answer that comes every second changes nothing, and the app
    /// draws no frame for it.
    pub fn reading(&mut self, now: u32, answer: Result<Box<Stats>, String>) -> bool {
        let (rates, error) = (self.rates.clone(), self.error.take());
        match answer {
            Ok(s) => self.take(now, *s),
            Err(e) => self.error = Some(e),
        }
        rates != self.rates || error != self.error
    }

    fn take(&mut self, now: u32, s: Stats) {
        match &self.last {
            Some((then, prev)) if now > *then => {
                let dt = f64::from(now - then);
                let d = s.since(prev);
                let e = expect_since(&s, prev);
                let rates = d
                    .fields()
                    .into_iter()
                    .chain(e.fields())
                    .map(|(n, v)| (n, f64::from(v) / dt))
                    .collect();
                self.rates = Some(rates);
                self.last = Some((now, s));
            }
            Some(_) => {}
            None => self.last = Some((now, s)),
        }
    }

    /// The trouble counters that moved since the last reading, with their rates.
    pub fn trouble(&self) -> Vec<(&'static str, f64)> {
        self.rates
            .iter()
            .flatten()
            .filter(|(n, v)| *v > 0.0 && TROUBLE.contains(n))
            .copied()
            .collect()
    }
}

/// The expectation counters' growth since `prev`, per CPU modulo 2^32 like
/// `Stats::since`.
fn expect_since(now: &Stats, prev: &Stats) -> ExpectCpuCounters {
    let mut d = ExpectCpuCounters::default();
    for c in &now.expect_cpus {
        let p = prev
            .expect_cpus
            .iter()
            .find(|p| p.cpu == c.cpu)
            .copied()
            .unwrap_or_default();
        d.expect_new = d
            .expect_new
            .saturating_add(c.expect_new.wrapping_sub(p.expect_new));
        d.expect_create = d
            .expect_create
            .saturating_add(c.expect_create.wrapping_sub(p.expect_create));
        d.expect_delete = d
            .expect_delete
            .saturating_add(c.expect_delete.wrapping_sub(p.expect_delete));
    }
    d
}

/// A rate as the header prints it: whole numbers, `<1` for a trickle.
pub fn per_second(v: f64) -> String {
    if v > 0.0 && v < 1.0 {
        "<1/s".into()
    } else {
        format!("{v:.0}/s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::stats::CpuCounters;

    fn at(drop: u32, insert: u32) -> Box<Stats> {
        Box::new(Stats {
            cpus: vec![CpuCounters {
                cpu: 0,
                drop,
                insert,
                ..Default::default()
            }],
            ..Default::default()
        })
    }

    #[test]
    fn a_reading_that_changes_no_rate_asks_for_no_frame() {
        let mut k = KernelCounters::default();
        assert!(
            !k.reading(10, Ok(at(5, 100))),
            "one reading shows no rate yet"
        );
        assert!(
            k.reading(11, Ok(at(5, 100))),
            "the first rates (all zero) appear"
        );
        assert!(
            !k.reading(12, Ok(at(5, 100))),
            "a still table: the same zeros"
        );
        assert!(
            !k.reading(12, Ok(at(6, 100))),
            "same second: kept for the next rate"
        );
        assert!(k.reading(13, Ok(at(6, 100))), "a drop moved");
        assert!(k.reading(14, Ok(at(6, 100))), "and stopped");
        assert!(k.reading(15, Err("refused".into())), "an error appears");
        assert!(!k.reading(16, Err("refused".into())), "the same error");
        assert!(k.reading(17, Ok(at(6, 100))), "the error goes");
    }

    #[test]
    fn two_readings_make_rates_and_only_moving_trouble_is_listed() {
        let mut k = KernelCounters::default();
        k.reading(10, Ok(at(5, 100)));
        assert!(k.rates.is_none(), "one reading has no rate");
        k.reading(10, Ok(at(6, 101)));
        assert!(k.rates.is_none(), "same second: no rate yet");
        k.reading(12, Ok(at(9, 140)));
        let rates = k.rates.clone().unwrap();
        let get = |n| rates.iter().find(|(x, _)| *x == n).unwrap().1;
        assert_eq!((get("drop"), get("insert")), (2.0, 20.0));
        assert_eq!(k.trouble(), vec![("drop", 2.0)]);
        k.reading(13, Err("a recording has no counters".into()));
        assert!(k.error.is_some());
        // The rates stay those last measured; the next reading counts from the last good one.
        k.reading(14, Ok(at(9, 140)));
        assert!(k.trouble().is_empty());
        assert_eq!(per_second(0.5), "<1/s");
        assert_eq!(per_second(3.0), "3/s");
    }
}
