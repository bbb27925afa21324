//! The flows screen: every conntrack entry, one row each, with its connection, NAT,
//! state, helper, risk badge and time left. Owns the flow columns (a new column is one
//! `FlowCol` variant: its `Column` arms, its cell in `flow_rows` and its sort value
//! in `sort_value`, all below), the pure row build (`build`), selection, sort and drawing.
//!
//! This module must not change the store or reach the engine.

use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::Line;
use ratatui::Frame;

use crate::actions::Entry;
use crate::model::store::FlowKey;
use crate::model::{Flow, Store};
use crate::tui::popups::detail;
use crate::tui::risk::RiskCache;
use crate::tui::scratch;
use crate::tui::text;
use crate::tui::theme::Theme;
use crate::tui::view::{self, risk_rank, Column, SortVal, TableView};
use crate::tui::widgets::table::{self, TextRow};
use crate::tui::worker::{self, sort_parts, Lanes};

use super::{display_helper, risk_text, sort_title, Ctx, Drawn, Jump, Listed, SortedTable, Spec};

/// Flow table columns. A new column is one variant here, its `Column` arms beside it, its
/// cell in `flow_rows` and its sort value in `sort_value`.
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

/// The value a flow sorts by in column `col`: numbers or static names, cheap to build for
/// a million rows.
fn sort_value(risk: &RiskCache, col: FlowCol, f: &Flow, now: u32) -> SortVal {
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

/// What the flows scan copies out, in parts (one per thread the scan ran on, `Lanes`):
/// numeric sort values, or names (state, ctstate, helper) that the finish ranks into
/// numbers; both go to `sort_parts` (the cheap sort at a million rows).
pub enum Values {
    Numbers(Vec<Vec<(u64, FlowKey)>>),
    Names(Vec<Vec<(SortVal, FlowKey)>>),
}

/// The scan's rows, and whether any of them is a RELATED flow: only those show a verdict
/// (the risk cache assesses RELATED flows), so only rows holding one wait for verdicts
/// that have seen them (`SortedTable::verdicts_needed`).
pub struct Scanned {
    pub values: Values,
    pub related: bool,
}

/// Tables smaller than this are scanned on one thread whatever the lanes: below it a
/// second thread's start and the merge cost more than they save.
#[cfg(not(test))]
const SPLIT_FROM: usize = 1 << 17;
/// Unit tests split small tables too, so the two-part path meets the sort tests.
#[cfg(test)]
const SPLIT_FROM: usize = 1 << 10;

/// The columns `sort_value` gives a name (`SortVal::S`) for: ranked into numbers by the
/// finish, where the others are numbers from the scan on.
fn by_name(col: FlowCol) -> bool {
    matches!(col, FlowCol::State | FlowCol::Ct | FlowCol::Helper)
}

/// Filter and copy out each shown flow's sort value and key (under the store's lock),
/// split over `spec.lanes` threads for a large table. Also the number of flows before
/// filtering.
pub fn scan(m: &Store, spec: &Spec<FlowCol>) -> (Scanned, usize) {
    let (filter, risk, col, now) = (spec.filter, spec.risk, spec.sort, spec.now);
    let total = m.flow_count();
    let facts = spec.facts.context(m);
    let by_name = by_name(col);
    let shown = |f: &Flow| filter.is_none_or(|x| x.match_flow_in(f, now, &facts));
    // One part: its numbers or names, and whether it holds a RELATED flow.
    let part = |flows: &[Flow]| {
        let mut related = false;
        let mut keep = |f: &&Flow| {
            let s = shown(f);
            related |= s && f.is_related();
            s
        };
        let values = if by_name {
            let mut rows = Vec::with_capacity(flows.len());
            rows.extend(
                flows
                    .iter()
                    .filter(&mut keep)
                    .map(|f| (sort_value(risk, col, f, now), FlowKey::of(f))),
            );
            Values::Names(vec![rows])
        } else {
            let mut rows = scratch::take(flows.len());
            rows.extend(flows.iter().filter(&mut keep).map(|f| {
                let v = match sort_value(risk, col, f, now) {
                    SortVal::N(n) => n,
                    SortVal::S(_) => 0,
                };
                (v, FlowKey::of(f))
            }));
            Values::Numbers(vec![rows])
        };
        Scanned { values, related }
    };
    let flows = m.flow_slice();
    if spec.lanes.get() < 2 || flows.len() < SPLIT_FROM {
        return (part(flows), total);
    }
    let (x, y) = flows.split_at(flows.len() / 2);
    let (a, b) = std::thread::scope(|s| {
        let b = s.spawn(|| part(y));
        (
            part(x),
            b.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
        )
    });
    let values = match (a.values, b.values) {
        (Values::Numbers(mut p), Values::Numbers(q)) => {
            p.extend(q);
            Values::Numbers(p)
        }
        (Values::Names(mut p), Values::Names(q)) => {
            p.extend(q);
            Values::Names(p)
        }
        // Both halves ran the same `by_name` branch: never mixed, and never dropped.
        _ => unreachable!("the two halves of one scan are of one kind"),
    };
    let related = a.related || b.related;
    (Scanned { values, related }, total)
}

/// The order of flows with equal sort values, and the whole order of the Conn sort: by
/// original tuple, then the zones. Total (every part of the key takes part), so a build
/// refined from the journal (`SortedTable::by_key`) and a full sort agree.
pub fn key_order(a: &FlowKey, b: &FlowKey) -> std::cmp::Ordering {
    (a.orig, a.zone, a.zone_orig, a.zone_reply).cmp(&(b.orig, b.zone, b.zone_orig, b.zone_reply))
}

/// The source address as two words, the prefix of `key_order` that `sort_parts` sorts on:
/// `Tuple` orders by `src` first.
pub fn src_prefix(k: &FlowKey) -> [u64; 2] {
    let word = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap_or([0; 8]));
    [word(&k.orig.src[..8]), word(&k.orig.src[8..])]
}

