//! `ctscope recent`: show recency state (xt_recent lists, nft dynamic sets), the knock
//! machine and each source's progress, with the live flows the last stage let in (or, with
//! `--replay FILE [--at D]`, the same from a recording's snapshots and flows); and
//! `recent delete NAME ADDR` / `recent flush NAME`, under the same confirmation rules as
//! `delete` and `flush` (`--dry-run`, `--yes`, the admin's SSH address spared unless
//! `--include-own-ssh`).
//!
//! Everything that reads or writes state runs inside `--netns` (`recent::snapshot`,
//! `netns::run_in`). Names and elements printed here come from outside and are escaped
//! (`shown`); JSON keeps them exact.

use std::collections::BTreeSet;
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Result;

use super::args::{ActArgs, Global, RecentAction};
use crate::actions::Target;
use crate::engine::{self, Engine, EngineEvent, Live, Options, Replay, Speed};
use crate::error::{Error, Hint};
use crate::model::recent::RecentState;
use crate::model::Store;
use crate::netlink::{netns, Namespace};
use crate::recent::act::ListRef;
use crate::recent::{self, procfs, Lang, RecentError, Snapshot};

pub fn main(
    g: &Global,
    action: Option<RecentAction>,
    json: bool,
    at: Option<Duration>,
) -> Result<ExitCode> {
    if let (Some(path), None) = (&g.replay, &action) {
        return replayed(path, at, json);
    }
    if g.replay.is_some() {
        return Err(Error::usage_hint(
            "recent delete and flush change the live lists; a recording cannot be changed",
            "drop --replay",
        )
        .into());
    }
    if at.is_some() {
        return Err(Error::usage_hint(
            "--at picks a moment of a recording",
            "add --replay FILE, or drop --at",
        )
        .into());
    }
    let ns = super::commands::namespace(g);
    match action {
        None => show(g, &ns, json),
        Some(RecentAction::Delete { name, addr, act }) => {
            procfs::check_name(&name).map_err(|e| Error::usage(e.to_string()))?;
            let addr: IpAddr = addr.parse().map_err(|_| {
                Error::usage(format!("'{}' is not an IPv4 or IPv6 address", shown(&addr)))
            })?;
            act_on(&ns, &name, Some(addr.to_canonical()), act)
        }
        Some(RecentAction::Flush { name, act }) => {
            procfs::check_name(&name).map_err(|e| Error::usage(e.to_string()))?;
            act_on(&ns, &name, None, act)
        }
    }
}

/// An outside string (list, set and table names, rule text) as the terminal may show it:
/// through the crate's one sanitizer, so a crafted set name cannot move the cursor.
pub fn shown(s: &str) -> String {
    crate::escape::escape(s).into_owned()
}

/// The live flows of `ns` (one dump); empty when the table cannot be read (the lists
/// still show).
fn flows(ns: &Namespace) -> (Store, Option<String>) {
    let mut store = Store::new();
    let r = Live::open(ns, false).and_then(|mut l| engine::load(&mut l, &mut store, 0));
    (store, r.err().map(|e| e.to_string()))
}

fn show(g: &Global, ns: &Namespace, json: bool) -> Result<ExitCode> {
    let snap = recent::snapshot(ns)?;
    let (store, ct_err) = flows(ns);
    let admitted = snap.admitted(store.flows());
    print(
        &snap,
        &admitted,
        ct_err.as_deref(),
        g.netns.as_deref(),
        None,
        json,
    )
}

