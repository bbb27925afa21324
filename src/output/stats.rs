//! Print the kernel's counters as `conntrack -S` / `-S expect` / `-C` print them, or as one
//! JSON object. It formats a `model::stats::Stats`; it must not read the kernel.

use std::io::{self, Write};

use serde::Serialize;

use crate::model::stats::{CpuCounters, ExpectCpuCounters, Global, Stats};

/// `conntrack -S`: `cpu=N` padded to 4, a tab, then `name=value ` for each counter.
pub fn cpu_line(c: &CpuCounters) -> String {
    let mut s = format!("cpu={:<4}\t", c.cpu);
    for (name, v) in c.fields() {
        s.push_str(&format!("{name}={v} "));
    }
    s
}

/// `conntrack -S expect`, same layout.
pub fn expect_cpu_line(c: &ExpectCpuCounters) -> String {
    let mut s = format!("cpu={:<4}\t", c.cpu);
    for (name, v) in c.fields() {
        s.push_str(&format!("{name}={v} "));
    }
    s
}

/// The JSON shape of `ctscope stats --json` (stable; see README).
#[derive(Serialize)]
struct StatsJson<'a> {
    cpus: &'a [CpuCounters],
    total: CpuCounters,
    expect_cpus: &'a [ExpectCpuCounters],
    expect_total: ExpectCpuCounters,
    global: Option<Global>,
}

/// Write `s` as text (`expect` picks the `-S expect` lines) or as one JSON object.
pub fn write(out: &mut dyn Write, s: &Stats, expect: bool, json: bool) -> io::Result<()> {
    if json {
        let mut total = s.total();
        total.cpu = 0;
        let v = StatsJson {
            cpus: &s.cpus,
            total,
            expect_cpus: &s.expect_cpus,
            expect_total: s.expect_total(),
            global: s.global,
        };
        serde_json::to_writer(&mut *out, &v)?;
        writeln!(out)?;
    } else if expect {
        for c in &s.expect_cpus {
            writeln!(out, "{}", expect_cpu_line(c))?;
        }
    } else {
        for c in &s.cpus {
            writeln!(out, "{}", cpu_line(c))?;
        }
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_match_conntrack_s() {
        let c = CpuCounters {
            cpu: 1,
            found: 2,
            ..Default::default()
        };
        assert_eq!(
            cpu_line(&c),
            "cpu=1   \tfound=2 invalid=0 insert=0 insert_failed=0 drop=0 early_drop=0 error=0 \
             search_restart=0 clash_resolve=0 chaintoolong=0 "
        );
        let e = ExpectCpuCounters {
            cpu: 0,
            expect_new: 3,
            ..Default::default()
        };
        assert_eq!(
            expect_cpu_line(&e),
            "cpu=0   \texpect_new=3 expect_create=0 expect_delete=0 "
        );
    }
}
