//! The header (two lines: table fill, rate, counts, helpers, findings, resyncs) and the
//! tab line (one tab per screen of `screens::all()`, with the filter's match count).
//!
//! ```text
//! PAUSED ctscope ns:lab │ flows 1,234/262,144 ███░░░ 0% │ 12 ev/s │ exp 3/4,096 │ RELATED 2
//! helpers: ftp 2/1 · sip 1/0        drop 3/s · findings !2 · resyncs 0 · stale ftp 0/1
//! 1 Flows 1,234 │ 2 Exp 3 │ 3 Chains 2 │ 4 Risk !2       filter: … · 12/1,234 match
//! ```
//!
//! A narrow terminal drops whole items, never a digit. This module must not change state.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::tui::app::App;
use crate::tui::counters;
use crate::tui::screens::Ctx;
use crate::tui::text;
use crate::tui::theme::Theme;

use super::{gauge, thousands};

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
pub fn draw(f: &mut Frame, app: &App, area: Rect) {
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
            l1.push(Item::new(
                1,
                vec![Span::raw(format!(
                    "flows {}/{}",
                    thousands(s.flows),
                    thousands(max as usize)
                ))],
            ));
            l1.push(Item::new(4, gauge::spans(t, s.flows, max, 6)).glued());
        }
        _ => l1.push(Item::new(
            1,
            vec![Span::raw(format!("flows {}", thousands(s.flows)))],
        )),
    }
    if app.dumping {
        // Entries received against the kernel's count when the dump began (an estimate:
        // the table moves meanwhile, so "~"), or the bare count when the kernel gave none
        // (a replay). Each item stays whole or goes: the gauge first.
        match app.progress {
            Some(p) => {
                let text = match p.expected {
                    Some(e) => format!(
                        "dumping {}/~{}",
                        thousands(p.received as usize),
                        thousands(e as usize)
                    ),
                    None => format!("dumping {}", thousands(p.received as usize)),
                };
                l1.push(Item::new(2, vec![Span::styled(text, t.warn)]).glued());
                if let Some(e) = p.expected.filter(|e| *e > 0) {
                    let cells = gauge::spans(t, p.received as usize, e, 6);
                    l1.push(Item::new(5, cells).glued());
                }
            }
            None => l1.push(Item::new(2, vec![Span::styled("dumping…", t.warn)]).glued()),
        }
    }
    l1.push(Item::new(
        5,
        vec![Span::raw(format!("{:.0} ev/s", app.rate))],
    ));
    // Expectations against nf_conntrack_expect_max ("expectation table full" drops
    // new ones): whole numbers, red from 90% like the flow gauge.
    let exp = match app.opts.expect_max {
        Some(max) if max > 0 => {
            let style = if s.expects as f64 >= 0.9 * max as f64 {
                t.error
            } else {
                t.base
            };
            Span::styled(
                format!("exp {}/{}", thousands(s.expects), thousands(max as usize)),
                style,
            )
        }
        _ => Span::raw(format!("exp {}", thousands(s.expects))),
    };
    l1.push(Item::new(3, vec![exp]));
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
    // The kernel's trouble counters (`conntrack -S`) that moved since the last reading, as
    // rates: drops and insert failures are what a full table looks like from inside.
    let trouble = app.counters.trouble();
    if !trouble.is_empty() {
        let mut spans = Vec::new();
        for (name, v) in trouble {
            if !spans.is_empty() {
                spans.push(Span::raw(" "));
            }
            spans.push(Span::styled(
                format!("{name} {}", counters::per_second(v)),
                t.error,
            ));
        }
        right.push(Item::new(0, spans));
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
    // Stale helper state per helper (`Z` flushes it): "stale ftp 1/2 sip 0/1", flows/exp.
    if !s.stale.is_empty() {
        let mut spans = vec![Span::styled("stale", t.warn)];
        for (name, fl, ex) in &s.stale {
            spans.push(Span::raw(format!(" {name}")));
            spans.push(Span::raw(format!(" {fl}/{ex}")));
        }
        right.push(Item::new(2, spans));
    }
    let helpers = |room: usize| {
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
        left
    };
    let line2 = second_line(t, helpers, right, width);
    f.render_widget(
        Paragraph::new(vec![Line::from(line1), Line::from(line2)]),
        area,
    );
}

