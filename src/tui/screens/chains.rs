//! The RELATED chains screen: every master with the expectations its helper created and
//! the RELATED flows they let in, as a tree. Owns its columns (`ChainCol`), the pure tree
//! build (`build`), selection (which follows its row as siblings come and go), detail and
//! drawing. Chains are ordered by master; the sort keys do not apply.
//!
//! This module must not change the store or reach the engine.

use std::any::Any;
use std::collections::BTreeMap;

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::Frame;

use crate::actions::Entry;
use crate::filter::Filter;
use crate::model::store::{ExpectKey, FlowKey};
use crate::model::Store;
use crate::tui::popups::detail;
use crate::tui::text;
use crate::tui::view::{Column, Rows, TableView};
use crate::tui::widgets::table::{self, TextRow};
use crate::tui::widgets::thousands;
use crate::tui::worker::Job;

use super::{display_helper, risk_badge, risk_text, BuiltRows, Ctx, Drawn, Screen, Source};

/// Columns of the RELATED chains screen: the tree, then what each line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainCol {
    Tree,
    Helper,
    Risk,
    Left,
}

impl ChainCol {
    pub const ALL: [ChainCol; 4] = [
        ChainCol::Tree,
        ChainCol::Helper,
        ChainCol::Risk,
        ChainCol::Left,
    ];
}

impl Column for ChainCol {
    fn title(self) -> &'static str {
        match self {
            ChainCol::Tree => "master → expectations → RELATED flows",
            ChainCol::Helper => "Helper",
            ChainCol::Risk => "Risk",
            ChainCol::Left => "Left",
        }
    }

    fn width(self) -> u16 {
        match self {
            ChainCol::Tree => 30,
            ChainCol::Helper => 6,
            ChainCol::Risk => 7,
            ChainCol::Left => 8,
        }
    }

    fn flexible(self) -> bool {
        self == ChainCol::Tree
    }

    fn priority(self) -> u8 {
        match self {
            ChainCol::Tree => 0,
            ChainCol::Risk => 1,
            ChainCol::Helper => 2,
            ChainCol::Left => 3,
        }
    }

    fn essential(self) -> bool {
        self == ChainCol::Risk
    }
}

/// One line of the RELATED chains tree.
#[derive(Debug, Clone, Copy, Eq)]
pub enum ChainRow {
    /// A master flow (it may be gone from the store while its children remain).
    Master(FlowKey),
    /// An expectation the master's helper created; `last` draws the tree's corner.
    Expect { key: ExpectKey, last: bool },
    /// A RELATED flow created by one of the master's expectations.
    Related { key: FlowKey, last: bool },
}

/// Rows are the same entry when they name the same thing: where it sits in the tree
/// (`last`) changes as siblings come and go, and the selection must follow it anyway.
impl PartialEq for ChainRow {
    fn eq(&self, other: &ChainRow) -> bool {
        match (self, other) {
            (ChainRow::Master(a), ChainRow::Master(b)) => a == b,
            (ChainRow::Expect { key: a, .. }, ChainRow::Expect { key: b, .. }) => a == b,
            (ChainRow::Related { key: a, .. }, ChainRow::Related { key: b, .. }) => a == b,
            _ => false,
        }
    }
}

impl ChainRow {
    pub fn flow_key(&self) -> Option<FlowKey> {
        match self {
            ChainRow::Master(k) | ChainRow::Related { key: k, .. } => Some(*k),
            ChainRow::Expect { .. } => None,
        }
    }
}

/// Build the chains tree: every master with expectations or RELATED children, sorted by
/// master key, expectations first, then RELATED flows. With a filter, a chain is kept
/// when any member matches (a chain is read as a whole).
///
/// Returns the rows and the number of chains before filtering. A pure function of the
/// store and the filter at `now`.
pub fn build(
    m: &Store,
    filter: Option<&Filter>,
    now: u32,
    facts: &super::Facts,
) -> (Vec<ChainRow>, usize) {
    let facts = facts.context(m);
    #[derive(Default)]
    struct Group {
        expects: Vec<ExpectKey>,
        related: Vec<FlowKey>,
        hit: bool,
    }
    let mut groups: BTreeMap<FlowKey, Group> = BTreeMap::new();
    m.expectations().for_each(|e| {
        let mk = FlowKey::new(e.zone, e.master);
        let g = groups.entry(mk).or_default();
        g.expects.push(ExpectKey::of(e));
        g.hit |= filter.is_none_or(|x| x.match_expect_in(e, now, &facts));
    });
    m.flows().for_each(|f| {
        if !f.is_related() {
            return;
        }
        let key = FlowKey::of(f);
        let master = f
            .master()
            .map(|t| FlowKey {
                orig: *t,
                ..FlowKey::of(f)
            })
            .or_else(|| m.master_of(&key).map(FlowKey::of));
        if let Some(mk) = master {
            let g = groups.entry(mk).or_default();
            g.related.push(key);
            g.hit |= filter.is_none_or(|x| x.match_flow_in(f, now, &facts));
        }
    });
    let total = groups.len();
    let mut rows = Vec::new();
    for (mk, mut g) in groups {
        let master_hit =
            filter.is_some_and(|x| m.flow(&mk).is_some_and(|f| x.match_flow_in(f, now, &facts)));
        if !(g.hit || master_hit) {
            continue;
        }
        g.expects.sort_unstable_by_key(|k| (k.tuple, k.zone));
        g.related.sort_unstable_by_key(|k| (k.orig, k.zone));
        rows.push(ChainRow::Master(mk));
        let n = g.expects.len() + g.related.len();
        let mut i = 0;
        for key in g.expects {
            i += 1;
            rows.push(ChainRow::Expect { key, last: i == n });
        }
        for key in g.related {
            i += 1;
            rows.push(ChainRow::Related { key, last: i == n });
        }
    }
    (rows, total)
}

