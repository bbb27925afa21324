//! `ctscope audit`: a one-shot report of the firewall's exposure to conntrack helpers.
//!
//! It covers the helpers in use and how they are assigned (CT target rules, `ct helper
//! set`, or automatic assignment where `nf_conntrack_helper` still exists), RELATED accept
//! rules not narrowed by helper (with their exact text), reverse-path filtering per
//! interface and raw-table anti-spoofing, the widening module options, and every live
//! expectation and RELATED flow with its freedom and findings. Exit 0 clean, 1 findings, 2 could not look
//! (the ruleset or the expectation table unreadable, e.g. without CAP_NET_ADMIN).
//!
//! Structure: `collect` gathers an `AuditInput` from the system (inside `--netns` when
//! given); `run` is pure over that input and returns a `Report`, so tests feed fixtures;
//! `report` renders text or JSON. This module must not touch netlink sockets itself.

pub mod collect;
pub mod fix;
pub mod report;
pub mod rules;

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::PathBuf;

use fix::{Dialect, Lang};

use crate::model::{Expectation, Flow};
use crate::risk::classify::MasterEnds;
use crate::risk::finding::{related_rule_in, Finding, FindingKind};
use crate::risk::{Assessor, Config, HelperTable, Listeners};

pub use report::{
    ExpectReport, HelperUse, ModuleOption, ParamState, RelatedFlowReport, RelatedRule, Report,
    RpFilter, Unreadable,
};
pub use rules::{Origin, Rule};

/// Command-line options of `ctscope audit`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Options {
    /// Print the report as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// The network namespace to audit (a name from 'ip netns list', or /proc/PID/ns/net);
    /// set from the global `--netns`, so not an argument of its own.
    #[arg(skip)]
    pub netns: Option<String>,
    /// Use this helper freedom table instead of the built-in assets/helpers.toml.
    #[arg(long, value_name = "FILE")]
    pub helpers: Option<PathBuf>,
    /// Sensitive destination ports (comma-separated), replacing the default list
    /// 22,23,25,445,1433,3306,3389,5432,6379,9200,11211,27017.
    #[arg(long, value_name = "PORTS", env = "CTSCOPE_SENSITIVE_PORTS")]
    pub sensitive_ports: Option<String>,
    /// Do not flag ports below 1024 that are not the helper's own data port.
    #[arg(long)]
    pub no_privileged_ports: bool,
}

/// Text read from one source, or why it could not be read.
pub type Source = Result<String, String>;

/// Everything the audit looks at, gathered beforehand (see `collect`).
#[derive(Debug, Clone)]
pub struct AuditInput {
    /// The namespace audited, for the report header.
    pub netns: Option<String>,
    /// `nft -j list ruleset`.
    pub nft_json: Source,
    /// `nft -a list ruleset`, for the exact text of native rules.
    pub nft_text: Option<String>,
    /// `iptables-nft-save` / `ip6tables-nft-save` output by family (`ip`, `ip6`).
    pub iptables_nft: Vec<(String, Source)>,
    /// `iptables-legacy-save` / `ip6tables-legacy-save` output by family.
    pub iptables_legacy: Vec<(String, Source)>,
    /// `/proc/sys/net/netfilter/nf_conntrack_helper`: `Ok(None)` when the kernel no longer
    /// has it (removed in Linux 6.0: assignment is then only explicit).
    pub auto_helper: Result<Option<bool>, String>,
    /// `/proc/sys/net/ipv4/conf/*/rp_filter` as (interface, value), `all` and `default`
    /// included.
    pub rp_filter: Result<Vec<(String, u32)>, String>,
    /// Live expectations.
    pub expectations: Result<Vec<Expectation>, String>,
    /// Live flows (at least the masters and those carrying a helper).
    pub flows: Vec<Flow>,
    /// Listening sockets of the namespace, when they could be read.
    pub listeners: Option<Listeners>,
    /// The namespace's own addresses, when they could be read: traffic to them is
    /// filtered in INPUT, anything else in FORWARD (where a fix belongs).
    pub local_addrs: Option<Vec<IpAddr>>,
    /// Widening module parameters of loaded modules that could not be read:
    /// (module, param, why). Their value is unknown, never assumed safe.
    pub params_unread: Vec<(String, String, String)>,
    /// The freedom table with live module parameters.
    pub table: HelperTable,
    pub config: Config,
}

