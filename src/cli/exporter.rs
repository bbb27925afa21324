//! The command-line side of the Prometheus outputs: `ctscope exporter` (the live engine
//! behind `/metrics`, see `crate::exporter`), and the one-shot `list --prom` and
//! `audit --prom`, which write node_exporter textfiles through `output::prom`.
//!
//! It decides what each command counts and where the text goes; the series and the
//! format belong to `output::prom`, the serving to `crate::exporter`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};

use super::args::{FilterArgs, Global};
use super::commands::{self, namespace};
use crate::engine::{Engine, Options, Speed};
use crate::error::Error;
use crate::exporter::{self as exp, ExporterError, KernelFigures};
use crate::netlink::{netns, Conn, Namespace};
use crate::output::prom::{self, Metrics};

fn refuse_replay(g: &Global, what: &str) -> Result<()> {
    if g.replay.is_some() {
        return Err(Error::live_only(format!(
            "'{what}' reads the live kernel's limits, counters and ruleset"
        ))
        .into());
    }
    Ok(())
}

/// The kernel's limits and summed per-CPU counters for namespace `ns`, each `None` when
/// it cannot be read (the series is then left out rather than reported as 0).
fn kernel_figures(ns: &Namespace, conn: &mut Option<Conn>) -> KernelFigures {
    let sysctl =
        |name: &str| netns::read_sysctl(ns, name).and_then(|v| v.trim().parse::<u64>().ok());
    if conn.is_none() {
        *conn = Conn::open(ns).ok();
    }
    let stat = conn.as_mut().and_then(|c| {
        let s = super::pressure::read_stats(c).ok()?;
        let total = s.total();
        Some(
            total
                .fields()
                .iter()
                .map(|&(name, v)| (name, v as u64))
                .collect(),
        )
    });
    if stat.is_none() {
        *conn = None; // reopened next time
    }
    KernelFigures {
        flows_max: sysctl("net/netfilter/nf_conntrack_max"),
        expect_max: sysctl("net/netfilter/nf_conntrack_expect_max"),
        conntrack_stat: stat,
    }
}

/// Run one audit of `opts` and count its findings by kind, with whether it could look.
fn audit_counts(
    opts: &crate::audit::Options,
) -> std::result::Result<(BTreeMap<&'static str, u64>, bool), Error> {
    let input = crate::audit::collect::collect(opts)?;
    let rep = crate::audit::run(&input);
    Ok((Metrics::audit_counts(&rep), rep.complete))
}

/// Write `text` to `path` (`-`: stdout), or to `path/default_name` for a directory.
fn write_out(path: &Path, default_name: &str, text: &str) -> Result<()> {
    if path.as_os_str() == "-" {
        let mut out = std::io::stdout().lock();
        return match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
            _ => Ok(()),
        };
    }
    let target = prom::textfile_target(path, default_name);
    prom::write_textfile(&target, text).with_context(|| {
        format!(
            "cannot write '{}'\nhint: the directory must exist and be writable (node_exporter's --collector.textfile.directory)",
            target.display()
        )
    })
}

/// `ctscope list --prom PATH`: one dump of the table, counted into the exporter's table
/// series (no event counters: nothing was followed).
pub fn list_prom(g: &Global, f: &FilterArgs, path: &Path) -> Result<ExitCode> {
    if f.filter.is_some() || !f.flags.given.is_empty() {
        return Err(Error::usage_hint(
            "--prom counts the whole table; it takes no filter",
            "drop the filter flags, or use --json with them",
        )
        .into());
    }
    let (store, _now, _source) = commands::load(g, false)?;
    let mut m = Metrics::default();
    let counted = super::with_risk(|a| m.count_store(&store, Some(a), Default::default()));
    if counted.is_none() {
        m.count_store(&store, None, Default::default());
    }
    if g.replay.is_none() {
        let k = kernel_figures(&namespace(g), &mut None);
        m.flows_max = k.flows_max;
        m.expect_max = k.expect_max;
        m.conntrack_stat = k.conntrack_stat;
    }
    let mut text = String::new();
    prom::render(&m, &mut text);
    write_out(path, "ctscope_list.prom", &text)?;
    Ok(ExitCode::SUCCESS)
}

/// `ctscope audit --prom PATH`: `ctscope_audit_findings{kind}`. Exit 0 when written
/// (findings are data in the file, so a timer unit does not fail on them), 2 when the
/// audit could not look (the file still says what it saw).
pub fn audit_prom(g: &Global, mut opts: crate::audit::Options, path: &Path) -> Result<ExitCode> {
    refuse_replay(g, "audit")?;
    if let Some(p) = &opts.sensitive_ports {
        if let Err(e) = crate::risk::Config::default().with_ports(p) {
            return Err(e.into());
        }
    }
    opts.netns = g.netns.clone();
    let (counts, complete) =
        audit_counts(&opts).map_err(|e| anyhow::anyhow!("audit could not run: {e}"))?;
    let m = Metrics {
        audit: Some(counts),
        ..Metrics::default()
    };
    let mut text = String::new();
    prom::render(&m, &mut text);
    write_out(path, "ctscope_audit.prom", &text)?;
    if !complete {
        eprintln!("ctscope: the audit could not read everything (run 'ctscope audit' to see what)");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}

/// Raise the soft open-file limit to the hard one: every open HTTP connection holds a
/// descriptor (at most `MAX_CONNECTIONS` of them, plus the engine's).
fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// `ctscope exporter`: bind first (a bad address or a port in use fails before any dump),
/// then run the engine and serve until SIGINT/SIGTERM/SIGHUP. Silent while it works
/// (a service's log then holds only what went wrong).
pub fn main(
    g: &Global,
    listen: &str,
    allow_remote: bool,
    audit_interval: Duration,
) -> Result<ExitCode> {
    refuse_replay(g, "exporter")?;
    let addr = exp::parse_listen(listen).map_err(|e| Error::usage(e.to_string()))?;
    let listener = exp::bind(addr, allow_remote).map_err(|e| match e {
        ExporterError::NotLoopback(_) => anyhow::Error::new(Error::usage(e.to_string())),
        e => anyhow::Error::new(e),
    })?;
    raise_nofile();
    commands::catch_stop_signals()?;
    let store = commands::sized_store(g);
    let source = commands::open_source(g, true, Speed::Fast)?;
    let (events, handle) = Engine::spawn(source, Options::default())?;
    let assessor = super::build_assessor(g.netns.as_deref(), false);
    let ns = namespace(g);
    let mut conn = None;
    let kernel = Box::new(move || kernel_figures(&ns, &mut conn));
    let mut opts = crate::audit::Options {
        netns: g.netns.clone(),
        ..Default::default()
    };
    opts.sensitive_ports = std::env::var("CTSCOPE_SENSITIVE_PORTS").ok();
    let audit: exp::AuditRunner = Box::new(move || audit_counts(&opts).ok().map(|(c, _)| c));
    let cfg = exp::Config {
        audit_interval: (!audit_interval.is_zero()).then_some(audit_interval),
        stop: Arc::clone(&commands::STOP),
    };
    exp::run(
        listener,
        events,
        handle,
        store,
        assessor,
        kernel,
        Some(audit),
        cfg,
    )
    .map_err(|e| anyhow::anyhow!("exporter stopped: {e}"))?;
    Ok(ExitCode::SUCCESS)
}
