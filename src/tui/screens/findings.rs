//! The findings screen: one row per helper-risk finding (most severe kind first) and,
//! below, the selected finding in full: its entry, the table row, detail and fix. Enter
//! goes to the entry on the screen that lists it. Owns its columns (`FindingCol`), the
//! pure row build (`build`), selection and drawing; its rows point into the risk cache,
//! so they are rebuilt whenever the cache is.
//!
//! ```text
//! Kind                 Helper Entry
//! sensitive port       ftp    expect 10.213.4.1:any → 10.213.4.7:3306
//! ┌ Finding ─────────────────────────────────────────────────────────────────┐
//! │ detail …  fix …   (Enter: go to the entry)                                │
//! ```
//!
//! This module must not change the store or reach the engine.

use std::any::Any;

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

use crate::actions::Entry;
use crate::filter::Filter;
use crate::model::Store;
use crate::tui::popups::detail::{escaped, fields_line};
use crate::tui::risk::{self as trisk, FindingRow, RiskCache, Subject};
use crate::tui::text;
use crate::tui::theme::Theme;
use crate::tui::view::{Column, Rows, TableView};
use crate::tui::widgets::table::{self, TextRow};
use crate::tui::widgets::thousands;
use crate::tui::worker::Job;

use super::{display_helper, BuiltRows, Ctx, Drawn, Jump, Screen, Source};

/// Columns of the findings list (the selected finding is shown in full below it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingCol {
    Kind,
    Helper,
    Entry,
}

impl FindingCol {
    pub const ALL: [FindingCol; 3] = [FindingCol::Kind, FindingCol::Helper, FindingCol::Entry];
}

impl Column for FindingCol {
    fn title(self) -> &'static str {
        match self {
            FindingCol::Kind => "Kind",
            FindingCol::Helper => "Helper",
            FindingCol::Entry => "Entry",
        }
    }

    fn width(self) -> u16 {
        match self {
            FindingCol::Kind => 20,
            FindingCol::Helper => 6,
            FindingCol::Entry => 20,
        }
    }

    fn flexible(self) -> bool {
        self == FindingCol::Entry
    }

    fn priority(self) -> u8 {
        match self {
            FindingCol::Entry => 0,
            FindingCol::Kind => 1,
            FindingCol::Helper => 2,
        }
    }
}

/// Rebuild the findings rows: the risk cache's order (most severe kind first), keeping
/// those whose entry matches the filter.
/// A pure function of the store, the risk cache and the filter at `now`.
pub fn build(
    m: &Store,
    risk: &RiskCache,
    filter: Option<&Filter>,
    now: u32,
    facts: &super::Facts,
) -> (Vec<FindingRow>, usize) {
    let rows = risk.rows();
    let Some(x) = filter else {
        return (rows.to_vec(), rows.len());
    };
    let facts = facts.context(m);
    let keep = |r: &&FindingRow| match r.subject {
        Subject::Expect(k) => m
            .expectation(&k)
            .is_some_and(|e| x.match_expect_in(e, now, &facts)),
        Subject::Flow(k) => m.flow(&k).is_some_and(|f| x.match_flow_in(f, now, &facts)),
    };
    (rows.iter().filter(keep).copied().collect(), rows.len())
}

/// How a finding's entry is named in the findings screen.
fn subject_text(cx: &Ctx, s: &Subject) -> (String, &'static str) {
    match s {
        Subject::Expect(k) => match cx.store.expectation(k) {
            Some(e) => (
                format!("expect {}", text::expect_tuple(e)),
                e.helper.shown().unwrap_or(""),
            ),
            None => (format!("expect {} (gone)", text::conn(&k.tuple)), ""),
        },
        Subject::Flow(k) => match cx.store.flow(k) {
            Some(fl) => (
                format!(
                    "RELATED {} {}",
                    text::proto_name(k.orig.proto),
                    text::conn(&k.orig)
                ),
                display_helper(cx.store, k, fl).shown().unwrap_or(""),
            ),
            None => (format!("RELATED {} (gone)", text::conn(&k.orig)), ""),
        },
    }
}

