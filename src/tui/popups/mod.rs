//! What covers the screens: the confirmation of a destructive action (`confirm`), the key
//! help (`help`), the filter bar (`filter`) and the detail pane below a table (`detail`).
//!
//! ```text
//! ┌ Flush everything: every flow and every expectation ───────┐
//! │12 flow(s): 2 RELATED, 5 master(s)          (plan counts)  │
//! │sample: …                                   (plan targets) │
//! │your SSH session's flow is EXCLUDED (i: include it)        │
//! │y/Enter proceed   n/Esc cancel                             │
//! └───────────────────────────────────────────────────────────┘
//! ```
//!
//! Popups draw centred over the screen; they must not change state.

pub mod confirm;
pub mod detail;
pub mod filter;
pub mod help;

use ratatui::layout::Rect;
use ratatui::widgets::Clear;
use ratatui::Frame;

/// Long lines wrap at word boundaries, so a number is never split across the edge
/// (a word wider than the whole pane is the only exception, and none of ours is).
pub const WRAP: ratatui::widgets::Wrap = ratatui::widgets::Wrap { trim: false };

/// A centred popup of `w`×`h`. The whole band of rows it covers is cleared, so no cell
/// of the screen below peeks out beside it with a number cut by the popup's edge.
pub fn popup(f: &mut Frame, area: Rect, w: u16, h: u16) -> Rect {
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
