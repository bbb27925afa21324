//! The audit report: plain data built by `audit::run`, rendered as text for people or as
//! one JSON object for scripts. Rendering only; no judging and no system access here.
//!
//! Nearly every string here came from outside: rule text and comments, chain, table, set
//! and interface names, helper names, module parameter values, tools' error output. The
//! text form passes each through `escape::Escaped` (a ruleset in a container must not be
//! able to drive the host admin's terminal); JSON keeps them exact.

use std::fmt::Write as _;

use serde::Serialize;

use super::rules::Origin;
use crate::escape::Escaped as E;
use crate::model::tuple::{proto, Endpoint};
use crate::model::{Expectation, Tuple};
use crate::risk::{Assessment, Finding, Freedom};

/// A helper seen in use, and how it gets attached.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HelperUse {
    pub name: String,
    /// The rules that assign it (CT target, `ct helper set`), exact text.
    pub assigned_by: Vec<String>,
    /// Attached automatically by port (`nf_conntrack_helper=1`).
    pub automatic: bool,
    /// Live flows carrying it.
    pub flows: usize,
    /// Live expectations it created.
    pub expectations: usize,
}

/// Whether a module parameter's live value is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamState {
    /// Read from /sys/module.
    Read,
    /// The module is not loaded (or not built): no helper of it runs now, and its value
    /// will be whatever modprobe gives it.
    NotLoaded,
    /// The module is loaded but the parameter could not be read: unknown, never assumed
    /// safe (see "Could not read").
    Unknown,
}

/// A module option that widens a helper, with its live value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModuleOption {
    pub module: String,
    pub param: String,
    /// `None` when the module is not loaded or the value could not be read (`state`).
    pub value: Option<String>,
    /// The value that widens the helper.
    pub widens_at: String,
    pub widened: bool,
    pub state: ParamState,
}

/// A rule accepting RELATED.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RelatedRule {
    pub origin: Origin,
    /// The tool by family (`ip6tables-nft`), so ip and ip6 twins read apart.
    pub tool: &'static str,
    pub family: String,
    pub table: String,
    pub chain: String,
    pub text: String,
    /// Helpers it is narrowed to; empty when it accepts RELATED from any helper.
    pub narrowed_by: Vec<String>,
    pub icmp_only: bool,
    pub restricted: bool,
}

/// rp_filter of one interface; `effective` is max(all, interface) as the kernel applies it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RpFilter {
    pub iface: String,
    pub value: u32,
    pub effective: u32,
}

/// Something the audit could not read, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unreadable {
    pub what: String,
    pub why: String,
}

impl Unreadable {
    pub fn new(what: &str, why: impl Into<String>) -> Unreadable {
        Unreadable {
            what: what.to_string(),
            why: why.into(),
        }
    }
}

/// One live expectation with its freedom and findings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpectReport {
    pub family: &'static str,
    pub proto: String,
    /// `10.213.5.1:any -> 10.213.5.2:3306`, masked fields as `any`.
    pub tuple: String,
    pub master: String,
    pub helper: Option<String>,
    pub class: u32,
    /// The table row used (`ftp data (loose=0)`).
    pub row: Option<String>,
    pub freedom: Freedom,
    pub expected: Option<Freedom>,
    pub findings: Vec<Finding>,
    pub note: Option<String>,
}

impl ExpectReport {
    pub fn new(e: &Expectation, a: &Assessment) -> ExpectReport {
        ExpectReport {
            family: e.tuple.family.name(),
            proto: proto::name(e.tuple.proto)
                .map(str::to_string)
                .unwrap_or_else(|| e.tuple.proto.to_string()),
            tuple: masked(e),
            master: endpoints(&e.master),
            helper: a.helper.clone(),
            class: e.class,
            row: a.row.clone(),
            freedom: a.freedom,
            expected: a.expected,
            findings: a.findings.clone(),
            note: a.note.clone(),
        }
    }
}

/// One live RELATED flow with its freedom and findings, judged from the flow itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RelatedFlowReport {
    pub family: &'static str,
    pub proto: String,
    /// `10.213.5.1:47000 -> 10.213.5.2:3306`, the flow's original direction.
    pub tuple: String,
    pub master: String,
    /// The master's helper (or the flow's own, when the master is gone).
    pub helper: Option<String>,
    pub row: Option<String>,
    pub freedom: Freedom,
    pub expected: Option<Freedom>,
    pub findings: Vec<Finding>,
    pub note: Option<String>,
    /// `"expectation"` or `"flow"`.
    pub risk_from: &'static str,
}

