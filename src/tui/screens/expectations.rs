//! The expectations screen: what each helper told the kernel to let in, with its helper,
//! risk badge, master and time left. Owns the expectation columns (a new column is one
//! `ExpectCol` variant: its `Column` arms, its cell in `draw` and its sort value in
//! `sort_value`), the pure row build (`build`), selection, sort and drawing.
//!
//! This module must not change the store or reach the engine.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::Frame;

use crate::actions::Entry;
use crate::model::expect::flags as eflags;
use crate::model::store::{ExpectKey, FlowKey};
use crate::model::{Expectation, Store, Tuple};
use crate::tui::popups::detail;
use crate::tui::risk::RiskCache;
use crate::tui::text;
use crate::tui::view::{risk_rank, Column, SortVal, TableView};
use crate::tui::widgets::table::{self, TextRow};

use super::{risk_text, sort_title, Ctx, Drawn, Jump, SortedTable, Spec};

/// Expectation table columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectCol {
    Left,
    Helper,
    Risk,
    Tuple,
    Master,
    Flags,
    Class,
    Zone,
}

impl ExpectCol {
    pub const ALL: [ExpectCol; 8] = [
        ExpectCol::Left,
        ExpectCol::Helper,
        ExpectCol::Risk,
        ExpectCol::Tuple,
        ExpectCol::Master,
        ExpectCol::Flags,
        ExpectCol::Class,
        ExpectCol::Zone,
    ];
}

impl Column for ExpectCol {
    fn title(self) -> &'static str {
        match self {
            ExpectCol::Left => "Left",
            ExpectCol::Helper => "Helper",
            ExpectCol::Risk => "Risk",
            ExpectCol::Tuple => "Expected src:port → dst:port",
            ExpectCol::Master => "Master",
            ExpectCol::Flags => "Flags",
            ExpectCol::Class => "Class",
            ExpectCol::Zone => "Zone",
        }
    }

    fn width(self) -> u16 {
        match self {
            ExpectCol::Left => 7,
            ExpectCol::Helper => 6,
            ExpectCol::Risk => 7,
            ExpectCol::Tuple => 33,
            ExpectCol::Master => 22,
            ExpectCol::Flags => 10,
            ExpectCol::Class => 5,
            ExpectCol::Zone => 4,
        }
    }

    fn flexible(self) -> bool {
        matches!(self, ExpectCol::Tuple | ExpectCol::Master)
    }

    fn priority(self) -> u8 {
        match self {
            ExpectCol::Tuple => 0,
            ExpectCol::Helper => 1,
            ExpectCol::Left => 2,
            ExpectCol::Risk => 3,
            ExpectCol::Master => 4,
            ExpectCol::Flags => 5,
            ExpectCol::Class => 6,
            ExpectCol::Zone => 7,
        }
    }

    fn essential(self) -> bool {
        self == ExpectCol::Risk
    }
}

/// The value an expectation sorts by in column `col`.
fn sort_value(risk: &RiskCache, col: ExpectCol, e: &Expectation, now: u32) -> SortVal {
    use SortVal::{N, S};
    match col {
        ExpectCol::Left => N(u64::from(e.remaining(now))),
        ExpectCol::Helper => S(e.helper.name().unwrap_or("")),
        ExpectCol::Risk => N(risk_rank(risk.expect(&ExpectKey::of(e)))),
        ExpectCol::Tuple => N(0),
        ExpectCol::Master => N(0),
        ExpectCol::Flags => N(u64::from(e.flags)),
        ExpectCol::Class => N(u64::from(e.class)),
        ExpectCol::Zone => N(u64::from(e.zone)),
    }
}

/// What the expectations scan copies out: sort value, tie-breaking tuples, key.
pub type Scanned = Vec<(SortVal, (Tuple, Tuple, u16), ExpectKey)>;

/// Filter and copy out each shown expectation's sort value and key (under the store's
/// lock). Also the number of expectations before filtering.
pub fn scan(m: &Store, spec: &Spec<ExpectCol>) -> (Scanned, usize) {
    let (filter, risk, col, now) = (spec.filter, spec.risk, spec.sort, spec.now);
    let facts = spec.facts.context(m);
    let mut total = 0usize;
    let mut pairs: Scanned = Vec::new();
    m.expectations().for_each(|e| {
        total += 1;
        if filter.is_none_or(|x| x.match_expect_in(e, now, &facts)) {
            let second = if col == ExpectCol::Master {
                (e.master, e.tuple, e.zone)
            } else {
                (e.tuple, e.master, e.zone)
            };
            pairs.push((sort_value(risk, col, e, now), second, ExpectKey::of(e)));
        }
    });
    (pairs, total)
}

/// Sort what `scan` copied out (ties by tuple, so the order is total), in direction `desc`.
pub fn finish(mut pairs: Scanned, desc: bool) -> Vec<ExpectKey> {
    pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    let mut keys: Vec<ExpectKey> = pairs.into_iter().map(|(_, _, k)| k).collect();
    if desc {
        keys.reverse();
    }
    keys
}

/// The expectation keys: filter, then sort. Returns the keys and the number before
/// filtering. A pure function of the store and `spec`: `scan` then `finish`, as the view
/// builder runs them.
pub fn build(m: &Store, spec: &Spec<ExpectCol>) -> (Vec<ExpectKey>, usize) {
    let (pairs, total) = scan(m, spec);
    (finish(pairs, spec.desc), total)
}