/// Build the report from collected inputs. Pure: no system access.
pub fn run(input: &AuditInput) -> Report {
    let mut rep = Report {
        netns: input.netns.clone(),
        ..Report::default()
    };
    let mut findings: Vec<Finding> = Vec::new();

    // Rules from every readable source.
    let mut all_rules: Vec<Rule> = Vec::new();
    let mut ruleset_read = false;
    let mut xt_tables = Default::default();
    let mut base_chains = BTreeMap::new();
    match &input.nft_json {
        Ok(j) => match rules::parse_nft(j, input.nft_text.as_deref()) {
            Ok(r) => {
                ruleset_read = true;
                all_rules.extend(r.rules);
                xt_tables = r.xt_tables;
                base_chains = r.base_chains;
            }
            Err(e) => rep
                .unreadable
                .push(Unreadable::new("nftables", e.to_string())),
        },
        Err(e) => rep.unreadable.push(Unreadable::new("nftables", e.clone())),
    }
    for (family, src) in &input.iptables_nft {
        let wanted: Vec<_> = xt_tables.iter().filter(|(f, _)| f == family).collect();
        if wanted.is_empty() {
            continue;
        }
        match src {
            Ok(t) => all_rules.extend(rules::parse_iptables_save(
                t,
                Origin::IptablesNft,
                family,
                Some(&xt_tables),
            )),
            Err(e) => {
                let names: Vec<String> = wanted.iter().map(|(f, t)| format!("{f} {t}")).collect();
                rep.unreadable.push(Unreadable::new(
                    "iptables-nft",
                    format!(
                        "tables {} hold iptables extensions that 'nft -j' does not show, and {} could not be read: {e}",
                        names.join(", "),
                        if family == "ip6" { "ip6tables-nft-save" } else { "iptables-nft-save" }
                    ),
                ));
            }
        }
    }
    for (family, table) in &xt_tables {
        if !input.iptables_nft.iter().any(|(f, _)| f == family) {
            rep.unreadable.push(Unreadable::new(
                "nftables",
                format!(
                    "table {family} {table} holds iptables extensions (xt) that 'nft -j' does not show, and no iptables-nft tool reads family '{family}'"
                ),
            ));
        }
    }
    for (family, src) in &input.iptables_legacy {
        match src {
            Ok(t) => {
                ruleset_read = true;
                all_rules.extend(rules::parse_iptables_save(
                    t,
                    Origin::IptablesLegacy,
                    family,
                    None,
                ));
            }
            Err(e) => rep.unreadable.push(Unreadable::new(
                if family == "ip6" {
                    "ip6tables-legacy"
                } else {
                    "iptables-legacy"
                },
                e.clone(),
            )),
        }
    }

    // The firewall's own language for every fix: nftables when the rules are native nft
    // only, else iptables (also when nothing could be read: the authors' form).
    let dialect = dialect_of(&all_rules, &base_chains);
    rep.language = match dialect.lang {
        Lang::Nft => "nftables",
        Lang::Iptables => "iptables",
    }
    .to_string();

    // Live expectations and flows.
    let expectations: &[Expectation] = match &input.expectations {
        Ok(v) => v,
        Err(e) => {
            rep.unreadable
                .push(Unreadable::new("expectations", e.clone()));
            &[]
        }
    };

    // Helpers in use.
    let mut helpers: BTreeMap<String, HelperUse> = BTreeMap::new();
    fn use_of<'m>(helpers: &'m mut BTreeMap<String, HelperUse>, name: &str) -> &'m mut HelperUse {
        helpers
            .entry(name.to_string())
            .or_insert_with(|| HelperUse {
                name: name.to_string(),
                ..HelperUse::default()
            })
    }
    for r in &all_rules {
        if let Some(h) = &r.facts.assigns_helper {
            use_of(&mut helpers, h).assigned_by.push(r.command());
        }
    }
    for f in &input.flows {
        if let Some(h) = f.helper.name() {
            use_of(&mut helpers, h).flows += 1;
        }
    }
    for e in expectations {
        if let Some(h) = e.helper.name() {
            use_of(&mut helpers, h).expectations += 1;
        }
    }
    let auto = match &input.auto_helper {
        Ok(Some(true)) => {
            rep.automatic_assignment = "on".into();
            findings.push(Finding::new(
                FindingKind::AutomaticHelperAssignment,
                "nf_conntrack_helper=1: every loaded helper parses its default ports on all traffic, for every address",
                fix::localize("echo 0 > /proc/sys/net/netfilter/nf_conntrack_helper (or modprobe nf_conntrack nf_conntrack_helper=0) and assign each helper explicitly, e.g. `iptables -t raw -A PREROUTING -p tcp --dport 21 -d $FTP_SERVER -j CT --helper ftp`; then `conntrack -F`, since flows keep the helper they already have", &dialect),
            ));
            true
        }
        Ok(Some(false)) => {
            rep.automatic_assignment = "off".into();
            false
        }
        Ok(None) => {
            rep.automatic_assignment =
                "unavailable (nf_conntrack_helper is gone from this kernel: helpers run only where a rule assigns them)".into();
            false
        }
        Err(e) => {
            rep.automatic_assignment = "unknown".into();
            rep.unreadable
                .push(Unreadable::new("nf_conntrack_helper", e.clone()));
            false
        }
    };
    if auto {
        for e in input.table.entries() {
            let loaded = input.table.params().keys().any(|(m, _)| *m == e.module);
            if loaded {
                for n in &e.kernel_names {
                    use_of(&mut helpers, n).automatic = true;
                }
            }
        }
    }
    rep.helpers = helpers.into_values().collect();

    // Module options that widen helpers.
    for (module, param, value, widens) in input.table.widening_options() {
        let widened = value.as_deref() == Some(widens.as_str());
        let unread = input
            .params_unread
            .iter()
            .find(|(m, p, _)| *m == module && *p == param);
        let state = match (&value, unread) {
            (Some(_), _) => ParamState::Read,
            (None, Some((_, _, why))) => {
                rep.unreadable.push(Unreadable::new(
                    "module parameter",
                    format!("/sys/module/{module}/parameters/{param}: {why}"),
                ));
                ParamState::Unknown
            }
            (None, None) => ParamState::NotLoaded,
        };
        if widened {
            findings.push(Finding::new(
                FindingKind::ThirdPartyAddress,
                format!("{module} {param}={widens}: this helper's expectations may name addresses that are not endpoints of the master connection"),
                format!(
                    "echo {} > /sys/module/{module}/parameters/{param} (and set it in /etc/modprobe.d), the netfilter authors' safe default",
                    if widens == "1" { "0" } else { "1" }
                ),
            ));
        }
        rep.module_options.push(ModuleOption {
            module,
            param,
            value,
            widens_at: widens,
            widened,
            state,
        });
    }

    // RELATED accept rules.
    let in_use: Vec<&str> = rep.helpers.iter().map(|h| h.name.as_str()).collect();
    for r in &all_rules {
        if !r.facts.related_accept {
            continue;
        }
        let restricted = !r.facts.helper_match.is_empty() || r.facts.icmp_only;
        if !restricted {
            findings.push(Finding::new(
                FindingKind::UnrestrictedRelated,
                format!(
                    "{} {} {} chain {}: `{}` accepts RELATED from every helper, so a forged command opens ports the rules never opened",
                    r.tool(),
                    r.family,
                    r.table,
                    r.chain,
                    r.text
                ),
                related_advice(&input.table, &in_use, r, &dialect, &base_chains),
            ));
        }
        rep.related_rules.push(RelatedRule {
            origin: r.origin,
            tool: r.tool(),
            family: r.family.clone(),
            table: r.table.clone(),
            chain: r.chain.clone(),
            text: r.text.clone(),
            narrowed_by: r.facts.helper_match.clone(),
            icmp_only: r.facts.icmp_only,
            restricted,
        });
    }

    // Anti-spoofing.
    let global_antispoof = all_rules
        .iter()
        .any(|r| r.facts.antispoof && r.facts.antispoof_iface.is_none() && r.family != "ip6");
    for r in all_rules.iter().filter(|r| r.facts.antispoof) {
        rep.antispoof_rules.push(r.command());
    }
    rep.ipv6_antispoof = all_rules
        .iter()
        .any(|r| r.facts.antispoof && (r.family == "ip6" || r.family == "inet"));
    match &input.rp_filter {
        Ok(list) => {
            let all = list.iter().find(|(i, _)| i == "all").map_or(0, |x| x.1);
            for (iface, v) in list {
                if iface == "all" || iface == "default" {
                    continue;
                }
                let effective = (*v).max(all);
                rep.rp_filter.push(RpFilter {
                    iface: iface.clone(),
                    value: *v,
                    effective,
                });
                // Spoofed commands only matter where a helper parses them: on a host with
                // no helper in use, a loose rp_filter is listed above but is not a finding.
                if iface == "lo" || effective != 0 || global_antispoof || in_use.is_empty() {
                    continue;
                }
                let manual = all_rules.iter().any(|r| {
                    r.facts.antispoof && r.facts.antispoof_iface.as_deref() == Some(iface.as_str())
                });
                if manual {
                    continue;
                }
                findings.push(Finding::new(
                    FindingKind::NoReversePathFilter,
                    format!("interface {iface}: rp_filter is 0 (all={all}) and no raw-table anti-spoofing rule: helpers will parse commands from spoofed sources"),
                    match dialect.lang {
                        Lang::Iptables => format!("echo 1 > /proc/sys/net/ipv4/conf/{iface}/rp_filter (2 with asymmetric routing), or `iptables -t raw -A PREROUTING -m rpfilter --invert -j DROP`; IPv6 has no rp_filter: add `ip6tables -t raw -A PREROUTING -m rpfilter --invert -j DROP`"),
                        Lang::Nft => format!("echo 1 > /proc/sys/net/ipv4/conf/{iface}/rp_filter (2 with asymmetric routing), or, for IPv4 and IPv6 at once (IPv6 has no rp_filter), `{}`", fix::command("iptables -t raw -A PREROUTING -m rpfilter --invert -j DROP", &dialect).unwrap_or_default()),
                    },
                ));
            }
        }
        Err(e) => rep.unreadable.push(Unreadable::new("rp_filter", e.clone())),
    }

    // Helpers attached to master connections on ports they do not normally serve (a CT
    // rule or `ports` option aimed wider than meant). RELATED flows are skipped: a helper
    // can follow its expectation onto them (H.245, SIP signalling) on any port.
    let mut seen_unusual: Vec<(String, u8, u16)> = Vec::new();
    for f in input.flows.iter().filter(|f| !f.is_related()) {
        let Some(name) = f.helper.name() else {
            continue;
        };
        let Some(entry) = input.table.lookup_name(name) else {
            continue;
        };
        let control = input.table.control_ports(entry);
        let (p, port) = (f.orig.proto, f.orig.dport);
        if control.is_empty() || control.contains(&(p, port)) {
            continue;
        }
        let key = (name.to_string(), p, port);
        if seen_unusual.contains(&key) {
            continue;
        }
        seen_unusual.push(key);
        let pname = crate::model::tuple::proto::name(p).unwrap_or("?");
        let normal: Vec<String> = control
            .iter()
            .map(|(cp, cport)| {
                format!(
                    "{}/{cport}",
                    crate::model::tuple::proto::name(*cp).unwrap_or("?")
                )
            })
            .collect();
        findings.push(Finding::new(
            FindingKind::UnusualHelperPort,
            format!(
                "helper '{name}' is attached to {} ({pname} port {port}), which it does not normally serve ({})",
                f.orig,
                normal.join(", ")
            ),
            fix::localize(
                &format!(
                    "if this server is meant to use '{name}' there, assign it for that server only: `{}`; otherwise remove the CT rule (or module `ports` option) that attaches it",
                    crate::risk::finding::ct_assignment(name, pname, port)
                ),
                &dialect.with(f.orig.family == crate::model::Family::Ipv6, None),
            ),
        ));
    }

    // Live expectations.
    let assessor = Assessor::new(
        input.table.clone(),
        input.config.clone(),
        input.listeners.clone(),
    );
    for e in expectations {
        let master = input
            .flows
            .iter()
            .find(|f| f.orig == e.master && f.zone == e.zone);
        let siblings = expectations
            .iter()
            .filter(|x| x.master == e.master && x.zone == e.zone)
            .count();
        let mut a = assessor.assess(
            e,
            &MasterEnds::new(e.master, master.map(Flow::reply)),
            siblings,
            None,
        );
        // In the firewall's language, the expectation's family, and the chain its
        // RELATED packets take: INPUT to this host's own address, FORWARD otherwise.
        let chain = match &input.local_addrs {
            Some(local) if !e.dst_is_any() => Some(if local.contains(&e.tuple.dst_ip()) {
                "INPUT"
            } else {
                "FORWARD"
            }),
            _ => None,
        };
        let d = dialect.with(e.tuple.family == crate::model::Family::Ipv6, chain);
        for f in &mut a.findings {
            f.fix = fix::localize(&f.fix, &d);
        }
        findings.extend(a.findings.iter().cloned());
        rep.expectations.push(ExpectReport::new(e, &a));
    }
    // Live RELATED flows, judged from what the kernel holds on each (the expectation that
    // created it is gone by now): the same rules as for expectations.
    for f in input.flows.iter().filter(|f| f.is_related()) {
        let Some(mt) = f.master() else { continue };
        let master = input
            .flows
            .iter()
            .find(|m| m.orig == *mt && m.zone == f.zone && !m.is_related());
        let siblings = expectations
            .iter()
            .filter(|x| x.master == *mt && x.zone == f.zone)
            .count();
        let a = assessor.assess_related(
            f,
            &MasterEnds::new(*mt, master.map(Flow::reply)),
            master.and_then(|m| m.helper.name()),
            siblings,
        );
        findings.extend(a.findings.iter().cloned());
        rep.related_flows.push(RelatedFlowReport::new(f, &a));
    }
    if input.listeners.is_none() {
        rep.unreadable.push(Unreadable::new(
            "listening sockets",
            "procfs net/tcp, tcp6, udp, udp6 could not be read: the listening-socket check was skipped".to_string(),
        ));
    }

    rep.complete = ruleset_read && input.expectations.is_ok();
    if !ruleset_read {
        rep.unreadable.push(Unreadable::new(
            "ruleset",
            "neither nftables nor iptables-legacy could be read: RELATED rules were not audited"
                .to_string(),
        ));
    }
    rep.findings = findings;
    rep.knock_findings = knock_findings(input);
    rep
}

