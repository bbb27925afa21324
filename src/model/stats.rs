//! Table pressure as the kernel counts it: the per-CPU counters `conntrack -S` prints, the
//! expectation counters of `conntrack -S expect`, and the global entry count against
//! `nf_conntrack_max` (`conntrack -C`). Plain data, filled by `decode::stats` and shown by
//! `output::stats` and, later, the dashboard's header. No sockets, no bytes here.

use serde::Serialize;

/// One CPU's connection-tracking counters (`struct ip_conntrack_stat`), in the order and
/// with the names `conntrack -S` uses. Counters the kernel stopped maintaining (searched,
/// new, ignore, delete, delete_list) are left out, as conntrack(8) leaves them out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct CpuCounters {
    pub cpu: u16,
    pub found: u32,
    pub invalid: u32,
    pub insert: u32,
    pub insert_failed: u32,
    pub drop: u32,
    pub early_drop: u32,
    pub error: u32,
    pub search_restart: u32,
    pub clash_resolve: u32,
    pub chaintoolong: u32,
}

impl CpuCounters {
    /// The counters as (conntrack -S name, value) pairs, in conntrack's order.
    pub fn fields(&self) -> [(&'static str, u32); 10] {
        [
            ("found", self.found),
            ("invalid", self.invalid),
            ("insert", self.insert),
            ("insert_failed", self.insert_failed),
            ("drop", self.drop),
            ("early_drop", self.early_drop),
            ("error", self.error),
            ("search_restart", self.search_restart),
            ("clash_resolve", self.clash_resolve),
            ("chaintoolong", self.chaintoolong),
        ]
    }
}

/// One CPU's expectation counters (`conntrack -S expect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ExpectCpuCounters {
    pub cpu: u16,
    pub expect_new: u32,
    pub expect_create: u32,
    pub expect_delete: u32,
}

impl ExpectCpuCounters {
    /// The counters as (conntrack -S expect name, value) pairs, in conntrack's order.
    pub fn fields(&self) -> [(&'static str, u32); 3] {
        [
            ("expect_new", self.expect_new),
            ("expect_create", self.expect_create),
            ("expect_delete", self.expect_delete),
        ]
    }
}

/// The global count (`IPCTNL_MSG_CT_GET_STATS`): entries now and `nf_conntrack_max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Global {
    pub entries: u32,
    pub max_entries: u32,
}

/// Everything `ctscope stats` reads in one go.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Stats {
    /// One record per possible CPU that has counters, in the kernel's order.
    pub cpus: Vec<CpuCounters>,
    /// One record per CPU for expectations.
    pub expect_cpus: Vec<ExpectCpuCounters>,
    /// Entries and the table's maximum, when the kernel answered.
    pub global: Option<Global>,
}

impl Stats {
    /// The sum over all CPUs (`cpu` is 0): what a rate or a header gauge shows. Sums
    /// saturate rather than wrap; the kernel's counters are unsigned ints per CPU.
    pub fn total(&self) -> CpuCounters {
        let mut t = CpuCounters::default();
        for c in &self.cpus {
            t.found = t.found.saturating_add(c.found);
            t.invalid = t.invalid.saturating_add(c.invalid);
            t.insert = t.insert.saturating_add(c.insert);
            t.insert_failed = t.insert_failed.saturating_add(c.insert_failed);
            t.drop = t.drop.saturating_add(c.drop);
            t.early_drop = t.early_drop.saturating_add(c.early_drop);
            t.error = t.error.saturating_add(c.error);
            t.search_restart = t.search_restart.saturating_add(c.search_restart);
            t.clash_resolve = t.clash_resolve.saturating_add(c.clash_resolve);
            t.chaintoolong = t.chaintoolong.saturating_add(c.chaintoolong);
        }
        t
    }

    /// What each summed counter grew by since `prev` (an earlier reading of the same
    /// table): the numerator of the per-second rates a dashboard shows. The kernel's
    /// per-CPU counters are 32-bit and wrap, so each CPU's difference is taken modulo 2^32
    /// before summing; a CPU missing from `prev` counts from zero.
    pub fn since(&self, prev: &Stats) -> CpuCounters {
        let mut d = CpuCounters::default();
        for c in &self.cpus {
            let p = prev
                .cpus
                .iter()
                .find(|p| p.cpu == c.cpu)
                .copied()
                .unwrap_or_default();
            let add = |acc: &mut u32, now: u32, then: u32| {
                *acc = acc.saturating_add(now.wrapping_sub(then));
            };
            add(&mut d.found, c.found, p.found);
            add(&mut d.invalid, c.invalid, p.invalid);
            add(&mut d.insert, c.insert, p.insert);
            add(&mut d.insert_failed, c.insert_failed, p.insert_failed);
            add(&mut d.drop, c.drop, p.drop);
            add(&mut d.early_drop, c.early_drop, p.early_drop);
            add(&mut d.error, c.error, p.error);
            add(&mut d.search_restart, c.search_restart, p.search_restart);
            add(&mut d.clash_resolve, c.clash_resolve, p.clash_resolve);
            add(&mut d.chaintoolong, c.chaintoolong, p.chaintoolong);
        }
        d
    }

    /// The expectation counters summed over all CPUs.
    pub fn expect_total(&self) -> ExpectCpuCounters {
        let mut t = ExpectCpuCounters::default();
        for c in &self.expect_cpus {
            t.expect_new = t.expect_new.saturating_add(c.expect_new);
            t.expect_create = t.expect_create.saturating_add(c.expect_create);
            t.expect_delete = t.expect_delete.saturating_add(c.expect_delete);
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_add_every_cpu_and_saturate() {
        let s = Stats {
            cpus: vec![
                CpuCounters {
                    cpu: 0,
                    insert: 3,
                    drop: u32::MAX,
                    ..Default::default()
                },
                CpuCounters {
                    cpu: 1,
                    insert: 4,
                    drop: 1,
                    ..Default::default()
                },
            ],
            expect_cpus: vec![ExpectCpuCounters {
                cpu: 1,
                expect_new: 2,
                ..Default::default()
            }],
            global: None,
        };
        let t = s.total();
        assert_eq!((t.insert, t.drop), (7, u32::MAX));
        assert_eq!(s.expect_total().expect_new, 2);
    }

    #[test]
    fn since_takes_each_cpus_growth_across_a_wrap() {
        let at = |cpu, drop| CpuCounters {
            cpu,
            drop,
            ..Default::default()
        };
        let prev = Stats {
            cpus: vec![at(0, u32::MAX - 1), at(1, 5)],
            ..Default::default()
        };
        let now = Stats {
            cpus: vec![at(0, 3), at(1, 9), at(2, 1)],
            ..Default::default()
        };
        // cpu0 wrapped: +5; cpu1: +4; cpu2 new: +1.
        assert_eq!(now.since(&prev).drop, 10);
        assert_eq!(now.since(&now).drop, 0);
    }
}