/// `recent --replay FILE [--at D]`: play the recording (flows and recency snapshots, in
/// recorded order) up to `at` into a store and a `RecentState`, then print the last
/// snapshot as the live command would, with the flows its last stages let in taken from
/// the replayed table at that moment. No privilege needed.
fn replayed(path: &Path, at: Option<Duration>, json: bool) -> Result<ExitCode> {
    let source = Replay::open(path, Speed::Fast)?;
    let start = source.recorded_start();
    let limit = at.map(|d| start.saturating_add(d.as_nanos() as u64));
    let (rx, handle) = Engine::spawn(Box::new(source), Options::default())?;
    let mut store = Store::new();
    let mut state = RecentState::new();
    let mut received = start;
    let name = shown(&path.display().to_string());
    let now = |t: u64| (t.saturating_sub(start) / 1_000_000_000) as u32;
    for ev in rx.iter() {
        match ev {
            EngineEvent::Received(t) => {
                if limit.is_some_and(|l| t > l) {
                    break;
                }
                received = t;
            }
            EngineEvent::Fatal(m) => anyhow::bail!("{m}"),
            EngineEvent::Recent(s) => state.apply(*s, received),
            EngineEvent::RecentDamaged(m) => {
                eprintln!("ctscope: '{name}': {m}");
                state.note_damaged(m);
            }
            EngineEvent::DecodeErrors(n) => {
                eprintln!("ctscope: {n} message(s) could not be decoded and are not shown")
            }
            ev => {
                engine::apply(&mut store, ev, now(received));
            }
        }
    }
    handle.stop();
    let end = limit.map_or(received, |l| l.max(received));
    store.expire_expectations(now(end));
    let (Some(snap), Some(taken)) = (state.snapshot(), state.at()) else {
        let when = at.map_or(String::new(), |d| {
            format!(" in its first {}", humantime::format_duration(d))
        });
        anyhow::bail!(
            "recording '{name}' holds no recency snapshot{when}\nhint: 'ctscope record' takes them (every 1-10 s) unless given --no-recent; recordings made before version 2 of the format have none"
        );
    };
    let admitted = snap.admitted(store.flows());
    let offset = taken.saturating_sub(start) as f64 / 1e9;
    print(snap, &admitted, None, None, Some((&name, offset)), json)
}

/// Print a snapshot as text or JSON; `replay` is the recording and how far into it the
/// snapshot was taken.
fn print(
    snap: &Snapshot,
    admitted: &[recent::Admitted],
    ct_err: Option<&str>,
    netns: Option<&str>,
    replay: Option<(&str, f64)>,
    json: bool,
) -> Result<ExitCode> {
    let out = io::stdout().lock();
    let mut w = BufWriter::new(out);
    let written = if json {
        let mut v = recent::to_json(snap, admitted, netns);
        if let (Some(e), Some(u)) = (ct_err, v["unreadable"].as_array_mut()) {
            u.push(format!("conntrack: {e}").into());
        }
        if let (Some((_, offset)), Some(o)) = (replay, v.as_object_mut()) {
            o.insert(
                "replay_offset_s".into(),
                ((offset * 1000.0).round() / 1000.0).into(),
            );
        }
        serde_json::to_writer_pretty(&mut w, &v)
            .map_err(io::Error::other)
            .and_then(|_| writeln!(w))
    } else {
        let head = replay.map_or(String::new(), |(name, offset)| {
            format!(
                "Recorded in '{name}', {offset:.1} s in ({})\n\n",
                humantime::format_rfc3339_seconds(snap.clock.at)
            )
        });
        w.write_all(head.as_bytes())
            .and_then(|_| w.write_all(text(snap, admitted, ct_err).as_bytes()))
    };
    match written.and_then(|_| w.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(ExitCode::SUCCESS),
    }
}

fn secs(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.1} s")
    } else {
        format!("{x:.0} s")
    }
}