/// The firewall's language for this ruleset: nftables when every rule read is native nft,
/// iptables otherwise. `base_chains` maps the admin's nft base chains to their hooks.
fn dialect_of(rules: &[Rule], base_chains: &BTreeMap<(String, String, String), String>) -> Dialect {
    let native = rules.iter().any(|r| r.origin == Origin::Nftables);
    let xt = rules.iter().any(|r| r.origin != Origin::Nftables);
    let mut d = Dialect::iptables(false);
    if native && !xt {
        d.lang = Lang::Nft;
        // Per hook, the admin's own chain; inet tables first (they cover both families).
        let mut chains: Vec<_> = base_chains.iter().collect();
        chains.sort_by_key(|((f, _, _), _)| f != "inet");
        for ((f, t, c), hook) in chains {
            d.nft_chains
                .entry(hook.clone())
                .or_insert_with(|| (f.clone(), t.clone(), c.clone()));
        }
    }
    d
}

/// The port-knock findings over every ruleset text collected (`recent::audit`).
fn knock_findings(input: &AuditInput) -> Vec<crate::recent::audit::Finding> {
    let ok = |s: &Source| s.as_ref().ok().cloned();
    let rs = crate::recent::Rulesets {
        iptables: input
            .iptables_nft
            .iter()
            .chain(&input.iptables_legacy)
            .filter_map(|(f, s)| Some((f.clone(), ok(s)?)))
            .collect(),
        nft_json: ok(&input.nft_json),
    };
    crate::recent::audit::findings(&rs, &input.config.sensitive_ports)
}

