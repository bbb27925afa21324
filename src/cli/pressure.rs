//! Table pressure from the command line: `ctscope stats` (`conntrack -S`, `-S expect`),
//! `ctscope count` (`conntrack -C`, `-C expect`) and `ctscope list --dying|--unconfirmed`
//! (`conntrack -L dying|unconfirmed`). All of them ask the live kernel; a recording holds
//! no counters and no special lists, so `--replay` is a usage error here.
//!
//! The special lists: an empty answer is not always the truth. Linux 5.19 removed the
//! unconfirmed list (commit 8a75a2c17410 "netfilter: conntrack: remove unconfirmed list":
//! `ctnetlink_dump_unconfirmed` became `return 0`), so the kernel answers that request with
//! no entries whatever happens; ctscope says so and exits `EXIT_LIST_UNAVAILABLE` instead of
//! printing an empty list. Since 5.19 the dying dump lists only the entries whose DESTROY
//! event is waiting for redelivery (commit 1397af5bfd7d), which the stderr line says.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use anyhow::{Context as _, Result};

use super::args::{FilterArgs, FormatArgs, Global};
use super::commands::{compile_filter, format_of, namespace};
use crate::decode::{self, Message};
use crate::error::{Error, Hint};
use crate::model::stats::Stats;
use crate::model::Record;
use crate::netlink::special::List;
use crate::netlink::{Conn, Table};
use crate::output::{self, FlowView, Outcome};

/// Exit status when the kernel cannot list a special table (refused it, or has no such
/// list any more): distinct from 1 (failure) and 2 (usage).
pub const EXIT_LIST_UNAVAILABLE: u8 = 3;

fn live_conn(g: &Global, what: &str) -> Result<Conn> {
    if g.replay.is_some() {
        return Err(Error::live_only(format!(
            "'{what}' reads the live kernel's counters and special lists"
        ))
        .into());
    }
    Ok(Conn::open(&namespace(g))?)
}

/// Read every counter `ctscope stats` shows (`engine::read_stats`, which the dashboard's
/// engine also answers `Command::Stats` with).
pub fn read_stats(conn: &mut Conn) -> Result<Stats> {
    Ok(crate::engine::read_stats(conn)?)
}

/// `ctscope stats [--expect] [--json]`.
pub fn stats(g: &Global, expect: bool, json: bool) -> Result<ExitCode> {
    let mut conn = live_conn(g, "stats")?;
    let s = read_stats(&mut conn)?;
    write_or_closed(|out| output::stats::write(out, &s, expect, json))
}

/// `ctscope count [--expect] [--json]`: flows from the kernel's global count (what
/// `conntrack -C` reads), expectations by counting a dump of both families.
pub fn count(g: &Global, expect: bool, json: bool) -> Result<ExitCode> {
    let mut conn = live_conn(g, "count")?;
    let (count, max) = if expect {
        let mut n = 0u64;
        conn.dump(Table::Expects, &mut |_| n += 1)?;
        (n, None)
    } else {
        match conn.stats_global()? {
            Some(m) => {
                let gl = decode::stats::global(&m).context("decoding the kernel's count")?;
                (u64::from(gl.entries), Some(gl.max_entries))
            }
            None => anyhow::bail!("the kernel answered the count request with no count"),
        }
    };
    write_or_closed(|out| {
        if json {
            let v = match max {
                Some(m) => serde_json::json!({"count": count, "max": m}),
                None => serde_json::json!({"count": count}),
            };
            writeln!(out, "{v}")
        } else {
            writeln!(out, "{count}")
        }
    })
}

/// `ctscope list --dying|--unconfirmed`: the kernel's special list, filtered like `list`.
pub fn list_special(
    g: &Global,
    list: List,
    f: &FilterArgs,
    format: FormatArgs,
) -> Result<ExitCode> {
    let filter = compile_filter(f)?;
    let mut conn = live_conn(g, list.name())?;
    let mut raw = Vec::new();
    let got = conn.dump_list(list, &mut |m| raw.push(m.to_vec()));
    match got {
        Err(Error::Netlink { errno, .. }) => {
            eprintln!(
                "ctscope: this kernel does not list '{}' entries ({}){}",
                list.name(),
                std::io::Error::from_raw_os_error(errno),
                Hint(Some(&format!(
                    "the kernel refused IPCTNL_MSG_CT_GET_{}",
                    list.name().to_uppercase()
                )))
            );
            return Ok(ExitCode::from(EXIT_LIST_UNAVAILABLE));
        }
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    if raw.is_empty() && list == List::Unconfirmed {
        // Since Linux 5.19 the kernel keeps no such list and always answers empty: say
        // so, never "0 entries". An older kernel that answers with entries is shown.
        eprintln!(
            "ctscope: this kernel keeps no 'unconfirmed' list (removed in Linux 5.19); its empty answer says nothing{}",
            Hint(Some("an unconfirmed entry lives only on its first packet until that packet is accepted"))
        );
        return Ok(ExitCode::from(EXIT_LIST_UNAVAILABLE));
    }
    let stdout = io::stdout().lock();
    let mut w = output::Writer::new(BufWriter::new(stdout), format_of(format));
    let mut undecodable = 0usize;
    for m in &raw {
        match decode::message(m) {
            Ok((
                Message::Record {
                    record: Record::Flow(fl),
                    ..
                },
                _,
            )) => {
                if filter.match_flow(&fl, 0) && w.flow(&FlowView::of(&fl, 0))? == Outcome::Closed {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Ok(_) => {}
            Err(_) => undecodable += 1,
        }
    }
    let _ = w.finish()?;
    if undecodable > 0 {
        eprintln!("ctscope: {undecodable} message(s) could not be decoded and are not shown");
    }
    if format_of(format).is_line() {
        eprintln!(
            "ctscope: {} {} entries have been shown.",
            w.count(),
            list.name()
        );
        if list == List::Dying {
            eprintln!("ctscope: the kernel's dying list holds only entries whose DESTROY event awaits redelivery to a listener");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Run a writer over stdout; a closed pipe is a clean exit 0.
fn write_or_closed(f: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<ExitCode> {
    let mut out = io::stdout().lock();
    match f(&mut out) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(e.into()),
    }
}
