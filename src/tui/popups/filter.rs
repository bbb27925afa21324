//! The filter bar: the expression being typed (the filter module's language), its cursor,
//! and a parse error with the bad span marked while the previous filter stays active.
//!
//! It edits its own text; applying it (parsing with `Filter::parse`) is the app's. This
//! module must not touch the store.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::tui::inputs::FilterFault;
use crate::tui::theme::Theme;

/// The filter bar while it is being edited.
#[derive(Debug, Clone, Default)]
pub struct FilterBar {
    pub text: String,
    /// Cursor position in chars.
    pub cursor: usize,
    /// The last parse error; the previous filter stays active while this is set.
    pub error: Option<FilterFault>,
}

impl FilterBar {
    /// A bar holding `text` (the active filter's), the cursor at its end.
    pub fn new(text: &str) -> FilterBar {
        FilterBar {
            text: text.to_owned(),
            cursor: text.chars().count(),
            error: None,
        }
    }

    /// Edit the text with one key (characters, Backspace, Delete, arrows, Home, End,
    /// Ctrl-U).
    pub fn edit(&mut self, k: &KeyEvent) {
        let len = self.text.chars().count();
        let byte_at = |s: &str, c: usize| s.char_indices().nth(c).map_or(s.len(), |(i, _)| i);
        match k.code {
            KeyCode::Char('u') if k.modifiers.contains(KeyModifiers::CONTROL) => {
                self.text.clear();
                self.cursor = 0;
            }
            KeyCode::Char(c) if !k.modifiers.contains(KeyModifiers::CONTROL) => {
                let at = byte_at(&self.text, self.cursor);
                self.text.insert(at, c);
                self.cursor += 1;
            }
            KeyCode::Backspace if self.cursor > 0 => {
                let at = byte_at(&self.text, self.cursor - 1);
                self.text.remove(at);
                self.cursor -= 1;
            }
            KeyCode::Delete if self.cursor < len => {
                let at = byte_at(&self.text, self.cursor);
                self.text.remove(at);
            }
            KeyCode::Left => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Right => self.cursor = (self.cursor + 1).min(len),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = len,
            _ => {}
        }
    }
}

/// Draw the bar (and its error line above it); `active` is the filter still in force.
pub fn draw(f: &mut Frame, t: &Theme, bar: &FilterBar, active: Option<&str>, area: Rect) {
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
        let kept = match active {
            Some(x) => format!("   still filtering by '{x}'"),
            None => "   no filter active".into(),
        };
        spans.push(Span::styled(kept, t.dim));
    }
    lines.push(Line::from(spans));
    f.render_widget(Paragraph::new(lines), area);
}
