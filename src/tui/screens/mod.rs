//! The screens: one module per screen, each owning its columns, its rows, its selection,
//! sort, detail pane and drawing. The app holds them as one list (`all`) and talks to the
//! current one through the `Screen` trait only: no `match` on the screen anywhere else.
//!
//! ```text
//! ┌ header (widgets::header) ────────────────────────────────────────────────────┐
//! │ tab line: one tab per entry of `all()`, in order      filter · 12/1,234 match │
//! ├ the current screen: Screen::draw ─────────────────────────────────────────────┤
//! │ Proto Original src:port → dst:port   ctstate  Helper Risk  Left   (columns:   │
//! │ …only the visible window becomes rows (widgets::table)…            the screen)│
//! ├ Screen::detail, when Enter opened it (popups::detail) ────────────────────────┤
//! └ status line or filter bar (widgets::status, popups::filter) ──────────────────┘
//! ```
//!
//! Inside a screen module:
//! - a column enum: a new column is one variant, with its `Column` arms (title, width,
//!   priority) and its cell and sort value beside it in the same file;
//! - `build`: the pure "filter + sort the row keys" over `(&Store, &Spec)`, returning the
//!   keys and the count before filtering, split in two for the view builder
//!   (`tui::views`): a scan that needs the store (it runs under the store's read lock)
//!   and a finish (the sort) that does not. `Screen::job` hands both to the builder and
//!   `Screen::accept` takes back what they made;
//! - the `Screen` impl: selection (a `view::TableView` that follows its entry by key),
//!   sort keys, the detail pane's lines (built once per frame) and drawing through the
//!   shared table tail (`widgets::table`).
//!
//! To add a screen (e.g. "Top"): write `screens/top.rs` with a type implementing `Screen`,
//! add `pub mod top;` and one line to `all()`. Its tab, Tab/BackTab cycling, selection
//! keys, sort keys, detail pane, deletes (through `Screen::selected`) and the footer's
//! sort label then work; a digit key of its own is one more line in `keymap`.
//!
//! Screens must not touch the terminal outside `draw`, nor the engine.

pub mod chains;
pub mod expectations;
pub mod findings;
pub mod flows;
pub mod recent;
pub mod top;

use std::any::Any;
use std::sync::Arc;

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::Frame;

use crate::actions::Entry;
use crate::filter::{Filter, StoreContext};
use crate::model::recent::RecentState;
use crate::model::stale::{Staleness, StateTimeouts, Thresholds};
use crate::model::store::FlowKey;
use crate::model::{Event, Record};
use crate::model::{Flow, HelperId, Store};
use crate::risk::Assessment;

use super::app::Summary;
use super::inputs::Clock;
use super::journal::Changes;
use super::keymap::Action;
use super::risk::{self as trisk, RiskCache};
use super::theme::Theme;
use super::view::{Column, Rows, TableView};
use super::widgets::thousands;
use super::worker::{Job, Lanes};

/// The screen list, in tab order (keys 1, 2, 3…). A new screen is one line here.
pub fn all() -> Vec<Box<dyn Screen>> {
    vec![
        Box::<flows::Flows>::default(),
        Box::<expectations::Expectations>::default(),
        Box::<chains::Chains>::default(),
        Box::<findings::Findings>::default(),
        Box::<top::Top>::default(),
        Box::<recent::Recent>::default(),
    ]
}

/// What a screen reads to build, describe and draw: never the app itself.
pub struct Ctx<'a> {
    pub store: &'a Store,
    /// Helper-risk assessments of the current store generation.
    pub risk: &'a RiskCache,
    pub theme: &'a Theme,
    /// Store seconds now.
    pub now: u32,
    /// For absolute times in the detail pane.
    pub clock: &'a dyn Clock,
    /// The active filter.
    pub filter: Option<&'a Filter>,
    /// Header numbers (the tab line's counts).
    pub summary: &'a Summary,
    /// Recency state (xt_recent lists, nft sets, knock progress) as of its last snapshot.
    pub recent: &'a RecentState,
    /// The entries come from a recording (nothing can be changed).
    pub replay: bool,
    /// `nf_conntrack_max` of the namespace shown, when known (Top's share column).
    pub conntrack_max: Option<u64>,
    /// What `stale` and `age` filter terms read besides the entry.
    pub facts: Facts,
    /// The kernel's per-CPU counters as rates (Top's strip).
    pub counters: &'a super::counters::KernelCounters,
}

