//! Table views: the ordered list of row keys behind each screen, their columns, sorting,
//! filtering and the selection that follows its entry by key.
//!
//! A view keeps only keys (`FlowKey`/`ExpectKey`) and rebuilds them when the store's
//! generation, the filter or the sort changes, never per frame; a frame turns only the
//! visible window into rows. `layout` picks the columns that fit a width, dropping whole
//! columns by priority (never an essential one such as Risk). This module must not draw
//! or style.

use std::collections::BTreeMap;

use crate::filter::Filter;
use crate::model::store::{ExpectKey, FlowKey};
use crate::model::{Expectation, Flow, Store};

use super::risk::{headline, FindingRow, RiskCache, Subject};
use crate::risk::Assessment;

/// Flow table columns. A new column is one variant here, its `Column` arms beside it, and
/// its cell in the screen's row builder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowCol {
    Proto,
    Conn,
    Nat,
    State,
    Ct,
    Flags,
    Helper,
    Risk,
    Zone,
    Mark,
    Left,
    Counters,
}

impl FlowCol {
    /// Display order.
    pub const ALL: [FlowCol; 12] = [
        FlowCol::Proto,
        FlowCol::Conn,
        FlowCol::Nat,
        FlowCol::State,
        FlowCol::Ct,
        FlowCol::Flags,
        FlowCol::Helper,
        FlowCol::Risk,
        FlowCol::Zone,
        FlowCol::Mark,
        FlowCol::Left,
        FlowCol::Counters,
    ];
}

impl Column for FlowCol {
    fn title(self) -> &'static str {
        match self {
            FlowCol::Proto => "Proto",
            FlowCol::Conn => "Original src:port → dst:port",
            FlowCol::Nat => "NAT pre → post",
            FlowCol::State => "State",
            FlowCol::Ct => "ctstate",
            FlowCol::Flags => "Flags",
            FlowCol::Helper => "Helper",
            FlowCol::Risk => "Risk",
            FlowCol::Zone => "Zone",
            FlowCol::Mark => "Mark",
            FlowCol::Left => "Left",
            FlowCol::Counters => "Counters",
        }
    }

    /// Preferred width in cells: a fixed column grows to its widest cell, `Conn` and
    /// `Nat` flex around it.
    fn width(self) -> u16 {
        match self {
            FlowCol::Proto => 6,
            FlowCol::Conn => 36,
            FlowCol::Nat => 24,
            FlowCol::State => 11,
            FlowCol::Ct => 11,
            FlowCol::Flags => 10,
            FlowCol::Helper => 6,
            FlowCol::Risk => 7,
            FlowCol::Zone => 4,
            FlowCol::Mark => 10,
            FlowCol::Left => 9,
            FlowCol::Counters => 12,
        }
    }

    fn flexible(self) -> bool {
        matches!(self, FlowCol::Conn | FlowCol::Nat)
    }

    /// Lower is kept longer when the terminal is narrow.
    fn priority(self) -> u8 {
        match self {
            FlowCol::Conn => 0,
            FlowCol::Proto => 1,
            FlowCol::Ct => 2,
            FlowCol::Left => 3,
            FlowCol::Helper => 4,
            FlowCol::Risk => 5,
            FlowCol::State => 6,
            FlowCol::Nat => 7,
            FlowCol::Flags => 8,
            FlowCol::Zone => 9,
            FlowCol::Mark => 10,
            FlowCol::Counters => 11,
        }
    }

    /// The Risk badge is the tool's verdict: never dropped for width.
    fn essential(self) -> bool {
        self == FlowCol::Risk
    }
}

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

/// A table column: one enum variant per column, its title, width and priority beside it;
/// its cell is built by the screen that owns the table.
pub trait Column: Copy + PartialEq {
    fn title(self) -> &'static str;
    /// Preferred width in cells. A fixed column grows to its widest cell; a flexible one
    /// shrinks (addresses elide) or grows around it.
    fn width(self) -> u16;
    fn flexible(self) -> bool;
    /// Lower is kept longer when the terminal is narrow.
    fn priority(self) -> u8;
    /// Kept whenever the table's minimum widths allow it, even if a higher-priority
    /// flexible column must shrink for it (the Risk badge).
    fn essential(self) -> bool {
        false
    }
}

/// What a column needs on this screen: its natural width (title and every visible cell
/// whole) and its minimum (addresses elided, every number and name still whole).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Need {
    pub natural: u16,
    pub min: u16,
    /// Narrower still, a flexible column's cells drop whole words at their end (`…`);
    /// an essential column may push it down to this (its title's first word).
    pub floor: u16,
}