/// The text report.
fn text(s: &Snapshot, admitted: &[recent::Admitted], ct_err: Option<&str>) -> String {
    use std::fmt::Write as _;
    let c = &s.clock;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "xt_recent lists (HZ {} from {})",
        c.hz,
        serde_json::to_value(c.hz_from)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    );
    match &s.lists {
        Err(e) => {
            let _ = writeln!(o, "  none: {}", e.replace('\n', "\n  "));
        }
        Ok(ls) if ls.is_empty() => {
            let _ = writeln!(o, "  none");
        }
        Ok(ls) => {
            for l in ls {
                let _ = writeln!(o, "  {}: {} address(es)", shown(&l.name), l.entries.len());
                for e in &l.entries {
                    let when = humantime::format_rfc3339_seconds(c.when(e.last_seen));
                    let _ = writeln!(
                        o,
                        "    {}  hits {}  last seen {} ago ({when})  ttl {}",
                        e.addr,
                        e.stamps.len(),
                        secs(c.age(e.last_seen).as_secs_f64()),
                        e.ttl
                    );
                }
            }
        }
    }
    let _ = writeln!(o, "\nnft dynamic sets");
    match &s.sets {
        Err(e) => {
            let _ = writeln!(o, "  could not read: {e}");
        }
        Ok(ss) if ss.is_empty() => {
            let _ = writeln!(o, "  none");
        }
        Ok(ss) => {
            for x in ss {
                let _ = writeln!(
                    o,
                    "  {} {}{}: {} element(s)",
                    x.kind,
                    shown(&x.qualified()),
                    x.timeout
                        .map(|t| format!(" (timeout {})", secs(t)))
                        .unwrap_or_default(),
                    x.elements.len()
                );
                for e in &x.elements {
                    let _ = writeln!(
                        o,
                        "    {}{}{}{}",
                        shown(&e.key),
                        e.data
                            .as_deref()
                            .map(|d| format!(" : {}", shown(d)))
                            .unwrap_or_default(),
                        e.expires
                            .map(|t| format!("  expires in {}", secs(t)))
                            .unwrap_or_default(),
                        e.timeout
                            .map(|t| format!("  (timeout {})", secs(t)))
                            .unwrap_or_default()
                    );
                }
            }
        }
    }
    let _ = writeln!(o, "\nKnock sequences");
    if s.machines.is_empty() {
        let _ = writeln!(o, "  none found in the ruleset");
    }
    for m in &s.machines {
        let mut steps = Vec::new();
        for (i, st) in m.stages.iter().enumerate() {
            let by = st
                .entered_by
                .iter()
                .find(|e| match i {
                    0 => e.from.is_none(),
                    _ => e.from.as_deref() == Some(m.stages[i - 1].list.as_str()),
                })
                .map(|e| {
                    format!(
                        "{}{}",
                        e.packet.short(),
                        e.within
                            .map(|w| format!(" within {w} s"))
                            .unwrap_or_default()
                    )
                })
                .unwrap_or_else(|| "?".into());
            steps.push(format!("{by} → {}", shown(&st.list)));
        }
        for op in &m.opens {
            steps.push(format!(
                "{}{} opens",
                op.packet.short(),
                op.within
                    .map(|w| format!(" within {w} s"))
                    .unwrap_or_default()
            ));
        }
        let lang = match m.lang {
            Lang::Iptables => "iptables",
            Lang::Nft => "nft",
        };
        let _ = writeln!(
            o,
            "  {lang} {} ({} stages): {}",
            shown(&m.table),
            m.total(),
            steps.join(" → ")
        );
    }
    let progress = s.progress();
    let _ = writeln!(o, "\nProgress");
    if progress.is_empty() {
        let _ = writeln!(o, "  no source has knocked");
    }
    for (_, p) in &progress {
        let _ = writeln!(o, "  {}", shown(&p.text));
    }
    let _ = writeln!(o, "\nFlows the last stage let in");
    if let Some(e) = ct_err {
        let _ = writeln!(o, "  conntrack table unreadable: {e}");
    } else if admitted.is_empty() {
        let _ = writeln!(o, "  none");
    }
    for a in admitted {
        let _ = writeln!(
            o,
            "  {}  (admitted by {} in '{}')",
            a.flow,
            a.addr,
            shown(&a.list)
        );
    }
    for u in &s.unreadable {
        let _ = writeln!(o, "\ncould not read: {u}");
    }
    o
}

/// Where a name points.
enum Place {
    Xt(procfs::List),
    Nft(recent::nftset::Set),
}