fn finding_lines(cx: &Ctx, t: &Theme, r: &FindingRow) -> Option<Vec<Line<'static>>> {
    let (a, fd) = cx.risk.finding(r)?;
    let (entry, _) = subject_text(cx, &r.subject);
    let label = |k: &str| Span::styled(format!("{k}: "), t.dim);
    let mut l = vec![
        Line::from(vec![
            label("kind"),
            Span::styled(
                format!("{} ({})", trisk::kind_label(fd.kind), fd.kind.name()),
                t.finding,
            ),
        ]),
        Line::from(vec![label("entry"), Span::raw(entry)]),
        Line::from(vec![
            label("freedom"),
            Span::raw(format!(
                "{}{}",
                fields_line(&a.freedom),
                a.row
                    .as_ref()
                    .map(|x| format!(" (table: {x})"))
                    .unwrap_or_default()
            )),
        ]),
        Line::from(vec![label("detail"), Span::raw(escaped(fd.detail.clone()))]),
        Line::from(vec![
            label("fix"),
            Span::styled(escaped(fd.fix.clone()), t.ok),
        ]),
    ];
    l.push(Line::from(Span::styled(
        "Enter: go to the entry · d: delete it · H: flush its helper's expectations",
        t.dim,
    )));
    Some(l)
}

/// The findings screen's state: its rows (pointing into the risk cache) and selection.
#[derive(Default)]
pub struct Findings {
    pub view: TableView<FindingRow>,
}

impl Screen for Findings {
    fn titles(&self) -> (&'static str, &'static str) {
        ("Findings", "Risk")
    }

    fn rows(&self) -> &dyn Rows {
        &self.view
    }

    fn rows_mut(&mut self) -> &mut dyn Rows {
        &mut self.view
    }

    fn tab_count(&self, cx: &Ctx) -> String {
        match cx.risk.count() {
            0 => "0".into(),
            n => format!("!{}", thousands(n)),
        }
    }

    fn sort_label(&self) -> String {
        "by kind".into()
    }

    /// Rebuilt whenever the risk cache is (or the filter changes), also while paused.
    /// Findings follow the risk cache (`risk_rebuilt`), not every store change; the
    /// filter reads the store, so the whole build is the scan.
    fn job(&self, src: &Source) -> Job<BuiltRows> {
        let src = src.clone();
        Job::new(
            move |store: &Store| {
                build(store, &src.risk, src.filter.as_deref(), src.now, &src.facts)
            },
            |rows| Box::new(rows) as BuiltRows,
        )
    }

    fn accept(&mut self, rows: BuiltRows, gen: u64) {
        if let Ok(rows) = rows.downcast::<(Vec<FindingRow>, usize)>() {
            self.view.accept(rows.0, rows.1, gen);
        }
    }

    /// Rebuilt when the risk cache is (`risk_rebuilt`) or the settings change, not on
    /// every store change: rows point into the cache.
    fn data_driven(&self) -> bool {
        false
    }

    fn risk_rebuilt(&mut self) {
        self.view.built = None;
    }

    /// Its rows are the verdicts' findings.
    fn build_reads_risk(&self) -> bool {
        true
    }

    fn selected(&self) -> Option<Entry> {
        self.view.selected().map(|r| match r.subject {
            Subject::Expect(k) => Entry::Expect(k),
            Subject::Flow(k) => Entry::Flow(k),
        })
    }

    fn select(&mut self, e: Entry) -> bool {
        let found = self.view.keys.iter().position(|r| match (r.subject, e) {
            (Subject::Expect(a), Entry::Expect(b)) => a == b,
            (Subject::Flow(a), Entry::Flow(b)) => a == b,
            _ => false,
        });
        found.is_some_and(|i| {
            self.view.select(i);
            true
        })
    }

    fn jump(&self, _cx: &Ctx) -> Jump {
        Jump::Refuse("Enter goes to the finding's entry; m works from there")
    }