impl RelatedFlowReport {
    pub fn new(f: &crate::model::Flow, a: &Assessment) -> RelatedFlowReport {
        RelatedFlowReport {
            family: f.orig.family.name(),
            proto: proto::name(f.orig.proto)
                .map(str::to_string)
                .unwrap_or_else(|| f.orig.proto.to_string()),
            tuple: endpoints(&f.orig),
            master: f.master().map(endpoints).unwrap_or_default(),
            helper: a.helper.clone(),
            row: a.row.clone(),
            freedom: a.freedom,
            expected: a.expected,
            findings: a.findings.clone(),
            note: a.note.clone(),
            risk_from: a.from.name(),
        }
    }
}

fn endpoints(t: &Tuple) -> String {
    format!(
        "{} -> {}",
        Endpoint(t.src_ip(), t.sport),
        Endpoint(t.dst_ip(), t.dport)
    )
}

/// The expected tuple with wildcards spelled `any` (the TUI's form).
fn masked(e: &Expectation) -> String {
    let side = |any_addr: bool, ip: std::net::IpAddr, any_port: bool, port: u16| {
        let a = if any_addr {
            "any".to_string()
        } else if ip.is_ipv6() {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        let p = if any_port {
            "any".to_string()
        } else {
            port.to_string()
        };
        format!("{a}:{p}")
    };
    format!(
        "{} -> {}",
        side(
            e.src_is_any(),
            e.tuple.src_ip(),
            e.sport_is_any(),
            e.tuple.sport
        ),
        side(
            e.dst_is_any(),
            e.tuple.dst_ip(),
            e.dport_is_any(),
            e.tuple.dport
        )
    )
}

/// The whole audit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub netns: Option<String>,
    pub helpers: Vec<HelperUse>,
    /// `on`, `off`, `unavailable (…)` or `unknown`.
    pub automatic_assignment: String,
    /// The firewall language fixes are written in: `nftables` or `iptables`.
    pub language: String,
    pub module_options: Vec<ModuleOption>,
    pub related_rules: Vec<RelatedRule>,
    pub rp_filter: Vec<RpFilter>,
    pub antispoof_rules: Vec<String>,
    /// Whether an anti-spoofing rule covers IPv6 (families ip6 or inet, or ip6tables):
    /// IPv6 has no rp_filter sysctl, so rules are its only reverse-path check.
    pub ipv6_antispoof: bool,
    pub expectations: Vec<ExpectReport>,
    /// Live RELATED flows.
    pub related_flows: Vec<RelatedFlowReport>,
    /// Every finding, the expectations' and RELATED flows' included.
    pub findings: Vec<Finding>,
    /// Port-knock scheme findings (xt_recent and nft dynamic sets; see `recent::audit`).
    pub knock_findings: Vec<crate::recent::audit::Finding>,
    pub unreadable: Vec<Unreadable>,
    /// Whether both the ruleset and the expectation table could be read.
    pub complete: bool,
}

impl Report {
    /// 2 when the ruleset or the expectation table could not be read (the audit could not
    /// look, whatever it found elsewhere), else 1 when there are findings, else 0.
    pub fn exit_code(&self) -> i32 {
        if !self.complete {
            2
        } else if !self.findings.is_empty() || !self.knock_findings.is_empty() {
            1
        } else {
            0
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            o.insert("exit".into(), self.exit_code().into());
        }
        v
    }

