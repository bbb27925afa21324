//! The table tail every screen shares: lay out the columns that fit (dropping whole
//! columns by priority, `view::layout`), fit every cell to its column, draw the visible
//! window with the selection, and say so when there are no rows.
//!
//! Screens hand it only the visible window's rows, never the whole table. This module
//! must not know any screen's columns.

use ratatui::layout::{Constraint, Rect};
use ratatui::style::Style;
use ratatui::text::Span;
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use crate::tui::screens::Drawn;
use crate::tui::text;
use crate::tui::theme::Theme;
use crate::tui::view::{self, Column, Need, TableView};

use super::thousands;

/// One table row before layout: its text per column (with the cell's style) and the
/// row's style. Widths are chosen from these, so nothing is cut afterwards.
pub struct TextRow {
    pub cells: Vec<(String, Style)>,
    pub style: Style,
}

impl TextRow {
    /// A row of plain cells.
    pub fn plain(cells: Vec<String>, style: Style) -> TextRow {
        TextRow {
            cells: cells.into_iter().map(|c| (c, Style::new())).collect(),
            style,
        }
    }
}

/// What each column needs for these titles and rows: natural width (everything whole)
/// and minimum (addresses elided). A flexible column's minimum is capped at its preferred
/// width: below that its cells drop whole words at the end instead.
pub fn column_needs<C: Column>(cols: &[C], heads: &[String], rows: &[TextRow]) -> Vec<Need> {
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
pub fn draw_table<C: Column>(
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

/// Draw `rows` (the visible window `range_start..` of `view`) with `view`'s selection,
/// or `empty` when the view has no rows: the ending every screen's table shares.
#[allow(clippy::too_many_arguments)]
pub fn tail<K, C: Column>(
    f: &mut Frame,
    t: &Theme,
    area: Rect,
    view: &TableView<K>,
    range_start: usize,
    empty: &str,
    cols: &[C],
    heads: &[String],
    rows: Vec<TextRow>,
) -> (Vec<C>, Drawn) {
    let drawn = Drawn {
        rows: rows.len(),
        height: body_height(area),
    };
    if view.keys.is_empty() {
        empty_text(f, t, area, empty);
    }
    let sel = (!view.keys.is_empty()).then(|| view.sel - range_start);
    (draw_table(f, t, area, cols, heads, rows, sel), drawn)
}

/// Rows of a table body in `area` (one line is the column titles).
pub fn body_height(area: Rect) -> usize {
    area.height.saturating_sub(1) as usize
}

/// "no flows yet", or how many the filter hides.
pub fn empty_message(total: usize, what: &str) -> String {
    if total == 0 {
        format!("no {what} yet")
    } else {
        format!("no {what} match the filter ({} in total)", thousands(total))
    }
}

/// A dim line in the middle of an empty table.
pub fn empty_text(f: &mut Frame, t: &Theme, area: Rect, msg: &str) {
    if area.height < 3 {
        return;
    }
    let a = Rect {
        y: area.y + 2,
        height: 1,
        ..area
    };
    let msg = text::fit(msg, usize::from(area.width));
    f.render_widget(Paragraph::new(Span::styled(msg, t.dim)).centered(), a);
}