/// What the filter's `stale` and `age` terms read besides the entry: the staleness
/// thresholds, the namespace's per-state timeouts and the wall clock of store time `now`
/// (a replay's recorded time). Plain copyable data, so a row build can carry it anywhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct Facts {
    pub thresholds: Thresholds,
    pub timeouts: StateTimeouts,
    /// Wall time in ns since the epoch; `None`: the system clock.
    pub wall_ns: Option<u64>,
}

impl Facts {
    /// The filter context over `store` (`Filter::match_flow_in`), so a `stale` term typed
    /// in the dashboard judges as `ctscope list --filter stale` does.
    pub fn context<'a>(&self, store: &'a Store) -> StoreContext<'a> {
        StoreContext {
            stale: self.judge(store),
            wall_ns: self.wall_ns,
        }
    }

    /// The staleness judge over `store` (the stale key's plan, the header's counts).
    pub fn judge<'a>(&self, store: &'a Store) -> Staleness<'a> {
        Staleness::new(store, self.thresholds, self.timeouts)
    }
}

impl Ctx<'_> {
    /// Wall time of a store second.
    pub fn wall(&self, store_secs: u32) -> std::time::SystemTime {
        self.clock.wall(store_secs)
    }
}

/// A sorted table's built rows.
pub struct TableRows<K> {
    pub keys: Vec<K>,
    /// Entries before the filter.
    pub total: usize,
    /// How far into the change journal the rows are complete.
    pub journal: Option<u64>,
    /// They may hold entries whose verdicts the risk cache has not seen: for a full build,
    /// when a row shows a verdict (`SortedTable::verdicts_needed`: a RELATED flow, any
    /// expectation); for a refined one, when its changes touched a RELATED flow.
    pub related: bool,
}

/// Changed flows as a table's rows, and those of them it lists now (`SortedTable::listed`).
pub type Listed<K> = (Vec<K>, Vec<K>);

/// A screen's finished rows as the view builder hands them back; only the screen that
/// made the job knows their type (`Screen::accept`).
pub type BuiltRows = Box<dyn Any + Send>;

/// What a row build reads besides the store, owned so the build can run on the view
/// builder's thread: the filter, the risk assessments (sorting by Risk, findings), the
/// time and the facts `stale`/`age` terms read.
#[derive(Clone, Default)]
pub struct Source {
    pub filter: Option<Arc<Filter>>,
    pub risk: Arc<RiskCache>,
    pub now: u32,
    /// What `stale` and `age` terms read besides the entry.
    pub facts: Facts,
    /// Recency state as of its last snapshot (the Recent screen's lines).
    pub recent: Arc<RecentState>,
    /// The entries come from a recording.
    pub replay: bool,
    /// How far into the change journal the store surely is when the build reads it: the
    /// rows built are complete up to there.
    pub journal_pos: Option<u64>,
    /// The flows touched since the current screen's rows were complete, when the journal
    /// can tell them all (a table ordered by key refines its rows from them).
    pub changes: Option<Changes>,
}

/// What drawing a screen measured, for paging and the frame statistics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Drawn {
    /// Rows handed to the table widget (the visible window, never the whole table).
    pub rows: usize,
    /// Height of the table body.
    pub height: usize,
}

