//! The Top screen: who fills the table. Live flows grouped by one key (`b` cycles source,
//! destination, destination port, source /24 or /64, zone, mark, helper, protocol and
//! state, NAT target), with per group the count, its share of `nf_conntrack_max`, the
//! UNREPLIED share (what early drop takes first), new and destroyed flows per second over
//! the last 10 s and bytes per second where accounting is on.
//!
//! ```text
//! src            Flows  %max Unrepl  New/s Gone/s Bytes/s
//! 10.0.0.9       5,000 19.1%    98%  120.4  118.0    1.2M
//! 10.0.0.10         50  0.2%     0%    0.0    0.0       -
//! ```
//!
//! The model is `model::top::Top`: counts come from a pass over the store
//! (`Top::count_where`, run by the view builder off the main thread and paced by its
//! cost like every view), rates from the records the app shows it before the store
//! applies them (`Screen::observe`), re-read once a second (`Screen::tick`). Both honour the dashboard's filter. Rows are groups, not entries:
//! Enter shows the group on the flows screen (its filter applied) and `F` flushes it,
//! both through `Screen::group_filter`, the expression `Top::filter_of` proves exact.
//!
//! This module must not change the store or reach the engine.

use std::any::Any;
use std::sync::Arc;

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::actions::Entry;
use crate::filter::Filter;
use crate::model::store::FlowKey;
use crate::model::top::{self as model, GroupBy, GroupKey, Row, Sort};
use crate::model::Store;
use crate::model::{Event, Record};
use crate::tui::counters;
use crate::tui::keymap::Action;
use crate::tui::text;
use crate::tui::view::{Column, Rows, TableView};
use crate::tui::widgets::table::{self, TextRow};
use crate::tui::widgets::thousands;

use super::{sort_label, sort_title, BuiltRows, Ctx, Drawn, Facts, Screen, Source};
use crate::tui::worker::{self, Job};

/// Groups listed at most: the largest by the current sort. A source-keyed table of a
/// million distinct sources has a million groups; nobody scrolls past the first thousand,
/// and the tab says how many there are.
pub const LIMIT: usize = 1000;

/// Top columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TopCol {
    Group,
    Flows,
    Share,
    Unreplied,
    New,
    Destroyed,
    Bytes,
}

impl TopCol {
    pub const ALL: [TopCol; 7] = [
        TopCol::Group,
        TopCol::Flows,
        TopCol::Share,
        TopCol::Unreplied,
        TopCol::New,
        TopCol::Destroyed,
        TopCol::Bytes,
    ];

    /// The model's order for this column (the share sorts as the count does).
    fn sort(self) -> Sort {
        match self {
            TopCol::Group => Sort::Key,
            TopCol::Flows | TopCol::Share => Sort::Count,
            TopCol::Unreplied => Sort::Unreplied,
            TopCol::New => Sort::New,
            TopCol::Destroyed => Sort::Destroyed,
            TopCol::Bytes => Sort::Bytes,
        }
    }
}

/// The columns `s`/`S` cycle through, in order (the share is the count's).
const SORTS: [TopCol; 6] = [
    TopCol::Flows,
    TopCol::Unreplied,
    TopCol::New,
    TopCol::Destroyed,
    TopCol::Bytes,
    TopCol::Group,
];

impl Column for TopCol {
    fn title(self) -> &'static str {
        match self {
            TopCol::Group => "Group",
            TopCol::Flows => "Flows",
            TopCol::Share => "%max",
            TopCol::Unreplied => "Unrepl",
            TopCol::New => "New/s",
            TopCol::Destroyed => "Gone/s",
            TopCol::Bytes => "Bytes/s",
        }
    }

    fn width(self) -> u16 {
        match self {
            TopCol::Group => 16,
            TopCol::Flows => 6,
            TopCol::Share => 5,
            TopCol::Unreplied => 6,
            TopCol::New => 6,
            TopCol::Destroyed => 6,
            TopCol::Bytes => 7,
        }
    }

    fn flexible(self) -> bool {
        self == TopCol::Group
    }

    fn priority(self) -> u8 {
        match self {
            TopCol::Group => 0,
            TopCol::Flows => 1,
            TopCol::Share => 2,
            TopCol::Unreplied => 3,
            TopCol::New => 4,
            TopCol::Destroyed => 5,
            TopCol::Bytes => 6,
        }
    }
}

