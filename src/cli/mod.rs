//! The top of the program: parse arguments, open the source (live kernel in a namespace,
//! or a recording), and hand off to a headless command or the dashboard.
//!
//! This is the only place that uses `anyhow` and decides exit codes:
//! 0 success (and a closed pipe), 1 a failure or refused action (audit: findings),
//! 2 a usage error (bad filter, unknown helper; audit: could not look).

pub mod args;
mod commands;
pub mod docs;
mod exporter;
mod pressure;
mod pushdown;
mod recent;
mod selectors;
mod stale;
mod top;
pub mod watch;

use std::process::ExitCode;

use clap::Parser;

pub use args::Cli;

/// Run ctscope with the process's arguments and return its exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Label names as conntrack(8) reads them, for output and for `--label`/`label=`.
    crate::model::labels::install(crate::model::labels::LabelMap::system());
    match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            // A failure the user caused by what they typed: exit 2, the message alone.
            if let Some(u) = e.downcast_ref::<crate::Error>().filter(|u| u.is_usage()) {
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
    // A replay's recording start dates the detail pane's absolute times.
    let (source, recorded_start): (Box<dyn crate::engine::Source>, _) = match &g.replay {
        Some(path) => {
            let r = crate::engine::Replay::open(path, speed)?;
            let start = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(r.recorded_start());
            (Box::new(r), Some(start))
        }
        None => {
            // Recency state has no events: the dashboard's Recent screen gets snapshots
            // from the sampler thread `record` uses, delivered in order with the events.
            let mut live = commands::open_live(g, true)?;
            live.sample_recent(g.netns.clone())?;
            (Box::new(live), None)
        }
    };
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
    let theme = g.theme.map(|t| match t {
        args::Theme::Dark => "dark",
        args::Theme::Light => "light",
        args::Theme::Ansi16 => "16",
        args::Theme::Mono => "mono",
    });
    let no_color = std::env::var("NO_COLOR").ok();
    let (term, colorterm) = (std::env::var("TERM").ok(), std::env::var("COLORTERM").ok());
    let terminal = tui::theme::Terminal {
        term: term.as_deref(),
        colorterm: colorterm.as_deref(),
    };
    let opts = tui::TuiOptions {
        namespace: match (&g.replay, &g.netns) {
            // The file name only: a long path would push the counts off the header.
            (Some(p), _) => Some(format!(
                "replay {}",
                crate::escape::Escaped(&p.file_name().map_or_else(
                    || p.display().to_string(),
                    |f| f.to_string_lossy().into_owned()
                ))
            )),
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
        expect_max: if g.replay.is_some() {
            None
        } else {
            crate::netlink::netns::read_sysctl(&ns, "net/netfilter/nf_conntrack_expect_max")
                .and_then(|v| v.trim().parse().ok())
        },
        timeouts: stale::timeouts(g),
        kernel_stats: g.replay.is_none(),
        read_only: g.read_only,
        theme: ThemeKind::choose(color, theme, no_color.as_deref(), terminal),
        ssh: ctx.ssh,
        sshd: ctx.sshd.clone(),
        recorded_start,
        replay_speed: if g.fast {
            tui::ReplaySpeed::Fast
        } else {
            tui::ReplaySpeed::Normal
        },
        ..tui::TuiOptions::default()
    };
    // Built once here; the app reassesses only when the store changes.
    let assessor = build_assessor(g.netns.as_deref(), g.replay.is_some());
    tui::live::run_live(opts, commands::sized_store(g), events, engine, assessor)?;
    Ok(match tui::last_signal() {
        0 => ExitCode::SUCCESS,
        sig => ExitCode::from(128u8.saturating_add(sig as u8)),
    })
}

/// `ctscope audit`: a one-shot report over the live system (a recording holds no
/// ruleset, so `--replay` is refused). Exit 0 clean, 1 findings, 2 could not look.
fn audit_main(g: &args::Global, mut opts: crate::audit::Options) -> anyhow::Result<ExitCode> {
    if g.replay.is_some() {
        return Err(crate::Error::live_only("audit reads the live ruleset and tables").into());
    }
    if let Some(p) = &opts.sensitive_ports {
        crate::risk::Config::default().with_ports(p)?;
    }
    opts.netns = g.netns.clone();
    let code = crate::audit::execute(&opts, &mut std::io::stdout().lock());
    Ok(ExitCode::from(code.clamp(0, 255) as u8))
}

/// Where the helper-risk annotations are computed: the namespace shown, and whether the
/// entries come from a recording (then this machine's sockets mean nothing).
static RISK_CONTEXT: std::sync::OnceLock<(Option<String>, bool)> = std::sync::OnceLock::new();
static RISK: std::sync::OnceLock<Option<std::sync::Mutex<crate::risk::Assessor>>> =
    std::sync::OnceLock::new();

/// Record the run's namespace and source for `risk()`; called once before any command.
fn init_risk(g: &args::Global) {
    let _ = RISK_CONTEXT.set((g.netns.clone(), g.replay.is_some()));
}

/// The assessor for the entries shown: the freedom table with live module options, and
/// the sockets of the namespace `netns`, re-read when older than a second (none for a
/// replay: this machine's sockets say nothing about the recorded one). `None` if it cannot
/// be built (risk is then left out rather than failing the command). The one construction
/// behind both the JSON annotations (`with_risk()`) and the dashboard.
pub(super) fn build_assessor(netns: Option<&str>, replay: bool) -> Option<crate::risk::Assessor> {
    let mut a = crate::risk::Assessor::system_in(None, netns).ok()?;
    if replay {
        a.listeners = None;
        a.sockets_from = None;
    }
    Some(a)
}

/// Run `f` with the assessor of the headless commands, built on first use (see
/// `build_assessor`) and refreshed so a long `watch` sees sockets opened after it started.
pub(super) fn with_risk<R>(f: impl FnOnce(&crate::risk::Assessor) -> R) -> Option<R> {
    let m = RISK
        .get_or_init(|| {
            let (netns, replay) = RISK_CONTEXT.get().cloned().unwrap_or_default();
            build_assessor(netns.as_deref(), replay).map(std::sync::Mutex::new)
        })
        .as_ref()?;
    let mut a = m.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    a.refresh();
    Some(f(&a))
}

/// Add the helper-risk fields to a flow's JSON view: every RELATED flow, judged by the
/// expectation the store saw or else from the flow itself (`risk_from`).
fn annotate_flow(
    store: &crate::model::Store,
    mut v: crate::output::FlowView,
    f: &crate::model::Flow,
) -> crate::output::FlowView {
    if f.is_related() {
        let key = crate::model::store::FlowKey::of(f);
        if let Some(r) = with_risk(|a| a.flow(store, &key))
            .flatten()
            .map(|a| crate::risk::RiskJson::of(&a))
        {
            v.freedom = Some(r.freedom);
            v.findings = Some(r.findings);
            v.risk_from = Some(r.risk_from);
            v.table = Some(r.table);
            v.listener = Some(r.listener);
        }
    }
    v
}

/// Add the helper-risk fields to an expectation's JSON view.
fn annotate_expect(
    store: &crate::model::Store,
    mut v: crate::output::ExpectView,
    e: &crate::model::Expectation,
) -> crate::output::ExpectView {
    if let Some(r) = with_risk(|a| crate::risk::RiskJson::of(&a.expectation(store, e))) {
        v.freedom = Some(r.freedom);
        v.findings = Some(r.findings);
        v.table = Some(r.table);
        v.listener = Some(r.listener);
    }
    v
}
