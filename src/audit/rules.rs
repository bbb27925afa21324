//! Ruleset reading for the audit: nftables JSON (`nft -j list ruleset`, with the exact rule
//! text taken from `nft -a list ruleset`) and iptables-save text (iptables-nft and
//! iptables-legacy), reduced to the few facts the audit needs per rule.
//!
//! iptables-nft stores `-m conntrack`, `-m helper`, `-m rpfilter` and `-j CT` as `xt`
//! expressions whose contents `nft -j` does not show, so tables holding them are read from
//! `iptables-nft-save` instead (the collector passes both). Pure text in, facts out: this
//! module runs no commands and judges nothing (see `audit::run`).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use crate::error::Error;

/// Where a rule was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Native nftables (`nft -j list ruleset`).
    Nftables,
    /// iptables-nft (`iptables-nft-save`): nftables tables managed by iptables.
    IptablesNft,
    /// iptables-legacy (`iptables-legacy-save`).
    IptablesLegacy,
}

impl Origin {
    pub fn name(self) -> &'static str {
        match self {
            Origin::Nftables => "nftables",
            Origin::IptablesNft => "iptables-nft",
            Origin::IptablesLegacy => "iptables-legacy",
        }
    }
}

/// What the audit needs to know about one rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Facts {
    /// Accepts packets in ctstate RELATED (plain match or verdict map).
    pub related_accept: bool,
    /// Helper names the rule is narrowed to (`-m helper --helper`, `ct helper "…"`).
    pub helper_match: Vec<String>,
    /// Narrowed to ICMP/ICMPv6 (errors RELATED to a flow; no helper creates these).
    pub icmp_only: bool,
    /// Assigns a helper (`-j CT --helper`, `ct helper set`): the helper's kernel name
    /// (for nft objects, the object's `type`).
    pub assigns_helper: Option<String>,
    /// Reverse-path / anti-spoofing drop (`-m rpfilter --invert -j DROP`, `fib saddr . iif
    /// oif missing drop`, or a raw-table `-i IFACE -s NET -j DROP`).
    pub antispoof: bool,
    /// The interface a manual anti-spoofing rule guards, when it names one.
    pub antispoof_iface: Option<String>,
}

/// One rule with its exact text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    pub origin: Origin,
    /// nft family (`ip`, `ip6`, `inet`, …); iptables text maps to `ip`/`ip6`.
    pub family: String,
    pub table: String,
    pub chain: String,
    /// The rule as the admin would type or see it.
    pub text: String,
    pub facts: Facts,
}

impl Rule {
    /// The tool that shows and changes this rule, by family: `ip6tables-nft` for an IPv6
    /// iptables rule, so ip and ip6 rules with the same text never read as duplicates.
    pub fn tool(&self) -> &'static str {
        let v6 = self.family == "ip6";
        match (self.origin, v6) {
            (Origin::Nftables, _) => "nftables",
            (Origin::IptablesNft, false) => "iptables-nft",
            (Origin::IptablesNft, true) => "ip6tables-nft",
            (Origin::IptablesLegacy, false) => "iptables-legacy",
            (Origin::IptablesLegacy, true) => "ip6tables-legacy",
        }
    }

    /// The rule as the command that adds it, in its own language and family:
    /// `ip6tables -t raw -A PREROUTING …`, `nft add rule inet fw pre …`.
    pub fn command(&self) -> String {
        match self.origin {
            Origin::Nftables if self.text.starts_with("(rule handle") => format!(
                "{} {} {}: {}",
                self.family, self.table, self.chain, self.text
            ),
            Origin::Nftables => format!(
                "nft add rule {} {} {} {}",
                self.family, self.table, self.chain, self.text
            ),
            _ => {
                let tool = if self.family == "ip6" {
                    "ip6tables"
                } else {
                    "iptables"
                };
                if self.table == "filter" || self.table.is_empty() {
                    format!("{tool} {}", self.text)
                } else {
                    format!("{tool} -t {} {}", self.table, self.text)
                }
            }
        }
    }
}