    /// The report for people. Markers are text (`[!]`, `[ok]`), never colour alone.
    pub fn render_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "ctscope audit{}",
            self.netns
                .as_deref()
                .map(|n| format!(" (network namespace '{}')", E(n)))
                .unwrap_or_default()
        );
        if !self.complete {
            let _ = writeln!(
                s,
                "INCOMPLETE: the ruleset or the expectation table could not be read (see 'Could not read' below)"
            );
        }
        let _ = writeln!(s, "\nHelpers in use");
        if self.helpers.is_empty() {
            let _ = writeln!(
                s,
                "  none seen (no CT assignment rule, no live helper flow)"
            );
        }
        for h in &self.helpers {
            let _ = writeln!(
                s,
                "  {}: {} live flows, {} expectations{}",
                E(&h.name),
                h.flows,
                h.expectations,
                if h.automatic {
                    ", assigned automatically by port"
                } else {
                    ""
                }
            );
            for r in &h.assigned_by {
                let _ = writeln!(s, "    assigned by: {}", E(r));
            }
            if h.assigned_by.is_empty() && !h.automatic {
                let _ = writeln!(s, "    assigned by: no rule seen (another namespace's template, a userspace helper, or an expectation)");
            }
        }
        let _ = writeln!(s, "  automatic assignment: {}", self.automatic_assignment);
        let _ = writeln!(s, "\nModule options that widen helpers");
        for o in &self.module_options {
            let (mark, value) = match (o.state, o.value.as_deref()) {
                (_, Some(v)) => (if o.widened { "[!]" } else { "[ok]" }, v),
                (ParamState::Unknown, None) => ("[?]", "unknown (could not be read)"),
                (_, None) => ("[-]", "(module not loaded)"),
            };
            let _ = writeln!(
                s,
                "  {} {} {}={} (widens at {})",
                mark,
                E(&o.module),
                E(&o.param),
                E(value),
                E(&o.widens_at)
            );
        }
        let _ = writeln!(s, "\nRELATED accept rules");
        if self.related_rules.is_empty() {
            let _ = writeln!(s, "  none");
        }
        for r in &self.related_rules {
            let how = if !r.narrowed_by.is_empty() {
                format!("narrowed to helper {}", E(&r.narrowed_by.join(", ")))
            } else if r.icmp_only {
                "ICMP only".to_string()
            } else {
                "NOT narrowed by helper".to_string()
            };
            let _ = writeln!(
                s,
                "  {} {} {} {} {}: {}\n      {how}",
                if r.restricted { "[ok]" } else { "[!]" },
                r.tool,
                E(&r.family),
                E(&r.table),
                E(&r.chain),
                E(&r.text)
            );
        }
        let _ = writeln!(s, "\nReverse-path filtering");
        for r in &self.rp_filter {
            let _ = writeln!(
                s,
                "  {} rp_filter={} (effective {})",
                E(&r.iface),
                r.value,
                r.effective
            );
        }
        if self.antispoof_rules.is_empty() {
            let _ = writeln!(s, "  raw-table anti-spoofing rules: none");
        }
        for r in &self.antispoof_rules {
            let _ = writeln!(s, "  anti-spoofing rule: {}", E(r));
        }
        let _ = writeln!(
            s,
            "  IPv6 (no rp_filter there): {}",
            if self.ipv6_antispoof {
                "covered by an anti-spoofing rule"
            } else {
                if self.language == "nftables" {
                    "no anti-spoofing rule; add `fib saddr . iif oif missing drop` to a prerouting chain of an inet or ip6 table where helpers see IPv6"
                } else {
                    "no anti-spoofing rule; add `ip6tables -t raw -A PREROUTING -m rpfilter --invert -j DROP` where helpers see IPv6"
                }
            }
        );
        let _ = writeln!(s, "\nLive expectations");
        if self.expectations.is_empty() {
            let _ = writeln!(s, "  none");
        }
        for e in &self.expectations {
            let f = &e.freedom;
            let _ = writeln!(
                s,
                "  {} {} {}  helper={} class={}  master {}\n      freedom src={} sport={} dst={} dport={}{}",
                if e.findings.is_empty() { "[ok]" } else { "[!]" },
                E(&e.proto),
                E(&e.tuple),
                E(e.helper.as_deref().unwrap_or("-")),
                e.class,
                E(&e.master),
                f.src,
                f.sport,
                f.dst,
                f.dport,
                e.row
                    .as_deref()
                    .map(|r| format!("  (table: {})", E(r)))
                    .unwrap_or_default()
            );
            if let Some(n) = &e.note {
                let _ = writeln!(s, "      note: {}", E(n));
            }
        }
        let _ = writeln!(s, "\nLive RELATED flows");
        if self.related_flows.is_empty() {
            let _ = writeln!(s, "  none");
        }
        for e in &self.related_flows {
            let f = &e.freedom;
            let _ = writeln!(
                s,
                "  {} {} {}  helper={}  master {}\n      freedom src={} sport={} dst={} dport={} (from the {}){}",
                if e.findings.is_empty() { "[ok]" } else { "[!]" },
                e.proto,
                e.tuple,
                e.helper.as_deref().unwrap_or("-"),
                e.master,
                f.src,
                f.sport,
                f.dst,
                f.dport,
                e.risk_from,
                e.row
                    .as_deref()
                    .map(|r| format!("  (table: {r})"))
                    .unwrap_or_default()
            );
            if let Some(n) = &e.note {
                let _ = writeln!(s, "      note: {n}");
            }
        }
        let _ = writeln!(s, "\nFindings: {}", self.findings.len());
        for f in &self.findings {
            let _ = writeln!(
                s,
                "  [{}] {}\n      fix: {}",
                f.kind,
                E(&f.detail),
                E(&f.fix)
            );
        }
        if !self.knock_findings.is_empty() {
            let _ = writeln!(s, "\nPort-knock findings: {}", self.knock_findings.len());
            for f in &self.knock_findings {
                let _ = writeln!(
                    s,
                    "  [{}] {}\n      fix: {}",
                    f.kind,
                    E(&f.detail),
                    E(&f.fix)
                );
            }
        }
        if !self.unreadable.is_empty() {
            let _ = writeln!(s, "\nCould not read");
            for u in &self.unreadable {
                let why: Vec<String> = u.why.lines().map(|l| E(l).to_string()).collect();
                let _ = writeln!(s, "  {}: {}", E(&u.what), why.join("\n      "));
            }
        }
        s
    }
}