/// Resolve `name` inside the namespace: an xt_recent list first, else an nft set or map by
/// name or `FAMILY:TABLE:NAME`.
fn resolve(snap: &Snapshot, name: &str) -> Result<Place> {
    if let Ok(ls) = &snap.lists {
        if let Some(l) = ls.iter().find(|l| l.name == name) {
            return Ok(Place::Xt(l.clone()));
        }
    }
    let sets = snap.sets.as_ref().map_err(|e| anyhow::anyhow!("{e}"))?;
    let found: Vec<_> = sets
        .iter()
        .filter(|s| s.name == name || format!("{}:{}:{}", s.family, s.table, s.name) == name)
        .collect();
    match found.as_slice() {
        [one] => Ok(Place::Nft((*one).clone())),
        [] => {
            if snap.lists.is_err() && sets.is_empty() {
                // Neither xt_recent nor any stateful set: say why the name is unknown.
                return Err(RecentError::NoXtRecent.into());
            }
            Err(RecentError::NoSuchList(name.to_owned()).into())
        }
        many => Err(Error::usage_hint(
            format!(
                "'{}' names a set in several tables: {}",
                shown(name),
                many.iter()
                    .map(|s| shown(&format!("{}:{}:{}", s.family, s.table, s.name)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "name one as FAMILY:TABLE:NAME",
        )
        .into()),
    }
}

/// Addresses that must not be removed without `--include-own-ssh`: the admin's SSH
/// client (found from the process tree or `SSH_CONNECTION`), or, when no session is known,
/// every address with a live flow to a local sshd (any could be the admin's).
fn protected(ns: &Namespace) -> BTreeSet<IpAddr> {
    let ctx = crate::actions::Context::detect(ns);
    if let Some(s) = ctx.ssh {
        return [s.client.to_canonical()].into_iter().collect();
    }
    if ctx.sshd.is_empty() {
        return BTreeSet::new();
    }
    let (store, _) = flows(ns);
    store
        .flows()
        .filter(|f| ctx.sshd.iter().any(|l| l.matches(f)))
        .map(|f| f.orig.src_ip().to_canonical())
        .collect()
}

fn act_on(ns: &Namespace, name: &str, addr: Option<IpAddr>, act: ActArgs) -> Result<ExitCode> {
    let snap = recent::snapshot(ns)?;
    let place = resolve(&snap, name)?;
    let held: Vec<IpAddr> = match &place {
        Place::Xt(l) => l.entries.iter().map(|e| e.addr).collect(),
        Place::Nft(s) => s
            .elements
            .iter()
            .filter_map(|e| e.key.parse::<IpAddr>().ok())
            .map(|a| a.to_canonical())
            .collect(),
    };
    let what = match &place {
        Place::Xt(l) => format!("xt_recent list '{}'", shown(&l.name)),
        Place::Nft(s) => format!("nft {} '{}'", s.kind, shown(&s.qualified())),
    };
    let count = match &place {
        Place::Xt(l) => l.entries.len(),
        Place::Nft(s) => s.elements.len(),
    };
    let mut err = io::stderr().lock();
    if let Some(a) = addr {
        if !held.contains(&a) {
            writeln!(err, "ctscope: '{a}' is not in {what}")?;
            return Ok(ExitCode::from(1));
        }
    }
    if !act.include_own_ssh {
        let mine = protected(ns);
        let hit: Vec<_> = match addr {
            Some(a) => mine.iter().filter(|m| **m == a).collect(),
            None => mine.iter().filter(|m| held.contains(m)).collect(),
        };
        if let Some(m) = hit.first() {
            writeln!(
                err,
                "ctscope: refusing: '{m}' in {what} is (or may be) your own SSH session's address; removing it can lock you out of the knock{}",
                Hint(Some("add --include-own-ssh if that is what you want"))
            )?;
            return Ok(ExitCode::from(1));
        }
    }
    let plan = match addr {
        Some(a) => format!("remove '{a}' from {what}"),
        None => format!(
            "flush {what} ({count} entr{})",
            if count == 1 { "y" } else { "ies" }
        ),
    };
    writeln!(err, "{plan}")?;
    if !super::commands::confirmed(act, &mut err)? {
        return Ok(ExitCode::SUCCESS);
    }
    // Execute the plan shown: the same list or set, inside the namespace.
    // The same code the dashboard's confirmed plans run in the engine (`recent::act`).
    let list = match &place {
        Place::Xt(l) => ListRef::Xt(l.name.clone()),
        Place::Nft(s) => ListRef::of_set(s),
    };
    let target = match addr {
        Some(addr) => Target::ListDelete { list, addr },
        None => Target::ListFlush(list),
    };
    let done = netns::run_in(ns, move || Ok(recent::act::run(&target).map(drop)))?;
    match done {
        Ok(()) => {
            writeln!(err, "ctscope: done: {plan}")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            writeln!(err, "ctscope: {e}")?;
            Ok(ExitCode::from(1))
        }
    }
}
