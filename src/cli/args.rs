//! Command-line grammar: one place that says what every command accepts.
//!
//! Filter flags mirror conntrack(8) and mean what they mean there; they come from the one
//! selector table (`filter::selectors`, see `cli::selectors`), plus `-F/--filter EXPR`; all
//! of them compile into the one filter language the TUI uses. This module parses; it does
//! no work.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Watch, explain and clean the Linux conntrack table.
///
/// Without a command, opens the live dashboard. Try it without root first:
///   ctscope --replay assets/lab-helpers.ctrec
#[derive(Debug, Parser)]
#[command(name = "ctscope", version, about, long_about = None, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,

    #[command(subcommand)]
    pub command: Option<Command>,
}

const AFTER_HELP: &str = "\
Privileges: reading and changing the conntrack table needs CAP_NET_ADMIN (sudo, or
`sudo setcap cap_net_admin+ep $(command -v ctscope)`); --netns also needs CAP_SYS_ADMIN
(cap_net_admin,cap_sys_admin+ep). --replay needs none.";

/// The help heading of the options that change only the dashboard (and --fast, which also
/// paces `watch --replay`), so they do not crowd the options of the headless commands.
const DASHBOARD: &str = "Dashboard";

/// Options every command accepts.
#[derive(Debug, Args, Clone, Default)]
pub struct Global {
    /// Network namespace: a name as `ip netns` shows it, or a path like /proc/PID/ns/net.
    #[arg(long, global = true, value_name = "NAME|PATH")]
    pub netns: Option<String>,

    /// Read a recording made by `ctscope record` instead of the kernel (no root needed).
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "netns")]
    pub replay: Option<PathBuf>,

    /// Replay as fast as possible instead of at recorded speed (TUI and watch).
    #[arg(long, global = true, help_heading = DASHBOARD, requires = "replay")]
    pub fast: bool,

    /// Colour: auto honours NO_COLOR and whether stdout is a terminal.
    #[arg(long, global = true, help_heading = DASHBOARD, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,

    /// Dashboard theme [default: dark, or 16 where TERM/COLORTERM do not say 256 colours].
    #[arg(long, global = true, help_heading = DASHBOARD, value_enum)]
    pub theme: Option<Theme>,

    /// Remove every delete and flush action from the dashboard.
    #[arg(long, global = true, help_heading = DASHBOARD)]
    pub read_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ColorChoice {
    #[default]
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Theme {
    #[default]
    Dark,
    Light,
    #[value(name = "16")]
    Ansi16,
    Mono,
}

// conntrack(8)-style selection: built from the selector table (`cli::selectors`).
pub use super::selectors::FilterArgs;

/// Output format of headless commands.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct FormatArgs {
    /// One JSON array (same as -o json).
    #[arg(long, conflicts_with_all = ["ndjson", "output"])]
    pub json: bool,
    /// One JSON object per line (same as -o ndjson).
    #[arg(long, conflicts_with = "output")]
    pub ndjson: bool,
    /// Output format, as conntrack -o: text (default), extended, json, ndjson, or save
    /// (`conntrack -I` lines for `conntrack -R`; flows only).
    #[arg(long, short = 'o', value_enum, value_name = "FORMAT")]
    pub output: Option<OutputKind>,
}