/// Sort what `scan` copied out (ties by key, so the order is total), in direction `desc`.
pub fn finish(scanned: Scanned, desc: bool) -> Vec<FlowKey> {
    let by_key = key_order;
    let mut keys = match scanned.values {
        Values::Numbers(parts) => sort_parts(parts, src_prefix, by_key),
        // A handful of distinct names (states, ctstates, helpers): ranked once, then
        // sorted as numbers. Sorting the names themselves took ~665 ms at a million rows
        // (`examples/view_build`), past the 250 ms a sort change may take.
        Values::Names(parts) => {
            let mut names: Vec<SortVal> = Vec::new();
            for (v, _) in parts.iter().flatten() {
                if names.last() != Some(v) && !names.contains(v) {
                    names.push(*v);
                }
            }
            names.sort_unstable();
            let rank = |v: &SortVal| names.iter().position(|n| n == v).unwrap_or(0) as u64;
            let ranked = parts
                .into_iter()
                .map(|rows| rows.into_iter().map(|(v, k)| (rank(&v), k)).collect())
                .collect();
            sort_parts(ranked, src_prefix, by_key)
        }
    };
    if desc {
        keys.reverse();
    }
    keys
}

/// The flow keys: filter, then sort (ties by key, so the order is total). Returns the keys
/// and the number of flows before filtering. A pure function of the store and `spec`:
/// `scan` then `finish`, as the view builder runs them.
pub fn build(m: &Store, spec: &Spec<FlowCol>) -> (Vec<FlowKey>, usize) {
    let (scanned, total) = scan(m, spec);
    (finish(scanned, spec.desc), total)
}

/// The flow table's rows for the visible keys. Without the ctstate column its first
/// letter (N/E/R) leads the connection, so RELATED stays readable as text; without the NAT
/// column NAT is folded into the connection (pre ⇒ post).
fn flow_rows(
    cx: &Ctx,
    t: &Theme,
    keys: &[FlowKey],
    cols: &[FlowCol],
    has_ct: bool,
    has_nat: bool,
) -> Vec<TextRow> {
    let now = cx.now;
    let mut rows = Vec::with_capacity(keys.len());
    for key in keys {
        let Some(fl) = cx.store.flow(key) else {
            let cells = cols
                .iter()
                .map(|c| match c {
                    FlowCol::Proto => "gone".to_owned(),
                    FlowCol::Conn => text::conn(&key.orig),
                    _ => String::new(),
                })
                .collect();
            rows.push(TextRow::plain(cells, t.dim));
            continue;
        };
        let helper = display_helper(cx.store, key, fl);
        let hname = helper.shown().unwrap_or("");
        let related = fl.is_related();
        let risk = if related { cx.risk.flow(key) } else { None };
        let cells = cols
            .iter()
            .map(|c| match c {
                FlowCol::Proto => (text::proto_name(fl.orig.proto), Style::new()),
                FlowCol::Conn => {
                    let c = if has_nat {
                        text::conn(&fl.orig)
                    } else {
                        text::conn_nat(fl)
                    };
                    if has_ct {
                        (c, Style::new())
                    } else {
                        (format!("{} {c}", &fl.ctstate()[..1]), Style::new())
                    }
                }
                FlowCol::Nat => (text::nat(fl).unwrap_or_default(), Style::new()),
                FlowCol::State => (fl.state_name().unwrap_or("-").to_owned(), Style::new()),
                FlowCol::Ct => {
                    let ct = fl.ctstate();
                    let st = if ct == "RELATED" {
                        t.related
                    } else {
                        Style::new()
                    };
                    (ct.to_owned(), st)
                }
                FlowCol::Flags => (text::status_letters(fl.status), Style::new()),
                FlowCol::Helper => (hname.to_owned(), t.helper(hname)),
                FlowCol::Risk => risk_text(t, risk, fl.orig.dport, related),
                FlowCol::Zone => (fl.zone.to_string(), Style::new()),
                FlowCol::Mark => (
                    if fl.mark == 0 {
                        "-".to_owned()
                    } else {
                        format!("{:#x}", fl.mark)
                    },
                    Style::new(),
                ),
                FlowCol::Left => (text::dur_short(fl.remaining(now)), Style::new()),
                FlowCol::Counters => (text::counters(fl).unwrap_or_default(), Style::new()),
            })
            .collect();
        let style = if related {
            t.related.patch(t.helper(hname))
        } else {
            Style::new()
        };
        rows.push(TextRow { cells, style });
    }
    rows
}