/// What an nftables ruleset yields.
#[derive(Debug, Default)]
pub struct NftRuleset {
    pub rules: Vec<Rule>,
    /// (family, table) pairs holding `xt` expressions, to be read from iptables-nft-save.
    pub xt_tables: BTreeSet<(String, String)>,
    /// Native base chains: (family, table, chain) → hook (`input`, `forward`, …), so a
    /// fix lands in the admin's own chain on the right hook.
    pub base_chains: BTreeMap<(String, String, String), String>,
}

/// Parse `nft -j list ruleset`; `text` is `nft -a list ruleset` for the exact rule text
/// (by handle). Tables holding `xt` expressions are listed in `xt_tables`, their rules left
/// out. Errors end up in the report's "could not read" list.
pub fn parse_nft(json: &str, text: Option<&str>) -> Result<NftRuleset, Error> {
    let bad = |reason: String| Error::Audit {
        step: "nft -j list ruleset".into(),
        reason,
        hint: None,
    };
    let v: Value = serde_json::from_str(json).map_err(|e| bad(format!("unreadable JSON: {e}")))?;
    let items = v
        .get("nftables")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no 'nftables' array".into()))?;
    let texts = text.map(nft_text_by_handle).unwrap_or_default();
    // ct helper objects: (family, table, name) → kernel helper type.
    let mut objects: BTreeMap<(String, String, String), String> = BTreeMap::new();
    for it in items {
        if let Some(o) = it.get("ct helper") {
            let key = (s(o, "family"), s(o, "table"), s(o, "name"));
            objects.insert(key, s(o, "type"));
        }
    }
    let mut out = NftRuleset::default();
    for it in items {
        if let Some(c) = it.get("chain") {
            let hook = s(c, "hook");
            if !hook.is_empty() {
                out.base_chains
                    .insert((s(c, "family"), s(c, "table"), s(c, "name")), hook);
            }
        }
    }
    let mut pending = Vec::new();
    for it in items {
        let Some(r) = it.get("rule") else { continue };
        let (family, table, chain) = (s(r, "family"), s(r, "table"), s(r, "chain"));
        let handle = r.get("handle").and_then(Value::as_u64).unwrap_or(0);
        let exprs = r
            .get("expr")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if exprs.iter().any(|e| e.get("xt").is_some()) {
            out.xt_tables.insert((family.clone(), table.clone()));
        }
        let text = texts
            .get(&(family.clone(), table.clone(), chain.clone(), handle))
            .cloned()
            .unwrap_or_else(|| format!("(rule handle {handle}: {})", Value::Array(exprs.clone())));
        let facts = nft_facts(&exprs, &family, &table, &objects);
        pending.push(Rule {
            origin: Origin::Nftables,
            family,
            table,
            chain,
            text,
            facts,
        });
    }
    out.rules = pending
        .into_iter()
        .filter(|r| !out.xt_tables.contains(&(r.family.clone(), r.table.clone())))
        .collect();
    out.base_chains
        .retain(|(f, t, _), _| !out.xt_tables.contains(&(f.clone(), t.clone())));
    Ok(out)
}

fn s(v: &Value, k: &str) -> String {
    v.get(k).and_then(Value::as_str).unwrap_or("").to_string()
}

/// The strings in a match's right-hand side: a string, a list, or `{"set": [...]}`.
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(x) => vec![x.clone()],
        Value::Array(a) => a.iter().flat_map(strings).collect(),
        Value::Object(o) => o.get("set").map(strings).unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn is_ct_key(v: &Value, key: &str) -> bool {
    v.get("ct")
        .and_then(|c| c.get("key"))
        .and_then(Value::as_str)
        == Some(key)
}

