//! The status line: the last action's outcome (or the key hints) at the left, the sort
//! and theme at the right; the filter bar takes its place while open.
//!
//! This module must not change state.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::tui::app::{App, StatusKind};
use crate::tui::popups::filter;
use crate::tui::text;

/// The last line: the status (or the key hints) and the sort and theme; the filter bar
/// while it is open.
pub fn draw(f: &mut Frame, app: &App, area: Rect) {
    let t = &app.theme;
    if let Some(bar) = &app.bar {
        return filter::draw(f, t, bar, app.filter_text(), area);
    }
    let sort = app.screens[app.tab].sort_label();
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
