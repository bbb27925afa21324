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

/// The dashboard (no command). Wired to `tui` once it lands.
fn tui_main(_g: &args::Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("the dashboard is not built yet; use 'ctscope list' or 'ctscope watch'")
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
