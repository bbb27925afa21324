//! Helper risk as the dashboard shows it: the assessments of `crate::risk` (the one source
//! of truth, also behind `list --json` and `ctscope audit`), cached per store generation,
//! and the short text badges that stand beside their colours.
//!
//! Owns the cache (`RiskCache`), the seam through which an assessor is injected (`Assess`)
//! and the badge vocabulary. It must not classify or decide findings itself (that is
//! `crate::risk`), read the system, or draw.

use std::collections::HashMap;

use crate::model::store::{ExpectKey, FlowKey};
use crate::model::Store;
use crate::risk::{
    Assessment, Assessor, Finding, FindingKind, Freedom, Level, ListenerCheck, RiskFrom,
};

/// What the app asks of an assessor. Production passes `risk::Assessor` (built once at
/// startup); tests wrap one to count calls. Both methods take the store because the
/// assessor reads its linkage (master reply tuple, siblings, the expectation behind a
/// RELATED flow) exactly as the JSON views do. `Send`: the cache is rebuilt on the view
/// builder's thread (`tui::views`).
pub trait Assess: Send {
    /// Every live expectation's assessment (`Assessor::all_expectations`).
    fn expectations(&self, store: &Store) -> Vec<(ExpectKey, Assessment)>;
    /// A RELATED flow's assessment (`Assessor::flow`): every RELATED flow has one, from
    /// the expectation the store saw or from the flow itself; `None` for other flows.
    fn flow(&self, store: &Store, key: &FlowKey) -> Option<Assessment>;
    /// Re-read whatever system state the assessor snapshots (sockets) when stale; called
    /// before a rebuild. The default keeps the snapshot.
    fn refresh(&mut self) {}
}

impl Assess for Assessor {
    fn expectations(&self, store: &Store) -> Vec<(ExpectKey, Assessment)> {
        self.all_expectations(store)
    }
    fn flow(&self, store: &Store, key: &FlowKey) -> Option<Assessment> {
        Assessor::flow(self, store, key)
    }
    fn refresh(&mut self) {
        Assessor::refresh(self);
    }
}

/// The entry a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subject {
    Expect(ExpectKey),
    Flow(FlowKey),
}

/// One row of the findings screen: the entry and the index of the finding in its
/// assessment. Copyable so the selection can follow it across rebuilds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FindingRow {
    pub subject: Subject,
    pub index: usize,
}

/// The level a one-word badge shows: the freest of source address, destination address and
/// destination port. The source port is left out on purpose: every helper in the netfilter
/// authors' table leaves it open (a masked-out field, `Full`), so `Freedom::worst` would
/// mark every expectation `Full` and the badge would say nothing. The four fields are all
/// in the detail pane and in the JSON.
pub fn headline(f: &Freedom) -> Level {
    f.src.max(f.dst).max(f.dport)
}

/// Short badge text of a level, at most 6 cells (the table column is narrow).
pub fn level_badge(l: Level) -> &'static str {
    match l {
        Level::Fixed => "FIXED",
        Level::InPacket => "IN-PKT",
        Level::Iface => "IFACE",
        Level::InCmd => "IN-CMD",
        Level::Full => "FULL",
    }
}

/// A short human name for a finding kind (findings screen, badges).
pub fn kind_label(k: FindingKind) -> &'static str {
    match k {
        FindingKind::SensitivePort => "sensitive port",
        FindingKind::ThirdPartyAddress => "third-party address",
        FindingKind::ListeningSocket => "listening socket",
        FindingKind::UnusualHelperPort => "unusual helper port",
        FindingKind::ExpectationBurst => "expectation burst",
        FindingKind::TableMismatch => "table mismatch",
        FindingKind::UnrestrictedRelated => "unrestricted RELATED",
        FindingKind::AutomaticHelperAssignment => "automatic helper",
        FindingKind::NoReversePathFilter => "no rp_filter",
    }
}

/// The badge of an entry with findings, at most 7 cells: `!` and the port for port
/// findings (`!3306`), else a word (`!3rd`, `!helper`, `!burst`, `!table`); `+` when
/// there are more findings than the one named. `port` is the destination port the entry
/// reaches (the flow's, or the expectation's).
pub fn finding_badge(findings: &[Finding], port: u16) -> Option<String> {
    let first = findings.iter().min_by_key(|f| f.kind)?;
    let word = match first.kind {
        FindingKind::SensitivePort | FindingKind::ListeningSocket => port.to_string(),
        FindingKind::ThirdPartyAddress => "3rd".into(),
        FindingKind::UnusualHelperPort => "helper".into(),
        FindingKind::ExpectationBurst => "burst".into(),
        FindingKind::TableMismatch => "table".into(),
        _ => "risk".into(),
    };
    let more = if findings.len() > 1 { "+" } else { "" };
    Some(format!("!{word}{more}"))
}

/// The detail pane's line on where a verdict came from, when it is not the expectation.
pub fn from_text(a: &Assessment) -> Option<&'static str> {
    (a.from == RiskFrom::Flow)
        .then_some("the flow itself (tuples, master, helper table): its expectation was never seen")
}

/// The detail pane's line on the listening-socket check, when there is something to say.
/// Process names are raw here; the pane escapes outside strings before drawing.
pub fn listener_text(c: &ListenerCheck) -> Option<String> {
    match c {
        ListenerCheck::SameProcess { port, owner } => Some(format!(
            ":{port} is the announcer's own socket ('{}', pid {})",
            owner.name, owner.pid
        )),
        ListenerCheck::OtherProcess {
            port,
            owner,
            master,
        } => Some(format!(
            "'{}' (pid {}) listens on :{port}; the master belongs to '{}' (pid {})",
            owner.name, owner.pid, master.name, master.pid
        )),
        ListenerCheck::MasterGone { port, owner } => Some(format!(
            "'{}' (pid {}) listens on :{port}; the master's socket is gone",
            owner.name, owner.pid
        )),
        ListenerCheck::NotLocal => Some("does not apply: the destination is another host".into()),
        ListenerCheck::OwnerUnknown { port } => Some(format!(
            "something listens on :{port}; no process holding it was found"
        )),
        ListenerCheck::Unavailable | ListenerCheck::NoListener => None,
    }
}

