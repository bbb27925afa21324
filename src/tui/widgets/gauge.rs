//! The fill gauge of the header: how full the conntrack table is against
//! `nf_conntrack_max`, as whole cells and a whole percentage (red from 90%).

use ratatui::text::Span;

use crate::tui::theme::Theme;

/// The gauge's cells and percentage for `used` of `max` (`max > 0`), `cells` wide.
pub fn spans(t: &Theme, used: usize, max: u64, cells: usize) -> Vec<Span<'static>> {
    let ratio = (used as f64 / max as f64).min(1.0);
    let filled = (ratio * cells as f64).round() as usize;
    let pct_style = if ratio >= 0.9 { t.error } else { t.base };
    vec![
        Span::styled("█".repeat(filled), t.gauge),
        Span::styled("░".repeat(cells - filled), t.dim),
        Span::styled(format!(" {:.0}%", ratio * 100.0), pct_style),
    ]
}
