//! The Prometheus text exposition format (version 0.0.4), the one rendering behind
//! `ctscope exporter`'s `/metrics`, `audit --prom` and `list --prom` (node_exporter's
//! textfile collector reads the same format from `*.prom` files).
//!
//! It owns the series names, their labels and their HELP text, counting a store into them,
//! and writing a textfile atomically (temp file + rename). It must not read the kernel or
//! run the engine: callers hand it a store, counters they kept, and what the kernel said.
//!
//! Cardinality is bounded by construction: labels are families (2), protocol names or
//! numbers (256), protocol states (≤ 12), interned helper names (≤ 255, `model::helper`),
//! freedom levels (5), finding kinds and event names (fixed enums). No tuple, address or
//! port is ever a label.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::model::flow::NO_STATE;
use crate::model::store::FlowKey;
use crate::model::tuple::proto;
use crate::model::{Family, Flow, Store};
use crate::risk::{Assessor, Level};

/// State slots per (family, protocol): 0..=9 the kernel's state numbers (`TCP_STATES` and
/// its siblings have 10 names), 10 "none" (a protocol without states), 11 any other number.
const STATE_SLOTS: usize = 12;
const STATE_NONE: usize = 10;
const STATE_OTHER: usize = 11;
const FAMILIES: [Family; 2] = [Family::Ipv4, Family::Ipv6];

/// Flows per (family, protocol, state): a fixed array, filled by one pass over the store's
/// flow slab with no allocation (the array is allocated once and reused).
#[derive(Clone, PartialEq, Eq)]
pub struct FlowCounts {
    counts: Box<[u32; 2 * 256 * STATE_SLOTS]>,
}

impl Default for FlowCounts {
    fn default() -> FlowCounts {
        FlowCounts {
            counts: Box::new([0; 2 * 256 * STATE_SLOTS]),
        }
    }
}

impl std::fmt::Debug for FlowCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FlowCounts")
            .field("total", &self.counts.iter().map(|&c| c as u64).sum::<u64>())
            .finish()
    }
}

fn slot(f: &Flow) -> usize {
    let fam = (f.orig.family == Family::Ipv6) as usize;
    let state = match f.state {
        NO_STATE => STATE_NONE,
        s if (s as usize) < STATE_NONE && f.state_name().is_some() => s as usize,
        _ => STATE_OTHER,
    };
    (fam * 256 + f.orig.proto as usize) * STATE_SLOTS + state
}

impl FlowCounts {
    /// Count `flows` (replacing what was counted before). One sequential pass over the
    /// slab, reading three bytes of each record: the part of a scrape that grows with the
    /// table (see the README's exporter figures).
    pub fn count(&mut self, flows: &[Flow]) {
        self.counts.fill(0);
        for f in flows {
            self.counts[slot(f)] += 1;
        }
    }

    /// Count one flow more (a flow entering the store, or its new life after an update).
    pub fn add(&mut self, f: &Flow) {
        self.counts[slot(f)] += 1;
    }

    /// Count one flow less (its old life, before an update or a removal).
    pub fn remove(&mut self, f: &Flow) {
        let c = &mut self.counts[slot(f)];
        *c = c.saturating_sub(1);
    }

    /// `(family, proto, state, count)` for every non-zero cell.
    fn cells(&self) -> impl Iterator<Item = (Family, u8, Option<usize>, u32)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, &c)| c > 0)
            .map(|(i, &c)| {
                let state = i % STATE_SLOTS;
                let p = (i / STATE_SLOTS) % 256;
                let fam = FAMILIES[i / (STATE_SLOTS * 256)];
                (fam, p as u8, (state != STATE_NONE).then_some(state), c)
            })
    }
}

/// One pass over `store`'s flow slab: `counts` by family/proto/state, and the keys of the
/// RELATED flows into `related` (both cleared first).
pub fn count_flows(store: &Store, counts: &mut FlowCounts, related: &mut Vec<FlowKey>) {
    counts.counts.fill(0);
    related.clear();
    for f in store.flow_slice() {
        counts.counts[slot(f)] += 1;
        if f.is_related() {
            related.push(FlowKey::of(f));
        }
    }
}