/// The badge of an assessment for a table cell: the finding badge when there are
/// findings, otherwise the level badge.
pub fn badge(a: &Assessment, port: u16) -> String {
    finding_badge(&a.findings, port).unwrap_or_else(|| level_badge(headline(&a.freedom)).into())
}

/// Assessments of a store generation, by key. Rebuilt by the view builder (`tui::views`)
/// when the store's generation moved, paced like the views, never per frame.
#[derive(Default)]
pub struct RiskCache {
    /// Generation the cache was built from; `None`: stale.
    pub built: Option<u64>,
    expects: HashMap<ExpectKey, Assessment>,
    flows: HashMap<FlowKey, Assessment>,
    /// Every finding, most severe kind first, then by entry.
    rows: Vec<FindingRow>,
    /// Masters of RELATED flows judged here that the store lacks, though no DESTROY said
    /// they went (`Store::missing_masters`): what a dump left out, for the app to ask the
    /// kernel about so the next verdicts see them.
    pub missing_masters: Vec<FlowKey>,
}

impl RiskCache {
    /// Recompute from the model's store with `assessor`. A model without a store, or no
    /// assessor, leaves the cache empty (badges then show `?` on RELATED rows); with both,
    /// every RELATED flow gets an assessment.
    pub fn rebuild(&mut self, store: &Store, assessor: Option<&dyn Assess>, gen: u64) {
        self.built = Some(gen);
        self.expects.clear();
        self.flows.clear();
        self.rows.clear();
        self.missing_masters.clear();
        let Some(a) = assessor else {
            return;
        };
        self.expects = a.expectations(store).into_iter().collect();
        let mut related = Vec::new();
        for f in store.flows().filter(|f| f.is_related()) {
            related.push(FlowKey::of(f));
            self.missing_masters.extend(store.missing_master(f));
        }
        for k in related {
            if let Some(x) = a.flow(store, &k) {
                self.flows.insert(k, x);
            }
        }
        let mut rows: Vec<(FindingKind, FindingRow)> = Vec::new();
        for (k, x) in &self.expects {
            for (i, f) in x.findings.iter().enumerate() {
                rows.push((
                    f.kind,
                    FindingRow {
                        subject: Subject::Expect(*k),
                        index: i,
                    },
                ));
            }
        }
        for (k, x) in &self.flows {
            for (i, f) in x.findings.iter().enumerate() {
                rows.push((
                    f.kind,
                    FindingRow {
                        subject: Subject::Flow(*k),
                        index: i,
                    },
                ));
            }
        }
        // Expectations before flows within a kind, then by tuple: a stable order.
        rows.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| order(&a.1).cmp(&order(&b.1))));
        self.rows = rows.into_iter().map(|(_, r)| r).collect();
    }

    pub fn expect(&self, k: &ExpectKey) -> Option<&Assessment> {
        self.expects.get(k)
    }

    pub fn flow(&self, k: &FlowKey) -> Option<&Assessment> {
        self.flows.get(k)
    }

    /// The assessment a findings row points at, and its finding.
    pub fn finding(&self, r: &FindingRow) -> Option<(&Assessment, &Finding)> {
        let a = match r.subject {
            Subject::Expect(k) => self.expects.get(&k)?,
            Subject::Flow(k) => self.flows.get(&k)?,
        };
        a.findings.get(r.index).map(|f| (a, f))
    }

    /// Every finding, in display order.
    pub fn rows(&self) -> &[FindingRow] {
        &self.rows
    }

    /// How many findings there are (the header's count).
    pub fn count(&self) -> usize {
        self.rows.len()
    }
}

/// A total order on findings rows for a stable display.
fn order(r: &FindingRow) -> (u8, crate::model::Tuple, u16, usize) {
    match r.subject {
        Subject::Expect(k) => (0, k.tuple, k.zone, r.index),
        Subject::Flow(k) => (1, k.orig, k.zone, r.index),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badges_name_the_port_or_the_kind_and_fit_the_column() {
        let f = |k| Finding::new(k, "d", "f");
        assert_eq!(
            finding_badge(&[f(FindingKind::SensitivePort)], 3306).as_deref(),
            Some("!3306")
        );
        assert_eq!(
            finding_badge(
                &[
                    f(FindingKind::ListeningSocket),
                    f(FindingKind::SensitivePort)
                ],
                27017
            )
            .as_deref(),
            Some("!27017+")
        );
        assert_eq!(
            finding_badge(&[f(FindingKind::ThirdPartyAddress)], 1).as_deref(),
            Some("!3rd")
        );
        assert_eq!(finding_badge(&[], 1), None);
        for l in [
            Level::Fixed,
            Level::InPacket,
            Level::Iface,
            Level::InCmd,
            Level::Full,
        ] {
            assert!(level_badge(l).len() <= 6);
        }
    }

    #[test]
    fn headline_ignores_the_always_open_source_port() {
        let f = Freedom {
            src: Level::Fixed,
            sport: Level::Full,
            dst: Level::Fixed,
            dport: Level::InCmd,
        };
        assert_eq!(headline(&f), Level::InCmd);
        assert_eq!(f.worst(), Level::Full);
    }
}