/// Choose the columns that fit `width` and their widths, keeping display order.
///
/// Columns are taken by priority at their preferred width; a column that does not fit is
/// dropped whole, never cut. Essential columns left out are then let in by shrinking
/// flexible columns toward their minimum. Spare room goes to flexible columns up to their
/// natural width, then to the first of them. `spacing` cells separate columns.
pub fn layout<C: Column>(cols: &[C], needs: &[Need], width: u16, spacing: u16) -> Vec<(C, u16)> {
    let n = cols.len().min(needs.len());
    let pref = |i: usize| -> u16 {
        let (c, nd) = (cols[i], needs[i]);
        if c.flexible() {
            c.width().min(nd.natural).max(nd.min)
        } else {
            c.width().max(nd.natural)
        }
    };
    let floor = |i: usize| -> u16 {
        if cols[i].flexible() {
            needs[i].min
        } else {
            pref(i)
        }
    };
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by_key(|i| cols[*i].priority());
    let mut w: Vec<Option<u16>> = vec![None; n];
    let total = |w: &[Option<u16>]| -> u32 {
        let kept = w.iter().flatten().count() as u32;
        w.iter().flatten().map(|x| u32::from(*x)).sum::<u32>()
            + kept.saturating_sub(1) * u32::from(spacing)
    };
    for &i in &order {
        let mut t = w.clone();
        t[i] = Some(pref(i));
        if total(&t) <= u32::from(width) || w.iter().all(Option::is_none) {
            w = t;
        }
    }
    for &i in order.iter().filter(|i| cols[**i].essential()) {
        if w[i].is_some() {
            continue;
        }
        let mut t = w.clone();
        t[i] = Some(floor(i));
        // Shrink flexible columns, lowest priority first, toward their minimum (addresses
        // elided), then toward their floor (trailing words dropped).
        for least in [|n: &Need| n.min, |n: &Need| n.floor.min(n.min)] {
            for &j in order.iter().rev() {
                let over = total(&t).saturating_sub(u32::from(width));
                if over == 0 {
                    break;
                }
                if let Some(cur) = t[j].filter(|_| cols[j].flexible()) {
                    let give = (cur - least(&needs[j]).min(cur)).min(over as u16);
                    t[j] = Some(cur - give);
                }
            }
        }
        if total(&t) <= u32::from(width) {
            w = t;
        }
    }
    // Spare room: flexible columns up to their natural width, by priority, then the rest
    // to the first flexible column (the table spans the screen).
    let mut spare = u32::from(width).saturating_sub(total(&w));
    for &i in &order {
        if let Some(cur) = w[i].filter(|_| cols[i].flexible()) {
            let give = u32::from(needs[i].natural.saturating_sub(cur)).min(spare);
            w[i] = Some(cur + give as u16);
            spare -= give;
        }
    }
    if let Some(&i) = order
        .iter()
        .find(|i| cols[**i].flexible() && w[**i].is_some())
    {
        w[i] = w[i].map(|x| x + spare as u16);
    }
    // A single column wider than the screen gets the screen (its cells drop words).
    if total(&w) > u32::from(width) {
        if let Some(&i) = order.iter().find(|i| w[**i].is_some()) {
            let others = total(&w) - u32::from(w[i].unwrap_or(0));
            w[i] = Some(u32::from(width).saturating_sub(others) as u16);
        }
    }
    (0..n).filter_map(|i| w[i].map(|x| (cols[i], x))).collect()
}

/// A sort value: numbers or static names, cheap to build for a million rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum SortVal {
    N(u64),
    S(&'static str),
}

/// Risk as a sort value: entries with findings after those without, then by freedom;
/// unassessed entries first.
fn risk_rank(a: Option<&Assessment>) -> u64 {
    a.map_or(0, |a| {
        1 + headline(&a.freedom) as u64 + 8 * a.findings.len().min(1 << 16) as u64
    })
}

fn flow_sort_val(risk: &RiskCache, col: FlowCol, f: &Flow, now: u32) -> SortVal {
    use SortVal::{N, S};
    match col {
        FlowCol::Proto => N(u64::from(f.orig.proto)),
        FlowCol::Conn => N(0),
        FlowCol::Nat => N(u64::from(f.is_nat())),
        FlowCol::State => S(f.state_name().unwrap_or("")),
        FlowCol::Ct => S(f.ctstate()),
        FlowCol::Flags => N(u64::from(f.status)),
        FlowCol::Helper => S(f.helper.name().unwrap_or("")),
        FlowCol::Risk => N(if f.is_related() {
            risk_rank(risk.flow(&FlowKey::of(f)))
        } else {
            0
        }),
        FlowCol::Zone => N(u64::from(f.zone)),
        FlowCol::Mark => N(u64::from(f.mark)),
        FlowCol::Left => N(u64::from(f.remaining(now))),
        FlowCol::Counters => N(f
            .extra
            .as_ref()
            .and_then(|e| e.counters)
            .map_or(0, |c| c[0].bytes + c[1].bytes)),
    }
}