fn nft_facts(
    exprs: &[Value],
    family: &str,
    table: &str,
    objects: &BTreeMap<(String, String, String), String>,
) -> Facts {
    let mut f = Facts::default();
    let mut related = false;
    let mut accept = false;
    let mut drop = false;
    let mut fib = false;
    let mut iif: Option<String> = None;
    let mut saddr = false;
    for e in exprs {
        if let Some(m) = e.get("match") {
            let op = m.get("op").and_then(Value::as_str).unwrap_or("==");
            let left = m.get("left").unwrap_or(&Value::Null);
            let right = m.get("right").unwrap_or(&Value::Null);
            let positive = op != "!=";
            if is_ct_key(left, "state") && positive {
                related |= strings(right).iter().any(|x| x == "related");
            } else if is_ct_key(left, "helper") && positive {
                f.helper_match.extend(strings(right));
            } else if let Some(meta) = left.get("meta") {
                let key = meta.get("key").and_then(Value::as_str).unwrap_or("");
                if key == "l4proto" && positive {
                    let r = strings(right);
                    f.icmp_only |= !r.is_empty() && r.iter().all(|p| is_icmp_name(p));
                }
                if (key == "iifname" || key == "iif") && positive {
                    iif = strings(right).into_iter().next();
                }
            } else if let Some(p) = left.get("payload") {
                let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("");
                let field = p.get("field").and_then(Value::as_str).unwrap_or("");
                if (proto == "icmp" || proto == "icmpv6") && positive {
                    f.icmp_only = true;
                }
                if (field == "protocol" || field == "nexthdr") && positive {
                    let r = strings(right);
                    f.icmp_only |= !r.is_empty() && r.iter().all(|p| is_icmp_name(p));
                }
                if field == "saddr" && positive {
                    saddr = true;
                }
            } else if let Some(fb) = left.get("fib") {
                let flags = fb.get("flags").map(strings).unwrap_or_default();
                fib |= flags.iter().any(|x| x == "saddr");
            }
        } else if let Some(vm) = e.get("vmap") {
            if vm.get("key").is_some_and(|k| is_ct_key(k, "state")) {
                if let Some(items) = vm
                    .get("data")
                    .and_then(|d| d.get("set"))
                    .and_then(Value::as_array)
                {
                    for pair in items {
                        let Some(p) = pair.as_array() else { continue };
                        let keys = p.first().map(strings).unwrap_or_default();
                        let verdict_accept = p.get(1).is_some_and(|v| v.get("accept").is_some());
                        if verdict_accept && keys.iter().any(|k| k == "related") {
                            related = true;
                            accept = true;
                        }
                    }
                }
            }
        } else if e.get("accept").is_some() {
            accept = true;
        } else if e.get("drop").is_some() {
            drop = true;
        } else if let Some(h) = e.get("ct helper") {
            if let Some(name) = h.as_str() {
                let key = (family.to_string(), table.to_string(), name.to_string());
                f.assigns_helper = Some(
                    objects
                        .get(&key)
                        .cloned()
                        .unwrap_or_else(|| name.to_string()),
                );
            } else {
                f.assigns_helper = Some("(map)".to_string());
            }
        }
    }
    f.related_accept = related && accept;
    f.antispoof = drop && (fib || (saddr && iif.is_some()));
    if f.antispoof && !fib {
        f.antispoof_iface = iif;
    }
    f
}

fn is_icmp_name(p: &str) -> bool {
    matches!(p, "icmp" | "ipv6-icmp" | "icmpv6" | "1" | "58")
}

/// Map (family, table, chain, handle) → rule text from `nft -a list ruleset`.
pub fn nft_text_by_handle(text: &str) -> BTreeMap<(String, String, String, u64), String> {
    let mut out = BTreeMap::new();
    let (mut family, mut table, mut chain) = (String::new(), String::new(), String::new());
    for line in text.lines() {
        let t = line.trim();
        let (body, handle) = match t.rsplit_once(" # handle ") {
            Some((b, h)) => (b.trim(), h.trim().parse::<u64>().ok()),
            None => (t, None),
        };
        if let Some(rest) = body.strip_prefix("table ") {
            let mut w = rest.split_whitespace();
            family = w.next().unwrap_or("").to_string();
            table = w.next().unwrap_or("").to_string();
            chain.clear();
        } else if let Some(rest) = body.strip_prefix("chain ") {
            chain = rest.split_whitespace().next().unwrap_or("").to_string();
        } else if let (Some(h), false) = (handle, chain.is_empty()) {
            if body.ends_with('{') {
                continue; // a set, map or object inside a table, not a rule
            }
            out.insert(
                (family.clone(), table.clone(), chain.clone(), h),
                body.to_string(),
            );
        } else if body == "}" && !chain.is_empty() {
            chain.clear();
        }
    }
    out
}

/// Split an iptables-save rule line into words, honouring double quotes (comments) and the
/// backslash escapes iptables-save writes inside them. Also `recent`'s rule reader.
pub(crate) fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            '\\' if quoted => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            c if c.is_whitespace() && !quoted => {
                if any || !cur.is_empty() {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => cur.push(c),
        }
    }
    if any || !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Parse iptables-save output. `family` is `ip` (iptables) or `ip6` (ip6tables). Only
