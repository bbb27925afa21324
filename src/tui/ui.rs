//! Drawing: one function per screen region, all reading `App` and writing a ratatui frame.
//!
//! ```text
//! ┌──────────────────────────────────────────────────────────────────────────────┐
//! │ PAUSED ctscope ns:lab │ flows 1,234/262,144 [███░░░] 0% │ 12 ev/s │ exp 3 … │ header
//! │ helpers (flows/exp): ftp 2/1 · sip 1/0                                       │
//! │ 1 Flows 1,234 │ 2 Expectations 3 │ 3 Chains 2        filter: … 12/1,234 match│ tabs
//! │ Proto Original src:port → dst:port     ctstate   Left   Helper Risk …        │ table
//! │ …only the visible window becomes rows…                                       │
//! │ ┌ Detail ──────────────────────────────────────────────────────────────────┐ │ detail
//! │ └──────────────────────────────────────────────────────────────────────────┘ │ (Enter)
//! │ status line / filter bar (with the bad span marked)        sort: Left ▲ dark │
//! └──────────────────────────────────────────────────────────────────────────────┘
//! ```
//! Help and confirmation are centred overlays. This module must not change app state
//! beyond the visible-window offsets and frame statistics.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Cell, Clear, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use crate::model::expect::flags as eflags;
use crate::model::flow::status;
use crate::model::store::{ExpectKey, FlowKey};
use crate::model::{Expectation, Flow, HelperId};

use super::app::{App, Overlay, StatusKind, Tab};
use super::keymap;
use super::model::Model;
use super::risk::{self as trisk, FindingRow, Subject};
use super::text;
use super::theme::Theme;
use super::view::{self, ChainCol, ChainRow, Column, ExpectCol, FindingCol, FlowCol, Need};
use crate::risk::{Assessment, Freedom};

/// Long lines wrap at word boundaries, so a number is never split across the edge
/// (a word wider than the whole pane is the only exception, and none of ours is).
const WRAP: ratatui::widgets::Wrap = ratatui::widgets::Wrap { trim: false };

/// Draw the whole screen.
pub fn draw<M: Model>(f: &mut Frame, app: &mut App<M>) {
    let area = f.area();
    let bar_lines = match &app.bar {
        Some(b) if b.error.is_some() => 2,
        _ => 1,
    };
    let [head, tabs, body, foot] = Layout::vertical([
        Constraint::Length(2),
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(bar_lines),
    ])
    .areas(area);
    header(f, app, head);
    tab_line(f, app, tabs);
    // The findings screen has its own pane for the selected finding.
    let table_area = if app.detail && app.tab != Tab::Findings {
        // As many lines as the entry has, leaving the table at least a header and 3 rows.
        let want = detail_len(app) as u16 + 1;
        let detail_h = want
            .max(body.height * 3 / 5)
            .min(body.height.saturating_sub(4))
            .max(3.min(body.height));
        let [t, d] =
            Layout::vertical([Constraint::Min(1), Constraint::Length(detail_h)]).areas(body);
        detail(f, app, d);
        t
    } else {
        body
    };
    match app.tab {
        Tab::Flows => flows_table(f, app, table_area),
        Tab::Expects => expects_table(f, app, table_area),
        Tab::Chains => chains_table(f, app, table_area),
        Tab::Findings => findings_screen(f, app, table_area),
    }
    footer(f, app, foot);
    match &app.overlay {
        Overlay::None => {}
        Overlay::Help => help(f, app, area),
        Overlay::Confirm(_) => confirm(f, app, area),
    }
    app.frame.frames += 1;
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: usize) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn sep(t: &Theme) -> Span<'static> {
    Span::styled(" │ ", t.dim)
}

/// One item of a header line: its spans and how long it is kept when the line is short
/// (lower is kept longer). Items are dropped whole, so every count in them stays whole.
struct Item {
    prio: u8,
    spans: Vec<Span<'static>>,
    /// Joined to the previous item by one space instead of the separator.
    glue: bool,
}

impl Item {
    fn new(prio: u8, spans: Vec<Span<'static>>) -> Item {
        Item {
            prio,
            spans,
            glue: false,
        }
    }

    fn glued(mut self) -> Item {
        self.glue = true;
        self
    }

    fn width(&self) -> usize {
        self.spans.iter().map(Span::width).sum()
    }
}

/// Drop whole items, least important first, until they fit `width` with `gap` cells
/// between neighbours (one for glued items); returns which are kept.
fn keep_items(items: &[Item], width: usize, gap: usize) -> Vec<bool> {
    let mut keep = vec![true; items.len()];
    let used = |keep: &[bool]| -> usize {
        let mut total = 0;
        for (i, item) in items
            .iter()
            .zip(keep)
            .filter(|(_, k)| **k)
            .map(|(i, _)| i)
            .enumerate()
        {
            if i > 0 {
                total += if item.glue { 1 } else { gap };
            }
            total += item.width();
        }
        total
    };
    let mut order: Vec<usize> = (0..items.len()).collect();
    order.sort_by_key(|i| std::cmp::Reverse((items[*i].prio, *i)));
    for i in order {
        if used(&keep) <= width {
            break;
        }
        keep[i] = false;
    }
    keep
}

