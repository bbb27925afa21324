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
use super::Usage;
use crate::actions::{self, Context, Plan};
use crate::decode::{Event, Record};
use crate::engine::{self, Engine, EngineEvent, Live, Options, Replay, Source, Speed};
use crate::filter::{self, ConntrackFlags, Filter, TextSource};
use crate::model::store::{ExpectKey, FlowKey};
use crate::model::Store;
use crate::netlink::Namespace;
use crate::output::{self, EntryView, ExpectView, FlowView, Outcome, WatchLine};

pub fn run(cli: Cli) -> Result<ExitCode> {
    let g = cli.global;
    super::init_risk(&g);
    match cli.command {
        None => super::tui_main(&g),
        Some(Command::List {
            expect,
            filter,
            format,
        }) => list(&g, expect, &filter, format),
        Some(Command::Watch {
            flows_only,
            expect_only,
            count,
            duration,
            filter,
            format,
        }) => watch(
            &g,
            !expect_only,
            !flows_only,
            count,
            duration,
            &filter,
            format,
        ),
        Some(Command::Delete {
            expect,
            filter,
            act,
        }) => delete(&g, expect, &filter, act),
        Some(Command::Flush {
            expect,
            filter,
            act,
        }) => flush(&g, expect, &filter, act),
        Some(Command::Record { file, duration }) => record(&g, &file, duration),
        Some(Command::Audit { opts }) => super::audit_main(&g, opts),
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
    Ok(Box::new(Live::open(&namespace(g), follow)?))
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
    let flags = ConntrackFlags {
        proto: f.proto.clone(),
        family: f.family.clone(),
        src: f.src.clone(),
        dst: f.dst.clone(),
        sport: f.sport.map(|p| p.to_string()),
        dport: f.dport.map(|p| p.to_string()),
        zone: f.zone.map(|z| z.to_string()),
        mark: f.mark.clone(),
        status: f.status.clone(),
        helper: f.helper.clone(),
        label: (!f.label.is_empty()).then(|| f.label.join(",")),
        related: f.related,
    };
    let from_flags = filter::from_conntrack_flags(&flags).map_err(|e| {
        // `-f` meant the filter expression before it meant the family, as in conntrack(8).
        if e.message.starts_with("-f: unknown family") {
            Usage(format!(
                "{}\nhint: -f is the address family, as in conntrack(8); a filter expression is -F/--filter",
                e.message
            ))
        } else {
            Usage(e.message)
        }
    })?;
    let expr = match f.filter.as_deref() {
        Some(src) => Filter::parse(src)
            .map_err(|e| Usage(format!("bad --filter expression:\n{}", e.render(src))))?,
        None => Filter::all(),
    };
    Ok(from_flags.and(expr).with_text(PRINTED))
}

fn format_of(f: FormatArgs) -> output::Format {
    if f.json {
        output::Format::Json
    } else if f.ndjson {
        output::Format::Ndjson
    } else {
        output::Format::Text
    }
}

/// Fill a fresh store: live, one dump of both tables (the `list`, `delete` and `flush`
/// starting point); from a recording, the whole recording played to its end — its dump
/// and every event after it — so `list --replay` shows the table as the recording left it,
/// the same state the dashboard shows when the replay ends.
fn load(g: &Global) -> Result<(Store, u32, Box<dyn Source>)> {
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
    let mut store = sized_store(g);
    let mut source = open_source(g, false, Speed::Fast)?;
    let now = source.clock().now();
    let stats = engine::load(source.as_mut(), &mut store, now)?;
    if stats.decode_errors > 0 {
        eprintln!(
            "ctscope: {} message(s) could not be decoded and are not shown",
            stats.decode_errors
        );
    }
    let now = source.clock().now();
    Ok((store, now, source))
}

fn list(g: &Global, expect: bool, f: &FilterArgs, format: FormatArgs) -> Result<ExitCode> {
    let filter = compile_filter(f)?;
    let (store, now, _source) = load(g)?;
    let stdout = io::stdout().lock();
    let mut w = output::Writer::new(BufWriter::with_capacity(1 << 16, stdout), format_of(format));
    if expect {
        for e in store.expectations() {
            if filter.match_expect(e, now) {
                let v = super::annotate_expect(&store, ExpectView::of(e, now), e);
                if w.expectation(&v)? == Outcome::Closed {
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
    } else {
        for fl in store.flows() {
            if filter.match_flow(fl, now) {
                let v = super::annotate_flow(&store, FlowView::of(fl, now), fl);
                if w.flow(&v)? == Outcome::Closed {
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
    }
    let _ = w.finish()?;
    if matches!(format_of(format), output::Format::Text) {
        let what = if expect { "expectation" } else { "flow" };
        eprintln!("ctscope: {} {what} entries have been shown.", w.count());
    }
    Ok(ExitCode::SUCCESS)
}

/// Set by SIGINT/SIGTERM/SIGHUP in headless follow modes, so `watch` and `record` end
/// cleanly (flushing their output) instead of dying mid-line.
static STOP: LazyLock<Arc<AtomicBool>> = LazyLock::new(|| Arc::new(AtomicBool::new(false)));

/// signal-hook installs the handlers with sigaction (no `signal(2)` semantics to worry
/// about) and its handler only stores to the flag, which is async-signal-safe.
fn catch_stop_signals() -> Result<()> {
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
    f: &FilterArgs,
    format: FormatArgs,
) -> Result<ExitCode> {
    let filter = compile_filter(f)?;
    let source = open_source(g, true, Speed::Fast)?;
    catch_stop_signals()?;
    let (rx, handle) = Engine::spawn(source, Options::default())?;
    let mut store = Store::new();
    let stdout = io::stdout().lock();
    let mut w = output::Writer::new(BufWriter::new(stdout), format_of(format));
    let deadline = duration.map(|d| Instant::now() + d);
    let mut printed = 0u64;
    let mut last_tick = Instant::now();
    loop {
        if STOP.load(Ordering::SeqCst) || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let ev = match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(ev) => ev,
            Err(RecvTimeoutError::Timeout) => {
                if last_tick.elapsed() >= Duration::from_secs(1) {
                    engine::tick(&mut store, &handle, handle.now());
                    last_tick = Instant::now();
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let now = handle.now();
        match ev {
            EngineEvent::Records(batch) => {
                for (event, record) in batch {
                    if event == Event::Dump {
                        store.apply(event, record, now);
                        continue;
                    }
                    // A DESTROY is shown as the store knew the entry; NEW and UPDATE as the
                    // store holds it after merging (an UPDATE may omit unchanged attributes
                    // such as labels, helper or master).
                    let line = if event == Event::Destroy {
                        let line = watch_line(&store, event, &record, now, &filter, flows, expects);
                        store.apply(event, record, now);
                        line
                    } else {
                        let key = Key::of(&record);
                        store.apply(event, record, now);
                        key.get(&store).and_then(|r| {
                            watch_line(&store, event, &r, now, &filter, flows, expects)
                        })
                    };
                    if let Some(line) = line {
                        if w.watch(&line)? == Outcome::Closed {
                            return Ok(ExitCode::SUCCESS);
                        }
                        printed += 1;
                    }
                    if count.is_some_and(|c| printed >= c) {
                        let _ = w.finish()?;
                        return Ok(ExitCode::SUCCESS);
                    }
                }
            }
            EngineEvent::Overrun => {
                eprintln!("ctscope: the kernel dropped events (ENOBUFS); re-dumping to resync");
                engine::apply(&mut store, EngineEvent::Overrun, now);
            }
            EngineEvent::DecodeErrors(n) => {
                eprintln!("ctscope: {n} message(s) could not be decoded");
            }
            EngineEvent::Fatal(msg) => {
                let _ = w.finish();
                anyhow::bail!("{msg}");
            }
            other => {
                engine::apply(&mut store, other, now);
            }
        }
    }
    let _ = w.finish()?;
    handle.stop();
    Ok(ExitCode::SUCCESS)
}

/// Which entry a record is about, kept across `Store::apply` (which consumes the record).
enum Key {
    Flow(FlowKey),
    Expect(ExpectKey),
}

impl Key {
    fn of(r: &Record) -> Key {
        match r {
            Record::Flow(f) => Key::Flow(FlowKey::of(f)),
            Record::Expect(e) => Key::Expect(ExpectKey::of(e)),
        }
    }

    /// The store's merged entry, as a record to show.
    fn get(&self, store: &Store) -> Option<Record> {
        match self {
            Key::Flow(k) => store.flow(k).cloned().map(Record::Flow),
            Key::Expect(k) => store.expectation(k).cloned().map(Record::Expect),
        }
    }
}

/// The watch line for one event, or `None` when filtered out. A DESTROY carries only the
/// key, so it is shown with what the store knew of the entry (helper, master, …).
fn watch_line(
    store: &Store,
    event: Event,
    record: &Record,
    now: u32,
    filter: &Filter,
    flows: bool,
    expects: bool,
) -> Option<WatchLine> {
    match record {
        Record::Flow(fl) => {
            if !flows {
                return None;
            }
            let known = if event == Event::Destroy {
                store.flow(&FlowKey::of(fl))
            } else {
                None
            };
            let shown = known.unwrap_or(fl);
            if !filter.match_flow(shown, now) {
                return None;
            }
            let v = super::annotate_flow(store, FlowView::of(shown, now), shown);
            Some(WatchLine::new(event, EntryView::Flow(v)))
        }
        Record::Expect(e) => {
            if !expects {
                return None;
            }
            let known = if event == Event::Destroy {
                store.expectation(&ExpectKey::of(e))
            } else {
                None
            };
            let shown = known.unwrap_or(e);
            if !filter.match_expect(shown, now) {
                return None;
            }
            let v = super::annotate_expect(store, ExpectView::of(shown, now), shown);
            Some(WatchLine::new(event, EntryView::Expect(v)))
        }
    }
}

fn delete(g: &Global, expect: bool, f: &FilterArgs, act: ActArgs) -> Result<ExitCode> {
    let filter = compile_filter(f)?;
    if filter.is_empty() {
        return Err(Usage(
            "delete needs a filter (e.g. -p tcp --dport 21, or --filter EXPR)\n\
             hint: to remove everything use 'ctscope flush'"
                .into(),
        )
        .into());
    }
    let (store, now, source) = load(g)?;
    let ctx = context(g, act);
    let plan = if expect {
        let what = format!("expectations matching '{}'", filter.source());
        Plan::expectations(&store, &|e| filter.match_expect(e, now), &what)
    } else {
        let what = format!("flows matching '{}'", filter.source());
        Plan::flows(&store, &|fl| filter.match_flow(fl, now), &what, &ctx)
    };
    confirm_and_execute(plan, act, source)
}

fn flush(g: &Global, expect: bool, f: &FilterArgs, act: ActArgs) -> Result<ExitCode> {
    if let Some(h) = &f.helper {
        check_helper(h)?;
    }
    let filter = compile_filter(f)?;
    let (store, now, source) = load(g)?;
    let ctx = context(g, act);
    let plan = if expect {
        match (&f.helper, filter.is_empty()) {
            (Some(h), _) if only_helper(f) => Plan::flush_helper(&store, h),
            (_, true) => Plan::flush_expects(&store),
            _ => {
                return Err(Usage(
                    "flush --expect takes only --helper NAME\n\
                     hint: to remove selected expectations, use the dashboard or flush by helper"
                        .into(),
                )
                .into())
            }
        }
    } else if filter.is_empty() {
        Plan::flush_flows(&store, &ctx)
    } else {
        let what = format!("flows matching '{}'", filter.source());
        Plan::flows(&store, &|fl| filter.match_flow(fl, now), &what, &ctx)
    };
    confirm_and_execute(plan, act, source)
}

/// Whether `--helper` is the only selection given.
fn only_helper(f: &FilterArgs) -> bool {
    f.filter.is_none()
        && f.family.is_none()
        && f.label.is_empty()
        && f.proto.is_none()
        && f.src.is_none()
        && f.dst.is_none()
        && f.sport.is_none()
        && f.dport.is_none()
        && f.zone.is_none()
        && f.mark.is_none()
        && f.status.is_none()
        && !f.related
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
    Err(Usage(format!(
        "unknown helper '{name}'\nhint: kernel helpers are {}",
        KNOWN_HELPERS.join(", ")
    ))
    .into())
}

fn context(g: &Global, act: ActArgs) -> Context {
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

/// Print the plan, ask (or require `--yes`), run it, print the report.
fn confirm_and_execute(plan: Plan, act: ActArgs, mut source: Box<dyn Source>) -> Result<ExitCode> {
    let mut err = io::stderr().lock();
    writeln!(err, "{}", plan.describe())?;
    if plan.is_empty() {
        writeln!(err, "ctscope: nothing to remove")?;
        return Ok(ExitCode::SUCCESS);
    }
    if act.dry_run {
        writeln!(err, "ctscope: dry run, nothing removed")?;
        return Ok(ExitCode::SUCCESS);
    }
    if !act.yes {
        if !io::stdin().is_terminal() {
            return Err(Usage(
                "refusing to remove without confirmation: stdin is not a terminal\n\
                 hint: add --yes, or --dry-run to see what would go"
                    .into(),
            )
            .into());
        }
        write!(err, "Proceed? [y/N] ")?;
        err.flush()?;
        let mut answer = String::new();
        io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            writeln!(err, "ctscope: nothing removed")?;
            return Ok(ExitCode::SUCCESS);
        }
    }
    let conn = source.conn().context("cannot act")?;
    let report = actions::execute(conn, &plan);
    writeln!(err, "{report}")?;
    Ok(if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn record(g: &Global, file: &std::path::Path, duration: Option<Duration>) -> Result<ExitCode> {
    if g.replay.is_some() {
        return Err(Usage("record reads the live kernel; drop --replay".into()).into());
    }
    let source = open_source(g, true, Speed::Fast)?;
    let writer = engine::record::Writer::create(file)?;
    catch_stop_signals()?;
    let opts = Options {
        record: Some(writer),
        ..Options::default()
    };
    let (rx, handle) = Engine::spawn(source, opts)?;
    let deadline = duration.map(|d| Instant::now() + d);
    let mut store = Store::new();
    let (mut events, mut overruns) = (0u64, 0u64);
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
                if matches!(ev, EngineEvent::Overrun) {
                    overruns += 1;
                }
                engine::apply(&mut store, ev, handle.now());
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
    handle.stop();
    eprintln!(
        "ctscope: recorded {events} events and {overruns} overruns; the table held {} flows and {} expectations at the end",
        store.flow_count(),
        store.expect_count()
    );
    Ok(ExitCode::SUCCESS)
}
