//! Table views: the ordered row keys behind a screen, the selection that follows its
//! entry by key, the `Column` trait every screen's column enum implements, and `layout`,
//! which picks the columns that fit a width.
//!
//! A view keeps only keys and is rebuilt (on the view builder, `tui::views`) when the
//! store's generation, the filter or the sort changes, never per frame; a frame turns only
//! the visible window into rows.
//! `layout` drops whole columns by priority (never an essential one such as Risk). The
//! columns themselves live with their screen (`screens::*`). This module must not draw
//! or style.

use super::risk::headline;
use crate::risk::Assessment;
use std::sync::Arc;

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
pub enum SortVal {
    N(u64),
    S(&'static str),
}

/// Risk as a sort value: entries with findings after those without, then by freedom;
/// unassessed entries first.
pub fn risk_rank(a: Option<&Assessment>) -> u64 {
    a.map_or(0, |a| {
        1 + headline(&a.freedom) as u64 + 8 * a.findings.len().min(1 << 16) as u64
    })
}

/// No rows yet, sorted by the first column.
impl<K: Copy + PartialEq> Default for TableView<K> {
    fn default() -> Self {
        TableView::new(0)
    }
}

/// What the app does to any screen's table, whatever its key type.
pub trait Rows {
    fn move_by(&mut self, delta: isize);
    /// Rebuild at the next chance (settings changed).
    fn invalidate(&mut self);
    /// Rows shown and entries before filtering.
    fn shown(&self) -> (usize, usize);
    /// The store generation the rows were built from; `None`: never, or invalidated.
    fn built(&self) -> Option<u64>;
    /// How far into the change journal the rows are complete (`TableView::journal`).
    fn journal(&self) -> Option<u64> {
        None
    }
}

impl<K: Copy + PartialEq> Rows for TableView<K> {
    fn move_by(&mut self, delta: isize) {
        TableView::move_by(self, delta);
    }
    fn invalidate(&mut self) {
        self.built = None;
    }
    fn shown(&self) -> (usize, usize) {
        (self.keys.len(), self.total)
    }
    fn built(&self) -> Option<u64> {
        self.built
    }
    fn journal(&self) -> Option<u64> {
        self.journal
    }
}

/// Sort and selection state plus the row keys of one table.
#[derive(Debug, Clone)]
pub struct TableView<K> {
    /// Shared, so a build can read the rows it refines (`Screen::job` with changes) with
    /// no copy on the main thread.
    pub keys: Arc<Vec<K>>,
    /// How far into the app's change journal (`tui::journal`) `keys` are complete, when
    /// they came from a build that said so.
    pub journal: Option<u64>,
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
            keys: Arc::default(),
            journal: None,
            sel: 0,
            sel_key: None,
            offset: 0,
            sort,
            desc: false,
            built: None,
            total: 0,
        }
    }

    /// Swap in built rows (keys and the count before filtering) of store generation
    /// `gen`, keeping the selection on the same entry (`set_keys`).
    pub fn accept(&mut self, keys: Vec<K>, total: usize, gen: u64)
    where
        K: Send + Sync + 'static,
    {
        self.set_keys(keys, total);
        self.built = Some(gen);
    }

    /// Replace the keys, keeping the selection on the same entry when it is still there,
    /// otherwise on the same position. Large old keys are freed off this thread
    /// (`worker::dispose`).
    pub fn set_keys(&mut self, keys: Vec<K>, total: usize)
    where
        K: Send + Sync + 'static,
    {
        let old = std::mem::replace(&mut self.keys, Arc::new(keys));
        if old.len() >= DISPOSE_FROM {
            super::worker::dispose(old);
        }
        self.total = total;
        if let Some(k) = self.sel_key {
            // Most rebuilds leave the entry where it was: look there before searching a
            // million keys on the main thread.
            if self.keys.get(self.sel) != Some(&k) {
                if let Some(i) = find_near(&self.keys, self.sel, &k) {
                    self.sel = i;
                }
            }
        }
        self.clamp();
    }

    /// Show the rows in the other direction at once (`r`). Every sortable table settles
    /// ties by its key, so its order is total and the other direction is exactly this
    /// order reversed: the view stays right for the generation it shows, with no build,
    /// and the selection stays on its entry. The caller still asks for a build in the new
    /// direction, as after any settings change (the data may have moved since).
    pub fn reverse(&mut self) {
        self.desc = !self.desc;
        match Arc::get_mut(&mut self.keys) {
            Some(keys) => keys.reverse(),
            // A build still reads these rows (a refine): one reversed copy, not a copy
            // reversed after (two passes over a million keys on the main thread).
            None => self.keys = Arc::new(self.keys.iter().rev().copied().collect()),
        }
        if let Some(last) = self.keys.len().checked_sub(1) {
            self.sel = last - self.sel.min(last);
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

/// Old keys from this many rows on (~3 MB of flow keys) are freed on a background thread;
/// smaller ones cost little to free here.
const DISPOSE_FROM: usize = 1 << 16;

/// Rows searched on each side of the selection's old row before the whole table.
const NEAR: usize = 4096;

/// Where `k` is in `keys`, looking outwards from row `at` first: a rebuild moves the
/// selected entry by the rows that came and went above it, usually a few. Searching from
/// the top instead read up to a million keys (~5 ms) on the main thread at every swap
/// under churn. Only an entry that moved far, or went, costs the whole search.
fn find_near<K: PartialEq>(keys: &[K], at: usize, k: &K) -> Option<usize> {
    let n = keys.len();
    for d in 1..=NEAR.min(n) {
        if at + d < n && keys[at + d] == *k {
            return Some(at + d);
        }
        if d <= at && at - d < n && keys[at - d] == *k {
            return Some(at - d);
        }
    }
    keys.iter().position(|x| x == k)
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// `r` reverses the shown order at once, the selection on the same entry.
    #[test]
    fn reverse_keeps_the_selection_on_its_entry() {
        let mut v: TableView<u32> = TableView::new(0);
        v.set_keys(vec![1, 2, 3, 4, 5], 5);
        v.select(1);
        v.reverse();
        assert_eq!(*v.keys, [5, 4, 3, 2, 1]);
        assert_eq!((v.sel, v.selected(), v.desc), (3, Some(2), true));
        v.reverse();
        assert_eq!((v.sel, v.selected(), v.desc), (1, Some(2), false));
        let mut empty: TableView<u32> = TableView::new(0);
        empty.reverse();
        assert_eq!((empty.sel, empty.selected()), (0, None));
        // Rows a build still reads are reversed into a copy; the build keeps its own.
        v.select(0);
        let held = Arc::clone(&v.keys);
        v.reverse();
        assert_eq!(
            (&v.keys[..], &held[..]),
            (&[5, 4, 3, 2, 1][..], &[1, 2, 3, 4, 5][..])
        );
        assert_eq!(v.selected(), Some(1));
    }

    /// The selection is found near its old row first, then anywhere; an entry that went
    /// leaves it on the same row.
    #[test]
    fn find_near_looks_outwards_then_everywhere() {
        let keys: Vec<u32> = (0..10_000).collect();
        assert_eq!(find_near(&keys, 5_000, &5_003), Some(5_003));
        assert_eq!(find_near(&keys, 5_000, &4_990), Some(4_990));
        assert_eq!(
            find_near(&keys, 9_999, &0),
            Some(0),
            "far away: the whole search"
        );
        assert_eq!(
            find_near(&keys, 20_000, &9_999),
            Some(9_999),
            "an old row past the end"
        );
        assert_eq!(find_near(&keys, 3, &77_777), None);
        let mut v: TableView<u32> = TableView::new(0);
        v.set_keys(keys.clone(), keys.len());
        v.select(5_000);
        let shifted: Vec<u32> = (0..3).map(|i| 100_000 + i).chain(keys).collect();
        v.set_keys(shifted, 10_003);
        assert_eq!((v.sel, v.selected()), (5_003, Some(5_000)));
    }
}