/// The chains screen's state: its rows and selection.
#[derive(Default)]
pub struct Chains {
    pub view: TableView<ChainRow>,
}

impl Screen for Chains {
    fn titles(&self) -> (&'static str, &'static str) {
        ("Chains", "Chains")
    }

    fn rows(&self) -> &dyn Rows {
        &self.view
    }

    fn rows_mut(&mut self) -> &mut dyn Rows {
        &mut self.view
    }

    fn tab_count(&self, cx: &Ctx) -> String {
        thousands(cx.summary.chains)
    }

    /// Chains shown (one per master row), not tree lines.
    fn shown(&self) -> (usize, usize) {
        let masters = self
            .view
            .keys
            .iter()
            .filter(|r| matches!(r, ChainRow::Master(_)))
            .count();
        (masters, self.view.total)
    }

    fn sort_label(&self) -> String {
        "by master".into()
    }

    /// The whole build is the scan: the tree needs the store's linkage throughout, and
    /// it covers only masters with children, a small part of a big table.
    fn job(&self, src: &Source) -> Job<BuiltRows> {
        let (filter, now, facts) = (src.filter.clone(), src.now, src.facts);
        Job::new(
            move |store: &Store| build(store, filter.as_deref(), now, &facts),
            |rows| Box::new(rows) as BuiltRows,
        )
    }

    fn shows_risk(&self) -> bool {
        true
    }

    fn accept(&mut self, rows: BuiltRows, gen: u64) {
        if let Ok(rows) = rows.downcast::<(Vec<ChainRow>, usize)>() {
            self.view.accept(rows.0, rows.1, gen);
        }
    }

    fn selected(&self) -> Option<Entry> {
        match self.view.selected()? {
            ChainRow::Expect { key, .. } => Some(Entry::Expect(key)),
            r => r.flow_key().map(Entry::Flow),
        }
    }

    /// A flow selects its master row if it is a master, else its RELATED row.
    fn select(&mut self, e: Entry) -> bool {
        let row = match e {
            Entry::Expect(key) => ChainRow::Expect { key, last: false },
            Entry::Flow(k) => {
                let related = ChainRow::Related {
                    key: k,
                    last: false,
                };
                if !self.view.keys.contains(&ChainRow::Master(k))
                    && self.view.keys.contains(&related)
                {
                    related
                } else {
                    ChainRow::Master(k)
                }
            }
        };
        self.view.select_key(row)
    }

    fn detail(&self, cx: &Ctx) -> Option<(&'static str, Vec<Line<'static>>)> {
        Some(match self.view.selected() {
            Some(ChainRow::Expect { key, .. }) => match cx.store.expectation(&key) {
                Some(e) => ("Expectation", detail::expectation(cx, e)),
                None => ("Expectation", vec![Line::from("(gone)")]),
            },
            Some(r) => match r.flow_key().and_then(|k| cx.store.flow(&k).map(|x| (k, x))) {
                Some((k, fl)) => ("Flow", detail::flow(cx, &k, fl)),
                None => ("Flow", vec![Line::from("(gone)")]),
            },
            None => ("Detail", vec![]),
        })
    }

