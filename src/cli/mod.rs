//! The top of the program: parse arguments, open the source (live kernel in a namespace,
//! or a recording), and hand off to a headless command or the dashboard.
//!
//! This is the only place that uses `anyhow` and decides exit codes:
//! 0 success (and a closed pipe), 1 a failure or refused action (audit: findings),
//! 2 a usage error (bad filter, unknown helper; audit: could not look).

pub mod args;
mod commands;

use std::process::ExitCode;

use clap::Parser;

pub use args::Cli;

/// A failure the user caused by what they typed: exit 2, no "error:" noise.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// Run ctscope with the process's arguments and return its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            if let Some(u) = e.downcast_ref::<Usage>() {
                eprintln!("ctscope: {u}");
                return ExitCode::from(2);
            }
            eprintln!("ctscope: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The dashboard (no command): the engine on the live table or a recording, the store
/// owned by the TUI's main thread (`tui::live::run_live`).
fn tui_main(g: &args::Global) -> anyhow::Result<ExitCode> {
    use crate::tui::{self, ThemeKind};
    let speed = if g.fast {
        crate::engine::Speed::Fast
    } else {
        crate::engine::Speed::RealTime(1.0)
    };
    let source = commands::open_source(g, true, speed)?;
    let (events, engine) = crate::engine::Engine::spawn(source, crate::engine::Options::default())?;
    let ns = commands::namespace(g);
    let ctx = if g.replay.is_some() {
        crate::actions::Context {
            ssh: crate::actions::SshSession::from_env(),
            ..Default::default()
        }
    } else {
        crate::actions::Context::detect(&ns)
    };
    let color = match g.color {
        args::ColorChoice::Auto => "auto",
        args::ColorChoice::Always => "always",
        args::ColorChoice::Never => "never",
    };
    let theme = match g.theme {
        args::Theme::Dark => "dark",
        args::Theme::Light => "light",
        args::Theme::Ansi16 => "16",
        args::Theme::Mono => "mono",
    };
    let no_color = std::env::var("NO_COLOR").ok();
    let opts = tui::TuiOptions {
        namespace: match (&g.replay, &g.netns) {
            (Some(p), _) => Some(format!("replay {}", p.display())),
            (None, Some(n)) => Some(n.clone()),
            (None, None) => None,
        },
        conntrack_max: if g.replay.is_some() {
            None
        } else {
            crate::netlink::netns::read_sysctl(&ns, "net/netfilter/nf_conntrack_max")
                .and_then(|v| v.trim().parse().ok())
        },
        tcp_loose: ctx.tcp_loose,
        read_only: g.read_only,
        theme: ThemeKind::choose(color, Some(theme), no_color.as_deref()),
        ssh: ctx.ssh,
        ..tui::TuiOptions::default()
    };
    tui::live::run_live(opts, crate::model::Store::new(), events, engine, ctx)?;
    Ok(match tui::last_signal() {
        0 => ExitCode::SUCCESS,
        sig => ExitCode::from(128u8.saturating_add(sig as u8)),
    })
}

/// `ctscope audit`. Wired to `audit` once it lands.
fn audit_main(_g: &args::Global, _json: bool) -> anyhow::Result<ExitCode> {
    Ok(ExitCode::from(2))
}

/// Add the helper-risk fields to a flow's JSON view (RELATED flows).
fn annotate_flow(
    _store: &crate::model::Store,
    v: crate::output::FlowView,
    _f: &crate::model::Flow,
) -> crate::output::FlowView {
    v
}

/// Add the helper-risk fields to an expectation's JSON view.
fn annotate_expect(
    _store: &crate::model::Store,
    v: crate::output::ExpectView,
    _e: &crate::model::Expectation,
) -> crate::output::ExpectView {
    v
}
