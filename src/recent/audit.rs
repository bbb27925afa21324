//! Knock-scheme findings for `ctscope audit`, with the fix written in the rule language
//! the scheme uses (iptables or nft):
//! - a stage with no time limit (`--rcheck` without `--seconds`, an nft set without timeout);
//! - a list never purged (`--set` with no `--remove`/`--reap` and no `--seconds` on its
//!   checks; an nft set with no timeout and no `delete`) — seed 004's `seenping`;
//! - a first stage an ordinary scan or ping sweep completes;
//! - a stage reachable from more than one rule path (seed 004's closing warning);
//! - a last stage opening a sensitive port to every address that knocked.
//!
//! Pure over rule texts; `audit::run` calls `findings` with what it collected.

use serde::Serialize;

use super::machine::{self, Lang, Machine, Op, RuleInfo};
use super::Rulesets;

/// What is wrong with a knock scheme. JSON spells these in snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A stage a source may complete at any later time.
    KnockNoTimeLimit,
    /// A list nothing ever empties.
    KnockNeverPurged,
    /// A first knock that a port scan or ping sweep sends anyway.
    KnockScanCompletes,
    /// A stage reached by more than one rule path.
    KnockMultiplePaths,
    /// A last stage opening a sensitive port to every knocker.
    KnockOpensSensitivePort,
}

impl FindingKind {
    /// Every kind, for outputs that list zeros too (`audit --prom`).
    pub const ALL: [FindingKind; 5] = [
        FindingKind::KnockNoTimeLimit,
        FindingKind::KnockNeverPurged,
        FindingKind::KnockScanCompletes,
        FindingKind::KnockMultiplePaths,
        FindingKind::KnockOpensSensitivePort,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FindingKind::KnockNoTimeLimit => "knock_no_time_limit",
            FindingKind::KnockNeverPurged => "knock_never_purged",
            FindingKind::KnockScanCompletes => "knock_scan_completes",
            FindingKind::KnockMultiplePaths => "knock_multiple_paths",
            FindingKind::KnockOpensSensitivePort => "knock_opens_sensitive_port",
        }
    }
}

impl std::fmt::Display for FindingKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One knock-scheme finding, shaped like the helper findings (`kind`, `detail`, `fix`).
/// Kept apart from `risk::FindingKind` so the dashboard's exhaustive matches over helper
/// findings stay untouched.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub detail: String,
    pub fix: String,
}

impl Finding {
    fn new(kind: FindingKind, detail: String, fix: String) -> Finding {
        Finding { kind, detail, fix }
    }
}

/// Ports a routine scan probes first (nmap's most common TCP/UDP ports): a first knock on
/// one of them is completed by anyone scanning.
const SCANNED: &[u16] = &[
    7, 9, 13, 21, 22, 23, 25, 53, 80, 110, 111, 113, 135, 137, 138, 139, 143, 161, 179, 389, 443,
    445, 465, 514, 587, 631, 993, 995, 1433, 1723, 3306, 3389, 5432, 5900, 8000, 8008, 8080, 8443,
    8888,
];

/// Findings over every knock machine of the rulesets. `sensitive` is the audit's
/// sensitive port list.
pub fn findings(rs: &Rulesets, sensitive: &[u16]) -> Vec<Finding> {
    let rules = rs.rules();
    let mut out = Vec::new();
    // A list scheme that opens nothing is not a knock (e.g. xt_recent(8)'s `badguy` ban
    // list, which scans are meant to fill): it is not judged as one.
    for m in machine::build(&rules)
        .iter()
        .filter(|m| !m.opens.is_empty())
    {
        of_machine(m, &rules, sensitive, &mut out);
    }
    out.dedup();
    out
}

fn where_(m: &Machine) -> String {
    match m.lang {
        Lang::Iptables => format!("iptables {}", m.table),
        Lang::Nft => format!("nft table {}", m.table),
    }
}