fn expect_sort_val(risk: &RiskCache, col: ExpectCol, e: &Expectation, now: u32) -> SortVal {
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

/// Sort and selection state plus the row keys of one table.
#[derive(Debug, Clone)]
pub struct TableView<K> {
    pub keys: Vec<K>,
    /// Index of the selected row in `keys`.
    pub sel: usize,
    /// The selected entry; the selection follows it across rebuilds.
    pub sel_key: Option<K>,
    /// First visible row.
    pub offset: usize,
    pub sort: usize,
    pub desc: bool,
    /// Store generation (and settings) the keys were built from; `None` forces a rebuild.
    pub built: Option<u64>,
    /// Entries before filtering.
    pub total: usize,
}

impl<K: Copy + PartialEq> TableView<K> {
    pub fn new(sort: usize) -> Self {
        TableView {
            keys: Vec::new(),
            sel: 0,
            sel_key: None,
            offset: 0,
            sort,
            desc: false,
            built: None,
            total: 0,
        }
    }

    /// Replace the keys, keeping the selection on the same entry when it is still there,
    /// otherwise on the same position.
    pub fn set_keys(&mut self, keys: Vec<K>, total: usize) {
        self.keys = keys;
        self.total = total;
        if let Some(k) = self.sel_key {
            if let Some(i) = self.keys.iter().position(|x| *x == k) {
                self.sel = i;
            }
        }
        self.clamp();
    }

    fn clamp(&mut self) {
        if self.keys.is_empty() {
            self.sel = 0;
            self.sel_key = None;
        } else {
            self.sel = self.sel.min(self.keys.len() - 1);
            self.sel_key = Some(self.keys[self.sel]);
        }
    }

    pub fn select(&mut self, i: usize) {
        self.sel = i;
        self.clamp();
    }

    pub fn move_by(&mut self, delta: isize) {
        let i = if delta < 0 {
            self.sel.saturating_sub(delta.unsigned_abs())
        } else {
            self.sel.saturating_add(delta as usize)
        };
        self.select(i);
    }

    pub fn select_key(&mut self, k: K) -> bool {
        match self.keys.iter().position(|x| *x == k) {
            Some(i) => {
                self.select(i);
                true
            }
            None => false,
        }
    }

    pub fn selected(&self) -> Option<K> {
        self.sel_key
    }

    /// Adjust `offset` so the selection is inside a window of `height` rows and return
    /// the visible range of `keys`.
    pub fn window(&mut self, height: usize) -> std::ops::Range<usize> {
        let h = height.max(1);
        if self.sel < self.offset {
            self.offset = self.sel;
        } else if self.sel >= self.offset + h {
            self.offset = self.sel + 1 - h;
        }
        let max_off = self.keys.len().saturating_sub(h);
        self.offset = self.offset.min(max_off);
        self.offset..(self.offset + h).min(self.keys.len())
    }
}

/// Rebuild the flow keys: filter, then sort by `col` (ties by key, so the order is total).
pub fn build_flows(
    m: &Store,
    risk: &RiskCache,
    filter: Option<&Filter>,
    col: FlowCol,
    desc: bool,
    now: u32,
) -> (Vec<FlowKey>, usize) {
    let mut total = 0usize;
    let mut keys: Vec<FlowKey>;
    if col == FlowCol::Conn {
        keys = Vec::with_capacity(m.flow_count());
        m.flows().for_each(|f| {
            total += 1;
            if filter.is_none_or(|x| x.match_flow(f, now)) {
                keys.push(FlowKey::of(f));
            }
        });
        keys.sort_unstable_by_key(|k| (k.orig, k.zone));
    } else {
        let mut pairs: Vec<(SortVal, FlowKey)> = Vec::with_capacity(m.flow_count());
        m.flows().for_each(|f| {
            total += 1;
            if filter.is_none_or(|x| x.match_flow(f, now)) {
                pairs.push((flow_sort_val(risk, col, f, now), FlowKey::of(f)));
            }
        });
        pairs.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| (a.1.orig, a.1.zone).cmp(&(b.1.orig, b.1.zone)))
        });
        keys = pairs.into_iter().map(|(_, k)| k).collect();
    }
    if desc {
        keys.reverse();
    }
    (keys, total)
}