/// The expectations screen's state: its row keys, selection and sort.
pub struct Expectations {
    pub view: TableView<ExpectKey>,
}

impl Default for Expectations {
    fn default() -> Expectations {
        let left = ExpectCol::ALL
            .iter()
            .position(|c| *c == ExpectCol::Left)
            .unwrap_or(0);
        Expectations {
            view: TableView::new(left),
        }
    }
}

impl SortedTable for Expectations {
    type Key = ExpectKey;
    type Col = ExpectCol;
    type Scanned = Scanned;
    const TITLES: (&'static str, &'static str) = ("Expectations", "Exp");
    const COLUMNS: &'static [ExpectCol] = &ExpectCol::ALL;

    fn sorts_by_risk(col: ExpectCol) -> bool {
        col == ExpectCol::Risk
    }

    fn view(&self) -> &TableView<ExpectKey> {
        &self.view
    }

    fn view_mut(&mut self) -> &mut TableView<ExpectKey> {
        &mut self.view
    }

    fn count(cx: &Ctx) -> usize {
        cx.summary.expects
    }

    fn scan(store: &Store, spec: &Spec<ExpectCol>) -> (Scanned, usize) {
        scan(store, spec)
    }

    fn finish(scanned: Scanned, desc: bool) -> Vec<ExpectKey> {
        finish(scanned, desc)
    }

    fn key(e: Entry) -> Option<ExpectKey> {
        e.expect()
    }

    /// `m` goes to the expectation's master on the flows screen.
    fn jump_from(&self, cx: &Ctx) -> Jump {
        self.view
            .selected()
            .and_then(|k| cx.store.expectation(&k))
            .map_or(Jump::Nothing, |e| {
                Jump::ToMaster(FlowKey::new(e.zone, e.master))
            })
    }

    fn detail_lines(&self, cx: &Ctx) -> (&'static str, Vec<Line<'static>>) {
        match self.view.selected().and_then(|k| cx.store.expectation(&k)) {
            Some(e) => ("Expectation", detail::expectation(cx, e)),
            None => ("Detail", vec![]),
        }
    }

    fn draw_rows(&mut self, f: &mut Frame, cx: &Ctx, area: Rect) -> Drawn {
        let range = self.view.window(table::body_height(area));
        let t = cx.theme;
        let now = cx.now;
        let cols = ExpectCol::ALL;
        let sorted = ExpectCol::ALL[self.view.sort];
        let heads: Vec<String> = cols
            .iter()
            .map(|c| sort_title(c.title(), *c == sorted, self.view.desc))
            .collect();
        let mut rows = Vec::new();
        for key in &self.view.keys[range.clone()] {
            let Some(e) = cx.store.expectation(key) else {
                let mut cells = vec![String::new(); cols.len()];
                cells[0] = "gone".into();
                rows.push(TextRow::plain(cells, t.dim));
                continue;
            };
            let hname = e.helper.shown().unwrap_or("");
            let risk = cx.risk.expect(key);
            let plain = |s: String| (s, Style::new());
            let cells = cols
                .iter()
                .map(|c| match c {
                    ExpectCol::Left => plain(text::dur_short(e.remaining(now))),
                    ExpectCol::Helper => (hname.to_owned(), t.helper(hname)),
                    ExpectCol::Risk => risk_text(t, risk, e.tuple.dport, true),
                    ExpectCol::Tuple => plain(text::expect_tuple(e)),
                    ExpectCol::Master if area.width < 120 => plain(text::conn_short(&e.master)),
                    ExpectCol::Master => plain(text::conn(&e.master)),
                    ExpectCol::Flags => plain(eflags::names(e.flags).collect::<Vec<_>>().join(",")),
                    ExpectCol::Class => plain(e.class.to_string()),
                    ExpectCol::Zone => plain(e.zone.to_string()),
                })
                .collect();
            rows.push(TextRow {
                cells,
                style: t.helper(hname),
            });
        }
        let empty = table::empty_message(self.view.total, "expectations");
        let (_, drawn) = table::tail(
            f,
            t,
            area,
            &self.view,
            range.start,
            &empty,
            &cols,
            &heads,
            rows,
        );
        drawn
    }
}

#[cfg(test)]
mod stability {
    use super::*;
    use crate::tui::screens::testing::{ftp_expect, ftp_master, tcp, Fixture};
    use crate::tui::screens::Screen;

    /// Expectations with less time left (the default sort) arrive: the selection stays on
    /// its expectation.
    #[test]
    fn selection_stays_on_its_expectation_while_rows_arrive_above() {
        let mut fx = Fixture::new();
        let ctl = tcp("10.0.0.2", 40000, "10.0.0.1", 21);
        fx.new_flow(ftp_master(ctl));
        let picked = ftp_expect(ctl, "10.0.0.2", "10.0.0.1", 50000, 200);
        fx.new_expect(ftp_expect(ctl, "10.0.0.2", "10.0.0.1", 50001, 250));
        fx.new_expect(picked.clone());
        let mut s = Expectations::default();
        fx.prepare(&mut s);
        let key = ExpectKey::of(&picked);
        assert!(s.select(Entry::Expect(key)));
        let before = s.view.sel;
        for port in 50010..50013 {
            fx.new_expect(ftp_expect(ctl, "10.0.0.2", "10.0.0.1", port, 50));
        }
        fx.prepare(&mut s);
        assert_eq!(s.selected(), Some(Entry::Expect(key)));
        assert_eq!(s.view.sel, before + 3, "{:?}", s.view.keys);
    }
}