/// What `m` (jump to the master and back) does from a screen's selection.
pub enum Jump {
    /// From this flow, within this screen.
    Within(FlowKey),
    /// To this master, on the screen that lists flows.
    ToMaster(FlowKey),
    /// Not here; the status line says why.
    Refuse(&'static str),
    Nothing,
}

/// One screen. The app calls these for the current screen only.
pub trait Screen {
    /// The tab's name (100 columns and wider) and its short form (below 100 columns; its
    /// first letter below 60).
    fn titles(&self) -> (&'static str, &'static str);
    /// The count on its tab.
    fn tab_count(&self, cx: &Ctx) -> String;
    /// Its table (selection moves, invalidation, counts).
    fn rows(&self) -> &dyn Rows;
    fn rows_mut(&mut self) -> &mut dyn Rows;
    /// Rows shown and entries before the filter, for the tab line's "12/1,234 match".
    fn shown(&self) -> (usize, usize) {
        self.rows().shown()
    }
    /// The footer's sort label ("sort Left▲", "by master").
    fn sort_label(&self) -> String;
    /// `s`/`S`/`r`: change the sort. `Err`: this screen has a fixed order, and why.
    fn sort(&mut self, a: Action) -> Result<(), &'static str> {
        let _ = a;
        Err(FIXED_ORDER)
    }
    /// The build of its rows under its current settings (sort) and `src`, as a job for
    /// the view builder: never run on the main thread.
    fn job(&self, src: &Source) -> Job<BuiltRows>;
    /// Swap in rows made by a job of this screen from store generation `gen`, keeping
    /// the selection on the same entry.
    fn accept(&mut self, rows: BuiltRows, gen: u64);
    /// Whether its rows also follow the recency state: a new snapshot rebuilds them as a
    /// store change would.
    fn reads_recent(&self) -> bool {
        false
    }
    /// Whether its rows follow the store: a rebuild whenever the store's generation moved
    /// (paced by the view builder). `false`: only when invalidated (findings follow the
    /// risk cache instead).
    fn data_driven(&self) -> bool {
        true
    }
    /// A table of about `rows` entries is coming (the first dump's announced size): make
    /// ahead, on the chores thread, the buffers the first full build of it takes
    /// (`scratch`). Default: nothing.
    fn warm(&self, rows: usize) {
        let _ = rows;
    }
    /// Settings changed (filter, sort, unpause): rebuild at the next chance.
    fn invalidate(&mut self) {
        self.rows_mut().invalidate();
    }
    /// The risk cache was rebuilt (rows that point into it must follow).
    fn risk_rebuilt(&mut self) {}
    /// Whether it draws risk verdicts from the cache: its rows are swapped in only once
    /// the cache has seen their store generation, so no RELATED flow shows without one.
    fn shows_risk(&self) -> bool {
        false
    }
    /// Whether `rows` (built by this screen) may show an entry the risk verdicts have not
    /// seen, so they wait for them when the verdicts are older (`shows_risk`).
    fn needs_verdicts(&self, rows: &BuiltRows) -> bool {
        let _ = rows;
        true
    }
    /// Whether its build reads the risk cache (a sort by Risk): rebuilt when the cache is.
    fn build_reads_risk(&self) -> bool {
        false
    }
    fn move_by(&mut self, delta: isize) {
        self.rows_mut().move_by(delta);
    }
    /// The entry the selection is about (what `d`, `D`, `H` act on).
    fn selected(&self) -> Option<Entry>;
    /// Select the row of this entry; `false` if it is not shown.
    fn select(&mut self, e: Entry) -> bool;
    /// Whether this is the screen that lists this kind of entry (jumps land there).
    fn lists(&self, e: &Entry) -> bool {
        let _ = e;
        false
    }
    /// What `m` does here.
    fn jump(&self, cx: &Ctx) -> Jump {
        let _ = cx;
        match self.selected() {
            Some(Entry::Flow(k)) => Jump::Within(k),
            _ => Jump::Nothing,
        }
    }
    /// Whether Enter toggles a detail pane below the table; `false`: Enter goes to the
    /// entry `goto` names instead (findings).
    fn has_detail(&self) -> bool {
        true
    }
    /// The entry Enter goes to on a screen without a detail pane.
    fn goto(&self) -> Option<Entry> {
        None
    }
    /// A destructive key this screen plans itself (Recent: `d` removes an address from a
    /// list, `F` flushes the list), as the confirmation's title and plan. `None`: the
    /// app's own planning (flows, expectations) applies; `Err`: why nothing is planned.
    fn plan(
        &self,
        a: Action,
        cx: &Ctx,
        ctx: &crate::actions::Context,
    ) -> Option<Result<(String, crate::actions::Plan), &'static str>> {
        let _ = (a, cx, ctx);
        None
    }
    /// The detail pane's title and lines for the selection; `None`: this screen has no
    /// detail pane (findings shows its own).
    fn detail(&self, cx: &Ctx) -> Option<(&'static str, Vec<Line<'static>>)>;
    /// Draw the table (and any pane of its own) into `area`.
    fn draw(&mut self, f: &mut Frame, cx: &Ctx, area: Rect) -> Drawn;
    /// For typed access (`App::flow_keys` and the like, used by tests).
    fn as_any(&self) -> &dyn Any;
    /// Time moved to store second `now` (once a tick, current screen only): rows whose
    /// values move with time alone (Top's rates) re-read them. Main thread: keep it cheap.
    fn tick(&mut self, now: u32) {
        let _ = now;
    }
    /// One engine record, before the store applies it (Top counts events per group).
    fn observe(&mut self, store: &Store, event: Event, record: &Record, now: u32) {
        let _ = (store, event, record, now);
    }
    /// When the rows are groups of flows: the filter expression that selects exactly the
    /// selected group (Enter shows it on the flows screen, `F` flushes it), or why there
    /// is none. `None`: rows are entries, not groups.
    fn group_filter(&self) -> Option<Result<String, &'static str>> {
        None
    }
    /// `b`: group the rows by the next key; returns the key's name. `Err`: why not here.
    fn group_by(&mut self) -> Result<&'static str, &'static str> {
        Err("b changes what the Top screen groups by")
    }
}