/// Rebuild the expectation keys.
pub fn build_expects(
    m: &Store,
    risk: &RiskCache,
    filter: Option<&Filter>,
    col: ExpectCol,
    desc: bool,
    now: u32,
) -> (Vec<ExpectKey>, usize) {
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
            pairs.push((expect_sort_val(risk, col, e, now), second, ExpectKey::of(e)));
        }
    });
    pairs.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1)));
    let mut keys: Vec<ExpectKey> = pairs.into_iter().map(|(_, _, k)| k).collect();
    if desc {
        keys.reverse();
    }
    (keys, total)
}

/// Rebuild the findings rows: the risk cache's order (most severe kind first), keeping
/// those whose entry matches the filter.
pub fn build_findings(
    m: &Store,
    risk: &RiskCache,
    filter: Option<&Filter>,
    now: u32,
) -> (Vec<FindingRow>, usize) {
    let rows = risk.rows();
    let Some(x) = filter else {
        return (rows.to_vec(), rows.len());
    };
    let keep = |r: &&FindingRow| match r.subject {
        Subject::Expect(k) => m.expectation(&k).is_some_and(|e| x.match_expect(e, now)),
        Subject::Flow(k) => m.flow(&k).is_some_and(|f| x.match_flow(f, now)),
    };
    (rows.iter().filter(keep).copied().collect(), rows.len())
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
pub fn build_chains(m: &Store, filter: Option<&Filter>, now: u32) -> (Vec<ChainRow>, usize) {
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
        g.hit |= filter.is_none_or(|x| x.match_expect(e, now));
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
            g.hit |= filter.is_none_or(|x| x.match_flow(f, now));
        }
    });
    let total = groups.len();
    let mut rows = Vec::new();
    for (mk, mut g) in groups {
        let master_hit = filter.is_some_and(|x| m.flow(&mk).is_some_and(|f| x.match_flow(f, now)));
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Needs of the flow columns for a plain IPv4 table (no counters): natural widths
    /// like the lab's, flexible columns able to elide addresses.
    fn flow_needs() -> Vec<Need> {
        FlowCol::ALL
            .iter()
            .map(|c| match c {
                FlowCol::Conn => Need {
                    natural: 38,
                    min: 23,
                    floor: 8,
                },
                FlowCol::Nat => Need {
                    natural: 14,
                    min: 14,
                    floor: 3,
                },
                c => Need {
                    natural: c.width(),
                    min: c.width(),
                    floor: c.width(),
                },
            })
            .collect()
    }

    #[test]
    fn narrow_terminals_drop_whole_columns_and_keep_the_risk_badge() {
        let needs = flow_needs();
        let wide = layout(&FlowCol::ALL, &needs, 240, 1);
        assert_eq!(wide.len(), FlowCol::ALL.len());
        let cols = |w| -> Vec<FlowCol> {
            layout(&FlowCol::ALL, &needs, w, 1)
                .into_iter()
                .map(|(c, _)| c)
                .collect()
        };
        assert_eq!(
            cols(80),
            vec![
                FlowCol::Proto,
                FlowCol::Conn,
                FlowCol::Ct,
                FlowCol::Helper,
                FlowCol::Risk,
                FlowCol::Left
            ]
        );
        // At 40 columns the connection shrinks (addresses elide) to keep the badge.
        let narrow = layout(&FlowCol::ALL, &needs, 40, 1);
        assert_eq!(narrow, vec![(FlowCol::Conn, 32), (FlowCol::Risk, 7)]);
        let tiny = layout(&FlowCol::ALL, &needs, 10, 1);
        assert_eq!(tiny, vec![(FlowCol::Conn, 10)]);
        for w in 10..=300 {
            let l = layout(&FlowCol::ALL, &needs, w, 1);
            let used: u32 = l.iter().map(|(_, x)| u32::from(*x)).sum::<u32>() + l.len() as u32 - 1;
            assert!(used <= u32::from(w), "{w}: {l:?}");
        }
    }

    #[test]
    fn selection_follows_its_key() {
        let mut v: TableView<u32> = TableView::new(0);
        v.set_keys(vec![1, 2, 3, 4], 4);
        v.select(2);
        assert_eq!(v.selected(), Some(3));
        v.set_keys(vec![9, 3, 1], 3);
        assert_eq!((v.sel, v.selected()), (1, Some(3)));
        v.set_keys(vec![9], 1);
        assert_eq!(v.selected(), Some(9));
        v.set_keys(vec![5, 6, 7, 8, 9, 10], 6);
        v.select(5);
        assert_eq!(v.window(3), 3..6);
        v.select(0);
        assert_eq!(v.window(3), 0..3);
    }
}