/// The Top screen's state: the live grouping, its rows and the selection (which follows
/// its group across passes).
pub struct Top {
    model: model::Top,
    pub view: TableView<GroupKey>,
    /// The rows of `view.keys`, same order.
    pub rows: Vec<Row>,
    /// Store generation of the last pass (what the app's `due` budgets).
    counted: Option<u64>,
    /// Store second the rows were read at (rates move with time alone).
    read_at: Option<u32>,
    /// The filter and facts of the last pass: records are observed under the same filter.
    /// A new filter is a new `Arc` (the app compiles it once), which is how a pass under
    /// another filter is told apart.
    filter: Option<Arc<Filter>>,
    facts: Facts,
}

impl Default for Top {
    fn default() -> Top {
        let mut view = TableView::new(0);
        // `desc` here means "the model's own order" (largest first): see `reversed`.
        view.desc = false;
        Top {
            model: model::Top::new(GroupBy::Src),
            view,
            rows: Vec::new(),
            counted: None,
            read_at: None,
            filter: None,
            facts: Facts::default(),
        }
    }
}

impl Top {
    /// What the rows are grouped by.
    pub fn by(&self) -> GroupBy {
        self.model.by()
    }

    fn sorted(&self) -> TopCol {
        SORTS[self.view.sort % SORTS.len()]
    }

    /// Whether the arrow points down: the metrics' own order is largest first, the key's
    /// is ascending; `r` (`view.desc`) reverses either.
    fn arrow_down(&self) -> bool {
        (self.sorted() != TopCol::Group) != self.view.desc
    }

    /// Read the rows from the model at store time `now`.
    fn read(&mut self, now: u32) {
        let mut rows = self.model.rows(self.sorted().sort(), LIMIT, now);
        if self.view.desc {
            rows.reverse();
        }
        let keys = rows.iter().map(|r| r.key).collect();
        self.rows = rows;
        self.view.set_keys(keys, self.model.groups());
        self.read_at = Some(now);
    }

    /// Whether rates are known: no flow event seen yet means "not measured", not zero.
    fn rates_known(&self) -> bool {
        self.model.observed() > 0
    }
}

