//! The frame: where each region goes, and who draws it.
//!
//! ```text
//! ┌──────────────────────────────────────────────────────────────────────────────┐
//! │ PAUSED ctscope ns:lab │ flows 1,234/262,144 [███░░░] 0% │ 12 ev/s │ exp 3 … │ widgets::header
//! │ helpers (flows/exp): ftp 2/1 · sip 1/0                                       │
//! │ 1 Flows 1,234 │ 2 Expectations 3 │ 3 Chains 2        filter: … 12/1,234 match│ header::tabs
//! │ Proto Original src:port → dst:port     ctstate   Left   Helper Risk …        │ the screen
//! │ …only the visible window becomes rows…                                       │ (screens::*)
//! │ ┌ Detail ──────────────────────────────────────────────────────────────────┐ │ popups::detail
//! │ └──────────────────────────────────────────────────────────────────────────┘ │ (Enter)
//! │ status line / filter bar (with the bad span marked)        sort: Left ▲ dark │ widgets::status
//! └──────────────────────────────────────────────────────────────────────────────┘
//! ```
//! Help and confirmation are centred overlays (`popups`). This module must not change app
//! state beyond the visible-window offsets and frame statistics.

use ratatui::layout::{Constraint, Layout};
use ratatui::Frame;

use crate::model::Store;

use super::app::{App, Overlay};
use super::popups::{confirm, detail, help};
use super::widgets::{header, status};

/// Draw the whole screen.
/// `store` is read-locked by the caller for the whole frame.
pub fn draw(f: &mut Frame, app: &mut App, store: &Store) {
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
    header::draw(f, app, head);
    let cx = app.ctx(store);
    header::tabs(f, app, &cx, tabs);
    let screen = &app.screens[app.tab];
    // The detail pane's lines are built once per frame: they size the pane and fill it.
    let pane = if app.detail { screen.detail(&cx) } else { None };
    let table_area = match pane {
        Some((title, lines)) => {
            // As many lines as the entry has, leaving the table a header and 3 rows.
            let want = lines.len() as u16 + 1;
            let detail_h = want
                .max(body.height * 3 / 5)
                .min(body.height.saturating_sub(4))
                .max(3.min(body.height));
            let [t, d] =
                Layout::vertical([Constraint::Min(1), Constraint::Length(detail_h)]).areas(body);
            detail::render(f, cx.theme, title, lines, d);
            t
        }
        None => body,
    };
    let drawn = {
        let (screen, cx) = app.split(store);
        screen.draw(f, &cx, table_area)
    };
    app.frame.table_rows = drawn.rows;
    app.frame.table_height = drawn.height;
    status::draw(f, app, foot);
    match &app.overlay {
        Overlay::None => {}
        Overlay::Help => help::draw(
            f,
            &app.theme,
            app.opts.read_only,
            app.replay.is_some(),
            area,
        ),
        Overlay::Confirm(c) => confirm::draw(f, &app.theme, store, c, app.opts.ssh.is_some(), area),
    }
    app.frame.frames += 1;
}