/// The second header line, never wider than `width`: the `right` items (findings,
/// resyncs, stale counts) at the right edge, kept first, and at the left what `left`
/// makes for the room that is left (the helper list), whole items dropped from both and
/// a `…` where helpers were left out and it fits.
fn second_line(
    t: &Theme,
    left: impl FnOnce(usize) -> Vec<Item>,
    right: Vec<Item>,
    width: usize,
) -> Vec<Span<'static>> {
    let right_keep = keep_items(&right, width, 3);
    let right_w = right
        .iter()
        .zip(&right_keep)
        .filter(|(_, k)| **k)
        .map(|(i, _)| i.width() + 3)
        .sum::<usize>()
        .saturating_sub(3);
    // One cell between the two sides.
    let room = width.saturating_sub(right_w + 1);
    let left = left(room);
    // Room for the `…` that says helpers were left out.
    let mut left_keep = keep_items(&left, room, 1);
    if left_keep.iter().any(|k| !k) {
        left_keep = keep_items(&left, room.saturating_sub(2), 1);
    }
    let dropped = left_keep.iter().any(|k| !k);
    let mut line = join_items(left, &left_keep, &Span::raw(" "));
    let mut used: usize = line.iter().map(Span::width).sum();
    if dropped && used + 2 <= room {
        line.push(Span::styled(" …", t.dim));
        used += 2;
    }
    // At least the one cell when the left side holds anything (`used <= room`), none
    // when the right side takes the whole line.
    line.push(Span::raw(" ".repeat(width.saturating_sub(used + right_w))));
    line.extend(join_items(right, &right_keep, &Span::styled(" · ", t.dim)));
    line
}

/// The tab line: every screen with its count, and what the current one shows.
pub fn tabs(f: &mut Frame, app: &App, cx: &Ctx, area: Rect) {
    let t = &app.theme;
    let mut spans = Vec::new();
    for (i, screen) in app.screens.iter().enumerate() {
        if i > 0 {
            spans.push(sep(t));
        }
        let style = if i == app.tab { t.tab_active } else { t.tab };
        let count = screen.tab_count(cx);
        let (long, short) = screen.titles();
        let label = if area.width < 60 {
            let first = short.chars().next().unwrap_or(' ');
            format!("{} {first}", i + 1)
        } else if area.width < 100 {
            format!("{} {short} {count}", i + 1)
        } else {
            format!("{} {long} {count}", i + 1)
        };
        // A screen with no count yet (Top before its first pass) shows none, not zero.
        let label = label.trim_end().to_owned();
        spans.push(Span::styled(label, style));
    }
    let (shown, total) = app.screens[app.tab].shown();
    let right = match app.filter_text() {
        Some(ft) => format!(
            "filter: {ft} · {}/{} match",
            thousands(shown),
            thousands(total)
        ),
        None => format!("{} shown", thousands(shown)),
    };
    // The match count goes whole or not at all; the filter text gives way first, then
    // the word "match".
    let left_w: usize = spans.iter().map(|s| s.width()).sum();
    let room = (area.width as usize).saturating_sub(left_w + 1);
    let short = format!("{}/{}", thousands(shown), thousands(total));
    let counted = format!("{short} match");
    let right = [right, counted, short]
        .into_iter()
        .find(|r| text::width(r) <= room)
        .unwrap_or_default();
    let pad = room.saturating_sub(text::width(&right));
    spans.push(Span::raw(" ".repeat(pad.max(1))));
    spans.push(Span::styled(right, t.dim));
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The second line fits every width: whole items go (helpers first, then the stale
    /// counts, then resyncs), and the `…` only where it fits. At 40 columns the stale
    /// item was once cut to `stale sip 0` of `0/1` by a `…` and a gap nobody counted.
    #[test]
    fn the_second_line_never_overflows() {
        let t = Theme::new(crate::tui::theme::ThemeKind::Dark);
        let right = || {
            vec![
                Item::new(0, vec![Span::raw("findings !3")]),
                Item::new(1, vec![Span::raw("resyncs 0")]),
                Item::new(
                    2,
                    vec![Span::raw("stale"), Span::raw(" sip"), Span::raw(" 0/1")],
                ),
            ]
        };
        let left = |_room: usize| {
            vec![
                Item::new(0, vec![Span::raw("helpers:")]),
                Item::new(2, vec![Span::raw("ftp"), Span::raw(" 11/4")]),
                Item::new(
                    3,
                    vec![Span::raw("· "), Span::raw("sip"), Span::raw(" 3/8")],
                ),
            ]
        };
        for width in 0..=120 {
            let line = second_line(&t, left, right(), width);
            let text: String = line.iter().map(|s| s.content.as_ref()).collect();
            assert!(
                text.chars().count() <= width,
                "{width}: '{text}' is {} wide",
                text.chars().count()
            );
            if width >= 39 {
                assert!(text.ends_with("stale sip 0/1"), "{width}: '{text}'");
            }
        }
    }
}
