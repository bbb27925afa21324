//! Gathering the audit's inputs from the running system, inside `--netns` when given:
//! `nft -j list ruleset` and `nft -a list ruleset`, `iptables-nft-save` and
//! `iptables-legacy-save` (and their ip6 twins) where installed, the
//! `nf_conntrack_helper` and `rp_filter` sysctls, listening sockets, module parameters,
//! and the live expectations and helper flows.
//!
//! Everything runs on one thread that entered the namespace (`netlink::netns::run_in`), so
//! procfs, the ctnetlink dump and the spawned commands all see it. Failures become `Err(reason)` entries that the report
//! lists under "could not read"; only failing to enter the namespace is fatal. Judging is
//! not done here (see `audit::run`).

use std::path::Path;
use std::process::{Command, Stdio};

use super::{AuditInput, Options, Source};
use crate::engine::{self, Live};
use crate::model::{Expectation, Flow, Store};
use crate::netlink::{netns, Namespace};
use crate::risk::{Config, HelperTable};

/// Collect the inputs for `opts` (namespace, table override, sensitive ports).
pub fn collect(opts: &Options) -> Result<AuditInput, String> {
    let table = HelperTable::load(opts.helpers.as_deref()).map_err(|e| e.to_string())?;
    let params = table.read_params(Path::new("/sys"));
    let table = table.with_params(params);
    let mut config = Config::default();
    if let Some(p) = &opts.sensitive_ports {
        config = config.with_ports(p)?;
    }
    config.privileged_ports = !opts.no_privileged_ports;
    let name = opts.netns.clone();
    let ns = opts
        .netns
        .as_deref()
        .map(Namespace::parse)
        .unwrap_or_default();
    netns::run_in(&ns, move || Ok(gather(name, table, config))).map_err(|e| e.to_string())
}

/// Everything, in the current thread's namespace.
fn gather(netns: Option<String>, table: HelperTable, config: Config) -> AuditInput {
    let nft_json = command("nft", &["-j", "list", "ruleset"]);
    let nft_text = command("nft", &["-a", "list", "ruleset"]).ok();
    let iptables_nft = vec![
        ("ip".to_string(), command("iptables-nft-save", &[])),
        ("ip6".to_string(), command("ip6tables-nft-save", &[])),
    ];
    let mut iptables_legacy = Vec::new();
    for (family, cmd) in [
        ("ip", "iptables-legacy-save"),
        ("ip6", "ip6tables-legacy-save"),
    ] {
        // Absent tools are not an error worth a line: the machine simply has no legacy
        // iptables. A tool that is present and fails is reported.
        match command(cmd, &[]) {
            Err(e) if e.contains("not installed") => {}
            other => iptables_legacy.push((family.to_string(), other)),
        }
    }
    let auto_helper = match std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_helper") {
        Ok(v) => Ok(Some(v.trim() == "1")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("/proc/sys/net/netfilter/nf_conntrack_helper: {e}")),
    };
    let rp_filter = read_rp_filter(Path::new("/proc/sys/net/ipv4/conf"));
    let listeners = crate::risk::current_listeners();
    let (expectations, flows) = live_tables();
    AuditInput {
        netns,
        nft_json,
        nft_text,
        iptables_nft,
        iptables_legacy,
        auto_helper,
        rp_filter,
        expectations,
        flows,
        listeners,
        table,
        config,
    }
}

/// `/proc/sys/net/ipv4/conf/*/rp_filter`.
pub fn read_rp_filter(dir: &Path) -> Result<Vec<(String, u32)>, String> {
    let rd = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut out = Vec::new();
    for ent in rd.flatten() {
        let name = ent.file_name().to_string_lossy().into_owned();
        if let Ok(v) = std::fs::read_to_string(ent.path().join("rp_filter")) {
            if let Ok(n) = v.trim().parse() {
                out.push((name, n));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Live expectations, and the flows the audit needs (RELATED flows, their masters, masters
/// of expectations and flows carrying a helper), dumped over ctnetlink in the calling
/// thread's namespace.
fn live_tables() -> (Result<Vec<Expectation>, String>, Vec<Flow>) {
    let mut store = Store::new();
    let loaded = Live::open(&Namespace::Current, false)
        .and_then(|mut live| engine::load(&mut live, &mut store, 0));
    if let Err(e) = loaded {
        return (Err(e.to_string()), Vec::new());
    }
    let exps: Vec<Expectation> = store.expectations().cloned().collect();
    // RELATED flows are judged themselves (and their masters give them their helper).
    let masters: std::collections::HashSet<_> = store
        .flows()
        .filter(|f| f.is_related())
        .filter_map(|f| f.master().copied())
        .collect();
    let flows = store
        .flows()
        .filter(|f| {
            !f.helper.is_none()
                || f.is_related()
                || masters.contains(&f.orig)
                || exps.iter().any(|e| e.master == f.orig)
        })
        .cloned()
        .collect();
    (Ok(exps), flows)
}

/// Run a command, returning stdout, or a short reason it could not be read.
fn command(cmd: &str, args: &[&str]) -> Source {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                format!("'{cmd}' is not installed")
            } else {
                format!("'{cmd}': {e}")
            }
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let err = err.trim();
        let hint = if err.contains("Operation not permitted") || err.contains("Permission denied") {
            "\nhint: reading the ruleset and conntrack tables needs CAP_NET_ADMIN: run with sudo"
        } else {
            ""
        };
        let line = std::iter::once(cmd)
            .chain(args.iter().copied())
            .collect::<Vec<_>>()
            .join(" ");
        Err(format!("'{line}' failed ({}): {err}{hint}", out.status))
    }
}