/// `-o/--output` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputKind {
    Text,
    Extended,
    Json,
    Ndjson,
    Save,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List flows (conntrack -L) or expectations (conntrack -L expect), IPv4 and IPv6.
    List {
        /// The expectation table instead of flows.
        #[arg(long)]
        expect: bool,
        #[command(flatten)]
        special: SpecialListArgs,
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        format: FormatArgs,
        /// Write the exporter's series for this one dump in node_exporter's textfile format
        /// to FILE, or to DIR/ctscope_list.prom (temp file + rename); '-' is stdout.
        #[arg(long, value_name = "FILE|DIR", conflicts_with_all = ["expect", "json", "ndjson", "output"])]
        prom: Option<PathBuf>,
    },
    /// Print events as they happen (conntrack -E), flows and expectations.
    Watch {
        /// Only flow events.
        #[arg(long, conflicts_with = "expect_only")]
        flows_only: bool,
        /// Only expectation events.
        #[arg(long)]
        expect_only: bool,
        /// Stop after this many kernel events (sweep and resync lines are not counted).
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Stop after this long (e.g. 30s, 5m).
        #[arg(long, value_name = "DURATION", value_parser = duration)]
        duration: Option<std::time::Duration>,
        /// Only these events, as conntrack -e: NEW,UPDATES,DESTROY or ALL.
        #[arg(long, short = 'e', value_name = "EVENT,…", value_parser = super::selectors::EventMask::parse)]
        event_mask: Option<super::selectors::EventMask>,
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Delete the flows (conntrack -D) or expectations (-D expect) matching the filter.
    Delete {
        /// Delete expectations instead of flows.
        #[arg(long)]
        expect: bool,
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        act: ActArgs,
    },
    /// Flush flows (conntrack -F), expectations (-F expect), a helper's or stale entries.
    Flush {
        /// Flush the expectation table (with --helper: only that helper's expectations).
        #[arg(long)]
        expect: bool,
        #[command(flatten)]
        stale: super::stale::StaleArgs,
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        act: ActArgs,
    },
    /// Who fills the table: flows grouped by a key, with counts and rates.
    Top {
        #[command(flatten)]
        opts: super::top::TopArgs,
    },
    /// Save the raw netlink messages (initial dump and events) with timestamps.
    Record {
        /// Output file.
        file: PathBuf,
        /// Stop after this long (e.g. 30s); default: until Ctrl-C.
        #[arg(long, value_name = "DURATION", value_parser = duration)]
        duration: Option<std::time::Duration>,
        /// Overwrite FILE if it exists (it is never followed through a symlink).
        #[arg(long)]
        force: bool,
        /// Leave out recency snapshots (xt_recent lists, nft sets, knock progress), which
        /// are otherwise recorded every 1-10 s for `recent --replay`.
        #[arg(long)]
        no_recent: bool,
    },
    /// Audit helper exposure: helper assignment, RELATED rules, rp_filter, live expectations.
    /// Exit 0 clean, 1 findings, 2 could not look.
    Audit {
        #[command(flatten)]
        opts: crate::audit::Options,
        /// Write ctscope_audit_findings{kind} in node_exporter's textfile format to FILE, or
        /// to DIR/ctscope_audit.prom (temp file + rename); '-' is stdout. Exit 0 when
        /// written (findings are in the file), 2 when the audit could not look.
        #[arg(long, value_name = "FILE|DIR", conflicts_with = "json")]
        prom: Option<PathBuf>,
    },
    /// Serve Prometheus metrics from the live engine: /metrics and /healthz.
    Exporter {
        /// ADDR:PORT to listen on (loopback unless --allow-remote).
        #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:9469")]
        listen: String,
        /// Allow a non-loopback --listen address (the metrics reveal the firewall's state).
        #[arg(long)]
        allow_remote: bool,
        /// How often to re-run the audit for ctscope_audit_findings (0 turns it off).
        #[arg(long, value_name = "DURATION", value_parser = duration, default_value = "60s")]
        audit_interval: std::time::Duration,
    },
    /// Per-CPU counters (conntrack -S; --expect for -S expect) and the table's count and max.
    Stats {
        /// Print the expectation counters (conntrack -S expect) instead.
        #[arg(long)]
        expect: bool,
        /// One JSON object with every counter, the per-CPU sums and the global count.
        #[arg(long)]
        json: bool,
    },
    /// How many entries the table holds (conntrack -C; --expect for -C expect).
    Count {
        /// Count expectations (both families) instead of flows.
        #[arg(long)]
        expect: bool,
        /// {"count":N,"max":M} (max only for flows).
        #[arg(long)]
        json: bool,
    },
    /// Port-knock state: xt_recent lists, nft dynamic sets, the knock sequence rebuilt from
    /// the rules, each source's progress and the flows the last stage let in.
    Recent {
        #[command(subcommand)]
        action: Option<RecentAction>,
        /// One JSON object (lists, sets, machines, progress, admitted flows).
        #[arg(long)]
        json: bool,
        /// With --replay: the state as of this far into the recording (e.g. 12s); default:
        /// its end.
        #[arg(long, value_name = "DURATION", value_parser = duration)]
        at: Option<std::time::Duration>,
    },
    /// Print a shell completion script (e.g. `ctscope completions bash > /etc/bash_completion.d/ctscope`).
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page, ctscope(1), in roff (`ctscope man > ctscope.1`).
    Man,
}

/// What `ctscope recent` changes (without one, it shows).
#[derive(Debug, Subcommand)]
pub enum RecentAction {
    /// Remove one address from an xt_recent list (echo -ADDR > /proc/net/xt_recent/NAME)
    /// or an nft set (nft delete element); NAME may be FAMILY:TABLE:SET.
    Delete {
        name: String,
        addr: String,
        #[command(flatten)]
        act: ActArgs,
    },
    /// Empty an xt_recent list (echo / > /proc/net/xt_recent/NAME) or an nft set.
    Flush {
        name: String,
        #[command(flatten)]
        act: ActArgs,
    },
}

/// Shells `ctscope completions` writes for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// Confirmation switches for delete and flush.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct ActArgs {
    /// Print exactly what would be removed, remove nothing. (No `-n`: in conntrack(8)
    /// that is `--src-nat`.)
    #[arg(long)]
    pub dry_run: bool,
    /// Proceed without asking (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Also remove the flow carrying this SSH session (found from the process tree, even
    /// under sudo), normally spared; when the session cannot be determined, every flow to
    /// a local sshd is spared unless this is given.
    #[arg(long)]
    pub include_own_ssh: bool,
}

/// The longest `--duration` accepted: far beyond any session, far below where adding it to
/// the clock would overflow (`watch --duration 300000000000y` used to panic there).
const MAX_DURATION: std::time::Duration = std::time::Duration::from_secs(100 * 366 * 86_400);

/// `--duration`: a humantime span (`30s`, `5m`, `2h`), at most 100 years.
fn duration(s: &str) -> Result<std::time::Duration, crate::Error> {
    let d = humantime::parse_duration(s).map_err(|e| crate::Error::usage(e.to_string()))?;
    if d > MAX_DURATION {
        return Err(crate::Error::usage_hint(
            "longer than 100 years",
            "leave --duration out to run until stopped",
        ));
    }
    Ok(d)
}

// ---- Table pressure: the kernel's special lists (conntrack -L dying / unconfirmed) ----

/// The kernel's special connection lists, read-only.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct SpecialListArgs {
    /// The dying list (conntrack -L dying): entries being destroyed.
    #[arg(long, conflicts_with_all = ["expect", "unconfirmed"])]
    pub dying: bool,
    /// The unconfirmed list (conntrack -L unconfirmed); exit 3 when this kernel keeps none.
    #[arg(long, conflicts_with = "expect")]
    pub unconfirmed: bool,
}