    fn has_detail(&self) -> bool {
        false
    }

    fn goto(&self) -> Option<Entry> {
        self.selected()
    }

    fn detail(&self, _cx: &Ctx) -> Option<(&'static str, Vec<Line<'static>>)> {
        None
    }

    fn draw(&mut self, f: &mut Frame, cx: &Ctx, area: Rect) -> Drawn {
        let t = cx.theme;
        let pane_h = (area.height * 11 / 20).max(6.min(area.height));
        let [list, pane] =
            Layout::vertical([Constraint::Min(2), Constraint::Length(pane_h)]).areas(area);
        let range = self.view.window(table::body_height(list));
        // Narrow screens read one line per finding: its kind, then its entry.
        let narrow = list.width < 60;
        let cols: &[FindingCol] = if narrow {
            &[FindingCol::Entry]
        } else {
            &FindingCol::ALL
        };
        let heads: Vec<String> = if narrow {
            vec!["Finding → entry".into()]
        } else {
            cols.iter().map(|c| c.title().to_owned()).collect()
        };
        let mut rows = Vec::new();
        for r in &self.view.keys[range.clone()] {
            let Some((_, fd)) = cx.risk.finding(r) else {
                rows.push(TextRow::plain(vec!["gone".into()], t.dim));
                continue;
            };
            let (entry, h) = subject_text(cx, &r.subject);
            let kind = format!("!{}", trisk::kind_label(fd.kind));
            let cells = if narrow {
                vec![(format!("{kind} {entry}"), Style::new())]
            } else {
                vec![
                    (kind, t.warn),
                    (h.to_owned(), t.helper(h)),
                    (entry, Style::new()),
                ]
            };
            rows.push(TextRow {
                cells,
                style: Style::new(),
            });
        }
        let empty = if cx.risk.count() == 0 {
            "no findings: no expectation or RELATED flow looks abused"
        } else {
            "no findings match the filter"
        };
        let (_, drawn) = table::tail(
            f,
            t,
            list,
            &self.view,
            range.start,
            empty,
            cols,
            &heads,
            rows,
        );
        let lines = self
            .view
            .selected()
            .and_then(|r| finding_lines(cx, t, &r))
            .unwrap_or_default();
        let block = Block::default()
            .borders(Borders::TOP)
            .border_style(t.border)
            .title(Span::styled(" Finding ", t.title));
        f.render_widget(
            Paragraph::new(lines)
                .block(block)
                .wrap(ratatui::widgets::Wrap { trim: true }),
            pane,
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
    use crate::model::store::ExpectKey;
    use crate::tui::screens::testing::{ftp_expect, ftp_master, tcp, Fixture};

    /// A finding that sorts before the selected one appears: the selection stays on the
    /// finding it was on.
    #[test]
    fn selection_stays_on_its_finding_while_findings_arrive_above() {
        let mut fx = Fixture::new().with_risk();
        // A forged PORT toward a database on another host (the lab's finding).
        let evil = tcp("10.213.4.66", 41000, "10.213.4.1", 21);
        fx.new_flow(ftp_master(evil));
        let picked = ftp_expect(evil, "10.213.4.1", "10.213.4.7", 3306, 299);
        fx.new_expect(picked.clone());
        let mut s = Findings::default();
        fx.prepare(&mut s);
        let key = ExpectKey::of(&picked);
        assert!(!s.view.keys.is_empty(), "the forged PORT is a finding");
        assert!(s.select(Entry::Expect(key)));
        let before = s.view.sel;
        // The same forgery toward a host that sorts first.
        let other = tcp("10.213.4.65", 41000, "10.213.4.1", 21);
        fx.new_flow(ftp_master(other));
        fx.new_expect(ftp_expect(other, "10.213.4.1", "10.213.4.3", 3306, 299));
        fx.prepare(&mut s);
        assert_eq!(s.selected(), Some(Entry::Expect(key)));
        assert!(s.view.sel > before, "{:?}", s.view.keys);
    }
}