/// Per-kind, per-event counts of the kernel's events (`ctscope_events_total`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventCounts {
    /// `[flow, expectation]` × `[new, update, destroy]`.
    pub counts: [[u64; 3]; 2],
}

impl EventCounts {
    /// Count one kernel event (`Dump` entries are not events and are ignored).
    pub fn note(&mut self, event: crate::model::Event, expect: bool) {
        use crate::model::Event as E;
        let i = match event {
            E::New => 0,
            E::Update => 1,
            E::Destroy => 2,
            E::Dump => return,
        };
        self.counts[expect as usize][i] += 1;
    }
}

/// Everything one rendering shows. Parts that a caller cannot know are `None` and their
/// series are left out (e.g. `list --prom` has no event counters, an exporter without
/// a finished audit has no `ctscope_audit_findings`).
#[derive(Debug, Default, Clone)]
pub struct Metrics {
    pub flows: Option<FlowCounts>,
    /// `nf_conntrack_max`.
    pub flows_max: Option<u64>,
    /// `(helper, family, freedom)` → expectations.
    pub expectations: BTreeMap<(String, &'static str, &'static str), u64>,
    /// `nf_conntrack_expect_max`.
    pub expect_max: Option<u64>,
    /// `(helper, risk_from)` → RELATED flows.
    pub related: BTreeMap<(String, &'static str), u64>,
    /// `(kind, helper)` → expectations and RELATED flows carrying that finding.
    pub findings: BTreeMap<(&'static str, String), u64>,
    /// Whether the store part (flows, expectations, related, findings) was filled.
    pub table: bool,
    pub events: Option<EventCounts>,
    pub overruns: Option<u64>,
    pub resyncs: Option<u64>,
    /// The kernel's per-CPU counters, summed: `(counter, value)`.
    pub conntrack_stat: Option<Vec<(&'static str, u64)>>,
    /// `audit`'s findings by kind (an exporter: of the last audit run).
    pub audit: Option<BTreeMap<&'static str, u64>>,
}

/// Label sets a long-running exporter has shown (see [`Metrics::keep_zeros`]).
#[derive(Debug, Default)]
pub struct Seen {
    expectations: std::collections::BTreeSet<(String, &'static str, &'static str)>,
    related: std::collections::BTreeSet<(String, &'static str)>,
    findings: std::collections::BTreeSet<(&'static str, String)>,
}

/// The freedom of an expectation as one word: the freest of src, dst and dport (the
/// dashboard's badge; every helper leaves the source port open, so it says nothing).
pub fn freedom_word(f: &crate::risk::Freedom) -> &'static str {
    let l: Level = f.src.max(f.dst).max(f.dport);
    l.name()
}

/// The helper label: the kernel's name, or `none`.
fn helper_label(h: Option<&str>) -> &str {
    h.unwrap_or("none")
}

impl Metrics {
    /// Fill the table part from `store` with one pass over the flow slab (reusing
    /// `counts`; `related` collects the RELATED flows' keys, the only allocation that
    /// grows with the table, and only with its RELATED flows), then [`Metrics::assess`].
    pub fn count_store(&mut self, store: &Store, assessor: Option<&Assessor>, counts: FlowCounts) {
        let mut counts = counts;
        let mut related = Vec::new();
        count_flows(store, &mut counts, &mut related);
        self.flows = Some(counts);
        self.assess(store, assessor, related.iter());
    }

    /// Expectations by helper/family/freedom, RELATED flows (`related`, keys into `store`)
    /// by helper and `risk_from`, and findings by kind and helper. Only these are assessed:
    /// a handful, however large the table.
    pub fn assess<'a>(
        &mut self,
        store: &Store,
        assessor: Option<&Assessor>,
        related: impl Iterator<Item = &'a FlowKey>,
    ) {
        self.expectations.clear();
        self.related.clear();
        self.findings.clear();
        self.table = true;
        let Some(a) = assessor else {
            return;
        };
        for e in store.expectations() {
            let r = a.expectation(store, e);
            let helper = helper_label(e.helper.name().or(r.helper.as_deref())).to_string();
            for f in &r.findings {
                *self
                    .findings
                    .entry((f.kind.name(), helper.clone()))
                    .or_default() += 1;
            }
            *self
                .expectations
                .entry((helper, e.tuple.family.name(), freedom_word(&r.freedom)))
                .or_default() += 1;
        }
        for key in related {
            let (Some(f), Some(r)) = (store.flow(key), a.flow(store, key)) else {
                continue;
            };
            let helper = helper_label(r.helper.as_deref().or(f.helper.name())).to_string();
            for fi in &r.findings {
                *self
                    .findings
                    .entry((fi.kind.name(), helper.clone()))
                    .or_default() += 1;
            }
            *self.related.entry((helper, r.from.name())).or_default() += 1;
        }
    }

    /// Keep every label set seen in `seen` (adding this computation's) and give the ones
    /// missing now a 0, so a series does not vanish when its last entry goes (an alert on
    /// `> 0` then resolves instead of going stale). Bounded: the labels are bounded.
    pub fn keep_zeros(&mut self, seen: &mut Seen) {
        fn keep<K: Ord + Clone>(
            now: &mut BTreeMap<K, u64>,
            seen: &mut std::collections::BTreeSet<K>,
        ) {
            for k in now.keys() {
                if !seen.contains(k) {
                    seen.insert(k.clone());
                }
            }
            for k in seen.iter() {
                now.entry(k.clone()).or_insert(0);
            }
        }
        keep(&mut self.expectations, &mut seen.expectations);
        keep(&mut self.related, &mut seen.related);
        keep(&mut self.findings, &mut seen.findings);
    }

    /// Audit findings by kind from an audit report (helper-risk and port-knock findings).
    /// Every kind is present, 0 when absent, so an alert on `> 0` resolves.
    pub fn audit_counts(rep: &crate::audit::Report) -> BTreeMap<&'static str, u64> {
        let mut m: BTreeMap<&'static str, u64> = crate::risk::FindingKind::ALL
            .iter()
            .map(|k| (k.name(), 0))
            .chain(
                crate::recent::audit::FindingKind::ALL
                    .iter()
                    .map(|k| (k.name(), 0)),
            )
            .collect();
        for f in &rep.findings {
            *m.entry(f.kind.name()).or_default() += 1;
        }
        for f in &rep.knock_findings {
            *m.entry(f.kind.name()).or_default() += 1;
        }
        m
    }
}

/// Escape a label value as the exposition format requires (`\\`, `\"`, `\n`).
fn label(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// One sample: `name{k="v",…} value`.
fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: u64) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (k, v)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(k);
            out.push_str("=\"");
            label(out, v);
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

fn state_label(p: u8, state: Option<usize>) -> &'static str {
    use crate::model::flow::{DCCP_STATES, SCTP_STATES, TCP_STATES};
    match state {
        None => "none",
        Some(STATE_OTHER) => "unknown",
        Some(s) => {
            let table: &[&'static str] = match p {
                proto::TCP => &TCP_STATES,
                proto::SCTP => &SCTP_STATES,
                proto::DCCP => &DCCP_STATES,
                _ => return "unknown",
            };
            table.get(s).copied().unwrap_or("unknown")
        }
    }
}

/// Render `m` into `out` (appending), in the text exposition format.
pub fn render(m: &Metrics, out: &mut String) {
    if let Some(fc) = &m.flows {
        header(
            out,
            "ctscope_flows",
            "gauge",
            "Conntrack flows by family, protocol and protocol state.",
        );
        let mut num = String::new();
        for (fam, p, state, c) in fc.cells() {
            num.clear();
            let pname = match proto::name(p) {
                Some(n) => n,
                None => {
                    let _ = write!(num, "{p}");
                    num.as_str()
                }
            };
            sample(
                out,
                "ctscope_flows",
                &[
                    ("family", fam.name()),
                    ("proto", pname),
                    ("state", state_label(p, state)),
                ],
                c as u64,
            );
        }
    }
    if let Some(max) = m.flows_max {
        header(
            out,
            "ctscope_flows_max",
            "gauge",
            "The table's size limit (net.netfilter.nf_conntrack_max).",
        );
        sample(out, "ctscope_flows_max", &[], max);
    }
    if m.table {
        header(
            out,
            "ctscope_expectations",
            "gauge",
            "Live expectations by helper, family and freedom (the freest of src, dst and dport).",
        );
        for ((helper, fam, freedom), c) in &m.expectations {
            sample(
                out,
                "ctscope_expectations",
                &[("helper", helper), ("family", fam), ("freedom", freedom)],
                *c,
            );
        }
    }
    if let Some(max) = m.expect_max {
        header(
            out,
            "ctscope_expect_max",
            "gauge",
            "The expectation table's limit (net.netfilter.nf_conntrack_expect_max).",
        );
        sample(out, "ctscope_expect_max", &[], max);
    }
    if m.table {
        header(
            out,
            "ctscope_related_flows",
            "gauge",
            "RELATED flows by the master's helper and where the verdict comes from (expectation or flow).",
        );
        for ((helper, from), c) in &m.related {
            sample(
                out,
                "ctscope_related_flows",
                &[("helper", helper), ("risk_from", from)],
                *c,
            );
        }
        header(
            out,
            "ctscope_findings",
            "gauge",
            "Expectations and RELATED flows carrying a finding, by finding kind and helper.",
        );
        for ((kind, helper), c) in &m.findings {
            sample(
                out,
                "ctscope_findings",
                &[("kind", kind), ("helper", helper)],
                *c,
            );
        }
    }
    if let Some(ev) = &m.events {
        header(
            out,
            "ctscope_events_total",
            "counter",
            "Kernel events received, by kind and event.",
        );
        for (k, kind) in ["flow", "expectation"].iter().enumerate() {
            for (e, event) in ["new", "update", "destroy"].iter().enumerate() {
                sample(
                    out,
                    "ctscope_events_total",
                    &[("kind", kind), ("event", event)],
                    ev.counts[k][e],
                );
            }
        }
    }
    if let Some(n) = m.overruns {
        header(
            out,
            "ctscope_event_overruns_total",
            "counter",
            "Times the kernel dropped events (ENOBUFS).",
        );
        sample(out, "ctscope_event_overruns_total", &[], n);
    }
    if let Some(n) = m.resyncs {
        header(
            out,
            "ctscope_resyncs_total",
            "counter",
            "Re-dumps after the first (after lost events, or background convergence).",
        );
        sample(out, "ctscope_resyncs_total", &[], n);
    }
    if let Some(stats) = &m.conntrack_stat {
        header(
            out,
            "ctscope_conntrack_stat_total",
            "counter",
            "The kernel's per-CPU conntrack counters (conntrack -S), summed over CPUs.",
        );
        for (name, v) in stats {
            sample(
                out,
                "ctscope_conntrack_stat_total",
                &[("counter", name)],
                *v,
            );
        }
    }
    if let Some(audit) = &m.audit {
        header(
            out,
            "ctscope_audit_findings",
            "gauge",
            "Findings of the last audit, by kind.",
        );
        for (kind, c) in audit {
            sample(out, "ctscope_audit_findings", &[("kind", kind)], *c);
        }
    }
    header(
        out,
        "ctscope_build_info",
        "gauge",
        "Always 1; the version label says which ctscope.",
    );
    sample(
        out,
        "ctscope_build_info",
        &[("version", env!("CARGO_PKG_VERSION"))],
        1,
    );
}

/// Where a textfile goes: `path` itself, or `default_name` inside it when it is a
/// directory (node_exporter's `--collector.textfile.directory`).
pub fn textfile_target(path: &Path, default_name: &str) -> PathBuf {
    if path.is_dir() {
        path.join(default_name)
    } else {
        path.to_path_buf()
    }
}

/// Write `text` to `target` atomically: a temp file in the same directory (named
/// `.NAME.PID.tmp`, which the textfile collector ignores: it reads `*.prom` only), synced,
/// made 0644 and renamed over `target`, so a scrape never reads half a file.
pub fn write_textfile(target: &Path, text: &str) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "the output path names no file")
    })?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        f.sync_all()?;
        std::fs::rename(&tmp, target)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Tuple;

    fn flow(fam: Family, p: u8, state: u8) -> Flow {
        let mut f = Flow::new(Tuple {
            family: fam,
            proto: p,
            ..Default::default()
        });
        f.state = state;
        f
    }

    #[test]
    fn flows_are_counted_per_family_proto_and_state() {
        let flows = vec![
            flow(Family::Ipv4, proto::TCP, 3),
            flow(Family::Ipv4, proto::TCP, 3),
            flow(Family::Ipv6, proto::UDP, NO_STATE),
            flow(Family::Ipv4, 2, NO_STATE),
            flow(Family::Ipv4, proto::TCP, 77),
        ];
        let mut fc = FlowCounts::default();
        fc.count(&flows);
        let m = Metrics {
            flows: Some(fc),
            ..Metrics::default()
        };
        let mut s = String::new();
        render(&m, &mut s);
        assert!(
            s.contains("ctscope_flows{family=\"ipv4\",proto=\"tcp\",state=\"ESTABLISHED\"} 2\n")
        );
        assert!(s.contains("ctscope_flows{family=\"ipv6\",proto=\"udp\",state=\"none\"} 1\n"));
        assert!(s.contains("ctscope_flows{family=\"ipv4\",proto=\"2\",state=\"none\"} 1\n"));
        assert!(s.contains("ctscope_flows{family=\"ipv4\",proto=\"tcp\",state=\"unknown\"} 1\n"));
        // Counting again replaces, never adds.
        let mut fc = m.flows.clone().unwrap();
        fc.count(&flows[..1]);
        assert_eq!(fc.cells().map(|c| c.3).sum::<u32>(), 1);
        assert!(s.contains("ctscope_build_info{version=\""));
        // Series the caller could not know are absent, not zero.
        assert!(!s.contains("ctscope_events_total"));
        assert!(!s.contains("ctscope_audit_findings"));
    }

    #[test]
    fn label_values_are_escaped() {
        let mut m = Metrics {
            table: true,
            ..Metrics::default()
        };
        m.related.insert(("a\"b\\c\nd".into(), "flow"), 1);
        let mut s = String::new();
        render(&m, &mut s);
        assert!(
            s.contains("ctscope_related_flows{helper=\"a\\\"b\\\\c\\nd\",risk_from=\"flow\"} 1\n"),
            "{s}"
        );
        // Every line is a comment or `name{…} value`.
        for line in s.lines() {
            assert!(
                line.starts_with("# ") || line.starts_with("ctscope_"),
                "{line}"
            );
        }
    }

    #[test]
    fn events_render_every_kind_and_event() {
        let mut ev = EventCounts::default();
        ev.note(crate::model::Event::New, false);
        ev.note(crate::model::Event::Destroy, true);
        ev.note(crate::model::Event::Dump, true);
        let m = Metrics {
            events: Some(ev),
            overruns: Some(2),
            resyncs: Some(3),
            ..Metrics::default()
        };
        let mut s = String::new();
        render(&m, &mut s);
        assert!(s.contains("ctscope_events_total{kind=\"flow\",event=\"new\"} 1\n"));
        assert!(s.contains("ctscope_events_total{kind=\"expectation\",event=\"destroy\"} 1\n"));
        assert!(s.contains("ctscope_events_total{kind=\"expectation\",event=\"new\"} 0\n"));
        assert!(s.contains("ctscope_event_overruns_total 2\n"));
        assert!(s.contains("ctscope_resyncs_total 3\n"));
    }

    #[test]
    fn a_textfile_is_replaced_whole_and_leaves_no_temp_file() {
        let dir = std::env::temp_dir().join(format!("ctscope-prom-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let target = textfile_target(&dir, "ctscope.prom");
        assert_eq!(target, dir.join("ctscope.prom"));
        write_textfile(&target, "a 1\n").unwrap();
        write_textfile(&target, "b 2\n").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "b 2\n");
        let names: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["ctscope.prom"]);
        std::fs::remove_dir_all(&dir).ok();
    }
}