/// Items joined by `sep`, without those `keep_items` dropped.
fn join_items(items: Vec<Item>, keep: &[bool], sep: &Span<'static>) -> Vec<Span<'static>> {
    let mut out = Vec::new();
    for (item, _) in items.into_iter().zip(keep).filter(|(_, k)| **k) {
        if !out.is_empty() {
            out.push(if item.glue {
                Span::raw(" ")
            } else {
                sep.clone()
            });
        }
        out.extend(item.spans);
    }
    out
}

/// The two header lines. Each is a list of items with priorities; a narrow terminal drops
/// whole items (the gauge, the rate, the helper list…) and never cuts a count: findings
/// and lost-event resyncs are the last to go.
fn header<M: Model>(f: &mut Frame, app: &App<M>, area: Rect) {
    let t = &app.theme;
    let s = &app.summary;
    let width = usize::from(area.width);
    let mut l1: Vec<Item> = Vec::new();
    let mut title: Vec<Span> = Vec::new();
    if app.paused {
        title.push(Span::styled(" PAUSED ", t.paused));
    }
    if let Some(m) = &app.fatal {
        let what = match crate::engine::record::damaged_at(m) {
            Some(at) if app.opts.recorded_start.is_some() => format!(" DAMAGED at byte {at} "),
            _ if app.opts.recorded_start.is_some() => " RECORDING DAMAGED ".to_string(),
            _ => " ENGINE FAILED ".to_string(),
        };
        if !title.is_empty() {
            title.push(Span::raw(" "));
        }
        title.push(Span::styled(what, t.error));
    } else if app.ended {
        let what = if app.opts.recorded_start.is_some() {
            " REPLAY ENDED "
        } else {
            " ENGINE STOPPED "
        };
        if !title.is_empty() {
            title.push(Span::raw(" "));
        }
        title.push(Span::styled(what, t.paused));
    }
    if !title.is_empty() {
        l1.push(Item::new(0, title));
    }
    if !app.paused {
        l1.push(Item::new(6, vec![Span::styled("ctscope", t.title)]).glued());
    }
    if let Some(ns) = &app.opts.namespace {
        l1.push(Item::new(7, vec![Span::styled(format!("ns:{ns}"), t.dim)]).glued());
    }
    if let Some(r) = app.replay {
        // The replay's position (whole recorded seconds) and pace; "held" when `p` holds it.
        let mut spans = vec![Span::raw(format!("at {}s {}", app.now, r.speed.label()))];
        if r.held {
            spans.push(Span::styled(" held", t.paused));
        }
        l1.push(Item::new(3, spans));
    }
    match app.opts.conntrack_max {
        Some(max) if max > 0 => {
            let ratio = (s.flows as f64 / max as f64).min(1.0);
            let cells = 6usize;
            let filled = (ratio * cells as f64).round() as usize;
            l1.push(Item::new(
                1,
                vec![Span::raw(format!(
                    "flows {}/{}",
                    thousands(s.flows),
                    thousands(max as usize)
                ))],
            ));
            let pct_style = if ratio >= 0.9 { t.error } else { t.base };
            l1.push(
                Item::new(
                    4,
                    vec![
                        Span::styled("█".repeat(filled), t.gauge),
                        Span::styled("░".repeat(cells - filled), t.dim),
                        Span::styled(format!(" {:.0}%", ratio * 100.0), pct_style),
                    ],
                )
                .glued(),
            );
        }
        _ => l1.push(Item::new(
            1,
            vec![Span::raw(format!("flows {}", thousands(s.flows)))],
        )),
    }
    if app.dumping {
        l1.push(Item::new(2, vec![Span::styled("dumping…", t.warn)]).glued());
    }
    l1.push(Item::new(
        5,
        vec![Span::raw(format!("{:.0} ev/s", app.rate))],
    ));
    l1.push(Item::new(
        3,
        vec![Span::raw(format!("exp {}", thousands(s.expects)))],
    ));
    l1.push(Item::new(
        2,
        vec![Span::styled(
            format!("RELATED {}", thousands(s.related)),
            t.related,
        )],
    ));
    let keep = keep_items(&l1, width, 3);
    let line1 = join_items(l1, &keep, &sep(t));

    // Findings, lost-event resyncs (and decode errors) sit at the right of the second
    // line and go last; the helper list gives way first, one whole helper at a time.
    let resync_style = if s.stats.resyncs > 0 { t.warn } else { t.base };
    let n = app.risk.count();
    let mut right: Vec<Item> = Vec::new();
    if app.decode_errors > 0 {
        right.push(Item::new(
            0,
            vec![Span::styled(
                format!("decode errors {}", app.decode_errors),
                t.error,
            )],
        ));
    }
    right.push(Item::new(
        0,
        vec![if n > 0 {
            Span::styled(format!("findings !{}", thousands(n)), t.finding)
        } else {
            Span::raw("findings 0")
        }],
    ));
    right.push(Item::new(
        1,
        vec![Span::styled(
            format!("resyncs {}", thousands(s.stats.resyncs as usize)),
            resync_style,
        )],
    ));
    let right_keep = keep_items(&right, width, 3);
    let right_w = right
        .iter()
        .zip(&right_keep)
        .filter(|(_, k)| **k)
        .map(|(i, _)| i.width() + 3)
        .sum::<usize>()
        .saturating_sub(3);
    let room = width.saturating_sub(right_w + 1);
    let label = if room >= 60 {
        "helpers (flows/exp):"
    } else {
        "helpers:"
    };
    let mut left: Vec<Item> = vec![Item::new(0, vec![Span::styled(label, t.dim)])];
    if s.helpers.is_empty() {
        left.push(Item::new(1, vec![Span::styled("none", t.dim)]));
    }
    for (i, (name, fl, ex)) in s.helpers.iter().enumerate() {
        let dot = if i > 0 {
            Some(Span::styled("· ", t.dim))
        } else {
            None
        };
        left.push(Item::new(
            // Later helpers give way first.
            (2 + i).min(usize::from(u8::MAX)) as u8,
            dot.into_iter()
                .chain([
                    Span::styled((*name).to_owned(), t.helper(name)),
                    Span::raw(format!(" {fl}/{ex}")),
                ])
                .collect(),
        ));
    }
    // Room for the `…` that says helpers were left out.
    let mut left_keep = keep_items(&left, room, 1);
    if left_keep.iter().any(|k| !k) {
        left_keep = keep_items(&left, room.saturating_sub(2), 1);
    }
    let dropped = left_keep.iter().any(|k| !k);
    let mut line2 = join_items(left, &left_keep, &Span::raw(" "));
    if dropped {
        line2.push(Span::styled(" …", t.dim));
    }
    let used: usize = line2.iter().map(Span::width).sum();
    line2.push(Span::raw(
        " ".repeat(width.saturating_sub(used + right_w).max(1)),
    ));
    line2.extend(join_items(right, &right_keep, &Span::styled(" · ", t.dim)));
    f.render_widget(
        Paragraph::new(vec![Line::from(line1), Line::from(line2)]),
        area,
    );
}

fn tab_line<M: Model>(f: &mut Frame, app: &App<M>, area: Rect) {
    let t = &app.theme;
    let counts = [
        app.summary.flows,
        app.summary.expects,
        app.summary.chains,
        app.risk.count(),
    ];
    let mut spans = Vec::new();
    for (i, tab) in Tab::ALL.iter().enumerate() {
        if i > 0 {
            spans.push(sep(t));
        }
        let style = if *tab == app.tab { t.tab_active } else { t.tab };
        let count = if *tab == Tab::Findings && counts[i] > 0 {
            format!("!{}", thousands(counts[i]))
        } else {
            thousands(counts[i])
        };
        let label = if area.width < 60 {
            format!("{} {}", i + 1, &tab.short_title()[..1])
        } else if area.width < 100 {
            format!("{} {} {count}", i + 1, tab.short_title())
        } else {
            format!("{} {} {count}", i + 1, tab.title())
        };
        spans.push(Span::styled(label, style));
    }
    let (shown, total) = match app.tab {
        Tab::Flows => (app.flows.keys.len(), app.flows.total),
        Tab::Expects => (app.expects.keys.len(), app.expects.total),
        Tab::Chains => (
            app.chains
                .keys
                .iter()
                .filter(|r| matches!(r, ChainRow::Master(_)))
                .count(),
            app.chains.total,
        ),
        Tab::Findings => (app.findings.keys.len(), app.findings.total),
    };
    let right = match app.filter_text() {
        Some(ft) => format!(
            "filter: {ft} · {}/{} match",
            thousands(shown),
            thousands(total)
        ),
        None => format!("{} shown", thousands(shown)),
    };
    // The match count goes whole or not at all; the filter text gives way first.
    let left_w: usize = spans.iter().map(|s| s.width()).sum();
    let room = (area.width as usize).saturating_sub(left_w + 1);
    let short = format!("{}/{}", thousands(shown), thousands(total));
    let right = [right, short]
        .into_iter()
        .find(|r| text::width(r) <= room)
        .unwrap_or_default();
    let pad = room.saturating_sub(text::width(&right));
    spans.push(Span::raw(" ".repeat(pad.max(1))));
    spans.push(Span::styled(right, t.dim));
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// The helper a flow is shown under: its own, else the one whose expectation created it,
/// else its master's (a RELATED FTP data flow carries no helper itself).
fn display_helper<M: Model>(m: &M, key: &FlowKey, fl: &Flow) -> HelperId {
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
fn risk_badge(t: &Theme, a: &Assessment, port: u16) -> (String, Style) {
    let style = if a.findings.is_empty() {
        t.freedom(trisk::headline(&a.freedom))
    } else {
        t.finding
    };
    (trisk::badge(a, port), style)
}

/// The risk cell's text and style; `?` for a RELATED entry nobody could assess (no
/// assessor: every RELATED flow is assessed otherwise, from the flow if need be).
fn risk_text(t: &Theme, a: Option<&Assessment>, port: u16, related: bool) -> (String, Style) {
    match a {
        Some(a) => risk_badge(t, a, port),
        None if related => ("?".into(), t.dim),
        None => (String::new(), Style::new()),
    }
}

fn sort_title(title: &str, sorted: bool, desc: bool) -> String {
    if sorted {
        format!("{title}{}", if desc { "▼" } else { "▲" })
    } else {
        title.to_owned()
    }
}

/// One table row before layout: its text per column (with the cell's style) and the
/// row's style. Widths are chosen from these, so nothing is cut afterwards.
struct TextRow {
    cells: Vec<(String, Style)>,
    style: Style,
}

impl TextRow {
    /// A row of plain cells.
    fn plain(cells: Vec<String>, style: Style) -> TextRow {
        TextRow {
            cells: cells.into_iter().map(|c| (c, Style::new())).collect(),
            style,
        }
    }
}

/// What each column needs for these titles and rows: natural width (everything whole)
/// and minimum (addresses elided). A flexible column's minimum is capped at its preferred
/// width: below that its cells drop whole words at the end instead.
fn column_needs<C: Column>(cols: &[C], heads: &[String], rows: &[TextRow]) -> Vec<Need> {
    cols.iter()
        .enumerate()
        .map(|(i, c)| {
            let head = heads.get(i).map_or("", String::as_str);
            let cells = rows.iter().filter_map(|r| r.cells.get(i));
            let natural = cells
                .clone()
                .map(|(s, _)| text::width(s))
                .chain([text::width(head)])
                .max()
                .unwrap_or(0);
            let first = head.split(' ').next().map_or(0, text::width);
            let min = if c.flexible() {
                cells
                    .map(|(s, _)| text::min_width(s))
                    .max()
                    .unwrap_or(0)
                    .min(usize::from(c.width()))
                    .max(first)
            } else {
                natural
            };
            let floor = if c.flexible() { first } else { natural };
            let clamp = |x: usize| x.min(usize::from(u16::MAX)) as u16;
            Need {
                natural: clamp(natural),
                min: clamp(min.min(natural)),
                floor: clamp(floor.min(natural)),
            }
        })
        .collect()
}

/// The table tail every screen shares: lay out the columns for these rows (dropping whole
/// columns by priority), fit every cell to its column with `text::fit`, draw with the
/// selection. Returns the columns shown.
fn draw_table<C: Column>(
    f: &mut Frame,
    t: &Theme,
    area: Rect,
    cols: &[C],
    heads: &[String],
    rows: Vec<TextRow>,
    sel: Option<usize>,
) -> Vec<C> {
    let spacing = 1;
    let needs = column_needs(cols, heads, &rows);
    let lay = view::layout(cols, &needs, area.width, spacing);
    let idx: Vec<(usize, usize)> = lay
        .iter()
        .filter_map(|(c, w)| {
            cols.iter()
                .position(|x| x == c)
                .map(|i| (i, usize::from(*w)))
        })
        .collect();
    let head = Row::new(
        idx.iter()
            .map(|(i, w)| Cell::from(text::fit(heads.get(*i).map_or("", String::as_str), *w))),
    )
    .style(t.header_cell);
    let body: Vec<Row> = rows
        .into_iter()
        .map(|r| {
            Row::new(idx.iter().map(|(i, w)| match r.cells.get(*i) {
                Some((s, st)) => Cell::from(Span::styled(text::fit(s, *w), *st)),
                None => Cell::from(""),
            }))
            .style(r.style)
        })
        .collect();
    let table = Table::new(body, lay.iter().map(|(_, w)| Constraint::Length(*w)))
        .header(head)
        .row_highlight_style(t.selected)
        .column_spacing(spacing);
    f.render_stateful_widget(table, area, &mut TableState::default().with_selected(sel));
    lay.into_iter().map(|(c, _)| c).collect()
}

/// The flow table's rows for the visible keys. Without the ctstate column its first
/// letter (N/E/R) leads the connection, so RELATED stays readable as text; without the NAT
/// column NAT is folded into the connection (pre ⇒ post).
fn flow_rows<M: Model>(
    app: &App<M>,
    t: &Theme,
    keys: &[FlowKey],
    cols: &[FlowCol],
    has_ct: bool,
    has_nat: bool,
) -> Vec<TextRow> {
    let now = app.now;
    let mut rows = Vec::with_capacity(keys.len());
    for key in keys {
        let Some(fl) = app.model.flow(key) else {
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
        let helper = display_helper(&app.model, key, fl);
        let hname = helper.shown().unwrap_or("");
        let related = fl.is_related();
        let risk = if related { app.risk.flow(key) } else { None };
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

fn flows_table<M: Model>(f: &mut Frame, app: &mut App<M>, area: Rect) {
    let height = area.height.saturating_sub(1) as usize;
    let range = app.flows.window(height);
    let t = app.theme.clone();
    let visible = &app.flows.keys[range.clone()];
    let accounting = visible.iter().any(|k| {
        app.model
            .flow(k)
            .is_some_and(|x| x.extra.as_ref().is_some_and(|e| e.counters.is_some()))
    });
    let mut cols: Vec<FlowCol> = FlowCol::ALL
        .into_iter()
        .filter(|c| *c != FlowCol::Counters || accounting)
        .collect();
    let sorted = FlowCol::ALL[app.flows.sort];
    let heads = |cols: &[FlowCol], has_ct: bool| -> Vec<String> {
        cols.iter()
            .map(|c| {
                let title = sort_title(c.title(), *c == sorted, app.flows.desc);
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
    let rows = flow_rows(app, &t, visible, &cols, true, true);
    let needs = column_needs(&cols, &heads(&cols, true), &rows);
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
        flow_rows(app, &t, visible, &cols, has_ct, has_nat)
    };
    let n = rows.len();
    let sel = (!app.flows.keys.is_empty()).then(|| app.flows.sel - range.start);
    if app.flows.keys.is_empty() {
        empty(f, &t, area, app.flows.total, "flows");
    }
    draw_table(f, &t, area, &cols, &heads(&cols, has_ct), rows, sel);
    app.frame.table_rows = n;
    app.frame.table_height = height;
}

fn empty(f: &mut Frame, t: &Theme, area: Rect, total: usize, what: &str) {
    if area.height < 3 {
        return;
    }
    let msg = if total == 0 {
        format!("no {what} yet")
    } else {
        format!("no {what} match the filter ({} in total)", thousands(total))
    };
    let a = Rect {
        y: area.y + 2,
        height: 1,
        ..area
    };
    let msg = text::fit(&msg, usize::from(area.width));
    f.render_widget(Paragraph::new(Span::styled(msg, t.dim)).centered(), a);
}

fn expects_table<M: Model>(f: &mut Frame, app: &mut App<M>, area: Rect) {
    let height = area.height.saturating_sub(1) as usize;
    let range = app.expects.window(height);
    let t = app.theme.clone();
    let now = app.now;
    let cols = ExpectCol::ALL;
    let sorted = ExpectCol::ALL[app.expects.sort];
    let heads: Vec<String> = cols
        .iter()
        .map(|c| sort_title(c.title(), *c == sorted, app.expects.desc))
        .collect();
    let mut rows = Vec::new();
    for key in &app.expects.keys[range.clone()] {
        let Some(e) = app.model.expectation(key) else {
            let mut cells = vec![String::new(); cols.len()];
            cells[0] = "gone".into();
            rows.push(TextRow::plain(cells, t.dim));
            continue;
        };
        let hname = e.helper.shown().unwrap_or("");
        let risk = app.risk.expect(key);
        let plain = |s: String| (s, Style::new());
        let cells = cols
            .iter()
            .map(|c| match c {
                ExpectCol::Left => plain(text::dur_short(e.remaining(now))),
                ExpectCol::Helper => (hname.to_owned(), t.helper(hname)),
                ExpectCol::Risk => risk_text(&t, risk, e.tuple.dport, true),
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
    app.frame.table_rows = rows.len();
    app.frame.table_height = height;
    let sel = (!app.expects.keys.is_empty()).then(|| app.expects.sel - range.start);
    if app.expects.keys.is_empty() {
        empty(f, &t, area, app.expects.total, "expectations");
    }
    draw_table(f, &t, area, &cols, &heads, rows, sel);
}

fn chains_table<M: Model>(f: &mut Frame, app: &mut App<M>, area: Rect) {
    let height = area.height.saturating_sub(1) as usize;
    let range = app.chains.window(height);
    let t = app.theme.clone();
    let now = app.now;
    let narrow = area.width < 60;
    let mut rows = Vec::new();
    for r in &app.chains.keys[range.clone()] {
        let (tree, hname, risk, left, style): (String, &str, (String, Style), String, Style) =
            match r {
                ChainRow::Master(k) => match app.model.flow(k) {
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
                    match app.model.expectation(key) {
                        Some(e) => {
                            let h = e.helper.shown().unwrap_or("");
                            (
                                format!("{corner} expect {}", text::expect_tuple(e)),
                                h,
                                app.risk
                                    .expect(key)
                                    .map(|a| risk_badge(&t, a, e.tuple.dport))
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
                    match app.model.flow(key) {
                        Some(fl) => {
                            let h = display_helper(&app.model, key, fl).shown().unwrap_or("");
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
                                risk_text(&t, app.risk.flow(key), key.orig.dport, true),
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
    app.frame.table_rows = rows.len();
    app.frame.table_height = height;
    let sel = (!app.chains.keys.is_empty()).then(|| app.chains.sel - range.start);
    if app.chains.keys.is_empty() {
        empty(f, &t, area, app.chains.total, "RELATED chains");
    }
    let heads: Vec<String> = ChainCol::ALL.iter().map(|c| c.title().to_owned()).collect();
    draw_table(f, &t, area, &ChainCol::ALL, &heads, rows, sel);
}

/// A detail-pane line. Values may carry outside strings (secctx, labels, notes naming
/// processes), so they are escaped here, once for every caller.
fn kv(t: &Theme, k: &str, v: String) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{k:>10} "), t.dim),
        Span::raw(escaped(v)),
    ])
}

/// `v` with outside-data characters escaped (`escape::escape`), reusing it when clean.
fn escaped(v: String) -> String {
    match crate::escape::escape(&v) {
        std::borrow::Cow::Borrowed(_) => v,
        std::borrow::Cow::Owned(o) => o,
    }
}

fn when<M: Model>(app: &App<M>, store_secs: u32) -> String {
    let wall = app_wall(app, store_secs);
    humantime::format_rfc3339_seconds(wall).to_string()
}

fn app_wall<M: Model>(app: &App<M>, store_secs: u32) -> std::time::SystemTime {
    app.wall(store_secs)
}

fn fields_line(x: &Freedom) -> String {
    format!(
        "src {} · sport {} · dst {} · dport {} → {}",
        x.src.label(),
        x.sport.label(),
        x.dst.label(),
        x.dport.label(),
        trisk::level_badge(trisk::headline(x))
    )
}

/// The detail pane's risk lines for an assessment: live freedom, the table's row and
/// shape, any note, and the findings by kind (their text and fixes are on the findings
/// screen, where they wrap).
fn risk_lines(t: &Theme, a: &Assessment, l: &mut Vec<Line<'static>>) {
    l.push(kv(t, "risk", fields_line(&a.freedom)));
    if let Some(from) = trisk::from_text(a) {
        l.push(kv(t, "from", from.into()));
    }
    if let Some(x) = trisk::listener_text(&a.listener) {
        l.push(kv(t, "listener", x));
    }
    if let (Some(row), Some(exp)) = (&a.row, &a.expected) {
        l.push(kv(
            t,
            "table",
            format!(
                "{row}: src {} · sport {} · dst {} · dport {}",
                exp.src.label(),
                exp.sport.label(),
                exp.dst.label(),
                exp.dport.label()
            ),
        ));
    }
    if let Some(n) = &a.note {
        l.push(kv(t, "note", n.clone()));
    }
    if a.findings.is_empty() {
        l.push(kv(t, "findings", "none".into()));
    } else {
        let kinds: Vec<&str> = a
            .findings
            .iter()
            .map(|f| trisk::kind_label(f.kind))
            .collect();
        l.push(Line::from(vec![
            Span::styled(format!("{:>10} ", "findings"), t.dim),
            Span::styled(
                format!("!{} {}", a.findings.len(), kinds.join(", ")),
                t.finding,
            ),
            Span::styled("  (4: fixes)", t.dim),
        ]));
    }
}

fn flow_detail<M: Model>(app: &App<M>, key: &FlowKey, fl: &Flow) -> Vec<Line<'static>> {
    let t = &app.theme;
    let now = app.now;
    let m = &app.model;
    let mut l = Vec::new();
    l.push(kv(
        t,
        "flow",
        format!(
            "{} {}",
            fl.orig.family.name(),
            text::proto_name(fl.orig.proto)
        ),
    ));
    l.push(kv(t, "original", text::conn(&fl.orig)));
    l.push(kv(t, "reply", text::conn(&fl.reply())));
    if let Some(n) = text::nat(fl) {
        l.push(kv(t, "NAT", n));
    }
    l.push(kv(
        t,
        "state",
        format!(
            "{} (ctstate {})",
            fl.state_name().unwrap_or("-"),
            fl.ctstate()
        ),
    ));
    l.push(kv(
        t,
        "status",
        status::names(fl.status).collect::<Vec<_>>().join(" "),
    ));
    let h = display_helper(m, key, fl);
    l.push(kv(
        t,
        "helper",
        match (fl.helper.shown(), h.shown()) {
            (Some(own), _) => own.to_owned(),
            (None, Some(via)) => format!("- (created by {via})"),
            _ => "-".into(),
        },
    ));
    let rem = fl.remaining(now);
    l.push(kv(
        t,
        "timeout",
        format!("{} left, until {}", text::dur(rem), when(app, now + rem)),
    ));
    l.push(kv(
        t,
        "reported",
        format!(
            "{}, at {}",
            text::ago(now.saturating_sub(fl.seen)),
            when(app, fl.seen)
        ),
    ));
    let mut ids = format!("{}", fl.zone);
    if let Some(e) = fl.extra.as_deref() {
        if let Some(o) = e.zone_orig {
            ids.push_str(&format!(" (orig {o})"));
        }
        if let Some(r) = e.zone_reply {
            ids.push_str(&format!(" (reply {r})"));
        }
    }
    l.push(kv(
        t,
        "zone",
        format!(
            "{ids} · mark {:#x} ({}) · id {} · use {}",
            fl.mark, fl.mark, fl.id, fl.use_count
        ),
    ));
    if let Some(mt) = fl.master() {
        l.push(kv(t, "master", text::conn(mt)));
    }
    if let Some(e) = m.expectation_of(key) {
        l.push(kv(t, "expected", text::expect_tuple(e)));
    }
    if let Some(a) = app.risk.flow(key) {
        risk_lines(t, a, &mut l);
    }
    let kids = m.related_of(key).len();
    let exps = m.expectations_of(key).len();
    if kids + exps > 0 {
        l.push(kv(
            t,
            "children",
            format!("{exps} expectation(s), {kids} RELATED flow(s)"),
        ));
    }
    if let Some(e) = fl.extra.as_deref() {
        if let Some(c) = e.counters {
            l.push(kv(
                t,
                "counters",
                format!(
                    "orig {} pkts {} B · reply {} pkts {} B",
                    c[0].packets, c[0].bytes, c[1].packets, c[1].bytes
                ),
            ));
        }
        if let Some((start, stop)) = e.timestamp {
            let abs = |ns: u64| {
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns),
                )
                .to_string()
            };
            let now_wall = app.wall(now);
            let rel = |ns: u64| {
                let at = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns);
                now_wall
                    .duration_since(at)
                    .map(|d| text::ago(d.as_secs().min(u64::from(u32::MAX)) as u32))
                    .unwrap_or_else(|_| "in the future".into())
            };
            l.push(kv(t, "start", format!("{} ({})", abs(start), rel(start))));
            if stop != 0 {
                l.push(kv(t, "stop", format!("{} ({})", abs(stop), rel(stop))));
            }
        }
        if e.labels != 0 {
            // connlabel.conf names where the map has them, as `list` prints them.
            let names: Vec<String> = crate::output::view::Labels(e.labels)
                .named()
                .map(|l| l.to_string())
                .collect();
            l.push(kv(t, "labels", names.join(",")));
        }
        if let Some(s) = &e.secctx {
            l.push(kv(t, "secctx", s.to_string()));
        }
    }
    l
}

fn expect_detail<M: Model>(app: &App<M>, e: &Expectation) -> Vec<Line<'static>> {
    let t = &app.theme;
    let now = app.now;
    let mut l = Vec::new();
    l.push(kv(
        t,
        "expect",
        format!(
            "{} {}",
            e.tuple.family.name(),
            text::proto_name(e.tuple.proto)
        ),
    ));
    l.push(kv(t, "tuple", text::expect_tuple(e)));
    l.push(kv(t, "raw tuple", text::conn(&e.tuple)));
    l.push(kv(t, "mask", text::conn(&e.mask)));
    l.push(kv(t, "master", text::conn(&e.master)));
    l.push(kv(t, "helper", e.helper.shown().unwrap_or("-").to_owned()));
    if let Some(a) = app.risk.expect(&ExpectKey::of(e)) {
        risk_lines(t, a, &mut l);
    }
    let rem = e.remaining(now);
    l.push(kv(
        t,
        "timeout",
        format!("{} left, until {}", text::dur(rem), when(app, now + rem)),
    ));
    l.push(kv(
        t,
        "reported",
        format!(
            "{}, at {}",
            text::ago(now.saturating_sub(e.seen)),
            when(app, e.seen)
        ),
    ));
    l.push(kv(
        t,
        "flags",
        format!(
            "{} ({:#x})",
            eflags::names(e.flags).collect::<Vec<_>>().join(" "),
            e.flags
        ),
    ));
    l.push(kv(t, "class", e.class.to_string()));
    l.push(kv(t, "zone / id", format!("{} / {}", e.zone, e.id)));
    if let Some(n) = &e.nat {
        let dir = if n.dir == 0 { "original" } else { "reply" };
        l.push(kv(t, "NAT", format!("{dir}: {}", text::conn(&n.tuple))));
    }
    if let Some(func) = &e.func {
        l.push(kv(t, "function", func.to_string()));
    }
    l
}

fn detail_len<M: Model>(app: &App<M>) -> usize {
    detail_lines(app).1.len()
}

fn detail<M: Model>(f: &mut Frame, app: &App<M>, area: Rect) {
    let t = &app.theme;
    let (title, lines) = detail_lines(app);
    detail_body(f, t, title, lines, area);
}

fn detail_lines<M: Model>(app: &App<M>) -> (&'static str, Vec<Line<'static>>) {
    match app.tab {
        Tab::Flows => match app.flows.selected() {
            Some(k) => match app.model.flow(&k) {
                Some(fl) => ("Flow", flow_detail(app, &k, fl)),
                None => ("Flow", vec![Line::from("(gone from the store)")]),
            },
            None => ("Detail", vec![]),
        },
        Tab::Expects => match app
            .expects
            .selected()
            .and_then(|k| app.model.expectation(&k))
        {
            Some(e) => ("Expectation", expect_detail(app, e)),
            None => ("Detail", vec![]),
        },
        Tab::Chains => match app.chains.selected() {
            Some(ChainRow::Expect { key, .. }) => match app.model.expectation(&key) {
                Some(e) => ("Expectation", expect_detail(app, e)),
                None => ("Expectation", vec![Line::from("(gone)")]),
            },
            Some(r) => match r
                .flow_key()
                .and_then(|k| app.model.flow(&k).map(|x| (k, x)))
            {
                Some((k, fl)) => ("Flow", flow_detail(app, &k, fl)),
                None => ("Flow", vec![Line::from("(gone)")]),
            },
            None => ("Detail", vec![]),
        },
        Tab::Findings => ("Detail", vec![]),
    }
}

/// How a finding's entry is named in the findings screen.
fn subject_text<M: Model>(app: &App<M>, s: &Subject) -> (String, &'static str) {
    match s {
        Subject::Expect(k) => match app.model.expectation(k) {
            Some(e) => (
                format!("expect {}", text::expect_tuple(e)),
                e.helper.shown().unwrap_or(""),
            ),
            None => (format!("expect {} (gone)", text::conn(&k.tuple)), ""),
        },
        Subject::Flow(k) => match app.model.flow(k) {
            Some(fl) => (
                format!(
                    "RELATED {} {}",
                    text::proto_name(k.orig.proto),
                    text::conn(&k.orig)
                ),
                display_helper(&app.model, k, fl).shown().unwrap_or(""),
            ),
            None => (format!("RELATED {} (gone)", text::conn(&k.orig)), ""),
        },
    }
}

/// The findings screen: one row per finding (most severe kind first) and, below, the
/// selected finding in full: entry, table row, detail and fix, wrapped.
///
/// ```text
/// Kind                 Helper Entry
/// sensitive port       ftp    expect 10.213.4.1:any → 10.213.4.7:3306
/// ┌ Finding ─────────────────────────────────────────────────────────────────┐
/// │ detail …  fix …   (Enter: go to the entry)                                │
/// ```
fn findings_screen<M: Model>(f: &mut Frame, app: &mut App<M>, area: Rect) {
    let t = app.theme.clone();
    let pane_h = (area.height * 11 / 20).max(6.min(area.height));
    let [list, pane] =
        Layout::vertical([Constraint::Min(2), Constraint::Length(pane_h)]).areas(area);
    let height = list.height.saturating_sub(1) as usize;
    let range = app.findings.window(height);
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
    for r in &app.findings.keys[range.clone()] {
        let Some((_, fd)) = app.risk.finding(r) else {
            rows.push(TextRow::plain(vec!["gone".into()], t.dim));
            continue;
        };
        let (entry, h) = subject_text(app, &r.subject);
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
    app.frame.table_rows = rows.len();
    app.frame.table_height = height;
    let sel = (!app.findings.keys.is_empty()).then(|| app.findings.sel - range.start);
    draw_table(f, &t, list, cols, &heads, rows, sel);
    if app.findings.keys.is_empty() {
        let msg = if app.risk.count() == 0 {
            "no findings: no expectation or RELATED flow looks abused"
        } else {
            "no findings match the filter"
        };
        empty_text(f, &t, list, msg);
    }
    let lines = app
        .findings
        .selected()
        .and_then(|r| finding_lines(app, &t, &r))
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
}

fn finding_lines<M: Model>(app: &App<M>, t: &Theme, r: &FindingRow) -> Option<Vec<Line<'static>>> {
    let (a, fd) = app.risk.finding(r)?;
    let (entry, _) = subject_text(app, &r.subject);
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

fn empty_text(f: &mut Frame, t: &Theme, area: Rect, msg: &str) {
    if area.height < 3 {
        return;
    }
    let a = Rect {
        y: area.y + 2,
        height: 1,
        ..area
    };
    f.render_widget(
        Paragraph::new(Span::styled(msg.to_owned(), t.dim)).centered(),
        a,
    );
}

fn detail_body(f: &mut Frame, t: &Theme, title: &str, lines: Vec<Line<'static>>, area: Rect) {
    let block = Block::default()
        .borders(Borders::TOP)
        .border_style(t.border)
        .title(Span::styled(format!(" {title} "), t.title));
    let inner = block.inner(area);
    f.render_widget(block, area);
    // Two columns when the lines do not fit in one and the terminal is wide enough.
    if lines.len() > inner.height as usize && inner.width >= 100 {
        let half = lines.len().div_ceil(2);
        let [a, b] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
            .areas(inner);
        let mut left = lines;
        let right = left.split_off(half);
        f.render_widget(Paragraph::new(left).wrap(WRAP), a);
        f.render_widget(Paragraph::new(right).wrap(WRAP), b);
    } else {
        f.render_widget(Paragraph::new(lines).wrap(WRAP), inner);
    }
}

fn footer<M: Model>(f: &mut Frame, app: &App<M>, area: Rect) {
    let t = &app.theme;
    if let Some(bar) = &app.bar {
        let mut lines = Vec::new();
        if let Some(err) = &bar.error {
            lines.push(Line::from(Span::styled(
                format!("error at column {}: {}", err.pos + 1, err.message),
                t.error,
            )));
        }
        let chars: Vec<char> = bar.text.chars().collect();
        let mut spans = vec![Span::styled("/", t.title)];
        let (es, ee) = match &bar.error {
            Some(e) => (e.pos, e.pos + e.len.max(1)),
            None => (usize::MAX, usize::MAX),
        };
        for (i, c) in chars.iter().enumerate() {
            let mut st = if i >= es && i < ee {
                t.error_span
            } else {
                Style::new()
            };
            if i == bar.cursor {
                st = st.reversed();
            }
            spans.push(Span::styled(c.to_string(), st));
        }
        if bar.cursor >= chars.len() {
            let st = if es >= chars.len() && es != usize::MAX {
                t.error_span
            } else {
                Style::new().reversed()
            };
            spans.push(Span::styled(" ", st));
        }
        if bar.error.is_some() {
            let kept = match app.filter_text() {
                Some(x) => format!("   still filtering by '{x}'"),
                None => "   no filter active".into(),
            };
            spans.push(Span::styled(kept, t.dim));
        }
        lines.push(Line::from(spans));
        f.render_widget(Paragraph::new(lines), area);
        return;
    }
    let sort = match app.tab {
        Tab::Flows => format!(
            "sort {}{}",
            FlowCol::ALL[app.flows.sort]
                .title()
                .split(' ')
                .next()
                .unwrap_or(""),
            if app.flows.desc { "▼" } else { "▲" }
        ),
        Tab::Expects => format!(
            "sort {}{}",
            ExpectCol::ALL[app.expects.sort]
                .title()
                .split(' ')
                .next()
                .unwrap_or(""),
            if app.expects.desc { "▼" } else { "▲" }
        ),
        Tab::Chains => "by master".into(),
        Tab::Findings => "by kind".into(),
    };
    let mut right = format!("{sort} · {}", app.theme.kind.name());
    if app.opts.read_only {
        right.push_str(" · read-only");
    }
    let left: Span = match &app.status {
        Some(s) => {
            let st = match s.kind {
                StatusKind::Info => t.base,
                StatusKind::Ok => t.ok,
                StatusKind::Warn => t.warn,
                StatusKind::Error => t.error,
            };
            Span::styled(text::fit(&s.text, usize::from(area.width)), st)
        }
        None => Span::styled(
            "? help · / filter · space pause · Enter detail · q quit",
            t.dim,
        ),
    };
    let lw = left.width();
    let room = area.width as usize;
    let spans = if lw + right.chars().count() + 2 <= room {
        let pad = room - lw - right.chars().count();
        vec![left, Span::raw(" ".repeat(pad)), Span::styled(right, t.dim)]
    } else {
        vec![left]
    };
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// A centred popup of `w`×`h`. The whole band of rows it covers is cleared, so no cell
/// of the screen below peeks out beside it with a number cut by the popup's edge.
fn popup(f: &mut Frame, area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    let y = area.y + (area.height - h) / 2;
    f.render_widget(
        Clear,
        Rect {
            x: area.x,
            y,
            width: area.width,
            height: h,
        },
    );
    Rect {
        x: area.x + (area.width - w) / 2,
        y,
        width: w,
        height: h,
    }
}

fn help<M: Model>(f: &mut Frame, app: &App<M>, area: Rect) {
    let t = &app.theme;
    let mut lines: Vec<Line> = Vec::new();
    for (title, rows) in keymap::help_sections(app.opts.read_only, app.replay.is_some()) {
        lines.push(Line::from(Span::styled(title, t.title)));
        for (keys, h) in rows {
            lines.push(Line::from(vec![
                Span::styled(format!("{keys:>9} "), t.header_cell),
                Span::raw(h),
            ]));
        }
    }
    let legend: String = text::STATUS_LETTERS
        .iter()
        .map(|(_, c, n)| format!("{c} {}", n.split(' ').next().unwrap_or(n)))
        .collect::<Vec<_>>()
        .join(" · ");
    let rect = popup(f, area, 80, 24);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.border)
        .title(Span::styled(" Keys (press any key to close) ", t.title));
    let inner = block.inner(rect);
    f.render_widget(block, rect);
    let [body, foot] = Layout::vertical([Constraint::Min(1), Constraint::Length(4)]).areas(inner);
    if body.width >= 76 {
        let half = lines.len().div_ceil(2);
        let right = lines.split_off(half);
        let [a, b] = Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)])
            .areas(body);
        f.render_widget(Paragraph::new(lines).wrap(WRAP), a);
        f.render_widget(Paragraph::new(right).wrap(WRAP), b);
    } else {
        f.render_widget(Paragraph::new(lines).wrap(WRAP), body);
    }
    f.render_widget(
        Paragraph::new(format!(
            "Flags: {legend}. ⇒ NAT pre ⇒ post. Narrow screens lead with the ctstate: N NEW · E ESTABLISHED · R RELATED. Risk: FIXED · IN-PKT · IFACE · IN-CMD (payload) · FULL (any) · !3306 a finding (4)."
        ))
            .style(t.dim)
            .wrap(ratatui::widgets::Wrap { trim: true }),
        foot,
    );
}

fn confirm<M: Model>(f: &mut Frame, app: &App<M>, area: Rect) {
    let Overlay::Confirm(c) = &app.overlay else {
        return;
    };
    let t = &app.theme;
    let mut lines: Vec<Line> = Vec::new();
    if c.flows > 0 {
        lines.push(Line::from(format!(
            "{} flow(s): {} RELATED, {} master(s)",
            thousands(c.effective_flows()),
            thousands(c.related),
            thousands(c.masters)
        )));
    }
    if c.expects > 0 {
        lines.push(Line::from(format!(
            "{} expectation(s)",
            thousands(c.expects)
        )));
    }
    if let Some(n) = &c.note {
        lines.push(Line::from(Span::styled(escaped(n.clone()), t.dim)));
    }
    if !c.sample.is_empty() {
        lines.push(Line::from(Span::styled("sample:", t.dim)));
        for s in &c.sample {
            lines.push(Line::from(format!("  {s}")));
        }
    }
    match (c.ssh, c.include_ssh) {
        (Some(_), false) if c.spared_sshd => lines.push(Line::from(Span::styled(
            format!(
                "{} flow(s) to the local sshd EXCLUDED: your session is unknown (i: include)",
                c.spared.len()
            ),
            t.ok,
        ))),
        (Some(_), false) => lines.push(Line::from(Span::styled(
            "your SSH session's flow is EXCLUDED (i: include it)",
            t.ok,
        ))),
        (Some(_), true) => lines.push(Line::from(Span::styled(
            "your SSH session's flow is INCLUDED: this cuts your own session (i: exclude)",
            t.error,
        ))),
        (None, _) if app.opts.ssh.is_some() && c.flows > 0 => lines.push(Line::from(Span::styled(
            "your SSH session's flow is not among these",
            t.dim,
        ))),
        _ => {}
    }
    if c.tcp_warning {
        lines.push(Line::from(Span::styled(
            "nf_conntrack_tcp_loose=0: live TCP sessions through this host will be cut",
            t.warn,
        )));
        lines.push(Line::from(Span::styled(
            "(a deleted TCP flow is not picked up again mid-stream)",
            t.warn,
        )));
    }
    lines.push(Line::from(""));
    lines.push(Line::from(vec![
        Span::styled("y", t.header_cell),
        Span::raw("/Enter proceed   "),
        Span::styled("n", t.header_cell),
        Span::raw("/Esc cancel"),
    ]));
    let w = (area.width.saturating_sub(4)).min(84);
    let h = (lines.len() as u16 + 2).min(area.height);
    let rect = popup(f, area, w, h);
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(t.warn)
        .title(Span::styled(
            format!(
                " {} ",
                text::fit(&c.title, usize::from(w.saturating_sub(4)))
            ),
            t.warn.bold(),
        ));
    f.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(ratatui::widgets::Wrap { trim: false }),
        rect,
    );
}

#[cfg(test)]
mod tests {
    use super::thousands;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