/// `conntrack -S`'s counters and the expectation counters as rates, each whole or left
/// out at the end; the ones that moved highlighted (trouble in the error style).
fn strip(cx: &Ctx, rates: &[(&'static str, f64)], width: u16) -> Line<'static> {
    let t = cx.theme;
    let mut spans = vec![Span::styled("kernel/s:", t.dim)];
    let mut used = text::width("kernel/s:");
    for (name, v) in rates {
        let item = format!(
            " {name} {}",
            counters::per_second(*v).trim_end_matches("/s")
        );
        let w = text::width(&item);
        if used + w > usize::from(width) {
            break;
        }
        used += w;
        let style = match (*v > 0.0, counters::TROUBLE.contains(name)) {
            (true, true) => t.error,
            (true, false) => t.base,
            (false, _) => t.dim,
        };
        spans.push(Span::styled(item, style));
    }
    Line::from(spans)
}

/// A rate cell: one decimal, whole thousands (`12k`) from ten thousand on.
pub fn rate(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else {
        format!("{v:.1}")
    }
}

/// A share cell: `0%`, `<0.1%`, one decimal below 10%, whole above.
pub fn percent(share: f64) -> String {
    let p = share * 100.0;
    if p == 0.0 {
        "0%".into()
    } else if p < 0.1 {
        "<0.1%".into()
    } else if p < 10.0 {
        format!("{p:.1}%")
    } else {
        format!("{p:.0}%")
    }
}

impl Screen for Top {
    fn titles(&self) -> (&'static str, &'static str) {
        ("Top", "Top")
    }

    /// Groups found by the last pass; nothing before the first (the pass runs only while
    /// Top is shown), rather than a zero that is not true.
    fn tab_count(&self, _cx: &Ctx) -> String {
        match self.counted {
            Some(_) => thousands(self.model.groups()),
            None => String::new(),
        }
    }

    fn rows(&self) -> &dyn Rows {
        &self.view
    }

    fn rows_mut(&mut self) -> &mut dyn Rows {
        &mut self.view
    }

    fn sort_label(&self) -> String {
        format!(
            "by {} · {}",
            self.model.by().name(),
            sort_label(self.sorted().title(), self.arrow_down())
        )
    }

    fn sort(&mut self, a: Action) -> Result<(), &'static str> {
        let n = SORTS.len();
        match a {
            Action::SortNext => self.view.sort = (self.view.sort + 1) % n,
            Action::SortPrev => self.view.sort = (self.view.sort + n - 1) % n,
            _ => self.view.desc = !self.view.desc,
        }
        // Re-reading the groups is enough: the counts did not change.
        if let Some(now) = self.read_at {
            self.read(now);
        }
        Ok(())
    }

    /// The pass over the store, filtered as the dashboard is, rated for bytes/s and
    /// ranked on the worker; the counts come back to `accept`, which takes them into the
    /// model beside the event rates the main thread counted.
    fn job(&self, src: &Source) -> Job<BuiltRows> {
        let (by, bytes) = (self.model.by(), self.model.sums_bytes());
        // What bytes/s are measured against, so the walk that rates every group runs
        // with the pass, not in `accept`.
        let since = self.model.since(src.now);
        let src = src.clone();
        Job::with_lanes(
            move |store: &Store, lanes: worker::Lanes| {
                let now = src.now;
                // A regrouping while the pass runs makes it stale: it stops, and the
                // worker turns to the new grouping's pass.
                let stop = worker::cancelled;
                let counted = match &src.filter {
                    Some(x) => {
                        let facts = src.facts.context(store);
                        model::Top::count_until(
                            by,
                            bytes,
                            store,
                            |f| x.match_flow_in(f, now, &facts),
                            stop,
                        )
                    }
                    // The pass the admin waits for (a spec build) may take two threads.
                    None => model::Top::count_split(by, bytes, store, lanes.get(), stop),
                };
                (counted, src)
            },
            // Ranked here, off the main thread (which re-reads the rows every second)
            // and after the store's lock is let go.
            move |(counted, src): (model::Counted, Source)| {
                let mut counted = counted.rated(since);
                counted.rank(LIMIT);
                Box::new((counted, src)) as BuiltRows
            },
        )
    }

    fn accept(&mut self, rows: BuiltRows, gen: u64) {
        let Ok(built) = rows.downcast::<(model::Counted, Source)>() else {
            return;
        };
        let (counted, src) = *built;
        let same = match (&self.filter, &src.filter) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        if !same {
            // Another filter: the rates counted under the old one are not this filter's
            // (they would list groups the filter hides), so they restart, unknown.
            self.model = model::Top::new(self.model.by());
            self.filter = src.filter.clone();
        }
        self.facts = src.facts;
        if self.model.install(counted, src.now) {
            self.counted = Some(gen);
            self.view.built = Some(gen);
            self.read(src.now);
        }
    }

    /// Rates move with time alone: the rows are re-read once a second.
    fn tick(&mut self, now: u32) {
        if self.counted.is_some() && self.read_at != Some(now) {
            self.read(now);
        }
    }

    fn invalidate(&mut self) {
        self.view.built = None;
    }

    fn selected(&self) -> Option<Entry> {
        None
    }

    fn select(&mut self, _e: Entry) -> bool {
        false
    }

    fn has_detail(&self) -> bool {
        false
    }

    fn detail(&self, _cx: &Ctx) -> Option<(&'static str, Vec<Line<'static>>)> {
        None
    }

    fn observe(&mut self, store: &Store, event: Event, record: &Record, now: u32) {
        if let (Some(x), Record::Flow(f)) = (&self.filter, record) {
            // A DESTROY carries neither helper nor mark: judge the flow the store knew.
            let known = store.flow(&FlowKey::of(f)).unwrap_or(f);
            if !x.match_flow_in(known, now, &self.facts.context(store)) {
                return;
            }
        }
        self.model.observe(store, event, record, now);
    }

    fn group_filter(&self) -> Option<Result<String, &'static str>> {
        let key = self.view.selected();
        let row = key.and_then(|k| self.rows.iter().find(|r| r.key == k));
        Some(match row {
            None => Err("no group is selected"),
            Some(r) => r
                .filter
                .clone()
                .ok_or("this group has no exact filter (no helper, or a state not known yet)"),
        })
    }

    fn group_by(&mut self) -> Result<&'static str, &'static str> {
        let all = GroupBy::ALL;
        let i = all.iter().position(|b| *b == self.model.by()).unwrap_or(0);
        let next = all[(i + 1) % all.len()];
        self.model.set_by(next);
        self.view.set_keys(Vec::new(), 0);
        self.rows.clear();
        self.view.built = None;
        Ok(next.name())
    }

    fn draw(&mut self, f: &mut Frame, cx: &Ctx, area: Rect) -> Drawn {
        // The kernel's counters as rates on the first line, when read and there is room.
        let area = match &cx.counters.rates {
            Some(rates) if area.height > 3 => {
                let line = Rect { height: 1, ..area };
                f.render_widget(Paragraph::new(strip(cx, rates, area.width)), line);
                Rect {
                    y: area.y + 1,
                    height: area.height - 1,
                    ..area
                }
            }
            _ => area,
        };
        let range = self.view.window(table::body_height(area));
        let t = cx.theme;
        let max = cx.conntrack_max.filter(|m| *m > 0);
        let bytes = self.rows.iter().any(|r| r.bytes_per_s.is_some());
        // Columns without a value anywhere are left out whole: no share without a known
        // maximum, no bytes/s without accounting.
        let cols: Vec<TopCol> = TopCol::ALL
            .into_iter()
            .filter(|c| match c {
                TopCol::Share => max.is_some(),
                TopCol::Bytes => bytes,
                _ => true,
            })
            .collect();
        let (sorted, down) = (self.sorted(), self.arrow_down());
        let heads: Vec<String> = cols
            .iter()
            .map(|c| {
                let title = match c {
                    TopCol::Group => self.model.by().name(),
                    c => c.title(),
                };
                let on = *c == sorted || (*c == TopCol::Share && sorted == TopCol::Flows);
                sort_title(title, on, down)
            })
            .collect();
        let known = self.rates_known();
        let rows = self.rows[range.clone()]
            .iter()
            .map(|r| {
                let plain = |s: String| (s, Style::new());
                let cells = cols
                    .iter()
                    .map(|c| match c {
                        TopCol::Group => plain(crate::escape::escape(&r.label).into_owned()),
                        TopCol::Flows => plain(thousands(r.flows as usize)),
                        TopCol::Share => {
                            plain(max.map_or(String::new(), |m| percent(r.share_of(m))))
                        }
                        TopCol::Unreplied if r.unreplied > 0 => {
                            (percent(r.unreplied_share()), t.warn)
                        }
                        TopCol::Unreplied => plain(percent(0.0)),
                        TopCol::New if known => plain(rate(r.new_per_s)),
                        TopCol::Destroyed if known => plain(rate(r.destroyed_per_s)),
                        TopCol::New | TopCol::Destroyed => ("?".into(), t.dim),
                        TopCol::Bytes => match r.bytes_per_s {
                            Some(b) => plain(text::bytes(b.round() as u64)),
                            None => ("-".into(), t.dim),
                        },
                    })
                    .collect();
                TextRow {
                    cells,
                    style: Style::new(),
                }
            })
            .collect();
        // Between `b` (or the screen's opening) and the pass's answer the table is empty
        // because the groups are being counted, not because the table is: say so.
        let empty = if self.view.built.is_none() {
            format!("counting the flows by {}…", self.model.by().name())
        } else if self.view.total == 0 && cx.filter.is_some() {
            "no flows match the filter".to_owned()
        } else {
            format!("no flows yet to group by {}", self.model.by().name())
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::flow::status;
    use crate::tui::screens::testing::{flow, tcp, Fixture};

    /// NEW flows from `src` (source ports 1000 + `ports`) to 10.0.0.1:80 at second 1.
    fn connect(fx: &mut Fixture, s: &mut Top, src: &str, ports: std::ops::Range<u16>) {
        for p in ports {
            let f = flow(tcp(src, 1000 + p, "10.0.0.1", 80), 100);
            feed(fx, s, Event::New, f, 1);
        }
    }

    fn feed(fx: &mut Fixture, s: &mut Top, event: Event, f: crate::model::Flow, now: u32) {
        let r = Record::Flow(f);
        s.observe(&fx.store, event, &r, now);
        fx.store.apply(event, r, now);
    }

    /// Groups are counted from the store, ordered largest first, and the selection stays
    /// on its group while a smaller group grows past it.
    #[test]
    fn groups_by_source_and_the_selection_follows_its_group() {
        let mut fx = Fixture::new();
        let mut s = Top::default();
        connect(&mut fx, &mut s, "10.0.0.9", 0..5);
        connect(&mut fx, &mut s, "10.0.0.7", 0..2);
        fx.prepare(&mut s);
        let labels: Vec<(&str, u64)> = s.rows.iter().map(|r| (r.label.as_str(), r.flows)).collect();
        assert_eq!(labels, [("10.0.0.9", 5), ("10.0.0.7", 2)]);
        s.move_by(1);
        let picked = s.view.selected();
        connect(&mut fx, &mut s, "10.0.0.7", 10..20);
        fx.prepare(&mut s);
        assert_eq!(s.rows[0].label, "10.0.0.7");
        assert_eq!(s.view.selected(), picked);
        assert_eq!(s.view.sel, 0);
        assert!(s.rates_known());
        // The selected group's filter is the one `ctscope flush --filter` takes.
        assert_eq!(
            s.group_filter(),
            Some(Ok("flow and src=10.0.0.7".to_owned()))
        );
    }

    /// `b` regroups (the rows follow the new key) and `s` re-sorts by UNREPLIED.
    #[test]
    fn group_by_cycles_and_sorts_by_unreplied() {
        let mut fx = Fixture::new();
        let mut s = Top::default();
        connect(&mut fx, &mut s, "10.0.0.9", 0..3);
        let mut lone = flow(tcp("10.0.0.5", 999, "10.0.0.2", 443), 100);
        lone.status &= !status::SEEN_REPLY;
        feed(&mut fx, &mut s, Event::New, lone, 1);
        fx.prepare(&mut s);
        assert_eq!(s.rows[0].label, "10.0.0.9");
        s.sort(Action::SortNext).unwrap();
        assert_eq!(s.sorted(), TopCol::Unreplied);
        fx.prepare(&mut s);
        assert_eq!(s.rows[0].label, "10.0.0.5");
        assert_eq!(s.group_by(), Ok("dst"));
        fx.prepare(&mut s);
        let labels: Vec<&str> = s.rows.iter().map(|r| r.label.as_str()).collect();
        assert_eq!(labels, ["10.0.0.2", "10.0.0.1"]);
        assert!(s.sort_label().starts_with("by dst"), "{}", s.sort_label());
    }
}
