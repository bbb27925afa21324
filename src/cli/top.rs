//! `ctscope top`: who fills the table, headless. One dump grouped by a key and printed once,
//! or (`--interval`) the dump followed by the event stream, reprinted every interval with
//! new/destroyed rates. The grouping is `model::top`; this file only drives it and prints.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use anyhow::Result;

use clap::Args;
use serde_json::json;

use super::args::{FilterArgs, Global};
use super::commands::{catch_stop_signals, compile_filter, namespace, open_source, STOP};
use crate::engine::{self, Engine, EngineEvent, Speed};
use crate::error::Error;
use crate::filter::Filter;
use crate::model::store::FlowKey;
use crate::model::top::{GroupBy, Row, Sort, Top};
use crate::model::Store;
use crate::model::{Event, Record};

/// `ctscope top` options.
#[derive(Debug, Args, Clone)]
pub struct TopArgs {
    /// Group by: src, dst, dport, src-net (/24, /64), zone, mark, helper, state (protocol
    /// and state), nat (DNAT backend or SNAT address).
    #[arg(long, default_value = "src", value_parser = parse_by, value_name = "KEY")]
    pub by: GroupBy,
    /// How many groups to print.
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub limit: usize,
    /// Sort by: count, unreplied, new, destroyed, bytes or key.
    #[arg(long, default_value = "count", value_parser = parse_sort, value_name = "COLUMN")]
    pub sort: Sort,
    /// Follow events and reprint every DURATION (e.g. 2s), with new/destroyed rates.
    #[arg(long, value_name = "DURATION", value_parser = interval)]
    pub interval: Option<Duration>,
    /// With --interval: stop after this many reprints.
    #[arg(long, value_name = "N", requires = "interval")]
    pub count: Option<u64>,
    /// One JSON object (with --interval: one per line).
    #[arg(long, conflicts_with = "ndjson")]
    pub json: bool,
    /// One JSON object per line (per reprint).
    #[arg(long)]
    pub ndjson: bool,
    #[command(flatten)]
    pub filter: FilterArgs,
}

fn parse_by(s: &str) -> Result<GroupBy, String> {
    GroupBy::parse(s).ok_or_else(|| {
        let names: Vec<_> = GroupBy::ALL.iter().map(|b| b.name()).collect();
        format!("unknown key '{s}' (one of {})", names.join(", "))
    })
}

fn parse_sort(s: &str) -> Result<Sort, String> {
    Sort::parse(s).ok_or_else(|| format!("unknown column '{s}' ({})", Sort::NAMES.join(", ")))
}

fn interval(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s).map_err(|e| e.to_string())?;
    if d < Duration::from_millis(100) || d > Duration::from_secs(86_400) {
        return Err("between 100ms and 24h".into());
    }
    Ok(d)
}

