//! Command-line grammar: one place that says what every command accepts.
//!
//! Filter flags mirror conntrack(8) and mean what they mean there (`-f` family, `-p -s -d
//! --sport --dport --zone --mark --status -l`), plus ctscope's own (`--helper`, `--related`,
//! `-F/--filter EXPR`); all of them compile into the one filter language the TUI uses. This
//! module parses; it does no work.

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
`sudo setcap cap_net_admin+ep $(command -v ctscope)`). --replay needs none.";

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

    /// Dashboard theme.
    #[arg(long, global = true, help_heading = DASHBOARD, value_enum, default_value_t = Theme::Dark)]
    pub theme: Theme,

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

/// conntrack(8)-style selection, compiled into the filter language.
#[derive(Debug, Args, Clone, Default)]
pub struct FilterArgs {
    /// Filter expression, e.g. "helper=ftp and dport=3306" (the dashboard's `/` language;
    /// a /regex/ or bare word searches the line ctscope prints for the entry).
    #[arg(long, short = 'F', value_name = "EXPR")]
    pub filter: Option<String>,
    /// Address family, as conntrack -f: ipv4 or ipv6 (default: both).
    #[arg(long, short = 'f', value_name = "ipv4|ipv6")]
    pub family: Option<String>,
    /// Layer 4 protocol: a name from /etc/protocols (tcp, udp, igmp, esp, …) or a number.
    #[arg(long = "proto", short = 'p', value_name = "PROTO")]
    pub proto: Option<String>,
    /// Original source address or CIDR.
    #[arg(long = "src", short = 's', value_name = "ADDR[/LEN]")]
    pub src: Option<String>,
    /// Original destination address or CIDR.
    #[arg(long = "dst", short = 'd', value_name = "ADDR[/LEN]")]
    pub dst: Option<String>,
    /// Original source port.
    #[arg(long, value_name = "PORT")]
    pub sport: Option<u16>,
    /// Original destination port.
    #[arg(long, value_name = "PORT")]
    pub dport: Option<u16>,
    /// Conntrack zone.
    #[arg(long, value_name = "ZONE")]
    pub zone: Option<u16>,
    /// Mark, as conntrack(8) takes it: MARK or MARK/MASK, decimal or 0x hex.
    #[arg(long, value_name = "MARK[/MASK]")]
    pub mark: Option<String>,
    /// Status bits, comma separated (ASSURED, SEEN_REPLY, EXPECTED, UNREPLIED, …).
    #[arg(long, value_name = "STATUS,…")]
    pub status: Option<String>,
    /// Entries handled by this helper (ftp, sip, irc, tftp, …).
    #[arg(long, value_name = "NAME")]
    pub helper: Option<String>,
    /// Conntrack labels, all required: connlabel.conf names or bit numbers, comma separated
    /// or repeated (`-l a,b` is `-l a -l b`, as in conntrack).
    #[arg(long, short = 'l', value_name = "LABEL,…")]
    pub label: Vec<String>,
    /// Only RELATED flows (created by an expectation).
    #[arg(long)]
    pub related: bool,
}

/// Output format of headless commands.
#[derive(Debug, Args, Clone, Copy, Default)]
pub struct FormatArgs {
    /// One JSON array.
    #[arg(long, conflicts_with = "ndjson")]
    pub json: bool,
    /// One JSON object per line.
    #[arg(long)]
    pub ndjson: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List flows (conntrack -L) or expectations (conntrack -L expect), IPv4 and IPv6.
    List {
        /// The expectation table instead of flows.
        #[arg(long)]
        expect: bool,
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        format: FormatArgs,
    },
    /// Print events as they happen (conntrack -E), flows and expectations.
    Watch {
        /// Only flow events.
        #[arg(long, conflicts_with = "expect_only")]
        flows_only: bool,
        /// Only expectation events.
        #[arg(long)]
        expect_only: bool,
        /// Stop after this many events.
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Stop after this long (e.g. 30s, 5m).
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
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
    /// Flush flows (conntrack -F), expectations (-F expect) or one helper's entries.
    Flush {
        /// Flush the expectation table (with --helper: only that helper's expectations).
        #[arg(long)]
        expect: bool,
        #[command(flatten)]
        filter: FilterArgs,
        #[command(flatten)]
        act: ActArgs,
    },
    /// Save the raw netlink messages (initial dump and events) with timestamps.
    Record {
        /// Output file.
        file: PathBuf,
        /// Stop after this long (e.g. 30s); default: until Ctrl-C.
        #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
        duration: Option<std::time::Duration>,
    },
    /// Audit helper exposure: helper assignment, RELATED rules, rp_filter, live expectations.
    /// Exit 0 clean, 1 findings, 2 could not look.
    Audit {
        #[command(flatten)]
        opts: crate::audit::Options,
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
    /// Print exactly what would be removed, remove nothing.
    #[arg(long, short = 'n')]
    pub dry_run: bool,
    /// Proceed without asking (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
    /// Also remove the flow carrying this SSH session ($SSH_CONNECTION), normally spared.
    #[arg(long)]
    pub include_own_ssh: bool,
}