    fn draw(&mut self, f: &mut Frame, cx: &Ctx, area: Rect) -> Drawn {
        let range = self.view.window(table::body_height(area));
        let t = cx.theme;
        let now = cx.now;
        let narrow = area.width < 60;
        let mut rows = Vec::new();
        for r in &self.view.keys[range.clone()] {
            let (tree, hname, risk, left, style): (String, &str, (String, Style), String, Style) =
                match r {
                    ChainRow::Master(k) => match cx.store.flow(k) {
                        Some(m) => (
                            format!(
                                "● {} {}",
                                text::proto_name(k.orig.proto),
                                text::conn(&k.orig)
                            ),
                            m.helper.shown().unwrap_or(""),
                            (String::new(), Style::new()),
                            text::dur_short(m.remaining(now)),
                            Style::new().bold(),
                        ),
                        None => (
                            format!("○ {} (master gone)", text::conn(&k.orig)),
                            "",
                            (String::new(), Style::new()),
                            String::new(),
                            t.dim,
                        ),
                    },
                    ChainRow::Expect { key, last } => {
                        let corner = if *last { "└─" } else { "├─" };
                        match cx.store.expectation(key) {
                            Some(e) => {
                                let h = e.helper.shown().unwrap_or("");
                                (
                                    format!("{corner} expect {}", text::expect_tuple(e)),
                                    h,
                                    cx.risk
                                        .expect(key)
                                        .map(|a| risk_badge(t, a, e.tuple.dport))
                                        .unwrap_or_default(),
                                    text::dur_short(e.remaining(now)),
                                    t.helper(h),
                                )
                            }
                            None => (
                                format!("{corner} expect (gone)"),
                                "",
                                (String::new(), Style::new()),
                                String::new(),
                                t.dim,
                            ),
                        }
                    }
                    ChainRow::Related { key, last } => {
                        let corner = if *last { "└─" } else { "├─" };
                        match cx.store.flow(key) {
                            Some(fl) => {
                                let h = display_helper(cx.store, key, fl).shown().unwrap_or("");
                                // Narrow screens keep the tuple whole rather than the words
                                // around it: `R` (as in the flows table) and no state.
                                let tree = if narrow {
                                    format!(
                                        "{corner} R {} {}",
                                        text::proto_name(key.orig.proto),
                                        text::conn(&key.orig)
                                    )
                                } else {
                                    format!(
                                        "{corner} RELATED {} {} {}",
                                        text::proto_name(key.orig.proto),
                                        text::conn(&key.orig),
                                        fl.state_name().unwrap_or("")
                                    )
                                };
                                (
                                    tree,
                                    h,
                                    risk_text(t, cx.risk.flow(key), key.orig.dport, true),
                                    text::dur_short(fl.remaining(now)),
                                    t.related.patch(t.helper(h)),
                                )
                            }
                            None => (
                                format!("{corner} RELATED (gone)"),
                                "",
                                (String::new(), Style::new()),
                                String::new(),
                                t.dim,
                            ),
                        }
                    }
                };
            let cells = ChainCol::ALL
                .iter()
                .map(|c| match c {
                    ChainCol::Tree => (tree.clone(), Style::new()),
                    ChainCol::Helper => (hname.to_owned(), t.helper(hname)),
                    ChainCol::Risk => risk.clone(),
                    ChainCol::Left => (left.clone(), Style::new()),
                })
                .collect();
            rows.push(TextRow { cells, style });
        }
        let empty = table::empty_message(self.view.total, "RELATED chains");
        let heads: Vec<String> = ChainCol::ALL.iter().map(|c| c.title().to_owned()).collect();
        let (_, drawn) = table::tail(
            f,
            t,
            area,
            &self.view,
            range.start,
            &empty,
            &ChainCol::ALL,
            &heads,
            rows,
        );
        drawn
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[cfg(test)]
mod stability {
    use super::*;
    use crate::tui::screens::testing::{ftp_expect, ftp_master, related, tcp, Fixture};

    /// A chain whose master sorts first arrives above the selected RELATED flow: the
    /// selection stays on that flow.
    #[test]
    fn selection_stays_on_its_row_while_chains_arrive_above() {
        let mut fx = Fixture::new();
        let ctl = tcp("10.0.0.5", 40000, "10.0.0.1", 21);
        fx.new_flow(ftp_master(ctl));
        let data = related(tcp("10.0.0.5", 40002, "10.0.0.1", 50000), ctl);
        fx.new_flow(data.clone());
        let mut s = Chains::default();
        fx.prepare(&mut s);
        let key = FlowKey::of(&data);
        assert!(s.select(Entry::Flow(key)));
        let before = s.view.sel;
        // Another master, sorting before, with one expectation: two rows above.
        let first = tcp("10.0.0.2", 40000, "10.0.0.1", 21);
        fx.new_flow(ftp_master(first));
        fx.new_expect(ftp_expect(first, "10.0.0.2", "10.0.0.1", 50010, 300));
        fx.prepare(&mut s);
        assert_eq!(s.selected(), Some(Entry::Flow(key)));
        assert_eq!(s.view.sel, before + 2, "{:?}", s.view.keys);
    }
}