pub fn run(g: &Global, a: TopArgs) -> Result<ExitCode> {
    let filter = compile_filter(&a.filter)?;
    if super::stale::needs_store(&filter) {
        return Err(Error::usage_hint(
            "'top' groups flows as they come; 'stale' is not available here",
            "ctscope list --filter stale",
        )
        .into());
    }
    let max = if g.replay.is_some() {
        None
    } else {
        crate::netlink::netns::read_sysctl(&namespace(g), "net/netfilter/nf_conntrack_max")
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    let json = a.json || a.ndjson;
    let mut out = BufWriter::new(io::stdout().lock());
    let Some(every) = a.interval else {
        // The table as `list` sees it (a recording: played to its end).
        let sel = super::pushdown::Selection::Flows {
            filter: &filter,
            children: false,
        };
        let (store, now, _source) = super::commands::load_selected(g, false, sel)?;
        let mut top = Top::new(a.by);
        rebuild(&mut top, &store, now, &filter, a.limit);
        print(&mut out, &top, &a, now, max, json)?;
        return Ok(ExitCode::SUCCESS);
    };
    catch_stop_signals()?;
    let source = open_source(g, true, Speed::Fast)?;
    let (rx, handle) = Engine::spawn(source, Options::default())?;
    let mut store = Store::new();
    let mut top = Top::new(a.by);
    let mut printed = 0u64;
    let mut dumped = false;
    let mut next = Instant::now() + every;
    let mut last_tick = Instant::now();
    loop {
        if STOP.load(Ordering::SeqCst) {
            break;
        }
        let now = handle.now();
        if last_tick.elapsed() >= Duration::from_secs(1) {
            engine::tick_with(&mut store, &handle, now, &mut |_| {});
            last_tick = Instant::now();
        }
        if dumped && Instant::now() >= next {
            rebuild(&mut top, &store, now, &filter, a.limit);
            if print(&mut out, &top, &a, now, max, json).is_err() {
                break; // a closed pipe ends the command quietly
            }
            printed += 1;
            next += every;
            if a.count.is_some_and(|c| printed >= c) {
                break;
            }
        }
        let wait = next
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(100));
        let ev = match rx.recv_timeout(wait) {
            Ok(ev) => ev,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        match ev {
            EngineEvent::Fatal(msg) => anyhow::bail!("{msg}"),
            EngineEvent::Records(batch) => {
                for (event, record) in batch {
                    // A DESTROY carries no helper nor master: filter the flow the store
                    // knew, as `observe` groups it.
                    let keep = match &record {
                        Record::Flow(f) => {
                            let known = store
                                .flow(&FlowKey::of(f))
                                .filter(|_| event == Event::Destroy);
                            filter.match_flow(known.unwrap_or(f), now)
                        }
                        Record::Expect(_) => false,
                    };
                    if keep {
                        top.observe(&store, event, &record, now);
                    }
                    store.apply(event, record, now);
                }
            }
            EngineEvent::DumpEnd { flows, expects } => {
                dumped = true;
                engine::apply(&mut store, EngineEvent::DumpEnd { flows, expects }, now);
            }
            ev => {
                engine::apply(&mut store, ev, now);
            }
        }
    }
    handle.stop();
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

use crate::engine::Options;

/// One pass, ranked up to the rows printed: a million distinct sources are a million
/// groups, and sorting them all by lookups in the counts took longer than the pass.
fn rebuild(top: &mut Top, store: &Store, now: u32, filter: &Filter, limit: usize) {
    if filter.is_empty() {
        top.rebuild_where(store, now, limit, |_| true);
    } else {
        top.rebuild_where(store, now, limit, |f| filter.match_flow(f, now));
    }
}

fn print(
    out: &mut impl Write,
    top: &Top,
    a: &TopArgs,
    now: u32,
    max: Option<u64>,
    json: bool,
) -> io::Result<()> {
    let rows = top.rows(a.sort, a.limit, now);
    // A one-shot dump saw no events: its rates are unknown, not zero.
    let rates = a.interval.is_some();
    if json {
        let rows: Vec<_> = rows.iter().map(|r| row_json(r, max, rates)).collect();
        let doc = json!({
            "by": top.by().name(),
            "flows": top.total(),
            "max": max,
            "groups": top.groups(),
            "window_secs": crate::model::top::WINDOW,
            "rows": rows,
        });
        writeln!(out, "{doc}")?;
        return out.flush();
    }
    let share = |r: &Row| max.map_or("-".to_owned(), |m| format!("{:.1}%", 100.0 * r.share_of(m)));
    let rate = |v: f64| {
        if rates {
            format!("{v:.1}")
        } else {
            "-".to_owned()
        }
    };
    writeln!(
        out,
        "top by {}: {} flow{} in {} group{}{}",
        top.by().name(),
        top.total(),
        if top.total() == 1 { "" } else { "s" },
        top.groups(),
        if top.groups() == 1 { "" } else { "s" },
        max.map_or(String::new(), |m| format!(", nf_conntrack_max {m}"))
    )?;
    let width = rows
        .iter()
        .map(|r| r.label.chars().count())
        .max()
        .unwrap_or(5)
        .max(5);
    writeln!(
        out,
        "{:<width$} {:>8} {:>6} {:>8} {:>7} {:>7} {:>10}  FILTER",
        "GROUP", "FLOWS", "%MAX", "UNREPL", "NEW/s", "DEST/s", "BYTES/s"
    )?;
    for r in &rows {
        writeln!(
            out,
            "{:<width$} {:>8} {:>6} {:>8} {:>7} {:>7} {:>10}  {}",
            crate::escape::Escaped(&r.label),
            r.flows,
            share(r),
            r.unreplied,
            rate(r.new_per_s),
            rate(r.destroyed_per_s),
            r.bytes_per_s.map_or("-".to_owned(), |b| format!("{b:.0}")),
            r.filter.as_deref().unwrap_or("-"),
        )?;
    }
    if rates {
        writeln!(out)?;
    }
    out.flush()
}

fn row_json(r: &Row, max: Option<u64>, rates: bool) -> serde_json::Value {
    json!({
        "group": r.label,
        "flows": r.flows,
        "share_of_max": max.map(|m| r.share_of(m)),
        "unreplied": r.unreplied,
        "unreplied_share": r.unreplied_share(),
        "new_per_s": rates.then_some(r.new_per_s),
        "destroyed_per_s": rates.then_some(r.destroyed_per_s),
        "bytes_per_s": r.bytes_per_s,
        "filter": r.filter,
    })
}
