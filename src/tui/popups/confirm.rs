//! The confirmation of a destructive action: one `actions::Plan`, made by the planner the
//! CLI's `delete` and `flush` use, shown field by field (counts, a sample of its targets,
//! the SSH flow left out, the planner's warnings) and sent as it is on `y`.
//!
//! This module draws and holds the plan; planning is `actions`', sending is the app's.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Paragraph};
use ratatui::Frame;

use crate::actions::{Plan, Target};
use crate::model::store::FlowKey;
use crate::model::Store;
use crate::tui::text;
use crate::tui::theme::Theme;
use crate::tui::widgets::thousands;

use super::detail::escaped;
use super::popup;

/// A confirmation dialog: one `actions::Plan`, shown field by field and sent as it is.
///
/// The plan is made when the dialog opens, by the same planner the CLI's `delete` and
/// `flush` use, and it freezes the exact entries it counted, each in the life it had then
/// (`plan.lives`). While the dialog is open, engine events mark entries destroyed or
/// re-created (`actions::Lives::observe`). `i` plans the same entries again with the SSH
/// flow taken in (or left out again, `Plan::replan`); `y` sends that very plan, without
/// the entries an event showed gone, and never looks at the table again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confirm {
    pub title: String,
    pub plan: Plan,
    /// The flows the first plan left out for the user's SSH session (`i` takes them in).
    pub spared: Vec<FlowKey>,
    /// The session is unknown: the spared flows are every flow to a local sshd.
    pub spared_sshd: bool,
    /// The spared flows are in the plan (`i` pressed an odd number of times).
    pub include_ssh: bool,
    /// A note about what stays (e.g. RELATED flows after an expectation delete).
    pub note: Option<&'static str>,
    /// The plan judges each entry (the stale flush): its summary with the reasons is
    /// shown, and its own sample lines, each with that entry's reasons.
    pub judged: bool,
}

impl Confirm {
    /// The user's SSH flow among the targets (the first spared flow), if any.
    pub fn ssh(&self) -> Option<FlowKey> {
        self.spared.first().copied()
    }

    /// Flows that will actually be sent for deletion.
    pub fn effective_flows(&self) -> usize {
        self.plan.flows
    }

    /// Flow keys the plan deletes one by one, in plan order.
    pub fn flow_keys(&self) -> Vec<FlowKey> {
        self.plan.flow_keys().collect()
    }
}

/// Draw the confirmation over `area`. `session_known`: the user's SSH session is known
/// (so "not among these" can be said).
pub fn draw(f: &mut Frame, t: &Theme, store: &Store, c: &Confirm, session_known: bool, area: Rect) {
    let plan = &c.plan;
    let mut lines: Vec<Line> = Vec::new();
    if plan.flows > 0 || !c.spared.is_empty() {
        lines.push(Line::from(format!(
            "{} flow(s): {} RELATED, {} master(s)",
            thousands(plan.flows),
            thousands(plan.related),
            thousands(plan.masters)
        )));
    }
    if plan.expects > 0 {
        lines.push(Line::from(format!(
            "{} expectation(s)",
            thousands(plan.expects)
        )));
    }
    if let Some(scope) = &plan.list {
        lines.push(Line::from(format!(
            "{} list entr{}: {}",
            thousands(plan.list_entries),
            if plan.list_entries == 1 { "y" } else { "ies" },
            escaped(plan.what.clone())
        )));
        for a in &scope.mine {
            lines.push(if c.include_ssh {
                Line::from(Span::styled(
                    format!(
                        "your SSH address {a} is INCLUDED: you may lose the knock (i: exclude)"
                    ),
                    t.error,
                ))
            } else {
                Line::from(Span::styled(
                    format!("your SSH address {a} is EXCLUDED (i: include it)"),
                    t.ok,
                ))
            });
        }
    }
    if let Some(n) = c.note {
        lines.push(Line::from(Span::styled(n, t.dim)));
    }
    if c.judged {
        lines.push(Line::from(escaped(plan.what.clone())));
    }
    let sample = if c.judged {
        plan.sample.iter().take(5).cloned().collect()
    } else {
        plan_sample(store, plan)
    };
    if !sample.is_empty() {
        lines.push(Line::from(Span::styled("sample:", t.dim)));
        for s in sample {
            lines.push(Line::from(format!("  {}", escaped(s))));
        }
    }
    match (c.ssh(), c.include_ssh) {
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
        (None, _) if session_known && plan.flows > 0 => lines.push(Line::from(Span::styled(
            "your SSH session's flow is not among these",
            t.dim,
        ))),
        _ => {}
    }
    let w = (area.width.saturating_sub(4)).min(84);
    // The planner's warnings are long sentences: wrapped here so the height is known.
    for warning in &plan.warnings {
        for l in text::wrap(&escaped(warning.clone()), usize::from(w.saturating_sub(2))) {
            lines.push(Line::from(Span::styled(l, t.warn)));
        }
    }
    lines.push(Line::from(""));
    lines.push(Line::from(vec![
        Span::styled("y", t.header_cell),
        Span::raw("/Enter proceed   "),
        Span::styled("n", t.header_cell),
        Span::raw("/Esc cancel"),
    ]));
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

/// Up to five of the plan's entries as the tables show them (`proto src → dst`, or an
/// expectation's helper and tuple); a plan of kernel flushes shows the planner's own lines.
fn plan_sample(store: &Store, plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    for target in &plan.targets {
        if out.len() == 5 {
            break;
        }
        match target {
            Target::Flow { key, .. } => {
                if let Some(f) = store.flow(key) {
                    out.push(format!(
                        "{} {}",
                        text::proto_name(f.orig.proto),
                        text::conn(&f.orig)
                    ));
                }
            }
            Target::Expect { key, .. } => {
                if let Some(e) = store.expectation(key) {
                    out.push(format!(
                        "{} {}",
                        e.helper.shown().unwrap_or("-"),
                        text::expect_tuple(e)
                    ));
                }
            }
            _ => {}
        }
    }
    if out.is_empty() {
        out = plan.sample.clone();
    }
    out
}
