//! The commands behind `ctscope [COMMAND]`: each opens a source, fills a store through the
//! engine, and prints through `output` — the same path the dashboard uses.

use std::io::{self, BufWriter, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::args::{ActArgs, Cli, Command, FilterArgs, FormatArgs, Global};
use super::pushdown::{self, Selection};
use super::watch::{hostname, Out, Stream};
use crate::actions::{self, Context, Plan};
use crate::engine::{self, Engine, EngineEvent, Live, Options, Replay, Source, Speed};
use crate::error::Error;
use crate::filter::{self, Filter, TextSource};
use crate::model::Event;
use crate::model::Store;
use crate::netlink::Namespace;
use crate::output::{self, ExpectView, FlowView, Outcome};

pub fn run(cli: Cli) -> Result<ExitCode> {
    let g = cli.global;
    super::init_risk(&g);
    match cli.command {
        None => super::tui_main(&g),
        Some(Command::List {
            special,
            filter,
            format,
            ..
        }) if special.dying || special.unconfirmed => {
            let which = if special.dying {
                crate::netlink::special::List::Dying
            } else {
                crate::netlink::special::List::Unconfirmed
            };
            super::pressure::list_special(&g, which, &filter, format)
        }
        Some(Command::List {
            filter,
            prom: Some(path),
            ..
        }) => super::exporter::list_prom(&g, &filter, &path),
        Some(Command::List {
            expect,
            filter,
            format,
            ..
        }) => list(&g, expect, &filter, format),
        Some(Command::Watch {
            flows_only,
            expect_only,
            count,
            duration,
            event_mask,
            filter,
            format,
        }) => watch(
            &g,
            !expect_only,
            !flows_only,
            count,
            duration,
            event_mask.unwrap_or_default(),
            &filter,
            format,
        ),
        Some(Command::Delete {
            expect,
            filter,
            act,
        }) => delete(&g, expect, &filter, act),
        Some(Command::Flush {
            stale, filter, act, ..
        }) if stale.stale => super::stale::flush(&g, &filter, act, stale),
        Some(Command::Flush {
            expect,
            filter,
            act,
            ..
        }) => flush(&g, expect, &filter, act),
        Some(Command::Top { opts }) => super::top::run(&g, opts),
        Some(Command::Record {
            file,
            duration,
            force,
            no_recent,
        }) => record(&g, &file, duration, force, !no_recent),
        Some(Command::Audit {
            opts,
            prom: Some(path),
        }) => super::exporter::audit_prom(&g, opts, &path),
        Some(Command::Audit { opts, .. }) => super::audit_main(&g, opts),
        Some(Command::Exporter {
            listen,
            allow_remote,
            audit_interval,
        }) => super::exporter::main(&g, &listen, allow_remote, audit_interval),
        Some(Command::Recent { action, json, at }) => super::recent::main(&g, action, json, at),
        Some(Command::Stats { expect, json }) => super::pressure::stats(&g, expect, json),
        Some(Command::Count { expect, json }) => super::pressure::count(&g, expect, json),
        Some(Command::Completions { shell }) => {
            super::docs::run_completions(shell).map(|()| ExitCode::SUCCESS)
        }
        Some(Command::Man) => super::docs::run_man().map(|()| ExitCode::SUCCESS),
    }
}

/// The namespace named by `--netns` (the current one when absent).
pub fn namespace(g: &Global) -> Namespace {
    g.netns
        .as_deref()
        .map(Namespace::parse)
        .unwrap_or(Namespace::Current)
}

/// A store sized for the table about to be dumped: `nf_conntrack_count` of the namespace
/// plus 1/16 headroom, so a million-entry first dump never stops to rehash or to double the
/// slab (which would also leave up to half of it unused). A recording starts small.
pub fn sized_store(g: &Global) -> Store {
    let mut store = Store::new();
    if g.replay.is_none() {
        let count =
            crate::netlink::netns::read_sysctl(&namespace(g), "net/netfilter/nf_conntrack_count")
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
        store.reserve_flows(count + count / 16);
    }
    store
}

/// Open the live kernel or the recording. `follow` subscribes to events (live only).
pub fn open_source(g: &Global, follow: bool, speed: Speed) -> Result<Box<dyn Source>> {
    if let Some(path) = &g.replay {
        return Ok(Box::new(Replay::open(path, speed)?));
    }
    Ok(Box::new(open_live(g, follow)?))
}

/// The live kernel in the namespace `g` names.
pub(super) fn open_live(g: &Global, follow: bool) -> Result<Live> {
    // An exact event buffer (bytes, no 8 MiB floor): tests set a tiny one to provoke
    // ENOBUFS and see the resync in the stream.
    if let Some(rcvbuf) = std::env::var("CTSCOPE_RCVBUF")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
    {
        return Ok(Live::open_exact(&namespace(g), follow, rcvbuf)?);
    }
    Ok(Live::open(&namespace(g), follow)?)
}

/// On the command line a text term (`/regex/`, bare word) searches the line ctscope prints
/// for the entry (`list`'s line; `watch`'s without its `[EVENT]` tag), whatever `--json`.
const PRINTED: TextSource = TextSource {
    flow: |f, now, out| out.push_str(&output::text::flow(&FlowView::of(f, now))),
    expect: |e, now, out| out.push_str(&output::text::expectation(&ExpectView::of(e, now))),
};

/// Compile the conntrack-style flags and `--filter` into one filter; errors are usage errors
/// shown with a caret under the bad span.
pub fn compile_filter(f: &FilterArgs) -> Result<Filter> {
    let from_flags = filter::from_conntrack_flags(&f.flags).map_err(|e| {
        // `-f` meant the filter expression before it meant the family, as in conntrack(8).
        if e.message.starts_with("-f: unknown family") {
            Error::usage_hint(
                e.message,
                "-f is the address family, as in conntrack(8); a filter expression is -F/--filter",
            )
        } else {
            Error::usage(e.message)
        }
    })?;
    let expr = match f.filter.as_deref() {
        Some(src) => Filter::parse(src)
            .map_err(|e| Error::usage(format!("bad --filter expression:\n{}", e.render(src))))?,
        None => Filter::all(),
    };
    Ok(from_flags.and(expr).with_text(PRINTED))
}

pub(super) fn format_of(f: FormatArgs) -> output::Format {
    use super::args::OutputKind as O;
    match f.output {
        Some(O::Text) => output::Format::Text,
        Some(O::Extended) => output::Format::Extended,
        Some(O::Json) => output::Format::Json,
        Some(O::Ndjson) => output::Format::Ndjson,
        Some(O::Save) => output::Format::Save,
        None if f.json => output::Format::Json,
        None if f.ndjson => output::Format::Ndjson,
        None => output::Format::Text,
    }
}

/// `-o save` writes flows only (conntrack -R cannot recreate an expectation or replay
/// events): a usage error elsewhere.
fn refuse_save(format: FormatArgs, what: &str) -> Result<()> {
    if format_of(format) == output::Format::Save {
        return Err(Error::usage_hint(
            format!("-o save writes flows only, not {what}"),
            "use -o json to keep them",
        )
        .into());
    }
    Ok(())
}

/// Fill a fresh store: live, one dump of both tables (the `list`, `delete` and `flush`
/// starting point); from a recording, the whole recording played to its end — its dump
/// and every event after it — so `list --replay` shows the table as the recording left it,
/// the same state the dashboard shows when the replay ends.
///
/// `watch` opens the event subscription before the dump and keeps it in the returned
/// source, so a delete can tell which planned entries were destroyed or re-created since
/// (see `catch_up`).
pub(super) fn load(g: &Global, watch: bool) -> Result<(Store, u32, Box<dyn Source>)> {
    load_selected(g, watch, Selection::Whole)
}

/// `load` for a command that shows or acts on `sel` only: live, the kernel filters what it
/// can of the dump (`pushdown`); the store then holds a superset of the selection (plus
/// what its output depends on), so callers filter every entry as before.
pub(super) fn load_selected(
    g: &Global,
    watch: bool,
    sel: Selection<'_>,
) -> Result<(Store, u32, Box<dyn Source>)> {
    if g.replay.is_some() {
        let mut store = Store::new();
        let source = open_source(g, true, Speed::Fast)?;
        let clock = source.clock();
        let (rx, handle) = Engine::spawn(source, Options::default())?;
        for ev in rx {
            match ev {
                EngineEvent::Fatal(msg) => anyhow::bail!("{msg}"),
                EngineEvent::DecodeErrors(n) => {
                    eprintln!("ctscope: {n} message(s) could not be decoded and are not shown")
                }
                ev => {
                    engine::apply(&mut store, ev, clock.now());
                }
            }
        }
        handle.stop();
        let now = clock.now();
        store.expire_expectations(now);
        // Actions on a recording are refused by the source itself; keep one to say so.
        return Ok((store, now, open_source(g, false, Speed::Fast)?));
    }
    let (flows, expects) = pushdown::filters(sel);
    let mut store = if flows.is_none() {
        sized_store(g)
    } else {
        Store::new()
    };
    let mut live = open_live(g, watch)?;
    live.set_dump_filters(flows, expects);
    let now = live.clock().now();
    let stats = engine::load(&mut live, &mut store, now)?;
    if stats.decode_errors > 0 {
        eprintln!(
            "ctscope: {} message(s) could not be decoded and are not shown",
            stats.decode_errors
        );
    }
    pushdown::finish(
        &mut live,
        &mut store,
        now,
        sel,
        (&flows, &expects),
        stats.masters,
    )?;
    let now = live.clock().now();
    Ok((store, now, Box::new(live)))
}

fn list(g: &Global, expect: bool, f: &FilterArgs, format: FormatArgs) -> Result<ExitCode> {
    if expect {
        refuse_save(format, "expectations")?;
    }
    let filter = compile_filter(f)?;
    refuse_event(&filter, "list")?;
    let sel = if expect {
        Selection::Expects(&filter)
    } else {
        Selection::Flows {
            filter: &filter,
            children: false,
        }
    };
    let (store, now, _source) = load_selected(g, false, sel)?;
    let ctx = super::stale::store_context(g, &store, Default::default());
    let stdout = io::stdout().lock();
    let mut w = output::Writer::new(BufWriter::with_capacity(1 << 16, stdout), format_of(format));
    if expect {
        for e in store.expectations() {
            if filter.match_expect_in(e, now, &ctx) {
                let v = super::annotate_expect(&store, ExpectView::of(e, now), e);
                if w.expectation(&v)? == Outcome::Closed {
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
    } else {
        for fl in store.flows() {
            if filter.match_flow_in(fl, now, &ctx) {
                let v = super::annotate_flow(&store, FlowView::of(fl, now), fl);
                if w.flow(&v)? == Outcome::Closed {
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
    }
    let _ = w.finish()?;
    if format_of(format).is_line() {
        let what = if expect { "expectation" } else { "flow" };
        eprintln!("ctscope: {} {what} entries have been shown.", w.count());
    }
    Ok(ExitCode::SUCCESS)
}

/// Set by SIGINT/SIGTERM/SIGHUP in headless follow modes, so `watch` and `record` end
/// cleanly (flushing their output) instead of dying mid-line.
pub(super) static STOP: LazyLock<Arc<AtomicBool>> =
    LazyLock::new(|| Arc::new(AtomicBool::new(false)));

/// signal-hook installs the handlers with sigaction (no `signal(2)` semantics to worry
/// about) and its handler only stores to the flag, which is async-signal-safe.
pub(super) fn catch_stop_signals() -> Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
        signal_hook::flag::register(sig, Arc::clone(&STOP))
            .with_context(|| format!("cannot catch signal {sig}"))?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn watch(
    g: &Global,
    flows: bool,
    expects: bool,
    count: Option<u64>,
    duration: Option<Duration>,
    mask: super::selectors::EventMask,
    f: &FilterArgs,
    format: FormatArgs,
) -> Result<ExitCode> {
    refuse_save(format, "events")?;
    let filter = compile_filter(f)?;
    if super::stale::needs_store(&filter) {
        return Err(Error::usage_hint(
            "'stale' judges a whole table; watch shows events",
            "ctscope list --filter stale",
        )
        .into());
    }
    let source = open_source(g, true, Speed::Fast)?;
    let epoch = source.start_epoch_ns();
    catch_stop_signals()?;
    let (rx, handle) = Engine::spawn(source, engine_options())?;
    let clock = handle.clock();
    // A recording does not say which host it was made on: a replay names none.
    let host = if g.replay.is_some() { None } else { hostname() };
    let mut stream = Stream::new(filter, flows, expects, host, g.netns.clone());
    let stdout = io::stdout().lock();
    let mut w = output::Writer::new(BufWriter::new(stdout), format_of(format));
    let deadline = duration.and_then(|d| Instant::now().checked_add(d));
    let mut printed = 0u64;
    let mut last_tick = Instant::now();
    // What the writer said last: a closed pipe or an error ends the loop.
    let mut state: io::Result<Outcome> = Ok(Outcome::Continue);
    let mut emit = |o: Out, state: &mut io::Result<Outcome>, printed: &mut u64| {
        if !matches!(state, Ok(Outcome::Continue)) || count.is_some_and(|c| *printed >= c) {
            return;
        }
        *state = match &o {
            Out::Line(l) if !mask.allows(l.event, l.change) => return,
            Out::Line(l) => {
                let r = w.watch(l);
                if l.is_kernel_event() && matches!(r, Ok(Outcome::Continue)) {
                    *printed += 1;
                }
                r
            }
            Out::Resync(r) => w.resync(r),
        };
    };
    loop {
        if STOP.load(Ordering::SeqCst) || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        if last_tick.elapsed() >= Duration::from_secs(1) {
            let now = handle.now();
            let mut gone = Vec::new();
            engine::tick_with(&mut stream.store, &handle, now, &mut |e| {
                gone.push(e.clone())
            });
            let time = epoch + clock.now_ns();
            stream.expired(gone, time, now, &mut |o| emit(o, &mut state, &mut printed));
            last_tick = Instant::now();
        }
        let ev = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(ev) => ev,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let now = handle.now();
        match ev {
            EngineEvent::Fatal(msg) => {
                let _ = w.finish();
                anyhow::bail!("{msg}");
            }
            EngineEvent::DecodeErrors(n) => {
                eprintln!("ctscope: {n} message(s) could not be decoded");
            }
            ev => {
                if matches!(ev, EngineEvent::Overrun) {
                    eprintln!("ctscope: the kernel dropped events (ENOBUFS); re-dumping to resync");
                }
                stream.apply(ev, now, &mut |o| emit(o, &mut state, &mut printed));
            }
        }
        match state {
            Ok(Outcome::Continue) => {}
            Ok(Outcome::Closed) => return Ok(ExitCode::SUCCESS),
            Err(e) => return Err(e.into()),
        }
        if count.is_some_and(|c| printed >= c) {
            break;
        }
    }
    let _ = w.finish()?;
    handle.stop();
    Ok(ExitCode::SUCCESS)
}

/// Engine settings for the headless followers. `CTSCOPE_REDUMP_MIN` (a duration such as
/// `300ms`) lowers the floor of the background re-dump interval: tests use it to see
/// convergence dumps within seconds.
fn engine_options() -> Options {
    let mut opts = Options::default();
    if let Some(d) = std::env::var("CTSCOPE_REDUMP_MIN")
        .ok()
        .and_then(|v| humantime::parse_duration(&v).ok())
    {
        opts.min_redump = d;
    }
    opts
}

fn delete(g: &Global, expect: bool, f: &FilterArgs, act: ActArgs) -> Result<ExitCode> {
    let filter = compile_filter(f)?;
    if filter.is_empty() {
        return Err(Error::usage_hint(
            "delete needs a filter (e.g. -p tcp --dport 21, or --filter EXPR)",
            "to remove everything use 'ctscope flush'",
        )
        .into());
    }
    refuse_event(&filter, "delete")?;
    let sel = if expect {
        Selection::Expects(&filter)
    } else {
        Selection::Flows {
            filter: &filter,
            children: true,
        }
    };
    let (mut store, now, mut source) = load_selected(g, true, sel)?;
    let lost = catch_up(g, source.as_mut(), &mut store, now)?;
    let ctx = context(g, act);
    let sctx = super::stale::store_context(g, &store, Default::default());
    let mut plan = if expect {
        let what = format!("expectations matching '{}'", filter.source());
        Plan::expectations(&store, &|e| filter.match_expect_in(e, now, &sctx), &what)
    } else {
        let what = format!("flows matching '{}'", filter.source());
        Plan::flows(
            &store,
            &|fl| filter.match_flow_in(fl, now, &sctx),
            &what,
            &ctx,
        )
    };
    plan.lives.lost |= lost;
    confirm_and_execute(plan, act, source, Verb::Delete)
}

fn flush(g: &Global, expect: bool, f: &FilterArgs, act: ActArgs) -> Result<ExitCode> {
    if let Some(h) = f.helper() {
        check_helper(h)?;
    }
    let filter = compile_filter(f)?;
    refuse_event(&filter, "flush")?;
    // `flush --expect` and a bare flush act on whole tables.
    let sel = if expect || filter.is_empty() {
        Selection::Whole
    } else {
        Selection::Flows {
            filter: &filter,
            children: true,
        }
    };
    let (mut store, now, mut source) = load_selected(g, true, sel)?;
    let lost = catch_up(g, source.as_mut(), &mut store, now)?;
    let ctx = context(g, act);
    let sctx = super::stale::store_context(g, &store, Default::default());
    let mut plan = if expect {
        match (f.helper(), filter.is_empty()) {
            (Some(h), _) if f.only_helper() => Plan::flush_helper(&store, h),
            (_, true) => Plan::flush_expects(&store),
            _ => {
                return Err(Error::usage_hint(
                    "flush --expect takes only --helper NAME",
                    "to remove selected expectations, use the dashboard or flush by helper",
                )
                .into())
            }
        }
    } else if filter.is_empty() {
        Plan::flush_flows(&store, &ctx)
    } else {
        let what = format!("flows matching '{}'", filter.source());
        Plan::flows(
            &store,
            &|fl| filter.match_flow_in(fl, now, &sctx),
            &what,
            &ctx,
        )
    };
    plan.lives.lost |= lost;
    confirm_and_execute(plan, act, source, Verb::Flush)
}

/// `event=` terms describe a watch line; elsewhere they would match nothing.
fn refuse_event(filter: &Filter, cmd: &str) -> Result<()> {
    if filter.needs_context().1 {
        return Err(Error::usage_hint(
            format!("'event' selects watch lines; '{cmd}' has no events"),
            "ctscope watch --filter 'event=destroy'",
        )
        .into());
    }
    Ok(())
}

/// Live: apply the events queued since the subscription opened (before the dump), so the
/// plan is made from the newest state (`actions::catch_up`); returns whether events were
/// lost. A recording has nothing queued.
pub(super) fn catch_up(
    g: &Global,
    source: &mut dyn Source,
    store: &mut Store,
    now: u32,
) -> Result<bool> {
    if g.replay.is_some() {
        return Ok(false);
    }
    Ok(actions::catch_up(source, store, now)?)
}

/// Kernel helper names (net/netfilter/nf_conntrack_*.c); userspace cthelpers may add more,
/// so an unknown name is refused only when it cannot be a helper name at all.
pub const KNOWN_HELPERS: &[&str] = &[
    "amanda",
    "ftp",
    "H.245",
    "Q.931",
    "RAS",
    "irc",
    "netbios-ns",
    "pptp",
    "sane",
    "sip",
    "snmp",
    "snmp_trap",
    "tftp",
];

fn check_helper(name: &str) -> Result<()> {
    if KNOWN_HELPERS.iter().any(|h| h.eq_ignore_ascii_case(name)) {
        return Ok(());
    }
    let valid = !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if valid && crate::model::helper::lookup(name).is_some() {
        return Ok(());
    }
    Err(Error::usage_hint(
        format!("unknown helper '{}'", crate::escape::Escaped(name)),
        format!("kernel helpers are {}", KNOWN_HELPERS.join(", ")),
    )
    .into())
}

pub(super) fn context(g: &Global, act: ActArgs) -> Context {
    let mut ctx = if g.replay.is_some() {
        Context {
            ssh: actions::SshSession::from_env(),
            ..Context::default()
        }
    } else {
        Context::detect(&namespace(g))
    };
    ctx.include_ssh = act.include_own_ssh;
    ctx
}

/// The one confirmation step of every command that removes something, after its plan was
/// printed: `--dry-run` stops, `--yes` proceeds, otherwise the terminal is asked (and a
/// non-terminal stdin is refused). `Ok(false)`: nothing is to be removed (already said).
pub(super) fn confirmed(act: ActArgs, err: &mut impl Write) -> Result<bool> {
    if act.dry_run {
        writeln!(err, "ctscope: dry run, nothing removed")?;
        return Ok(false);
    }
    if act.yes {
        return Ok(true);
    }
    if !io::stdin().is_terminal() {
        return Err(Error::usage_hint(
            "refusing to remove without confirmation: stdin is not a terminal",
            "add --yes, or --dry-run to see what would go",
        )
        .into());
    }
    write!(err, "Proceed? [y/N] ")?;
    err.flush()?;
    let mut answer = String::new();
    io::stdin().read_line(&mut answer)?;
    if !matches!(answer.trim(), "y" | "Y" | "yes") {
        writeln!(err, "ctscope: nothing removed")?;
        return Ok(false);
    }
    Ok(true)
}

/// Which command runs a plan: their exit statuses differ as in conntrack(8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Verb {
    /// `conntrack -D`: exit 1 when nothing matched or nothing was deleted.
    Delete,
    /// `conntrack -F`: exit 0 unless the kernel refused.
    Flush,
}

/// Print the plan, ask (or require `--yes`), run it while reading the events that arrived
/// since the dump (so entries destroyed or re-created meanwhile are skipped), print the
/// report.
pub(super) fn confirm_and_execute(
    mut plan: Plan,
    act: ActArgs,
    mut source: Box<dyn Source>,
    verb: Verb,
) -> Result<ExitCode> {
    let mut err = io::stderr().lock();
    // Plans and reports quote helper names from the kernel: escaped, line by line.
    for line in plan.describe().lines() {
        writeln!(err, "{}", crate::escape::Escaped(line))?;
    }
    if plan.is_empty() {
        writeln!(err, "ctscope: nothing to remove")?;
        return Ok(match verb {
            Verb::Delete => ExitCode::from(1),
            Verb::Flush => ExitCode::SUCCESS,
        });
    }
    if !confirmed(act, &mut err)? {
        return Ok(ExitCode::SUCCESS);
    }
    source.conn().context("cannot act")?;
    let report = actions::execute_watched(source.as_mut(), &mut plan);
    for line in report.to_string().lines() {
        writeln!(err, "{}", crate::escape::Escaped(line))?;
    }
    let nothing_deleted = verb == Verb::Delete && report.removed == 0;
    Ok(if report.is_ok() && !nothing_deleted {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn record(
    g: &Global,
    file: &std::path::Path,
    duration: Option<Duration>,
    force: bool,
    recent: bool,
) -> Result<ExitCode> {
    if g.replay.is_some() {
        return Err(Error::live_only("record reads the live kernel").into());
    }
    let mut source = open_live(g, true)?;
    if recent {
        // Recency state has no events: snapshots go into the recording on a timer.
        source.sample_recent(g.netns.clone())?;
    }
    let source = Box::new(source);
    let writer = engine::record::Writer::create(file, force)?;
    catch_stop_signals()?;
    let opts = Options {
        record: Some(writer),
        ..engine_options()
    };
    let (rx, handle) = Engine::spawn(source, opts)?;
    let deadline = duration.map(|d| Instant::now() + d);
    let mut store = Store::new();
    // Every frame goes to the file (dumps, events, re-dumps and re-check answers, each
    // under its own kind), so a replay rebuilds the same stream, resyncs included.
    let (mut events, mut overruns, mut redumps, mut dumps) = (0u64, 0u64, 0u64, 0u64);
    eprintln!(
        "ctscope: recording to '{}'{}",
        file.display(),
        if duration.is_some() {
            ""
        } else {
            " (Ctrl-C to stop)"
        }
    );
    loop {
        if STOP.load(Ordering::SeqCst) || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(EngineEvent::Fatal(msg)) => anyhow::bail!("{msg}"),
            Ok(ev) => {
                if let EngineEvent::Records(b) = &ev {
                    events += b.iter().filter(|(e, _)| *e != Event::Dump).count() as u64;
                }
                match ev {
                    EngineEvent::Overrun => overruns += 1,
                    EngineEvent::DumpEnd { .. } => {
                        redumps += u64::from(dumps > 0);
                        dumps += 1;
                    }
                    _ => {}
                }
                engine::apply(&mut store, ev, handle.now());
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    handle.stop();
    eprintln!(
        "ctscope: recorded {events} events, {overruns} overruns and {redumps} re-dumps; the table held {} flows and {} expectations at the end",
        store.flow_count(),
        store.expect_count()
    );
    Ok(ExitCode::SUCCESS)
}