/// What a sorted table's rows are built from besides the store: the filter, the risk
/// badges (for sorting by Risk), the sort column and direction, and the time. Plain
/// borrowed data: a build can run anywhere.
pub struct Spec<'a, C> {
    pub filter: Option<&'a Filter>,
    pub risk: &'a RiskCache,
    pub sort: C,
    pub desc: bool,
    pub now: u32,
    /// What `stale` and `age` terms read (`Facts::context`).
    pub facts: Facts,
    /// The threads the build may use (`Lanes`: a spec build, or a paced data build).
    pub lanes: Lanes,
}

/// A screen that is one table of entries sorted by one of its columns (flows,
/// expectations). Implementing this is its whole `Screen`: selection, sort keys, the
/// footer's label and rebuilding come with it.
pub trait SortedTable: 'static {
    type Key: Copy + PartialEq + Into<Entry> + Send + Sync + 'static;
    type Col: Column + Send + 'static;
    /// What the scan copies out of the store for the sort.
    type Scanned: Send + 'static;
    /// The tab's names, long and short (see `Screen::titles`).
    const TITLES: (&'static str, &'static str);
    /// Columns in display order; the view's `sort` indexes this.
    const COLUMNS: &'static [Self::Col];
    fn view(&self) -> &TableView<Self::Key>;
    fn view_mut(&mut self) -> &mut TableView<Self::Key>;
    /// The count on its tab.
    fn count(cx: &Ctx) -> usize;
    /// Whether sorting by `col` reads the risk cache.
    fn sorts_by_risk(col: Self::Col) -> bool;
    /// Whether rows sorted by `col` are in key order alone (`key_order`; no value that
    /// moves with time or other entries). Then, with no filter, a data build refines the
    /// last rows with the journal's changes (`merge_changes`: one pass, no sort) instead of
    /// sorting the table again. Default: never.
    fn by_key(col: Self::Col) -> bool {
        let _ = col;
        false
    }
    /// `Screen::warm` for a full build sorted by `col`. Default: nothing.
    fn warm(col: Self::Col, rows: usize) {
        let _ = (col, rows);
    }
    /// The ascending order of a `by_key` sort.
    fn key_order(a: &Self::Key, b: &Self::Key) -> std::cmp::Ordering {
        let _ = (a, b);
        std::cmp::Ordering::Equal
    }
    /// The flows `changed` as this table's rows, and those of them it lists now (under
    /// the store's lock); `None`: this table's rows are not flows.
    fn listed(store: &Store, changed: &[FlowKey]) -> Option<Listed<Self::Key>> {
        let _ = (store, changed);
        None
    }
    /// The first half of the pure row build, under the store's read lock: filter and
    /// copy out sort values and keys; also the count before filtering.
    fn scan(store: &Store, spec: &Spec<Self::Col>) -> (Self::Scanned, usize);
    /// The second half, with no lock: sort, in direction `desc`.
    fn finish(scanned: Self::Scanned, desc: bool) -> Vec<Self::Key>;
    /// Whether any row scanned shows a verdict from the risk cache: such rows wait for
    /// verdicts that have seen them (`Screen::needs_verdicts`). Default: always.
    fn verdicts_needed(scanned: &Self::Scanned) -> bool {
        let _ = scanned;
        true
    }
    /// The row of an entry, if this table lists its kind.
    fn key(e: Entry) -> Option<Self::Key>;
    /// What `m` does here.
    fn jump_from(&self, cx: &Ctx) -> Jump;
    /// The detail pane for the selection.
    fn detail_lines(&self, cx: &Ctx) -> (&'static str, Vec<Line<'static>>);
    /// Draw the visible window.
    fn draw_rows(&mut self, f: &mut Frame, cx: &Ctx, area: Rect) -> Drawn;
}