/// The fix for an unrestricted RELATED rule: the authors' per-helper rules for the helpers
/// in use, or (none in use) dropping RELATED except for ICMP errors, written for the rule
/// itself: its language, its family, its chain (an nft rule's fix goes in its own table
/// and chain).
fn related_advice(
    table: &HelperTable,
    in_use: &[&str],
    r: &Rule,
    dialect: &Dialect,
    base_chains: &BTreeMap<(String, String, String), String>,
) -> String {
    let v6 = r.family == "ip6";
    let (chain, d) = if r.origin == Origin::Nftables {
        // The hook of the rule's chain (a regular chain jumped to has none: its name).
        let hook = base_chains
            .get(&(r.family.clone(), r.table.clone(), r.chain.clone()))
            .cloned()
            .unwrap_or_else(|| r.chain.clone());
        let mut d = dialect.with(v6, None);
        d.lang = Lang::Nft;
        d.nft_chains.insert(
            hook.clone(),
            (r.family.clone(), r.table.clone(), r.chain.clone()),
        );
        (hook.to_ascii_uppercase(), d)
    } else {
        let mut d = Dialect::iptables(v6);
        d.chain = None;
        (r.chain.clone(), d)
    };
    let mut lines = Vec::new();
    for h in in_use {
        let restrict = table
            .entries()
            .iter()
            .find(|e| e.kernel_names.iter().any(|n| n.eq_ignore_ascii_case(h)))
            .map(|e| e.restrict.clone())
            .unwrap_or_else(|| crate::risk::finding::generic_restrict(h));
        let rule = related_rule_in(&chain, &restrict);
        let rule = fix::command(&rule, &d).unwrap_or(rule);
        if !lines.contains(&rule) {
            lines.push(rule);
        }
    }
    let cmd = |c: String| fix::command(&c, &d).unwrap_or(c);
    let established = cmd(format!(
        "iptables -A {chain} -m conntrack --ctstate ESTABLISHED -j ACCEPT"
    ));
    if lines.is_empty() {
        let icmp = cmd(format!(
            "iptables -A {chain} -p icmp -m conntrack --ctstate RELATED -j ACCEPT"
        ));
        let example = cmd(related_rule_in(
            &chain,
            "-m helper --helper ftp -d $FTP_SERVER -p tcp --dport 1024:",
        ));
        format!(
            "no helper is in use: replace this rule, accepting only ESTABLISHED (`{established}`) and ICMP errors (`{icmp}`); if a helper is needed, narrow RELATED per helper, e.g. `{example}`"
        )
    } else {
        format!(
            "replace this rule: narrow RELATED per helper, `{}`, and keep ESTABLISHED in its own rule, `{established}`",
            lines.join("`; `")
        )
    }
}

/// Run the whole audit (collect, judge, print) and return the exit code:
/// 0 clean, 1 findings, 2 could not look (see `Report::exit_code`).
pub fn execute(opts: &Options, out: &mut dyn Write) -> i32 {
    let input = match collect::collect(opts) {
        Ok(i) => i,
        Err(e) => {
            let _ = writeln!(out, "ctscope audit: {e}");
            return 2;
        }
    };
    let rep = run(&input);
    let written = if opts.json {
        serde_json::to_writer_pretty(&mut *out, &rep.to_json())
            .map_err(std::io::Error::other)
            .and_then(|_| writeln!(out))
    } else {
        out.write_all(rep.render_text().as_bytes())
    };
    match written {
        Ok(()) => rep.exit_code(),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => rep.exit_code(),
        Err(_) => 2,
    }
}