/// tables listed in `only` are kept when it is given (iptables-nft tables that nft -j
/// could not show).
pub fn parse_iptables_save(
    text: &str,
    origin: Origin,
    family: &str,
    only: Option<&BTreeSet<(String, String)>>,
) -> Vec<Rule> {
    let mut out = Vec::new();
    let mut table = String::new();
    for line in text.lines() {
        let line = line.trim();
        if let Some(t) = line.strip_prefix('*') {
            table = t.trim().to_string();
            continue;
        }
        if !line.starts_with("-A ") {
            continue;
        }
        if let Some(set) = only {
            if !set.contains(&(family.to_string(), table.clone())) {
                continue;
            }
        }
        let w = words(line);
        let chain = w.get(1).cloned().unwrap_or_default();
        let facts = iptables_facts(&w, &table);
        out.push(Rule {
            origin,
            family: family.to_string(),
            table: table.clone(),
            chain,
            text: line.to_string(),
            facts,
        });
    }
    out
}

fn iptables_facts(w: &[String], table: &str) -> Facts {
    let mut f = Facts::default();
    let at = |i: usize| w.get(i).map(String::as_str).unwrap_or("");
    let target = w
        .iter()
        .position(|x| x == "-j" || x == "-g")
        .map(|i| at(i + 1).to_string())
        .unwrap_or_default();
    let target_pos = w
        .iter()
        .position(|x| x == "-j" || x == "-g")
        .unwrap_or(w.len());
    let mut related = false;
    let mut rpfilter_invert = false;
    let mut rpfilter = false;
    let mut iface: Option<String> = None;
    let mut source = false;
    let mut helper_module = false;
    for (i, x) in w.iter().enumerate() {
        let negated = i > 0 && at(i - 1) == "!";
        match x.as_str() {
            "--ctstate" | "--state" if !negated => {
                related |= at(i + 1)
                    .split(',')
                    .any(|s| s.eq_ignore_ascii_case("RELATED"));
            }
            "-m" if at(i + 1) == "helper" => helper_module = true,
            "-m" if at(i + 1) == "rpfilter" => rpfilter = true,
            "--invert" => rpfilter_invert = true,
            "--helper" if i > target_pos && target == "CT" => {
                f.assigns_helper = Some(at(i + 1).to_string());
            }
            "--helper" if helper_module && !negated => f.helper_match.push(at(i + 1).to_string()),
            "-p" | "--protocol" if !negated => {
                f.icmp_only = is_icmp_name(&at(i + 1).to_ascii_lowercase());
            }
            "-i" | "--in-interface" if !negated => iface = Some(at(i + 1).to_string()),
            "-s" | "--source" => source = true,
            _ => {}
        }
    }
    f.related_accept = related && target == "ACCEPT";
    let drop = target == "DROP";
    if drop && rpfilter && rpfilter_invert {
        f.antispoof = true;
    } else if drop && table == "raw" && source && iface.is_some() {
        f.antispoof = true;
        f.antispoof_iface = iface;
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    // `iptables-save` (nf_tables) in a fresh namespace after the rules shown.
    const SAVE: &str = "# Generated by iptables-save v1.8.9 (nf_tables)
*raw
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp
-A PREROUTING -m rpfilter --invert -j DROP
-A PREROUTING -i eth1 -s 192.0.2.0/24 -j DROP
COMMIT
*filter
:INPUT ACCEPT [0:0]
:FORWARD ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
-A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT
-A INPUT -d 10.0.0.1/32 -p tcp -m conntrack --ctstate RELATED -m helper --helper ftp -m tcp --dport 1024:65535 -j ACCEPT
-A INPUT -p icmp -m conntrack --ctstate RELATED -j ACCEPT
-A INPUT -m conntrack ! --ctstate RELATED -j ACCEPT
-A FORWARD -m conntrack --ctstate ESTABLISHED -m comment --comment \"no RELATED here\" -j ACCEPT
COMMIT
";

    #[test]
    fn iptables_save_facts() {
        let r = parse_iptables_save(SAVE, Origin::IptablesNft, "ip", None);
        assert_eq!(r.len(), 8);
        assert_eq!(r[0].facts.assigns_helper.as_deref(), Some("ftp"));
        assert!(r[0].facts.helper_match.is_empty());
        assert!(r[1].facts.antispoof && r[1].facts.antispoof_iface.is_none());
        assert_eq!(r[2].facts.antispoof_iface.as_deref(), Some("eth1"));
        assert!(r[3].facts.related_accept && r[3].facts.helper_match.is_empty());
        assert_eq!(r[3].table, "filter");
        assert_eq!(r[3].chain, "INPUT");
        assert_eq!(r[4].facts.helper_match, vec!["ftp".to_string()]);
        assert!(r[5].facts.related_accept && r[5].facts.icmp_only);
        assert!(!r[6].facts.related_accept);
        assert!(!r[7].facts.related_accept);
        assert_eq!(
            r[0].command(),
            "iptables -t raw -A PREROUTING -p tcp -m tcp --dport 21 -j CT --helper ftp"
        );
        assert_eq!(r[3].tool(), "iptables-nft");
        let v6 = parse_iptables_save(SAVE, Origin::IptablesLegacy, "ip6", None);
        assert_eq!(v6[3].tool(), "ip6tables-legacy");
        assert_eq!(
            v6[3].command(),
            "ip6tables -A INPUT -m state --state RELATED,ESTABLISHED -j ACCEPT"
        );
        let only: BTreeSet<_> = [("ip".to_string(), "raw".to_string())].into();
        assert_eq!(
            parse_iptables_save(SAVE, Origin::IptablesNft, "ip", Some(&only)).len(),
            3
        );
    }

    // `nft -j list ruleset` / `nft -a list ruleset` for a native ruleset (nft 1.0.6).
    const NFT_JSON: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}, {"table": {"family": "inet", "name": "fw", "handle": 1}}, {"ct helper": {"family": "inet", "name": "ftp-std", "table": "fw", "handle": 3, "type": "ftp", "protocol": "tcp", "l3proto": "inet"}}, {"chain": {"family": "inet", "table": "fw", "name": "pre", "handle": 1, "type": "filter", "hook": "prerouting", "prio": -300, "policy": "accept"}}, {"chain": {"family": "inet", "table": "fw", "name": "input", "handle": 2, "type": "filter", "hook": "input", "prio": 0, "policy": "drop"}}, {"rule": {"family": "inet", "table": "fw", "chain": "pre", "handle": 4, "expr": [{"match": {"op": "==", "left": {"fib": {"result": "oif", "flags": ["saddr", "iif"]}}, "right": false}}, {"drop": null}]}}, {"rule": {"family": "inet", "table": "fw", "chain": "pre", "handle": 5, "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "tcp", "field": "dport"}}, "right": 21}}, {"ct helper": "ftp-std"}]}}, {"rule": {"family": "inet", "table": "fw", "chain": "input", "handle": 7, "expr": [{"vmap": {"key": {"ct": {"key": "state"}}, "data": {"set": [["invalid", {"drop": null}], ["established", {"accept": null}], ["related", {"accept": null}]]}}}]}}, {"rule": {"family": "inet", "table": "fw", "chain": "input", "handle": 8, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": ["established", "related"]}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "fw", "chain": "input", "handle": 9, "expr": [{"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "related"}}, {"match": {"op": "==", "left": {"ct": {"key": "helper"}}, "right": "ftp"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "fw", "chain": "input", "handle": 10, "expr": [{"match": {"op": "==", "left": {"meta": {"key": "l4proto"}}, "right": "icmp"}}, {"match": {"op": "in", "left": {"ct": {"key": "state"}}, "right": "related"}}, {"accept": null}]}}, {"rule": {"family": "inet", "table": "fw", "chain": "input", "handle": 11, "expr": [{"match": {"op": "!=", "left": {"ct": {"key": "state"}}, "right": "related"}}, {"accept": null}]}}]}"#;
    const NFT_TEXT: &str = "table inet fw { # handle 1
\tct helper ftp-std { # handle 3
\t\ttype \"ftp\" protocol tcp
\t\tl3proto inet
\t}

\tchain pre { # handle 1
\t\ttype filter hook prerouting priority raw; policy accept;
\t\tfib saddr . iif oif missing drop # handle 4
\t\ttcp dport 21 ct helper set \"ftp-std\" # handle 5
\t}

\tchain input { # handle 2
\t\ttype filter hook input priority filter; policy drop;
\t\tct state vmap { invalid : drop, established : accept, related : accept } # handle 7
\t\tct state established,related accept # handle 8
\t\tct state related ct helper \"ftp\" accept # handle 9
\t\tmeta l4proto icmp ct state related accept # handle 10
\t\tct state != related accept # handle 11
\t}
}
";

    #[test]
    fn native_nft_facts_and_text() {
        let r = parse_nft(NFT_JSON, Some(NFT_TEXT)).unwrap();
        assert!(r.xt_tables.is_empty());
        let by = |h: &str| r.rules.iter().find(|x| x.text.contains(h)).unwrap().clone();
        assert!(by("fib saddr").facts.antispoof);
        assert_eq!(
            by("ct helper set").facts.assigns_helper.as_deref(),
            Some("ftp")
        );
        let vmap = by("vmap");
        assert!(vmap.facts.related_accept && vmap.facts.helper_match.is_empty());
        assert_eq!(vmap.chain, "input");
        assert!(by("established,related accept").facts.related_accept);
        assert_eq!(
            by("ct helper \"ftp\"").facts.helper_match,
            vec!["ftp".to_string()]
        );
        assert!(by("icmp").facts.icmp_only);
        assert!(!by("!= related").facts.related_accept);
        assert_eq!(r.rules.len(), 7);
        assert_eq!(
            r.base_chains
                .get(&("inet".into(), "fw".into(), "input".into()))
                .map(String::as_str),
            Some("input")
        );
        assert_eq!(
            by("ct helper set").command(),
            "nft add rule inet fw pre tcp dport 21 ct helper set \"ftp-std\""
        );
    }

    #[test]
    fn xt_tables_are_set_aside_and_bad_json_is_an_error() {
        let j = r#"{"nftables":[{"rule":{"family":"ip","table":"filter","chain":"INPUT","handle":4,"expr":[{"xt":{"type":"match","name":"conntrack"}},{"accept":null}]}}]}"#;
        let r = parse_nft(j, None).unwrap();
        assert!(r.rules.is_empty());
        assert!(r
            .xt_tables
            .contains(&("ip".to_string(), "filter".to_string())));
        assert!(parse_nft("{", None).is_err());
        assert!(parse_nft("{}", None).is_err());
    }

    #[test]
    fn truncated_or_odd_input_never_panics() {
        for i in 0..NFT_JSON.len() {
            if NFT_JSON.is_char_boundary(i) {
                let _ = parse_nft(&NFT_JSON[..i], Some(&NFT_TEXT[..i.min(NFT_TEXT.len())]));
            }
        }
        for i in 0..SAVE.len() {
            let _ = parse_iptables_save(&SAVE[..i], Origin::IptablesLegacy, "ip", None);
        }
        // Valid JSON with the wrong shapes everywhere.
        let odd = r#"{"nftables":[{"rule":{"expr":"x"}},{"rule":7},{"ct helper":[]},
            {"rule":{"family":1,"handle":"h","expr":[{"match":{"left":5,"right":{"set":7}}},
            {"match":{"left":{"ct":{"key":"state"}},"right":[[["related"]]]}},{"accept":1},
            {"vmap":{"key":{"ct":{"key":"state"}},"data":{"set":[7,[],["related"]]}}},
            {"ct helper":{"map":1}},{"match":{"left":{"fib":{"flags":"saddr"}},"right":1}}]}}]}"#;
        let r = parse_nft(odd, Some("table\nchain\n} # handle x\n# handle 1")).unwrap();
        assert!(r.rules.iter().any(|x| x.facts.related_accept));
        let _ = parse_iptables_save(
            "-A\n-A X ! \n-A X -j\n-A X --ctstate\n*\n-A \"",
            Origin::IptablesNft,
            "ip",
            None,
        );
    }

    #[test]
    fn rule_text_falls_back_to_the_expression_without_nft_text() {
        let r = parse_nft(NFT_JSON, None).unwrap();
        assert!(r.rules[0].text.starts_with("(rule handle 4:"));
    }
}
