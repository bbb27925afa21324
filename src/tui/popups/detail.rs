//! The detail pane: every field of the selected flow or expectation, its helper risk, and
//! its place in a RELATED chain, as `key value` lines. Screens build the lines once per
//! frame (`Screen::detail`); the frame sizes the pane from them and `render` draws them.
//!
//! Values can carry outside strings (secctx, labels, notes naming processes): `kv` escapes
//! them, once for every caller. This module must not change state.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

use crate::model::expect::flags as eflags;
use crate::model::flow::status;
use crate::model::store::{ExpectKey, FlowKey};
use crate::model::{Expectation, Flow};
use crate::risk::{Assessment, Freedom};
use crate::tui::risk as trisk;
use crate::tui::screens::{display_helper, Ctx};
use crate::tui::text;
use crate::tui::theme::Theme;

use super::WRAP;

/// A detail-pane line. Values may carry outside strings (secctx, labels, notes naming
/// processes), so they are escaped here, once for every caller.
pub fn kv(t: &Theme, k: &str, v: String) -> Line<'static> {
    Line::from(vec![
        Span::styled(format!("{k:>10} "), t.dim),
        Span::raw(escaped(v)),
    ])
}

/// `v` with outside-data characters escaped (`escape::escape`), reusing it when clean.
pub fn escaped(v: String) -> String {
    match crate::escape::escape(&v) {
        std::borrow::Cow::Borrowed(_) => v,
        std::borrow::Cow::Owned(o) => o,
    }
}

fn when(cx: &Ctx, store_secs: u32) -> String {
    humantime::format_rfc3339_seconds(cx.wall(store_secs)).to_string()
}

/// The first line: what the entry is, its family and protocol (`flow ipv4 tcp`).
fn first_line(t: &Theme, what: &str, tuple: &crate::model::Tuple) -> Line<'static> {
    kv(
        t,
        what,
        format!("{} {}", tuple.family.name(), text::proto_name(tuple.proto)),
    )
}

/// The `timeout` and `reported` lines of an entry with `left` seconds to live, last
/// reported at store second `seen`.
fn times(cx: &Ctx, left: u32, seen: u32, l: &mut Vec<Line<'static>>) {
    let (t, now) = (cx.theme, cx.now);
    l.push(kv(
        t,
        "timeout",
        format!("{} left, until {}", text::dur(left), when(cx, now + left)),
    ));
    l.push(kv(
        t,
        "reported",
        format!(
            "{}, at {}",
            text::ago(now.saturating_sub(seen)),
            when(cx, seen)
        ),
    ));
}

pub fn fields_line(x: &Freedom) -> String {
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

/// The lines of one flow.
pub fn flow(cx: &Ctx, key: &FlowKey, fl: &Flow) -> Vec<Line<'static>> {
    let t = &cx.theme;
    let now = cx.now;
    let m = &cx.store;
    let mut l = Vec::new();
    l.push(first_line(t, "flow", &fl.orig));
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
    times(cx, fl.remaining(now), fl.seen, &mut l);
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
    if let Some(a) = cx.risk.flow(key) {
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
            let now_wall = cx.wall(now);
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

/// The lines of one expectation.
pub fn expectation(cx: &Ctx, e: &Expectation) -> Vec<Line<'static>> {
    let t = &cx.theme;
    let now = cx.now;
    let mut l = vec![
        first_line(t, "expect", &e.tuple),
        kv(t, "tuple", text::expect_tuple(e)),
        kv(t, "raw tuple", text::conn(&e.tuple)),
        kv(t, "mask", text::conn(&e.mask)),
        kv(t, "master", text::conn(&e.master)),
        kv(t, "helper", e.helper.shown().unwrap_or("-").to_owned()),
    ];
    if let Some(a) = cx.risk.expect(&ExpectKey::of(e)) {
        risk_lines(t, a, &mut l);
    }
    times(cx, e.remaining(now), e.seen, &mut l);
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

/// Draw the pane: its title, then the lines (in two columns when they do not fit in one
/// and the terminal is wide enough).
pub fn render(f: &mut Frame, t: &Theme, title: &str, lines: Vec<Line<'static>>, area: Rect) {
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