fn of_machine(m: &Machine, rules: &[RuleInfo], sensitive: &[u16], out: &mut Vec<Finding>) {
    let at = where_(m);
    let names: Vec<&str> = m.stages.iter().map(|s| s.list.as_str()).collect();
    let scheme = names.join(" → ");
    let same = |r: &&RuleInfo| r.lang == m.lang && r.table == m.table;

    // No time limit on a step out of a stage.
    for (i, st) in m.stages.iter().enumerate() {
        let Some((within, packet)) = m.next_of(i) else {
            continue;
        };
        if within.is_some() {
            continue;
        }
        let knock = packet.short();
        let (detail, fix) = match m.lang {
            Lang::Iptables => (
                format!("knock stage {} ('{}', {at}) has no time limit: a source that once reached it may knock {knock} at any later time (`--rcheck` without `--seconds`)", i + 1, st.list),
                format!("give the check a window, e.g. `-m recent --name {} --rcheck --seconds 10 --reap`", st.list),
            ),
            Lang::Nft => (
                format!("knock stage {} (set '{}', {at}) has no time limit: elements are added without a timeout, so a source may knock {knock} at any later time", i + 1, st.list),
                format!("add with a timeout: `add @{} {{ ip saddr timeout 10s }}`, and give the set `flags dynamic,timeout`", st.list),
            ),
        };
        out.push(Finding::new(FindingKind::KnockNoTimeLimit, detail, fix));
    }

    // Lists never purged.
    for st in &m.stages {
        if m.purged.contains(&st.list) {
            continue;
        }
        let checks: Vec<_> = rules
            .iter()
            .filter(same)
            .flat_map(|r| r.ops.iter())
            .filter(|o| o.list == st.list && matches!(o.op, Op::Check | Op::Update))
            .collect();
        let timed = match m.lang {
            // An element's timeout removes it; every check's --seconds makes old entries inert.
            Lang::Nft => st.entered_by.iter().all(|e| {
                rules.iter().filter(same).any(|r| {
                    r.ops
                        .iter()
                        .any(|o| o.op == Op::Set && o.list == e.to && o.seconds.is_some())
                })
            }),
            Lang::Iptables => !checks.is_empty() && checks.iter().all(|o| o.seconds.is_some()),
        };
        if timed {
            continue;
        }
        let (detail, fix) = match m.lang {
            Lang::Iptables => (
                format!("knock list '{}' ({at}, scheme {scheme}) is never purged: it is `--set` but no rule `--remove`s or `--reap`s it and its checks have no `--seconds`, so a source stays at this stage for good", st.list),
                format!("purge it once it has served: `iptables -A INPUT -m recent --name {} --remove` after the next stage's rule, or `--rcheck --seconds 10 --reap` on its check", st.list),
            ),
            Lang::Nft => (
                format!("knock set '{}' ({at}, scheme {scheme}) is never purged: its elements have no timeout and no rule deletes them", st.list),
                format!("give the set `flags dynamic,timeout; timeout 10s` or add with `timeout`, or `delete @{} {{ ip saddr }}` once the next stage is reached", st.list),
            ),
        };
        out.push(Finding::new(FindingKind::KnockNeverPurged, detail, fix));
    }

    // A first stage a scan completes.
    if let Some(first) = m.stages.first() {
        for e in first.entered_by.iter().filter(|e| e.from.is_none()) {
            let p = &e.packet;
            let why = if p.is_ping() {
                Some("a ping sweep sends exactly this".to_string())
            } else if p.dport.is_none() && p.icmp_type.is_none() {
                Some("any packet completes it".to_string())
            } else {
                p.port()
                    .filter(|port| SCANNED.contains(port))
                    .map(|port| format!("port {port} is among the first a port scan probes"))
            };
            let Some(why) = why else { continue };
            if p.src.is_some() {
                continue;
            }
            let fix = match m.lang {
                Lang::Iptables => format!("start the knock on an unused high port scanners skip, e.g. `iptables -A INPUT -p tcp --dport 47213 -m recent --name {} --set -j DROP`", first.list),
                Lang::Nft => format!("start the knock on an unused high port scanners skip, e.g. `tcp dport 47213 add @{} {{ ip saddr timeout 10s }} drop`", first.list),
            };
            out.push(Finding::new(
                FindingKind::KnockScanCompletes,
                format!(
                    "the first knock stage ('{}', {at}) is completed by {}: {why} (`{}`)",
                    first.list,
                    p.short(),
                    e.path.first().cloned().unwrap_or_default()
                ),
                fix,
            ));
        }
    }

    // Stages reachable from more than one rule path.
    for st in &m.stages {
        if st.entered_by.len() < 2 {
            continue;
        }
        let paths: Vec<String> = st
            .entered_by
            .iter()
            .map(|e| format!("`{}`", e.path.join(" → ")))
            .collect();
        let fix = match m.lang {
            Lang::Iptables => format!("keep one rule that jumps to the chain that sets '{}', and remove the other references to it", st.list),
            Lang::Nft => format!("keep one rule that adds to @{} and remove the others", st.list),
        };
        out.push(Finding::new(
            FindingKind::KnockMultiplePaths,
            format!(
                "knock list '{}' ({at}) is reached by {} rule paths, each a way through the knock: {}",
                st.list,
                st.entered_by.len(),
                paths.join("; ")
            ),
            fix,
        ));
    }

    // The last stage opens a sensitive port to everyone who knocked.
    for o in &m.opens {
        let Some(port) = o.packet.port().filter(|p| sensitive.contains(p)) else {
            continue;
        };
        if o.packet.src.is_some() {
            continue;
        }
        let fix = match m.lang {
            Lang::Iptables => format!("restrict and time-limit the opening: `iptables -A INPUT -s $ADMIN_NET -p tcp --dport {port} -m recent --name {} --rcheck --seconds 30 --reap -j ACCEPT`; better, reach port {port} through SSH or a VPN", o.from),
            Lang::Nft => format!("restrict the opening: `ip saddr $ADMIN_NET tcp dport {port} ip saddr @{} accept`; better, reach port {port} through SSH or a VPN", o.from),
        };
        out.push(Finding::new(
            FindingKind::KnockOpensSensitivePort,
            format!(
                "the last knock stage ('{}', {at}) opens sensitive port {port} to every address that knocked: `{}`",
                o.from,
                o.path.join(" → ")
            ),
            fix,
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "*filter
-A INPUT -p icmp -m icmp --icmp-type 8 -m recent --set --name seenping --mask 255.255.255.255 --rsource -j ACCEPT
-A INPUT -p tcp -m tcp --dport 7 -m recent --rcheck --name seenping --mask 255.255.255.255 --rsource -j ADD_ECHO
-A INPUT -p tcp -m tcp --dport 8000 -m recent --rcheck --seconds 10 --name seenecho --mask 255.255.255.255 --rsource -j ADD_BACKEND
-A INPUT -m recent --remove --name seenecho --mask 255.255.255.255 --rsource
-A INPUT -p tcp -m tcp --dport 3306 -m recent --rcheck --name seenbackend --mask 255.255.255.255 --rsource -j ACCEPT
-A ADD_BACKEND -m recent --set --name seenbackend --mask 255.255.255.255 --rsource -j ACCEPT
-A ADD_ECHO -m recent --set --name seenecho --mask 255.255.255.255 --rsource -j ACCEPT
COMMIT
";

    fn kinds(f: &[Finding]) -> Vec<FindingKind> {
        f.iter().map(|f| f.kind).collect()
    }

    #[test]
    fn seed_scheme_findings() {
        let rs = Rulesets {
            iptables: vec![("ip".into(), SEED.into())],
            nft_json: None,
        };
        let f = findings(&rs, &[22, 3306]);
        let k = kinds(&f);
        assert!(k.contains(&FindingKind::KnockNoTimeLimit), "{f:#?}");
        assert!(
            f.iter().any(|x| x.kind == FindingKind::KnockNeverPurged && x.detail.contains("'seenping'")),
            "{f:#?}"
        );
        assert!(!f
            .iter()
            .any(|x| x.kind == FindingKind::KnockNeverPurged && x.detail.contains("'seenecho'")));
        assert!(k.contains(&FindingKind::KnockScanCompletes));
        assert!(k.contains(&FindingKind::KnockOpensSensitivePort));
        assert!(!k.contains(&FindingKind::KnockMultiplePaths));
        // Another reference to ADD_ECHO is another way through.
        let more = SEED.replace(
            "COMMIT",
            "-A FORWARD -p tcp -m tcp --dport 9 -m recent --rcheck --name seenping -j ADD_ECHO\nCOMMIT",
        );
        let f = findings(
            &Rulesets {
                iptables: vec![("ip".into(), more)],
                nft_json: None,
            },
            &[3306],
        );
        assert!(
            kinds(&f).contains(&FindingKind::KnockMultiplePaths),
            "{f:#?}"
        );
    }

    /// `nft -j list ruleset` (nft 1.0.6, Linux 6.18) after loading `SEED_NFT` of
    /// tests/recent_kernel.rs: seed 004 in native nftables with a 2 s seenecho window.
    const SEED_NFT_JSON: &str = include_str!("../../tests/fixtures/recent/seed-knock.nft.json");

    #[test]
    fn seed_scheme_in_nft_rebuilds_and_gets_nft_fixes() {
        let rs = Rulesets {
            iptables: vec![],
            nft_json: Some(SEED_NFT_JSON.into()),
        };
        let ms = machine::build(&rs.rules());
        assert_eq!(ms.len(), 1, "{ms:#?}");
        let m = &ms[0];
        assert_eq!(m.lang, Lang::Nft);
        assert_eq!(m.table, "inet knock");
        let lists: Vec<_> = m.stages.iter().map(|s| s.list.as_str()).collect();
        assert_eq!(lists, ["seenping", "seenecho", "seenbackend"]);
        assert_eq!(m.stages[2].entered_by[0].within, Some(2));
        assert_eq!(
            m.stages[2].entered_by[0].path[1],
            "add_backend: add @seenbackend { ip saddr } accept"
        );
        assert_eq!(m.opens[0].packet.port(), Some(3306));
        assert!(m.purged.contains("seenecho"));
        let f = findings(&rs, &[3306]);
        let never: Vec<_> = f
            .iter()
            .filter(|x| x.kind == FindingKind::KnockNeverPurged)
            .collect();
        assert_eq!(never.len(), 2, "{f:#?}");
        assert!(never[0].detail.contains("'seenping'"));
        assert!(
            never[0].fix.contains("timeout"),
            "an nft fix: {}",
            never[0].fix
        );
        assert!(f.iter().all(|x| !x.fix.contains("iptables")), "{f:#?}");
        assert!(f.iter().any(|x| x.kind == FindingKind::KnockScanCompletes));
        assert!(f
            .iter()
            .any(|x| x.kind == FindingKind::KnockOpensSensitivePort));
    }

    #[test]
    fn ban_lists_and_dual_stack_copies_are_not_weak_knocks() {
        // xt_recent(8)'s example: whoever touches port 139 is dropped for 60 s.
        let ban = "*filter
-A FORWARD -m recent --rcheck --seconds 60 --name badguy -j DROP
-A FORWARD -i eth0 -p tcp -m tcp --dport 139 -m recent --set --name badguy -j DROP
COMMIT
";
        let rs = Rulesets {
            iptables: vec![("ip".into(), ban.into())],
            nft_json: None,
        };
        assert!(findings(&rs, &[139]).is_empty());
        // The seed in iptables and ip6tables is two schemes, not two paths into one.
        let rs = Rulesets {
            iptables: vec![("ip".into(), SEED.into()), ("ip6".into(), SEED.into())],
            nft_json: None,
        };
        let f = findings(&rs, &[3306]);
        assert!(
            !kinds(&f).contains(&FindingKind::KnockMultiplePaths),
            "{f:#?}"
        );
        assert!(f.iter().any(|x| x.detail.contains("iptables ip6 filter")));
    }

    #[test]
    fn no_rules_no_findings() {
        assert!(findings(&Rulesets::default(), &[22]).is_empty());
        let rs = Rulesets {
            iptables: vec![],
            nft_json: Some(r#"{"nftables": [{"metainfo": {}}]}"#.into()),
        };
        assert!(findings(&rs, &[22]).is_empty());
    }
}