impl<T: SortedTable> Screen for T {
    fn titles(&self) -> (&'static str, &'static str) {
        T::TITLES
    }

    fn tab_count(&self, cx: &Ctx) -> String {
        thousands(T::count(cx))
    }

    fn rows(&self) -> &dyn Rows {
        self.view()
    }

    fn rows_mut(&mut self) -> &mut dyn Rows {
        self.view_mut()
    }

    fn warm(&self, rows: usize) {
        T::warm(T::COLUMNS[self.view().sort], rows);
    }

    fn sort_label(&self) -> String {
        let v = self.view();
        sort_label(T::COLUMNS[v.sort].title(), v.desc)
    }

    fn sort(&mut self, a: Action) -> Result<(), &'static str> {
        cycle_sort(self.view_mut(), a, T::COLUMNS.len());
        Ok(())
    }

    fn job(&self, src: &Source) -> Job<BuiltRows> {
        let v = self.view();
        let (sort, desc, pos) = (T::COLUMNS[v.sort], v.desc, src.journal_pos);
        // The last rows are of this spec (no settings change since: `built`), in key order,
        // unfiltered, and the journal knows every flow touched since they were complete.
        let refine = src
            .changes
            .as_ref()
            .filter(|c| Some(c.since) == v.journal && v.built.is_some())
            .filter(|_| T::by_key(sort) && src.filter.is_none());
        if let Some(changes) = refine {
            let (prev, changes) = (Arc::clone(&v.keys), changes.clone());
            return Job::new(
                move |store: &Store| {
                    let listed = T::listed(store, &changes.keys);
                    // Only flows in this delta can be RELATED flows the verdicts have not
                    // seen: the rows before it waited for theirs (`Screen::needs_verdicts`).
                    let related = changes
                        .keys
                        .iter()
                        .any(|k| store.flow(k).is_some_and(|f| f.is_related()));
                    (listed, changes.upto, store.flow_count(), related)
                },
                move |(listed, upto, total, related)| {
                    let keys = match listed {
                        Some((touched, listed)) => {
                            merge_changes(&prev, touched, listed, T::key_order, desc)
                        }
                        None => prev.to_vec(),
                    };
                    Box::new(TableRows {
                        keys,
                        total,
                        journal: Some(upto),
                        related,
                    }) as BuiltRows
                },
            );
        }
        let src = src.clone();
        Job::with_lanes(
            move |store: &Store, lanes| {
                let spec = Spec {
                    filter: src.filter.as_deref(),
                    risk: &src.risk,
                    sort,
                    desc,
                    now: src.now,
                    facts: src.facts,
                    lanes,
                };
                T::scan(store, &spec)
            },
            move |(scanned, total)| {
                let related = T::verdicts_needed(&scanned);
                Box::new(TableRows {
                    keys: T::finish(scanned, desc),
                    total,
                    journal: pos,
                    related,
                }) as BuiltRows
            },
        )
    }

    fn accept(&mut self, rows: BuiltRows, gen: u64) {
        if let Ok(rows) = rows.downcast::<TableRows<T::Key>>() {
            let v = self.view_mut();
            v.accept(rows.keys, rows.total, gen);
            v.journal = rows.journal;
        }
    }

    fn needs_verdicts(&self, rows: &BuiltRows) -> bool {
        rows.downcast_ref::<TableRows<T::Key>>()
            .is_none_or(|r| r.related)
    }

    fn shows_risk(&self) -> bool {
        true
    }

    fn build_reads_risk(&self) -> bool {
        T::sorts_by_risk(T::COLUMNS[self.view().sort])
    }

    fn selected(&self) -> Option<Entry> {
        self.view().selected().map(Into::into)
    }

    fn select(&mut self, e: Entry) -> bool {
        T::key(e).is_some_and(|k| self.view_mut().select_key(k))
    }

    fn lists(&self, e: &Entry) -> bool {
        T::key(*e).is_some()
    }

    fn jump(&self, cx: &Ctx) -> Jump {
        self.jump_from(cx)
    }

    fn detail(&self, cx: &Ctx) -> Option<(&'static str, Vec<Line<'static>>)> {
        Some(self.detail_lines(cx))
    }

    fn draw(&mut self, f: &mut Frame, cx: &Ctx, area: Rect) -> Drawn {
        self.draw_rows(f, cx, area)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Rows sorted by key (`prev`, ascending or, with `desc`, descending by `order`) brought
/// up to date: every key in `touched` is dropped and the ones still `listed` go in at
/// their place. One pass over `prev` after sorting the changes: what a data build of a
/// million flows costs instead of a full sort.
pub fn merge_changes<K: Copy + PartialEq>(
    prev: &[K],
    mut touched: Vec<K>,
    mut listed: Vec<K>,
    order: impl Fn(&K, &K) -> std::cmp::Ordering,
    desc: bool,
) -> Vec<K> {
    use std::cmp::Ordering::Less;
    touched.sort_unstable_by(&order);
    touched.dedup();
    listed.sort_unstable_by(&order);
    listed.dedup();
    let mut out = Vec::with_capacity(prev.len() + listed.len());
    let (mut t, mut l) = (0, 0);
    let mut step = |k: &K, out: &mut Vec<K>| {
        while t < touched.len() && order(&touched[t], k) == Less {
            t += 1;
        }
        if t < touched.len() && touched[t] == *k {
            return;
        }
        while l < listed.len() && order(&listed[l], k) == Less {
            out.push(listed[l]);
            l += 1;
        }
        out.push(*k);
    };
    if desc {
        prev.iter().rev().for_each(|k| step(k, &mut out));
    } else {
        prev.iter().for_each(|k| step(k, &mut out));
    }
    out.extend_from_slice(&listed[l..]);
    if desc {
        out.reverse();
    }
    out
}

/// The helper a flow is shown under: its own, else the one whose expectation created it,
/// else its master's (a RELATED FTP data flow carries no helper itself).
pub fn display_helper(m: &Store, key: &FlowKey, fl: &Flow) -> HelperId {
    if !fl.helper.is_none() || !fl.is_related() {
        return fl.helper;
    }
    m.expectation_of(key)
        .map(|e| e.helper)
        .or_else(|| m.master_of(key).map(|x| x.helper))
        .unwrap_or(HelperId::NONE)
}

/// The risk badge of an assessed entry as text and style: the finding badge (`!3306`) in
/// the finding style, else the freedom badge (`IN-CMD`) in that freedom's style.
pub fn risk_badge(t: &Theme, a: &Assessment, port: u16) -> (String, Style) {
    let style = if a.findings.is_empty() {
        t.freedom(trisk::headline(&a.freedom))
    } else {
        t.finding
    };
    (trisk::badge(a, port), style)
}

/// The risk cell's text and style; `?` for a RELATED entry nobody could assess (no
/// assessor: every RELATED flow is assessed otherwise, from the flow if need be).
pub fn risk_text(t: &Theme, a: Option<&Assessment>, port: u16, related: bool) -> (String, Style) {
    match a {
        Some(a) => risk_badge(t, a, port),
        None if related => ("?".into(), t.dim),
        None => (String::new(), Style::new()),
    }
}

/// A column title with the sort arrow when the table is sorted by it.
pub fn sort_title(title: &str, sorted: bool, desc: bool) -> String {
    if sorted {
        format!("{title}{}", if desc { "▼" } else { "▲" })
    } else {
        title.to_owned()
    }
}

/// The footer's label for a sortable table: the column title's first word and the arrow.
pub fn sort_label(title: &str, desc: bool) -> String {
    format!(
        "sort {}{}",
        title.split(' ').next().unwrap_or(""),
        if desc { "▼" } else { "▲" }
    )
}

/// Change a table's sort among `n` columns: `s` next, `S` previous, `r` reverses (at
/// once: `TableView::reverse`). The view is rebuilt by the view builder in any case.
pub fn cycle_sort<K: Copy + PartialEq>(view: &mut TableView<K>, a: Action, n: usize) {
    match a {
        Action::SortNext => view.sort = (view.sort + 1) % n,
        Action::SortPrev => view.sort = (view.sort + n - 1) % n,
        _ => view.reverse(),
    }
    view.built = None;
}

/// Why chains and findings keep their order (the same words on both).
pub const FIXED_ORDER: &str =
    "chains are ordered by master and findings by kind; sort applies to the tables";

/// What the screens' tests share: a real store fed the records the engine makes, and the
/// context a screen reads.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use crate::model::flow::status;
    use crate::model::helper::intern;
    use crate::model::tuple::{proto, Family, Tuple};
    use crate::model::{Event, Record};
    use crate::model::{Expectation, Flow, Store};
    use crate::tui::risk::{Assess, RiskCache};

    use super::{Screen, Source};
    use crate::model::store::FlowKey;

    pub fn tcp(src: &str, sport: u16, dst: &str, dport: u16) -> Tuple {
        let mut t = Tuple {
            family: Family::Ipv4,
            proto: proto::TCP,
            sport,
            dport,
            ..Tuple::default()
        };
        t.set_src_ip(src.parse().unwrap());
        t.set_dst_ip(dst.parse().unwrap());
        t
    }

    /// A confirmed TCP flow with `timeout` seconds left.
    pub fn flow(t: Tuple, timeout: u32) -> Flow {
        let mut f = Flow::new(t);
        f.status = status::CONFIRMED | status::SEEN_REPLY;
        f.timeout = timeout;
        f
    }

    /// An FTP control flow (the master of what follows).
    pub fn ftp_master(t: Tuple) -> Flow {
        let mut f = flow(t, 431_999);
        f.status |= status::HELPER;
        f.helper = intern("ftp");
        f
    }

    /// An expectation of the ftp helper for `dst:dport`, from `master`.
    pub fn ftp_expect(
        master: Tuple,
        src: &str,
        dst: &str,
        dport: u16,
        timeout: u32,
    ) -> Expectation {
        let t = tcp(src, 0, dst, dport);
        let mask = tcp("255.255.255.255", 0, "255.255.255.255", 0xffff);
        let mut e = Expectation::new(t, mask, master);
        e.helper = intern("ftp");
        e.timeout = timeout;
        e
    }

    /// A RELATED flow created by `master`'s expectation.
    pub fn related(t: Tuple, master: Tuple) -> Flow {
        let mut f = flow(t, 100);
        f.status |= status::EXPECTED;
        f.extra_mut().master = Some(master);
        f
    }

    /// A refined build says whether its changes brought a RELATED flow (its rows then
    /// wait for verdicts); a full build always may.
    #[test]
    fn a_refined_build_waits_for_verdicts_only_for_related_changes() {
        use crate::tui::journal::Changes;
        let mut fx = Fixture::new();
        let master = tcp("10.0.0.2", 40000, "10.0.0.1", 21);
        fx.new_flow(ftp_master(master));
        let mut s = super::flows::Flows::default();
        fx.prepare(&mut s);
        let plain = tcp("10.0.0.3", 5000, "10.0.0.1", 80);
        fx.new_flow(flow(plain, 100));
        let data = tcp("10.0.0.2", 40001, "10.0.0.1", 3306);
        fx.new_flow(related(data, master));
        s.view.journal = Some(0);
        let job = |s: &super::flows::Flows, keys: Vec<FlowKey>| {
            let src = Source {
                now: 1,
                journal_pos: Some(1),
                changes: Some(Changes {
                    since: 0,
                    upto: 1,
                    keys: keys.into(),
                }),
                ..Source::default()
            };
            s.job(&src)
        };
        let k = |t: Tuple| FlowKey::of(&flow(t, 1));
        let quiet = job(&s, vec![k(plain)]).run(&fx.store);
        assert!(!s.needs_verdicts(&quiet), "a plain flow needs no verdict");
        let loud = job(&s, vec![k(plain), k(data)]).run(&fx.store);
        assert!(s.needs_verdicts(&loud), "a new RELATED flow does");
        s.view.journal = None;
        let full = job(&s, vec![k(plain)]).run(&fx.store);
        assert!(s.needs_verdicts(&full), "a full build may hold any");
    }

    /// Merging the journal's changes into rows sorted by key gives what sorting again
    /// gives: removed keys go, changed keys stay once, new keys land in order, either way.
    #[test]
    fn merged_changes_equal_a_fresh_sort() {
        let order = |a: &u32, b: &u32| a.cmp(b);
        let prev: Vec<u32> = vec![10, 20, 30, 40, 50];
        // 20 destroyed, 35 and 5 new, 40 updated (still listed), 60 touched and gone.
        let touched = vec![20, 35, 40, 5, 60, 35];
        let listed = vec![35, 40, 5];
        let asc = super::merge_changes(&prev, touched.clone(), listed.clone(), order, false);
        assert_eq!(asc, [5, 10, 30, 35, 40, 50]);
        let rev: Vec<u32> = prev.iter().rev().copied().collect();
        let desc = super::merge_changes(&rev, touched, listed, order, true);
        assert_eq!(desc, [50, 40, 35, 30, 10, 5]);
        assert_eq!(
            super::merge_changes(&[], vec![3, 1], vec![3, 1], order, false),
            [1, 3]
        );
    }

    /// The row builds' inputs can go to another thread (a background view builder).
    #[test]
    fn build_inputs_are_send() {
        fn send<T: Send>() {}
        send::<super::Spec<'static, super::flows::FlowCol>>();
        send::<super::Spec<'static, super::expectations::ExpectCol>>();
        send::<(
            &'static Store,
            &'static RiskCache,
            Option<&'static crate::filter::Filter>,
        )>();
    }

    /// A store and its risk assessments, fed record by record.
    pub struct Fixture {
        pub store: Store,
        pub risk: Arc<RiskCache>,
        assessor: Option<crate::risk::Assessor>,
        pub recent: crate::model::recent::RecentState,
        /// The recency generation the last prepared screen that shows it was built from.
        seen_recent: Option<u64>,
    }

    impl Fixture {
        pub fn new() -> Fixture {
            Fixture {
                store: Store::new(),
                risk: Arc::default(),
                assessor: None,
                recent: Default::default(),
                seen_recent: None,
            }
        }

        /// Assess helper risk (the embedded freedom table, no sockets).
        pub fn with_risk(mut self) -> Fixture {
            let table = crate::risk::HelperTable::embedded().unwrap();
            self.assessor = Some(crate::risk::Assessor::new(
                table,
                crate::risk::Config::default(),
                None,
            ));
            self
        }

        pub fn new_flow(&mut self, f: Flow) {
            self.store.apply(Event::New, Record::Flow(f), 0);
        }

        pub fn new_expect(&mut self, e: Expectation) {
            self.store.apply(Event::New, Record::Expect(e), 0);
        }

        /// Bring `screen` up to date with the store, as the app does, running here the
        /// very job the view builder would run.
        pub fn prepare(&mut self, screen: &mut dyn Screen) {
            let gen = self.store.generation();
            if self.risk.built != Some(gen) {
                let a = self.assessor.as_ref().map(|a| a as &dyn Assess);
                let mut risk = RiskCache::default();
                risk.rebuild(&self.store, a, gen);
                self.risk = Arc::new(risk);
                screen.risk_rebuilt();
            }
            // A new recency snapshot rebuilds a screen that shows it, as in the app.
            let snapshot = screen.reads_recent().then(|| self.recent.generation());
            if screen.rows().built() != Some(gen) || snapshot != self.seen_recent {
                self.seen_recent = snapshot;
                let src = Source {
                    risk: self.risk.clone(),
                    now: 1,
                    recent: Arc::new(self.recent.clone()),
                    ..Source::default()
                };
                let rows = screen.job(&src).run(&self.store);
                screen.accept(rows, gen);
            }
        }
    }
}
