//! The key help: every binding of the keymap (the one table that also dispatches), in two
//! columns when wide enough, and the legend of flags, NAT arrows and risk badges.
//!
//! This module must not change state.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

use crate::tui::keymap;
use crate::tui::text;
use crate::tui::theme::Theme;

use super::{popup, WRAP};

/// Draw the help over `area`; `replay`: show the replay clock keys instead of the
/// deletes and flushes.
pub fn draw(f: &mut Frame, t: &Theme, read_only: bool, replay: bool, area: Rect) {
    let mut lines: Vec<Line> = Vec::new();
    for (title, rows) in keymap::help_sections(read_only, replay) {
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