/// The flows screen's state: its row keys, selection and sort.
pub struct Flows {
    pub view: TableView<FlowKey>,
}

impl Default for Flows {
    fn default() -> Flows {
        let conn = FlowCol::ALL
            .iter()
            .position(|c| *c == FlowCol::Conn)
            .unwrap_or(0);
        Flows {
            view: TableView::new(conn),
        }
    }
}

impl SortedTable for Flows {
    type Key = FlowKey;
    type Col = FlowCol;
    type Scanned = Scanned;
    const TITLES: (&'static str, &'static str) = ("Flows", "Flows");
    const COLUMNS: &'static [FlowCol] = &FlowCol::ALL;

    fn sorts_by_risk(col: FlowCol) -> bool {
        col == FlowCol::Risk
    }

    fn by_key(col: FlowCol) -> bool {
        col == FlowCol::Conn
    }

    fn key_order(a: &FlowKey, b: &FlowKey) -> std::cmp::Ordering {
        key_order(a, b)
    }

    /// What a full build by a number takes, where it splits over two threads: the scan's
    /// rows per thread and the sort's buffers. (A sort by name ranks its rows into new
    /// ones: left to allocate.)
    fn warm(col: FlowCol, rows: usize) {
        if rows < SPLIT_FROM || by_name(col) {
            return;
        }
        let lanes = Lanes::spec();
        worker::chore(move || {
            scratch::warm::<(u64, FlowKey)>(lanes.get(), rows.div_ceil(lanes.get()));
            worker::warm_sort::<FlowKey>(rows, lanes);
        });
    }

    fn listed(store: &Store, changed: &[FlowKey]) -> Option<Listed<FlowKey>> {
        let listed = changed
            .iter()
            .filter(|k| store.flow(k).is_some())
            .copied()
            .collect();
        Some((changed.to_vec(), listed))
    }

    fn view(&self) -> &TableView<FlowKey> {
        &self.view
    }

    fn view_mut(&mut self) -> &mut TableView<FlowKey> {
        &mut self.view
    }

    fn count(cx: &Ctx) -> usize {
        cx.summary.flows
    }

    fn scan(store: &Store, spec: &Spec<FlowCol>) -> (Scanned, usize) {
        scan(store, spec)
    }

    fn finish(scanned: Scanned, desc: bool) -> Vec<FlowKey> {
        finish(scanned, desc)
    }

    fn verdicts_needed(scanned: &Scanned) -> bool {
        scanned.related
    }

    fn key(e: Entry) -> Option<FlowKey> {
        e.flow()
    }

    fn jump_from(&self, _cx: &Ctx) -> Jump {
        match self.view.selected() {
            Some(k) => Jump::Within(k),
            None => Jump::Nothing,
        }
    }

    fn detail_lines(&self, cx: &Ctx) -> (&'static str, Vec<Line<'static>>) {
        match self.view.selected() {
            Some(k) => match cx.store.flow(&k) {
                Some(fl) => ("Flow", detail::flow(cx, &k, fl)),
                None => ("Flow", vec![Line::from("(gone from the store)")]),
            },
            None => ("Detail", vec![]),
        }
    }

