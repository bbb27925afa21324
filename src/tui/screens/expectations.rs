//! The expectations screen: what each helper told the kernel to let in, with its helper,
//! risk badge, master and time left. Owns the expectation columns (a new column is one
//! `ExpectCol` variant: its `Column` arms, its cell in `draw` and its sort value in
//! `sort_value`), the pure row build (`build`), selection, sort and drawing.
//!
//! This module must not change the store or reach the engine.

use std::any::Any;

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::Frame;

use crate::actions::Entry;
use crate::filter::Filter;
use crate::model::expect::flags as eflags;
use crate::model::store::{ExpectKey, FlowKey};
use crate::model::{Expectation, Store};
use crate::tui::keymap::Action;
use crate::tui::popups::detail;
use crate::tui::risk::RiskCache;
use crate::tui::text;
use crate::tui::view::{risk_rank, Column, SortVal, TableView};
use crate::tui::widgets::table::{self, TextRow};
use crate::tui::widgets::thousands;

use super::{risk_text, sort_title, Ctx, Drawn, Jump, Screen};

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

/// What the expectation rows are built from: everything `build` reads besides the store.
pub struct Spec<'a> {
    pub filter: Option<&'a Filter>,
    /// Risk badges, for sorting by Risk.
    pub risk: &'a RiskCache,
    pub sort: ExpectCol,
    pub desc: bool,
    pub now: u32,
}

/// The expectation keys: filter, then sort (ties by tuple, so the order is total).
/// Returns the keys and the number before filtering. A pure function of the store and
/// `spec`.
pub fn build(m: &Store, spec: &Spec) -> (Vec<ExpectKey>, usize) {
    let (filter, risk, col, desc, now) = (spec.filter, spec.risk, spec.sort, spec.desc, spec.now);
    let mut total = 0usize;
    let mut pairs: Vec<(
        SortVal,
        (crate::model::Tuple, crate::model::Tuple, u16),
        ExpectKey,
    )> = Vec::new();
    m.expectations().for_each(|e| {
        total += 1;
        if filter.is_none_or(|x| x.match_expect(e, now)) {
            let second = if col == ExpectCol::Master {
                (e.master, e.tuple, e.zone)
            } else {
                (e.tuple, e.master, e.zone)
            };
            pairs.push((sort_value(risk, col, e, now), second, ExpectKey::of(e)));
        }
    });
    pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    let mut keys: Vec<ExpectKey> = pairs.into_iter().map(|(_, _, k)| k).collect();
    if desc {
        keys.reverse();
    }
    (keys, total)
}

/// The expectations screen's state: its row keys, selection and sort.
pub struct Expectations {
    pub view: TableView<ExpectKey>,
}

impl Expectations {
    pub fn new() -> Expectations {
        let left = ExpectCol::ALL
            .iter()
            .position(|c| *c == ExpectCol::Left)
            .unwrap_or(0);
        Expectations {
            view: TableView::new(left),
        }
    }
}

impl Default for Expectations {
    fn default() -> Expectations {
        Expectations::new()
    }
}

impl Screen for Expectations {
    fn title(&self) -> &'static str {
        "Expectations"
    }

    fn short_title(&self) -> &'static str {
        "Exp"
    }

    fn tab_count(&self, cx: &Ctx) -> String {
        thousands(cx.summary.expects)
    }

    fn shown(&self) -> (usize, usize) {
        (self.view.keys.len(), self.view.total)
    }

    fn sort_label(&self) -> String {
        super::sort_label(ExpectCol::ALL[self.view.sort].title(), self.view.desc)
    }

    fn sort(&mut self, a: Action) -> Result<(), &'static str> {
        let n = ExpectCol::ALL.len();
        super::cycle_sort(a, &mut self.view.sort, &mut self.view.desc, n);
        self.view.built = None;
        Ok(())
    }

    fn prepare(&mut self, cx: &Ctx, gen: u64, due: &dyn Fn(Option<u64>) -> bool) -> bool {
        if !due(self.view.built) {
            return false;
        }
        let spec = Spec {
            filter: cx.filter,
            risk: cx.risk,
            sort: ExpectCol::ALL[self.view.sort],
            desc: self.view.desc,
            now: cx.now,
        };
        let (keys, total) = build(cx.store, &spec);
        self.view.set_keys(keys, total);
        self.view.built = Some(gen);
        true
    }

    fn invalidate(&mut self) {
        self.view.built = None;
    }

    fn move_by(&mut self, delta: isize) {
        self.view.move_by(delta);
    }

    fn selected(&self) -> Option<Entry> {
        self.view.selected().map(Entry::Expect)
    }

    fn select(&mut self, e: Entry) -> bool {
        match e {
            Entry::Expect(k) => self.view.select_key(k),
            Entry::Flow(_) => false,
        }
    }

    fn lists(&self, e: &Entry) -> bool {
        matches!(e, Entry::Expect(_))
    }

    /// `m` goes to the expectation's master on the flows screen.
    fn jump(&self, cx: &Ctx) -> Jump {
        self.view
            .selected()
            .and_then(|k| cx.store.expectation(&k))
            .map_or(Jump::Nothing, |e| {
                Jump::ToMaster(FlowKey::new(e.zone, e.master))
            })
    }

    fn detail(&self, cx: &Ctx) -> Option<(&'static str, Vec<Line<'static>>)> {
        Some(
            match self.view.selected().and_then(|k| cx.store.expectation(&k)) {
                Some(e) => ("Expectation", detail::expectation(cx, e)),
                None => ("Detail", vec![]),
            },
        )
    }

    fn draw(&mut self, f: &mut Frame, cx: &Ctx, area: Rect) -> Drawn {
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

    fn as_any(&self) -> &dyn Any {
        self
    }
}
