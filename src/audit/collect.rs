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
use crate::error::Error;
use crate::model::{Expectation, Flow, Store};
use crate::netlink::{netns, Namespace};
use crate::risk::{Config, HelperTable};

/// Collect the inputs for `opts` (namespace, table override, sensitive ports).
pub fn collect(opts: &Options) -> Result<AuditInput, Error> {
    let table = HelperTable::load(opts.helpers.as_deref())?;
    let params = table.read_params(Path::new("/sys"));
    let params_unread = unread_params(&table, &params, Path::new("/sys"));
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
    netns::run_in(&ns, move || {
        let mut input = gather(name, table, config);
        input.params_unread = params_unread;
        Ok(input)
    })
}

/// Widening parameters of loaded modules that `read_params` could not read, with why:
/// a module directory that exists but whose parameter cannot be read (permissions, a
/// kernel without that option) leaves the value unknown; a module that is absent is
/// simply not loaded.
pub fn unread_params(
    table: &HelperTable,
    read: &crate::risk::table::Params,
    sys_root: &Path,
) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (module, param, _, _) in table.widening_options() {
        if read.contains_key(&(module.clone(), param.clone())) {
            continue;
        }
        let dir = sys_root.join("module").join(&module);
        let why = match std::fs::metadata(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // /sys/module itself unreadable (no sysfs in a container) is unknown too.
                match std::fs::read_dir(sys_root.join("module")) {
                    Ok(_) => continue,
                    Err(e) => format!("{}: {e}", sys_root.join("module").display()),
                }
            }
            Err(e) => format!("{}: {e}", dir.display()),
            Ok(_) => {
                let f = dir.join("parameters").join(&param);
                match std::fs::read_to_string(&f) {
                    Ok(_) => "read failed earlier".to_string(),
                    // 0600 root files: no capability short of CAP_DAC_OVERRIDE reads them.
                    Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                        format!("{}: readable by root only (run with sudo)", f.display())
                    }
                    Err(e) => format!("{}: {e}", f.display()),
                }
            }
        };
        out.push((module, param, why));
    }
    out
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
    let local_addrs = local_addrs();
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
        local_addrs,
        params_unread: Vec::new(),
        table,
        config,
    }
}

/// This namespace's own addresses (getifaddrs(3)), or `None` when they cannot be read.
fn local_addrs() -> Option<Vec<std::net::IpAddr>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list we free below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return None;
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed.
        let ifa = unsafe { &*cur };
        if !ifa.ifa_addr.is_null() {
            // SAFETY: ifa_addr points to a sockaddr whose family says its real type.
            let fam = i32::from(unsafe { (*ifa.ifa_addr).sa_family });
            if fam == libc::AF_INET {
                // SAFETY: AF_INET means a sockaddr_in.
                let sin = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in) };
                out.push(std::net::IpAddr::from(
                    u32::from_be(sin.sin_addr.s_addr).to_be_bytes(),
                ));
            } else if fam == libc::AF_INET6 {
                // SAFETY: AF_INET6 means a sockaddr_in6.
                let sin6 = unsafe { &*(ifa.ifa_addr as *const libc::sockaddr_in6) };
                out.push(std::net::IpAddr::from(sin6.sin6_addr.s6_addr));
            }
        }
        cur = ifa.ifa_next;
    }
    // SAFETY: `head` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(head) };
    Some(out)
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
    crate::privilege::pass_net_admin_to_children();
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
        let hint = if err.contains("Operation not permitted") {
            Some(crate::privilege::NET_ADMIN_HINT)
        } else if err.contains("Permission denied") {
            // iptables-legacy-save reads root-only /proc/net/ip_tables_names: a file mode,
            // which no capability short of CAP_DAC_OVERRIDE gets past.
            Some("this file is readable by root only: run with sudo")
        } else {
            None
        };
        let line = std::iter::once(cmd)
            .chain(args.iter().copied())
            .collect::<Vec<_>>()
            .join(" ");
        // The report keeps this as text: it is a line of its "could not read" list.
        Err(Error::Audit {
            step: line,
            reason: format!("{}: {err}", out.status),
            hint: hint.map(str::to_owned),
        }
        .to_string())
    }
}