    fn draw_rows(&mut self, f: &mut Frame, cx: &Ctx, area: Rect) -> Drawn {
        let range = self.view.window(table::body_height(area));
        let t = cx.theme;
        let visible = &self.view.keys[range.clone()];
        let accounting = visible.iter().any(|k| {
            cx.store
                .flow(k)
                .is_some_and(|x| x.extra.as_ref().is_some_and(|e| e.counters.is_some()))
        });
        let mut cols: Vec<FlowCol> = FlowCol::ALL
            .into_iter()
            .filter(|c| *c != FlowCol::Counters || accounting)
            .collect();
        let sorted = FlowCol::ALL[self.view.sort];
        let heads = |cols: &[FlowCol], has_ct: bool| -> Vec<String> {
            cols.iter()
                .map(|c| {
                    let title = sort_title(c.title(), *c == sorted, self.view.desc);
                    if *c == FlowCol::Conn && !has_ct {
                        format!("C {title}")
                    } else {
                        title
                    }
                })
                .collect()
        };
        // Lay out with the full cells first; when that leaves out ctstate or NAT, the
        // connection carries them itself, so lay out again with those cells.
        let rows = flow_rows(cx, t, visible, &cols, true, true);
        let needs = table::column_needs(&cols, &heads(&cols, true), &rows);
        let shown: Vec<FlowCol> = view::layout(&cols, &needs, area.width, 1)
            .into_iter()
            .map(|(c, _)| c)
            .collect();
        let has_ct = shown.contains(&FlowCol::Ct);
        let has_nat = shown.contains(&FlowCol::Nat);
        let rows = if has_ct && has_nat {
            rows
        } else {
            cols.retain(|c| (has_ct || *c != FlowCol::Ct) && (has_nat || *c != FlowCol::Nat));
            flow_rows(cx, t, visible, &cols, has_ct, has_nat)
        };
        let empty = table::empty_message(self.view.total, "flows");
        let heads = heads(&cols, has_ct);
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
mod tests {
    use super::*;
    use crate::tui::view::{layout, Need};

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
}

#[cfg(test)]
mod order {
    use super::*;
    use crate::model::{Event, Record};
    use crate::tui::screens::testing::{flow, tcp};
    use crate::tui::screens::Facts;
    use crate::tui::worker::Lanes;

    /// Every sort column (numbers, and names ranked into numbers) gives the order of a
    /// plain sort by `(sort_value, key)`, on a table large enough for the radix path, on
    /// one thread and split over two (`Lanes`).
    #[test]
    fn every_column_sorts_as_a_plain_sort_of_value_then_key() {
        let mut store = Store::new();
        let mut x = 7u64;
        for i in 0..9_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (a, b) = ((x >> 8) as u8 % 40, (x >> 16) as u8);
            let mut f = flow(
                tcp(
                    &format!("10.{a}.{b}.1"),
                    1000 + (i % 700) as u16,
                    "10.9.9.9",
                    80,
                ),
                (x % 500) as u32,
            );
            f.state = (x >> 24) as u8 % 10;
            f.helper = crate::model::helper::HelperId((x >> 32) as u8 % 4);
            f.mark = (x >> 40) as u32 % 3;
            f.zone = (x >> 48) as u16 % 2;
            f.status = (x >> 52) as u32 % 16;
            store.apply(Event::New, Record::Flow(f), 0);
        }
        let risk = RiskCache::default();
        for (col, lanes) in FlowCol::ALL
            .iter()
            .flat_map(|c| [(*c, Lanes::ONE), (*c, Lanes::TWO)])
        {
            for desc in [false, true] {
                let spec = Spec {
                    filter: None,
                    risk: &risk,
                    sort: col,
                    desc,
                    now: 100,
                    facts: Facts::default(),
                    lanes,
                };
                let (keys, total) = build(&store, &spec);
                let mut plain: Vec<(SortVal, FlowKey)> = store
                    .flows()
                    .map(|f| (sort_value(&risk, col, f, 100), FlowKey::of(f)))
                    .collect();
                plain.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| key_order(&a.1, &b.1)));
                let mut plain: Vec<FlowKey> = plain.into_iter().map(|(_, k)| k).collect();
                if desc {
                    plain.reverse();
                }
                assert_eq!(total, store.flow_count());
                assert!(keys == plain, "{col:?} desc={desc} {lanes:?}");
            }
        }
    }
}

#[cfg(test)]
mod stability {
    use super::*;
    use crate::tui::screens::testing::{flow, tcp, Fixture};
    use crate::tui::screens::Screen;

    /// Flows that sort above the selected one arrive: the selection stays on its flow.
    #[test]
    fn selection_stays_on_its_flow_while_rows_arrive_above() {
        let mut fx = Fixture::new();
        let picked = flow(tcp("10.0.0.5", 1000, "10.0.0.9", 80), 100);
        fx.new_flow(flow(tcp("10.0.0.7", 1000, "10.0.0.9", 80), 100));
        fx.new_flow(picked.clone());
        let mut s = Flows::default();
        fx.prepare(&mut s);
        let key = FlowKey::of(&picked);
        assert!(s.select(Entry::Flow(key)));
        let before = s.view.sel;
        for i in 1..=3 {
            fx.new_flow(flow(tcp(&format!("10.0.0.{i}"), 1000, "10.0.0.9", 80), 100));
        }
        fx.prepare(&mut s);
        assert_eq!(s.selected(), Some(Entry::Flow(key)));
        assert_eq!(s.view.sel, before + 3, "{:?}", s.view.keys);
    }
}
